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


# -- the one probe: check, fix's discovery and jobs.client read the same answer ---------------------------


def counting_python(tmp_path: Path) -> tuple[Path, Path]:
    """A ``python`` that notes each run in a log, then runs this interpreter: counts the probes raydoctor starts."""
    log = tmp_path / "runs.log"
    exe = make_exe(tmp_path / "counting" / "python", f'#!/bin/sh\necho run >> "{log}"\nexec "{sys.executable}" "$@"\n')
    return exe, log


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_the_probe_answers_what_discovery_reads():
    facts = inspect_interpreter(sys.executable, "test", isolated=True)
    assert facts.release == "%d.%d.%d" % sys.version_info[:3]
    assert facts.gil_disabled == bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))
    assert facts.implementation == __import__("platform").python_implementation()
    assert facts.job_client is None  # not asked: Ray is never imported unless the Jobs path asks


def test_the_job_client_question_leaves_the_other_facts(tmp_path):
    """The test venv has no Ray: the import fails inside the probe, and the facts still come back."""
    facts = inspect_interpreter(sys.executable, "test", job_client=True)
    assert facts.python and facts.distributions.get("pytest")
    assert facts.job_client is not None and not facts.job_client.works
    assert facts.job_client.error == "ModuleNotFoundError: No module named 'ray'"


def test_the_job_client_of_a_ray_env(head_python):
    facts = inspect_interpreter(str(head_python), "test", job_client=True, timeout=60)
    client = facts.job_client
    assert client is not None and client.works, client
    assert client.ray == facts.ray and client.python == facts.python


@pytest.mark.parametrize("mode, jobs_client", [("client", None), ("jobs", "jobs.client.missing")])
def test_check_runs_the_judged_interpreter_once(tmp_path, clean_env, mode, jobs_client):
    """One probe per check run, --mode jobs included: jobs.client reads the context's answer."""
    from doctor.app import run_check
    from doctor.options import TargetOptions

    exe, log = counting_python(tmp_path)
    options = TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", mode=mode, python=str(exe), roundtrip=False)
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    results = {r.id: r for r in report.results}
    assert results["local.interpreter"].status.value == "ok", results["local.interpreter"].summary
    assert (results["jobs.client"].code if "jobs.client" in results else None) == jobs_client
    assert runs(log) == 1


@pytest.mark.needs(pyenv="3.12.1")
def test_fixs_discovery_does_not_run_an_interpreter_check_probed(tmp_path):
    """``discover(known=...)``: the judged interpreter's facts stand for it; a symlink to it is the same one."""
    from doctor.fix.discover import discover
    from doctor.versions import VersionSpec
    from tests.helpers import pyenv_versions

    facts = inspect_interpreter(str(pyenv_versions() / "3.12.1" / "bin" / "python"), "test")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3.12").symlink_to(facts.executable)
    want = VersionSpec.parse("3.12.1")
    again = discover(want, use_conda=False, search_dirs=[bindir])
    reused = discover(want, use_conda=False, search_dirs=[bindir], known=[facts])
    assert again.probed == (str(bindir / "python3.12"),)  # without it, the candidate is run
    assert reused.probed == ()  # with it, nothing is
    assert again.exact is not None and again.exact == reused.exact
    assert reused.exact.path == bindir / "python3.12" and reused.exact.version == "3.12.1"


@pytest.mark.parametrize(
    "script, code, words",
    [
        ("#!/bin/sh\necho boom >&2\nexit 3\n", "jobs.client.no_interpreter", "boom"),
        ("#!/bin/sh\nsleep 30\n", "jobs.client.slow", "to import Ray's job client"),
    ],
)
def test_jobs_client_says_why_the_probe_failed(tmp_path, clean_env, monkeypatch, script, code, words):
    """jobs.client reads the probe's failure by its kind (InterpreterError.kind), never by its text."""
    from doctor import context
    from doctor.checks.jobs import job_client
    from doctor.options import TargetOptions

    monkeypatch.setattr(context, "JOB_CLIENT_TIMEOUT_S", 1.0)
    exe = make_exe(tmp_path / "python", script)
    options = TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", mode="jobs", python=str(exe))
    res = job_client(context.CheckContext(options, environ=clean_env, cwd=tmp_path))
    assert res.code == code and words in res.summary, res.summary


@pytest.mark.parametrize(
    "job_submission, missing, what",
    [
        (None, "ray", "Ray is not installed"),
        ("import aiohttp_not_installed_here\n", "aiohttp_not_installed_here", "ray[default]'s extras are missing"),
        ("raise RuntimeError('the job client broke')\n", None, "Ray's job client is broken"),
    ],
)
def test_jobs_client_reads_which_module_is_missing_not_the_message(tmp_path, clean_env, job_submission, missing, what):
    """The probe names the module an ImportError names (``exc.name``); jobs.client decides on that, not
    on the message's words: a Ray without its extras, no Ray, and a Ray whose job client raises."""
    import venv as venv_module

    from doctor.checks.jobs import job_client
    from doctor.context import CheckContext
    from doctor.options import TargetOptions

    env_dir = tmp_path / "env"
    venv_module.create(env_dir, with_pip=False)
    if job_submission is not None:
        site = next((env_dir / "lib").glob("python3*/site-packages"))
        (site / "ray").mkdir()
        (site / "ray" / "__init__.py").write_text("__version__ = '2.49.2'\n")
        (site / "ray" / "job_submission.py").write_text(job_submission)
    python = env_dir / "bin" / "python"
    facts = inspect_interpreter(str(python), "test", job_client=True)
    assert facts.job_client is not None and facts.job_client.missing == missing, facts.job_client
    ctx = CheckContext(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", mode="jobs", python=str(python)),
        environ=clean_env,
        cwd=tmp_path,
    )
    res = job_client(ctx)
    assert res.code == "jobs.client.missing", res.summary
    assert res.summary.startswith(f"{what} in {python}:"), res.summary
