"""Build the env in a temporary sibling, then move it into place in one rename.

Why a sibling and a rename: the env at ``envs/NAME`` is either complete or
absent, never half-installed, and a failed or interrupted fix leaves any
older env there untouched. The rename is atomic because the sibling lives in
the same folder (same filesystem).

The catch: a venv hard-codes its own path (``bin/activate`` sets
``VIRTUAL_ENV='...'``, console scripts such as ``bin/pip`` start with
``#!/.../bin/python``, ``pyvenv.cfg`` records the command). So
``commit_venv`` first rewrites the temporary path to the final one in the
venv's text files (``bin/*``, ``pyvenv.cfg``, ``*.pth``), *then* renames: after
the rename every script names the right interpreter and ``activate`` the
right folder. Nothing runs from the venv between the rewrite and the rename.
(The alternative, building at the final path and treating a marker file as
"complete", would delete the old env before the new one is known to work.)
Windows ``.exe`` launchers are binary and are not rewritten; ``python -m pip``
works there regardless.

``raydoctor-env.json`` inside the env records what it holds; a rerun compares
it with what is wanted and does nothing when it matches. ``EnvLock`` keeps
two fixes off the same env.

A marker is trusted only when it is sealed: an HMAC, under a key kept in this
user's raydoctor state folder (never in the checkout), over the marker and the
env's own facts (its path, ``pyvenv.cfg``, where ``bin/python`` points, the
pinned Ray's installed ``RECORD``). A cloned repo can ship an env folder with any
files in it, so a hash of those files alone would prove nothing; without the key
it cannot make a seal. An env whose marker is not trusted is never called up to
date, never run, never replaced or deleted (``trusted_marker``, ``marker_problem``).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from doctor import proc
from doctor.errors import EXIT_FINDINGS, DoctorError, FixError, UsageError
from doctor.files import Unreadable, read_head
from doctor.files import read_bytes as read_capped
from doctor.fix.install import tool_env
from doctor.local.requirements import MAX_BYTES as REQUIREMENTS_MAX_BYTES
from doctor.local.requirements import requirement_files
from doctor.local.tools import find_uv
from doctor.state import state_dir

MARKER = "raydoctor-env.json"
MARKER_SCHEMA = "raydoctor.env/2"  # /2: sealed (``seal``) and bound to the env (``env``)
MARKER_CAP = 1024 * 1024  # a marker is a few hundred bytes; a bigger one is not ours
SEAL_KEY = "env-seal.key"
DEFAULT_LOCK_WAIT_S = 5.0
_TMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")
_BIN = "Scripts" if os.name == "nt" else "bin"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted at the name must not hang the open
_SYMLINK_ERRNOS = {errno.ELOOP, getattr(errno, "EMLINK", errno.ELOOP), getattr(errno, "EFTYPE", errno.ELOOP)}


def env_dir_name(ray_version: str, python_version: str) -> str:
    """The env's folder name says what it holds: ``ray2.49.2-py3.12.9``.

    One naming rule for the whole tool: check's remedies suggest the same name.
    """
    from doctor.remedies import env_name

    return env_name(ray_version, python_version)


def venv_python(env: Path) -> Path:
    """The interpreter of the venv at ``env``."""
    return env / _BIN / ("python.exe" if os.name == "nt" else "python")


def temp_path(dest: Path) -> Path:
    """Where ``dest`` is built: ``dest.parent/.NAME.tmp-PID``."""
    dest = Path(dest).absolute()
    return dest.parent / f".{dest.name}.tmp-{os.getpid()}"


def _is_ours(path: Path) -> bool:
    """Only folders named by this module's own pattern are ever deleted by it."""
    return bool(_TMP.match(path.name))


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process there: assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temps(dest: Path) -> list[Path]:
    """Remove ``.NAME.tmp-PID`` / ``.NAME.old-PID`` left by fixes that died (SIGKILL, power loss).

    Call it while holding the EnvLock: then no live fix is building ``dest``;
    a folder whose pid is still alive is kept anyway. A symlink of that name is
    removed as a link (its target is never touched). Returns only what is gone.
    """
    dest = Path(dest).absolute()
    removed: list[Path] = []
    if not dest.parent.is_dir():
        return removed
    for path in dest.parent.iterdir():
        match = _TMP.match(path.name)
        if not (match and match.group("name") == dest.name and not _pid_alive(int(match.group("pid")))):
            continue
        try:
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path)
        except OSError:
            pass  # what is left stays unreported: it was not removed
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def discard_venv(tmp: Path) -> None:
    """Delete a temporary venv made by ``create_venv`` (refuses any other path)."""
    tmp = Path(tmp)
    if not _is_ours(tmp):
        raise ValueError(f"not a raydoctor temporary env: {tmp}")
    if tmp.is_symlink():
        tmp.unlink()
    elif tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)


