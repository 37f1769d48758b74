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
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from doctor.errors import FixError
from doctor.fix.install import find_uv, requirement_files, run_streaming, tool_env

MARKER = "raydoctor-env.json"
MARKER_SCHEMA = "raydoctor.env/1"
DEFAULT_LOCK_WAIT_S = 5.0
_TMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")
_BIN = "Scripts" if os.name == "nt" else "bin"


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
    a folder whose pid is still alive is kept anyway.
    """
    dest = Path(dest).absolute()
    removed: list[Path] = []
    if not dest.parent.is_dir():
        return removed
    for path in dest.parent.iterdir():
        match = _TMP.match(path.name)
        if match and match.group("name") == dest.name and not _pid_alive(int(match.group("pid"))):
            shutil.rmtree(path, ignore_errors=True)
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
    if tmp.exists() or tmp.is_symlink():
        discard_venv(tmp)  # our own pid's name: a leftover of a dead process that had it
    uv = find_uv() if installer in ("uv", "auto") else None
    if installer == "uv" and uv is None:
        raise FixError("--installer uv: uv is not installed", hint="`pip install uv`, or use --installer pip")
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
    args = [str(uv), "venv", "--seed", "--python", str(python), "--prompt", prompt, "--color", "never", str(tmp)]
    try:
        rc, lines = run_streaming(args, timeout=300, env=tool_env())
    except TimeoutError:
        raise FixError(f"`uv venv` from {python} timed out after 300 s") from None
    if rc != 0:
        errors = [ln.strip() for ln in lines if ln.strip()]
        raise FixError(f"`uv venv` from {python} failed: {' '.join(errors[-2:]) or f'exit {rc}'}")


def _virtualenv(python: Path, tmp: Path, prompt: str) -> None:
    try:
        from virtualenv import cli_run
    except ImportError:
        raise FixError(
            "the virtualenv package is not installed", hint="`pip install virtualenv`, or use --installer uv"
        ) from None
    args = [str(tmp), "--python", str(python), "--prompt", prompt, "--quiet", "--no-periodic-update", "--no-download"]
    try:
        cli_run(args, setup_logging=False)
    except SystemExit as exc:  # virtualenv's argument parser
        raise FixError(f"virtualenv rejected its arguments ({exc.code}): {' '.join(args)}") from None
    except (RuntimeError, OSError, ValueError) as exc:
        raise FixError(f"virtualenv could not create a venv from {python}: {exc}") from None


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
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 4 * 1024 * 1024:
            continue
        data = path.read_bytes()
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
    ``dest`` is an env raydoctor made (its marker says so): then the old env
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
        if (read_marker(dest) or {}).get("created_by") != "raydoctor":
            raise FixError(f"{dest} exists and raydoctor did not create it; not replacing it")
    _relocate(tmp, dest)
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
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for item in extra:
        digest.update(b"extra\0" + item.encode() + b"\0")
    return "sha256:" + digest.hexdigest()


def write_marker(
    env: Path,
    *,
    ray_version: str,
    python_version: str,
    requirements_hash: str,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``raydoctor-env.json`` (call it on the temporary venv, before ``commit_venv``)."""
    from doctor import __version__

    data: dict[str, Any] = {
        "schema": MARKER_SCHEMA,
        "created_by": "raydoctor",
        "raydoctor_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ray_version": ray_version,
        "python_version": python_version,
        "requirements_hash": requirements_hash,
        **extra,
    }
    target = Path(env) / MARKER
    partial = target.with_name(MARKER + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return data


def read_marker(env: Path) -> dict[str, Any] | None:
    """The marker of the env at ``env``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(env) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def env_matches(env: Path, *, ray_version: str, python_version: str, requirements_hash: str) -> bool:
    """Whether the env at ``env`` already holds exactly this: a rerun then does nothing."""
    data = read_marker(env)
    return (
        data is not None
        and data.get("created_by") == "raydoctor"
        and data.get("ray_version") == ray_version
        and data.get("python_version") == python_version
        and data.get("requirements_hash") == requirements_hash
        and venv_python(Path(env)).exists()
    )


# -- the lock ------------------------------------------------------------------


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
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        return f"pid {text}" if text.isdigit() else "pid unknown"

    def _try_flock(self) -> bool:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # released and unlinked between our open and our lock
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def _try_excl(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
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
