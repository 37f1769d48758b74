"""A cluster known only in part: the user names only ``ray://host:port``.

Then the dashboard is guessed (port 8265 on that host). When it is not there but the round trip
answers, the round trip (``CheckContext.roundtrip``, run once) is the source of the head's facts, and
the dashboard is a warning that says how to name it (``--address host:8265``), not a failure.
Tests marked ``cluster`` run against the real test head (Ray 2.49.2, dashboard on a random port, so
8265 on 127.0.0.2 is closed).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from doctor import remedies
from doctor.app import run_check
from doctor.context import CheckContext
from doctor.facts.ports import parse_start_line
from doctor.facts.roundtrip import ProbeRun
from doctor.head.resolve import gather_head_facts
from doctor.model import Status
from doctor.options import TargetOptions


def _by_id(report) -> dict:
    return {r.id: r for r in report.results}


def test_head_facts_from_a_round_trip_when_no_dashboard_answers():
    run = ProbeRun(
        0,
        False,
        4.2,
        result={"worker": {"python": "3.12.9", "ray": "2.49.2", "node_id": "abcdef0123456789"}},
    )
    asked = []
    facts = gather_head_facts(None, None, roundtrip=lambda: asked.append(1) or run, client_url="ray://h:1")
    assert asked == [1]
    assert (facts.ray_version, facts.python_version) == ("2.49.2", "3.12.9") and facts.python.exact
    assert facts.from_roundtrip == "ray://h:1" and facts.ray.source.startswith("round trip (ray://h:1")
    assert not facts.live


def test_a_round_trip_that_failed_gives_no_facts():
    facts = gather_head_facts(None, None, roundtrip=lambda: ProbeRun(3, False, 1.0), client_url="ray://h:1")
    assert facts.ray is None and facts.from_roundtrip is None
    assert any("round trip did not answer" in p for p in facts.problems)


def test_only_a_ray_address_uses_the_round_trip(clean_env, tmp_path):
    ctx = CheckContext(TargetOptions(address="127.0.0.1:8265"), environ=clean_env, cwd=tmp_path)
    assert ctx.target.address is not None and not ctx.target.address.given.startswith("ray://")
    client = CheckContext(TargetOptions(address="ray://127.0.0.1:10001"), environ=clean_env, cwd=tmp_path)
    assert client.target.address.client_port == 10001 and client.target.address.dashboard_port == 8265


@pytest.mark.cluster
def test_ray_address_with_no_dashboard_where_guessed(ray_head, head_python, clean_env, tmp_path):
    address = f"ray://{ray_head.ip}:{ray_head.ports['client']}"
    report = run_check(TargetOptions(address=address, python=str(head_python)), environ=clean_env, cwd=tmp_path)
    found = _by_id(report)
    head = found["head.source"]
    assert head.status is Status.WARN and head.code == "head.source.roundtrip", (head.summary, head.details)
    # raydoctor named as it runs here (bare only where PATH finds this install: issue 19, case 5).
    assert "from the round trip" in head.summary and head.remediation.commands == (
        remedies.raydoctor_check(f"{ray_head.ip}:8265", clean_env),
    )
    assert report.head["ray"]["value"] == "2.49.2" and report.head["ray"]["source"].startswith("round trip")
    assert report.head["python"]["value"].startswith("3.12.")
    dashboard = found["network.dashboard"]
    assert dashboard.status is Status.WARN and dashboard.code == "network.dashboard.not_where_guessed"
    assert "--address" in dashboard.remediation.text
    assert found["roundtrip.client"].status is Status.OK
    assert found["versions.ray"].status is Status.OK and found["versions.python"].status is Status.OK
    assert found["network.ports"].status is not Status.FAIL, found["network.ports"].details
    assert not [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)], [
        (r.id, r.summary) for r in report.results if r.status in (Status.FAIL, Status.ERROR)
    ]
    assert report.exit_code == 0
    # One round trip for both the head's facts and roundtrip.client: the check's timings are the fact's.
    assert found["roundtrip.client"].data["worker"]["python"] == report.head["python"]["value"]


@pytest.mark.cluster
def test_the_cli_exits_0_for_a_working_ray_address(ray_head, head_python, clean_env, tmp_path):
    address = f"ray://{ray_head.ip}:{ray_head.ports['client']}"
    done = subprocess.run(
        [sys.executable, "-m", "doctor", "check", "--json", "--address", address, "--python", str(head_python)],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=tmp_path,
        timeout=180,
    )
    doc = json.loads(done.stdout)
    assert done.returncode == 0, [(r["id"], r["status"], r["summary"]) for r in doc["results"]]


def test_a_live_head_is_not_warned_about_a_default_port_its_mode_does_not_use(clean_env, tmp_path):
    """Client mode never talks to the GCS: the default 6379, a guess, is not judged on a live dashboard."""
    from tests.fake_servers import GrpcLookalike, fake_ray

    with fake_ray() as dash, GrpcLookalike() as grpc:
        options = TargetOptions(address=dash.url, client_port=grpc.port, roundtrip=False)
        report = run_check(options, environ=clean_env, cwd=tmp_path)
    ports = _by_id(report)["network.ports"]
    assert ports.status is Status.OK, (ports.summary, ports.details)
    assert ports.data["not_judged"] == ["gcs"] or ports.data.get("not_judged") is None  # None when 6379 answers
    named = run_check(
        TargetOptions(address="127.0.0.1:1", gcs_port=1, client_port=1, roundtrip=False, timeout=0.5),
        environ=clean_env,
        cwd=tmp_path,
    )
    assert _by_id(named)["network.ports"].status is Status.FAIL  # named ports, no live dashboard: judged


def test_the_client_servers_start_line_gives_the_ports():
    line = (
        "2026-12-03 07:00:51,123\tINFO server.py:901 -- Starting Ray Client server on 127.0.0.2:41234, args "
        "Namespace(host='127.0.0.2', port=41234, mode='proxy', address='127.0.0.2:52345', redis_username=None, "
        "redis_password=None, runtime_env_agent_address='http://127.0.0.2:1')"
    )
    specific = line.replace("port=41234, mode='proxy'", "port=23000, mode='specific-server'")
    learned = parse_start_line("other line\n" + specific + "\n" + line + "\n")
    assert learned is not None and (learned.gcs, learned.client) == (52345, 41234)
    assert parse_start_line(specific) is None and parse_start_line("Starting nothing") is None


@pytest.mark.cluster
def test_a_head_checked_by_its_dashboard_has_no_port_warnings(ray_head, head_python, clean_env, tmp_path):
    """Only the dashboard's address is given: the head's GCS and client ports (not 6379/10001 here) are learned."""
    options = TargetOptions(address=ray_head.dashboard_url, python=str(head_python))
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    network = [r for r in report.results if r.category == "network" and r.id != "network.token"]
    assert network and all(r.status is Status.OK for r in network), [(r.id, r.summary, r.details) for r in network]
    ports = {p["role"]: p for p in _by_id(report)["network.ports"].data["ports"]}
    assert ports["gcs"]["port"] == ray_head.ports["gcs"] and ports["client"]["port"] == ray_head.ports["client"]
    assert "ray_client_server.err" in ports["client"]["source"]
    assert ports["metrics"]["port"] == ray_head.ports["metrics"] and ports["metrics"]["state"] == "open"
    trip = _by_id(report)["roundtrip.client"]
    assert trip.status is Status.OK and f":{ray_head.ports['client']}" in trip.summary, trip.summary


# --------------------------------------------------------------------------- head and worker images

IMAGES = """\
services:
  ray-head:
    image: {head}
    command: bash -c "ray start --head --port=6379 --dashboard-host=0.0.0.0 --block"
  ray-worker:
    image: {worker}
    command: bash -c "ray start --address=ray-head:6379 --block"
