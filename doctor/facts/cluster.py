"""Facts about the whole cluster: the node list, and what every node has installed (``--deep``).

Both are read through the dashboard, at most once per run, by ``doctor.context.CheckContext``
(``nodes()`` and ``deep_probe()``); the checks in ``doctor/checks/nodes.py``, ``gpu.py`` and
``deep.py`` only judge them. Nothing here imports a check, and nothing here is changed after it
has been gathered.

The deep probe: the head's Python and Ray come cheaply from the dashboard; its packages do not.
A job (Jobs API over HTTP) runs on the head, and from it one tiny task is pinned to every alive
node (``ray/util/scheduling_strategies.py::NodeAffinitySchedulingStrategy``) to report that
node's Python, Ray and installed distributions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from packaging.utils import canonicalize_name

from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.head.jobs import MARKER, ON_THE_HEAD, JobError, JobOutcome, run_probe_job
from doctor.probe_code import DISTRIBUTIONS

EMPTY_RETRIES = 6
EMPTY_RETRY_S = 0.5

# ~4.5 s on an idle 2-core machine; measured 14 s end to end under load (supervisor actor 6 s,
# the script 4.6 s: ray/dashboard/modules/job/job_manager.py starts a JobSupervisor actor per job).
# packages.head waits for this inside its own 45 s.
JOB_LIMIT_S = 30.0  # at the default --timeout (probe_limits)
TASK_LIMIT_S = 15.0  # every node's answer, inside the job, at the default --timeout
JOB_OVERHEAD_S = JOB_LIMIT_S - TASK_LIMIT_S  # the job's own start (supervisor actor, ray.init) and end
TASK_PER_TIMEOUT = 7.5  # task limit per second of --timeout, above TASK_LIMIT_S


class NodeSource(Protocol):
    def nodes(self) -> list[dict[str, Any]]: ...


def describe_node(node: Mapping[str, Any]) -> str:
    """``worker 1a2b3c4d5e6f (10.0.0.7)``: how findings name a node."""
    role = "head" if node.get("is_head_node") else "worker"
    return f"{role} {str(node.get('node_id', '?'))[:12]} ({node.get('node_ip', '?')})"


def node_state(node: Mapping[str, Any]) -> str:
    return str(node.get("state", "")).upper()


def read_nodes(dashboard: NodeSource) -> list[dict[str, Any]]:
    """The dashboard's node list (``/api/v0/nodes``); a head that has just started lists no nodes for a
    moment, so ask again. Raises ``DashboardError``."""
    nodes = dashboard.nodes()
    for _ in range(EMPTY_RETRIES):
        if nodes:
            break
        time.sleep(EMPTY_RETRY_S)
        nodes = dashboard.nodes()
    return nodes


def node_counts(nodes: list[dict[str, Any]]) -> dict[str, int]:
    """What the report's ``head`` section says about the node list: the same counts ``head.nodes`` judges."""
    return {
        "listed": len(nodes),
        "alive": sum(1 for n in nodes if node_state(n) == "ALIVE"),
        "dead": sum(1 for n in nodes if node_state(n) == "DEAD"),
    }


# ---------------------------------------------------------------- the deep probe

# One round of concurrent tasks: every alive node's task is submitted before any answer is awaited,
# and answers are collected with ray.wait as they come, so a node that never answers costs the
# others nothing. At most IN_FLIGHT tasks are outstanding at once (a sliding window: each answer
# frees a slot for the next node), so that 10,000 nodes are not 10,000 pending leases on the head's
# raylet at once; every task shares one deadline, so the whole round is bounded by the task limit
# whatever N is, and a node whose turn never came is named as "not asked" rather than waited for.
IN_FLIGHT = 256
# The probe prints one line; the Jobs API hands the whole job log back in one JSON answer
# (ray/dashboard/modules/job/job_log_storage_client.py::get_logs reads the file whole), which
# DashboardClient caps at MAX_BODY (4 MiB). JSON inside JSON escapes every quote, so the line is kept
# under half of that: identical environments are sent once (nodes carry a key to them), and past the
# cap the package lists of environments other than the head's, then node records, are left out.
PROBE_MAX_BYTES = 1536 * 1024
MAX_ENVS = 64  # distinct (Python, Ray, executable, packages) sets sent in full

