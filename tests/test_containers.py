"""doctor.head.containers without an engine: which containers are the file's, and which log line is the cause."""

from __future__ import annotations

from pathlib import Path

from doctor.head.containers import LogTail, _lines, _same_file
from doctor.model import Status

DASHBOARD_ERR = """Traceback (most recent call last):
  File "/home/ray/anaconda3/lib/python3.12/site-packages/ray/dashboard/dashboard.py", line 12, in <module>
    import ssl
  File "/home/ray/anaconda3/lib/python3.12/ssl.py", line 100, in <module>
    import _ssl             # if we can't import it, let the error propagate
    ^^^^^^^^^^^
ImportError: libssl.so.3: cannot open shared object file: No such file or directory
"""

# Ray's own message (ray/_private/utils.py::check_version_info), as `ray start --address` prints it.
WORKER_LOG = """  File "/home/ray/anaconda3/lib/python3.12/site-packages/ray/_private/utils.py", line 1286, in check_version_info
    raise RuntimeError(error_message)
RuntimeError: Version mismatch: The cluster was started with:
    Ray: 2.49.2
    Python: 3.12.1
This process on node 172.29.0.2 was started with:
    Ray: 2.49.1
    Python: 3.12.1
"""


def test_the_last_error_line_is_the_cause() -> None:
    tail = LogTail("docker exec h tail", _lines(DASHBOARD_ERR))
    assert tail.error == "ImportError: libssl.so.3: cannot open shared object file: No such file or directory"
    assert tail.quoted()[-1].strip().startswith("ImportError")
    assert LogTail("x", _lines("INFO all well\nstarted\n")).error is None


def test_version_mismatch_is_quoted_whole_on_one_line() -> None:
    error = LogTail("docker logs w", _lines(WORKER_LOG)).error
    assert error is not None
    assert error.startswith("RuntimeError: Version mismatch: The cluster was started with: Ray: 2.49.2")
    assert "This process on node 172.29.0.2 was started with: Ray: 2.49.1 Python: 3.12.1" in error


def test_container_text_is_stripped_of_control_characters() -> None:
    lines = _lines("ImportError: bad\x1b[31m red\x07\n")
    assert all(ch.isprintable() for line in lines for ch in line)


def test_containers_are_matched_by_the_compose_files_labels(tmp_path: Path) -> None:
    compose = tmp_path / "cpu-ray-cluster.yaml"
    compose.write_text("services: {}\n")
    # docker-compose 1.29: the file as given, relative to working_dir; compose v2: absolute, comma-separated.
    assert _same_file("cpu-ray-cluster.yaml", str(tmp_path), compose)
    assert _same_file(f"/elsewhere/a.yaml,{compose}", "/", compose)
    assert not _same_file("cpu-ray-cluster.yaml", "/another/folder", compose)
    assert not _same_file("", str(tmp_path), compose)


def test_each_log_is_read_once_when_first_asked(monkeypatch) -> None:
    """InsideView reads nothing until a finding asks; then once, whichever check's thread asks first."""
    import threading

    from doctor.head import containers

    reads: list[str] = []

    def fake_logs(container, environ, lines=containers.TAIL_LINES):
        reads.append(container.name)
        return LogTail(f"docker logs {container.name}", tuple(WORKER_LOG.splitlines()))

    monkeypatch.setattr(containers, "logs_tail", fake_logs)
    head = containers.Container("a" * 64, "ray-head-1", "ray-head", "running", "Up 1 minute")
    workers = (
        containers.Container("b" * 64, "ray-worker-1", "ray-worker", "running", "Up 1 minute"),
        containers.Container("c" * 64, "ray-worker-2", "ray-worker", "exited", "Exited (1) 5 seconds ago"),
    )
    view = containers.InsideView(head, workers, {})
    assert reads == []  # made from `docker ps` alone
    assert view.head_log is None  # the head runs: its docker logs are not what a finding quotes
    seen: list[int] = []
    threads = [threading.Thread(target=lambda: seen.append(len(view.refused))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [2] * 8
    assert sorted(reads) == ["ray-worker-1", "ray-worker-2"]  # one read per worker, not one per asker


def _node_ctx(view, nodes):
    """The few facts head.nodes reads: a live head, its node list, and the compose cluster's inside view."""
    from types import SimpleNamespace

    from doctor.local.docker_cli import DockerCli

    head = SimpleNamespace(live=True)
    target = SimpleNamespace(
        address=SimpleNamespace(host="127.0.0.1", gcs_port=6379), compose_path="c.yaml", compose=None
    )
    return SimpleNamespace(
        head=lambda: head,
        nodes=lambda: nodes,
        inside=lambda: view,
        target=target,
        docker_cli=lambda: DockerCli(docker="/usr/bin/docker", engine=True, compose=True),
        environ={},
    )


def test_worker_containers_that_are_not_alive_nodes_are_named(monkeypatch) -> None:
    """head.nodes compares the alive workers with the file's worker containers: all joined, no log is read;
    one stopped, its state and its log's last error; one running but not joined, said as still starting."""
    from doctor.checks.nodes import judge_node_list
    from doctor.head import containers

    def fake_logs(container, environ, lines=containers.TAIL_LINES):
        return LogTail(f"docker logs {container.name}", ("ConnectionError: GCS at ray-head:6379 did not answer",))

    monkeypatch.setattr(containers, "logs_tail", fake_logs)
    head = containers.Container("a" * 64, "ray-head-1", "ray-head", "running", "Up 2 minutes")
    up = containers.Container("b" * 64, "ray-worker-1", "ray-worker", "running", "Up 3 seconds")
    down = containers.Container("c" * 64, "ray-worker-1", "ray-worker", "exited", "Exited (1) 4 seconds ago")
    alive_head = {"state": "ALIVE", "is_head_node": True, "resources_total": {"CPU": 2}}
    alive_worker = {"state": "ALIVE", "is_head_node": False, "resources_total": {"CPU": 2}}

    whole = containers.InsideView(head, (up,), {})
    assert judge_node_list(_node_ctx(whole, [alive_head, alive_worker])).code == "head.nodes.alive"
    assert whole._read == {}  # every worker container joined: nothing was read

    stopped = judge_node_list(_node_ctx(containers.InsideView(head, (down,), {}), [alive_head]))
    assert stopped.code == "head.nodes.worker_stopped" and stopped.status is Status.WARN
    assert "ray-worker-1 is not running (Exited (1)" in stopped.summary and "ConnectionError" in stopped.summary
    assert any("up" in c for c in stopped.remediation.commands), stopped.remediation

    starting = judge_node_list(_node_ctx(containers.InsideView(head, (up,), {}), [alive_head]))
    assert starting.code == "head.nodes.worker_not_joined" and starting.status is Status.WARN, starting.summary