def create_venv(python: Path, dest: Path, *, installer: str) -> Path:
    """Make a venv (with pip) from ``python`` at ``temp_path(dest)`` and return that path.

    The prompt is ``dest``'s name (the default would be the temporary
    name). ``installer`` "uv" uses ``uv venv --seed`` (fast); "pip" uses the
    ``virtualenv`` library in-process (its bundled pip wheel: no network);
    "auto" means uv when available. On any failure or Ctrl-C the temporary
    folder is removed before the exception propagates.
    """
    dest = Path(dest).absolute()
    tmp = temp_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    uv = find_uv() if installer in ("uv", "auto") else None
    if installer == "uv" and uv is None:
        raise FixError("--installer uv: uv is not installed", hint="`pip install uv`, or use --installer pip")
    if tmp.exists() or tmp.is_symlink():
        discard_venv(tmp)  # our own pid's name: a leftover of a dead process that had it
    try:
        # Made here, empty and ours (mkdir never follows a symlink planted at the name), so the
        # venv tool fills a folder this process created rather than whatever the name points to.
        os.mkdir(tmp, 0o755)
    except FileExistsError:
        raise FixError(f"{tmp} reappeared while this fix was starting; leaving it alone") from None
    try:
        if uv is not None:
            _uv_venv(uv, Path(python), tmp, dest.name)
        else:
            _virtualenv(Path(python), tmp, dest.name)
        if not venv_python(tmp).exists():
            raise FixError(f"the new venv has no interpreter at {venv_python(tmp)}")
        pip = tmp / _BIN / ("pip.exe" if os.name == "nt" else "pip")
        if not pip.exists():
            raise FixError(f"the new venv at {tmp} has no pip")
    except BaseException:
        discard_venv(tmp)
        raise
    return tmp


def _uv_venv(uv: Path, python: Path, tmp: Path, prompt: str) -> None:
    # --no-project: no pyproject.toml found above uv's folder chooses anything (tool_env: no uv.toml either)
    args = [str(uv), "venv", "--seed", "--no-project", "--python", str(python.absolute()), "--prompt", prompt]
    args += ["--color", "never", str(tmp)]
    try:
        rc, lines = proc.stream(args, timeout=300, env=tool_env())  # SIGINT first: uv removes its temp files
    except proc.ProcTimeout:
        raise FixError(f"`uv venv` from {python} timed out after 300 s") from None
    if rc != 0:
        errors = [ln.strip() for ln in lines if ln.strip()]
        raise FixError(f"`uv venv` from {python} failed: {' '.join(errors[-2:]) or f'exit {rc}'}")


