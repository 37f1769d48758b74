"""The test suite's own parts: tests/helpers.py, the fixtures in conftest.py, tests/ray_cluster.py.

None of these needs a real Ray head: a stand-in ``ray`` executable plays the failing node.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import tests.conftest as conftest
from tests.helpers import by_id, wait_for
from tests.ray_cluster import NodeStartError, RayNode

# -- a part that is missing: skipped with the reason, or failed under CI -----------------------


def _item(**needs):
    return SimpleNamespace(iter_markers=lambda name: [pytest.mark.needs(**needs).mark] if name == "needs" else [])


@pytest.mark.parametrize(
    "needs, words",
    [
        ({"python": "2.1"}, "needs a Python 2.1: none in "),
        ({"python": "2.1.9"}, "no python2.1 of that version on PATH"),
        ({"pyenv": "2.1.9"}, "needs pyenv's Python 2.1.9: none in "),
    ],
)
def test_a_missing_python_skips_naming_it_and_fails_under_ci(monkeypatch, needs, words):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=words):
        conftest.pytest_runtest_setup(_item(**needs))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=words):
        conftest.pytest_runtest_setup(_item(**needs))


def test_a_python_that_is_here_passes(monkeypatch):
    monkeypatch.setenv("CI", "true")
    minor = "%d.%d" % sys.version_info[:2]
    if conftest.python_for(minor) is None:
        pytest.skip(f"this interpreter's minor {minor} is neither in pyenv's folder nor python{minor} on PATH")
    conftest.pytest_runtest_setup(_item(python=minor))  # no exception
    assert conftest.interpreter(minor)


def test_head_python_fails_under_ci_when_the_ray_venv_cannot_be_built(monkeypatch):
    """Before: always a skip, so a CI machine that could not build the venv passed every cluster test unseen."""

    def cannot(*args, **kwargs):
        raise RuntimeError("no Python 3.12 on this machine")

    monkeypatch.setattr(conftest, "ensure_ray_venv", cannot)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot build the Ray test venv .*no Python 3.12 on this machine"):
        conftest.ray_venv_python()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no Python 3.12 on this machine"):
        conftest.ray_venv_python()


def test_interpreter_fixture_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="needs a Python 2.1"):
        conftest.interpreter("2.1")


# -- helpers -------------------------------------------------------------------------------------


def test_by_id_takes_a_report_or_a_list_and_names_what_is_there():
    results = [SimpleNamespace(id="a.b"), SimpleNamespace(id="c.d")]
    assert by_id(results, "c.d") is results[1]
    assert by_id(SimpleNamespace(results=results), "a.b") is results[0]
    with pytest.raises(AssertionError, match=r"no x\.y in \['a\.b', 'c\.d'\]"):
        by_id(results, "x.y")


def test_wait_for_returns_the_first_truthy_value_and_names_what_it_waited_for():
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) >= 3 and "ready"

    assert wait_for(third_time, timeout=10, interval=0.01) == "ready" and len(calls) == 3
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"the port to close did not hold within 0.2 s \(last: False\)"):
        wait_for(lambda: False, timeout=0.2, interval=0.01, what="the port to close")
    assert time.monotonic() - start < 5  # 0.2 s asked; a loaded machine gets 25x margin


def test_temp_data_is_kept_for_failed_tests_only(pytestconfig):
    assert pytestconfig.getini("tmp_path_retention_policy") == "failed"
    assert int(pytestconfig.getini("tmp_path_retention_count")) <= 2


# -- the test harness's own faults: a head whose dashboard dies fails fast, with its log ---------

# A stand-in for `ray start --block` (tests/ray_cluster.py runs ``<env>/bin/ray``): it keeps running,
# as `ray start --block` does when it misses a dead dashboard, and starts a "dashboard" (a script at
# .../ray/dashboard/dashboard.py, in its process group, as Ray's is).
FAKE_RAY = r"""
import os, subprocess, sys
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
logs = os.path.join(opts["temp-dir"], "session_latest", "logs")
mode = os.environ["FAKE_MODE"]
child = subprocess.Popen([sys.executable, os.environ["FAKE_DASHBOARD"], logs, opts["dashboard-host"],
                          opts["dashboard-port"], mode])
if mode == "dead-on-arrival":  # the dashboard is gone before `ray start` says it is done
    child.wait()
