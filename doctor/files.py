"""The one way raydoctor reads a local file, and the one way it writes one.

Every file raydoctor reads may come from a repository the user has not read: a settings file, a
compose file, a requirements file and its includes, a runtime_env, a kernelspec. So each read is
judged by the file's type *before* it is opened (a FIFO or ``/dev/stdin`` would block forever, a
device such as ``/dev/zero`` never ends, a directory is not a file), opened non-blocking, judged again
on the descriptor (the name may have been swapped in between), and read up to a cap: a file larger
than the cap is refused, never read whole.

Every file raydoctor writes for the user (``report -o``, ``lock -o``, ``fix --export``, markers,
kernelspecs) is written to a fresh ``mkstemp`` name in the same folder and renamed over the target:
a symlink planted at the target is replaced, never followed, and a reader never sees half a file.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 20
IS_A_DIRECTORY = "is a directory, not a file"  # ``Unreadable.reason`` for a folder, for callers that skip one


class Unreadable(Exception):
    """A file raydoctor would not or could not read; ``reason`` is a short phrase for a message."""

    def __init__(self, path: Path, reason: str, *, missing: bool = False, too_large: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.missing = missing
        self.too_large = too_large


def special_kind(mode: int) -> str | None:
    """What a path that is neither a regular file nor a folder is ("a FIFO", "a device", "a socket",
    "not a regular file"); None for those two. Judged from ``stat``, never by opening it."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _kind(mode: int) -> str | None:
    """Why a path is not a file raydoctor reads, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return IS_A_DIRECTORY
    special = special_kind(mode) or "not a regular file"
    if special == "a FIFO":
        return "is a FIFO (a named pipe), not a file"
    return "is not a regular file" if special.startswith("not") else f"is {special}, not a file"


def _size_words(cap: int) -> str:
    if cap >= 1024 * 1024 and cap % (1024 * 1024) == 0:
        return f"{cap // (1024 * 1024)} MiB"
    if cap >= 1024 and cap % 1024 == 0:
        return f"{cap // 1024} KiB"
    return f"{cap} bytes"


def read_bytes(path: Path | str, cap: int, *, follow_symlinks: bool = True, private: bool = False) -> bytes:
    """At most ``cap`` bytes of the regular file at ``path``, or ``Unreadable`` saying why not.

    ``follow_symlinks=False`` refuses a symlink at ``path`` itself (files raydoctor wrote).
    ``private``: the file must belong to this user and be unreadable by others (a key; judged on the
    open descriptor, POSIX only).
    """
    return _read(Path(path), cap, follow_symlinks=follow_symlinks, whole=True, private=private)


def read_head(path: Path | str, size: int, *, follow_symlinks: bool = True) -> bytes:
    """The first ``size`` bytes of the regular file at ``path`` (all of it when shorter), never more.

    For a file only whose start matters (a script's ``#!`` line, pyenv's version file): a longer file
    is cut, not refused. A FIFO, device or folder is ``Unreadable`` as for ``read_bytes``.
    """
    return _read(Path(path), size, follow_symlinks=follow_symlinks, whole=False)


def _read(p: Path, cap: int, *, follow_symlinks: bool, whole: bool, private: bool = False) -> bytes:
    try:
        info = os.stat(p, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        raise Unreadable(p, "does not exist", missing=True) from None
    except NotADirectoryError:
        raise Unreadable(p, "does not exist (a folder on its path is a file)", missing=True) from None
    except ValueError:  # a NUL byte in the path
        raise Unreadable(p, "is not a usable path (it contains a NUL byte)") from None
    except OSError as exc:
        raise Unreadable(p, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise Unreadable(p, "is a symbolic link, which raydoctor does not follow here")
    if stat.S_ISCHR(info.st_mode) and os.path.realpath(p) == os.devnull:
        return b""  # `--requirements /dev/null`: the usual way to say "none", and it never blocks
    kind = _kind(info.st_mode)
    if kind:
        raise Unreadable(p, kind)
    if whole and info.st_size > cap:
        raise Unreadable(p, f"is larger than {_size_words(cap)}", too_large=True)
    flags = os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | (0 if follow_symlinks else _O_NOFOLLOW)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise Unreadable(p, "does not exist", missing=True) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unreadable(p, "is a symbolic link, which raydoctor does not follow here") from None
        raise Unreadable(p, f"cannot be read ({exc.strerror or exc})") from None
    try:
        opened = os.fstat(fd)
        kind = _kind(opened.st_mode)  # the name may have been swapped since the stat above
        if kind:
            raise Unreadable(p, kind)
        if private and os.name != "nt" and (opened.st_uid != os.getuid() or opened.st_mode & 0o077):
            raise Unreadable(p, "is not private to this user (another owner, or readable by others)")
        chunks: list[bytes] = []
        left = cap + 1 if whole else cap
        while left > 0:
            try:
                chunk = os.read(fd, min(_CHUNK, left))
            except OSError as exc:
                raise Unreadable(p, f"cannot be read ({exc.strerror or exc})") from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > cap:
        raise Unreadable(p, f"is larger than {_size_words(cap)}", too_large=True)
    return data


def read_text(path: Path | str, cap: int, *, follow_symlinks: bool = True) -> str:
    """``read_bytes`` decoded as UTF-8 (a byte-order mark dropped); ``Unreadable`` when it is not."""
    data = read_bytes(path, cap, follow_symlinks=follow_symlinks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(Path(path), f"is not UTF-8 text ({exc.reason})") from None


def write_atomic(path: Path | str, data: str | bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a fresh name beside it, renamed over ``path``.

    A symlink at ``path`` is replaced, not followed; a folder at ``path`` is an ``OSError``
    (``IsADirectoryError``). ``mode`` defaults to the existing regular file's, else 0o644.
    Raises ``OSError``; the caller words the message.
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    try:
        info = os.lstat(p)
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(p))
    if mode is None:
        mode = stat.S_IMODE(info.st_mode) if info is not None and stat.S_ISREG(info.st_mode) else 0o644
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".raydoctor-partial", dir=folder)
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, p)
    except BaseException:
        try:
            partial.unlink()
        except OSError:
            pass
        raise
