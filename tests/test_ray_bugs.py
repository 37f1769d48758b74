"""doctor.ray_bugs: Ray's own known bugs as data, what fix pins for them and how check names them.

The rows' live proofs (a Ray 2.9.3 client built today failing on pkg_resources, and fix's env for it
working) run against a real 2.9.3 head in tests/test_ray_matrix.py.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from packaging.specifiers import SpecifierSet

from doctor import ray_bugs
from doctor.checks import roundtrip
from doctor.checks.roundtrip import KNOWN_RAY_BUG, ProbeRun
from doctor.head.facts import HeadFacts
from doctor.model import Fact, Status
from doctor.options import TargetOptions
from doctor.target import HeadAddress


def test_every_row_names_its_versions_symptom_source_and_action():
    assert {bug.key for bug in ray_bugs.TABLE} >= {
        "pkg_resources",
        "client_server_fork_crash",
        "gcs_port_as_client_port",
        "no_node_info_outside",
        "uv_run_worker_python",
    }
    for bug in ray_bugs.TABLE:
        SpecifierSet(bug.affects)  # parses
        assert bug.symptom and bug.action and bug.remedy
        assert re.search(r"ray-project/ray (?:PR )?#\d+|ray/[\w/]+\.py", bug.source), bug.source
        if bug.pattern:
            re.compile(bug.pattern)
        assert bug.pattern or bug.needs, f"{bug.key}: nothing to recognise it by"


@pytest.mark.parametrize(
    "ray, pins",
    [
        ("2.9.3", ["setuptools<81"]),
        ("2.9.0", ["setuptools<81"]),
        ("2.10.0", []),  # PR #41376 removed pkg_resources before 2.10.0 (its wheel has none)
        ("2.49.2", []),
        ("2.60.0", []),
    ],
)
def test_fix_pins_setuptools_below_81_only_for_rays_that_import_pkg_resources(ray, pins):
    assert [pin for pin, _ in ray_bugs.pins_for(ray)] == pins


def test_the_plan_installs_the_pin_and_says_why(tmp_path):
    from doctor.fix.plan import plan_install

    old, _ = plan_install(None, "2.9.3", "pip")
    assert old.extra == ["ray[client]==2.9.3", "setuptools<81"]
    assert "pkg_resources" in old.describe(tmp_path) and old.to_dict()["because"]
    new, _ = plan_install(None, "2.49.2", "pip")
    assert new.extra == ["ray[client]==2.49.2"] and not new.because
    jobs, _ = plan_install(None, "2.9.3", "pip", "ray[default]==2.9.3")  # the job client imports it too
    assert jobs.extra == ["ray[default]==2.9.3", "setuptools<81"]


@pytest.mark.parametrize(
    "text, ray, facts, keys",
    [
        ("ModuleNotFoundError: No module named 'pkg_resources'", "2.9.3", (), ["pkg_resources"]),
        ("ModuleNotFoundError: No module named 'pkg_resources'", "2.49.2", (), []),  # not this Ray's bug
        ("F1207 ev_epoll1_linux.cc:1117] Check failed: next_worker->state == KICKED", "2.49.2", (), None),
        ("", "2.49.2", {ray_bugs.TIMED_OUT, ray_bugs.CLIENT_PORT_IS_GCS}, ["gcs_port_as_client_port"]),
        ("", "2.49.2", {ray_bugs.TIMED_OUT}, []),  # a timeout on the client port is not this row
        ("No node info found matching attributes: 'node_ip_address': ...", "2.60.0", (), ["no_node_info_outside"]),
        ("This process on node 10.0.0.2 was started with:\n  Python: 3.12.3", "2.53.0", (), ["uv_run_worker_python"]),
        ("This process on node 10.0.0.2 was started with:\n  Python: 3.12.3", "2.54.0", (), []),  # fixed in 2.54
        ("This process on Ray Client was started with:", "2.53.0", (), []),  # Ray Client's own mismatch
    ],
)
def test_recognise(text, ray, facts, keys):
    found = [bug.key for bug in ray_bugs.recognise(text, ray, facts)]
    assert found == (keys if keys is not None else ["client_server_fork_crash"])


def _ctx(head_ray: str, client_port: int = 10001, gcs_port: int = 6379):
    head = HeadFacts(ray=Fact(head_ray, "dashboard"), python=Fact("3.11.7", "dashboard"))
    local = SimpleNamespace(executable="/venv/bin/python", ray=head_ray, python="3.11.7")
    address = HeadAddress("127.0.0.1", client_port=client_port, gcs_port=gcs_port)
    return SimpleNamespace(
        head=lambda: head,
        local_or_none=lambda: local,
        local=lambda: local,
        options=TargetOptions(address="127.0.0.1:8265"),
        environ={"PATH": ""},
        target=SimpleNamespace(address=address),
        client_address=lambda: address,
        dashboard=None,
    )


def test_check_names_the_pkg_resources_row_with_the_pin_to_install():
    run = ProbeRun(
        1,
        False,
        2.0,
        phase="init",
        error={"phase": "init", "type": "ModuleNotFoundError", "message": "No module named 'pkg_resources'"},
    )
    res = roundtrip._failure(_ctx("2.9.3"), run)
    assert res.status is Status.FAIL and res.code == f"roundtrip.client.{KNOWN_RAY_BUG}", res.summary
    assert "pkg_resources" in res.summary and res.data["cause"] == "pkg_resources"
    assert res.data["ray_bugs"][0]["key"] == "pkg_resources" and "#41376" in res.data["ray_bugs"][0]["source"]
    assert res.remediation.commands == ("/venv/bin/python -m pip install 'setuptools<81'",)
    # Before doctor.ray_bugs this was roundtrip.client.failed with Ray's message and no way out.
    other = roundtrip._failure(_ctx("2.49.2"), run)
    assert other.code == "roundtrip.client.failed" and not other.data["ray_bugs"]


def test_a_timeout_on_the_gcs_port_is_named_as_the_ray_gcs_port_row():
    run = ProbeRun(None, True, 20.0, phase="init")
    res = roundtrip._failure(_ctx("2.49.2", client_port=6379, gcs_port=6379), run)
    assert res.code == f"roundtrip.client.{KNOWN_RAY_BUG}" and res.data["cause"] == "gcs_port_as_client_port"
    assert "10001" in res.remediation.text and any("#46733" in d for d in res.details)
    plain = roundtrip._failure(_ctx("2.49.2"), run)
    assert plain.code == "roundtrip.client.timed_out" and not plain.data["ray_bugs"]
