"""The round trip as a fact: ``ray.init("ray://host:client-port")`` and one task, run once per check run.

The process runs inside the judged interpreter, from an empty folder, in its own process group, and is
stopped at ``LIMIT_S``: Ray's own client waits ~30 s before it gives up
(``ray/util/client/worker.py::Worker._connect_channel``). What it learns (the worker's Python and Ray,
the client's) is a source of head facts when the dashboard cannot be reached
(``doctor.head.resolve.gather_head_facts``), and what the ``roundtrip.client`` check judges. Facts flow one
way: this module never imports a check.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor import proc
from doctor.local.interpreter import InterpreterError

# The script is a file of the checks package (read as text, never imported here).
PROBE_SCRIPT = (Path(__file__).resolve().parent.parent / "checks" / "roundtrip_probe.py").read_text(encoding="utf-8")
# A healthy round trip takes ~4.5 s (import 0.6 + init 3.3 + task 0.2, measured against Ray 2.49.2 on loopback;
# tests/test_roundtrip.py::test_round_trip_reports_the_worker records the timings); twice that
# on a loaded laptop. Past this, the connection is not going to work: kill it.
LIMIT_S = 20.0


@dataclass
class ProbeRun:
    """What the subprocess printed and how it ended."""

    returncode: int | None
    killed: bool
    elapsed_s: float
    phase: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stderr_tail: list[str] = field(default_factory=list)
    url: str = ""  # the ray:// address it dialled


# ---------------------------------------------------------------- the subprocess


def probe_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The user's environment without RAY_ADDRESS: the probe names its address explicitly.

    The Ray token stays (``proc.child_env(with_token=True)``): the probe must ``ray.init`` a
    cluster that asks for it, like the user's own script. ``PYTHONPATH`` stays too (what the
    user's scripts import); ``PYTHONSAFEPATH`` keeps ``''`` off ``sys.path`` on Python 3.11+.
    """
    env = proc.child_env(environ, with_token=True)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


@dataclass
class Started:
    """A running probe: its process (own process group), its empty working folder, when it started."""

    popen: subprocess.Popen[bytes]
    started: float
    folder: contextlib.ExitStack  # holds the private working folder until close()
    argv: list[str]

    def close(self) -> None:
        self.folder.close()


def start_probe(python: str, client_url: str, environ: Mapping[str, str]) -> Started:
    """Start the probe in its own process group, from a private empty folder (``proc.private_cwd``).

    Not the current folder: a cloned repo's ``ray/`` or ``json.py`` there would run inside the
    probe (the script also drops the folder from ``sys.path`` first thing: see roundtrip_probe.py).
    Raises ``InterpreterError`` when ``python`` cannot be started.
    """
    exe = os.path.abspath(python) if os.sep in python else python
    argv = [exe, "-c", PROBE_SCRIPT, client_url]
    folder = contextlib.ExitStack()
    try:
        popen = proc.spawn(argv, env=probe_env(environ), cwd=folder.enter_context(proc.private_cwd()))
    except OSError as exc:
        folder.close()
        raise InterpreterError(f"{python} cannot run: {exc.strerror or exc}") from None
    return Started(popen, time.perf_counter(), folder, argv)


def finish_probe(run: Started, limit_s: float = LIMIT_S) -> ProbeRun:
    """Wait until ``started + limit_s`` at most; then stop the process group (``proc.wait``)."""
    killed = False
    try:
        done = proc.wait(run.popen, timeout=max(0.0, run.started + limit_s - time.perf_counter()), argv=run.argv)
        out, err, code = done.stdout, done.stderr, done.returncode
    except proc.ProcTimeout as exc:
        killed = True
        out, err, code = exc.stdout, exc.stderr, None
    finally:
        run.close()
    probe_run = ProbeRun(None if killed else code, killed, time.perf_counter() - run.started, url=run.argv[-1])
    for line in out.splitlines():
        kind, _, payload = line.partition(" ")
        if not kind.startswith("RAYDOCTOR_"):
            continue
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        if kind == "RAYDOCTOR_PHASE":
            probe_run.phase = data.get("phase")
        elif kind == "RAYDOCTOR_RESULT":
            probe_run.result = data
        elif kind == "RAYDOCTOR_ERROR":
            probe_run.error = data
    probe_run.stderr_tail = [line for line in err.strip().splitlines() if line.strip()][-20:]
    return probe_run


def run_probe(python: str, client_url: str, environ: Mapping[str, str], limit_s: float = LIMIT_S) -> ProbeRun:
    """Run the probe; stop its whole process group at ``limit_s``."""
    return finish_probe(start_probe(python, client_url, environ), limit_s)


def cancel_probe(run: Started) -> None:
    """Stop a probe that is no longer wanted, and everything it started."""
    proc.stop_group(run.popen)
    for stream in (run.popen.stdout, run.popen.stderr):
        if stream is not None:
            stream.close()
    run.close()
