"""Jupyter kernelspecs, found as Jupyter finds them, without importing Jupyter.

A notebook's Python is not the shell's: it is the interpreter a kernelspec's ``kernel.json``
names in ``argv[0]``. ``check --kernel NAME`` judges that interpreter, and ``fix --kernel``
registers one (``doctor.fix.kernel``) where Jupyter will look first.

The search mirrors Jupyter's own code (jupyter_core 5.x, jupyter_client 8.x):

* ``jupyter_core/paths.py::jupyter_data_dir``: ``$JUPYTER_DATA_DIR``, else (with
  ``JUPYTER_PLATFORM_DIRS`` set, platformdirs' ``user_data_dir("jupyter")``, which on Linux is the
  same XDG folder) ``~/Library/Jupyter`` on macOS, ``%APPDATA%\\jupyter`` on Windows, else
  ``$XDG_DATA_HOME/jupyter`` or ``~/.local/share/jupyter``.
* ``jupyter_core/paths.py::jupyter_path``: ``$JUPYTER_PATH`` entries first, then the user folders
  (the data dir, and the Python user base's ``share/jupyter``) and the environment's
  ``{sys.prefix}/share/jupyter`` (environment first when ``JUPYTER_PREFER_ENV_PATH`` says so or
  Jupyter runs in a venv or a conda env: ``prefer_environment_over_user``), then the system folders
  ``/usr/local/share/jupyter`` and ``/usr/share/jupyter``; ``kernels`` under each.
* ``jupyter_client/kernelspec.py::KernelSpecManager._kernel_dirs_default`` adds
  ``~/.ipython/kernels`` last; ``find_kernel_specs`` keeps the first folder of a (lower-cased)
  name; a kernel folder is one holding ``kernel.json`` (``_is_kernel_dir``); names match
  ``^[a-z0-9._-]+$`` ignoring case (``_kernel_name_pat``).

``{sys.prefix}`` is the Jupyter server's own, which raydoctor (not running inside Jupyter) takes
from the ``jupyter`` command on PATH, and from the active venv or conda env.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from doctor.errors import UsageError
from doctor.origin import Chosen, PythonOrigin
from doctor.text import sanitize

# jupyter_client/kernelspec.py::_kernel_name_pat
KERNEL_NAME_RE = re.compile(r"^[a-z0-9._\-]+$", re.IGNORECASE)
KERNEL_JSON_CAP = 1024 * 1024  # a kernel.json is a few hundred bytes; never read a huge one whole
# jupyter_client/manager.py::KernelManager.format_kernel_cmd: these argv[0] are "the Python Jupyter runs in"
BARE_PYTHONS = re.compile(r"^python(\d+(\.\d+)?)?$")
SYSTEM_JUPYTER_PATH = ("/usr/local/share/jupyter", "/usr/share/jupyter")  # jupyter_core/paths.py, not Windows


class KernelSpecError(Exception):
    """A kernel.json that cannot be read or is not a kernelspec."""


def valid_kernel_name(name: str) -> bool:
    """Jupyter's rule (letters, digits, ``._-``), less the names made of dots only, which that rule
    admits and which, joined to a kernels folder, name the folder itself or its parent."""
    return bool(KERNEL_NAME_RE.match(name)) and set(name) != {"."}


def _falsy(value: str) -> bool:
    """jupyter_core/paths.py::envset: set unless one of its false words."""
    return value.lower() in ("no", "n", "false", "off", "0", "0.0")


def _home(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME") or (environ.get("USERPROFILE") if os.name == "nt" else None)
    return Path(home).resolve() if home else Path.home().resolve()


def jupyter_data_dir(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """Jupyter's user data folder, as ``jupyter_core.paths.jupyter_data_dir`` computes it."""
    if environ.get("JUPYTER_DATA_DIR"):
        return Path(environ["JUPYTER_DATA_DIR"])
    home = _home(environ)
    if platform == "darwin":
        return home / "Library" / "Jupyter"
    if platform == "win32":
        appdata = environ.get("APPDATA")
        return Path(appdata, "jupyter") if appdata else home / ".jupyter" / "data"
    return Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "jupyter"


