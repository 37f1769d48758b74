"""The round trip: what the user's own script would do, run inside the judged interpreter.

``ray.init("ray://host:client-port")`` and one remote task, in a subprocess
under a hard time limit (its process group is killed): Ray's own client waits
~30 s before it gives up (``ray/util/client/worker.py::Worker._connect_channel``
retries with a growing timeout), raydoctor does not. It is skipped,
with the reason, when Ray's version rules already say it cannot work or when
the client port does not speak gRPC. When it fails, the tail of the head's Ray
Client server logs (dashboard log API) is read and known causes are named.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor import proc, remedies
from doctor.checks.network import PortSpec, probe
from doctor.context import CheckContext
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.local.interpreter import InterpreterError
from doctor.model import Remediation, Result, Status, finding
from doctor.rules import judge_python, judge_ray
from doctor.runner import Check

PROBE_SCRIPT = Path(__file__).with_name("roundtrip_probe.py").read_text(encoding="utf-8")
# A healthy round trip takes ~4.5 s (import 0.6 + init 3.3 + task 0.2, measured against Ray 2.49.2 on loopback;
# tests/test_roundtrip.py::test_round_trip_reports_the_worker records the timings); twice that
# on a loaded laptop. Past this, the connection is not going to work: kill it.
LIMIT_S = 20.0
TITLE = "Round trip works (ray.init + one task)"
CLIENT_LOGS = "ray_client_server*"
LOG_LINES = 50


@dataclass
class ProbeRun:
    """What the subprocess printed and how it ended."""

    returncode: int | None
    killed: bool
    elapsed_s: float
    phase: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stderr_tail: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Cause:
    """A known reason for a failed round trip and what fixes it."""

    key: str  # data["cause"]
    summary: str
    remediation: Remediation
    code: str = ""  # the finding's code after "roundtrip.client."; the key when empty

    def __post_init__(self) -> None:
        if not self.code:
            object.__setattr__(self, "code", self.key)


# ---------------------------------------------------------------- the subprocess


def probe_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's environment without RAY_ADDRESS: the probe names its address explicitly.

    The Ray token stays (``proc.child_env(with_token=True)``): the probe must ``ray.init`` a
    cluster that asks for it, like the user's own script. ``PYTHONPATH`` stays too (what the
    user's scripts import); ``PYTHONSAFEPATH`` keeps ``''`` off ``sys.path`` on Python 3.11+.
    """
    env = proc.child_env(environ, with_token=True)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


@dataclass
class Started:
    """A running probe: its process (own process group), its empty working folder, when it started."""

    popen: subprocess.Popen[bytes]
    started: float
    folder: tempfile.TemporaryDirectory[str]
    argv: list[str]

    def close(self) -> None:
        self.folder.cleanup()


def start_probe(python: str, client_url: str, environ: Mapping[str, str]) -> Started:
    """Start the probe in its own process group, from an empty temporary folder.

    Not the current folder: a cloned repo's ``ray/`` or ``json.py`` there would run inside the
    probe (the script also drops the folder from ``sys.path`` first thing: see roundtrip_probe.py).
    Raises ``InterpreterError`` when ``python`` cannot be started.
    """
    exe = os.path.abspath(python) if os.sep in python else python
    argv = [exe, "-c", PROBE_SCRIPT, client_url]
    folder = tempfile.TemporaryDirectory(prefix="raydoctor-roundtrip-")
    try:
        popen = proc.spawn(argv, env=probe_env(environ), cwd=folder.name)
    except OSError as exc:
        folder.cleanup()
        raise InterpreterError(f"{python} cannot run: {exc.strerror or exc}") from None
    return Started(popen, time.perf_counter(), folder, argv)


def finish_probe(run: Started, limit_s: float = LIMIT_S) -> ProbeRun:
    """Wait until ``started + limit_s`` at most; then stop the process group (``proc.wait``)."""
    killed = False
    try:
        done = proc.wait(run.popen, timeout=max(0.0, run.started + limit_s - time.perf_counter()), argv=run.argv)
        out, err, code = done.stdout, done.stderr, done.returncode
    except proc.ProcTimeout as exc:
        killed = True
        out, err, code = exc.stdout, exc.stderr, None
    finally:
        run.close()
    probe_run = ProbeRun(None if killed else code, killed, time.perf_counter() - run.started)
    for line in out.splitlines():
        kind, _, payload = line.partition(" ")
        if not kind.startswith("RAYDOCTOR_"):
            continue
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if kind == "RAYDOCTOR_PHASE":
            probe_run.phase = data.get("phase")
        elif kind == "RAYDOCTOR_RESULT":
            probe_run.result = data
        elif kind == "RAYDOCTOR_ERROR":
            probe_run.error = data
    probe_run.stderr_tail = [line for line in err.strip().splitlines() if line.strip()][-20:]
    return probe_run


