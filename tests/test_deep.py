"""deep.*: the probe job that lists every node's Python, Ray and packages, and packages.head fed by it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from doctor.check import run_check
from doctor.checks import deep
from doctor.model import Status
from doctor.options import TargetOptions
from tests.fake_servers import closed_port
from tests.helpers import by_id


@pytest.mark.cluster
def test_deep_head_and_worker(ray_head_worker, head_python, clean_env, tmp_path):
    head, _worker = ray_head_worker
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("ray[default]==2.49.2\nnumpy==1.26.4\n")
    opts = TargetOptions(
        address=head.dashboard_url,
        gcs_port=head.ports["gcs"],
        client_port=head.ports["client"],
        python=str(head_python),
        requirements=reqs,
        deep=True,
        roundtrip=False,
    )
    report = run_check(opts, environ=clean_env, cwd=tmp_path)

    probe = by_id(report, "deep.probe")
    assert probe.status is Status.OK, (probe.summary, probe.details)
    assert "2 of 2 node(s) answered" in probe.summary
    assert sum(1 for n in probe.data["nodes"] if n["head"]) == 1

    # The head's packages reached packages.head through the shared probe.
    head_pkgs = by_id(report, "packages.head")
    assert head_pkgs.status is Status.WARN, head_pkgs.summary
    assert "numpy is not installed on the head" in head_pkgs.summary
    assert report.head["packages"] and report.head["packages"] > 20

    # The worker carries one extra distribution: a difference between nodes.
    nodes = by_id(report, "deep.nodes")
    assert nodes.status is Status.WARN, nodes.summary
    assert "worker" in nodes.summary and "1 not on the head" in nodes.summary
    assert any("raydoctor-node-marker 1.0" in d for d in nodes.details)

    # Local env = the head's env (same venv): nothing differs.
    local = by_id(report, "deep.local")
    assert local.status is Status.OK, local.summary


def test_without_deep_nothing_runs(clean_env, tmp_path):
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{closed_port()}", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    assert not [r for r in report.results if r.id.startswith("deep.")]
    assert by_id(report, "packages.head").status is Status.SKIP


def test_deep_against_a_dead_head_skips(clean_env, tmp_path):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("numpy\n")
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{closed_port()}", deep=True, roundtrip=False, requirements=reqs),
        environ=clean_env,
        cwd=tmp_path,
    )
    found = {r.id: r for r in report.results if r.id.startswith("deep.")}
    assert set(found) == {"deep.probe", "deep.local", "deep.nodes"}
    assert all(r.status is Status.SKIP for r in found.values())
    assert by_id(report, "packages.head").status is Status.SKIP


# ---------------------------------------------------------------- comparisons, without a cluster


def env(node_id, head, python="3.12.9", ray="2.49.2", exe="/home/ray/anaconda3/bin/python", **packages):
    base = {"ray": ray, "numpy": "1.26.4"}
    base.update(packages)
    return deep.NodeEnv(node_id, "10.0.0.%d" % (1 if head else 2), head, python, ray, exe, base)


def fake_ctx(probe, local=None):
    return SimpleNamespace(
        deep_probe=lambda: probe, local_or_none=lambda: local, options=TargetOptions(address="h:8265")
    )


def test_worker_with_other_python_fails():
    head = env("a" * 56, True)
    worker = env("b" * 56, False, python="3.12.1")
    probe = deep.DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=head, nodes=[head, worker])
    res = deep.check_nodes(fake_ctx(probe))
    assert res.status is Status.FAIL and "Python 3.12.1" in res.summary


def test_worker_with_other_package_warns():
    head = env("a" * 56, True)
    worker = env("b" * 56, False, numpy="2.1.0")
    probe = deep.DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=head, nodes=[head, worker])
    res = deep.check_nodes(fake_ctx(probe))
    assert res.status is Status.WARN and "1 package version(s) differ" in res.summary
    assert any("numpy: 1.26.4 on the head, 2.1.0 there" in d for d in res.details)


def test_job_python_not_the_workers_python_warns():
    head = env("a" * 56, True)
    driver = env("a" * 56, False, python="3.11.7", exe="/usr/bin/python3")
    probe = deep.DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=driver, nodes=[head])
    res = deep.check_nodes(fake_ctx(probe))
    assert res.status is Status.WARN and "PATH" in res.summary


def test_local_differs_from_head():
    head = env("a" * 56, True, pandas="2.2.2")
    local = SimpleNamespace(
        python="3.12.9",
        ray="2.49.2",
        executable="/venv/bin/python",
        distributions={"ray": "2.49.2", "numpy": "2.0.0", "pandas": "2.2.2", "pytest": "8.0"},
    )
    probe = deep.DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=head, nodes=[head])
    res = deep.check_local(fake_ctx(probe, local))
    assert res.status is Status.WARN and "numpy 2.0.0 ≠ 1.26.4" in res.summary
    assert "/venv/bin/python -m pip install numpy==1.26.4" in res.remediation.commands
    assert res.data["only_local"] == ["pytest"]