DEEP_PROBE = r"""
import collections, hashlib, json, os, platform, sys, time
DISTRIBUTIONS_FN

def describe():
    import ray as r
    return {"python": platform.python_version(), "ray": r.__version__, "executable": sys.executable,
            "packages": distributions(), "node_id": r.get_runtime_context().get_node_id()}

ENV_KEYS = ("python", "ray", "executable", "packages")

def digest(env):
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]

def main():
    # Ray is imported here, in the job on the cluster, never in raydoctor's process.
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    ray.init(logging_level="ERROR", log_to_driver=False)
    envs = {}

    def keep(res):
        # One copy of each distinct environment; the record carries its key.
        if "error" in res or "packages" not in res:
            return res
        env = {k: res.pop(k) for k in ENV_KEYS if k in res}
        key = digest(env)
        if key not in envs and len(envs) >= MAX_ENVS:
            # Past MAX_ENVS distinct sets, only Python, Ray and the executable are kept (they collapse).
            env = dict(env, packages={}, packages_dropped=True)
            key = digest(env)
        envs.setdefault(key, env)
        res["env"] = key
        return res

    driver = describe()
    out = {"v": 2, "task_limit_s": TASK_LIMIT, "in_flight": IN_FLIGHT, "envs": envs, "nodes": {}}
    out["driver"] = keep(driver)
    look = ray.remote(num_cpus=0, max_retries=0)(describe)
    alive = [n for n in ray.nodes() if n.get("Alive")]
    todo = collections.deque(alive)
    pending = {}
    started = time.time()
    deadline = started + TASK_LIMIT

    def finish(n, res):
        res.pop("node_id", None)
        res["ip"] = n.get("NodeManagerAddress")
        res["is_head"] = "node:__internal_head__" in (n.get("Resources") or {})
        out["nodes"][n["NodeID"]] = keep(res)

    while todo or pending:
        while todo and len(pending) < IN_FLIGHT:
            n = todo.popleft()
            strategy = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            pending[look.options(scheduling_strategy=strategy).remote()] = n
        left = deadline - time.time()
        if left <= 0:
            break
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=left)
        if ready:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:
            n = pending.pop(ref)
            try:
                res = ray.get(ref)
                res["answered_s"] = round(time.time() - started, 3)
            except Exception as e:
                res = {"error": type(e).__name__ + ": " + str(e)[:300]}
            finish(n, res)
    for ref, n in pending.items():
        try:
            ray.cancel(ref, force=True)
        except Exception:
            pass
        finish(n, {"silent": True, "error": "no answer within %g s: its probe task never ran there" % TASK_LIMIT})
    for n in todo:
        finish(n, {"silent": True, "error": "not asked: %d tasks were still in flight when the %g s deadline passed"
                   % (IN_FLIGHT, TASK_LIMIT)})
    line = json.dumps(out)
    if len(line) > MAX_BYTES:
        head_envs = {r.get("env") for r in out["nodes"].values() if r.get("is_head")}
        for key, env in envs.items():
            if key not in head_envs and key != driver.get("env"):
                envs[key] = dict(env, packages={}, packages_dropped=True)
        line = json.dumps(out)
    if len(line) > MAX_BYTES:
        # Keep the head, the nodes that did not answer, then those on another env: the ones a reader needs.
        head_envs = {r.get("env") for r in out["nodes"].values() if r.get("is_head")}
        order = sorted(out["nodes"].items(), key=lambda kv: (not kv[1].get("is_head"), "error" not in kv[1],
                                                            kv[1].get("env") in head_envs))
        driver_env = {driver.get("env"): envs.get(driver.get("env"))}
        kept, used = {}, dict(driver_env)
        size = len(json.dumps(dict(out, nodes={}, envs=used))) + 64
        for nid, rec in order:
            cost = len(json.dumps({nid: rec})) + 2
            key = rec.get("env")
            if key is not None and key not in used:
                cost += len(json.dumps({key: envs[key]})) + 2
            if size + cost > MAX_BYTES:
                break
            size += cost
            kept[nid] = rec
            if key is not None:
                used[key] = envs[key]
        out["left_out"] = len(out["nodes"]) - len(kept)
        out["nodes"], out["envs"] = kept, used
        line = json.dumps(out)
    print("MARKER" + line, flush=True)
    # The answer is out: leave without ray.shutdown(), which can wait on a wedged node's cancelled task.
    sys.stdout.flush()
    os._exit(0)


main()
"""


def deep_probe_script(task_limit_s: float) -> str:
    """The probe job's script, with its limits filled in."""
    return (
        DEEP_PROBE.replace("DISTRIBUTIONS_FN", DISTRIBUTIONS)
        .replace("MARKER", MARKER)
        .replace("TASK_LIMIT", repr(float(task_limit_s)))
        .replace("IN_FLIGHT", repr(IN_FLIGHT))
        .replace("MAX_BYTES", repr(PROBE_MAX_BYTES))
        .replace("MAX_ENVS", repr(MAX_ENVS))
    )


def probe_limits(timeout: float) -> tuple[float, float]:
    """(task limit, job limit) in seconds for ``--timeout`` seconds per connection.

    The task limit is how long every node's task may take to answer (one deadline for the whole
    round); the job limit adds what the job costs around it (JOB_OVERHEAD_S). The default
    ``--timeout`` 2 gives 15 s and 30 s; a larger ``--timeout`` (a slow or far cluster) scales both.
    """
    task = max(TASK_LIMIT_S, TASK_PER_TIMEOUT * timeout)
    return task, task + JOB_OVERHEAD_S


