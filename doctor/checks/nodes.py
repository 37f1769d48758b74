"""The cluster's nodes: a worker that died is a finding before any task lands on it.

This module only judges the node list, a fact read once per run (``doctor.facts.cluster.read_nodes``
through ``CheckContext.nodes``).
"""

from __future__ import annotations

from typing import Any

from doctor.facts.cluster import describe_node, node_state
from doctor.head.dashboard import DashboardError
from doctor.model import Remediation, Result, Status, finding
from doctor.runner import Check

TITLE = "Cluster nodes alive"

__all__ = ["TITLE", "checks_for", "describe_node", "judge_node_list"]


def _total(nodes: list[dict[str, Any]], resource: str) -> float:
    total = 0.0
    for node in nodes:
        try:
            total += float((node.get("resources_total") or {}).get(resource) or 0)
        except (TypeError, ValueError):
            continue
    return total


def _unjoined(ctx: Any, alive_workers: int | None = None) -> Any | None:
    """The compose cluster's inside view (``doctor.head.containers.InsideView``) where some worker container
    of the file is not an alive node, else None.

    ``alive_workers``: the worker nodes the dashboard lists as alive (None: it did not answer). Where they
    are at least as many as the file's worker containers, every container joined and no log is read (a
    healthy cluster costs one ``docker ps``). A worker joined from outside the file could hide a missing one
    from this count: then the node list still shows one worker fewer than the file has."""
    from doctor.checks.network import inside_view

    view = inside_view(ctx)
    if view is None or not view.workers or (alive_workers is not None and alive_workers >= len(view.workers)):
        return None
    return view


def _not_joined(ctx: Any, view: Any, alive_workers: int, summary: str, data: dict[str, Any]) -> Result:
    """Worker containers of the file that are not alive nodes, none refused by Ray's version check: one that
    stopped (its own log says why) or one that runs and has not joined (yet)."""
    stopped = [(w, tail) for w, tail in view.worker_logs if not w.running]
    data = {**data, "worker_containers": len(view.workers), "not_running": [w.name for w, _ in stopped]}
    count = f"{len(view.workers)} worker container{'s' if len(view.workers) != 1 else ''} in the file's project"
    if stopped:
        worker, tail = stopped[0]
        cause = f": {tail.error}" if tail is not None and tail.error else ""
        details = [f"{w.name}: {w.status}" for w, _ in stopped]
        if tail is not None:
            details += [f"{tail.source}:", *tail.quoted()]
        from doctor.checks.basics import start_remedy  # the one way to start it (head.source's)

        start = start_remedy(ctx)
        return finding(
            Status.WARN,
            f"{summary}; {count}, {worker.name} is not running ({worker.status}){cause}",
            code="head.nodes.worker_stopped",
            details=details,
            fix=Remediation(
                "Fix what the worker's log says (above), then start it again. " + start.text, start.commands
            ),
            data=data,
        )
    waiting = len(view.workers) - alive_workers
    return finding(
        Status.WARN,
        f"{summary}; {count}: {waiting} {'runs but has' if waiting == 1 else 'run but have'} not joined the head "
        "(still starting?)",
        code="head.nodes.worker_not_joined",
        details=[f"{w.name}: {w.status}" for w in view.workers],
        fix=Remediation(
            "Run the check again in a few seconds; if it stays, read the worker's log.",
            tuple(f"docker logs --tail 40 {w.name}" for w in view.workers[:2]),
        ),
        data=data,
    )


def _refused(refused: list[Any], summary: str, data: dict[str, Any]) -> Result:
    _, log = refused[0]
    return finding(
        Status.FAIL,
        f"{summary}; the head refused {', '.join(w.name for w, _ in refused)}: {log.error}",
        code="head.nodes.worker_refused",
        details=[f"{log.source}:", *log.quoted()],
        fix=Remediation(
            "Run the head's image on every node: Ray checks that a joining node's Ray and Python match the "
            "cluster's (ray/_private/utils.py::check_version_info).",
            (),
        ),
        data={**data, "refused": [w.name for w, _ in refused]},
    )


