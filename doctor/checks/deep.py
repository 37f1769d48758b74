"""``--deep``: one probe job that lists what every node really has installed.

The head's Python and Ray come cheaply from the dashboard; its packages do
not. A job (Jobs API over HTTP) runs on the head, and from it one tiny task is
pinned to every alive node (NodeAffinitySchedulingStrategy) to report that
node's Python, Ray and installed distributions. Differences from the local
env and between nodes are findings: objects pickled with one version of a
package and loaded with another break in ways that look like user bugs.

The probe runs once per check, shared through ``CheckContext.deep_probe()``,
which also fills ``ctx.head().packages`` for the ``packages.head`` check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from doctor.head.dashboard import DashboardError
from doctor.head.jobs import MARKER, JobError, JobOutcome, run_probe_job
from doctor.model import Remediation, Result, Status, result
from doctor.remedies import raydoctor_fix
from doctor.runner import Check

if TYPE_CHECKING:
    from doctor.context import CheckContext

# ~4.5 s on an idle 2-core machine (REFERENCE §2); measured 14 s end to end under load (supervisor
# actor 6 s, the script 4.6 s). packages.head waits for this inside its own 45 s.
JOB_LIMIT_S = 30.0
TASK_LIMIT_S = 15.0  # per-node answers, inside the job
SHOW = 8  # differences listed in a summary

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


@dataclass
class NodeEnv:
    node_id: str
    ip: str
    is_head: bool
    python: str | None = None
    ray: str | None = None
    executable: str | None = None
    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{'head' if self.is_head else 'worker'} {self.node_id[:12]} ({self.ip})"


@dataclass
class DeepProbe:
    """What the deep probe job brought back, or why it did not."""

    error: str | None = None
    skipped: str | None = None
    outcome: JobOutcome | None = None
    driver: NodeEnv | None = None
    nodes: list[NodeEnv] = field(default_factory=list)

    @property
    def head(self) -> NodeEnv | None:
        found = [n for n in self.nodes if n.is_head and n.error is None]
        return found[0] if found else (self.driver if self.driver and self.driver.error is None else None)


def _env(node_id: str, raw: dict[str, Any]) -> NodeEnv:
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


def run_deep_probe(ctx: CheckContext) -> DeepProbe:
    """Run the probe job once; fill ``ctx.head().packages`` from the head node's answer. Never raises."""
    head_facts = ctx.head()
    if ctx.dashboard is None or not head_facts.live:
        return DeepProbe(skipped="the cluster is not reachable (see head.source)")
    try:
        outcome = run_probe_job(ctx.dashboard, DEEP_PROBE, limit_s=JOB_LIMIT_S, name="deep")
    except JobError as exc:
        return DeepProbe(error=f"the probe job could not be submitted: {exc.message}")
    except DashboardError as exc:
        return DeepProbe(error=f"the Jobs API did not answer: {exc.message}")
    probe = DeepProbe(outcome=outcome)
    payload = outcome.payload
    if not outcome.ok or not isinstance(payload, dict):
        probe.error = f"the probe job {outcome.status.lower()} after {outcome.duration_s:.1f} s" + (
            f": {outcome.message}" if outcome.message else ""
        )
        return probe
    driver = payload.get("driver") or {}
    probe.driver = _env(str(driver.get("node_id") or "driver"), {**driver, "is_head": False, "ip": "job driver"})
    probe.nodes = sorted(
        (_env(nid, raw) for nid, raw in (payload.get("nodes") or {}).items()), key=lambda n: (not n.is_head, n.node_id)
    )
    head = probe.head
    if head is not None:
        head_facts.packages = dict(head.packages)
    return probe


# ---------------------------------------------------------------- comparisons