@dataclass(frozen=True)
class NodeEnv:
    """One node's interpreter as the probe task on it saw it."""

    node_id: str
    ip: str
    is_head: bool
    python: str | None = None
    ray: str | None = None
    executable: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)  # canonical name -> version
    error: str | None = None
    silent: bool = False  # it never answered within the deadline (or was never asked): not an error it raised
    packages_dropped: bool = False  # the probe's output cap left its package list out
    answered_s: float | None = None  # seconds after the round began

    @property
    def name(self) -> str:
        return f"{'head' if self.is_head else 'worker'} {self.node_id[:12]} ({self.ip})"


@dataclass(frozen=True)
class DeepProbe:
    """What the deep probe job brought back, or why it did not."""

    error: str | None = None
    skipped: str | None = None
    outcome: JobOutcome | None = None
    driver: NodeEnv | None = None
    nodes: tuple[NodeEnv, ...] = ()
    task_limit_s: float = TASK_LIMIT_S
    left_out: int = 0  # node records the probe's output cap left out (PROBE_MAX_BYTES)

    @property
    def head(self) -> NodeEnv | None:
        found = [n for n in self.nodes if n.is_head and n.error is None]
        return found[0] if found else (self.driver if self.driver and self.driver.error is None else None)

    @property
    def silent(self) -> tuple[NodeEnv, ...]:
        """The nodes that never answered within the deadline."""
        return tuple(n for n in self.nodes if n.silent)

    @property
    def head_packages(self) -> dict[str, str] | None:
        """The head's installed distributions (canonical name -> version), when the probe got them."""
        head = self.head
        return dict(head.packages) if head is not None else None


def _env(node_id: str, raw: Mapping[str, Any], envs: Mapping[str, Any]) -> NodeEnv:
    shared = envs.get(str(raw.get("env"))) if raw.get("env") is not None else None
    merged = {**(shared if isinstance(shared, dict) else {}), **raw}
    packages: dict[str, str] = {canonicalize_name(str(k)): str(v) for k, v in (merged.get("packages") or {}).items()}
    answered = merged.get("answered_s")
    return NodeEnv(
        node_id,
        str(merged.get("ip") or "?"),
        bool(merged.get("is_head")),
        merged.get("python"),
        merged.get("ray"),
        merged.get("executable"),
        packages,
        merged.get("error"),
        bool(merged.get("silent")),
        bool(merged.get("packages_dropped")),
        float(answered) if isinstance(answered, (int, float)) else None,
    )


def parse_probe(outcome: JobOutcome) -> DeepProbe:
    """The probe job's outcome as facts; an error when it did not print its answer."""
    payload = outcome.payload
    if not outcome.ok or not isinstance(payload, dict):
        error = f"the probe job {outcome.status.lower()} after {outcome.duration_s:.1f} s" + (
            f": {outcome.message}" if outcome.message else ""
        )
        return DeepProbe(error=error, outcome=outcome)
    raw_envs = payload.get("envs")
    envs: dict[str, Any] = raw_envs if isinstance(raw_envs, dict) else {}
    driver = payload.get("driver") or {}
    nodes = payload.get("nodes") or {}
    limit = payload.get("task_limit_s")
    left_out = payload.get("left_out")
    return DeepProbe(
        outcome=outcome,
        driver=_env(str(driver.get("node_id") or "driver"), {**driver, "is_head": False, "ip": "job driver"}, envs),
        nodes=tuple(
            sorted(
                (_env(str(nid), raw, envs) for nid, raw in nodes.items() if isinstance(raw, dict)),
                key=lambda n: (not n.is_head, n.node_id),
            )
        ),
        task_limit_s=float(limit) if isinstance(limit, (int, float)) else TASK_LIMIT_S,
        left_out=left_out if isinstance(left_out, int) and left_out > 0 else 0,
    )


def run_deep_probe(dashboard: DashboardClient | None, live: bool, timeout: float | None = None) -> DeepProbe:
    """Run the probe job once (``live``: the dashboard answered as Ray), bounded by ``probe_limits``
    of ``timeout`` (``--timeout``; the dashboard client's own when not given). Never raises."""
    if dashboard is None or not live:
        return DeepProbe(skipped="the cluster is not reachable (see head.source)")
    task_s, job_s = probe_limits(dashboard.timeout if timeout is None else timeout)
    try:
        outcome = run_probe_job(
            dashboard, deep_probe_script(task_s), limit_s=job_s, name="deep", entrypoint_resources=ON_THE_HEAD
        )
    except JobError as exc:
        return DeepProbe(error=f"the probe job could not be submitted: {exc.message}")
    except DashboardError as exc:
        return DeepProbe(error=f"the Jobs API did not answer: {exc.message}")
    return parse_probe(outcome)
