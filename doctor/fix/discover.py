"""Looking for interpreters and conda, read-only: nothing here creates anything.

Where fix looks, and in which order (``providers.py`` turns the findings into
something that may create; only the executor calls it):

1. An interpreter already on this machine with the exact patch: pyenv's versions
   folder, uv-managed Pythons, ``pythonX.Y`` on PATH. Instant, and exactly as correct
   as a fresh conda env.
2. conda, mamba or micromamba, located (``$CONDA_EXE``, ``$MAMBA_EXE``, PATH) but not
   run: whether it can create ``python=X.Y.Z`` is learnt only when it is asked to.
3. An interpreter already here with the same major.minor (the nearest patch).

Every candidate is verified by running it with ``-I`` and the one interpreter probe
(``doctor.local.interpreter``, the JSON script check runs too): pyenv shims for an
unselected version exist on PATH but refuse to run; a venv's interpreter is skipped
because it disappears with that venv; free-threaded builds are skipped because Ray's
wheels are not built for them. An interpreter check already probed in this run is not
run again (``discover(known=...)``). The probe does not inherit the Ray auth token
(``doctor.proc.child_env``). virtualenv does the same
(``src/virtualenv/discovery/py_info.py``: a script run inside the candidate).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doctor.errors import FixError
from doctor.local.interpreter import InterpreterError, LocalFacts, inspect_interpreter
from doctor.local.tools import CondaLocation, locate_conda
from doctor.versions import VersionSpec

if TYPE_CHECKING:
    from doctor.fix.conda import CondaEnv

PROBE_TIMEOUT_S = 10.0
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Interpreter:
    """An interpreter to build the env from, and how it was found."""

    path: Path
    version: str  # "3.12.1", as the interpreter itself reports it
    source: str  # "conda env NAME" | "pyenv" | "uv" | "PATH"
    exact: bool  # it satisfies the wanted version (the same patch; any patch for a minor-only want)
    created: CondaEnv | None = None  # a conda env this run created for it (providers only)
    warnings: tuple[str, ...] = ()
    conda_env: str | None = None  # the conda env it lives in, if any

    def with_warnings(self, *more: str) -> Interpreter:
        return Interpreter(
            self.path, self.version, self.source, self.exact, self.created, (*self.warnings, *more), self.conda_env
        )


@dataclass(frozen=True)
class Discovery:
    """What is already on this machine for a wanted Python."""

    want: VersionSpec
    exact: Interpreter | None = None  # satisfies ``want``
    closest: Interpreter | None = None  # same minor, nearest patch (None when ``exact`` is set)
    conda: CondaLocation | None = None
    probed: tuple[str, ...] = field(default_factory=tuple)  # what was run to learn this, for -v


def patch_rule(want: VersionSpec | str) -> str:
    """Why a patch difference matters for some connections and not others.

    Ray Client compares major.minor (``ray/util/client/__init__.py::_check_versions``);
    a driver or worker joining the GCS compares the patch too
    (``ray/_private/node.py::Node.check_version_info``).
    """
    spec = want if isinstance(want, VersionSpec) else VersionSpec.parse(str(want))
    return (
        f"Ray Client (ray://) only needs the same Python {spec.minor}, so this env works with "
        f'ray.init("ray://HOST:10001"); a driver or worker joining the cluster directly '
        f'(ray.init("HOST:6379"), ray start --address) needs exactly Python {spec}'
    )


def closest_warning(want: VersionSpec, interp: Interpreter) -> str:
    """What using another patch of the same minor means."""
    return (
        f"Python {want} is not on this machine; using {interp.version} from {interp.source} ({interp.path}). "
        f"{patch_rule(want)}"
    )


def no_interpreter(want: VersionSpec, conda_env: str, warnings: Sequence[str] = ()) -> FixError:
    """Nothing here and nothing conda could make: how to install one."""
    return FixError(
        f"no Python {want.minor} found: install it with `conda create -n {conda_env} python={want}` / "
        f"`uv python install {want}` / `pyenv install {want}`" + (f" ({'; '.join(warnings)})" if warnings else "")
    )


# -- conda, located only -------------------------------------------------------------


# -- interpreters ----------------------------------------------------------------------


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


def buildable_version(facts: LocalFacts) -> str | None:
    """The version of an interpreter fix may build from, or None: not CPython, a venv, or free-threaded."""
    if facts.implementation != "CPython" or facts.in_venv or facts.gil_disabled:
        return None
    return facts.release if _VERSION.fullmatch(facts.release) else None


def probe(exe: Path, timeout: float = PROBE_TIMEOUT_S, environ: Mapping[str, str] | None = None) -> str | None:
    """The version of a usable CPython at ``exe``, or None.

    None for anything that fails to run (a pyenv shim for an unselected
    version exits 127), is not CPython, is a venv, or is free-threaded.
    """
    try:
        facts = inspect_interpreter(str(exe), "fix's discovery", timeout=timeout, environ=environ, isolated=True)
    except InterpreterError:
        return None
    return buildable_version(facts)


def _key(exe: Path | str) -> Path:
    try:
        return Path(exe).resolve()
    except OSError:
        return Path(exe)


class Finder:
    """Candidates of one minor, each run at most once."""

    def __init__(
        self,
        dirs: Sequence[Path],
        minor: str,
        environ: Mapping[str, str] | None = None,
        known: Sequence[LocalFacts] = (),
    ) -> None:
        self._candidates = list(_candidates(dirs, minor))
        self._versions: dict[Path, str | None] = {}
        self._environ = environ
        # Interpreters this run already probed (check's judged one), by real path: asked again, they
        # would answer the same (the facts read here do not depend on -I).
        self._known = {_key(facts.executable): facts for facts in known if facts.release}

    @property
    def probed(self) -> tuple[str, ...]:
        """The interpreters run to learn this (an interpreter known beforehand is not)."""
        return tuple(str(p) for p in self._versions if _key(p) not in self._known)

    def version(self, exe: Path) -> str | None:
        if exe not in self._versions:
            known = self._known.get(_key(exe))
            self._versions[exe] = buildable_version(known) if known else probe(exe, environ=self._environ)
        return self._versions[exe]

    def exact(self, want: VersionSpec) -> Interpreter | None:
        """The interpreter with exactly ``want``'s patch (``want`` must be exact)."""
        for exe, source, claimed in self._candidates:
            if claimed is not None and claimed != str(want):
                continue  # its folder name says another patch: do not bother running it
            version = self.version(exe)
            if version is not None and want.satisfies(version):
                return Interpreter(exe, version, source, True)
        return None

    def closest(self, want: VersionSpec) -> Interpreter | None:
        """Same minor, nearest patch (ties: the newer); for a minor-only ``want``, the newest."""
        wanted = want.patch if want.patch is not None else 10**9
        best: tuple[tuple[int, int], Path, str, str] | None = None
        for exe, source, _claimed in self._candidates:
            version = self.version(exe)
            spec = VersionSpec.read(version) if version else None
            if spec is None or spec.patch is None or not want.same_minor(spec):
                continue
            rank = (abs(spec.patch - wanted), -spec.patch)
            if best is None or rank < best[0]:
                best = (rank, exe, source, version or "")
        if best is None:
            return None
        _, exe, source, version = best
        return Interpreter(exe, version, source, want.satisfies(version))


def discover(
    want: VersionSpec,
    *,
    use_conda: bool = True,
    search_dirs: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    known: Sequence[LocalFacts] = (),
) -> Discovery:
    """What this machine already has for ``want``: read-only, so a dry run may call it.

    ``search_dirs`` replaces the default folders (pyenv, uv, PATH from ``environ``),
    so tests can restrict the search. ``known``: interpreters this run already probed
    (check's judged one), not run again.
    """
    dirs = list(search_dirs) if search_dirs is not None else default_search_dirs(environ)
    finder = Finder(dirs, want.minor, environ, known)
    exact = finder.exact(want) if want.exact else None
    closest = None
    if exact is None:
        closest = finder.closest(want)
        if closest is not None and closest.exact:  # minor-only want: the newest patch is exactly right
            exact, closest = closest, None
    conda = locate_conda(environ) if use_conda and exact is None else None
    return Discovery(want, exact, closest, conda, finder.probed)