def diff_packages(a: dict[str, str], b: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, a's version, b's version) for packages both have at different versions."""
    return [(name, a[name], b[name]) for name in sorted(set(a) & set(b)) if a[name] != b[name]]


def _pairs(diffs: list[tuple[str, str, str]], left: str, right: str) -> list[str]:
    return [f"{name}: {va} {left}, {vb} {right}" for name, va, vb in diffs]


def _probe_result(ctx: CheckContext) -> tuple[DeepProbe | None, Result | None]:
    """The shared probe, or the result that explains why there is none."""
    try:
        probe = ctx.deep_probe()
    except Exception as exc:  # a bug in the probe must still be reported once, here
        return None, result(
            "deep.probe", "deep", "Deep probe job", Status.ERROR, f"crashed: {type(exc).__name__}: {exc}"
        )
    if probe.skipped:
        return probe, result("deep.probe", "deep", "Deep probe job", Status.SKIP, probe.skipped)
    if probe.error:
        details = []
        if probe.outcome is not None:
            details = (
                [f"job {probe.outcome.submission_id}: {probe.outcome.status}"]
                + probe.outcome.log_tail()
                + probe.outcome.notes
            )
        return probe, result(
            "deep.probe",
            "deep",
            "Deep probe job",
            Status.FAIL,
            probe.error,
            details=details,
            fix=Remediation(
                "The head must run `python` with Ray on its PATH for jobs (REFERENCE §8); read the job log above.",
                ("ray job list",),
            ),
        )
    return probe, None


def check_probe(ctx: CheckContext) -> Result:
    probe, failed = _probe_result(ctx)
    if failed is not None:
        return failed
    assert probe is not None and probe.outcome is not None
    answered = [n for n in probe.nodes if n.error is None]
    head = probe.head
    summary = (
        f"{len(answered)} of {len(probe.nodes)} node(s) answered in {probe.outcome.duration_s:.1f} s; head: Python "
        f"{head.python if head else '?'}, Ray {head.ray if head else '?'}, {len(head.packages) if head else 0} packages"
    )
    details = [
        f"job {probe.outcome.submission_id}: {probe.outcome.status}"
        + ("" if probe.outcome.deleted else " (not deleted)")
    ]
    details += [
        f"{n.name}: " + (n.error or f"Python {n.python}, Ray {n.ray}, {len(n.packages)} packages, {n.executable}")
        for n in probe.nodes
    ]
    details += probe.outcome.notes
    data = {
        "duration_s": round(probe.outcome.duration_s, 3),
        "nodes": [
            {
                "node_id": n.node_id,
                "ip": n.ip,
                "head": n.is_head,
                "python": n.python,
                "ray": n.ray,
                "packages": len(n.packages),
                "error": n.error,
            }
            for n in probe.nodes
        ],
    }
    status = Status.OK if len(answered) == len(probe.nodes) and probe.nodes else Status.WARN
    fix = None
    if status is Status.WARN:
        fix = Remediation(
            "A node did not run the probe task in time: look at it with `ray status` and its raylet logs.",
            ("ray status",),
        )
    return result("deep.probe", "deep", "Deep probe job", status, summary, details=details, fix=fix, data=data)


def check_local(ctx: CheckContext) -> Result:
    """The local env against the head's worker env: same Python, Ray, and package versions."""
    title = "Local env vs the head"
    probe, failed = _probe_result(ctx)
    if failed is not None:
        return result("deep.local", "deep", title, Status.SKIP, "no answer from the probe job (see deep.probe)")
    assert probe is not None
    head = probe.head
    local = ctx.local_or_none()
    if head is None or local is None:
        return result(
            "deep.local",
            "deep",
            title,
            Status.SKIP,
            "the head's env is unknown (see deep.probe)"
            if head is None
            else "the local interpreter could not be inspected",
        )
    problems = []
    if head.python != local.python:
        problems.append(f"Python {local.python} locally, {head.python} on the head")
    if head.ray != local.ray:
        problems.append(f"Ray {local.ray or 'not installed'} locally, {head.ray} on the head")
    diffs = [d for d in diff_packages(local.distributions, head.packages) if d[0] != "ray"]
    only_local = sorted(set(local.distributions) - set(head.packages))
    details = problems + _pairs(diffs, "locally", "on the head")
    if only_local:
        details.append(
            f"{len(only_local)} installed locally but not on the head: {', '.join(only_local[:20])}"
            + (" …" if len(only_local) > 20 else "")
        )
    data = {"version_differences": [{"name": n, "local": a, "head": b} for n, a, b in diffs], "only_local": only_local}
    if not problems and not diffs:
        both = len(set(local.distributions) & set(head.packages))
        return result(
            "deep.local",
            "deep",
            title,
            Status.OK,
            f"every package installed on both sides has the same version ({both} compared)",
            details=details,
            data=data,
        )
    shown = problems + [f"{n} {a} ≠ {b}" for n, a, b in diffs[:SHOW]]
    more = len(problems) + len(diffs) - len(shown)
    summary = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    pins = " ".join(f"{n}=={b}" for n, _, b in diffs[:SHOW])
    commands = [f"{local.executable} -m pip install {pins}"] if pins else []
    return result(
        "deep.local",
        "deep",
        title,
        Status.WARN,
        f"{len(problems) + len(diffs)} difference(s) from the head: {summary}",
        details=details,
        data=data,
        fix=Remediation(
            "Install the head's versions locally (objects pickled by one version and loaded by another "
            "break); raydoctor fix builds an env that matches the head.",
            tuple(commands + [raydoctor_fix(ctx.options)]),
        ),
    )


