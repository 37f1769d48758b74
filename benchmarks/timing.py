"""Side-by-side timing: a command and its baseline, interleaved in the same run.

Interleaving (A, B, A, B, …) keeps machine load from favouring either side;
the figure that matters is the ratio of medians, not an absolute number.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Callable, Sequence

Runner = Callable[[], object]


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
    return summarize(name, ours, baseline_name, theirs, target)


def summarize(name: str, ours: Sequence[float], baseline_name: str, theirs: Sequence[float], target: str = "") -> dict:
    """One table row: our median/min/max, the baseline's, and the ratio of medians."""
    median, base = statistics.median(ours), statistics.median(theirs)
    return {
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