def run_probe(python: str, client_url: str, environ: Mapping[str, str], limit_s: float = LIMIT_S) -> ProbeRun:
    """Run the probe; stop its whole process group at ``limit_s``."""
    return finish_probe(start_probe(python, client_url, environ), limit_s)


def cancel_probe(run: Started) -> None:
    """Stop a probe that is no longer wanted, and everything it started."""
    proc.stop_group(run.popen)
    for stream in (run.popen.stdout, run.popen.stderr):
        if stream is not None:
            stream.close()
    run.close()


# ---------------------------------------------------------------- server-side logs


def head_node_id(dashboard: DashboardClient) -> str | None:
    for node in dashboard.nodes():
        if node.get("is_head_node") and node.get("node_id"):
            return str(node["node_id"])
    return None


def client_server_logs(dashboard: DashboardClient, lines: int = LOG_LINES) -> dict[str, str]:
    """Tails of the head's Ray Client server logs: the proxy's and the per-client servers' .err files.

    ``GET /api/v0/logs?node_id=..&glob=..`` lists them; ``/api/v0/logs/file`` reads a tail
    (checked against Ray 2.49.2). Returns {} when the head does not serve them.
    """
    node_id = head_node_id(dashboard)
    if not node_id:
        return {}
    body = dashboard.get_json(f"/api/v0/logs?node_id={node_id}&glob={CLIENT_LOGS}")
    listing = (body.get("data") or {}).get("result") or {} if isinstance(body, dict) else {}
    names = sorted(
        {
            name
            for files in listing.values()
            if isinstance(files, list)
            for name in files
            if isinstance(name, str) and name.startswith("ray_client_server")
        }
    )
    # The proxy's log, then the newest per-client servers (ports 23000+ count up per client).
    wanted = [n for n in names if n == "ray_client_server.err"]
    per_client = sorted(
        (n for n in names if re.fullmatch(r"ray_client_server_\d+\.(err|out)", n)),
        key=lambda n: int(re.findall(r"\d+", n)[0]),
        reverse=True,
    )
    wanted += [n for n in per_client if n.endswith(".err")][:2]
    tails: dict[str, str] = {}
    for name in wanted:
        try:
            resp = dashboard.request("GET", f"/api/v0/logs/file?node_id={node_id}&filename={name}&lines={lines}")
        except DashboardError:
            continue
        if resp.status_code == 200 and resp.text.strip():
            tails[name] = resp.text
    return tails


# ---------------------------------------------------------------- known causes

_FORK = re.compile(r"initialized_cv|fork_posix|Fork support|fork\(\) handlers|forked process", re.I)
_SERVER_START_FAILED = re.compile(r"Starting Ray client server failed|SpecificServer .*(?:failed|died)", re.I)
_VERSION = re.compile(r"Version mismatch|Python minor versions differ|Client Ray installation incompatible", re.I)
_NO_GRPC = re.compile(r"No module named '?grpc|ray\[client\]|requires pip package .*client", re.I)


def _env_with_ray(ctx: CheckContext) -> str | None:
    local = ctx.local_or_none()
    return local.executable if local is not None and local.ray else None


def _version_fix(ctx: CheckContext, head_ray: str, exe: str) -> tuple[str, ...]:
    """``raydoctor fix`` where fix knows what to build; pip only into an interpreter that can pass Ray's Python rule."""
    from doctor.checks.basics import fix_commands, python_passes

    local = ctx.local_or_none()
    pip = (remedies.pip_install_ray(head_ray, exe),) if local is not None and python_passes(ctx, local) else ()
    return fix_commands(ctx) + pip


