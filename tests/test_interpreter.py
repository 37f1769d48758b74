"""Choosing and inspecting the local interpreter (a probe script run inside it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from doctor.errors import UsageError
from doctor.local.interpreter import InterpreterError, choose_interpreter, inspect_interpreter, resolve_pyenv_shim
from doctor.origin import PythonOrigin


def make_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_order_python_flag_then_venv_then_conda_then_path(tmp_path):
    venv_py = make_exe(tmp_path / "venv/bin/python", "#!/bin/sh\n")
    conda_py = make_exe(tmp_path / "conda/bin/python", "#!/bin/sh\n")
    path_py = make_exe(tmp_path / "bin/python3", "#!/bin/sh\n")
    env = {
        "PATH": str(tmp_path / "bin"),
        "VIRTUAL_ENV": str(tmp_path / "venv"),
        "CONDA_PREFIX": str(tmp_path / "conda"),
    }

    def chosen(spec):  # (path, the report's words, the type decisions read)
        path, why = choose_interpreter(spec, env)
        return path, str(why), why.origin

    assert chosen(str(path_py)) == (str(path_py), "--python", PythonOrigin.FLAG)
    assert chosen(str(tmp_path / "conda")) == (str(conda_py), "--python", PythonOrigin.FLAG)  # an env folder
    assert chosen(None) == (str(venv_py), "active venv", PythonOrigin.ACTIVE_VENV)
    del env["VIRTUAL_ENV"]
    assert chosen(None) == (str(conda_py), "active conda env", PythonOrigin.ACTIVE_CONDA)
    del env["CONDA_PREFIX"]
    assert chosen(None) == (str(path_py), "python3 on PATH", PythonOrigin.PATH)
    assert chosen("python3") == (str(path_py), "--python", PythonOrigin.FLAG)


def test_unknown_python_flag_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no-such-python"):
        choose_interpreter("no-such-python", {"PATH": str(tmp_path)})


def test_pyenv_shim_is_resolved_like_pyenv(tmp_path):
    root = tmp_path / "pyenv"
    shim = make_exe(root / "shims/python3", "#!/bin/sh\n")
    real_a = make_exe(root / "versions/3.12.1/bin/python3", "#!/bin/sh\n")
    real_b = make_exe(root / "versions/3.11.7/bin/python3", "#!/bin/sh\n")
    (root / "version").write_text("3.11.7\n")
    project = tmp_path / "project" / "sub"
    project.mkdir(parents=True)
    env = {"PYENV_ROOT": str(root)}
    assert resolve_pyenv_shim(str(shim), env, project) == str(real_b)  # global version file
    (tmp_path / "project" / ".python-version").write_text("3.12.1\n")
    assert resolve_pyenv_shim(str(shim), env, project) == str(real_a)  # a parent's .python-version wins
    assert resolve_pyenv_shim(str(shim), {**env, "PYENV_VERSION": "3.11.7"}, project) == str(real_b)  # env wins
    assert resolve_pyenv_shim(str(shim), {**env, "PYENV_VERSION": "3.9.9"}, project) == str(
        shim
    )  # unknown: keep the shim
    assert resolve_pyenv_shim(str(real_a), env, project) == str(real_a)  # not a shim


def test_inspect_this_interpreter():
    facts = inspect_interpreter(sys.executable, "test")
    assert facts.python == ".".join(map(str, sys.version_info[:3]))
    assert facts.distributions.get("pytest")  # the probe sees installed distributions
    assert facts.executable


@pytest.mark.parametrize(
    "script, words",
    [
        ("#!/bin/sh\necho boom >&2\nexit 3\n", "boom"),
        ("#!/bin/sh\necho not-json\n", "not the probe's JSON"),
        ("#!/bin/sh\nsleep 30\n", "did not answer"),
    ],
)
def test_broken_interpreters_say_why(tmp_path, script, words):
    exe = make_exe(tmp_path / "python", script)
    with pytest.raises(InterpreterError, match=words):
        inspect_interpreter(str(exe), "test", timeout=1)


def test_not_executable(tmp_path):
    path = tmp_path / "python"
    path.write_text("")
    os.chmod(path, 0o644)
    with pytest.raises(InterpreterError, match="cannot run"):
        inspect_interpreter(str(path), "test")