def user_kernel_dir(environ: Mapping[str, str]) -> Path:
    """Where ``ipykernel install --user`` puts a kernelspec (``KernelSpecManager.user_kernel_dir``)."""
    return jupyter_data_dir(environ) / "kernels"


def prefix_kernel_dir(prefix: Path) -> Path:
    """Where ``ipykernel install --prefix PREFIX`` puts one (``KernelSpecManager._get_destination_dir``)."""
    return Path(prefix) / "share" / "jupyter" / "kernels"


def _jupyter_prefixes(environ: Mapping[str, str]) -> list[tuple[Path, bool]]:
    """(prefix, is an env) of the Jupyter that would run: the ``jupyter`` on PATH, the active envs."""
    out: list[tuple[Path, bool]] = []
    found = shutil.which("jupyter", path=environ.get("PATH"))
    if found:
        prefix = Path(found).resolve().parent.parent
        out.append((prefix, (prefix / "pyvenv.cfg").is_file() or (prefix / "conda-meta").is_dir()))
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if environ.get(var):
            env_prefix = Path(environ[var])
            is_env = var == "VIRTUAL_ENV" or environ.get("CONDA_DEFAULT_ENV", "base") != "base"
            if all(env_prefix != p for p, _ in out):
                out.append((env_prefix, is_env))
    return out


def jupyter_path(environ: Mapping[str, str]) -> list[Path]:
    """The data folders Jupyter searches, in its order (``jupyter_core.paths.jupyter_path``)."""
    paths: list[Path] = []
    if environ.get("JUPYTER_PATH"):
        paths += [Path(p.rstrip(os.sep)) for p in environ["JUPYTER_PATH"].split(os.pathsep) if p]
    user = [jupyter_data_dir(environ)]
    prefixes = _jupyter_prefixes(environ)
    # site.ENABLE_USER_SITE of Jupyter's Python: off in a venv (pyvenv.cfg) and with PYTHONNOUSERSITE
    user_site = not (prefixes and (prefixes[0][0] / "pyvenv.cfg").is_file()) and not environ.get("PYTHONNOUSERSITE")
    userbase = environ.get("PYTHONUSERBASE") or (str(_home(environ) / ".local") if os.name != "nt" else "")
    if user_site and userbase and sys.platform != "darwin":
        user_dir = Path(userbase, "share", "jupyter")
        if user_dir not in user:
            user.append(user_dir)
    env = [p / "share" / "jupyter" for p, _ in prefixes if str(p / "share" / "jupyter") not in SYSTEM_JUPYTER_PATH]
    if "JUPYTER_PREFER_ENV_PATH" in environ:
        prefer_env = not _falsy(environ["JUPYTER_PREFER_ENV_PATH"])
    else:
        prefer_env = bool(prefixes) and prefixes[0][1]
    paths += (env + user) if prefer_env else (user + env)
    if os.name != "nt":
        paths += [Path(p) for p in SYSTEM_JUPYTER_PATH]
    seen: set[str] = set()
    unique = []
    for path in paths:
        if str(path) not in seen:
            seen.add(str(path))
            unique.append(path)
    return unique


def kernel_dirs(environ: Mapping[str, str]) -> list[Path]:
    """The kernels folders, in the order ``KernelSpecManager`` searches them."""
    ipython = Path(environ["IPYTHONDIR"]) if environ.get("IPYTHONDIR") else _home(environ) / ".ipython"
    return [p / "kernels" for p in jupyter_path(environ)] + [ipython / "kernels"]


def find_kernels(environ: Mapping[str, str]) -> dict[str, Path]:
    """Kernel name (lower case) -> its folder; the first folder of a name wins (``find_kernel_specs``)."""
    found: dict[str, Path] = {}
    for folder in kernel_dirs(environ):
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in entries:
            path = folder / entry
            if path.is_dir() and (path / "kernel.json").is_file() and entry.lower() not in found:
                found[entry.lower()] = path
    return found