def diagnose(ctx: CheckContext, client_text: str, server_text: str) -> Cause | None:
    """Name the cause from what the client said and what the head's client server logged."""
    head_ray = ctx.head().ray_version or "<head's Ray>"
    local = ctx.local_or_none()
    exe = local.executable if local else "python"
    both = client_text + "\n" + server_text
    if _VERSION.search(both):
        return Cause(
            "version_mismatch",
            "Ray Client refused the connection: the versions differ (Ray must be equal, Python major.minor too)",
            Remediation(
                f"Use Ray {head_ray} and the head's Python locally.",
                _version_fix(ctx, head_ray, exe),
            ),
        )
    if _NO_GRPC.search(client_text):
        return Cause(
            "client_extra_local",
            "this interpreter lacks Ray's client extra (grpcio): ray:// cannot connect",
            Remediation(
                "Install Ray with the client extra in this env.",
                (shlex.join([exe, "-m", "pip", "install", f"ray[client]=={head_ray}"]),),
            ),
        )
    if _NO_GRPC.search(server_text):
        return Cause(
            "client_extra_head",
            "the head lacks Ray's client extra: its Ray Client server cannot start",
            Remediation(
                # A command for the head, not for here: in the sentence, never pasted on this machine.
                f"On the head, install ray[client] (or ray[default]): pip install 'ray[client]=={head_ray}'; "
                "or use a rayproject/ray image.",
                (),
            ),
        )
    if _FORK.search(server_text) or (_SERVER_START_FAILED.search(both) and "Check failed" in server_text):
        # Ray's proxier (ray/util/client/server/proxier.py) forks a SpecificServer per client; gRPC's
        # fork handlers (grpc's doc/fork_support.md, GRPC_ENABLE_FORK_SUPPORT) can abort it there.
        return Cause(
            "grpc_fork",
            "the head's Ray Client server crashed when it forked the per-client server (a gRPC fork-support crash)",
            Remediation(
                "Restart the head with GRPC_ENABLE_FORK_SUPPORT=0 in its environment (compose: "
                "`environment: [GRPC_ENABLE_FORK_SUPPORT=0]` on the head service), or pin the head's "
                "grpcio to a release without the fork crash.",
                (),  # the restart runs on the head (GRPC_ENABLE_FORK_SUPPORT=0 ray start --head …), not here
            ),
            code="fork_crash",
        )
    if _SERVER_START_FAILED.search(both):
        return Cause(
            "server_start_failed",
            "the head could not start a Ray Client server for this connection",
            Remediation(
                "Look at the head's ray_client_server_*.err; restart the head with GRPC_ENABLE_FORK_SUPPORT=0 "
                "if it shows a crash.",
                remedies.ray_status(exe if local and local.ray else None, ctx.target.address),
            ),
        )
    return None


# ---------------------------------------------------------------- the check


def _skip(summary: str, code: str, **data: Any) -> Result:
    return finding(Status.SKIP, summary, code=f"roundtrip.client.{code}", data=data)


def _versions_block(ctx: CheckContext) -> str | None:
    """Why Ray's own rules (Ray Client, whatever --mode says) would refuse this connection, if they do."""
    head = ctx.head()
    local = ctx.local()
    if head.ray_version:
        verdict = judge_ray(head.ray_version, local.ray, "client", ctx.environ)
        if verdict.status is Status.FAIL:
            return verdict.summary
    if head.python_version and head.python is not None:
        verdict = judge_python(
            head.python_version, head.python.exact, local.python, "client", head.ray_version, ctx.environ
        )
        if verdict.status is Status.FAIL:
            return verdict.summary
    return None


def roundtrip(ctx: CheckContext) -> Result:
    address = ctx.target.address
    assert address is not None, "registered only for targets with an address"
    if not ctx.options.roundtrip:
        return _skip("skipped (--no-roundtrip)", "disabled")
    if ctx.options.mode == "jobs":  # the Jobs API never opens a Ray Client connection
        return _skip(
            "not needed in jobs mode: the Jobs API runs the entrypoint on the cluster (see jobs.submit)", "jobs_mode"
        )
    # The client port first: a closed or silent port would keep Ray waiting ~30 s.
    spec = PortSpec("client", address.client_port, "grpc", "target")
    port = probe(spec, address.host, ctx.options.timeout)
    if not port.ok:
        what = {
            "silent": "accepts connections but never answers",
            "not_ray": f"answers but is not a Ray Client server ({port.detail})",
        }
        return _skip(
            f"the client port {address.host}:{address.client_port} {what.get(port.state, port.state)}; "
            "ray.init would only wait for Ray's 30 s time-out (see network.ports)",
            "port_unusable",
            reason="client_port",
            port=port.state,
        )
    # Start at once, while the facts that may veto it are still being gathered: the round trip is the
    # slowest check, and a vetoed probe is killed long before it has even imported Ray.
    try:
        running = start_probe(ctx.interpreter_path, address.client_url, ctx.child_environ())
    except InterpreterError as exc:
        return _skip(f"the local interpreter could not be started: {exc}", "no_interpreter", reason="no_interpreter")
    try:
        local = ctx.local()
        reason = None
        if local.ray is None:
            reason = (f"Ray is not installed in {local.executable}", "no_ray", "no_local_ray")
        else:
            blocked = _versions_block(ctx)
            if blocked:
                reason = (
                    f"Ray Client would refuse this connection: {blocked} (see versions.*)",
                    "versions",
                    "versions_refused",
                )
    except InterpreterError as exc:
        reason = (f"the local interpreter could not be inspected: {exc}", "no_interpreter", "no_interpreter")
    except BaseException:
        cancel_probe(running)
        raise
    if reason is not None:
        cancel_probe(running)
        return _skip(reason[0], reason[2], reason=reason[1])
    run = finish_probe(running, LIMIT_S)
    if run.result is not None:
        return _success(ctx, run)
    return _failure(ctx, run)


