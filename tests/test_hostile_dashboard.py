"""A dashboard port held by something hostile: slow bytes, a huge body, deep JSON, escape codes, odd job ids.

Each case runs the whole ``check`` (in a subprocess where time or memory is
measured) against a fake server on loopback, and the dashboard client
directly. None of them may hang a check past its ``--timeout``, take memory in
proportion to what the server sends, crash a check, or print what the server
chose to the terminal.
"""

from __future__ import annotations

import gzip
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.checks import network
from doctor.head import dashboard as dashboard_module
from doctor.head import jobs
from doctor.head.dashboard import MAX_BODY, DashboardClient, DashboardError, decode_json
from doctor.model import Status
from doctor.options import TargetOptions
from doctor.target import parse_address
from doctor.text import sanitize
from tests.fake_servers import FakeHTTP, RawHTTP, closed_port, dribble, http_answer, huge, json_answer

REPO = Path(__file__).resolve().parent.parent
METADATA = json.dumps({"result": True, "data": {"rayVersion": "2.49.2", "pythonVersion": "3.12.9"}}).encode()


def by_id(doc, check_id):
    found = [r for r in doc["results"] if r["id"] == check_id]
    assert found, f"no {check_id} in {[r['id'] for r in doc['results']]}"
    return found[0]


def cli(address: str, *extra: str, env, cwd, limit: float = 60.0):
    """``python -m doctor check --json`` against ``address``, in a child that reports its peak RSS (KiB)."""
    measure = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
        "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    args = [
        *("--address", address, "--gcs-port", str(closed_port()), "--client-port", str(closed_port())),
        "--no-roundtrip",
        *extra,
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "doctor", "check", *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        timeout=limit,
    )
    elapsed = time.perf_counter() - start
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB ")]
    assert peak, proc.stderr
    kib = int(peak[-1].split()[1])
    if sys.platform == "darwin":
        kib //= 1024  # bytes there
    return proc, elapsed, kib


# ---------------------------------------------------------------- slow bytes


@pytest.mark.parametrize("headers_at_once", [False, True], ids=["slow-headers", "slow-body"])
def test_a_byte_every_0_9_s_cannot_hold_check_past_its_timeout(headers_at_once, clean_env, tmp_path):
    """Before: one byte every 0.9 s kept `check --timeout 2` running past 45 s (each read met its timeout)."""
    timeout = 2.0
    with RawHTTP(dribble(http_answer(METADATA * 4), 0.9, headers_at_once=headers_at_once)) as server:
        proc, elapsed, _ = cli(server.url, "--json", "--timeout", str(timeout), env=clean_env, cwd=tmp_path)
    doc = json.loads(proc.stdout)
    # Measured here: 2.5-3.3 s in all (2 s for the reads, the rest is starting Python); bound with a wide margin.
    assert elapsed < timeout * 3 + 4, f"took {elapsed:.1f} s"
    head = by_id(doc, "head.source")
    assert head["status"] == "fail" and head["data"]["kind"] == "too_slow", head
    assert "answers too slowly" in head["summary"]
    dash = by_id(doc, "network.dashboard")
    assert dash["status"] == "fail" and dash["code"] == "network.dashboard.too_slow", dash
    assert not [r for r in doc["results"] if r["status"] == "error"]  # nothing ran into the runner's limit


def test_too_slow_first_answer_is_not_waited_for_again():
    with RawHTTP(dribble(http_answer(METADATA), 0.5)) as server:
        client = DashboardClient(parse_address(server.url), timeout=1.0)
        start = time.perf_counter()
        with pytest.raises(DashboardError) as info:
            client.cluster_versions()
        first = time.perf_counter() - start
        with pytest.raises(DashboardError) as again:
            client.healthz()
        second = time.perf_counter() - start - first
        client.close()
    assert info.value.kind == again.value.kind == "too_slow"
    assert first < 1.0 * 2 + 1.0, f"{first:.2f} s"
    assert second < 0.5, f"{second:.2f} s"  # judged once: a dashboard too slow to answer once is too slow


# ---------------------------------------------------------------- a huge body


