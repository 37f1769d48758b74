"""What raydoctor writes: atomically, never through a planted symlink or into a FIFO, and no line in a
file it writes comes unchecked from a dashboard's answer."""

from __future__ import annotations

import os
import re
import threading

import pytest

from doctor.cli import main
from doctor.head.facts import HeadPackages
from doctor.origin import PackagesOrigin

IMAGE = ["--image", "rayproject/ray:2.49.2-py312-cpu", "--no-resolve"]
HOSTILE = "1.26.4\n--index-url http://evil.example/simple"
PIN = re.compile(r"[a-z0-9][a-z0-9._-]*==[0-9][0-9A-Za-z.+!_-]*")


@pytest.fixture
def here(tmp_path, monkeypatch, clean_env):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    return tmp_path


def run_bounded(argv: list[str], limit_s: float = 60.0) -> int:
    """``main(argv)`` in a thread: a write that blocks (a FIFO opened for writing) fails the test, not the suite."""
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(main(argv)), daemon=True)
    thread.start()
    thread.join(limit_s)
    if thread.is_alive():  # open the FIFO's other end so that the thread can end
        for arg in argv:
            if os.path.exists(arg) and not os.path.isfile(arg):
                try:
                    fd = os.open(arg, os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
                except OSError:
                    pass
        pytest.fail(f"raydoctor {' '.join(argv)} blocked for {limit_s:g} s")
    return done[0]


# -------------------------------------------------------------- report -o, lock -o, fix --export


def test_report_output_replaces_a_planted_symlink(capsys, here):
    victim = here / "home" / ".bashrc"
    victim.write_text("export PATH=$HOME/bin:$PATH\n")
    (here / "raydoctor-report.md").symlink_to(victim)
    code = run_bounded(["report", *IMAGE, "--no-roundtrip", "--requirements", "empty.txt", "-o", "raydoctor-report.md"])
    assert code in (0, 1)
    assert victim.read_text() == "export PATH=$HOME/bin:$PATH\n"
    out = here / "raydoctor-report.md"
    assert not out.is_symlink() and out.read_text().startswith("#")
    assert not list(here.glob(".raydoctor-report.md.*"))  # no partial file left behind


def test_report_output_at_a_fifo_does_not_block(capsys, here):
    os.mkfifo(here / "report.md")
    code = run_bounded(["report", *IMAGE, "--no-roundtrip", "--requirements", "empty.txt", "-o", "report.md"], 60)
    assert code in (0, 1) and (here / "report.md").is_file()


def test_report_output_at_a_folder_is_one_line(capsys, here):
    (here / "out").mkdir()
    code = run_bounded(["report", *IMAGE, "--no-roundtrip", "--requirements", "empty.txt", "-o", "out"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "out" in err


def _head_packages(packages: dict[str, str]):
    def fake(self):  # the cluster's answer, as the deep probe would hand it over
        return HeadPackages(packages, PackagesOrigin.FILE, "a hostile dashboard")

    return fake


def test_lock_output_replaces_a_planted_symlink(capsys, here, monkeypatch):
    monkeypatch.setattr("doctor.context.CheckContext.head_packages", _head_packages({"ray": "2.49.2"}))
    victim = here / "home" / ".profile"
    victim.write_text("keep\n")
    (here / "constraints.txt").symlink_to(victim)
    code = run_bounded(["lock", *IMAGE, "--requirements", "empty.txt", "-o", "constraints.txt"])
    assert code == 0 and victim.read_text() == "keep\n"
    assert "ray==2.49.2" in (here / "constraints.txt").read_text().splitlines()


def test_export_replaces_a_planted_symlink_and_a_fifo(here):
    from doctor.fix.export import HEADER, write_export

    victim = here / "home" / ".bashrc"
    victim.write_text(f"{HEADER}: looks like ours\n")  # a symlink to a file that even starts like an export
    (here / "environment.yml").symlink_to(victim)
    from doctor.errors import UsageError

    with pytest.raises(UsageError, match="raydoctor did not write it"):
        write_export(here / "environment.yml", f"{HEADER}\nname: x\n", force=False)
    assert write_export(here / "environment.yml", f"{HEADER}\nname: x\n", force=True) == "updated"
    assert victim.read_text() == f"{HEADER}: looks like ours\n"
    assert not (here / "environment.yml").is_symlink()
    os.mkfifo(here / "env2.yml")
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(write_export(here / "env2.yml", f"{HEADER}\n", force=True)), daemon=True
    )
    thread.start()
    thread.join(20)
    if thread.is_alive():
        os.close(os.open(here / "env2.yml", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("write_export blocked on a FIFO")
    assert result == ["updated"] and (here / "env2.yml").read_text() == f"{HEADER}\n"


# -------------------------------------------------------------- lines from a dashboard's answer


def test_lock_leaves_out_a_version_that_is_not_pep_440(capsys, here, monkeypatch):
    packages = {"ray": "2.49.2", "numpy": HOSTILE, "pandas": "2.2.3 ", "attrs": "23.2.0"}
    monkeypatch.setattr("doctor.context.CheckContext.head_packages", _head_packages(packages))
    code = run_bounded(["lock", *IMAGE, "--requirements", "empty.txt", "-o", "lock.txt"])
    assert code == 0
    lines = (here / "lock.txt").read_text().splitlines()
    assert [ln for ln in lines if not ln.startswith("#")] == ["attrs==23.2.0", "ray==2.49.2"]
    assert all(ln.startswith("#") or PIN.fullmatch(ln) for ln in lines), lines
    assert not any("index-url" in ln or "evil" in ln for ln in lines)
    assert "numpy, pandas" in next(ln for ln in lines if ln.startswith("# left out"))
    assert "left out" in capsys.readouterr().out  # and it says so


def test_lock_lines_header_takes_no_text_from_the_cluster():
    from doctor.commands.lock import lock_lines

    lines, _ = lock_lines(
        {"ray": "2.49.2"}, [], ray="2.49.2\n--index-url http://evil", python="3.12.9\rx", where="http://h:8265\n-e ."
    )
    assert lines[0].startswith("# raydoctor lock") and "Ray ?, Python ?" in lines[0]
    assert all(ln.startswith("#") or PIN.fullmatch(ln) for ln in lines), lines


def test_match_head_pins_are_checked():
    from doctor.package_skew import matched_pins
    from doctor.pins import Pin

    assert matched_pins({"numpy": HOSTILE, "pandas": "2.2.3", "attrs": "23.2.0 \n"}) == [Pin("pandas", "2.2.3")]
    assert str(Pin.of("numpy", "1.26.4")) == "numpy==1.26.4"
    for name, version in [
        ("numpy", "1.26.4\n"),
        ("numpy", ""),
        ("-e .", "1"),
        ("numpy", "1.0 ; os_name"),
        ("a b", "1"),
    ]:
        assert Pin.of(name, version) is None
