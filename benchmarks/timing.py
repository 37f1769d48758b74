"""Side-by-side timing: a command and its baseline, interleaved in the same run.

Interleaving (A, B, A, B, …) keeps machine load from favouring either side;
the figure that matters is the ratio of medians, not an absolute number.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

Runner = Callable[[], object]

# A row's target, as benches write it: "<field> <op> <number>[ s]", the field being a key of the row
# ("median" for median_s, "ratio", "extra_ms", "median_s"); "≤"/"<=" and "<" are understood.
_TARGET = re.compile(r"^\s*(?P<field>[a-z_]+)\s*(?P<op>≤|<=|<|≥|>=|>)\s*(?P<limit>[0-9]+(?:\.[0-9]+)?)\s*s?\s*$")
_FIELDS = {"median": "median_s"}


def target_met(row: Mapping[str, object]) -> bool | None:
    """Whether ``row`` meets its ``target`` text; None when it has none or it cannot be read."""
    match = _TARGET.match(str(row.get("target") or ""))
    if match is None:
        return None
    value = row.get(_FIELDS.get(match["field"], match["field"]))
    if not isinstance(value, (int, float)):
        return None
    limit, op = float(match["limit"]), match["op"]
    if op in ("≤", "<="):
        return value <= limit
    if op == "<":
        return value < limit
    if op in ("≥", ">="):
        return value >= limit
    return value > limit


def bench_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a benchmarked command runs in: the user's, less what would change what it looks at.

    ``PYTHONDONTWRITEBYTECODE`` goes too: an installed raydoctor has its bytecode (pip compiles it at
    install time, an editable checkout writes it on first run), so the warm-up run writes it and the
    timed runs read it, as the baseline interpreters read theirs. Left set, every run compiles each of
    raydoctor's ~100 modules again (about half of a compose-only check on this machine).
    """
    env = {
        k: v
        for k, v in (os.environ if environ is None else environ).items()
        if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["NO_COLOR"] = "1"
    return env


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as ``uptime`` prints them: every figure carries them."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def time_once(fn: Runner) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def command(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = 300,
    ok_codes: Sequence[int] = (0, 1),
) -> Runner:
    """A runner for one subprocess; an unexpected exit code fails the benchmark loudly."""

    def run() -> None:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
        )
        if proc.returncode not in ok_codes:
            raise RuntimeError(f"{args[0]} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-500:]}")

    return run


def side_by_side(
    name: str,
    fn: Runner,
    baseline_name: str,
    baseline: Runner,
    *,
    repeats: int = 5,
    baseline_repeats: int | None = None,
    warmup: int = 1,
    target: str = "",
) -> dict:
    """Median/min/max of ``fn`` and ``baseline``, interleaved; ratio = median / baseline median."""
    before = load()
    for _ in range(warmup):
        fn()
        baseline()
    ours: list[float] = []
    theirs: list[float] = []
    b_repeats = repeats if baseline_repeats is None else baseline_repeats
    for i in range(max(repeats, b_repeats)):
        if i < repeats:
            ours.append(time_once(fn))
        if i < b_repeats:
            theirs.append(time_once(baseline))
    row = summarize(name, ours, baseline_name, theirs, target)
    row["load_before"], row["load_after"] = before, load()
    return row


def summarize(name: str, ours: Sequence[float], baseline_name: str, theirs: Sequence[float], target: str = "") -> dict:
    """One table row: our median/min/max, the baseline's, and the ratio of medians."""
    median, base = statistics.median(ours), statistics.median(theirs)
    row = {
        "name": name,
        "baseline": baseline_name,
        "median_s": round(median, 4),
        "min_s": round(min(ours), 4),
        "max_s": round(max(ours), 4),
        "baseline_median_s": round(base, 4),
        "baseline_min_s": round(min(theirs), 4),
        "baseline_max_s": round(max(theirs), 4),
        "ratio": round(median / base, 3) if base else None,
        "runs": len(ours),
        "baseline_runs": len(theirs),
        "target": target,
    }
    row["met"] = target_met(row)
    return row


def run_ok(args: Sequence[str], cwd: str | os.PathLike[str], env: Mapping[str, str]) -> None:
    """Run one step of a benchmarked flow; a failing step is an error, not a timing."""
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}… exited {proc.returncode}: {(proc.stderr or proc.stdout)[-800:]}")


def timed_in_fresh_folder(make: Callable[[Path], None], prefix: str = "bench-") -> float:
    """Run ``make`` in a fresh folder (creation and deletion of the folder are not timed)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        start = time.perf_counter()
        make(work)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def live_check_args(head: Any, python: os.PathLike[str] | str, requirements: os.PathLike[str] | str) -> list[str]:
    """``check --json`` against a test head (``tests.ray_cluster.RayNode``): its ports, the judged python, the pins."""
    return [
        "check",
        "--json",
        *head.target_args,
        "--python",
        str(python),
        "--requirements",
        str(requirements),
    ]
