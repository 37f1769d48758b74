"""Inspect a local interpreter by running a script inside it.

The interpreter judged need not be the one raydoctor runs in (virtualenv's
``py_info`` does the same): a small script prints JSON about itself. It is the one
probe of a local interpreter: check's facts, fix's discovery of interpreters to build
from (``doctor.fix.discover``) and the Jobs API path's job client all read its answer,
through one bounded read and one parser (``inspect_interpreter``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from packaging.utils import canonicalize_name

from doctor import proc
from doctor.errors import UsageError
from doctor.origin import Chosen, PythonOrigin

# The probe is data: its text is read from the module file (importing that module runs nothing).
PROBE_SCRIPT = (Path(__file__).with_name("probe_interpreter.py")).read_text(encoding="utf-8")
# What is kept of the probe's output: its answer is a few KiB (~40 bytes a distribution, so an env of
# thousands of packages stays far below); more is read and dropped, and a cut answer is not JSON.
PROBE_OUTPUT_CAP = 1024 * 1024
PROBE_TIMEOUT_S = 20.0
# Importing Ray (the job client's question) takes seconds, more on a cold disk: the Jobs path's limit.
JOB_CLIENT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class JobClient:
    """Whether ``ray.job_submission.JobSubmissionClient`` imports in the interpreter (asked only on the
    Jobs API path: importing Ray is slow). ``error`` is the exception's last line where it does not;
    ``missing`` the module an ``ImportError`` named (``"ray"``: no Ray; another: Ray without an extra)."""

    ray: str | None = None
    python: str | None = None
    error: str | None = None
    missing: str | None = None

    @property
    def works(self) -> bool:
        return self.error is None


@dataclass
class LocalFacts:
    """What the judged interpreter is and has installed."""

    executable: str
    python: str
    implementation: str
    machine: str
    system: str
    prefix: str
    base_prefix: str
    chosen_by: str  # "--python", "active venv", "active conda env", "python3 on PATH": str(chosen), for the report
    distributions: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    release: str = ""  # "3.13.0" for 3.13.0rc1: sys.version_info's three numbers
    gil_disabled: bool = False  # a free-threaded build (PEP 703)
    job_client: JobClient | None = None  # only where it was asked (``inspect_interpreter(job_client=True)``)
    chosen: Chosen | None = None  # why this interpreter, as a type: what decisions read

    @property
    def ray(self) -> str | None:
        return self.distributions.get("ray")

    @property
    def in_venv(self) -> bool:
        return self.prefix != self.base_prefix

    def to_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "python": self.python,
            "implementation": self.implementation,
            "machine": self.machine,
            "system": self.system,
            "prefix": self.prefix,
            "chosen_by": self.chosen_by,
            "ray": self.ray,
            "distributions": len(self.distributions),
        }


def _env_python(prefix: str) -> Path:
    return Path(prefix) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# What pyenv reads of a version file: the first word of each line, each line cut at 1024 bytes, and never
# the whole of a file that may hold "something crazy" (pyenv's libexec/pyenv-version-file-read).
_VERSION_FILE_CAP = 64 * 1024
_LINE_CAP = 1024


def safe_version_name(name: str) -> bool:
    """Whether ``name`` may name a folder of ``$PYENV_ROOT/versions``.

    pyenv builds a path from the name, so a ``.python-version`` in a cloned repo holding
    ``../../repo/evil`` once made pyenv run the repo's executable (CVE-2022-35861). pyenv's fix
    (``libexec/pyenv-version-file-read``: a name that is ``..`` or holds ``/`` is skipped, since
    2.3.4 unless it stays inside ``$PYENV_ROOT/versions``) is applied strictly here: a name with a
    path separator, ``.``/``..``, a NUL or a ``:`` is never a version. A name raydoctor does not
    accept keeps the shim, and real pyenv then applies its own rule.
    """
    return bool(name) and name not in (".", "..") and not any(c in name for c in ("/", "\\", "\0", ":"))


def _read_versions(path: Path) -> list[str]:
    """The version names in a pyenv version file, as ``pyenv-version-file-read`` reads them."""
    from doctor import files

    try:
        raw = files.read_head(path, _VERSION_FILE_CAP)
    except files.Unreadable:  # a FIFO or a device named .python-version is no version file
        return []
    names = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        words = line[:_LINE_CAP].split()
        if not words or words[0].startswith("#"):
            continue  # empty lines and comments
        if safe_version_name(words[0]):
            names.append(words[0])
    return names


def _version_file(start: Path) -> Path | None:
    """The nearest ``.python-version`` from ``start`` upwards (pyenv's ``pyenv-version-file``)."""
    for folder in (start, *start.parents):
        candidate = folder / ".python-version"
        if candidate.is_file():
            return candidate
    return None


def resolve_pyenv_shim(path: str, environ: Mapping[str, str], cwd: Path | None = None) -> str:
    """The interpreter a pyenv shim would run, without running the shim (~0.1 s of bash).

    pyenv's order (``pyenv-version-name``): ``PYENV_VERSION``, else the nearest
    ``.python-version`` from the current folder up, else ``$PYENV_ROOT/version``; of the
    names found, the first whose ``bin/`` has the command (``pyenv-which``). Names that could
    leave ``$PYENV_ROOT/versions`` are ignored (see ``safe_version_name``) and the path found
    must lie inside that folder. Anything unclear keeps the shim.
    """
    shim = Path(path)
    if shim.parent.name != "shims" or not safe_version_name(shim.name):
        return path
    root = Path(environ.get("PYENV_ROOT") or shim.parent.parent).absolute()
    versions = root / "versions"
    if environ.get("PYENV_VERSION", "").strip():
        names = [n.strip() for n in environ["PYENV_VERSION"].split(":") if safe_version_name(n.strip())]
    else:
        here = Path(environ.get("PYENV_DIR") or cwd or Path.cwd()).absolute()
        found = _version_file(here)
        if found is None and (root / "version").is_file():
            found = root / "version"
        names = _read_versions(found) if found is not None else []
    for name in names:
        if name == "system":
            return path  # pyenv runs the next python on PATH: the shim knows how
        target = versions / name / "bin" / shim.name
        inside = os.path.normpath(target).startswith(os.path.normpath(versions) + os.sep)
        if inside and target.is_file() and os.access(target, os.X_OK):
            return str(target)
    return path


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or bool(os.altsep and os.altsep in spec) or spec.startswith("~")


def choose_interpreter(
    spec: str | None, environ: Mapping[str, str] | None = None, *, kernel: str | None = None
) -> tuple[str, Chosen]:
    """(path, why): ``--python`` (or ``--kernel NAME``: the Python that Jupyter kernel runs) first,
    then the active venv, conda env, ``python3`` on PATH.

    ``--python NAME`` without a path separator is a command on PATH, as in a shell: a file of
    that name in the current folder (a cloned repo) is not run unless written ``./NAME``. A
    folder of that name is taken as an env folder, since only a path can name one.
    """
    env = os.environ if environ is None else environ
    if kernel is not None:
        if spec:
            raise UsageError("give --python or --kernel, not both", hint="--kernel judges the Python the kernel runs")
        from doctor.local.kernels import kernel_choice

        return kernel_choice(kernel, env)
    if spec:
        path = Path(spec).expanduser()
        if _looks_like_path(spec) or path.is_dir():
            if path.is_dir():
                path = _env_python(str(path))
            if path.exists():
                return str(path.absolute()), Chosen(PythonOrigin.FLAG)
            raise UsageError(f"--python {spec!r}: no such file")
        found = shutil.which(spec, path=env.get("PATH"))
        if found:
            return found, Chosen(PythonOrigin.FLAG)
        here = f"; to use the file in this folder write --python ./{spec}" if path.is_file() else ""
        raise UsageError(f"--python {spec!r}: no command of that name on PATH{here}")
    for var, why in (("VIRTUAL_ENV", PythonOrigin.ACTIVE_VENV), ("CONDA_PREFIX", PythonOrigin.ACTIVE_CONDA)):
        if env.get(var) and _env_python(env[var]).exists():
            return str(_env_python(env[var])), Chosen(why)
    for name in ("python3", "python"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return resolve_pyenv_shim(found, env), Chosen(PythonOrigin.PATH, name)
    return sys.executable, Chosen(PythonOrigin.OWN)


FailureKind = Literal["timeout", "cannot_run", "failed", "not_json"]


class InterpreterError(Exception):
    """The interpreter could not be run or did not answer; ``kind`` says which, for decisions."""

    def __init__(self, message: str, kind: FailureKind = "failed") -> None:
        super().__init__(message)
        self.kind: FailureKind = kind


def probe_env(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The environment of the interpreter probe: the user's, less the Ray token (it talks to no cluster).

    ``PYTHONPATH`` and the user's site-packages stay: they are part of what the user's own scripts
    import, so part of what is judged. ``PYENV_DIR`` keeps a pyenv shim choosing the version of the
    user's folder although the probe runs from an empty one (pyenv's ``pyenv-version-file`` starts
    there). ``PYTHONSAFEPATH`` (Python 3.11+; older ones ignore it) keeps ``''`` off ``sys.path``.
    """
    env = proc.child_env(environ, with_token=False)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("PYENV_DIR", str(cwd or Path.cwd()))
    return env


def _job_client(raw: Any) -> JobClient | None:
    if not isinstance(raw, dict):
        return None
    if raw.get("error") is not None or not isinstance(raw.get("ray"), str):
        missing = raw.get("missing")
        return JobClient(
            error=str(raw.get("error") or "the probe did not say"),
            missing=missing[:200] if isinstance(missing, str) and missing else None,
        )
    return JobClient(ray=str(raw["ray"]), python=str(raw.get("python") or "") or None)


def read_answer(path: str, stdout: str, chosen_by: Chosen | str) -> LocalFacts:
    """The probe's JSON (its last line) as facts; ``InterpreterError`` for anything else."""
    lines = stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except (ValueError, RecursionError):  # RecursionError: an answer nested thousands deep
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("python"), str):
        raise InterpreterError(f"{path} printed something that is not the probe's JSON", "not_json")
    raw = data.get("distributions")
    dists: dict[str, str] = {
        canonicalize_name(str(k)): str(v) for k, v in (raw.items() if isinstance(raw, dict) else ())
    }
    return LocalFacts(
        executable=str(data.get("executable") or path),
        python=str(data["python"]),
        implementation=str(data.get("implementation", "CPython")),
        machine=str(data.get("machine", "")),
        system=str(data.get("system", "")),
        prefix=str(data.get("prefix", "")),
        base_prefix=str(data.get("base_prefix", "")),
        chosen_by=str(chosen_by),
        distributions=dists,
        release=str(data.get("release") or ""),
        gil_disabled=data.get("gil_disabled") is True,
        job_client=_job_client(data.get("job_client")),
        chosen=chosen_by if isinstance(chosen_by, Chosen) else None,
    )


def inspect_interpreter(
    path: str,
    chosen_by: Chosen | str,
    *,
    timeout: float = PROBE_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    job_client: bool = False,
    isolated: bool = False,
) -> LocalFacts:
    """Run the probe inside ``path``; raise ``InterpreterError`` with a one-line reason.

    The probe runs from a private empty folder (``proc.private_cwd``), and drops the current folder from
    ``sys.path`` before its first import (see ``probe_interpreter.py``): nothing in the folder
    raydoctor was started from (a cloned repo's ``json.py``) can run inside it.

    ``job_client``: also whether Ray's job client imports (``LocalFacts.job_client``). ``isolated``: run
    with ``-I`` and the plain child environment, for an interpreter fix may build from (its own
    ``sys.path``, not the user's ``PYTHONPATH``); the judged interpreter is probed as the user's
    scripts see it (``probe_env``).
    """
    exe = os.path.abspath(path) if _looks_like_path(path) else path
    # proc.run starts it in a private empty folder. Not -I for the judged one: PYTHONPATH and the user's
    # site-packages are part of what is judged (probe_env); the script drops sys.path[0] itself (2.7 has
    # no -I/-P).
    argv = [exe, "-I", "-c", PROBE_SCRIPT] if isolated else [exe, "-c", PROBE_SCRIPT]
    env = proc.child_env(environ) if isolated else probe_env(environ, cwd)
    try:
        done = proc.run(
            [*argv, *(["job_client"] if job_client else [])], timeout=timeout, env=env, cap=PROBE_OUTPUT_CAP
        )
    except proc.ProcTimeout:
        raise InterpreterError(f"{path} did not answer within {timeout:g} s", "timeout") from None
    except OSError as exc:
        raise InterpreterError(f"{path} cannot run: {exc.strerror or exc}", "cannot_run") from None
    if done.returncode != 0 or not done.stdout.strip():
        err = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterpreterError(f"{path} failed to report about itself: {err}", "failed")
    return read_answer(path, done.stdout, chosen_by)