def judge_node_list(ctx: Any) -> Result:
    """Alive and dead nodes, and whether an alive head is among them."""
    if not ctx.head().live:
        view = _unjoined(ctx)  # a worker's own log says Ray refused it, whether or not the dashboard answers
        if view is not None and view.refused:
            return _refused(list(view.refused), "the cluster's dashboard did not answer (see head.source)", {})
        return finding(Status.SKIP, "the cluster did not answer (see head.source)", code="head.nodes.unreachable")
    try:
        nodes = ctx.nodes()
    except DashboardError as exc:
        return finding(Status.WARN, f"the node list could not be read: {exc.message}", code="head.nodes.unreadable")
    if not nodes:
        return finding(
            Status.WARN,
            "the dashboard lists no nodes yet (a head that has just started?)",
            code="head.nodes.none_listed",
            fix=Remediation("Run the check again in a few seconds.", ()),
        )
    alive = [n for n in nodes if node_state(n) == "ALIVE"]
    dead = [n for n in nodes if node_state(n) == "DEAD"]
    workers = sum(1 for n in alive if not n.get("is_head_node"))
    resources = f"{_total(alive, 'CPU'):g} CPUs, {_total(alive, 'GPU'):g} GPUs"
    data = {"alive": len(alive), "dead": len(dead), "dead_nodes": [describe_node(n) for n in dead]}
    if not any(n.get("is_head_node") for n in alive):
        return finding(
            Status.FAIL,
            f"no alive head node among {len(nodes)} nodes",
            code="head.nodes.no_alive_head",
            fix=Remediation("Restart the head (ray start --head …).", ()),
            data=data,
        )
    summary = f"{len(alive)} alive (head + {workers} worker{'s' if workers != 1 else ''}; {resources})"
    # The state API says when it cut the list short (doctor.head.dashboard.node_list): then every count
    # here, and every check that reads the list, sees only part of the cluster.
    cut = [str(x) for x in (getattr(nodes, "truncated", None), getattr(nodes, "warning", None)) if x]
    data["listed"] = len(nodes)
    data["total"] = getattr(nodes, "total", None)
    data["truncated"] = "; ".join(cut) or None
    if cut and not dead:
        return finding(
            Status.WARN,
            f"{summary} among the {len(nodes)} listed; the node list is not whole: {cut[0]}",
            code="head.nodes.truncated",
            details=cut,
            fix=Remediation(
                "Counts and per-node checks cover only the listed nodes; `ray list nodes --limit 10000` on the "
                "head lists them all (RAY_MAX_LIMIT_FROM_API_SERVER / RAY_MAX_LIMIT_FROM_DATA_SOURCE raise Ray's caps).",
                (),
            ),
            data=data,
        )
    view = _unjoined(ctx, alive_workers=workers)
    if view is not None:
        if view.refused:
            return _refused(list(view.refused), summary, data)
        if not dead or any(not w.running for w in view.workers):
            # A stopped worker container is said with its own log; a dead node whose container still runs
            # is said with Ray's state message (below).
            return _not_joined(ctx, view, workers, summary, data)
    if not dead:
        return finding(Status.OK, summary, code="head.nodes.alive", data=data)
    names = ", ".join(describe_node(n) for n in dead[:3])
    details = [f"{describe_node(n)}: {n.get('state_message') or 'DEAD'}" for n in dead] + cut
    address = f"{ctx.target.address.host}:{ctx.target.address.gcs_port}"
    return finding(
        Status.WARN,
        f"{summary}; {len(dead)} dead: {names}",
        code="head.nodes.dead_workers",
        details=details,
        fix=Remediation(
            "Restart Ray on the dead node so that it joins again (its resources are gone until then).",
            (f"ray start --address={address}",),
        ),
        data=data,
    )


def checks_for(ctx: Any) -> list[Check]:
    if ctx.target.address is None:
        return []
    return [
        Check("head.nodes", "head", TITLE, judge_node_list, timeout=45)
    ]  # waits for head facts (a ray:// target: the round trip)
