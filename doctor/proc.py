"""The one way raydoctor runs another program: an argv list, a deadline, its own process group.

Every child gets a process group of its own, so that a timeout, Ctrl-C or SIGTERM ends
everything it started (conda's solvers, pip's build backends, Ray Client's threads), not
just the leader. Output is read with a byte cap, and the environment a child sees drops
the Ray auth token unless the caller says the child needs it.

Every child starts in a private empty folder of its own (``private_cwd``), never in the folder
raydoctor was started from: that is usually a repository just cloned, and the tools raydoctor
runs read their working folder (``python -m pip`` imports from it, uv reads its ``uv.toml`` and
``pyproject.toml`` there and in every parent). The folder is made inside ``<state>/run`` (0700,
this user's), not directly under a shared temp folder, whose other users could plant files there.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from doctor.state import state_dir

# Variables that carry the cluster's credentials: only a child that talks to the cluster gets them.
SECRET_ENV = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
OUTPUT_CAP = 4 * 1024 * 1024  # bytes kept of each stream; the rest is read and dropped


class ProcTimeout(Exception):
    """The child outlived its deadline; it and its process group have been stopped."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: str = "", stderr: str = "") -> None:
        super().__init__(f"{argv[0] if argv else '?'} timed out after {timeout:g} s")
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def child_env(environ: Mapping[str, str] | None = None, *, with_token: bool = False) -> dict[str, str]:
    """The environment for a child: ``environ`` (default ``os.environ``) less the token unless asked."""
    env = dict(os.environ if environ is None else environ)
    if not with_token:
        for name in SECRET_ENV:
            env.pop(name, None)
    return env


# -- where children start ---------------------------------------------------------------

_roots: dict[str, Path] = {}
_roots_lock = threading.Lock()