def check_nodes(ctx: CheckContext) -> Result:
    """Every node against the head, and the job driver's `python` against the head's workers."""
    title = "Nodes alike"
    probe, failed = _probe_result(ctx)
    if failed is not None:
        return result("deep.nodes", "deep", title, Status.SKIP, "no answer from the probe job (see deep.probe)")
    assert probe is not None
    head = probe.head
    if head is None:
        return result("deep.nodes", "deep", title, Status.SKIP, "the head's env is unknown (see deep.probe)")
    fails: list[str] = []
    warns: list[str] = []
    details: list[str] = []
    for node in probe.nodes:
        if node is head:
            continue
        if node.error:
            warns.append(f"{node.name} did not answer: {node.error}")
            continue
        if node.python != head.python or node.ray != head.ray:
            fails.append(
                f"{node.name} runs Python {node.python}, Ray {node.ray}; the head runs Python {head.python}, Ray {head.ray}"
            )
        diffs = diff_packages(head.packages, node.packages)
        missing = sorted(set(head.packages) - set(node.packages))
        extra = sorted(set(node.packages) - set(head.packages))
        if diffs or missing or extra:
            parts = [f"{len(diffs)} package version(s) differ from the head"] if diffs else []
            parts += [f"{len(missing)} missing"] if missing else []
            parts += [f"{len(extra)} not on the head"] if extra else []
            warns.append(f"{node.name}: " + ", ".join(parts))
            details += [f"  {node.name}: " + line for line in _pairs(diffs, "on the head", "there")]
            if missing:
                details.append(f"  {node.name}: missing {', '.join(missing[:20])}")
            if extra:
                details.append(
                    f"  {node.name}: not on the head: {', '.join(f'{n} {node.packages[n]}' for n in extra[:20])}"
                )
    driver = probe.driver
    if (
        driver is not None
        and driver.error is None
        and (driver.python != head.python or driver.executable != head.executable)
    ):
        warns.append(
            f"a job's `python` is {driver.executable} (Python {driver.python}) but the head's workers run "
            f"{head.executable} (Python {head.python}): start the head with its env's bin/ first on PATH"
        )
    others = len(probe.nodes) - 1
    data = {"nodes": len(probe.nodes), "fails": fails, "warns": warns}
    if fails:
        return result(
            "deep.nodes",
            "deep",
            title,
            Status.FAIL,
            "; ".join(fails[:3]),
            details=fails + warns + details,
            data=data,
            fix=Remediation("Run the same image (same Ray and Python, to the patch) on every node (REFERENCE §5).", ()),
        )
    if warns:
        return result(
            "deep.nodes",
            "deep",
            title,
            Status.WARN,
            "; ".join(warns[:3]),
            details=warns + details,
            data=data,
            fix=Remediation(
                "Build every node from one image, and install extra packages through the image or a "
                "runtime_env, not by hand on one node.",
                (),
            ),
        )
    if others <= 0:
        return result("deep.nodes", "deep", title, Status.OK, "one node (the head): nothing to compare", data=data)
    return result(
        "deep.nodes",
        "deep",
        title,
        Status.OK,
        f"{others} worker node(s) run the head's Python {head.python}, Ray {head.ray} and the same packages",
        data=data,
    )


def _start(ctx: CheckContext) -> None:
    try:
        ctx.deep_probe()
    except Exception:
        pass  # reported by deep.probe


def checks_for(ctx: CheckContext) -> list[Check]:
    if not ctx.options.deep or ctx.target.address is None:
        return []
    # Start the job now: packages.head and the checks below all wait for this one answer.
    threading.Thread(target=_start, args=(ctx,), daemon=True, name="deep-probe").start()
    limit = JOB_LIMIT_S + 20
    return [
        Check("deep.probe", "deep", "Deep probe job", check_probe, timeout=limit),
        Check("deep.local", "deep", "Local env vs the head", check_local, timeout=limit),
        Check("deep.nodes", "deep", "Nodes alike", check_nodes, timeout=limit),
    ]