@pytest.mark.parametrize("content_length", [False, True], ids=["until-close", "content-length"])
def test_a_300_mb_answer_is_refused_without_holding_it(content_length, clean_env, tmp_path):
    """Before: a 300 MB body took 1.2 GB of memory. Now the read stops at MAX_BODY."""
    with RawHTTP(huge(300 << 20, content_length=content_length)) as server:
        proc, elapsed, peak_kib = cli(server.url, "--json", env=clean_env, cwd=tmp_path)
    doc = json.loads(proc.stdout)
    # Measured here: 35-50 MB peak for the whole check.
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib / 1024:.0f} MB"
    head = by_id(doc, "head.source")
    assert head["data"]["kind"] == "too_large" and "answer too large" in head["summary"], head
    assert by_id(doc, "network.dashboard")["code"] == "network.dashboard.too_large"
    assert elapsed < 30


def test_a_compressed_bomb_is_inflated_only_up_to_the_cap():
    bomb = gzip.compress(b"0" * (MAX_BODY * 5))

    def serve(conn, request):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n".encode()
            + bomb
        )

    with RawHTTP(serve) as server:
        client = DashboardClient(parse_address(server.url), timeout=5)
        with pytest.raises(DashboardError) as info:
            client.get_json("/api/version")
        client.close()
    assert info.value.kind == "too_large"
    assert b"identity" in server.requests[0].lower()  # raydoctor asks for no compression at all


# ---------------------------------------------------------------- deep JSON


DEEP = "[" * 100_000 + "]" * 100_000


def test_deep_json_is_a_clean_not_ray_finding(clean_env, tmp_path):
    """Before: RecursionError in seven checks ("crashed"), each contained by the runner."""
    with FakeHTTP(default=(200, "application/json", DEEP)) as fake:
        report = run_check(
            TargetOptions(address=fake.url, gcs_port=closed_port(), client_port=closed_port(), roundtrip=False),
            environ=clean_env,
            cwd=tmp_path,
        )
    crashed = [(r.id, r.summary) for r in report.results if r.status is Status.ERROR]
    assert not crashed
    assert not [r.id for r in report.results if "RecursionError" in r.summary or "crashed" in r.summary]
    head = next(r for r in report.results if r.id == "head.source")
    assert head.status is Status.FAIL and head.data["kind"] == "not_ray"
    assert "not as a Ray dashboard" in head.summary
    dash = next(r for r in report.results if r.id == "network.dashboard")
    assert dash.code == "network.dashboard.not_ray"


@pytest.mark.parametrize("depth", [100, 100_000])
def test_decode_json_turns_any_depth_into_not_ray(depth):
    with pytest.raises(DashboardError) as info:
        decode_json(("[" * depth + "]" * depth).encode(), "http://h:8265/api/version")
    assert info.value.kind == "not_ray" and "deeper than" in info.value.message


# ---------------------------------------------------------------- terminal escapes

ESC_VERSION = "\x1b[31m2.49.2\x1b]0;owned\x07\x1b[0m"
ESC = "\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07"


