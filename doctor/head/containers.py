"""What a compose cluster's containers say from inside: their state and the last lines of a component's log.

A published port on a running container is held by Docker's port proxy: where nothing listens inside
(a dashboard that died at start), the proxy accepts the connection and closes it, which from outside
looks like "another service". The cause is inside the container, in the component's own log:
``/tmp/ray/session_latest/logs/dashboard.err`` on the head (Ray's log folder layout,
``ray/_private/node.py``), ``docker logs`` for a container that exited (``ray start`` prints its error
there), and a worker's ``docker logs`` for Ray's version check (``ray/_private/utils.py::
check_version_info``: "Version mismatch: The cluster was started with: …").

Containers are found by the labels compose puts on them (``com.docker.compose.project.config_files``
and ``…working_dir``: docker-compose 1.29 writes the file as given, relative to working_dir; compose v2
absolute paths), so only the cluster of the file being checked is read. Every read is bounded (lines,
bytes, time) and the text is stripped of control characters: it is the container's, not ours.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from doctor import proc
from doctor.text import sanitize

TIMEOUT_S = 5.0
TAIL_LINES = 40
QUOTE_LINES = 8  # lines quoted in a finding's details
LINE_MAX = 300
DASHBOARD_ERR = "/tmp/ray/session_latest/logs/dashboard.err"
T = TypeVar("T")
_FORMAT = "\t".join(
    [
        "{{.ID}}",
        '{{.Label "com.docker.compose.project.config_files"}}',
        '{{.Label "com.docker.compose.project.working_dir"}}',
        '{{.Label "com.docker.compose.service"}}',
        "{{.State}}",
        "{{.Status}}",
        "{{.Names}}",
        '{{.Label "com.docker.compose.project"}}',
        '{{.Label "com.docker.compose.version"}}',
    ]
)
# An error line: "ImportError: …", "ray.exceptions.RaySystemError: …", "Error: …", "RuntimeError: Version mismatch…".
_ERROR = re.compile(r"^(?:[\w.]*(?:Error|Exception)|Error|FATAL|Fatal error)\b.*|.*\bVersion mismatch\b.*")


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    state: str  # Docker's: running, exited, restarting, created, paused, dead
    status: str  # "Up 45 seconds", "Exited (1) 3 seconds ago"
    project: str = ""  # the compose project (``-p``) that made it
    compose_version: str = ""  # the compose that made it: "1.29.2" (docker-compose) or "2.x" (the plugin)

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class LogTail:
    source: str  # how it was read, as a user would: "docker exec NAME tail -n 40 FILE", "docker logs NAME"
    lines: tuple[str, ...] = field(default_factory=tuple)

    @property
    def error(self) -> str | None:
        """The last line that reads as an error (the exception, Ray's own message), or None."""
        for i in range(len(self.lines) - 1, -1, -1):
            line = self.lines[i].strip()
            if "Version mismatch" in line:
                # Ray's message runs over the next lines ("Ray: 2.49.2", "This process on node … was started
                # with:", …): one line of it, as Ray wrote it.
                more = [x.strip() for x in self.lines[i + 1 : i + 6] if x.startswith((" ", "This process"))]
                return " ".join([line, *more])
            if _ERROR.match(line):
                return line
        return None

    def quoted(self) -> list[str]:
        """The last lines, for a finding's details."""
        return [f"  {line}" for line in self.lines[-QUOTE_LINES:]]


def _docker(environ: Mapping[str, str]) -> str | None:
    return shutil.which("docker", path=environ.get("PATH", os.defpath))


def _run(argv: list[str], environ: Mapping[str, str]) -> proc.Completed | None:
    try:
        return proc.run(argv, timeout=TIMEOUT_S, env=proc.child_env(environ), cap=256 * 1024)
    except (OSError, proc.ProcTimeout):
        return None


def _lines(text: str) -> tuple[str, ...]:
    out = [sanitize(line)[:LINE_MAX] for line in text.splitlines()]
    return tuple(line for line in out if line.strip())[-TAIL_LINES:]


def _same_file(label_files: str, working_dir: str, compose_path: Path) -> bool:
    want = os.path.realpath(compose_path)
    for name in label_files.split(","):
        name = name.strip()
        if name and os.path.realpath(os.path.join(working_dir, name)) == want:
            return True
    return False


def compose_containers(compose_path: Path, environ: Mapping[str, str]) -> list[Container] | None:
    """The containers compose made from ``compose_path`` (running or not), or None where Docker cannot tell."""
    docker = _docker(environ)
    if docker is None:
        return None
    done = _run([docker, "ps", "-a", "--no-trunc", "--format", _FORMAT], environ)
    if done is None or done.returncode != 0:
        return None
    found = []
    for row in done.stdout.splitlines():
        parts = row.split("\t")
        if len(parts) != 9 or not parts[3]:
            continue
        cid, files, workdir, service, state, status, name, project, version = parts
        if not re.fullmatch(r"[0-9a-f]{12,64}", cid) or not _same_file(files, workdir, compose_path):
            continue
        found.append(
            Container(
                cid,
                sanitize(name)[:100],
                sanitize(service)[:100],
                state,
                sanitize(status)[:100],
                sanitize(project)[:100],
                sanitize(version)[:40],
            )
        )
    return found


def exec_tail(container: Container, path: str, environ: Mapping[str, str], lines: int = TAIL_LINES) -> LogTail | None:
    """The last lines of ``path`` inside a running container; None where it cannot be read."""
    docker = _docker(environ)
    if docker is None or not container.running:
        return None
    done = _run([docker, "exec", container.id, "tail", "-n", str(lines), path], environ)
    if done is None or done.returncode != 0:
        return None
    return LogTail(f"docker exec {container.name} tail -n {lines} {path}", _lines(done.stdout))


def logs_tail(container: Container, environ: Mapping[str, str], lines: int = TAIL_LINES) -> LogTail | None:
    """The last lines the container printed (``docker logs``: stdout and stderr); None where unreadable."""
    docker = _docker(environ)
    if docker is None:
        return None
    done = _run([docker, "logs", "--tail", str(lines), container.id], environ)
    if done is None or done.returncode != 0:
        return None
    return LogTail(f"docker logs --tail {lines} {container.name}", _lines(done.stdout + "\n" + done.stderr))


class InsideView:
    """What a compose cluster's containers say: their states (one ``docker ps``), and the logs a finding
    asks for, each read once, when first asked: a healthy cluster costs no ``docker exec`` or ``logs``."""

    def __init__(self, head: Container | None, workers: tuple[Container, ...], environ: Mapping[str, str]) -> None:
        self.head = head
        self.workers = workers
        self._environ = environ
        self._lock = threading.Lock()
        self._read: dict[str, object] = {}

    def _once(self, key: str, read: Callable[[], T]) -> T:
        with self._lock:  # checks ask from their own threads: one read, every asker sees it
            if key not in self._read:
                self._read[key] = read()
            return cast(T, self._read[key])

    @property
    def dashboard_err(self) -> LogTail | None:
        """The running head's ``dashboard.err`` (None when the head is not running or it cannot be read)."""
        head = self.head
        if head is None or not head.running:
            return None
        return self._once("dashboard_err", lambda: exec_tail(head, DASHBOARD_ERR, self._environ))

    @property
    def head_log(self) -> LogTail | None:
        """``docker logs`` of a head that is not running (None when it runs or cannot be read)."""
        head = self.head
        if head is None or head.running:
            return None
        return self._once("head_log", lambda: logs_tail(head, self._environ))

    @property
    def worker_logs(self) -> tuple[tuple[Container, LogTail | None], ...]:
        """Each worker container with the last lines it printed (None where they cannot be read)."""
        return self._once("worker_logs", lambda: tuple((w, logs_tail(w, self._environ)) for w in self.workers))

    @property
    def refused(self) -> tuple[tuple[Container, LogTail], ...]:
        """Workers whose log says Ray refused them (its version check's "Version mismatch")."""
        return tuple(
            (worker, tail)
            for worker, tail in self.worker_logs
            if tail is not None and any("Version mismatch" in line for line in tail.lines)
        )

    @property
    def dashboard_died(self) -> bool:
        return bool(self.head and self.head.running and self.dashboard_err and self.dashboard_err.error)


def inside_view(compose_path: Path, head_service: str, environ: Mapping[str, str]) -> InsideView | None:
    """The cluster of ``compose_path`` seen by Docker; None where no engine answers or nothing was made."""
    containers = compose_containers(compose_path, environ)
    if not containers:
        return None
    head = next((c for c in containers if c.service == head_service), None)
    workers = tuple(c for c in containers if c.service != head_service)
    return InsideView(head, workers, environ)
