"""The order of the slow work in a check run (benchmarks/bench_check.py measures the speed itself):
the interpreter probe starts before the target's files are read, a usage error still leaves no probe
folder behind, and the runner starts the checks with the longest time limits first."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from benchmarks.run import mark, table
from benchmarks.timing import bench_env, summarize, target_met
from doctor import context
from doctor.app import run_check
from doctor.model import Result, Status
from doctor.options import TargetOptions
from doctor.runner import Check, run_checks

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "compose" / "cpu-ray-cluster.yaml"


def _wrapper(folder: Path, *, delay_s: float = 0.0) -> Path:
    """A real interpreter behind a script that marks when it starts and when its Python has ended."""
    script = folder / "python3"
    script.write_text(
        "#!/bin/sh\n"
        f"touch '{folder / 'started'}'\n"
        f"sleep {delay_s}\n"
        f"'{sys.executable}' \"$@\"\n"
        "rc=$?\n"
        f"touch '{folder / 'ended'}'\n"
        "exit $rc\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_probe_starts_before_the_target_is_read(tmp_path, monkeypatch, clean_env):
    python = _wrapper(tmp_path)
    real = context.resolve_target
    seen: dict[str, bool] = {}

    def spy(*args, **kwargs):
        deadline = time.monotonic() + 10
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["probe_running"] = (tmp_path / "started").exists()
        return real(*args, **kwargs)

    monkeypatch.setattr(context, "resolve_target", spy)
    report = run_check(
        TargetOptions(compose=COMPOSE, python=str(python), roundtrip=False, requirements=None),
        environ=dict(os.environ),
        cwd=tmp_path,
    )
    assert seen == {"probe_running": True}
    interp = next(r for r in report.results if r.id == "local.interpreter")
    assert interp.status is Status.OK, interp.summary  # the one probe's answer reached the check


def test_a_usage_error_waits_for_the_probe_and_leaves_no_folder(tmp_path, monkeypatch, clean_env):
    python = _wrapper(tmp_path, delay_s=0.3)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    report = run_check(
        TargetOptions(compose=tmp_path / "no-such-compose.yaml", python=str(python)),
        environ=dict(os.environ),
        cwd=tmp_path,
    )
    assert report.error and report.error_exit_code == 2
    assert (tmp_path / "ended").exists()  # the probe ran to its end before the error came back
    assert list(temp.iterdir()) == []  # and its temporary folder is gone


def test_runner_starts_the_longest_checks_first(monkeypatch):
    names: list[str] = []
    lock = threading.Lock()
    real_thread = threading.Thread

    def recording(*args, **kwargs):
        with lock:
            names.append(kwargs.get("name", ""))
        return real_thread(*args, **kwargs)

    def ok(_ctx: object) -> Result:
        return Result("", "", "", Status.OK, "fine")

    checks = [
        Check("a.short", "head", "short", ok, timeout=5),
        Check("b.long", "roundtrip", "long", ok, timeout=50),
        Check("c.mid", "network", "mid", ok, timeout=10),
        Check("d.short", "local", "short too", ok, timeout=5),
    ]
    monkeypatch.setattr("doctor.runner.threading.Thread", recording)
    results = run_checks(checks, object())
    assert names == ["check-b.long", "check-c.mid", "check-a.short", "check-d.short"]
    assert [r.id for r in results] == ["a.short", "d.short", "c.mid", "b.long"]  # report order unchanged


# ---------------------------------------------------------------- the benchmarks' verdicts


@pytest.mark.parametrize(
    ("target", "fields", "met"),
    [
        ("median ≤ 0.25 s", {"median_s": 0.25}, True),
        ("median ≤ 0.25 s", {"median_s": 0.2501}, False),
        ("median < 1 s", {"median_s": 1.0}, False),
        ("ratio ≤ 1.05", {"ratio": 1.034}, True),
        ("ratio <= 1.2", {"ratio": 1.3}, False),
        ("extra_ms <= 20", {"extra_ms": 12.5}, True),
        ("median_s <= 0.020", {"median_s": 0.03}, False),
        ("", {"median_s": 0.1}, None),
        ("ratio ≤ 0.1", {"ratio": None}, None),
    ],
)
def test_target_met(target, fields, met):
    assert target_met({"target": target, **fields}) is met


def test_table_marks_each_row():
    good = summarize("fast", [0.2, 0.21, 0.22], "python -c pass", [0.02], "median ≤ 0.25 s")
    bad = summarize("slow", [0.3, 0.31, 0.32], "python -c pass", [0.02], "median ≤ 0.25 s")
    bad["note"] = "resolution: warm cache (0 uv calls)"
    assert (good["met"], bad["met"]) == (True, False)
    assert (mark(good), mark(bad), mark({"name": "x"})) == ("✓", "✗", "")
    lines = table([good, bad]).splitlines()
    assert lines[2].startswith("| fast |") and "| ✓ |" in lines[2]
    assert lines[3].startswith("| slow |") and "| ✗ |" in lines[3]
    assert lines[-1] == "- slow: resolution: warm cache (0 uv calls)"


def test_bench_env_keeps_bytecode(monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    env = bench_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env and "RAY_ADDRESS" not in env
    assert env["NO_COLOR"] == "1" and env["PATH"] == os.environ["PATH"]
