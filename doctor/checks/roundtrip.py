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

import re
import shlex
from dataclasses import dataclass
from typing import Any

from doctor import ray_bugs, remedies
from doctor.checks.network import PortSpec, probe
from doctor.context import CheckContext
from doctor.facts.roundtrip import (  # noqa: F401  (re-exported: tests and callers use them from here)
    LIMIT_S,
    PROBE_SCRIPT,
    ProbeRun,
    Started,
    cancel_probe,
    finish_probe,
    probe_env,
    run_probe,
    start_probe,
)
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.head.resolve import AUTH_KINDS
from doctor.local.interpreter import InterpreterError
from doctor.model import Remediation, Result, Status, finding
from doctor.rules import judge_python, judge_ray
from doctor.runner import Check

TITLE = "Round trip works (ray.init + one task)"
# The failure matched a row of Ray's own known bugs (doctor.ray_bugs) and no cause of its own.
KNOWN_RAY_BUG = "known_ray_bug"  # code: roundtrip.client.known_ray_bug
CLIENT_LOGS = "ray_client_server*"
LOG_LINES = 50


# The head's Ray Client server crashed forking the per-client server (doctor.ray_bugs
# client_server_fork_crash): seen on the first client of a freshly started head, while the next
# connections worked (3 of 5 fresh starts with today's grpcio). One more try tells a transient from a
# head that crashes every time.
FORK_CRASH = "grpc_fork"


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
            FORK_CRASH,
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
    address = ctx.client_address()  # the client port the head reports, where the user named none
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
        ctx.cancel_roundtrip()  # the context may have started it early (CheckContext._roundtrip_early)
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
        ctx.start_roundtrip()  # the context's one run (doctor.facts.roundtrip): head facts may use it too
    except InterpreterError as exc:
        return _skip(f"the local interpreter could not be started: {exc}", "no_interpreter", reason="no_interpreter")
    try:
        local = ctx.local()
        reason = None
        refused = ctx.head().live_error_kind
        if refused in AUTH_KINDS:
            # The dashboard refused the token (or got none): Ray's gRPC servers check the same token, and a
            # refused Ray Client only waits for its time-out (a wrong RAY_AUTH_TOKEN against a Ray 2.60 head:
            # "no answer within 20 s", tests/test_compose_token_real.py). head.source says which and why.
            reason = (
                f"ray.init would be refused as the dashboard refused this run ({refused}): see head.source",
                "token_refused",
                "token_refused",
            )
        elif local.ray is None:
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
        ctx.cancel_roundtrip()
        raise
    if reason is not None:
        ctx.cancel_roundtrip()
        return _skip(reason[0], reason[2], reason=reason[1])
    try:
        run = ctx.roundtrip()
    except InterpreterError as exc:
        return _skip(f"the local interpreter could not be started: {exc}", "no_interpreter", reason="no_interpreter")
    if run.result is not None:
        return _success(ctx, run)
    failed = _failure(ctx, run)
    if failed.data.get("cause") != FORK_CRASH:
        return failed
    return _after_transient(ctx, failed)


def _after_transient(ctx: CheckContext, failed: Result) -> Result:
    """Try once more after the known transient; a second success is a warning that keeps the head-side fix."""
    try:
        again = ctx.roundtrip_again()
    except InterpreterError:
        return failed
    if again.result is None:
        failed.details.append("a second connection failed too: the crash is not only the first client's")
        return failed
    worked = _success(ctx, again)
    return finding(
        Status.WARN,
        "the head's Ray Client server crashed on the first connection (a gRPC fork-support crash, a known "
        f"transient of a fresh head); a second connection worked: {worked.summary}",
        code="roundtrip.client.fork_crash_transient",
        details=[*failed.details, "second try: " + worked.summary, *worked.details],
        fix=failed.remediation,
        data={**failed.data, "second_try": worked.data},
    )


def _client_url(ctx: CheckContext, run: ProbeRun) -> str:
    """The address the probe dialled (the client port the head reports, where the user named none)."""
    if run.url:
        return run.url
    return ctx.target.address.client_url if ctx.target.address else "ray://?"


def _success(ctx: CheckContext, run: ProbeRun) -> Result:
    data = run.result or {}
    worker = data.get("worker") or {}
    t = data.get("timings") or {}
    node = str(worker.get("node_id") or "?")
    summary = (
        f"{_client_url(ctx, run)} answered in {run.elapsed_s:.1f} s: worker Python {worker.get('python')}, "
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
    bugs = known_bugs(ctx, run, client_text + "\n" + server_text)
    if cause is None and bugs:
        cause = _bug_cause(ctx, bugs[0])
    url = _client_url(ctx, run)
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
    details += [f"known Ray bug {bug.key} (Ray {bug.affects or 'any'}): {bug.source}" for bug in bugs]
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
            "ray_bugs": [{"key": bug.key, "affects": bug.affects, "source": bug.source} for bug in bugs],
        },
    )


def known_bugs(ctx: CheckContext, run: ProbeRun, text: str) -> list[ray_bugs.RayBug]:
    """The rows of Ray's known bugs (``doctor.ray_bugs``) this failure shows, for the head's Ray."""
    facts = set()
    if run.killed or ray_bugs.CLIENT_TIMEOUT_TEXT.search(text):
        facts.add(ray_bugs.TIMED_OUT)
    address = ctx.target.address  # as the user gave it: ray://host:6379 names the GCS port as the client's
    if address is not None and address.client_port == address.gcs_port:
        facts.add(ray_bugs.CLIENT_PORT_IS_GCS)
    try:
        head_ray = ctx.head().ray_version
    except Exception:
        head_ray = None
    local = ctx.local_or_none()
    return ray_bugs.recognise(text, head_ray or (local.ray if local else None), facts)


def _bug_cause(ctx: CheckContext, bug: ray_bugs.RayBug) -> Cause:
    """A known Ray bug as the failure's cause; its pins (setuptools<81) as a command into the judged env."""
    local = ctx.local_or_none()
    commands = (shlex.join([local.executable, "-m", "pip", "install", *bug.pins]),) if bug.pins and local else ()
    return Cause(
        bug.key,
        f"a known Ray bug ({bug.key}): {bug.symptom}",
        Remediation(bug.remedy[:1].upper() + bug.remedy[1:] + ".", commands),
        code=KNOWN_RAY_BUG,
    )


def checks_for(ctx: CheckContext) -> list[Check]:
    if ctx.target.address is None:
        return []
    # The subprocess is killed at LIMIT_S; the facts it waits for are bounded by their own timeouts.
    return [Check("roundtrip.client", "roundtrip", TITLE, roundtrip, timeout=LIMIT_S + 30)]
