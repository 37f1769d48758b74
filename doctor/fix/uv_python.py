"""uv's managed Pythons: look one up (read-only, for the plan) and install one (the executor only).

uv (the binary of the ``uv`` package raydoctor depends on, ``uv.find_uv_bin()``, else
PATH) knows every python-build-standalone release; ``uv python install X.Y.Z`` fetches
the exact patch a head runs in seconds. How uv is driven, and why:

- **Looking** (``lookup``): ``uv python list X.Y.Z --all-versions --managed-python
  --output-format json`` lists ``key`` (``cpython-3.12.9-linux-x86_64-gnu``),
  ``version``, ``path`` (null when not installed) and ``url`` (what would be
  downloaded, after ``UV_PYTHON_INSTALL_MIRROR``). It creates nothing (not even the
  install folder), so the plan and ``--dry-run`` may call it. ``uv python dir`` names
  the install folder (``UV_PYTHON_INSTALL_DIR``, else uv's data dir).
- **Installing** (``doctor.fix.providers.UvProvider.provide``; this module only looks): ``uv python install KEY --no-bin``, so
  nothing lands in ``~/.local/bin`` unasked. The user's environment goes to uv as it is
  (``UV_PYTHON_INSTALL_DIR``, ``UV_PYTHON_INSTALL_MIRROR``,
  ``UV_PYTHON_DOWNLOADS_JSON_URL``, ``UV_OFFLINE``, ``UV_PYTHON_DOWNLOADS``…), less the
  Ray token (``doctor.proc.child_env``). uv does not check that the interpreter inside a
  download is the version its entry names, so the installed one is probed and refused
  (and removed) when it is not the wanted patch.
- **Undoing** (``UvProvider.undo``): ``uv python uninstall KEY`` for exactly the
  key this run installed, never a version request (``3.12.9`` would also match other
  builds of that version). uv's uninstall, not removing the folder by hand, because uv
  also keeps a minor-version link (``cpython-3.12-linux-x86_64-gnu`` → the newest
  installed patch) that it repoints or removes on uninstall; removing the folder alone
  would leave that link dangling. When the install folder itself did not exist before
  this run, uv's bookkeeping there (``.lock``, ``.gitignore``, an empty ``.temp``) and
  then the empty folder are removed too. A managed Python that was there before this run
  is used as is and never touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor import proc, uv_config
from doctor.versions import VersionSpec

LIST_TIMEOUT_S = 60.0  # a remote UV_PYTHON_DOWNLOADS_JSON_URL is fetched by the listing
INSTALL_TIMEOUT_S = 900.0
UNINSTALL_TIMEOUT_S = 120.0
BOOKKEEPING = (".lock", ".gitignore")  # what uv writes into a fresh install folder besides the Pythons
TMPDIR = ".temp"


@dataclass(frozen=True)
class UvPython:
    """One managed Python uv knows: installed (``path``) or downloadable (``url``)."""

    key: str
    version: str
    path: Path | None
    url: str | None

    @property
    def installed(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class UvLookup:
    """What uv has for a wanted Python; ``python`` None with ``reason`` when it cannot help."""

    uv: Path | None
    want: VersionSpec
    python: UvPython | None = None
    install_dir: Path | None = None
    reason: str = ""  # why uv cannot help (python is None), or a note for the plan
    offline: bool = False


def find_uv_bin(environ: Mapping[str, str] | None = None) -> Path | None:
    """The ``uv`` package's binary, else ``uv`` on PATH (the same one the installer uses)."""
    from doctor.local.tools import find_uv

    return find_uv(environ)


