"""doctor.fix.providers: which interpreter fix builds from, with real interpreters and the fake conda."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from doctor.errors import FixError, UsageError
from doctor.fix.conda import Conda, CondaNetworkError
from doctor.fix.discover import discover
from doctor.fix.install import find_uv
from doctor.fix.providers import CondaProvider, default_search_dirs, find_interpreter, probe
from doctor.versions import VersionSpec
from tests.helpers import pyenv_versions

FAKE_CONDA = Path(__file__).parent / "fake_conda" / "conda"
PYENV = pyenv_versions()
PY312 = PYENV / "3.12.1" / "bin" / "python"
pytestmark = pytest.mark.needs(pyenv="3.12.1")


@pytest.fixture
def conda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Conda:
    monkeypatch.setenv("FAKE_CONDA_ROOT", str(tmp_path / "conda"))
    monkeypatch.setenv("FAKE_CONDA_LOG", str(tmp_path / "conda.log"))
    for var in ("FAKE_CONDA_FAULT", "FAKE_CONDA_FAULT_ON", "FAKE_CONDA_ENV_LIST", "FAKE_CONDA_PYTHONS"):
        monkeypatch.delenv(var, raising=False)
    found = Conda.locate({"CONDA_EXE": str(FAKE_CONDA), "PATH": ""})
    assert found is not None
    return found


def creates(tmp_path: Path) -> list[str]:
    log = tmp_path / "conda.log"
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return [c[3] for c in lines if c[:1] == ["create"]]


def test_exact_pyenv_interpreter_beats_creating_a_conda_env(tmp_path: Path, conda: Conda) -> None:
    interp = find_interpreter("3.12.1", conda=conda, env_name="rd", search_dirs=[PYENV])
    assert interp.path == PY312 and interp.version == "3.12.1"
    assert interp.source == "pyenv" and interp.exact and interp.created is None and not interp.warnings
    assert creates(tmp_path) == []


def test_conda_creates_the_exact_patch(tmp_path: Path, conda: Conda) -> None:
    interp = find_interpreter("3.11.7", conda=conda, env_name="rd311", search_dirs=[])
    assert interp.source == "conda env rd311" and interp.exact and not interp.warnings
    assert interp.created is not None and interp.path == interp.created.python
    assert interp.path == tmp_path / "conda" / "envs" / "rd311" / "bin" / "python"
    assert creates(tmp_path) == ["python=3.11.7"]


def test_packages_not_found_falls_back_to_the_minor_with_the_patch_rule(tmp_path: Path, conda: Conda) -> None:
    interp = find_interpreter("3.12.9", conda=conda, env_name="rd3129", search_dirs=[PYENV])
    assert creates(tmp_path) == ["python=3.12.9", "python=3.12"]
    assert interp.source == "conda env rd3129" and interp.version == "3.12.1" and not interp.exact
    assert interp.created is not None
    (warning,) = interp.warnings
    assert "no python=3.12.9" in warning
    assert "Ray Client (ray://) only needs the same Python 3.12" in warning
    assert "needs exactly Python 3.12.9" in warning


def test_without_conda_the_same_minor_is_used_with_a_warning(conda: Conda) -> None:
    interp = find_interpreter("3.12.9", conda=conda, env_name="x", allow_conda=False, search_dirs=[PYENV])
    assert interp.source == "pyenv" and interp.version == "3.12.1" and not interp.exact
    assert interp.created is None
    assert "Python 3.12.9 is not on this machine; using 3.12.1" in interp.warnings[0]


def test_network_error_becomes_a_warning_when_a_fallback_exists(conda: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "http")
    interp = find_interpreter("3.12.9", conda=conda, env_name="x", search_dirs=[PYENV])
    assert interp.source == "pyenv" and interp.version == "3.12.1"
    assert any("network error" in w and "CONNECTION FAILED" in w for w in interp.warnings)


def test_network_error_propagates_without_a_fallback(conda: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_FAULT", "http")
    with pytest.raises(CondaNetworkError, match="network error"):
        find_interpreter("3.12.9", conda=conda, env_name="x", search_dirs=[])


def test_a_users_env_of_that_name_is_never_touched(tmp_path: Path, conda: Conda) -> None:
    subprocess.run(
        [str(FAKE_CONDA), "create", "-n", "taken", "python=3.11", "--json", "--yes"], check=True, capture_output=True
    )
    mine = tmp_path / "conda" / "envs" / "taken" / "notes.txt"
    mine.write_text("keep")
    with pytest.raises(FixError, match="no Python 3.12 found.*not create it"):
        find_interpreter("3.12.1", conda=conda, env_name="taken", search_dirs=[])
    interp = find_interpreter("3.12.1", conda=conda, env_name="taken", search_dirs=[PYENV])
    assert interp.source == "pyenv"
    assert mine.read_text() == "keep" and creates(tmp_path) == ["python=3.11"]


def test_raydoctors_own_env_is_reused(tmp_path: Path, conda: Conda) -> None:
    first = find_interpreter("3.11.7", conda=conda, env_name="rd", search_dirs=[])
    again = find_interpreter("3.11.7", conda=conda, env_name="rd", search_dirs=[])
    assert again.path == first.path and again.source == "conda env rd" and again.exact
    assert first.created is not None and again.created is None  # not this run's: never removed by it
    assert creates(tmp_path) == ["python=3.11.7"]


def test_nothing_anywhere_says_how_to_install(conda: Conda, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CONDA_PYTHONS", "")
    with pytest.raises(FixError) as info:
        find_interpreter("3.4.10", conda=conda, env_name="rd", search_dirs=[PYENV])
    message = str(info.value)
    assert message.startswith("no Python 3.4 found: install it with")
    for command in ("`conda create -n rd python=3.4.10`", "`uv python install 3.4.10`", "`pyenv install 3.4.10`"):
        assert command in message


def test_pyenv_shims_that_refuse_to_run_are_skipped() -> None:
    shims = PYENV.parent / "shims"
    if not (shims / "python3.12").exists():
        pytest.skip("no pyenv shims here")
    assert probe(shims / "python3.12") is None  # "pyenv: python3.12: command not found"
    with pytest.raises(FixError, match="no Python 3.12 found"):
        find_interpreter("3.12.1", conda=None, env_name="x", search_dirs=[shims])


def test_python_x_y_on_path(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3.12").symlink_to(PY312)
    interp = find_interpreter("3.12.1", conda=None, env_name="x", environ={"PATH": str(bindir), "HOME": str(tmp_path)})
    assert interp.source == "PATH" and interp.path == bindir / "python3.12" and interp.exact


def test_uv_managed_layout(tmp_path: Path) -> None:
    uvdir = tmp_path / "uv" / "cpython-3.12.1-linux-x86_64-gnu" / "bin"
    uvdir.mkdir(parents=True)
    (uvdir / "python3").symlink_to(PY312)
    free = tmp_path / "uv" / "cpython-3.12.1+freethreaded-linux-x86_64-gnu" / "bin"
    free.mkdir(parents=True)
    (free / "python3").symlink_to(PY312)
    env = {"UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv"), "HOME": str(tmp_path), "PATH": ""}
    interp = find_interpreter("3.12.1", conda=None, env_name="x", environ=env)
    assert interp.source == "uv" and interp.path == uvdir / "python3"


def test_venv_interpreters_are_skipped(tmp_path: Path) -> None:
    uv = find_uv()
    if uv is None:
        pytest.skip("uv not installed")
    subprocess.run([str(uv), "venv", "-q", "--python", str(PY312), str(tmp_path / "v")], check=True)
    assert probe(tmp_path / "v" / "bin" / "python") is None
    with pytest.raises(FixError):
        find_interpreter("3.12.1", conda=None, env_name="x", search_dirs=[tmp_path / "v" / "bin"])


def test_minor_only_takes_the_newest_patch_as_exact() -> None:
    interp = find_interpreter("3.12", conda=None, env_name="x", search_dirs=[PYENV])
    assert interp.version == "3.12.1" and interp.exact


def test_default_search_dirs(tmp_path: Path) -> None:
    env = {"PYENV_ROOT": "/opt/pyenv", "HOME": str(tmp_path), "PATH": "/a:/b"}
    dirs = default_search_dirs(env)
    assert dirs == [Path("/opt/pyenv/versions"), tmp_path / ".local/share/uv/python", Path("/a"), Path("/b")]


@pytest.mark.parametrize("bad", ["3", "3.12.x", "python3.12", ""])
def test_bad_version_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        find_interpreter(bad, conda=None, env_name="x", search_dirs=[])


def test_discovery_is_read_only(tmp_path: Path, conda: Conda) -> None:
    """discover() finds what is here (conda only located) and creates nothing, even without an exact patch."""
    found = discover(VersionSpec.parse("3.12.9"), search_dirs=[PYENV], environ={"CONDA_EXE": str(FAKE_CONDA)})
    assert found.exact is None and found.closest is not None and found.closest.version == "3.12.1"
    assert found.conda is not None and found.conda.exe == FAKE_CONDA
    assert not (tmp_path / "conda.log").exists()  # conda was not run at all
    exact = discover(VersionSpec.parse("3.12.1"), search_dirs=[PYENV], environ={"CONDA_EXE": str(FAKE_CONDA)})
    assert exact.exact is not None and exact.exact.path == PY312 and exact.conda is None


def test_conda_provider_undoes_only_what_it_created(tmp_path: Path, conda: Conda) -> None:
    provider = CondaProvider(conda, "rd-undo", VersionSpec.parse("3.11.7"))
    interp = provider.provide()
    assert interp.created is not None and interp.path.exists() and interp.conda_env == "rd-undo"
    (removed,) = provider.undo()
    assert "rd-undo" in removed and "created by this run" in removed and not interp.path.parent.parent.exists()
    assert provider.undo() == []  # nothing left to undo
    again = CondaProvider(conda, "rd-keep", VersionSpec.parse("3.11.7"))
    again.provide()
    reused = CondaProvider(conda, "rd-keep", VersionSpec.parse("3.11.7"))
    assert reused.provide().created is None and reused.undo() == []  # an earlier run's env is kept
    assert (tmp_path / "conda" / "envs" / "rd-keep").is_dir()
