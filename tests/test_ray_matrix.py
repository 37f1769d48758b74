"""A version matrix of real heads: Ray 2.9 to 2.60, each on a Python it ships for (issue 18).

For each row a real head starts on loopback from a cached venv of that Ray (tests/ray_cluster.py), and:

* **facts**: ``check`` reads the head's Ray and exact Python, equal to what the head's own interpreter says;
* **rules**: this machine's interpreter (the test's Python, no Ray) is judged by Ray Client's rule
  (major.minor equal: ``ray/util/client/__init__.py::_check_versions``);
* **healthy without noise**: the head's own env (same Ray, same Python), round trip included, gets no
  warning, failure or error from ``check``;
* **fix**: ``fix --yes`` builds an env for the head from nothing, and its own verification (a round trip
  included) passes.

The 2.9.3 row also shows doctor.ray_bugs' first row for real: a Ray 2.9.3 client installed today (setuptools
≥ 81, no pkg_resources) fails in ``ray.init`` and ``check`` names the row; ``fix`` pins setuptools<81 and its
env connects. The 2.60.0 row runs with token authentication on.

``pytest -m matrix`` runs every row (one command); a plain ``pytest`` (CI) runs the rows marked ``ci``
(2.49.2, the suite's cached Ray, 2.9.3, the oldest, and 2.60.0 with token auth), the rest being deselected
in tests/conftest.py.
``RAYDOCTOR_MATRIX_TABLE=FILE`` appends each row's outcome as a JSON line (docs/ray-matrix.md was made so).

On this shared 2-core machine a first Ray Client connection to an old head took 34 s under load
(measured: ray.init 25.9 s on Ray 2.9.3), past raydoctor's 20 s limit for the round trip: the rows raise
that limit (``doctor.checks.roundtrip.LIMIT_S``), which is a kill deadline, not a judged speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from doctor.app import run_check
from doctor.checks import roundtrip
from doctor.checks.roundtrip import KNOWN_RAY_BUG
from doctor.fix.execute import run_fix
from doctor.fix.plan import FixOptions
from doctor.fix.progress import Steps
from doctor.model import Status
from doctor.options import TargetOptions
from doctor.parsers.ray_start import option_at, options_at
from tests.helpers import TOKEN, missing, tool_env
from tests.ray_cluster import RayNode, ensure_ray_venv, python_version

pytestmark = [pytest.mark.matrix, pytest.mark.cluster]

MATRIX_IP = "127.0.0.41"  # a loopback address no other test's node uses
ROUNDTRIP_LIMIT_S = 120.0
BAD = (Status.WARN, Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class Row:
    ray: str
    python: str  # the minor the head runs on (this machine's pyenv has 3.10.13, 3.11.7, 3.12.1)
    head_extra: tuple[str, ...] = ()  # what the head's env had when it was installed
    token: bool = False

    @property
    def id(self) -> str:
        return f"ray{self.ray}-py{self.python}" + ("-token" if self.token else "")


ROWS = [
    # Ray 2.9's dashboard imports pkg_resources: a head installed back then had setuptools < 81
    # (69.5.1, April 2024); one installed today dies at start (doctor.ray_bugs, pkg_resources).
    pytest.param(Row("2.9.3", "3.11", ("setuptools==69.5.1",)), id="ray2.9.3-py3.11", marks=pytest.mark.ci),
    pytest.param(Row("2.24.0", "3.10"), id="ray2.24.0-py3.10", marks=pytest.mark.matrix_only),
    pytest.param(Row("2.35.0", "3.11"), id="ray2.35.0-py3.11", marks=pytest.mark.matrix_only),
    pytest.param(Row("2.44.1", "3.12"), id="ray2.44.1-py3.12", marks=pytest.mark.matrix_only),
    pytest.param(Row("2.49.2", "3.12"), id="ray2.49.2-py3.12", marks=pytest.mark.ci),
    # In CI since its head start got one retry (head_of): 3 of 3 runs passed under flock at load 4-7,
    # 38-44 s a row, no retry needed (docs/ray-matrix.md).
    pytest.param(Row("2.60.0", "3.12", token=True), id="ray2.60.0-py3.12-token", marks=pytest.mark.ci),
]


@contextlib.contextmanager
def specific_server_ports_held() -> Iterator[list[int]]:
    """Keep this head's Ray Client proxier off per-client ports that another head on this machine serves.

    The proxier hands each client a SpecificServer on a port of 23000-24000, the same range on every head
    (``ray/util/client/server/proxier.py``: ``MIN_SPECIFIC_SERVER_PORT``), and takes one whose
    ``bind(("", port))`` succeeds. Seen here: another engineer's head served 23000 on
    ``[::ffff:127.0.0.1]``, that bind still succeeded, and the proxier's ``127.0.0.1:23000`` reached the
    other head's server (a Ray 2.9.3 client got "'JobConfig' object has no attribute 'py_logging_config'"
    from a newer Ray). A port that answers now is bound here too (not listened on), so that test fails.
    """
    held: list[socket.socket] = []
    try:
        for port in range(23000, 24000):
            with socket.socket() as probe:
                probe.settimeout(0.2)
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    continue
            sock = socket.socket()
            try:
                sock.bind(("", port))
            except OSError:
                sock.close()  # the proxier's own bind fails there too
                continue
            held.append(sock)
        yield [s.getsockname()[1] for s in held]
    finally:
        for sock in held:
            sock.close()


def head_python(row: Row) -> Path:
    try:
        return ensure_ray_venv(ray=row.ray, minor=row.python, extra=row.head_extra)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        missing(f"cannot build a Ray {row.ray} venv on Python {row.python}: {exc}")


HEAD_TRIES = 2


@contextlib.contextmanager
def head_of(row: Row, python: Path, tries: list[str] | None = None) -> Iterator[RayNode]:
    """A started head; ``tries`` gets why each failed start failed.

    One more start (fresh ports, fresh temp dir) after a failed one: under this 2-core machine's load a Ray
    2.60 head's GCS answered the raylet's get_node with "RPC error: Deadline Exceeded" until the fixed 30 s
    wait in ray/_private/node.py ran out, and the next start came up (docs/ray-matrix.md). A head that
    fails twice fails the row, with both reasons.
    """
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN} if row.token else {}
    failures = tries if tries is not None else []
    node = None
    for _ in range(HEAD_TRIES):
        node = RayNode(python, num_cpus=1, ip=MATRIX_IP, auth_token=TOKEN if row.token else None, env=env)
        try:
            node.start(timeout=300)  # start() stops what it started when it fails
            break
        except RuntimeError as exc:
            failures.append(str(exc).splitlines()[0][:300])
            node = None
    if node is None:
        pytest.fail(f"Ray {row.ray} on Python {row.python} did not start here in {HEAD_TRIES} tries: {failures}")
    try:
        yield node
    finally:
        node.stop()


def target(node: RayNode, **kw) -> TargetOptions:
    p = node.ports
    return TargetOptions(address=node.dashboard_url, client_port=p["client"], gcs_port=p["gcs"], **kw)


def noise(report) -> list[str]:
    return [f"{r.status.value} {r.id} ({r.code}): {r.summary}" for r in report.results if r.status in BAD]


def record(row: Row, **facts) -> None:
    out = os.environ.get("RAYDOCTOR_MATRIX_TABLE")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"ray": row.ray, "python": row.python, "token": row.token, **facts}) + "\n")


# `ray start`'s own options, asked from click in the row's venv (no head started): name -> (type, flag, count).
START_PARAMS = """
import json
from ray.scripts.scripts import start
print(json.dumps({o: [type(p.type).__name__, bool(getattr(p, "is_flag", False)), bool(getattr(p, "count", False))]
                  for p in start.params for o in p.opts}))