"""


@pytest.mark.parametrize(
    "head, worker, status, cause",
    [
        # Ray refuses on join: another Ray, another Python (ray/_private/utils.py::check_version_info).
        ("rayproject/ray:2.49.2-py312-cpu", "rayproject/ray:2.48.0-py312-cpu", Status.FAIL, "join_refused"),
        ("rayproject/ray:2.49.2-py312-cpu", "rayproject/ray:2.49.2-py311-cpu", Status.FAIL, "join_refused"),
        # Ray tolerates it: same Ray and Python, another platform.
        ("rayproject/ray:2.49.2-py312-cpu", "rayproject/ray:2.49.2-py312-gpu", Status.OK, ""),
        # The tags do not tell: a warning, not a failure.
        ("rayproject/ray:2.49.2-py312-cpu", "example.com/team/ray-custom:7", Status.WARN, "differs"),
    ],
    ids=["other-ray", "other-python", "other-platform", "untold"],
)
def test_image_differences_ray_refuses_fail_and_others_warn(tmp_path, head, worker, status, cause):
    from tests.helpers import lint_cluster_file_results

    results = lint_cluster_file_results(tmp_path / "c", IMAGES.format(head=head, worker=worker))
    rule = next(r for r in results if r.id == "compose.same_image")
    assert rule.status is status, rule.summary
    if cause:
        assert rule.code == f"compose.same_image.{cause}"
    if status is Status.FAIL:
        assert "Ray refuses such a worker when it joins" in rule.summary
        assert any("check_version_info" in d and "Version mismatch" in d for d in rule.details)