print("Ray runtime started.", flush=True)
child.wait()
__import__("time").sleep(600)
"""

# The "dashboard": answers HTTP 503 for 2 s (none in "dead-on-arrival"), writes Ray's log files,
# closes its port, then exits (1), or lives on ("closes", "hangs").
FAKE_DASHBOARD = r"""
import os, socket, sys, time
logs, host, port, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(logs, exist_ok=True)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen()
srv.settimeout(0.2)
until = time.monotonic() + (0 if mode == "dead-on-arrival" else 2)
while time.monotonic() < until:
    try:
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()
    except OSError:
        pass
with open(os.path.join(logs, "dashboard.log"), "w") as f:
    f.write("ERROR head.py -- Module JobHead failed to start. Timeout after 30.0 seconds.\n")
    if mode == "hangs":  # Ray's own last words (ray/dashboard/dashboard.py, `__main__`)
        f.write("ERROR dashboard.py:308 -- The dashboard on node vm failed with the following error:\n")
with open(os.path.join(logs, "dashboard.err"), "w") as f:
    f.write("RuntimeError: Module JobHead failed to start.\n")
srv.close()
if mode in ("closes", "hangs"):
    time.sleep(600)
sys.exit(1)
"""


@pytest.mark.parametrize(
    "mode, words",
    [
        ("exits", "the dashboard process exited"),
        ("dead-on-arrival", "the dashboard process exited"),
        ("closes", "answered, then refused connections"),
        ("hangs", "the dashboard failed to start"),
    ],
    ids=[
        "dashboard-exits",
        "dashboard-dead-before-ray-start-is-done",
        "dashboard-stops-answering",
        "dashboard-fails-and-lingers",
    ],
)
def test_a_head_whose_dashboard_dies_fails_fast_with_its_log(tmp_path, mode, words):
    """Before: the harness polled for the full timeout and showed only `ray start`'s "Ray runtime started".

    Ray 2.49.2 with RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT=0.01 does this for real
    ("hangs"): its dashboard logged its failure 18 s before `ray start --block` printed that line
    and lived on, serving nothing; the old harness said "did not come up within 170 s" after 176 s.
    """
    bin_dir = tmp_path / "env" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "ray"
    fake.write_text(f"#!{sys.executable}\n{FAKE_RAY}")
    fake.chmod(0o755)
    dashboard = tmp_path / "ray" / "dashboard" / "dashboard.py"
    dashboard.parent.mkdir(parents=True)
    dashboard.write_text(FAKE_DASHBOARD)
    node = RayNode(bin_dir / "python", ip="127.0.0.8", env={"FAKE_MODE": mode, "FAKE_DASHBOARD": str(dashboard)})
    start = time.monotonic()
    with pytest.raises(NodeStartError) as info:
        node.start(timeout=120)
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert words in message
    assert "--- dashboard.err:" in message and "Module JobHead failed to start" in message
    assert "--- dashboard.log:" in message and "Ray runtime started" in message
    assert elapsed < 60, elapsed  # the fake dies after ~2 s; the old harness waited all 120 s
    assert node.proc is None and node.pids() == []  # stopped: nothing of the node left running
    assert node.temp_dir is not None and not node.temp_dir.exists()


# -- a node leaves nothing in the system temp dir (issue 12: a pymp-* folder was left there) ------

# A `ray start` whose child makes multiprocessing's temp folder (as Ray 2.60's dashboard does for its
# forkserver, ray/dashboard/subprocesses/handle.py) and is then killed without running its exit
# handlers (the dashboard's SIGTERM handler calls os._exit, ray/dashboard/dashboard.py).
FAKE_RAY_WITH_PYMP = r"""
import multiprocessing.util, os, sys, time
sys.stdout.write("pymp at " + multiprocessing.util.get_temp_dir() + "\n")
sys.stdout.flush()
time.sleep(600)
"""


def test_a_node_keeps_multiprocessing_temp_folders_in_its_own_temp_dir(tmp_path):
    """Before: TMPDIR was the system's, and every killed node left a pymp-* folder there."""
    bin_dir = tmp_path / "env" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "ray"
    fake.write_text(f"#!{sys.executable}\n{FAKE_RAY_WITH_PYMP}")
    fake.chmod(0o755)
    node = RayNode(bin_dir / "python", head=False, gcs_address="127.0.0.1:1").start()
    assert node.temp_dir is not None and node.log is not None
    line = wait_for(lambda: "pymp at" in node.log_tail() and node.log_tail(), timeout=30, what="the fake node's pymp")
    made = Path(line.split("pymp at ", 1)[1].split()[0])
    assert made.is_dir() and node.temp_dir in made.parents and made.parent != Path(tempfile.gettempdir())
    node.stop()  # SIGTERM: the child dies without its exit handlers, as Ray's dashboard does
    assert not made.exists() and not node.temp_dir.exists()