def escape_dashboard() -> FakeHTTP:
    nodes = {
        "result": True,
        "data": {"result": {"result": [{"node_id": "n1" + ESC, "state": "ALIVE", "is_head_node": True}]}},
    }
    return FakeHTTP(
        {
            "/api/v0/cluster_metadata": json_answer(
                {"result": True, "data": {"rayVersion": ESC_VERSION, "pythonVersion": "3.12.9\x1b[1A"}}
            ),
            "/api/version": json_answer({"version": "4", "ray_version": ESC_VERSION}),
            "/api/gcs_healthz": (503, "text/plain", "down" + ESC),
            "/api/authentication_mode": json_answer({"authentication_mode": ESC + "disabled"}),
            "/api/v0/nodes": json_answer(nodes),
        },
        default=(500, "text/html", "<html>" + ESC + "</html>"),
    )


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_escape_codes_from_the_dashboard_never_reach_the_output(fmt, clean_env, tmp_path):
    """Before: a rayVersion with ESC sequences was printed raw."""
    with escape_dashboard() as fake:
        extra = ["--json"] if fmt == "json" else ["-v"]
        proc, _, _ = cli(fake.url, *extra, env=clean_env, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.stdout.strip()
    for bad in ("\x1b", "\x07", "\x9b", "\\u001b", "\\u0007", "evil.example"):
        assert bad not in out, bad
    if fmt == "json":
        doc = json.loads(proc.stdout)
        assert doc["head"]["ray"]["value"] == "2.49.2"
        assert doc["head"]["python"]["value"] == "3.12.9"
    else:
        assert "2.49.2" in proc.stdout


def test_sanitize_removes_whole_sequences_and_controls():
    assert sanitize(ESC_VERSION) == "2.49.2"
    assert sanitize("a\tb\nc\r\x00\x7f\x85\u202eok") == "a b c ok"
    assert sanitize("line 1\r\nline 2\tx\x1b[K\x08", multiline=True) == "line 1\nline 2\tx"
    assert sanitize("\x9b31mred\x9b0m plain ✓ ü") == "red plain ✓ ü"


def test_every_string_of_an_answer_is_sanitised():
    data = decode_json(json.dumps({"k\x1b[1m": ["v\x1b]0;t\x07", {"logs": "a\nb\x1b[2J"}]}).encode(), "x")
    assert data == {"k": ["v", {"logs": "a\nb"}]}


# ---------------------------------------------------------------- a job id from the server


def jobs_api(submission_id: str, delete_status: int = 200) -> FakeHTTP:
    def post(method, path, body):
        return json_answer({"submission_id": submission_id})

    def job(method, path, body):
        if method == "DELETE":
            return json_answer({"deleted": delete_status == 200}, delete_status)
        if path.endswith("/logs"):
            return json_answer({"logs": 'RAYDOCTOR_PROBE {"ok": true}\n'})
        return json_answer({"status": "SUCCEEDED", "message": ""})

    routes: dict = {"/api/jobs/": post}
    fake = FakeHTTP(routes)
    fake.default = job
    return fake


@pytest.mark.parametrize("evil", ["x; touch /tmp/raydoctor-pwned", "$(id)", "../../api/version", "a b", ""])
def test_a_job_id_with_shell_characters_is_refused(evil):
    """Before: the server's id was used in URLs and shown unquoted in `ray job delete ID`."""
    with jobs_api(evil) as fake:
        client = DashboardClient(parse_address(fake.url), timeout=5)
        if evil == "":
            outcome = jobs.run_probe_job(client, "print(1)", limit_s=5)  # no id given back: raydoctor's own
            assert jobs.valid_job_id(outcome.submission_id)
            return
        with pytest.raises(jobs.JobError) as info:
            jobs.run_probe_job(client, "print(1)", limit_s=5)
    assert info.value.kind == "not_ray"
    paths = [path for _, path in fake.requests]
    assert not [p for p in paths if p.startswith("/api/jobs/") and p != "/api/jobs/" and "raydoctor-" not in p]
    assert any(method == "DELETE" and "raydoctor-" in path for method, path in fake.requests)  # its own job removed


def test_the_delete_command_is_quoted_and_parses_back():
    for job_id in ("raydoctor-probe-0123456789", "a b; rm -rf ~", "$(id)"):
        assert shlex.split(jobs.delete_command(job_id)) == ["ray", "job", "delete", job_id]
    with jobs_api("raysubmit_AbC123", delete_status=400) as fake:
        client = DashboardClient(parse_address(fake.url), timeout=5)
        outcome = jobs.run_probe_job(client, "print(1)", limit_s=5)
    assert outcome.submission_id == "raysubmit_AbC123" and not outcome.deleted
    note = next(n for n in outcome.notes if "ray job delete" in n)
    assert shlex.split(note.split("remove it with: ")[1]) == ["ray", "job", "delete", "raysubmit_AbC123"]


# ---------------------------------------------------------------- one probe, one wording


def test_one_tcp_probe_serves_the_ports_check_and_the_dashboard():
    from doctor import tcp

    assert network.connect is tcp.connect
    assert dashboard_module.probe_port is tcp.probe_port
    assert not hasattr(network, "resolve") or network.resolve is tcp.resolve


def test_refused_is_worded_once_everywhere(clean_env, tmp_path):
    """Before: "refused", "connection refused (nothing listens on port N)", "(the host is up but nothing listens there)"."""
    dead = closed_port()
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{dead}", gcs_port=closed_port(), client_port=closed_port(), roundtrip=False),
        environ=clean_env,
        cwd=tmp_path,
    )
    words = f"connection refused (the host is up but nothing listens on port {dead})"
    results = {r.id: r for r in report.results}
    assert words in results["network.dashboard"].summary
    assert words in results["head.source"].summary
    assert any(words in line for line in results["network.ports"].details)
    assert results["network.dashboard"].code == "network.dashboard.refused"
    assert results["network.ports"].code == "network.ports.refused"
    assert results["network.resolve"].code == "network.resolve.ip_address"
