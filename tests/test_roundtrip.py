"""roundtrip.client: a real ray:// round trip, its skips, its hard limit, and the causes it recognises."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from doctor.app import run_check
from doctor.checks import roundtrip
from doctor.checks.roundtrip import ProbeRun
from doctor.context import Lazy
from doctor.head.facts import HeadFacts
from doctor.local.interpreter import LocalFacts
from doctor.model import Fact, Remediation, Result, Status, finding
from doctor.options import TargetOptions
from tests.fake_servers import FakeHTTP, GrpcLookalike, SilentPort, closed_port, json_answer
from tests.helpers import by_id, processes_mentioning, wait_for


def options(node, **kw):
    p = node.ports
    kw.setdefault("address", node.dashboard_url)
    kw.setdefault("gcs_port", p["gcs"])
    kw.setdefault("client_port", p["client"])
    return TargetOptions(**kw)


# ---------------------------------------------------------------- live


@pytest.mark.cluster
def test_round_trip_reports_the_worker(ray_head, head_python, clean_env, tmp_path):
    """One real round trip (they cost seconds): what came back, RAY_ADDRESS ignored, and the head's client logs."""
    from doctor.head.dashboard import DashboardClient
    from doctor.target import parse_address

    env = dict(clean_env, RAY_ADDRESS=f"127.0.0.1:{closed_port()}")  # must not redirect the probe
    start = time.perf_counter()
    report = run_check(options(ray_head, python=str(head_python)), environ=env, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    res = by_id(report, "roundtrip.client")
    assert res.status is Status.OK, (res.summary, res.details)
    assert res.code == "roundtrip.client.ok"
    assert "worker Python 3.12" in res.summary and "Ray 2.49.2" in res.summary
    worker = res.data["worker"]
    assert worker["ray"] == "2.49.2" and worker["node_id"]
    assert set(res.data["timings"]) == {"import_s", "init_s", "task_s"}
    assert elapsed < roundtrip.LIMIT_S + 5

    # The log API endpoints (list with a glob, read a tail) as Ray 2.49.2 serves them.
    client = DashboardClient(parse_address(ray_head.dashboard_url), timeout=5)
    assert roundtrip.head_node_id(client)
    tails = roundtrip.client_server_logs(client)
    assert "ray_client_server.err" in tails
    assert "Starting Ray Client server" in tails["ray_client_server.err"]


@pytest.mark.cluster
def test_versions_that_cannot_work_skip_before_connecting(ray_head, head_python, clean_env, tmp_path):
    """Ray's own rule (equal Ray for ray://) vetoes the probe; the subprocess started early is killed."""
    from doctor.context import CheckContext

    ctx = CheckContext(options(ray_head, python=str(head_python)), environ=clean_env, cwd=tmp_path)
    ctx._local = Lazy(
        lambda: LocalFacts(
            str(head_python),
            "3.12.1",
            "CPython",
            "x86_64",
            "Linux",
            "/p",
            "/p",
            "--python",
            {"ray": "2.40.0", "grpcio": "1.66.0"},
        )
    )
    start = time.perf_counter()
    res = roundtrip.roundtrip(ctx)
    assert time.perf_counter() - start < 5
    assert res.status is Status.SKIP and res.data["reason"] == "versions"
    assert res.code == "roundtrip.client.versions_refused"
    assert "Ray 2.40.0 locally ≠ Ray 2.49.2" in res.summary


# ---------------------------------------------------------------- skips, fast


def test_no_roundtrip_flag(clean_env, tmp_path):
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{closed_port()}", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    res = by_id(report, "roundtrip.client")
    assert res.status is Status.SKIP and "--no-roundtrip" in res.summary
    assert res.code == "roundtrip.client.disabled"


@pytest.mark.parametrize("kind", ["closed", "silent", "http"])
def test_client_port_that_cannot_answer_skips_fast(kind, clean_env, tmp_path, head_python):
    """Ray would wait ~30 s on these; raydoctor skips within the port timeout."""
    with SilentPort() as silent, FakeHTTP() as http:
        port = {"closed": closed_port(), "silent": silent.port, "http": http.port}[kind]
        start = time.perf_counter()
        report = run_check(
            TargetOptions(address=f"127.0.0.1:{closed_port()}", client_port=port, python=str(head_python)),
            environ=clean_env,
            cwd=tmp_path,
        )
        elapsed = time.perf_counter() - start
    res = by_id(report, "roundtrip.client")
    assert res.status is Status.SKIP and res.data["reason"] == "client_port"
    assert res.code == "roundtrip.client.port_unusable"
    assert "30 s" in res.summary
    assert elapsed < 5, f"{elapsed:.2f} s"
    # The silent and the HTTP port take connections, so the context started the probe early; it is gone.
    assert processes_mentioning(f"ray://127.0.0.1:{port}") == []


@pytest.mark.cluster
def test_the_round_trip_starts_before_the_checks_run(ray_head, head_python, clean_env, tmp_path):
    """The slowest fact starts in ``prefetch``, while the checks are built: by the time any check runs,
    the probe is already spawned (before, it waited for roundtrip.client's own turn)."""
    from doctor.context import CheckContext

    ctx = CheckContext(options(ray_head, python=str(head_python)), environ=clean_env, cwd=tmp_path, start_probe=True)
    try:
        ctx.prefetch()
        assert wait_for(lambda: ctx._rt_started.peek() is not None, timeout=10), "no early start"
        assert processes_mentioning(ray_head.client_url) != []
    finally:
        ctx.cancel_roundtrip()
    assert wait_for(lambda: processes_mentioning(ray_head.client_url) == [], timeout=10)
    assert ctx.roundtrip().killed  # cancelled: nothing waits for it, nothing is left running


@pytest.mark.cluster
def test_no_ray_locally_skips(ray_head, local_python311, clean_env, tmp_path):
    report = run_check(options(ray_head, python=local_python311), environ=clean_env, cwd=tmp_path)
    res = by_id(report, "roundtrip.client")
    assert res.status is Status.SKIP
    assert res.data["reason"] in {"no_ray", "versions"}


# ---------------------------------------------------------------- failures and their causes


@pytest.mark.cluster
def test_missing_client_extra_is_recognised(ray_head, head_python, clean_env, tmp_path):
    """grpc shadowed by an unimportable package: the client fails fast and the remedy is ray[client]."""
    shadow = tmp_path / "shadow" / "grpc"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n")
    env = dict(clean_env, PYTHONPATH=str(shadow.parent))
    report = run_check(options(ray_head, python=str(head_python)), environ=env, cwd=tmp_path)
    res = by_id(report, "roundtrip.client")
    assert res.status is Status.FAIL
    assert res.data["cause"] == "client_extra_local"
    assert res.code == "roundtrip.client.client_extra_local"
    assert any("ray[client]==2.49.2" in c for c in res.remediation.commands)


FORK_LOG = """\
2026-11-29 14:27:38,006	INFO proxier.py:697 -- New data connection from client 0253:
I1129 14:27:38.028726   22746 fork_posix.cc:71] Other threads are currently calling into gRPC, skipping fork() handlers
F1129 14:27:38.101 22769 ev_epoll1_linux.cc:1117] Check failed: next_worker->initialized_cv
2026-11-29 14:28:08,042	ERROR proxier.py:350 -- Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.
"""


def fake_dashboard(server_logs: dict[str, str]) -> FakeHTTP:
    """A dashboard that is live (Ray 2.49.2, Python 3.12.1) and serves the log API with these files."""
    node = "ab" * 28
    routes = {
        "/api/v0/cluster_metadata": json_answer(
            {"result": True, "data": {"rayVersion": "2.49.2", "pythonVersion": "3.12.1"}}
        ),
        "/api/v0/nodes": json_answer(
            {
                "data": {
                    "result": {
                        "result": [
                            {
                                "node_id": node,
                                "node_ip": "127.0.0.1",
                                "is_head_node": True,
                                "state": "ALIVE",
                                "resources_total": {"CPU": 1.0},
                            }
                        ]
                    }
                }
            }
        ),
        "/api/v0/logs": json_answer({"result": True, "data": {"result": {"internal": sorted(server_logs)}}}),
        "/api/gcs_healthz": (200, "text/plain", "success"),
    }

    def log_file(method, path, body):
        name = path.split("filename=")[1].split("&")[0]
        return (200, "text/plain", server_logs[name]) if name in server_logs else (404, "text/plain", "no such file")

    routes["/api/v0/logs/file"] = log_file
    return FakeHTTP(routes)


def test_fork_crash_on_the_head_is_named(head_python, clean_env, tmp_path, monkeypatch):
    """A client server that hangs (gRPC lookalike) is killed at the hard limit; the head's log names the fork crash."""
    monkeypatch.setattr(roundtrip, "LIMIT_S", 3.0)
    monkeypatch.setattr("doctor.context.ROUNDTRIP_LIMIT_S", 3.0)  # the round trip fact's own limit
    logs = {
        "ray_client_server.err": FORK_LOG,
        "ray_client_server_23000.err": "F1129 Check failed: next_worker->initialized_cv\n",
    }
    with fake_dashboard(logs) as dash, GrpcLookalike() as grpc:
        start = time.perf_counter()
        report = run_check(
            TargetOptions(address=dash.url, client_port=grpc.port, gcs_port=closed_port(), python=str(head_python)),
            environ=clean_env,
            cwd=tmp_path,
        )
        elapsed = time.perf_counter() - start
        asked = [path for _, path in dash.requests if path.startswith("/api/v0/logs/file")]
    res = by_id(report, "roundtrip.client")
    assert res.status is Status.FAIL, res.summary
    assert res.data["killed"] is True
    assert res.data["cause"] == "grpc_fork"
    assert res.code == "roundtrip.client.fork_crash"
    assert "fork" in res.summary
    assert "GRPC_ENABLE_FORK_SUPPORT=0" in res.remediation.text
    assert not res.remediation.commands  # the restart runs on the head: a sentence, not a command to paste here
    assert any("ray_client_server_23000.err" in p for p in asked)
    assert any("initialized_cv" in d for d in res.details)
    assert [bug["key"] for bug in res.data["ray_bugs"]] == ["client_server_fork_crash"]  # doctor.ray_bugs' row
    assert elapsed < 3.0 + 6


def _ctx(head_ray="2.49.2", local_ray="2.49.2"):
    head = HeadFacts(ray=Fact(head_ray, "dashboard"), python=Fact("3.12.9", "dashboard"))
    local = SimpleNamespace(executable="/venv/bin/python", ray=local_ray, python="3.12.9")
    return SimpleNamespace(
        head=lambda: head,
        local_or_none=lambda: local,
        options=TargetOptions(address="h:8265"),
        environ={"PATH": ""},
        target=SimpleNamespace(address=None),
    )


@pytest.mark.parametrize(
    "client, server, cause",
    [
        ("RuntimeError: Version mismatch: The cluster was started with:\n    Ray: 2.49.2", "", "version_mismatch"),
        ("ModuleNotFoundError: No module named 'grpc'", "", "client_extra_local"),
        (
            "ConnectionError: ray client connection timeout",
            "ModuleNotFoundError: No module named 'grpc'",
            "client_extra_head",
        ),
        ("ConnectionError: ray client connection timeout", FORK_LOG, "grpc_fork"),
        (
            "ConnectionError: Starting Ray client server failed. See ray_client_server_23000.err",
            "",
            "server_start_failed",
        ),
        ("ConnectionError: ray client connection timeout", "INFO all fine", None),
    ],
)
def test_diagnose(client, server, cause):
    found = roundtrip.diagnose(_ctx(), client, server)
    assert (found.key if found else None) == cause
    if found:
        assert found.remediation.text


def test_probe_output_is_parsed_after_a_kill(tmp_path):
    """The hard limit kills the process group and keeps the phase reached so far."""
    script = tmp_path / "python"
    script.write_text('#!/bin/sh\necho \'RAYDOCTOR_PHASE {"phase": "init"}\'\nsleep 30 &\nexec sleep 30\n')
    script.chmod(0o755)
    start = time.perf_counter()
    run = roundtrip.run_probe(str(script), "ray://127.0.0.1:1", {}, limit_s=1.0)
    assert time.perf_counter() - start < 3
    assert run.killed and run.phase == "init" and run.result is None
    assert json.dumps(run.__dict__, default=str)


@pytest.mark.parametrize(
    "run, code",
    [
        (ProbeRun(None, True, 20.0, phase="init"), "roundtrip.client.timed_out"),
        (
            ProbeRun(3, False, 1.0, error={"phase": "init", "type": "RuntimeError", "message": "Version mismatch: x"}),
            "roundtrip.client.version_mismatch",
        ),
        (
            ProbeRun(3, False, 1.0, error={"phase": "task", "type": "RuntimeError", "message": "boom"}),
            "roundtrip.client.failed",
        ),
        (ProbeRun(None, True, 20.0, stderr_tail=["Fork support is only compatible"]), "roundtrip.client.timed_out"),
    ],
)
def test_failure_codes_are_stable(run, code):
    """fix and scripts key on the code, never on the summary."""
    from doctor.target import parse_address

    ctx = SimpleNamespace(
        dashboard=None,
        head=lambda: HeadFacts(ray=Fact("2.49.2", "dashboard"), python=Fact("3.12.9", "dashboard")),
        local_or_none=lambda: None,
        environ={"PATH": ""},
        local=lambda: SimpleNamespace(executable="/venv/bin/python"),
        options=TargetOptions(address="h:8265"),
        target=SimpleNamespace(address=parse_address("h:8265")),
    )
    res = roundtrip._failure(ctx, run)
    assert res.status is Status.FAIL and res.code == code


# -- the client server's gRPC fork crash on a fresh head's first client: one more try (issue 19) --------


class _Again:
    """Just what roundtrip's second try reads of a context: the second run, and the judged interpreter."""

    def __init__(self, second: ProbeRun) -> None:
        self.second = second
        self.asked = 0

    def roundtrip_again(self) -> ProbeRun:
        self.asked += 1
        return self.second

    def local(self) -> Any:
        return type("Local", (), {"executable": "/envs/e/bin/python"})()


def _fork_crash_failure() -> Result:
    fix = Remediation("Restart the head with GRPC_ENABLE_FORK_SUPPORT=0 in its environment.", ())
    return finding(
        Status.FAIL,
        "the head's Ray Client server crashed when it forked the per-client server",
        code="roundtrip.client.fork_crash",
        details=["head ray_client_server_23000.err: Check failed: next_worker->state == KICKED"],
        fix=fix,
        data={"cause": roundtrip.FORK_CRASH},
    )


def test_a_fork_crash_on_the_first_client_is_tried_once_more_and_kept_as_a_warning() -> None:
    worked = ProbeRun(
        0,
        False,
        1.5,
        result={"worker": {"python": "3.12.9", "ray": "2.49.2", "node_id": "ab" * 20}, "timings": {}},
        url="ray://127.0.0.1:10001",
    )
    ctx = _Again(worked)
    res = roundtrip._after_transient(ctx, _fork_crash_failure())  # type: ignore[arg-type]
    assert ctx.asked == 1
    assert res.status is Status.WARN and res.code == "roundtrip.client.fork_crash_transient"
    assert "a second connection worked" in res.summary and "ray://127.0.0.1:10001 answered" in res.summary
    assert res.remediation is not None and "GRPC_ENABLE_FORK_SUPPORT=0" in res.remediation.text  # head-side fix kept
    assert any("next_worker->state == KICKED" in d for d in res.details)


def test_a_fork_crash_that_happens_again_stays_a_failure() -> None:
    ctx = _Again(ProbeRun(1, False, 3.0, error={"type": "ConnectionError", "message": "ray client connection timeout"}))
    failed = _fork_crash_failure()
    res = roundtrip._after_transient(ctx, failed)  # type: ignore[arg-type]
    assert ctx.asked == 1 and res.status is Status.FAIL and res.code == "roundtrip.client.fork_crash"
    assert "a second connection failed too" in res.details[-1]
