"""The fault matrix (issue 5): each fault, the finding it must give, and nothing left behind.

Faults of the dashboard are served by fakes; faults of a head, a worker and a Ray
Client server are produced on real Ray nodes started for the test.
"""

from __future__ import annotations

import time

import pytest

from doctor.check import run_check
from doctor.options import TargetOptions
from doctor.report import Status
from tests.fake_servers import BROKEN_JSON, FakeHTTP, json_answer


def by_id(report, check_id):
    return next(r for r in report.results if r.id == check_id)


def slow(delay: float):
    def answer(method: str, path: str, body: bytes):
        time.sleep(delay)
        return json_answer({"result": True, "data": {"rayVersion": "2.49.2", "pythonVersion": "3.12.9"}})
    return answer


@pytest.mark.parametrize(
    "routes, kind, words",
    [
        ({"/api/v0/cluster_metadata": (500, "text/plain", "Internal Server Error"),
          "/api/version": (500, "text/plain", "Internal Server Error")}, "server_error", "HTTP 500 (a server error)"),
        ({"/api/v0/cluster_metadata": BROKEN_JSON, "/api/version": BROKEN_JSON}, "not_ray", "not Ray's JSON"),
        ({"/api/v0/cluster_metadata": slow(3.0), "/api/version": slow(3.0)}, "timeout", "no answer"),
    ],
    ids=["answers-500", "answers-garbage", "answers-slowly"],
)
def test_dashboard_faults(routes, kind, words, tmp_path, clean_env):
    with FakeHTTP(routes) as server:
        start = time.perf_counter()
        report = run_check(TargetOptions(address=server.url, timeout=1.0, roundtrip=False), environ=clean_env, cwd=tmp_path)
        elapsed = time.perf_counter() - start
    head = by_id(report, "head.source")
    assert head.status is Status.FAIL and head.data["kind"] == kind
    assert words in head.summary and server.url in head.summary
    assert head.remediation is not None
    assert report.exit_code == 1
    assert elapsed < 15  # bounded by --timeout, not by the server
