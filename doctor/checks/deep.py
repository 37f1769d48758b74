"""``--deep``: judge what the probe job found installed on every node.

The probe itself is a fact (``doctor.facts.cluster.run_deep_probe``), run once per check and shared
through ``CheckContext.deep_probe()``; ``packages.head`` reads the head's packages from it through
``CheckContext.head_packages()``. Differences from the local env and between nodes are findings:
objects pickled with one version of a package and loaded with another break in ways that look like
user bugs.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from doctor import remedies
from doctor.facts.cluster import PROBE_MAX_BYTES, DeepProbe, NodeEnv, probe_limits
from doctor.model import Remediation, Result, Status, finding
from doctor.runner import Check

if TYPE_CHECKING:
    from collections.abc import Mapping

    from doctor.context import CheckContext

__all__ = ["DeepProbe", "NodeEnv", "checks_for", "judge_local_vs_head", "judge_nodes_alike", "judge_probe_job"]

SHOW = 8  # differences listed in a summary


# ---------------------------------------------------------------- comparisons


def diff_packages(a: Mapping[str, str], b: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(name, a's version, b's version) for packages both have at different versions."""
    return [(name, a[name], b[name]) for name in sorted(set(a) & set(b)) if a[name] != b[name]]


def _pairs(diffs: list[tuple[str, str, str]], left: str, right: str) -> list[str]:
    return [f"{name}: {va} {left}, {vb} {right}" for name, va, vb in diffs]


PROBE_TITLE = "Probe job answered on every node"


def _probe_result(ctx: CheckContext) -> tuple[DeepProbe | None, Result | None]:
    """The shared probe, or the finding (of deep.probe) that explains why there is none."""
    try:
        probe = ctx.deep_probe()
    except Exception as exc:  # a bug in the probe must still be reported once, here
        return None, finding(Status.ERROR, f"crashed: {type(exc).__name__}: {exc}", code="deep.probe.crashed")
    if probe.skipped:
        return probe, finding(Status.SKIP, probe.skipped, code="deep.probe.unreachable")
    if probe.error:
        details: list[str] = []
        if probe.outcome is not None:
            details = (
                [f"job {probe.outcome.submission_id}: {probe.outcome.status}"]
                + probe.outcome.log_tail()
                + probe.outcome.notes
            )
        return probe, finding(
            Status.FAIL,
            probe.error,
            code="deep.probe.job_failed",
            details=details,
            fix=Remediation(
                # The job's entrypoint is a shell command on the head (ray/dashboard/modules/job/
                # job_manager.py::JobManager.submit_job): its `python` must have Ray.
                "The head must run `python` with Ray on its PATH for jobs; read the job log above.",
                ("ray job list",),
            ),
        )
    return probe, None


def judge_probe_job(ctx: CheckContext) -> Result:
    """Whether every alive node answered the probe, and what the head runs."""
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
    silent = probe.silent
    broken = [n for n in probe.nodes if n.error is not None and not n.silent]
    if silent:
        summary += f"; no answer within {probe.task_limit_s:g} s from " + _names(silent)
    if broken:
        summary += "; the probe task failed on " + _names(broken)
    details = [
        f"job {probe.outcome.submission_id}: {probe.outcome.status}"
        + ("" if probe.outcome.deleted else " (not deleted)")
    ]
    details += [
        f"{n.name}: " + (n.error or f"Python {n.python}, Ray {n.ray}, {len(n.packages)} packages, {n.executable}")
        for n in probe.nodes
    ]
    details += probe.outcome.notes
    if probe.left_out:
        details.append(
            f"{probe.left_out} node record(s) left out: the probe's answer is capped at "
            f"{PROBE_MAX_BYTES // 1024} KiB (the head, silent nodes and nodes on another env come first)"
        )
    data = {
        "duration_s": round(probe.outcome.duration_s, 3),
        "task_limit_s": probe.task_limit_s,
        "silent": [n.node_id for n in silent],
        "left_out": probe.left_out,
        "nodes": [
            {
                "node_id": n.node_id,
                "ip": n.ip,
                "head": n.is_head,
                "python": n.python,
                "ray": n.ray,
                "packages": len(n.packages),
                "error": n.error,
                "silent": n.silent,
                "answered_s": n.answered_s,
            }
            for n in probe.nodes
        ],
    }
    if len(answered) == len(probe.nodes) and probe.nodes and not probe.left_out:
        return finding(Status.OK, summary, code="deep.probe.answered", details=details, data=data)
    return finding(
        Status.WARN,
        summary,
        code="deep.probe.node_silent",
        details=details,
        fix=Remediation(
            "A node did not run the probe task in time: look at it with `ray status` and its raylet logs.",
            _ray_status(ctx),
        ),
        data=data,
    )


