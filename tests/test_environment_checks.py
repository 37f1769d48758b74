"""The machine around the connection (doctor/checks/environment.py): proxies, Ray's variables, platform, PATH."""

from __future__ import annotations

import json
import os
import platform
import stat
import sys
from pathlib import Path

import pytest
import requests.utils

from doctor.checks import environment
from doctor.cli import main
from doctor.context import CheckContext
from doctor.model import Result, Status
from doctor.options import TargetOptions


def ctx_for(tmp_path: Path, environ: dict[str, str], **options: object) -> CheckContext:
    opts = TargetOptions(python=sys.executable, **options)  # type: ignore[arg-type]
    return CheckContext(opts, environ={"HOME": str(tmp_path), "PATH": os.environ["PATH"], **environ}, cwd=tmp_path)


def judge(fn, tmp_path: Path, environ: dict[str, str], **options: object) -> Result:
    return fn(ctx_for(tmp_path, environ, **options))


# -- proxies ------------------------------------------------------------------------------


def test_no_proxy_variables(tmp_path: Path) -> None:
    res = judge(environment.judge_proxy, tmp_path, {}, address="10.0.0.5:8265")
    assert res.status is Status.OK and res.code == "local.proxy.none"


@pytest.mark.parametrize("name", ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])
def test_a_proxy_for_the_dashboard_is_a_warning_with_the_no_proxy_fix(tmp_path: Path, name: str) -> None:
    res = judge(environment.judge_proxy, tmp_path, {name: "http://proxy:3128"}, address="10.0.0.5:8265")
    assert res.status is Status.WARN and res.code == "local.proxy.would_proxy"
    assert name in res.summary and "10.0.0.5 is not in no_proxy" in res.summary
    assert res.remediation is not None and "export no_proxy=10.0.0.5" in res.remediation.commands
    assert any("never use a proxy" in d for d in res.details)  # why raydoctor's own checks can still pass


def test_https_proxy_does_not_carry_an_http_dashboard(tmp_path: Path) -> None:
    res = judge(environment.judge_proxy, tmp_path, {"https_proxy": "http://proxy:3128"}, address="10.0.0.5:8265")
    assert res.status is Status.OK
    res = judge(environment.judge_proxy, tmp_path, {"https_proxy": "http://p:3128"}, address="https://10.0.0.5:8443")
    assert res.status is Status.WARN


def test_no_proxy_exempts_the_head(tmp_path: Path) -> None:
    env = {"http_proxy": "http://proxy:3128", "no_proxy": "localhost,.corp.example,10.0.0.0/8"}
    for address in ("10.0.0.5:8265", "head.corp.example:8265"):
        res = judge(environment.judge_proxy, tmp_path, env, address=address)
        assert res.status is Status.OK and res.code == "local.proxy.bypassed", address
    res = judge(environment.judge_proxy, tmp_path, env, address="192.168.1.9:8265")
    assert res.status is Status.WARN
    assert "export no_proxy=192.168.1.9,localhost,.corp.example,10.0.0.0/8" in res.remediation.commands


def test_ray_client_is_proxied_only_when_ray_lets_grpc_use_one(tmp_path: Path) -> None:
    """Ray sets grpc.enable_http_proxy from RAY_grpc_enable_http_proxy (default 0: ray_constants.py)."""
    env = {"grpc_proxy": "http://proxy:3128"}
    res = judge(environment.judge_proxy, tmp_path, env, address="10.0.0.5:8265")
    assert res.status is Status.OK and any("RAY_grpc_enable_http_proxy" in d for d in res.details)
    res = judge(environment.judge_proxy, tmp_path, {**env, "RAY_grpc_enable_http_proxy": "1"}, address="10.0.0.5")
    assert res.status is Status.WARN and "Ray Client" in res.summary and "ray://10.0.0.5:10001" in res.summary
    # gRPC reads no_grpc_proxy before no_proxy
    env2 = {**env, "RAY_grpc_enable_http_proxy": "1", "no_grpc_proxy": "10.0.0.5", "no_proxy": "other"}
    assert judge(environment.judge_proxy, tmp_path, env2, address="10.0.0.5").status is Status.OK


CASES = [
    ("http://10.0.0.5:8265", "10.0.0.5"),
    ("http://10.0.0.5:8265", "10.0.0.0/8"),
    ("http://10.0.0.5:8265", "192.168.0.0/16"),
    ("http://head.corp.example:8265", "corp.example"),
    ("http://head.corp.example:8265", ".corp.example"),
    ("http://head.corp.example:8265", "other.example"),
    ("http://head:8265", "head:8265"),
    ("http://head:8265", "head:9999"),
    ("http://127.0.0.1:8265", "localhost"),
    ("http://127.0.0.1:8265", "127.0.0.1"),
    ("http://127.0.0.1:8265", ""),
]