"""
# click's parameter types and the kinds of doctor.parsers.ray_start that read their values.
CLICK_KINDS = {
    "IntParamType": {"int", "port"},
    "FloatParamType": {"float"},
    "BoolParamType": {"bool", "flag"},
    "Choice": {"choice"},
    "IntRange": {"count"},
    "StringParamType": {"str", "json", "labels"},
    "FuncParamType": {"json"},  # --system-config: type=json.loads
}


@pytest.mark.parametrize("row", ROWS)
def test_the_ray_start_table_is_what_the_rows_ray_takes(row: Row, clean_env) -> None:
    """raydoctor's table for the row's release names exactly the options its `ray start` takes, each with a
    value kind click reads the same way (doctor.parsers.ray_start, written from scripts.py by release)."""
    python = head_python(row)
    done = subprocess.run(
        [str(python), "-c", START_PARAMS], capture_output=True, text=True, timeout=120, env=tool_env(clean_env)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    real = json.loads(done.stdout)
    version = Version(row.ray)
    assert sorted(options_at(version)) == sorted(real)
    for name, (click_type, flag, count) in real.items():
        spec = option_at(name, version)
        assert spec is not None and spec.valueless == (flag or count), name
        assert spec.kind in CLICK_KINDS[click_type], (name, spec.kind, click_type)


@pytest.mark.parametrize("row", ROWS)
def test_ray_release(row: Row, clean_env, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(roundtrip, "LIMIT_S", ROUNDTRIP_LIMIT_S)
    monkeypatch.setattr("doctor.context.ROUNDTRIP_LIMIT_S", ROUNDTRIP_LIMIT_S)  # the round trip fact's own limit
    python = head_python(row)
    exact = python_version(python)
    env = tool_env(clean_env)
    if row.token:
        env["RAY_AUTH_TOKEN"] = TOKEN
    (tmp_path / "work").mkdir()
    started = time.perf_counter()
    head_failures: list[str] = []
    with specific_server_ports_held(), head_of(row, python, head_failures) as node:
        head_s = time.perf_counter() - started

        # The facts, and the head's own env judged healthy with no warning.
        contexts: list = []
        healthy = run_check(
            target(node, python=str(python)), environ=env, cwd=tmp_path / "work", on_context=contexts.append
        )
        head = contexts[0].head()
        facts = (head.ray_version, head.python_version, head.python.exact if head.python else None)
        assert facts == (row.ray, exact, True), (facts, head.problems)
        assert noise(healthy) == [], "\n".join(noise(healthy))
        assert next(r for r in healthy.results if r.id == "roundtrip.client").status is Status.OK

        # This machine's interpreter (no Ray) judged by Ray Client's rule: major.minor must be equal.
        here = run_check(target(node, python=sys.executable, roundtrip=False), environ=env, cwd=tmp_path / "work")
        verdict = next(r for r in here.results if r.id == "versions.python").status
        same_minor = exact.rsplit(".", 1)[0] == ".".join(map(str, sys.version_info[:2]))
        assert verdict is (Status.OK if same_minor else Status.FAIL), verdict

        bug = None
        if row.ray == "2.9.3":  # a 2.9.3 client installed today: setuptools >= 81, no pkg_resources
            today = ensure_ray_venv(ray=row.ray, minor=row.python)
            before = run_check(target(node, python=str(today)), environ=env, cwd=tmp_path / "work")
            trip = next(r for r in before.results if r.id == "roundtrip.client")
            assert trip.code == f"roundtrip.client.{KNOWN_RAY_BUG}" and trip.data["cause"] == "pkg_resources", (
                trip.code,
                trip.summary,
                trip.details,
            )
            bug = trip.code

        # fix builds an env for this head from nothing; its own verification includes the round trip.
        fix_started = time.perf_counter()
        options = FixOptions(target(node), env_dir=tmp_path / "envs", yes=True, use_conda=False)
        report = run_fix(options, Steps(), confirm=lambda plan: True, environ=env, cwd=tmp_path / "work")
        fix_s = time.perf_counter() - fix_started
    assert report.exit_code == 0 and report.error is None, (report.error, noise(report))
    plan = report.extra["plan"]
    assert plan["action"] == "build" and plan["interpreter"]["version"] == exact, plan["interpreter"]
    assert ("setuptools<81" in plan["install"]["extra"]) == (row.ray == "2.9.3"), plan["install"]
    assert next(r for r in report.results if r.id == "roundtrip.client").status is Status.OK
    record(
        row,
        facts=f"Ray {facts[0]}, Python {facts[1]} (exact)",
        healthy_without_noise=True,
        fix="built, round trip ok" + (" (setuptools<81 pinned)" if row.ray == "2.9.3" else ""),
        before=bug,
        head_start_s=round(head_s, 1),
        head_failed_starts=head_failures,
        seconds=round(time.perf_counter() - started, 1),
        fix_s=round(fix_s, 1),
    )