def _client_url(ctx: CheckContext) -> str:
    return ctx.target.address.client_url if ctx.target.address else "ray://?"


def _success(ctx: CheckContext, run: ProbeRun) -> Result:
    data = run.result or {}
    worker = data.get("worker") or {}
    t = data.get("timings") or {}
    node = str(worker.get("node_id") or "?")
    summary = (
        f"{_client_url(ctx)} answered in {run.elapsed_s:.1f} s: worker Python {worker.get('python')}, "
        f"Ray {worker.get('ray')} on node {node[:12]}"
    )
    details = [
        f"import ray {t.get('import_s', 0):.2f} s, ray.init {t.get('init_s', 0):.2f} s, one task {t.get('task_s', 0):.2f} s "
        f"(process total {run.elapsed_s:.2f} s)",
        f"client: Python {data.get('client_python')}, Ray {data.get('client_ray')} ({ctx.local().executable})",
        f"worker host {worker.get('hostname')}, node {node}",
    ]
    return finding(
        Status.OK,
        summary,
        code="roundtrip.client.ok",
        details=details,
        data={"elapsed_s": round(run.elapsed_s, 3), "worker": worker, "timings": t},
    )


def _failure(ctx: CheckContext, run: ProbeRun) -> Result:
    err = run.error or {}
    client_text = "\n".join([str(err.get("type", "")) + ": " + str(err.get("message", ""))] + run.stderr_tail)
    server: dict[str, str] = {}
    notes: list[str] = []
    dashboard = ctx.dashboard
    if dashboard is not None and ctx.head().live:
        try:
            server = client_server_logs(dashboard)
        except DashboardError as exc:
            notes.append(f"the head's client server logs could not be read: {exc.message}")
    server_text = "\n".join(server.values())
    cause = diagnose(ctx, client_text, server_text)
    url = _client_url(ctx)
    if run.killed:
        what = f"{url}: no answer within {LIMIT_S:g} s (stuck in {run.phase or 'start-up'}); raydoctor stopped it"
    else:
        message = (
            " ".join(str(err.get("message", "")).split())[:300]
            if err
            else (run.stderr_tail[-1] if run.stderr_tail else "no output")
        )
        kind = err.get("type", f"exit {run.returncode}")
        what = f"{url} failed in {err.get('phase', run.phase) or 'start-up'} after {run.elapsed_s:.1f} s: {kind}: {message}"
    details = [what] + [f"client: {line}" for line in run.stderr_tail[-6:]]
    for name, text in server.items():
        tail = [line for line in text.strip().splitlines() if line.strip()][-8:]
        details += [f"head {name}: {line}" for line in tail]
    details += notes
    if cause is not None:
        summary = f"{cause.summary} ({url})"
        fix = cause.remediation
    else:
        summary = what
        fix = Remediation(
            "Read the client error and the head's ray_client_server*.err above; check that the head runs "
            "ray[client] and that nothing between here and the head cuts long-lived gRPC streams.",
            remedies.ray_status(_env_with_ray(ctx), ctx.target.address),
        )
    if cause is not None:
        code = cause.code
    elif run.killed:
        code = "timed_out"
    else:
        code = "failed"
    return finding(
        Status.FAIL,
        summary,
        code=f"roundtrip.client.{code}",
        details=details,
        fix=fix,
        data={
            "cause": cause.key if cause else None,
            "killed": run.killed,
            "phase": err.get("phase", run.phase),
            "elapsed_s": round(run.elapsed_s, 3),
            "server_logs": sorted(server),
        },
    )


def checks_for(ctx: CheckContext) -> list[Check]:
    if ctx.target.address is None:
        return []
    # The subprocess is killed at LIMIT_S; the facts it waits for are bounded by their own timeouts.
    return [Check("roundtrip.client", "roundtrip", TITLE, roundtrip, timeout=LIMIT_S + 30)]