def _names(nodes: tuple[NodeEnv, ...] | list[NodeEnv], show: int = 3) -> str:
    """``worker 1a2b3c4d5e6f (10.0.0.7), …``: the nodes a summary names, and how many more."""
    shown = ", ".join(n.name for n in nodes[:show])
    return shown + (f" and {len(nodes) - show} more" if len(nodes) > show else "")


def _ray_status(ctx: CheckContext) -> tuple[str, ...]:
    local = ctx.local_or_none()
    return remedies.ray_status(local.executable if local is not None and local.ray else None, ctx.target.address)


def judge_local_vs_head(ctx: CheckContext) -> Result:
    """The local env against the head's worker env: same Python, Ray, and package versions."""
    probe, failed = _probe_result(ctx)
    if failed is not None:
        return finding(Status.SKIP, "no answer from the probe job (see deep.probe)", code="deep.local.no_probe")
    assert probe is not None
    head = probe.head
    local = ctx.local_or_none()
    if head is None:
        return finding(Status.SKIP, "the head's env is unknown (see deep.probe)", code="deep.local.head_unknown")
    if local is None:
        return finding(Status.SKIP, "the local interpreter could not be inspected", code="deep.local.local_unknown")
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
        return finding(
            Status.OK,
            f"every package installed on both sides has the same version ({both} compared)",
            code="deep.local.same",
            details=details,
            data=data,
        )
    shown = problems + [f"{n} {a} ≠ {b}" for n, a, b in diffs[:SHOW]]
    more = len(problems) + len(diffs) - len(shown)
    summary = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    pins = " ".join(f"{n}=={b}" for n, _, b in diffs[:SHOW])
    pins_list = [f"{n}=={b}" for n, _, b in diffs[:SHOW]]
    from doctor.checks.basics import fix_commands, python_passes

    # pip only into an interpreter that can pass Ray's Python rule; fix only where it knows what to build.
    pip = pins and python_passes(ctx, local)
    commands = [shlex.join([local.executable, "-m", "pip", "install", *pins_list])] if pip else []
    return finding(
        Status.WARN,
        f"{len(problems) + len(diffs)} difference(s) from the head: {summary}",
        code="deep.local.differs",
        details=details,
        data=data,
        fix=Remediation(
            "Install the head's versions locally (objects pickled by one version and loaded by another "
            "break); raydoctor fix builds an env that matches the head.",
            tuple(commands + list(fix_commands(ctx))),
        ),
    )


def judge_nodes_alike(ctx: CheckContext) -> Result:
    """Every node against the head, and the job driver's `python` against the head's workers."""
    probe, failed = _probe_result(ctx)
    if failed is not None:
        return finding(Status.SKIP, "no answer from the probe job (see deep.probe)", code="deep.nodes.no_probe")
    assert probe is not None
    head = probe.head
    if head is None:
        return finding(Status.SKIP, "the head's env is unknown (see deep.probe)", code="deep.nodes.head_unknown")
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
        if node.packages_dropped or head.packages_dropped:
            details.append(f"  {node.name}: packages not compared (left out of the probe's capped answer)")
            continue
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
        return finding(
            Status.FAIL,
            "; ".join(fails[:3]),
            code="deep.nodes.version_mismatch",
            details=fails + warns + details,
            data=data,
            fix=Remediation(
                # Ray refuses a node whose Ray or Python differs from the head's
                # (ray/_private/utils.py::check_version_info), and pickles need the same packages.
                "Run the same image (same Ray and Python, to the patch) on every node.",
                (),
            ),
        )
    if warns:
        return finding(
            Status.WARN,
            "; ".join(warns[:3]),
            code="deep.nodes.packages_differ",
            details=warns + details,
            data=data,
            fix=Remediation(
                "Build every node from one image, and install extra packages through the image or a "
                "runtime_env, not by hand on one node.",
                (),
            ),
        )
    if others <= 0:
        return finding(Status.OK, "one node (the head): nothing to compare", code="deep.nodes.single", data=data)
    return finding(
        Status.OK,
        f"{others} worker node(s) run the head's Python {head.python}, Ray {head.ray} and the same packages",
        code="deep.nodes.alike",
        data=data,
    )


def checks_for(ctx: CheckContext) -> list[Check]:
    if not ctx.options.deep or ctx.target.address is None:
        return []
    # The job itself was started by CheckContext.prefetch: these checks all wait for its one answer.
    limit = probe_limits(ctx.options.timeout)[1] + 20
    return [
        Check("deep.probe", "deep", PROBE_TITLE, judge_probe_job, timeout=limit),
        Check("deep.local", "deep", "Local env matches the head's", judge_local_vs_head, timeout=limit),
        Check("deep.nodes", "deep", "Nodes run the same env", judge_nodes_alike, timeout=limit),
    ]
