"""After ``fix --cluster`` rewrote a compose file: recreate only the services it changed, only if the cluster runs.

``up -d SERVICE…`` recreates a service whose definition changed and leaves the others alone; where the head
is among them, its workers are recreated with it (``rejoining``). It is run
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

__all__ = ["Restart", "rejoining", "restart_changed"]

TIMEOUT_S = 300.0  # recreating a container of a large image; pulling is the user's business
OUTPUT_LINES = 8


@dataclass
class Restart:
    """What happened to the running cluster: ``state`` is not_running | restarted | failed | no_compose."""

    state: str
    services: list[str] = field(default_factory=list)  # every service recreated: the changed and the rejoining
    argv: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # the last lines compose printed, when it failed
    rejoined: list[str] = field(default_factory=list)  # unchanged workers recreated to join a recreated head

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "services": list(self.services),
            "rejoined": list(self.rejoined),
            "command": list(self.argv),
            "output": self.output,
        }


def rejoining(head: str | None, ray_services: Sequence[str], changed: Sequence[str]) -> list[str]:
    """The unchanged Ray services to recreate with the head: a new head starts a new GCS, and a raylet of
    the old one cannot join it (it gives up, and its node stops, once the GCS has not answered for
    ``gcs_rpc_server_reconnect_timeout_s``, 60 s by default: Ray's src/ray/common/ray_config_def.h), so
    a worker that only `up -d` would leave alone is left running a dead node, its container then exiting."""
    if head is None or head not in changed:
        return []
    return [name for name in ray_services if name != head and name not in changed]


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
    rejoin: Sequence[str] = (),
) -> Restart:
    """``up -d`` the changed services of the cluster made from ``compose_path``, if any of it runs; with
    ``rejoin`` (``rejoining``: the head changed), ``up -d --force-recreate`` of those and the workers.

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
    every = [*services, *rejoin]
    # `--`: a service named like an option stays a service name; --force-recreate: an unchanged worker too
    argv += ["up", "-d", *(["--force-recreate"] if rejoin else []), "--", *every]
    try:
        done = proc.run(argv, timeout=TIMEOUT_S, env=proc.child_env(environ), cap=256 * 1024)
    except (OSError, proc.ProcTimeout) as exc:
        return Restart("failed", every, argv, [sanitize(str(exc))[:300]], list(rejoin))
    if done.returncode != 0:
        lines = [sanitize(ln)[:300] for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        return Restart("failed", every, argv, lines[-OUTPUT_LINES:], list(rejoin))
    return Restart("restarted", every, argv, rejoined=list(rejoin))
