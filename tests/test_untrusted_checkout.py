"""raydoctor run inside a repository it just cloned: nothing from that folder runs, whatever it plants.

Each planted module or executable writes a marker file when it runs; every test proves the marker
is absent afterwards (and that what raydoctor reports is the real thing).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from doctor.checks import roundtrip
from doctor.errors import UsageError
from doctor.local import interpreter
from doctor.local.interpreter import choose_interpreter, inspect_interpreter, resolve_pyenv_shim
from tests.ray_cluster import find_python

REAL = ".".join(map(str, sys.version_info[:3]))


def plant(repo: Path, marker: Path) -> Path:
    """A cloned repo whose modules shadow the stdlib and Ray; each one, imported, writes ``marker``."""
    evil = (
        f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
        'def dumps(*a, **k):\n    return \'{"python": "9.9.9", "distributions": {"ray": "6.6.6"}}\'\n'
        "def python_version():\n    return '9.9.9'\n"
        "__version__ = '6.6.6'\n"
    )
    repo.mkdir(parents=True, exist_ok=True)
    for name in ("json.py", "platform.py", "os.py", "time.py", "ray.py"):
        (repo / name).write_text(evil)
    (repo / "ray").mkdir(exist_ok=True)
    (repo / "ray" / "__init__.py").write_text(evil)
    (repo / "ray-6.6.6.dist-info").mkdir(exist_ok=True)
    return repo


def make_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def pythons() -> list:
    """This one, and the oldest Pythons the probe serves (2.7 has no -I, 3.6-3.10 no -P) where present."""
    found = [(minor, find_python(minor)) for minor in ("2.7", "3.6")]
    return [pytest.param(sys.executable, id="this"), *(pytest.param(str(p), id=m) for m, p in found if p)]


# ---------------------------------------------------------------- the interpreter probe


@pytest.mark.parametrize("python", pythons())
def test_interpreter_probe_ignores_modules_in_the_current_folder(tmp_path, monkeypatch, python):
    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    monkeypatch.chdir(repo)
    facts = inspect_interpreter(python, "test")
    assert not marker.exists(), marker.read_text()
    assert facts.python != "9.9.9" and "ray" not in facts.distributions
    if python == sys.executable:
        assert facts.python == REAL


@pytest.mark.parametrize("python", pythons())
def test_probe_script_drops_the_current_folder_itself(tmp_path, python):
    """The script's own defence, for an interpreter started in the repo anyway (PYTHONSAFEPATH unset)."""
    from doctor import proc

    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    done = proc.run([python, "-c", interpreter.PROBE_SCRIPT], timeout=30, env=env, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), marker.read_text()
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["python"] != "9.9.9" and "ray" not in data["distributions"]


def test_interpreter_probe_runs_in_an_empty_folder_without_the_token(tmp_path, monkeypatch):
    seen = tmp_path / "seen"
    fake = make_exe(
        tmp_path / "bin" / "python",
        f'#!/bin/sh\npwd > {seen}.cwd\nls -A > {seen}.ls\nenv > {seen}.env\necho \'{{"python": "3.12.1"}}\'\n',
    )
    repo = plant(tmp_path / "repo", tmp_path / "unused")
    monkeypatch.chdir(repo)
    environ = {"PATH": os.environ.get("PATH", ""), "RAY_AUTH_TOKEN": "s3cret", "RAY_AUTH_TOKEN_PATH": "/t"}
    facts = inspect_interpreter(str(fake), "test", environ=environ)
    assert facts.python == "3.12.1"
    env = Path(f"{seen}.env").read_text()
    assert "RAY_AUTH_TOKEN" not in env and "s3cret" not in env
    assert f"PYENV_DIR={repo}" in env  # a pyenv shim still picks the version of the user's folder
    assert Path(f"{seen}.cwd").read_text().strip() != str(repo)
    assert Path(f"{seen}.ls").read_text() == ""  # an empty folder
    assert not Path(Path(f"{seen}.cwd").read_text().strip()).exists()  # and it is gone


def test_relative_python_still_works_from_the_temporary_folder(tmp_path, monkeypatch):
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    path, why = choose_interpreter("venv/bin/python", {"PATH": ""})
    assert Path(path).is_absolute() and why == "--python"
    assert inspect_interpreter("venv/bin/python", "test").python == REAL