@dataclass(frozen=True)
class KernelSpec:
    """One kernelspec: its folder and what its ``kernel.json`` says."""

    name: str
    folder: Path
    argv: tuple[str, ...]
    display_name: str
    language: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.folder / "kernel.json"

    @property
    def made_by_raydoctor(self) -> bool:
        return isinstance(self.metadata.get("raydoctor"), dict)


def read_kernelspec(folder: Path, name: str | None = None) -> KernelSpec:
    """Read ``folder/kernel.json``; ``KernelSpecError`` with a one-line reason when it is not a kernelspec."""
    path = Path(folder) / "kernel.json"
    from doctor import files

    try:
        raw = files.read_bytes(path, KERNEL_JSON_CAP)
    except files.Unreadable as exc:
        if exc.too_large:
            raise KernelSpecError(f"{path}: larger than {KERNEL_JSON_CAP // 1024} KiB, not a kernelspec") from None
        raise KernelSpecError(f"{path}: cannot read it: {exc.reason}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise KernelSpecError(f"{path}: not valid JSON") from None
    argv = data.get("argv") if isinstance(data, dict) else None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise KernelSpecError(f"{path}: no argv list of strings, so no command to run")
    meta = data.get("metadata")
    return KernelSpec(
        name=name or Path(folder).name.lower(),
        folder=Path(folder),
        argv=tuple(argv),
        display_name=str(data.get("display_name") or ""),
        language=str(data.get("language") or ""),
        metadata=meta if isinstance(meta, dict) else {},
        raw=data,
    )


def find_kernel(name: str, environ: Mapping[str, str]) -> KernelSpec:
    """The kernelspec Jupyter would start for ``name``; UsageError (exit 2) naming the kernels that exist."""
    if not valid_kernel_name(name):
        raise UsageError(f"--kernel {name!r}: not a kernel name (letters, digits, '.', '_' and '-' only)")
    kernels = find_kernels(environ)
    folder = kernels.get(name.lower())
    if folder is None:
        listed = ", ".join(sanitize(k) for k in sorted(kernels)) or "none"
        raise UsageError(
            f"--kernel {name}: no such Jupyter kernel; kernels here: {listed}",
            hint="`jupyter kernelspec list` shows them too; `raydoctor fix --kernel` registers one",
        )
    try:
        return read_kernelspec(folder, name.lower())
    except KernelSpecError as exc:
        raise UsageError(f"--kernel {name}: {sanitize(str(exc))}") from None


def kernel_interpreter(spec: KernelSpec, environ: Mapping[str, str]) -> str:
    """The interpreter the kernel runs: ``argv[0]``; a bare ``python``/``python3`` resolved on PATH.

    jupyter_client (``KernelManager.format_kernel_cmd``) runs a bare ``python``/``python3`` as the
    Jupyter server's own ``sys.executable``: the one on PATH when Jupyter is started from the
    shell's env, which is what raydoctor can see. Other bare names are looked up on PATH as a shell
    would; ``{connection_file}`` and the other placeholders are arguments, never ``argv[0]``.
    """
    exe = spec.argv[0]
    if os.sep in exe or (os.altsep and os.altsep in exe):
        return exe
    found = shutil.which(exe, path=environ.get("PATH"))
    if found is None:
        why = "the Python Jupyter runs in" if BARE_PYTHONS.match(exe) else "a command"
        raise UsageError(
            f"--kernel {spec.name}: its kernel.json runs {sanitize(exe)!r} ({why}), and there is no such command on PATH"
        )
    return found


def kernel_choice(name: str, environ: Mapping[str, str]) -> tuple[str, Chosen]:
    """(interpreter, why) for ``--kernel NAME``."""
    spec = find_kernel(name, environ)
    return kernel_interpreter(spec, environ), Chosen(PythonOrigin.KERNEL, spec.name, str(spec.file))
