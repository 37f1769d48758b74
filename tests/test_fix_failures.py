"""fix under failure: what it created is removed, and only that.

Real parts throughout: the raydoctor CLI in a subprocess, pyenv's
interpreters, uv, virtualenv and pip, the fake conda (tests/fake_conda, which
follows conda's ``--json`` contract) for the conda env a run may create. The target is an image tag, so no cluster is
needed: ``rayproject/ray:2.49.2-py312-cpu`` asks for Python 3.12.9, which
this machine lacks, so the fake conda is asked for it (and, having only
3.12.1, falls back to python=3.12 as real conda-forge would for a missing
patch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doctor.fix.venv import EnvLock, read_marker
from tests.helpers import pyenv_python, raydoctor_cli

PY312 = pyenv_python("3.12.1")  # the fake conda's channel is pyenv's folder (tests/fake_conda/conda)
FAKE_CONDA = Path(__file__).parent / "fake_conda" / "conda"
IMAGE = "rayproject/ray:2.49.2-py312-cpu"
ENV_NAME = "ray2.49.2-py3.12.1"  # named after the Python it really has (the closest here), not the head's 3.12.9
CONDA_ENV = "raydoctor-ray2.49.2-py3.12.9"
MISSING = "raydoctor-no-such-package-zz9"
pytestmark = pytest.mark.needs(pyenv="3.12.1", uv=True)


@pytest.fixture
def env(fix_env: dict[str, str]) -> dict[str, str]:
    """conftest's fix_env (warm caches, the fake conda with an empty root), uv's managed Pythons kept out of
    fix's auto order: these tests judge conda and the same-minor fallback."""
    return {**fix_env, "UV_PYTHON_DOWNLOADS": "never"}


def fix_cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return raydoctor_cli(["fix", "--image", IMAGE, "--yes", *args], cwd, env, timeout)


