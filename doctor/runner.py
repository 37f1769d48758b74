"""Run checks concurrently, each under its own timeout, reported in a fixed order.

A check that raises or outlives its timeout becomes an ``error`` result, never
a traceback (Flutter's doctor does the same). Threads are daemons: a check
stuck in I/O cannot keep the process alive after the report is out.
"""

from __future__ import annotations

import sysconfig
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Iterable, List, Sequence, Union

from doctor.errors import DoctorError
from doctor.model import Result, Status

CATEGORY_ORDER = (
    "head",
    "local",
    "versions",
    "packages",
    "network",
    "roundtrip",
    "jobs",
    "gpu",
    "compose",
    "cluster",
    "deep",
)

CheckOutput = Union[Result, List[Result]]


@dataclass(frozen=True)
class Check:
    """One validator: an id, a category, a title, and a function of the context."""

    id: str
    category: str
    title: str
    run: Callable[..., CheckOutput]
    timeout: float = 10.0


def _order_key(result: Result, index: int) -> tuple[int, int]:
    try:
        cat = CATEGORY_ORDER.index(result.category)
    except ValueError:
        cat = len(CATEGORY_ORDER)
    return cat, index


def _error_result(check: Check, summary: str, details: list[str] | None = None, code: str = "error") -> Result:
    return Result(
        check.id, check.category, check.title, Status.ERROR, summary, details or [], code=f"{check.id}.{code}"
    )


def stamp(check: Check, res: Result) -> Result:
    """Write the check's identity onto a finding: the id, category and title live on the Check only."""
    res.id = res.id or check.id
    res.category = res.category or check.category
    res.title = res.title or check.title
    res.code = res.code or f"{res.id}.{res.status.value}"
    return res


def prepare_for_threads() -> None:
    """Make what Python builds lazily and without a lock, before any thread may race to build it.

    Before Python 3.12, sysconfig fills its config vars on first use without a lock: a second thread
    can see them half-made and get AttributeError('userbase') (CPython gh-92452). Checks ask for
    install paths (remedies, shipped files, uv's binary), so the vars are made once, first.
    """
    sysconfig.get_config_vars()


def run_checks(
    checks: Sequence[Check],
    ctx: object,
    *,
    on_done: Callable[[Check, list[Result]], None] | None = None,
    verbose_errors: bool = False,
) -> list[Result]:
    """Start every check at once; gather results in registration order, grouped by category."""
    outputs: dict[int, list[Result]] = {}
    started: dict[int, float] = {}
    lock = threading.Lock()
    done_events = [threading.Event() for _ in checks]

    def work(index: int, check: Check) -> None:
        start = time.perf_counter()
        try:
            out = check.run(ctx)
            results = list(out) if isinstance(out, list) else [out]
            if not results or not all(isinstance(res, Result) for res in results):
                raise TypeError(f"check returned {type(out).__name__}, not a Result")
            results = [stamp(check, res) for res in results]
        except DoctorError as exc:
            results = [_error_result(check, f"could not run: {exc}", code="could_not_run")]
        except Exception as exc:  # a bug in a check must not hide the other findings
            details = traceback.format_exc().splitlines()[-6:] if verbose_errors else []
            results = [_error_result(check, f"crashed: {type(exc).__name__}: {exc}", details, code="crashed")]
        elapsed = time.perf_counter() - start
        for res in results:
            res.duration_s = res.duration_s or elapsed
        with lock:
            if index not in outputs:  # not already reported as timed out
                outputs[index] = results
                if on_done:
                    on_done(check, results)
        done_events[index].set()

    prepare_for_threads()
    # The slowest first (the round trip, the probe jobs): each start waits until its thread runs, which
    # takes milliseconds on a busy machine, and a long check should not wait for forty short ones.
    for index in sorted(range(len(checks)), key=lambda i: -checks[i].timeout):
        check = checks[index]
        started[index] = time.perf_counter()
        threading.Thread(target=work, args=(index, check), daemon=True, name=f"check-{check.id}").start()

    for index, check in enumerate(checks):
        remaining = started[index] + check.timeout - time.perf_counter()
        if not done_events[index].wait(max(0.0, remaining)):
            with lock:
                if index not in outputs:
                    res = _error_result(check, f"timed out after {check.timeout:g} s", code="timed_out")
                    res.duration_s = check.timeout
                    outputs[index] = [res]
                    if on_done:
                        on_done(check, outputs[index])

    flat: list[tuple[Result, int]] = []
    for index in range(len(checks)):
        for res in outputs[index]:
            flat.append((res, index))
    flat.sort(key=lambda pair: _order_key(*pair))
    return [res for res, _ in flat]


def flatten(groups: Iterable[Sequence[Check]]) -> list[Check]:
    return [check for group in groups for check in group]
