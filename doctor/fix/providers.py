"""Find (or make) a Python interpreter of the version the cluster runs.

The order, and why:

1. An interpreter already on this machine with the exact patch (pyenv's
   versions folder, uv-managed Pythons, ``pythonX.Y`` on PATH). It is
   instant and exactly as correct as a fresh conda env, so it wins over
   creating one.
2. conda (or mamba/micromamba) creating ``python=X.Y.Z``; when its channels
   lack that patch, ``python=X.Y`` with a warning. An env of the same name
   is reused only if raydoctor made it; a user's env is never touched.
3. An interpreter already here with the same major.minor, with a warning.
4. Nothing: a FixError that says how to install one.

Every candidate is verified by running it (pyenv shims for an unselected
version exist on PATH but refuse to run; a venv's interpreter is skipped
because it disappears with that venv).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from doctor.errors import FixError, UsageError
from doctor.fix.conda import Conda, CondaEnv, CondaError, CondaPackagesNotFound

PROBE_TIMEOUT_S = 10.0
_PROBE = (
    "import sys, sysconfig; print('%d.%d.%d' % sys.version_info[:3], sys.implementation.name, "
    "int(sys.prefix != getattr(sys, 'base_prefix', sys.prefix)), "
    "int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))"
)
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Interpreter:
    """An interpreter to build the env from, and how it was found."""

    path: Path
    version: str  # "3.12.1", as the interpreter itself reports it
    source: str  # "conda env NAME" | "pyenv" | "uv" | "PATH"
    exact: bool  # the patch matches the wanted version
    created: CondaEnv | None = None  # a conda env this run created for it: remove it on failure
    warnings: tuple[str, ...] = ()


def patch_rule(want: str) -> str:
    """Why a patch difference matters for some connections and not others (REFERENCE §1)."""
    minor = _minor(want)
    return (
        f"Ray Client (ray://) only needs the same Python {minor}, so this env works with "
        f'ray.init("ray://HOST:10001"); a driver or worker joining the cluster directly '
        f'(ray.init("HOST:6379"), ray start --address) needs exactly Python {want}'
    )


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _vkey(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


# -- where to look -----------------------------------------------------------


def default_search_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """pyenv's versions folder, uv's managed-Python folder, then every PATH entry.

    uv's folder is computed the way uv does (``$UV_PYTHON_INSTALL_DIR``, then
    ``$XDG_DATA_HOME/uv/python``, then ``~/.local/share/uv/python``) rather
    than by running ``uv python find``, which costs a process and may
    consider interpreters we already look at.
    """
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    dirs = [Path(env.get("PYENV_ROOT") or home / ".pyenv") / "versions"]
    if env.get("UV_PYTHON_INSTALL_DIR"):
        dirs.append(Path(env["UV_PYTHON_INSTALL_DIR"]))
    elif os.name == "nt":
        dirs.append(Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "uv" / "python")
    else:
        dirs.append(Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "uv" / "python")
    dirs += [Path(p) for p in env.get("PATH", "").split(os.pathsep) if p]
    return dirs


def _exe_in(prefix: Path) -> Path | None:
    names = ("python.exe",) if os.name == "nt" else ("bin/python", "bin/python3")
    for name in names:
        if (prefix / name).exists():
            return prefix / name
    return None


def _candidates(dirs: Sequence[Path], minor: str) -> Iterator[tuple[Path, str, str | None]]:
    """(interpreter, source, version its folder name claims) for the wanted minor.

    A folder may be a versions folder (pyenv's ``3.12.1/``, uv's
    ``cpython-3.12.1-linux-x86_64-gnu/``) or a bin folder holding
    ``python3.12``; the layout, not the location, names the source.
    """
    pyenv_name = re.compile(rf"{re.escape(minor)}\.\d+")
    uv_name = re.compile(rf"cpython-({re.escape(minor)}\.\d+)-")  # "+freethreaded" never matches
    seen: set[Path] = set()
    for folder in dirs:
        try:
            children = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        found: list[tuple[Path, str, str | None]] = []
        for child in children:
            claimed = None
            if pyenv_name.fullmatch(child.name):
                source, claimed = "pyenv", child.name
            else:
                match = uv_name.match(child.name)
                if not match:
                    continue
                source, claimed = "uv", match.group(1)
            exe = _exe_in(child) if child.is_dir() else None
            if exe is not None:
                found.append((exe, source, claimed))
        on_path = folder / (f"python{minor}.exe" if os.name == "nt" else f"python{minor}")
        if on_path.is_file():
            found.append((on_path, "PATH", None))
        for exe, source, claimed in found:
            try:
                key = exe.resolve()
            except OSError:
                key = exe
            if key not in seen:
                seen.add(key)
                yield exe, source, claimed


def probe(exe: Path, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """The version of a usable CPython at ``exe``, or None.

    None for anything that fails to run (a pyenv shim for an unselected
    version exits 127), is not CPython, is a venv, or is free-threaded.
    """
    try:
        proc = subprocess.run(
            [str(exe), "-I", "-c", _PROBE],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = proc.stdout.split()
    if proc.returncode != 0 or len(fields) != 4:
        return None
    version, impl, is_venv, no_gil = fields
    if impl != "cpython" or is_venv != "0" or no_gil != "0" or not _VERSION.fullmatch(version):
        return None
    return version


class _Finder:
    """Candidates of one minor, each run at most once."""

    def __init__(self, dirs: Sequence[Path], minor: str) -> None:
        self._candidates = list(_candidates(dirs, minor))
        self._versions: dict[Path, str | None] = {}

    def version(self, exe: Path) -> str | None:
        if exe not in self._versions:
            self._versions[exe] = probe(exe)
        return self._versions[exe]

    def exact(self, want: str) -> tuple[Path, str, str] | None:
        for exe, source, claimed in self._candidates:
            if claimed is not None and claimed != want:
                continue  # its folder name says another patch: do not bother running it
            version = self.version(exe)
            if version == want:
                return exe, source, version
        return None

    def closest(self, want: str) -> tuple[Path, str, str] | None:
        """Same minor, nearest patch (ties: the newer)."""
        minor = _minor(want)
        wanted = _vkey(want)[2] if want.count(".") == 2 else 0
        best: tuple[tuple[int, int], Path, str, str] | None = None
        for exe, source, _claimed in self._candidates:
            version = self.version(exe)
            if version is None or _minor(version) != minor:
                continue
            patch = _vkey(version)[2]
            rank = (abs(patch - wanted), -patch)
            if best is None or rank < best[0]:
                best = (rank, exe, source, version)
        return best[1:] if best else None


# -- conda -------------------------------------------------------------------


def _from_conda(conda: Conda, want: str, env_name: str, warnings: list[str]) -> Interpreter | None:
    """Reuse raydoctor's own env of that name, or create it; None when conda cannot help."""
    source = f"conda env {env_name}"
    existing = conda.get_env(env_name)
    if existing is not None:
        if not conda.created_by_raydoctor(existing):
            warnings.append(
                f"conda env {env_name!r} already exists and raydoctor did not create it: "
                "leaving it alone and not using conda"
            )
            return None
        version = probe(existing.python)
        if version is None or _minor(version) != _minor(want):
            warnings.append(
                f"conda env {env_name!r} (made by an earlier raydoctor run) holds "
                f"Python {version or 'that does not run'}, not {want}: not using it"
            )
            return None
        if version != want:
            warnings.append(f"reusing conda env {env_name!r} with Python {version}. {patch_rule(want)}")
        return Interpreter(existing.python, version, source, version == want, None, tuple(warnings))

    try:
        env = conda.create(env_name, want)
    except CondaPackagesNotFound:
        if want.count(".") != 2:
            warnings.append(f"conda's channels have no python={want}")
            return None
        minor = _minor(want)
        try:
            env = conda.create(env_name, minor)
        except CondaPackagesNotFound:
            warnings.append(f"conda's channels have neither python={want} nor python={minor}")
            return None
        warnings.append(
            f"conda's channels have no python={want} (conda-forge keeps only some patches); "
            f"created {env_name!r} with python={minor} instead. {patch_rule(want)}"
        )
    version = probe(env.python)
    if version is None:
        conda.remove(env)
        raise CondaError(f"conda env {env_name!r} was created but its Python does not run ({env.python})")
    if version != want and want.count(".") == 2 and not any(patch_rule(want) in w for w in warnings):
        warnings.append(f"conda gave Python {version}, not {want}. {patch_rule(want)}")
    return Interpreter(env.python, version, source, version == want or want.count(".") == 1, env, tuple(warnings))


