"""The property: every file raydoctor reads or writes, handed random bytes, a FIFO, ``/dev/zero`` or a
folder, ends in bounded time with no traceback; what it cannot use is one line, exit 2, naming the file.

Each input runs through ``doctor.cli.main`` in a worker process (``tests/bad_input_runner.py``) with a
time bound per input (a hang is a failure, the worker is killed) and an address-space limit (reading
``/dev/zero`` whole is a ``MemoryError``, not a dead machine). ``python -m tests.bad_input_runner N``
prints the counts of a longer run; RAYDOCTOR_BAD_INPUT_EXAMPLES widens the random part here.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bad_input_runner import NASTY, OPTIONS, Worker, expectation, run_cases

EXAMPLES = int(os.environ.get("RAYDOCTOR_BAD_INPUT_EXAMPLES", "25"))
LIMIT_S = 20.0


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.stop()


def _failures(tally) -> list[str]:
    return [
        f"{c.option} given {c.kind}: exit {c.code}, hang={c.hang}, traceback={c.traceback}, "
        f"expected {expectation(c.option, c.kind)}: {c.err.strip()[-300:]!r}"
        for c in tally.cases
        if not c.clean
    ]


@pytest.mark.parametrize("kind", ["FIFO", "ZERO", "DIR", "deep-json", "not-utf8"])
def test_every_file_option_refuses_what_is_not_a_file(worker, kind):
    tally = run_cases([(option, kind, None) for option in OPTIONS], timeout=LIMIT_S, worker=worker)
    assert len(tally.cases) == len(OPTIONS)
    assert _failures(tally) == []


# Random bytes, and random bytes around what breaks parsers (deep nesting, odd digits, NUL).
hostile = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.binary(max_size=40), st.sampled_from(sorted(NASTY.values())), st.binary(max_size=40)).map(
        lambda t: t[0] + t[1] + t[2]
    ),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(option=st.sampled_from(OPTIONS), data=hostile)
def test_random_bytes_in_any_file(worker, option, data):
    tally = run_cases([(option, "random", data)], timeout=LIMIT_S, worker=worker)
    assert _failures(tally) == []