@pytest.mark.parametrize(("url", "no_proxy"), CASES)
def test_bypass_agrees_with_requests(url: str, no_proxy: str) -> None:
    """The judgement is the one requests (the Jobs SDK's HTTP client) makes for the same URL and no_proxy."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    ours = environment.bypassed(parts.hostname or "", parts.port, no_proxy)
    assert ours == requests.utils.should_bypass_proxies(url, no_proxy or None)


def test_no_address_skips(tmp_path: Path) -> None:
    res = judge(
        environment.judge_proxy, tmp_path, {"http_proxy": "http://p:1"}, image="rayproject/ray:2.49.2-py312-cpu"
    )
    assert res.status is Status.SKIP


# -- Ray's variables ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "0", ""])
def test_ignore_version_mismatch_counts_whatever_its_value(tmp_path: Path, value: str) -> None:
    res = judge(environment.judge_ignore_mismatch, tmp_path, {"RAY_IGNORE_VERSION_MISMATCH": value}, address="h")
    assert res.status is Status.WARN and res.remediation.commands == ("unset RAY_IGNORE_VERSION_MISMATCH",)
    assert judge(environment.judge_ignore_mismatch, tmp_path, {}, address="h").status is Status.OK


def test_ray_address_elsewhere(tmp_path: Path) -> None:
    res = judge(environment.judge_ray_address, tmp_path, {"RAY_ADDRESS": "10.0.0.6:8265"}, address="10.0.0.5:8265")
    assert res.status is Status.WARN and res.code == "local.ray_address.other" and "10.0.0.6" in res.summary
    assert "unset RAY_ADDRESS" in res.remediation.commands
    assert "export RAY_ADDRESS=ray://10.0.0.5:10001" in res.remediation.commands


def test_ray_address_same_place_in_another_form(tmp_path: Path) -> None:
    for raw in ("ray://10.0.0.5:10001", "http://10.0.0.5:8265", "10.0.0.5"):
        res = judge(environment.judge_ray_address, tmp_path, {"RAY_ADDRESS": raw}, address="10.0.0.5:8265")
        assert res.status is Status.OK and res.code == "local.ray_address.same", raw


def test_ray_address_auto_and_the_target_itself(tmp_path: Path) -> None:
    res = judge(environment.judge_ray_address, tmp_path, {"RAY_ADDRESS": "auto"}, address="10.0.0.5:8265")
    assert res.status is Status.WARN and "auto" in res.summary
    res = judge(environment.judge_ray_address, tmp_path, {"RAY_ADDRESS": "10.0.0.5:8265"})
    assert res.status is Status.OK and res.code == "local.ray_address.is_target"
    assert judge(environment.judge_ray_address, tmp_path, {}, address="h").code == "local.ray_address.unset"


# -- platform -------------------------------------------------------------------------------

HERE_ARCH = environment._arch(platform.machine())
OTHER_TAG = "rayproject/ray:2.49.2-py312-cpu" + ("" if HERE_ARCH == "aarch64" else "-aarch64")
SAME_TAG = "rayproject/ray:2.49.2-py312-cpu" + ("-aarch64" if HERE_ARCH == "aarch64" else "")
on_linux = pytest.mark.skipif(platform.system() != "Linux", reason="the head images are Linux")


@on_linux
def test_same_platform(tmp_path: Path) -> None:
    res = judge(environment.judge_platform, tmp_path, {}, image=SAME_TAG)
    assert res.status is Status.OK and res.code == "local.platform.same"


@on_linux
def test_other_arch_matters_with_compiled_packages(tmp_path: Path) -> None:
    res = judge(environment.judge_platform, tmp_path, {}, image=OTHER_TAG)
    assert res.code in ("local.platform.differs_pure", "local.platform.differs_compiled")
    (tmp_path / "packages.txt").write_text("numpy==2.1.0\nrequests\n")
    res = judge(environment.judge_platform, tmp_path, {}, image=OTHER_TAG)
    assert res.status is Status.WARN and res.code == "local.platform.differs_compiled" and "numpy" in res.summary
    assert res.data["head"] != res.data["local"]


@on_linux
def test_a_driver_on_another_platform(tmp_path: Path) -> None:
    res = judge(environment.judge_platform, tmp_path, {}, image=OTHER_TAG, mode="driver")
    assert res.status is Status.WARN and res.code == "local.platform.driver_mixed"


def test_head_platform_unknown(tmp_path: Path) -> None:
    res = judge(environment.judge_platform, tmp_path, {}, address="10.0.0.5:8265")
    assert res.status is Status.SKIP


# -- python3 on PATH -----------------------------------------------------------------------


def fake_python(folder: Path) -> Path:
    folder.mkdir(parents=True)
    exe = folder / "python3"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_python3_on_path_is_the_active_envs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    fake_python(venv / "bin")
    other = fake_python(tmp_path / "other")
    env = {"VIRTUAL_ENV": str(venv)}
    res = judge(
        environment.judge_python_on_path, tmp_path, {**env, "PATH": f"{venv / 'bin'}:{other.parent}"}, address="h"
    )
    assert res.status is Status.OK
    res = judge(
        environment.judge_python_on_path, tmp_path, {**env, "PATH": f"{other.parent}:{venv / 'bin'}"}, address="h"
    )
    assert res.status is Status.WARN and str(other) in res.summary
    assert f"source {venv / 'bin' / 'activate'}" in res.remediation.commands
    res = judge(
        environment.judge_python_on_path, tmp_path, {"CONDA_PREFIX": str(venv), "PATH": str(other.parent)}, address="h"
    )
    assert res.status is Status.WARN and res.remediation.commands[0].startswith("conda activate")
    res = judge(environment.judge_python_on_path, tmp_path, {**env, "PATH": str(tmp_path / "empty")}, address="h")
    assert res.code == "local.python_on_path.missing"
    assert judge(environment.judge_python_on_path, tmp_path, {}, address="h").status is Status.SKIP


def test_check_runs_them_as_local_findings(tmp_path: Path, monkeypatch, capsys, clean_env) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_IGNORE_VERSION_MISMATCH", "1")
    main(["check", "--json", "--image", SAME_TAG, "--python", sys.executable])
    doc = json.loads(capsys.readouterr().out)
    ids = {r["id"]: r for r in doc["results"]}
    for check_id in environment.TITLES:
        assert ids[check_id]["category"] == "local" and ids[check_id]["code"].startswith(check_id)
    assert ids["local.ignore_version_mismatch"]["status"] == "warn"