# -- the entry point ---------------------------------------------------------


def find_interpreter(
    want: str,
    *,
    conda: Conda | None,
    env_name: str,
    allow_conda: bool = True,
    search_dirs: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Interpreter:
    """An interpreter for Python ``want`` ("3.12.9", or "3.12" for any patch).

    Order: an exact interpreter already here, then conda (``env_name`` is
    the env it may create; ``Interpreter.created`` is set when it did), then
    the same minor already here, each with a warning that explains the
    patch rule. ``search_dirs`` replaces the default folders (pyenv, uv,
    PATH from ``environ``) so tests can restrict the search. A conda
    failure (network, timeout) is raised only when no fallback exists;
    otherwise it becomes a warning.
    """
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", want):
        raise UsageError(f"not a Python version: {want!r} (expected X.Y.Z or X.Y)")
    minor = _minor(want)
    dirs = list(search_dirs) if search_dirs is not None else default_search_dirs(environ)
    finder = _Finder(dirs, minor)
    warnings: list[str] = []

    if want.count(".") == 2:
        found = finder.exact(want)
        if found:
            exe, source, version = found
            return Interpreter(exe, version, source, True)
    else:  # any patch will do: the newest
        found = finder.closest(f"{want}.{10**6}")
        if found:
            exe, source, version = found
            return Interpreter(exe, version, source, True)

    conda_error: CondaError | None = None
    if allow_conda and conda is not None:
        try:
            interp = _from_conda(conda, want, env_name, warnings)
        except CondaError as exc:
            conda_error = exc
        else:
            if interp is not None:
                return interp

    found = finder.closest(want)
    if found:
        exe, source, version = found
        if conda_error is not None:
            warnings.append(f"conda could not provide Python {want}: {conda_error}")
        warnings.append(
            f"Python {want} is not on this machine; using {version} from {source} ({exe}). {patch_rule(want)}"
        )
        return Interpreter(exe, version, source, False, None, tuple(warnings))

    if conda_error is not None:
        raise conda_error
    raise FixError(
        f"no Python {minor} found: install it with `conda create -n {env_name} python={want}` / "
        f"`uv python install {want}` / `pyenv install {want}`" + (f" ({'; '.join(warnings)})" if warnings else "")
    )
