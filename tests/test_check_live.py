"""check against a real Ray head on loopback (started as ``ray start --head``, tests/ray_cluster.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from doctor.app import run_check
from doctor.model import Status
from doctor.options import TargetOptions
from tests.helpers import by_id

pytestmark = pytest.mark.cluster


def test_wrong_local_python_fails_naming_both_versions(ray_head, local_python311, tmp_path, clean_env):
    options = TargetOptions(
        address=ray_head.dashboard_url, client_port=ray_head.ports["client"], python=local_python311, roundtrip=False
    )
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    head_py = report.head["python"]["value"]
    assert report.head["python"]["source"].startswith("running cluster")
    python = by_id(report, "versions.python")
    assert python.status is Status.FAIL
    assert "3.11.7" in python.summary and head_py in python.summary
    ray = by_id(report, "versions.ray")
    assert ray.status is Status.FAIL and "2.49.2" in ray.summary
    assert any("fix" in shlex.split(c) and "doctor" in c for c in python.remediation.commands)
    assert report.exit_code == 1


def test_head_env_interpreter_passes(ray_head, head_python, tmp_path, clean_env):
    options = TargetOptions(
        address=ray_head.dashboard_url, client_port=ray_head.ports["client"], python=str(head_python), roundtrip=False
    )
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    for check_id in (
        "head.source",
        "head.nodes",
        "local.interpreter",
        "versions.ray",
        "versions.python",
        "packages.client_extras",
    ):
        assert by_id(report, check_id).status is Status.OK, by_id(report, check_id)
    assert report.head["ray"]["value"] == "2.49.2"
    assert report.local["python"] == report.head["python"]["value"]
    assert by_id(report, "head.nodes").summary.startswith("1 alive (head + 0 workers; 2 CPUs")


def test_cli_json_against_live_head(ray_head, local_python311, tmp_path, clean_env):
    """The installed console script, as a user runs it: one JSON document, exit 1."""
    reqs = tmp_path / "packages.txt"
    reqs.write_text("ray[default]==2.40.0\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "doctor",
            "check",
            "--json",
            "--no-roundtrip",
            "--address",
            f"ray://127.0.0.1:{ray_head.ports['client']}",
            "--python",
            local_python311,
            "--requirements",
            str(reqs),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env, "RAY_ADDRESS": ""},
        cwd=tmp_path,
    )
    # ray:// names the client port; the dashboard defaults to 8265, where this head is NOT: a finding, exit 1
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["exit_code"] == 1
    assert doc["target"]["address"]["client"] == f"ray://127.0.0.1:{ray_head.ports['client']}"
    # and with the dashboard named explicitly, the pin conflict with the head is found
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "doctor",
            "check",
            "--json",
            "--no-roundtrip",
            "--address",
            ray_head.dashboard_url,
            "--python",
            local_python311,
            "--requirements",
            str(reqs),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env,
        cwd=tmp_path,
    )
    doc = json.loads(proc.stdout)
    reqs_result = next(r for r in doc["results"] if r["id"] == "packages.requirements")
    assert reqs_result["status"] == "fail"
    assert "pins ray[default]==2.40.0 but the cluster runs Ray 2.49.2" in reqs_result["summary"]
