"""doctor.proc: the one subprocess runner (deadline, process-group kill, capped output, no token)."""

from __future__ import annotations

import os
import sys

import pytest

from doctor import proc
from tests.helpers import wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_run_returns_the_exit_code_and_both_streams():
    done = proc.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"], timeout=30
    )
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (3, "out", "err")


def test_a_timeout_stops_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(proc.ProcTimeout) as info:
        proc.run([sys.executable, "-c", script], timeout=3)
    assert "started" in info.value.stdout
    grandchild = int(pidfile.read_text())
    wait_for(lambda: not _alive(grandchild), timeout=10, what="the grandchild to be killed with its group")


def test_output_is_capped():
    done = proc.run([sys.executable, "-c", "import sys; sys.stdout.write('x' * 3_000_000)"], timeout=30, cap=1000)
    assert len(done.stdout) == 1000


def test_children_do_not_inherit_the_token_unless_asked():
    environ = {"PATH": os.environ.get("PATH", ""), "RAY_AUTH_TOKEN": "s3cret-token", "RAY_AUTH_TOKEN_PATH": "/x"}
    env = proc.child_env(environ)
    assert "RAY_AUTH_TOKEN" not in env and "RAY_AUTH_TOKEN_PATH" not in env and env["PATH"] == environ["PATH"]
    assert proc.child_env(environ, with_token=True)["RAY_AUTH_TOKEN"] == "s3cret-token"
    done = proc.run([sys.executable, "-c", "import os; print(os.environ.get('RAY_AUTH_TOKEN'))"], timeout=30, env=env)
    assert done.stdout.strip() == "None"


def test_stream_gives_lines_and_keeps_the_tail():
    seen: list[str] = []
    code, tail = proc.stream(
        [sys.executable, "-c", "for i in range(50): print(i)"], timeout=30, on_line=seen.append, tail=5
    )
    assert code == 0 and seen == [str(i) for i in range(50)] and tail == ["45", "46", "47", "48", "49"]


def test_stream_times_out_with_what_it_read():
    with pytest.raises(proc.ProcTimeout) as info:
        proc.stream([sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"], timeout=2)
    assert "hi" in info.value.stdout


def test_a_missing_program_is_an_oserror():
    with pytest.raises(OSError):
        proc.run(["/nonexistent/raydoctor-test-binary"], timeout=5)
