"""Inspect the local interpreter by running a script inside it.

The interpreter judged need not be the one raydoctor runs in (virtualenv's
``py_info`` does the same): a small script prints JSON about itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from packaging.utils import canonicalize_name

from doctor.errors import UsageError

PROBE_SCRIPT = (Path(__file__).with_name("probe_interpreter.py")).read_text(encoding="utf-8")


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
    chosen_by: str  # "--python", "active venv", "active conda env", "python3 on PATH"
    distributions: dict[str, str] = field(default_factory=dict)  # canonical name -> version

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


def resolve_pyenv_shim(path: str, environ: Mapping[str, str], cwd: Path | None = None) -> str:
    """The interpreter a pyenv shim would run, without running the shim (~0.1 s of bash).

    pyenv's order: ``PYENV_VERSION``, a ``.python-version`` in the current folder or
    its parents, then ``$PYENV_ROOT/version``. Anything unclear keeps the shim.
    """
    shim = Path(path)
    if shim.parent.name != "shims":
        return path
    root = Path(environ.get("PYENV_ROOT") or shim.parent.parent)
    version = environ.get("PYENV_VERSION", "").split(":")[0].strip()
    if not version:
        here = (cwd or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            candidate = folder / ".python-version"
            if candidate.is_file():
                version = _first_word(candidate)
                break
    if not version and (root / "version").is_file():
        version = _first_word(root / "version")
    target = root / "versions" / version / "bin" / shim.name
    return str(target) if version and version != "system" and target.exists() else path


def _first_word(path: Path) -> str:
    try:
        words = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return ""
    return words[0] if words else ""


def choose_interpreter(spec: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(path, why): ``--python`` first, then the active venv, conda env, ``python3`` on PATH."""
    env = os.environ if environ is None else environ
    if spec:
        path = Path(spec).expanduser()
        if path.is_dir():
            path = _env_python(str(path))
        if path.exists():
            return str(path), "--python"
        found = shutil.which(spec, path=env.get("PATH"))
        if found:
            return found, "--python"
        raise UsageError(f"--python {spec!r}: no such file, and no command of that name on PATH")
    for var, why in (("VIRTUAL_ENV", "active venv"), ("CONDA_PREFIX", "active conda env")):
        if env.get(var) and _env_python(env[var]).exists():
            return str(_env_python(env[var])), why
    for name in ("python3", "python"):
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return resolve_pyenv_shim(found, env), f"{name} on PATH"
    return sys.executable, "raydoctor's own interpreter (no python3 on PATH)"


class InterpreterError(Exception):
    """The interpreter could not be run or did not answer."""


def inspect_interpreter(path: str, chosen_by: str, *, timeout: float = 20.0) -> LocalFacts:
    """Run the probe inside ``path``; raise ``InterpreterError`` with a one-line reason."""
    try:
        proc = subprocess.run(
            [path, "-c", PROBE_SCRIPT],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
    except subprocess.TimeoutExpired:
        raise InterpreterError(f"{path} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise InterpreterError(f"{path} cannot run: {exc.strerror or exc}") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterpreterError(f"{path} failed to report about itself: {err}")
    try:
        data = json.loads(lines[-1])
    except ValueError:
        raise InterpreterError(f"{path} printed something that is not the probe's JSON") from None
    dists = {canonicalize_name(str(k)): str(v) for k, v in (data.get("distributions") or {}).items()}
    return LocalFacts(
        executable=str(data.get("executable") or path),
        python=str(data["python"]),
        implementation=str(data.get("implementation", "CPython")),
        machine=str(data.get("machine", "")),
        system=str(data.get("system", "")),
        prefix=str(data.get("prefix", "")),
        base_prefix=str(data.get("base_prefix", "")),
        chosen_by=chosen_by,
        distributions=dists,
    )
