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


def _refused_workers(ctx: Any, alive_workers: int | None = None) -> list[Any]:
    """(container, log tail) of a compose cluster's workers whose log says Ray refused them.

    ``alive_workers``: the worker nodes the dashboard lists as alive. Where they are at least as many as
    the file's worker containers, every container joined and no log is read (a healthy cluster costs one
    ``docker ps``). A worker joined from outside the file could hide a refused one from this count: then
    its log is not quoted, and the node list still shows one worker fewer than expected."""
    from doctor.checks.network import inside_view

    view = inside_view(ctx)
    if view is None or (alive_workers is not None and alive_workers >= len(view.workers)):
        return []
    return list(view.refused)


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
        refused = _refused_workers(ctx)  # a worker's own log says so, whether or not the dashboard answers
        if refused:
            return _refused(refused, "the cluster's dashboard did not answer (see head.source)", {})
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
    refused = _refused_workers(ctx, alive_workers=workers)
    if refused:
        return _refused(refused, summary, data)
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