def fix_popen(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "doctor", "fix", "--image", IMAGE, "--yes", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def conda_envs(tmp_path: Path) -> list[str]:
    folder = tmp_path / "conda" / "envs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def conda_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "conda.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def envs_listing(tmp_path: Path) -> list[str]:
    folder = tmp_path / "envs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- an install that cannot succeed ------------------------------------------------------


def test_missing_package_with_pip_leaves_nothing_and_names_it(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "packages.txt").write_text(f"six\n{MISSING}==1.0\n")
    (tmp_path / "envs").mkdir()
    stale = tmp_path / "envs" / f".{ENV_NAME}.tmp-999999999"  # a fix that was SIGKILLed long ago
    (stale / "bin").mkdir(parents=True)
    proc = fix_cli(["--no-conda", "--installer", "pip", "--json"], tmp_path, env)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["exit_code"] == 1
    assert MISSING in doc["error"] and doc["error"].startswith("pip could not install")
    assert doc["steps"][-1]["details"]  # the installer's last lines, in short, on the step that failed
    assert [s["status"] for s in doc["steps"]] == ["ok", "ok", "fail"]
    assert any("unfinished venv" in r for r in doc["outcome"]["removed"]) and doc["outcome"]["env"] is None
    assert envs_listing(tmp_path) == []  # the stale temp went too (no live pid owns it)
    text = fix_cli(["--no-conda", "--installer", "pip"], tmp_path, env)
    assert text.returncode == 1
    assert f"raydoctor fix: pip could not install {MISSING}" in text.stderr
    assert "✗ install (" in text.stderr and "Removed what this run created" in text.stderr
    assert envs_listing(tmp_path) == []


def test_missing_package_with_conda_removes_the_conda_env_it_made(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "packages.txt").write_text(f"{MISSING}\n")
    proc = fix_cli(["--installer", "uv", "--json"], tmp_path, env)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    assert MISSING in doc["error"] and doc["error"].startswith("uv could not install")
    assert [s["name"] for s in doc["steps"]] == ["conda", "venv", "install"]
    calls = conda_calls(tmp_path)
    creates = [c for c in calls if c[:1] == ["create"]]
    assert [c[3] for c in creates] == ["python=3.12.9", "python=3.12"]  # no such patch, then the minor
    assert any(c[:1] == ["remove"] and "--all" in c for c in calls)
    assert any(f"conda env {CONDA_ENV}" in r for r in doc["outcome"]["removed"])
    assert conda_envs(tmp_path) == [] and envs_listing(tmp_path) == []
    assert not (tmp_path / "envs").exists()  # this run made the folder, and took it away again


def test_a_users_conda_env_of_that_name_is_never_touched(tmp_path: Path, env: dict[str, str]) -> None:
    theirs = tmp_path / "conda" / "envs" / CONDA_ENV
    (theirs / "conda-meta").mkdir(parents=True)
    (tmp_path / "packages.txt").write_text(f"{MISSING}\n")
    proc = fix_cli(["--installer", "uv", "--json"], tmp_path, env)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and MISSING in doc["error"]
    assert any("raydoctor did not create it" in w for w in doc["plan"]["warnings"] + doc["outcome"]["warnings"])
    assert theirs.is_dir() and not [c for c in conda_calls(tmp_path) if c[:1] in (["create"], ["remove"])]


# -- interruptions -------------------------------------------------------------------------


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_during_install_leaves_nothing(tmp_path: Path, env: dict[str, str], silent_index, sig, code) -> None:
    url, contacted = silent_index
    (tmp_path / "packages.txt").write_text(f"--index-url {url}\nsix\n")
    proc = fix_popen(["--installer", "uv"], tmp_path, env)
    try:
        assert contacted.wait(120), "the install never reached the index"
        assert conda_envs(tmp_path) == [CONDA_ENV] and envs_listing(tmp_path)  # mid-build: there is something
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "✗ install (" in err and "Removed what this run created" in err
    assert ("interrupted (Ctrl-C)" if sig == signal.SIGINT else "terminated (SIGTERM)") in err
    assert conda_envs(tmp_path) == [] and not (tmp_path / "envs").exists()


def test_ctrl_c_while_conda_creates_leaves_no_conda_env(tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "FAKE_CONDA_FAULT": "hang-after-link"}
    proc = fix_popen(["--installer", "uv"], tmp_path, env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not conda_envs(tmp_path):
            time.sleep(0.1)
        # The env folder appears just before the fake conda hangs (tests/fake_conda/conda, hang-after-link):
        # conda is mid-create, and fix has recorded the env as its own before starting it.
        assert conda_envs(tmp_path), "conda create never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "✗ conda (" in err
    assert conda_envs(tmp_path) == [] and not (tmp_path / "envs").exists()


# -- two fixes at once -----------------------------------------------------------------------


def test_a_second_fix_refuses_or_waits_for_the_lock(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "packages.txt").write_text("six\n")
    dest = tmp_path / "envs" / ENV_NAME
    lock = EnvLock(dest, timeout=0)
    lock.acquire()  # as a running fix holds it
    try:
        refused = fix_cli(["--no-conda", "--lock-timeout", "0"], tmp_path, env)
        assert refused.returncode == 1
        assert f"another raydoctor fix is building envs/{ENV_NAME} (pid {os.getpid()})" in refused.stderr
        assert envs_listing(tmp_path) == [f".{ENV_NAME}.lock"]
        waiting = fix_popen(["--no-conda", "--lock-timeout", "120"], tmp_path, env)
        deadline = time.monotonic() + 60
        assert waiting.stderr is not None
        first = waiting.stderr.readline()
        while "waiting up to" not in first and time.monotonic() < deadline and first:
            first = waiting.stderr.readline()
        assert "waiting up to 120 s" in first and f"pid {os.getpid()}" in first
        assert not dest.exists()
    finally:
        lock.release()
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert (read_marker(dest) or {}).get("created_by") == "raydoctor"


def test_two_concurrent_fixes_build_once(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "packages.txt").write_text("six\n")
    procs = [fix_popen(["--no-conda", "--json"], tmp_path, env) for _ in range(2)]
    docs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        docs.append(json.loads(out))
    builders = [d for d in docs if d["outcome"]["env"]["built"]]
    assert len(builders) == 1 and builders[0]["outcome"]["action"] == "build"
    (other,) = [d for d in docs if not d["outcome"]["env"]["built"]]
    # it waited for the lock and found the env built, or (if it planned late) saw it already there
    assert other["outcome"]["env"]["built_by_other_run"] or other["outcome"]["action"] == "up-to-date"
    assert envs_listing(tmp_path) == [ENV_NAME]


def test_a_folder_raydoctor_did_not_make_is_left_alone(tmp_path: Path, env: dict[str, str]) -> None:
    mine = tmp_path / "envs" / ENV_NAME
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my own things")
    proc = fix_cli(["--no-conda"], tmp_path, env)
    assert proc.returncode == 1 and "raydoctor did not create it" in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and envs_listing(tmp_path) == [ENV_NAME]
