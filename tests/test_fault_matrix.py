"""The fault matrix (issue 5): each fault, the finding it must give, and nothing left behind.

Faults of the dashboard are served by fakes; faults of a head, a worker and a Ray
Client server are produced on real Ray nodes started for the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from doctor.app import run_check
from doctor.model import Status
from doctor.options import TargetOptions
from tests.fake_servers import BROKEN_JSON, FakeHTTP, json_answer
from tests.helpers import by_id, conda_envs, envs_listing, fix_cli, processes_mentioning, wait_for
from tests.ray_cluster import RayNode


def slow(delay: float):
    def answer(method: str, path: str, body: bytes):
        time.sleep(delay)
        return json_answer({"result": True, "data": {"rayVersion": "2.49.2", "pythonVersion": "3.12.9"}})

    return answer


@pytest.mark.parametrize(
    "routes, kind, words",
    [
        (
            {
                "/api/v0/cluster_metadata": (500, "text/plain", "Internal Server Error"),
                "/api/version": (500, "text/plain", "Internal Server Error"),
            },
            "server_error",
            "HTTP 500 (a server error)",
        ),
        ({"/api/v0/cluster_metadata": BROKEN_JSON, "/api/version": BROKEN_JSON}, "not_ray", "not Ray's JSON"),
        ({"/api/v0/cluster_metadata": slow(3.0), "/api/version": slow(3.0)}, "timeout", "no answer"),
    ],
    ids=["answers-500", "answers-garbage", "answers-slowly"],
)
def test_dashboard_faults(routes, kind, words, tmp_path, clean_env):
    with FakeHTTP(routes) as server:
        start = time.perf_counter()
        report = run_check(
            TargetOptions(address=server.url, timeout=1.0, roundtrip=False), environ=clean_env, cwd=tmp_path
        )
        elapsed = time.perf_counter() - start
    head = by_id(report, "head.source")
    assert head.status is Status.FAIL and head.data["kind"] == kind
    assert words in head.summary and server.url in head.summary
    assert head.remediation is not None
    assert report.exit_code == 1
    assert elapsed < 15  # bounded by --timeout, not by the server


# -- a head that dies in the middle of a check; a worker that dies --------------------------


@pytest.mark.cluster
def test_head_dies_during_the_check(head_python, tmp_path, clean_env):
    head = RayNode(head_python, num_cpus=1, ip="127.0.0.4").start()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "doctor",
                "check",
                "--json",
                "--address",
                head.dashboard_url,
                "--client-port",
                str(head.ports["client"]),
                "--python",
                str(head_python),
                "--requirements",
                os.devnull,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env,
            cwd=tmp_path,
        )
        # Kill the head once the facts are read and the round trip is connecting (its probe runs).
        wait_for(
            lambda: processes_mentioning(head.client_url) or proc.poll() is not None,
            timeout=90,
            interval=0.1,
            what="the round-trip probe to start",
        )
        assert proc.poll() is None, "the check ended before its round trip began"
        head.kill_hard()
        out, err = proc.communicate(timeout=120)
    finally:
        head.stop()
    assert "Traceback" not in err
    doc = json.loads(out)
    assert doc["exit_code"] == 1
    bad = [r for r in doc["results"] if r["status"] in {"fail", "error"}]
    assert bad, "a head that died must leave a finding"
    assert processes_mentioning(head.client_url) == []  # nothing of ours left running


@pytest.mark.cluster
def test_worker_that_dies_is_named(head_python, tmp_path, clean_env):
    # Fast failure detection so the test does not wait Ray's default ~30 s for the GCS to notice.
    fast = {
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_failure_threshold": "2",
        "RAY_health_check_timeout_ms": "500",
        "RAY_health_check_initial_delay_ms": "0",
    }
    head = RayNode(head_python, num_cpus=1, ip="127.0.0.5", env=fast).start()
    worker = RayNode(head_python, head=False, num_cpus=1, gcs_address=head.gcs, ip="127.0.0.6", env=fast)
    try:
        worker.start()
        head.wait_nodes(2)
        worker.kill_hard()

        def a_report_naming_the_dead_node():
            report = run_check(
                TargetOptions(address=head.dashboard_url, roundtrip=False), environ=clean_env, cwd=tmp_path
            )
            return report if by_id(report, "head.nodes").data.get("dead") else None

        report = wait_for(a_report_naming_the_dead_node, timeout=60, interval=1, what="the GCS to mark the worker dead")
    finally:
        worker.stop()
        head.stop()
    nodes = by_id(report, "head.nodes")
    assert nodes.status is Status.WARN
    assert "1 dead" in nodes.summary and "127.0.0.6" in nodes.summary
    assert any("ray start --address=127.0.0.5:" in c for c in nodes.remediation.commands)


# -- fix on a broken installer run, a full disk, a read-only disk ---------------------------

needs_fix_parts = pytest.mark.needs(python="3.12", uv=True)  # fix builds from a local 3.12 with uv


@needs_fix_parts
def test_installer_failing_halfway_leaves_nothing(tmp_path, fix_env):
    env = fix_env
    broken = tmp_path / "broken-pkg"
    broken.mkdir()
    (broken / "setup.py").write_text("raise SystemExit('broken-pkg cannot be built on purpose')\n")
    reqs = tmp_path / "reqs.txt"
    reqs.write_text(f"six\n{broken}\n")  # six resolves and downloads; the local package then fails to build
    proc = fix_cli(["--requirements", str(reqs), "--no-roundtrip"], tmp_path, env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "broken" in (proc.stdout + proc.stderr) and "Traceback" not in proc.stderr
    assert envs_listing(tmp_path) in ([], [".gitkeep"])
    assert conda_envs(tmp_path) == []


def _mount(args: list[str]) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path):
    target = tmp_path / "tiny"
    target.mkdir()
    if not _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(target)]):
        pytest.skip("needs root and tmpfs mounts")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def readonly_dir(tmp_path):
    source, target = tmp_path / "ro-src", tmp_path / "ro"
    source.mkdir()
    target.mkdir()
    if not (_mount(["--bind", str(source), str(target)]) and _mount(["-o", "remount,ro,bind", str(target)])):
        subprocess.run(["umount", "-l", str(target)], check=False)
        pytest.skip("needs root and bind mounts")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


@needs_fix_parts
def test_env_dir_on_a_full_disk(tmp_path, fix_env, tiny_disk):
    env = fix_env
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("six\n")
    proc = fix_cli(
        ["--requirements", str(reqs), "--env-dir", str(tiny_disk), "--no-roundtrip", "--installer", "uv"], tmp_path, env
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert any("space" in line.lower() for line in err), proc.stderr
    assert [p.name for p in tiny_disk.iterdir() if not p.name.startswith(".") or p.name.endswith(".lock")] in (
        [],
    ) or all(p.name.endswith(".lock") for p in tiny_disk.iterdir())  # at most the lock file remains
    assert conda_envs(tmp_path) == []


@needs_fix_parts
def test_env_dir_on_a_read_only_disk(tmp_path, fix_env, readonly_dir):
    env = fix_env
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("six\n")
    proc = fix_cli(
        ["--requirements", str(reqs), "--env-dir", str(readonly_dir / "envs"), "--no-roundtrip"], tmp_path, env
    )
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "read-only" in proc.stderr.lower() and str(readonly_dir) in proc.stderr
    assert list(readonly_dir.iterdir()) == []
    assert conda_envs(tmp_path) == []


def test_a_head_that_lists_no_nodes_yet_is_a_warning(tmp_path, clean_env):
    """Right after `ray start --head` the node list is empty for a moment: not a dead cluster."""
    from tests.fake_servers import fake_ray

    server = fake_ray()
    server.routes["/api/v0/nodes"] = json_answer({"data": {"result": {"result": []}}})
    with server:
        report = run_check(TargetOptions(address=server.url, roundtrip=False), environ=clean_env, cwd=tmp_path)
    nodes = by_id(report, "head.nodes")
    assert nodes.status is Status.WARN and "no nodes yet" in nodes.summary
    assert sum(1 for method, path in server.requests if path.startswith("/api/v0/nodes")) >= 2  # it asked again
