"""After ``fix --cluster`` rewrote a compose file: recreate only the services it changed, only if the cluster runs.

``up -d SERVICE…`` recreates a service whose definition changed and leaves the others alone. It is run
with the compose that made the running containers (their ``com.docker.compose.version`` label: 1.x is
the standalone ``docker-compose``, 2.x the ``docker compose`` plugin), where this machine has it, else
with the one that answers, as ``doctor.remedies.start_compose`` picks; and with the containers' own
project name (``-p``), so a cluster started with ``-p NAME`` is not duplicated under the folder's name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor import proc
from doctor.text import sanitize

if TYPE_CHECKING:
    from doctor.local.docker_cli import DockerCli

__all__ = ["Restart", "restart_changed"]

TIMEOUT_S = 300.0  # recreating a container of a large image; pulling is the user's business
OUTPUT_LINES = 8


@dataclass
class Restart:
    """What happened to the running cluster: ``state`` is not_running | restarted | failed | no_compose."""

    state: str
    services: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # the last lines compose printed, when it failed

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "services": list(self.services), "command": list(self.argv), "output": self.output}


def _compose_argv(
    version: str, environ: Mapping[str, str], docker_cli: Callable[[], DockerCli] | None = None
) -> list[str] | None:
    """The compose that made the containers (label ``1.x``: ``docker-compose``), else the one that answers.

    ``docker_cli``: the check run's own answer (``CheckContext.docker_cli``, from its one ``docker info``),
    asked only here, where the plugin matters; without it Docker is asked again."""
    import shutil

    from doctor.local.docker_cli import probe

    found = shutil.which("docker-compose", path=environ.get("PATH", os.defpath))
    legacy = [found] if found else None
    if version.startswith("1.") and legacy:
        return legacy
    cli = docker_cli() if docker_cli is not None else probe(environ)
    plugin = [cli.docker, "compose"] if cli.docker and cli.compose else None
    return plugin or legacy


def restart_changed(
    compose_path: Path,
    services: Sequence[str],
    environ: Mapping[str, str],
    *,
    docker_cli: Callable[[], DockerCli] | None = None,
) -> Restart:
    """``up -d`` the changed services of the cluster made from ``compose_path``, if any of it runs.

    ``docker_cli``: what the check run learnt of this machine's Docker CLI (see ``_compose_argv``)."""
    from doctor.head.containers import compose_containers

    containers = compose_containers(compose_path, environ) or []
    running = [c for c in containers if c.running]
    if not running or not services:
        return Restart("not_running", list(services))
    compose = _compose_argv(running[0].compose_version, environ, docker_cli)
    if compose is None:
        return Restart("no_compose", list(services))
    argv = [*compose, "-f", os.path.abspath(compose_path)]  # compose runs in an empty folder (proc.run)
    if running[0].project:
        argv += ["-p", running[0].project]
    argv += ["up", "-d", "--", *services]  # `--`: a service named like an option stays a service name
    try:
        done = proc.run(argv, timeout=TIMEOUT_S, env=proc.child_env(environ), cap=256 * 1024)
    except (OSError, proc.ProcTimeout) as exc:
        return Restart("failed", list(services), argv, [sanitize(str(exc))[:300]])
    if done.returncode != 0:
        lines = [sanitize(ln)[:300] for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        return Restart("failed", list(services), argv, lines[-OUTPUT_LINES:])
    return Restart("restarted", list(services), argv)
