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
from doctor.head.jobs import MARKER, JobError, JobOutcome, run_probe_job

EMPTY_RETRIES = 6
EMPTY_RETRY_S = 0.5

# ~4.5 s on an idle 2-core machine; measured 14 s end to end under load (supervisor actor 6 s,
# the script 4.6 s: ray/dashboard/modules/job/job_manager.py starts a JobSupervisor actor per job).
# packages.head waits for this inside its own 45 s.
JOB_LIMIT_S = 30.0
TASK_LIMIT_S = 15.0  # per-node answers, inside the job


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

DEEP_PROBE = r"""
import json, platform, socket, sys, time
from importlib import metadata

def describe():
    import ray as r
    pk = {}
    for d in metadata.distributions():
        try:
            name = d.metadata["Name"]
        except Exception:
            name = None
        if name:
            pk.setdefault(name, d.version)
    return {"python": platform.python_version(), "ray": r.__version__, "executable": sys.executable,
            "hostname": socket.gethostname(), "packages": pk,
            "node_id": r.get_runtime_context().get_node_id()}

def main():
    # Ray is imported here, in the job on the cluster, never in raydoctor's process.
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    ray.init(logging_level="ERROR", log_to_driver=False)
    out = {"driver": describe(), "nodes": {}}
    look = ray.remote(num_cpus=0, max_retries=0)(describe)
    refs = {}
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        nid = n["NodeID"]
        ref = look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)).remote()
        refs[nid] = (n, ref)
    deadline = time.time() + TASK_LIMIT
    for nid, (n, ref) in refs.items():
        try:
            res = ray.get(ref, timeout=max(0.5, deadline - time.time()))
        except Exception as e:
            res = {"error": type(e).__name__ + ": " + str(e)[:300]}
            ray.cancel(ref, force=True)
        res["ip"] = n.get("NodeManagerAddress")
        res["is_head"] = "node:__internal_head__" in (n.get("Resources") or {})
        out["nodes"][nid] = res
    print("MARKER" + json.dumps(out), flush=True)


main()
""".replace("MARKER", MARKER).replace("TASK_LIMIT", repr(TASK_LIMIT_S))


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

    @property
    def head(self) -> NodeEnv | None:
        found = [n for n in self.nodes if n.is_head and n.error is None]
        return found[0] if found else (self.driver if self.driver and self.driver.error is None else None)

    @property
    def head_packages(self) -> dict[str, str] | None:
        """The head's installed distributions (canonical name -> version), when the probe got them."""
        head = self.head
        return dict(head.packages) if head is not None else None


def _env(node_id: str, raw: Mapping[str, Any]) -> NodeEnv:
    packages: dict[str, str] = {canonicalize_name(str(k)): str(v) for k, v in (raw.get("packages") or {}).items()}
    return NodeEnv(
        node_id,
        str(raw.get("ip") or "?"),
        bool(raw.get("is_head")),
        raw.get("python"),
        raw.get("ray"),
        raw.get("executable"),
        packages,
        raw.get("error"),
    )


def parse_probe(outcome: JobOutcome) -> DeepProbe:
    """The probe job's outcome as facts; an error when it did not print its answer."""
    payload = outcome.payload
    if not outcome.ok or not isinstance(payload, dict):
        error = f"the probe job {outcome.status.lower()} after {outcome.duration_s:.1f} s" + (
            f": {outcome.message}" if outcome.message else ""
        )
        return DeepProbe(error=error, outcome=outcome)
    driver = payload.get("driver") or {}
    nodes = payload.get("nodes") or {}
    return DeepProbe(
        outcome=outcome,
        driver=_env(str(driver.get("node_id") or "driver"), {**driver, "is_head": False, "ip": "job driver"}),
        nodes=tuple(
            sorted((_env(str(nid), raw) for nid, raw in nodes.items()), key=lambda n: (not n.is_head, n.node_id))
        ),
    )


def run_deep_probe(dashboard: DashboardClient | None, live: bool) -> DeepProbe:
    """Run the probe job once (``live``: the dashboard answered as Ray). Never raises."""
    if dashboard is None or not live:
        return DeepProbe(skipped="the cluster is not reachable (see head.source)")
    try:
        outcome = run_probe_job(dashboard, DEEP_PROBE, limit_s=JOB_LIMIT_S, name="deep")
    except JobError as exc:
        return DeepProbe(error=f"the probe job could not be submitted: {exc.message}")
    except DashboardError as exc:
        return DeepProbe(error=f"the Jobs API did not answer: {exc.message}")
    return parse_probe(outcome)