def _virtualenv(python: Path, tmp: Path, prompt: str) -> None:
    """``python -m virtualenv`` (raydoctor's own), in a private empty folder like every child.

    A child, not ``cli_run`` in this process: virtualenv starts Pythons of its own (the interpreter's
    self-report, ``-m venv`` on some), which inherit its working folder; in-process that was the
    checkout. Not ``-I``: raydoctor (and its virtualenv) may be installed in the user's site-packages,
    which ``-I`` drops; the private folder keeps ``sys.path[0]`` empty and PYTHONSAFEPATH drops it (3.11+).
    """
    import importlib.util

    if importlib.util.find_spec("virtualenv") is None:
        raise FixError(
            "the virtualenv package is not installed", hint="`pip install virtualenv`, or use --installer uv"
        )
    args = [str(tmp), "--python", str(python.absolute()), "--prompt", prompt, "--quiet", "--no-periodic-update"]
    args.append("--no-download")
    env = tool_env({"PYTHONSAFEPATH": "1"})
    try:
        rc, lines = proc.stream([sys.executable, "-m", "virtualenv", *args], timeout=300, env=env)
    except proc.ProcTimeout:
        raise FixError(f"virtualenv from {python} timed out after 300 s") from None
    except OSError as exc:
        raise FixError(f"could not run virtualenv: {exc.strerror or exc}") from None
    if rc != 0:
        said = [ln.strip() for ln in lines if ln.strip()]
        if rc == 2 and any("usage:" in ln for ln in said):  # virtualenv's argument parser
            raise FixError(f"virtualenv rejected its arguments: {said[-1] if said else ' '.join(args)}")
        raise FixError(f"virtualenv could not create a venv from {python}: {said[-1] if said else f'exit {rc}'}")


# -- moving into place -------------------------------------------------------


def _path_pairs(tmp: Path, dest: Path) -> list[tuple[bytes, bytes]]:
    """(old, new) spellings of the env path: as given and with symlinks resolved."""
    pairs = [(str(tmp.absolute()), str(dest.absolute()))]
    real_tmp = tmp.resolve()
    pairs.append((str(real_tmp), str(real_tmp.parent / dest.name)))
    out: list[tuple[bytes, bytes]] = []
    for old, new in pairs:
        item = (os.fsencode(old), os.fsencode(new))
        if item not in out and item[0] != item[1]:
            out.append(item)
    return out


def _relocate(tmp: Path, dest: Path) -> list[Path]:
    """Rewrite ``tmp``'s path to ``dest``'s in the venv's text files; returns the files changed."""
    pairs = _path_pairs(tmp, dest)
    files: list[Path] = [tmp / "pyvenv.cfg"]
    bindir = tmp / _BIN
    if bindir.is_dir():
        files += sorted(bindir.iterdir())
    files += sorted(tmp.glob("lib/python*/site-packages/*.pth"))
    files += sorted(tmp.glob("Lib/site-packages/*.pth"))
    changed = []
    for path in files:
        try:  # a symlink, a non-regular file or a large one is never patched
            data = read_capped(path, 4 * 1024 * 1024, follow_symlinks=False)
        except Unreadable:
            continue
        if b"\0" in data[:8192]:
            continue  # a binary (an .exe launcher, a compiled tool): never patched
        new = data
        for old_b, new_b in pairs:
            new = new.replace(old_b, new_b)
        if new != data:
            mode = path.stat().st_mode
            path.write_bytes(new)
            os.chmod(path, mode)
            changed.append(path)
    return changed