def _ours_and_private(path: Path) -> bool:
    """A real folder (not a symlink) this user owns that nobody else can enter or write, below folders
    that nobody else can rename it out of: each parent is this user's or root's, and writable by others
    only with the sticky bit (``/tmp``)."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        return False
    if os.name == "nt":
        return True
    me = os.getuid()
    if info.st_uid != me:
        return False
    for parent in path.absolute().parents:
        up = os.stat(parent)
        if up.st_uid not in (me, 0) or (up.st_mode & 0o022 and not up.st_mode & stat.S_ISVTX):
            return False
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    return True


def private_root() -> Path:
    """The 0700 folder that children's working folders are made in: ``<state dir>/run``.

    When the state folder cannot hold it (read-only home, a folder another user owns), a
    ``mkdtemp`` folder (0700, this user's) made once per process in the temp folder holds them
    instead: the children's folders are then one level below it, never directly in ``/tmp``.
    """
    wanted = state_dir() / "run"
    key = str(wanted)
    with _roots_lock:
        known = _roots.get(key)
        if known is not None and known.is_dir():
            return known
        try:
            wanted.mkdir(parents=True, exist_ok=True, mode=0o700)
            root = wanted if _ours_and_private(wanted) else None
        except OSError:
            root = None
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="raydoctor-run-"))
        _roots[key] = root
        return root


@contextmanager
def private_cwd() -> Iterator[Path]:
    """A fresh empty folder for one child to start in, removed (with whatever it left) afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cwd-", dir=private_root()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def isolated_python(python: str | os.PathLike[str], *args: str) -> list[str]:
    """``python -I ARGS``: a Python raydoctor runs as a tool (pip, a probe of a venv it built).

    ``-I`` keeps the working folder and the script's folder off ``sys.path`` and ignores
    ``PYTHON*`` variables and the user's site-packages: nothing a cloned repo plants is imported.
    ``-I`` drops ``PYTHONUTF8``/``PYTHONUNBUFFERED`` too, so callers that need them pass
    ``-X utf8`` / ``-u`` in ``args``.
    """
    return [os.fspath(python), "-I", *args]


def group_kwargs() -> dict[str, Any]:
    """``Popen`` keywords that give the child a process group of its own."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    killpg = getattr(os, "killpg", None)  # POSIX; elsewhere the process alone
    try:
        if killpg is None:
            proc.kill()
        else:
            killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def stop_group(proc: subprocess.Popen[Any], *, first: int = signal.SIGKILL, grace_s: float = 5.0) -> None:
    """Stop the child's whole group: ``first`` (SIGINT lets pip and uv clean up), SIGKILL after ``grace_s``.

    A SIGKILL to the group follows in every case, for whatever the leader left behind.
    """
    if proc.poll() is None:
        _signal_group(proc, first)
        try:
            proc.wait(timeout=grace_s if first != signal.SIGKILL else 10.0)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                pass
    _signal_group(proc, signal.SIGKILL)


def _read_capped(stream: IO[bytes], sink: bytearray, cap: int) -> None:
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return
        room = cap - len(sink)
        if room > 0:
            sink += chunk[:room]


def spawn(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    merge_stderr: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group with stdin closed; raises OSError if it cannot start."""
    return subprocess.Popen(
        [os.fspath(a) for a in args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        **group_kwargs(),
    )


def wait(
    proc: subprocess.Popen[bytes], *, timeout: float, cap: int = OUTPUT_CAP, argv: Sequence[str] = ()
) -> Completed:
    """Read both streams (each capped at ``cap`` bytes) until the child ends or ``timeout`` passes.

    Raises ``ProcTimeout`` (with what was read) after stopping the group; on Ctrl-C stops the
    group and re-raises.
    """
    out, err = bytearray(), bytearray()
    readers = [
        threading.Thread(target=_read_capped, args=(stream, sink, cap), daemon=True)
        for stream, sink in ((proc.stdout, out), (proc.stderr, err))
        if stream is not None
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    try:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop_group(proc)
            for reader in readers:
                reader.join(timeout=2.0)
            raise ProcTimeout(list(argv) or [str(proc.args)], timeout, _text(out), _text(err)) from None
        for reader in readers:  # a grandchild may hold the pipe open: do not wait for it forever
            reader.join(timeout=max(0.5, deadline - time.monotonic()))
    except BaseException:
        stop_group(proc)
        raise
    _signal_group(proc, signal.SIGKILL)  # the leader is gone; nothing of its group outlives it
    return Completed(proc.returncode, _text(out), _text(err))


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    cap: int = OUTPUT_CAP,
) -> Completed:
    """Run ``args`` to the end or to ``timeout``: see ``spawn`` and ``wait``.

    Without ``cwd`` the child starts in a private empty folder (``private_cwd``).
    """
    argv = [os.fspath(a) for a in args]
    if cwd is None:
        with private_cwd() as folder:
            return wait(spawn(argv, env=env, cwd=folder), timeout=timeout, cap=cap, argv=argv)
    proc = spawn(argv, env=env, cwd=cwd)
    return wait(proc, timeout=timeout, cap=cap, argv=argv)


def stream(
    args: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    tail: int = 40,
    first_signal: int = signal.SIGINT,
) -> tuple[int, list[str]]:
    """Run ``args`` with stdout and stderr merged, line by line; return (exit code, last ``tail`` lines).

    Raises ``ProcTimeout`` after ``timeout`` and re-raises KeyboardInterrupt, in both cases after
    stopping the group (``first_signal`` first, so installers can remove their temp files).
    Without ``cwd`` the child starts in a private empty folder (``private_cwd``).
    """
    if cwd is None:
        with private_cwd() as folder:
            return _stream(args, timeout, on_line, env, folder, tail, first_signal)
    return _stream(args, timeout, on_line, env, cwd, tail, first_signal)


def _stream(
    args: Sequence[str | os.PathLike[str]],
    timeout: float,
    on_line: Callable[[str], None] | None,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str],
    tail: int,
    first_signal: int,
) -> tuple[int, list[str]]:
    argv = [os.fspath(a) for a in args]
    proc = spawn(argv, env=env, cwd=cwd, merge_stderr=True)
    lines: deque[str] = deque(maxlen=tail)
    pipe: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            pipe.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        pipe.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop_group(proc, first=first_signal)
                raise ProcTimeout(argv, timeout, "\n".join(lines))
            try:
                line = pipe.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                break
            lines.append(line)
            if on_line is not None:
                on_line(line)
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        stop_group(proc, first=first_signal)
        raise ProcTimeout(argv, timeout, "\n".join(lines)) from None
    except BaseException:
        stop_group(proc, first=first_signal)
        raise
    _signal_group(proc, signal.SIGKILL)
    return proc.returncode, list(lines)
