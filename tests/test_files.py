"""doctor.files: the one capped reader refuses what is not a regular file before it blocks, and the
one writer replaces a planted symlink instead of writing through it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from doctor.files import Unreadable, read_bytes, read_text, write_atomic


def test_reads_a_regular_file_up_to_its_cap(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_bytes(b"\xef\xbb\xbfhello")
    assert read_text(f, 100) == "hello"
    assert read_bytes(f, 8) == b"\xef\xbb\xbfhello"
    with pytest.raises(Unreadable) as info:
        read_bytes(f, 7)
    assert info.value.too_large and "larger than 7 bytes" in info.value.reason


def test_missing_file_is_named_missing(tmp_path: Path) -> None:
    with pytest.raises(Unreadable) as info:
        read_bytes(tmp_path / "nope", 10)
    assert info.value.missing and info.value.reason == "does not exist"


@pytest.mark.parametrize("make", ["fifo", "dir", "dev", "link-to-dev"])
def test_refuses_what_is_not_a_regular_file_without_blocking(tmp_path: Path, make: str) -> None:
    target = tmp_path / "thing"
    if make == "fifo":
        os.mkfifo(target)
    elif make == "dir":
        target.mkdir()
    elif make == "dev":
        target = Path("/dev/zero")
    else:
        target.symlink_to("/dev/zero")
    outcome: list[object] = []

    def attempt() -> None:
        try:
            read_bytes(target, 1 << 20)
            outcome.append("read")
        except Unreadable as exc:
            outcome.append(exc.reason)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(5)
    assert outcome, f"reading {make} blocked"
    assert outcome[0] != "read"
    assert "not a file" in str(outcome[0]) or "not a regular file" in str(outcome[0])


def test_not_utf8_and_nul_in_path(tmp_path: Path) -> None:
    f = tmp_path / "b"
    f.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(Unreadable, match="not UTF-8"):
        read_text(f, 10)
    with pytest.raises(Unreadable, match="NUL"):
        read_bytes(str(tmp_path / "a\0b"), 10)


def test_symlink_refused_when_not_following(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("x")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert read_text(link, 10) == "x"
    with pytest.raises(Unreadable, match="symbolic link"):
        read_text(link, 10, follow_symlinks=False)


def test_write_replaces_a_planted_symlink_and_leaves_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("precious\n")
    out = tmp_path / "report.md"
    out.symlink_to(victim)
    write_atomic(out, "the report\n")
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and out.read_text() == "the report\n"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_write_keeps_mode_and_refuses_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "lock.txt"
    f.write_text("old")
    f.chmod(0o600)
    write_atomic(f, b"new")
    assert f.read_bytes() == b"new" and (f.stat().st_mode & 0o777) == 0o600
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path, "x")


def test_read_head_cuts_a_long_file_and_refuses_what_is_not_a_file(tmp_path: Path) -> None:
    from doctor.files import IS_A_DIRECTORY, read_head

    f = tmp_path / "script"
    f.write_bytes(b"#!/usr/bin/python3\n" + b"x" * 10_000)
    assert read_head(f, 19) == b"#!/usr/bin/python3\n"
    assert read_head(f, 1 << 20) == f.read_bytes()  # shorter than asked: all of it
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(Unreadable, match="FIFO"):
        read_head(tmp_path / "fifo", 512)  # refused by type, never opened (opening would block)
    with pytest.raises(Unreadable) as info:
        read_head(tmp_path, 512)
    assert info.value.reason == IS_A_DIRECTORY
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(Unreadable, match="device"):
        read_head(tmp_path / "zero", 512)


def test_dev_null_reads_as_empty_other_devices_are_refused(tmp_path: Path) -> None:
    assert read_bytes(os.devnull, 10) == b"" and read_text(os.devnull, 10) == ""
    link = tmp_path / "none"
    link.symlink_to(os.devnull)
    assert read_bytes(link, 10) == b""
    with pytest.raises(Unreadable, match="device"):
        read_bytes("/dev/zero", 10)


@pytest.mark.skipif(os.name == "nt", reason="owner and mode are POSIX")
def test_a_private_read_refuses_a_file_others_may_read(tmp_path):
    """The seal key's reader (doctor.fix.venv): this user's file, mode 0600, judged on the open descriptor."""
    key = tmp_path / "env-seal.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o644)
    with pytest.raises(Unreadable, match="not private to this user"):
        read_bytes(key, 64, follow_symlinks=False, private=True)
    assert read_bytes(key, 64, follow_symlinks=False) == b"k" * 32  # only the private read asks
    key.chmod(0o600)
    assert read_bytes(key, 64, follow_symlinks=False, private=True) == b"k" * 32