def commit_venv(tmp: Path, dest: Path, *, replace: bool = False) -> None:
    """Move the finished venv from ``tmp`` to ``dest`` in one rename.

    Paths inside the venv are rewritten first (see the module docstring).
    Fails with FixError if ``dest`` exists, unless ``replace`` is true and
    ``dest`` is an env raydoctor made (``trusted_marker``): then the old env
    is moved aside, the new one renamed in, and the old one deleted; if the
    second rename fails the old env is put back.
    """
    tmp, dest = Path(tmp).absolute(), Path(dest).absolute()
    if tmp.parent != dest.parent:
        raise ValueError(f"{tmp} is not a sibling of {dest}")
    if not (tmp / "pyvenv.cfg").is_file():
        raise FixError(f"{tmp} is not a finished venv")
    old: Path | None = None
    if dest.exists() or dest.is_symlink():
        if not replace:
            raise FixError(f"{dest} appeared while this env was being built; leaving it alone")
        if trusted_marker(dest) is None:
            why = marker_problem(dest)
            raise FixError(
                f"{dest} exists and raydoctor did not create it{f' ({why})' if why else ''}; not replacing it"
            )
    _relocate(tmp, dest)
    _reseal(tmp, dest)
    if dest.exists() and replace:
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError as exc:
        if old is not None:
            os.rename(old, dest)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or dest.exists():
            raise FixError(f"{dest} appeared while this env was being built; leaving it alone") from None
        raise FixError(f"could not move the new env into place at {dest}: {exc.strerror}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- what an env holds ---------------------------------------------------------


def requirements_hash(requirements: Sequence[Path], extra: Sequence[str] = ()) -> str:
    """sha256 over the requirements files (nested ``-r``/``-c`` included) and ``extra``.

    Any change to what would be installed changes the hash, so a rerun
    rebuilds; no change means the env still matches.
    """
    digest = hashlib.sha256()
    for path in requirement_files([Path(p) for p in requirements]):
        try:
            data = read_capped(path, REQUIREMENTS_MAX_BYTES)
        except Unreadable as exc:  # read a moment ago by the parser: swapped since
            raise UsageError(f"requirements file {path} cannot be read: {exc.reason}") from None
        digest.update(path.name.encode() + b"\0" + data + b"\0")
    for item in extra:
        digest.update(b"extra\0" + item.encode() + b"\0")
    return "sha256:" + digest.hexdigest()


# -- the seal ------------------------------------------------------------------


def _seal_key(*, create: bool) -> bytes | None:
    """The key that seals markers; made (32 random bytes, mode 0600) on the first build."""
    path = state_dir() / SEAL_KEY
    try:
        key = read_capped(path, 64, follow_symlinks=False, private=True)
        return key if len(key) == 32 else None
    except Unreadable as exc:
        if not exc.missing and create:
            raise FixError(
                f"raydoctor's seal key {path} is unusable ({exc.reason})",
                hint="remove it; the next fix makes a new one",
            ) from None
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, partial = tempfile.mkstemp(prefix=f".{SEAL_KEY}.", dir=path.parent)
    try:
        os.write(fd, secrets.token_bytes(32))
        os.close(fd)
        try:
            os.link(partial, path)  # never replaces: a key another fix made first wins
        except FileExistsError:
            pass
    finally:
        os.unlink(partial)
    return _seal_key(create=False)


def _sha256_file(path: Path) -> str | None:
    if path.is_symlink() or not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _env_facts(env: Path, at: Path | None = None) -> dict[str, Any]:
    """What binds a marker to its env: the path, ``pyvenv.cfg``, ``bin/python``, the pinned Ray's RECORD."""
    python = venv_python(env)
    if python.is_symlink():
        interpreter: str | None = "link:" + os.readlink(python)
    else:
        interpreter = _sha256_file(python)
    records = sorted(env.glob("lib/python*/site-packages/ray-*.dist-info/RECORD"))
    records += sorted(env.glob("Lib/site-packages/ray-*.dist-info/RECORD"))
    ray_record = None
    if records:
        digest = hashlib.sha256()
        for record in records:
            digest.update(f"{record.parent.name}\0{_sha256_file(record)}\0".encode())
        ray_record = "sha256:" + digest.hexdigest()
    return {
        "path": str(Path(at or env).absolute()),
        "pyvenv_cfg": _sha256_file(env / "pyvenv.cfg"),
        "python": interpreter,
        "ray_record": ray_record,
    }


def _seal(key: bytes, data: Mapping[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "seal"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return "hmac-sha256:" + hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _sealed(key: bytes | None, data: Mapping[str, Any]) -> bool:
    """Whether ``data`` carries a seal made with ``key`` (constant-time comparison)."""
    if key is None:
        return False
    return hmac.compare_digest(str(data.get("seal", "")).encode("utf-8"), _seal(key, data).encode("utf-8"))


def _write_json(target: Path, data: Mapping[str, Any]) -> None:
    """Write ``target`` whole or not at all: a private temporary file in its folder, then one rename."""
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise


def write_marker(
    env: Path,
    *,
    ray_version: str,
    python_version: str,
    requirements_hash: str,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``raydoctor-env.json``, sealed for ``env`` (call it on the temporary venv, before ``commit_venv``,
    which seals it again for the final path). Pass the interpreter the env was made from as ``interpreter=``."""
    from doctor import __version__

    env = Path(env)
    data: dict[str, Any] = {
        "schema": MARKER_SCHEMA,
        "created_by": "raydoctor",
        "raydoctor_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ray_version": ray_version,
        "python_version": python_version,
        "requirements_hash": requirements_hash,
        **extra,
        "build_id": secrets.token_hex(16),
        "env": _env_facts(env),
    }
    key = _seal_key(create=True)
    assert key is not None
    data["seal"] = _seal(key, data)
    _write_json(env / MARKER, data)
    return data


def _reseal(tmp: Path, dest: Path) -> None:
    """After ``_relocate``: seal ``tmp``'s marker again for ``dest``, where it is about to be renamed.

    Only a marker this user's raydoctor sealed for ``tmp`` is carried over; any other is removed,
    so that nothing unsealed is ever moved into place looking like raydoctor's.
    """
    if not os.path.lexists(tmp / MARKER):
        return
    try:
        data = json.loads(read_capped(tmp / MARKER, MARKER_CAP, follow_symlinks=False))
    except (Unreadable, ValueError, RecursionError):
        data = None
    key = _seal_key(create=False)
    if not isinstance(data, dict) or not _sealed(key, data) or (data.get("env") or {}).get("path") != str(tmp):
        os.unlink(tmp / MARKER)
        return
    assert key is not None
    data["env"] = _env_facts(tmp, at=dest)
    data["seal"] = _seal(key, data)
    _write_json(tmp / MARKER, data)


@dataclass(frozen=True)
class Marker:
    """A marker raydoctor wrote for this very env (see ``trusted_marker``); ``data`` is the JSON."""

    data: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def ray_version(self) -> str | None:
        return self.data.get("ray_version")

    @property
    def python_version(self) -> str | None:
        return self.data.get("python_version")

    @property
    def requirements_hash(self) -> str | None:
        return self.data.get("requirements_hash")

    @property
    def interpreter(self) -> str | None:
        """The interpreter the env was made from, as the build recorded it."""
        return self.data.get("interpreter")


def check_marker(env: Path) -> tuple[Marker | None, str | None]:
    """(the trusted marker, None) or (None, why not); (None, None) when there is no marker at all."""
    env = Path(env)
    path = env / MARKER
    if not os.path.lexists(path):
        return None, None
    if env.is_symlink():
        return None, f"{env.name} is a symbolic link, which raydoctor never makes"
    try:
        raw = read_capped(path, MARKER_CAP, follow_symlinks=False)
    except Unreadable as exc:
        if exc.too_large:
            return None, f"its {MARKER} is larger than any raydoctor writes"
        return None, f"its {MARKER} cannot be read ({exc.reason})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return None, f"its {MARKER} is not JSON"
    if not isinstance(data, dict) or data.get("created_by") != "raydoctor":
        return None, f"its {MARKER} does not say raydoctor made it"
    if not _sealed(_seal_key(create=False), data):
        return None, (
            f"its {MARKER} was not sealed by raydoctor for this user (copied from elsewhere, forged, "
            "or written by an older raydoctor)"
        )
    recorded: dict[str, Any] = data["env"] if isinstance(data.get("env"), dict) else {}
    actual = _env_facts(env)
    for name, what in (
        ("path", "it was built at another path"),
        ("pyvenv_cfg", "its pyvenv.cfg changed since raydoctor built it"),
        ("python", f"its {_BIN}/python changed since raydoctor built it"),
        ("ray_record", "its Ray installation changed since raydoctor built it"),
    ):
        if recorded.get(name) != actual[name]:
            return None, what + (f" ({recorded.get('path')})" if name == "path" else "")
    return Marker(data), None


def trusted_marker(env: Path) -> Marker | None:
    """The marker of the env at ``env`` if this user's raydoctor wrote it for exactly this env, else None."""
    return check_marker(env)[0]


def marker_problem(env: Path) -> str | None:
    """Why the env at ``env`` has a marker that is not trusted (one clause), or None."""
    return check_marker(env)[1]


def read_marker(env: Path) -> dict[str, Any] | None:
    """The trusted marker's data (see ``trusted_marker``), or None: absent, unreadable, or not trusted."""
    marker = trusted_marker(env)
    return dict(marker.data) if marker is not None else None


def env_matches(env: Path, *, ray_version: str, python_version: str, requirements_hash: str) -> bool:
    """Whether the env at ``env`` already holds exactly this: a rerun then does nothing."""
    data = read_marker(env)
    return (
        data is not None
        and data.get("ray_version") == ray_version
        and data.get("python_version") == python_version
        and data.get("requirements_hash") == requirements_hash
        and venv_python(Path(env)).exists()
    )


# -- the lock ------------------------------------------------------------------


class UnsafeLockFile(DoctorError):
    """The lock's name holds something raydoctor will not write through (a symlink, a hard link, a folder).

    Not a ``FixError``: that one means "another fix holds the lock", and waiting would not help here.
    """

    exit_code = EXIT_FINDINGS


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class EnvLock:
    """Exclusive lock on ``envs/.NAME.lock`` while a fix builds ``envs/NAME``.

    POSIX: ``fcntl.flock``, tried without blocking every 0.1 s for up to
    ``timeout`` seconds, then FixError naming the holder's pid. The kernel
    drops the lock when the holder dies, so a crash never leaves a stale
    lock. The file is unlinked on release; a waiter that locked a file
    unlinked meanwhile notices (inode check) and tries again. Windows falls
    back to an ``O_EXCL`` lock file.
    """

    def __init__(self, dest: Path, *, timeout: float = DEFAULT_LOCK_WAIT_S) -> None:
        self.dest = Path(dest).absolute()
        self.path = self.dest.parent / f".{self.dest.name}.lock"
        self.timeout = timeout
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            text = read_head(self.path, 32, follow_symlinks=False).decode("ascii", errors="replace").strip()
        except Unreadable:
            text = ""
        return f"pid {text}" if text.isdigit() else "pid unknown"

    def _open(self, extra: int = 0) -> int:
        """Open (or create) the lock file itself, never what a symlink or hard link at its name reaches."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK | extra, 0o644)
        except IsADirectoryError:
            raise self._refuse("is not a regular file") from None
        except OSError as exc:
            if exc.errno in _SYMLINK_ERRNOS or self.path.is_symlink():
                raise self._refuse("is a symbolic link") from None
            raise
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_nlink != 1:
            problem = "has other names (a hard link)"
        elif os.name != "nt" and info.st_uid != os.getuid():
            problem = "belongs to another user"
        if problem is not None:
            os.close(fd)
            raise self._refuse(problem)
        return fd

    def _refuse(self, problem: str) -> UnsafeLockFile:
        return UnsafeLockFile(
            f"the lock file {_shown(self.path)} {problem}: raydoctor does not write through it",
            hint="remove it if no fix is running, then run fix again",
        )

    def _try_flock(self) -> bool:
        import fcntl

        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # released and unlinked (or replaced) between our open and our lock
            os.close(fd)
            return False
        os.ftruncate(fd, 0)  # the file checked above: regular, ours, one name
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def _try_excl(self) -> bool:
        try:
            fd = self._open(os.O_EXCL)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def acquire(self) -> None:
        """Take the lock or raise FixError after waiting ``timeout`` seconds."""
        if self._fd is not None:
            raise RuntimeError("EnvLock is not reentrant")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        attempt = self._try_excl if os.name == "nt" else self._try_flock
        deadline = time.monotonic() + self.timeout
        while not attempt():
            if time.monotonic() >= deadline:
                raise FixError(
                    f"another raydoctor fix is building {_shown(self.dest)} ({self._holder()})",
                    hint="wait for it to finish, then run fix again",
                )
            time.sleep(0.1)

    def release(self) -> None:
        """Unlink the lock file while still holding it, then let go."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> EnvLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
