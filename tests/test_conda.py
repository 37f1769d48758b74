"""doctor.fix.conda against the fake conda in tests/fake_conda (conda's ``--json`` contract:
errors as JSON on stdout with exit 1, ``conda/exceptions.py``; argparse errors with exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from doctor.fix.conda import (
    CREATED_MARKER,
    Conda,
    CondaEnv,
    CondaError,
    CondaNetworkError,
    CondaPackagesNotFound,
    parse_json_output,
)
from tests.helpers import processes_mentioning, pyenv_versions

FAKE_CONDA = Path(__file__).parent / "fake_conda" / "conda"
needs_312 = pytest.mark.needs(pyenv="3.12.1")  # the fake conda's channel is pyenv's folder


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Conda:
    """The fake conda as $CONDA_EXE, with its state and log in tmp_path."""
    monkeypatch.setenv("CONDA_EXE", str(FAKE_CONDA))
    monkeypatch.setenv("FAKE_CONDA_ROOT", str(tmp_path / "conda"))
    monkeypatch.setenv("FAKE_CONDA_LOG", str(tmp_path / "conda.log"))
    for var in (
        "FAKE_CONDA_FAULT",
        "FAKE_CONDA_FAULT_ON",
        "FAKE_CONDA_ENV_LIST",
        "FAKE_CONDA_FLAVOR",
        "FAKE_CONDA_PYTHONS",
    ):
        monkeypatch.delenv(var, raising=False)
    conda = Conda.locate()
    assert conda is not None
    return conda


@pytest.fixture
def micromamba(tmp_path: Path, fake: Conda) -> Conda:
    """The same fake, run under the name micromamba (it then behaves like micromamba 2)."""
    link = tmp_path / "bin" / "micromamba"
    link.parent.mkdir()
    link.symlink_to(FAKE_CONDA)
    conda = Conda.locate({"PATH": str(link.parent)})
    assert conda is not None and conda.flavor == "micromamba"
    return conda


def calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "conda.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def creates(tmp_path: Path) -> list[list[str]]:
    return [c for c in calls(tmp_path) if c[:1] == ["create"]]


def run_fake(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FAKE_CONDA), *args], capture_output=True, text=True, env=env, timeout=30, check=False)


# -- locating ------------------------------------------------------------------


def test_locate_prefers_conda_exe_then_path(tmp_path: Path, fake: Conda) -> None:
    assert fake.exe == FAKE_CONDA and fake.flavor == "conda"
    bindir = tmp_path / "path"
    bindir.mkdir()
    (bindir / "mamba").symlink_to(FAKE_CONDA)
    assert Conda.locate({"PATH": str(bindir)}).flavor == "mamba"  # type: ignore[union-attr]
    (bindir / "conda").symlink_to(FAKE_CONDA)
    assert Conda.locate({"PATH": str(bindir)}).flavor == "conda"  # type: ignore[union-attr]
    assert Conda.locate({"PATH": str(tmp_path / "empty")}) is None
    assert Conda.locate({"CONDA_EXE": str(tmp_path / "missing"), "PATH": ""}) is None


def test_version(fake: Conda, micromamba: Conda) -> None:
    assert fake.version() == "25.7.0"
    assert micromamba.version() == "2.3.2"


# -- env list ----------------------------------------------------------------------


@needs_312
@pytest.mark.parametrize("shape", ["plain", "details", "info", "info-spaces"])
def test_env_prefixes_every_shape(tmp_path: Path, fake: Conda, monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    env = fake.create("study", "3.12.1")
    monkeypatch.setenv("FAKE_CONDA_ENV_LIST", shape)
    prefixes = fake.env_prefixes()
    assert tmp_path / "conda" in prefixes
    assert env.prefix in prefixes
    assert fake.env_exists("study") and not fake.env_exists("other")


def test_env_exists_sees_unregistered_folder(tmp_path: Path, fake: Conda) -> None:
    (tmp_path / "conda" / "envs" / "stray").mkdir(parents=True)
    assert fake.env_exists("stray")  # conda create -n stray would overwrite it
    assert fake.env_exists("base")


@needs_312
def test_micromamba_info_keys_with_spaces(tmp_path: Path, micromamba: Conda) -> None:
    assert micromamba.envs_dirs() == [tmp_path / "conda" / "envs"]
    micromamba.create("mm", "3.12")
    assert micromamba.env_exists("mm")


# -- create ------------------------------------------------------------------------


@needs_312
def test_create_links_a_real_python(tmp_path: Path, fake: Conda) -> None:
    env = fake.create("study_p3121", "3.12.1")
    assert env == CondaEnv("study_p3121", tmp_path / "conda" / "envs" / "study_p3121", env.python)
    assert env.python == env.prefix / "bin" / "python"
    out = subprocess.run(
        [str(env.python), "-c", "import sys; print(sys.version_info[:3])"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "(3, 12, 1)"
    assert (env.prefix / CREATED_MARKER).is_file() and Conda.created_by_raydoctor(env)
    assert creates(tmp_path) == [["create", "-n", "study_p3121", "python=3.12.1", "--json", "--quiet", "--yes"]]


@needs_312
def test_create_reads_past_nul_separated_progress(fake: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "progress")
    env = fake.create("withprogress", "python=3.12")
    assert env.python.exists()


@needs_312
def test_create_never_clobbers_an_existing_env(tmp_path: Path, fake: Conda) -> None:
    user = run_fake("create", "-n", "mine", "python=3.12", "--json", "--quiet", "--yes")
    assert user.returncode == 0
    keep = tmp_path / "conda" / "envs" / "mine" / "precious.txt"
    keep.write_text("the user's work")
    with pytest.raises(CondaError, match="already exists.*will not reuse or overwrite"):
        fake.create("mine", "3.12.1")
    assert keep.read_text() == "the user's work"
    assert len(creates(tmp_path)) == 1  # only the user's own create ran


def test_fake_itself_clobbers_with_yes(tmp_path: Path, fake: Conda) -> None:
    """Why create() checks first: real conda (and the fake) replace an env on --yes."""
    env = {**os.environ, "FAKE_CONDA_PYTHONS": str(pyenv_versions() / "*" / "bin" / "python")}
    run_fake("create", "-n", "x", "python", "--json", "--yes", env=env)
    marker = tmp_path / "conda" / "envs" / "x" / "mine.txt"
    marker.write_text("x")
    assert run_fake("create", "-n", "x", "python", "--json", "--yes", env=env).returncode == 0
    assert not marker.exists()


@needs_312
def test_packages_not_found_names_the_spec(tmp_path: Path, fake: Conda) -> None:
    with pytest.raises(CondaPackagesNotFound) as info:
        fake.create("p3129", "3.12.9")
    err = info.value
    assert err.exception_name == "PackagesNotFoundError"
    assert "python=3.12.9" in err.message and "\n" not in err.message
    assert not (tmp_path / "conda" / "envs" / "p3129").exists()


@needs_312
def test_micromamba_solver_problems_are_packages_not_found(micromamba: Conda) -> None:
    with pytest.raises(CondaPackagesNotFound, match="3.12.9"):
        micromamba.create("p3129", "3.12.9")


def test_http_error_is_a_network_error(tmp_path: Path, fake: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "http")
    with pytest.raises(CondaNetworkError) as info:
        fake.create("net", "3.12.1")
    assert info.value.exception_name == "CondaHTTPError"
    assert "network error" in info.value.message
    url = "https://conda.anaconda.org/conda-forge/linux-64/repodata.json"
    assert f"CONNECTION FAILED for url <{url}>" in info.value.message
    assert "\n" not in info.value.message
    assert not (tmp_path / "conda" / "envs" / "net").exists()


def test_micromamba_network_error_without_json(micromamba: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "http")
    with pytest.raises(CondaNetworkError, match="network error.*resolve host"):
        micromamba.create("net", "3.12.1")


def test_garbage_output(fake: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "garbage")
    with pytest.raises(CondaError) as info:
        fake.create("junk", "3.12.1")
    assert type(info.value) is CondaError
    assert "without a JSON answer: conda: something unexpected happened" in info.value.message


def test_hang_times_out_and_kills_conda(tmp_path: Path, fake: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "hang")
    slow = Conda(fake.exe, "conda", timeout=1.0)
    start = time.monotonic()
    with pytest.raises(CondaError, match=r"`.*conda create -n stuckenv python=3.12.1 .*` timed out after 1 s"):
        slow.create("stuckenv", "3.12.1")
    assert time.monotonic() - start < 15
    assert processes_mentioning("stuckenv") == []


def test_timeout_after_linking_removes_the_partial_env(
    tmp_path: Path, fake: Conda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "hang-after-link")
    slow = Conda(fake.exe, "conda", timeout=1.5)
    with pytest.raises(CondaError, match="timed out"):
        slow.create("halfway", "3.12.1")
    assert not (tmp_path / "conda" / "envs" / "halfway").exists()


def test_ctrl_c_during_create_removes_the_partial_env(
    tmp_path: Path, fake: Conda, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "hang-after-link")
    partial = tmp_path / "conda" / "envs" / "interrupted"

    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while not partial.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        fake.create("interrupted", "3.12.1")
    assert not partial.exists()
    assert processes_mentioning("interrupted") == []


@pytest.mark.parametrize("name", ["a/b", "has space", "c:d", "e#f", ""])
def test_bad_names_are_refused_before_calling(tmp_path: Path, fake: Conda, name: str) -> None:
    with pytest.raises(CondaError, match="invalid conda env name") as info:
        fake.create(name, "3.12.1")
    assert info.value.exception_name == "CondaValueError"
    assert creates(tmp_path) == []


def test_fake_rejects_bad_names_like_conda() -> None:
    out = run_fake(
        "create",
        "-n",
        "a b",
        "python=3.12",
        "--json",
        "--yes",
        env={**os.environ, "FAKE_CONDA_ROOT": "/nonexistent-unused"},
    )
    assert out.returncode == 1
    assert json.loads(out.stdout)["exception_name"] == "CondaValueError"


def test_argument_errors_exit_2_without_json(fake: Conda) -> None:
    out = run_fake("create", "--bogus")
    assert out.returncode == 2 and out.stdout == "" and "usage:" in out.stderr
    with pytest.raises(CondaError, match=r"rejected the command line .*unrecognized arguments: --frobnicate"):
        fake._json(["info", "--json", "--frobnicate"], timeout=30, what="conda info")


# -- remove ------------------------------------------------------------------------


@needs_312
def test_remove_exactly_that_prefix(tmp_path: Path, fake: Conda) -> None:
    other = fake.create("other", "3.12")
    env = fake.create("mine", "3.12")
    fake.remove(env)
    assert not env.prefix.exists() and other.prefix.exists()
    assert ["remove", "-p", str(env.prefix), "--all", "--json", "--quiet", "--yes"] in calls(tmp_path)
    assert not fake.env_exists("mine")


@needs_312
def test_micromamba_remove_uses_env_remove(tmp_path: Path, micromamba: Conda) -> None:
    env = micromamba.create("mm", "3.12")
    micromamba.remove(env)
    assert not env.prefix.exists()
    assert ["env", "remove", "-p", str(env.prefix), "--json", "--yes"] in calls(tmp_path)


# -- parsing -------------------------------------------------------------------------


def test_parse_json_output_takes_the_last_object() -> None:
    records = '{"fetch": "python", "finished": false}\0{"fetch": "pip", "finished": false}\0'
    assert parse_json_output(records + '{"success": true}\n') == {"success": True}
    assert parse_json_output(records + '{"success": true}\0') == {"success": True}
    assert parse_json_output('==> WARNING: newer conda <==\n{"a": 1}') == {"a": 1}
    assert parse_json_output(records + "{truncated") == {"fetch": "pip", "finished": False}
    assert parse_json_output("not json at all") is None
    assert parse_json_output("") is None


def test_fake_is_only_in_tests() -> None:
    assert FAKE_CONDA.is_file() and os.access(FAKE_CONDA, os.X_OK)
    assert FAKE_CONDA.read_text().startswith("#!/usr/bin/env python3")


def _token_spy(tmp_path: Path, name: str, stdout: str) -> tuple[Path, Path]:
    """A program that records whether it saw the Ray token, then answers like the real one."""
    seen = tmp_path / f"{name}.seen"
    exe = tmp_path / "spy" / name
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(
        "#!/bin/sh\n"
        f'printf "%s|%s" "${{RAY_AUTH_TOKEN-unset}}" "${{RAY_AUTH_TOKEN_PATH-unset}}" > {seen}\n'
        f"echo '{stdout}'\n"
    )
    exe.chmod(0o755)
    return exe, seen


def test_conda_and_interpreter_probes_never_see_the_ray_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conda and the interpreters fix probes are not the cluster: they do not inherit RAY_AUTH_TOKEN (proc.child_env)."""
    from doctor.fix.discover import probe

    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/tmp/tok")
    exe, seen = _token_spy(tmp_path, "conda", "conda 25.7.0")
    assert Conda(exe, "conda").version() == "25.7.0"
    assert seen.read_text() == "unset|unset"
    answer = (  # what doctor/local/probe_interpreter.py prints for a plain CPython 3.12.9
        '{"python": "3.12.9", "release": "3.12.9", "implementation": "CPython", "prefix": "/p", '
        '"base_prefix": "/p", "gil_disabled": false, "distributions": {}}'
    )
    python, seen_py = _token_spy(tmp_path, "python3.12", answer)
    assert probe(python) == "3.12.9"
    assert seen_py.read_text() == "unset|unset"