def uv_env(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The user's environment (their uv settings included) for uv, without the Ray token, plain output,
    and no uv configuration found in folders (``doctor.uv_config.isolated_env``; relative path settings
    are taken against ``cwd``, the user's folder)."""
    env = proc.child_env(environ)
    env.update({"NO_COLOR": "1", "UV_NO_PROGRESS": "1"})
    env.pop("VIRTUAL_ENV", None)
    return uv_config.isolated_env(env, cwd)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def downloads_refused(environ: Mapping[str, str]) -> str | None:
    """uv's own setting that forbids installing a Python, as uv would refuse it; None when allowed.

    ``UV_PYTHON_DOWNLOADS=never`` refuses even ``uv python install`` ("manual" and
    "automatic" allow it).
    """
    if (environ.get("UV_PYTHON_DOWNLOADS") or "").strip().lower() == "never":
        return "UV_PYTHON_DOWNLOADS=never forbids uv to install a Python"
    return None


def one_line_error(lines: list[str], fallback: str) -> str:
    """uv's error and its innermost cause on one line ("Failed to install …: Hash mismatch for …").

    uv wraps its messages at ``COLUMNS`` (a terminal's width, exported by some shells and by pytest-xdist):
    an indented line that starts no new ``error:``/``cause:`` continues the one before, so the cause is
    read whole rather than cut at the wrap.
    """
    error = ""
    cause = ""
    last = ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("error:"):
            error, last = line.removeprefix("error:").strip(), "error"
        elif line.startswith("cause:"):
            cause, last = line.removeprefix("cause:").strip(), "cause"
        elif line and raw[:1].isspace() and last == "cause":
            cause = f"{cause} {line}"
        elif line and raw[:1].isspace() and last == "error":
            error = f"{error} {line}"
        else:
            last = ""
    if not error:
        rest = [ln.strip() for ln in lines if ln.strip()]
        error = rest[-1] if rest else fallback
    return f"{error}: {cause}" if cause and cause not in error else error


def uv_run(uv: Path, args: list[str], environ: Mapping[str, str], timeout: float, cwd: Path) -> proc.Completed:
    """uv with ``args``, started in a private empty folder (``proc.run``'s default), never in ``cwd``:
    ``cwd`` is the user's folder, where relative path settings in ``environ`` point."""
    return proc.run([str(uv), *args, "--color", "never"], timeout=timeout, env=uv_env(environ, cwd), cap=1 << 20)


def install_dir(uv: Path, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """uv's managed-Python folder (``uv python dir``): ``UV_PYTHON_INSTALL_DIR`` or uv's data dir."""
    try:
        done = uv_run(uv, ["python", "dir"], environ, LIST_TIMEOUT_S, cwd)
    except (OSError, proc.ProcTimeout):
        return None
    text = done.stdout.strip().splitlines()
    if done.returncode != 0 or not text:
        return None
    path = Path(text[-1].strip())
    return path if path.is_absolute() else cwd / path


def _entries(data: Any) -> list[UvPython]:
    out: list[UvPython] = []
    if not isinstance(data, list):
        return out
    for item in data:
        if not isinstance(item, dict):
            continue
        key, version = item.get("key"), item.get("version")
        if not isinstance(key, str) or not isinstance(version, str):
            continue
        if item.get("implementation") not in (None, "cpython") or item.get("variant") not in (None, "default"):
            continue  # free-threaded and debug builds: Ray's wheels are not built for them
        path, url = item.get("path"), item.get("url")
        out.append(
            UvPython(key, version, Path(path) if isinstance(path, str) else None, url if isinstance(url, str) else None)
        )
    return out


def lookup(
    want: VersionSpec,
    *,
    environ: Mapping[str, str] | None = None,
    uv: Path | None = None,
    cwd: Path | None = None,
) -> UvLookup:
    """What uv's managed Pythons hold for exactly ``want`` (X.Y.Z): read-only.

    An installed one wins over a download; a minor-only ``want`` is not looked up (uv
    would pick a patch the head may not run).
    """
    env = dict(os.environ if environ is None else environ)
    uv = uv or find_uv_bin(env)
    offline = _truthy(env.get("UV_OFFLINE"))
    if uv is None:
        return UvLookup(None, want, reason="uv is not installed (`pip install uv`)")
    if not want.exact:
        return UvLookup(
            uv, want, reason=f"the head's patch is unknown (only {want.minor}): uv is asked for exact patches"
        )
    here = (cwd or Path.cwd()).absolute()
    args = ["python", "list", str(want), "--all-versions", "--managed-python", "--output-format", "json"]
    try:
        done = uv_run(uv, args, env, LIST_TIMEOUT_S, here)
    except proc.ProcTimeout:
        return UvLookup(uv, want, reason=f"`uv python list` ran past {LIST_TIMEOUT_S:g} s", offline=offline)
    except OSError as exc:
        return UvLookup(uv, want, reason=f"uv did not run: {exc}", offline=offline)
    if done.returncode != 0:
        why = one_line_error(done.stderr.splitlines(), f"exit {done.returncode}")
        return UvLookup(uv, want, reason=f"`uv python list` failed: {why}", offline=offline)
    try:
        found = [p for p in _entries(json.loads(done.stdout or "[]")) if p.version == str(want)]
    except (ValueError, RecursionError):
        return UvLookup(uv, want, reason="`uv python list` did not print JSON", offline=offline)
    folder = install_dir(uv, env, here)
    if not found:  # with downloads refused, uv lists only what is installed
        why = downloads_refused(env) or f"uv does not know Python {want}"
        return UvLookup(uv, want, install_dir=folder, reason=why, offline=offline)
    best = next((p for p in found if p.installed), found[0])
    if best.path is not None and not best.path.is_absolute():  # uv shows paths relative to its cwd
        best = UvPython(best.key, best.version, here / best.path, best.url)
    if best.installed and folder is not None and (folder / best.key).is_dir():
        best = UvPython(best.key, best.version, exe_in(folder / best.key, want), best.url)
    return UvLookup(uv, want, best, folder, offline=offline)


def exe_in(prefix: Path, want: VersionSpec) -> Path:
    """The interpreter inside one key's folder (not via uv's minor link, which may be repointed)."""
    if os.name == "nt":
        return prefix / "python.exe"
    for name in (f"python{want.minor}", "python3", "python"):
        if (prefix / "bin" / name).exists():
            return prefix / "bin" / name
    return prefix / "bin" / "python3"


def describe_lookup(found: UvLookup) -> str:
    """For the plan: which managed Python, from where, into where."""
    py = found.python
    if py is None:
        return found.reason
    if py.installed:
        return f"uv's managed Python {py.key}, already installed ({py.path}): used as is"
    where = f" into {found.install_dir}" if found.install_dir else ""
    offline = " (UV_OFFLINE: only a file:// or cached download works)" if found.offline else ""
    return (
        f"uv python install {py.key} --no-bin: downloads {py.url or 'from uv’s list'}{where}{offline}; "
        "nothing in ~/.local/bin; removed again if fix fails"
    )