def test_bare_python_name_is_a_command_on_path_not_a_file_here(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    make_exe(tmp_path / "repo" / "python3", f"#!/bin/sh\ntouch {marker}\n")
    monkeypatch.chdir(tmp_path / "repo")
    with pytest.raises(UsageError, match=r"--python ./python3"):
        choose_interpreter("python3", {"PATH": str(tmp_path / "empty")})
    assert choose_interpreter("./python3", {"PATH": ""})[0] == str(tmp_path / "repo" / "python3")
    assert not marker.exists()


# ---------------------------------------------------------------- the round-trip probe


def test_roundtrip_probe_ignores_ray_in_the_current_folder(tmp_path, monkeypatch):
    """The test venv has no Ray: the probe must fail to import it rather than take the repo's."""
    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    monkeypatch.chdir(repo)
    run = roundtrip.run_probe(sys.executable, "ray://127.0.0.1:1", dict(os.environ), limit_s=20)
    assert not marker.exists(), marker.read_text()
    assert run.error is not None and run.error["phase"] == "import", (run.error, run.stderr_tail)
    assert "ray" in run.error["message"]


def test_roundtrip_script_drops_the_current_folder_itself(tmp_path):
    from doctor import proc

    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    done = proc.run([sys.executable, "-c", roundtrip.PROBE_SCRIPT, "ray://127.0.0.1:1"], timeout=30, env=env, cwd=repo)
    assert not marker.exists(), marker.read_text()
    assert done.returncode == 3 and "RAYDOCTOR_ERROR" in done.stdout


def test_roundtrip_probe_gets_the_token_but_not_ray_address(tmp_path, monkeypatch):
    seen = tmp_path / "seen"
    fake = make_exe(tmp_path / "bin" / "python", f"#!/bin/sh\npwd > {seen}.cwd\nenv > {seen}.env\n")
    monkeypatch.chdir(tmp_path)
    environ = {"PATH": os.environ.get("PATH", ""), "RAY_AUTH_TOKEN": "s3cret", "RAY_ADDRESS": "10.0.0.1:6379"}
    roundtrip.run_probe(str(fake), "ray://127.0.0.1:1", environ, limit_s=10)
    env = Path(f"{seen}.env").read_text().splitlines()
    assert "RAY_AUTH_TOKEN=s3cret" in env and not any(line.startswith("RAY_ADDRESS=") for line in env)
    assert Path(f"{seen}.cwd").read_text().strip() != str(tmp_path)


def test_roundtrip_probe_that_cannot_start_is_one_line(tmp_path):
    with pytest.raises(interpreter.InterpreterError, match="cannot run"):
        roundtrip.run_probe(str(tmp_path / "no-such-python"), "ray://127.0.0.1:1", {}, limit_s=5)


# ---------------------------------------------------------------- probe modules are data


@pytest.mark.parametrize("module", ["doctor.checks.roundtrip_probe", "doctor.local.probe_interpreter"])
def test_importing_a_probe_module_runs_nothing(module, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])  # roundtrip_probe's main() would read argv[1] and raise
    path_before = list(sys.path)
    sys.modules.pop(module, None)
    out = io.StringIO()
    with redirect_stdout(out):
        mod = importlib.import_module(module)
    assert out.getvalue() == ""
    assert sys.path == path_before
    assert callable(mod.main)


def test_probe_scripts_are_the_module_files():
    assert roundtrip.PROBE_SCRIPT == Path(roundtrip.__file__).with_name("roundtrip_probe.py").read_text()
    assert interpreter.PROBE_SCRIPT == Path(interpreter.__file__).with_name("probe_interpreter.py").read_text()


# ---------------------------------------------------------------- pyenv version names


EVIL_NAMES = ["../../repo/evil", "..", ".", "3.12.1/../../../repo/evil", "/abs/evil", "x\\..\\evil", "a:b"]


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_version_names_that_leave_pyenv_versions_are_not_names(name):
    assert not interpreter.safe_version_name(name)


@pytest.fixture
def pyenv(tmp_path):
    """A pyenv root whose shim and 3.12.1 run the real interpreter, and a repo with an evil executable."""
    root = tmp_path / "pyenv"
    shim = make_exe(root / "shims" / "python3", f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    real = make_exe(root / "versions" / "3.12.1" / "bin" / "python3", f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (root / "version").write_text("3.12.1\n")
    marker = tmp_path / "evil-ran"
    repo = tmp_path / "repo"
    make_exe(repo / "evil" / "bin" / "python3", f'#!/bin/sh\ntouch {marker}\necho \'{{"python": "9.9.9"}}\'\n')
    return root, shim, real, repo, marker


@pytest.mark.parametrize("name", ["../../repo/evil", "3.12.1/../../../repo/evil", "{repo}/evil"])
def test_python_version_file_cannot_walk_out_of_pyenv(pyenv, monkeypatch, name):
    root, shim, real, repo, marker = pyenv
    (repo / ".python-version").write_text(name.format(repo=repo) + "\n")
    env = {"PYENV_ROOT": str(root), "PATH": str(root / "shims")}
    assert resolve_pyenv_shim(str(shim), env, repo) == str(shim)  # pyenv itself decides, never the repo
    assert resolve_pyenv_shim(str(shim), {**env, "PYENV_VERSION": name.format(repo=repo)}, repo) == str(shim)
    monkeypatch.chdir(repo)
    path, _ = choose_interpreter(None, env)
    assert path == str(shim)
    assert inspect_interpreter(path, "python3 on PATH", environ=env).python == REAL
    assert not marker.exists()


def test_version_file_is_read_as_pyenv_reads_it(pyenv):
    root, shim, real, repo, marker = pyenv
    env = {"PYENV_ROOT": str(root)}
    (repo / ".python-version").write_text("# a comment\n\n../../repo/evil\n3.9.9 extra words\n3.12.1\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(real)  # comments, bad and missing names skipped
    (repo / ".python-version").write_text("../../repo/evil\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(shim)  # nothing valid: pyenv says "system"
    (repo / ".python-version").write_text("system\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(shim)
    (repo / ".python-version").write_text("3.12.1" + " " * (1 << 20) + "\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(real)  # a huge file is never read whole
    assert not marker.exists()
