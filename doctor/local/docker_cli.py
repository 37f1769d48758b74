"""What this machine's Docker CLI can do, asked once per run: is there a ``docker``, does its
compose plugin answer, does an engine answer. Suggestions read it (``doctor.remedies.start_compose``):
``docker compose … up -d`` is pasted only where it can run.

``docker compose version`` exits non-zero with "docker: unknown command: docker compose" where
the plugin is missing (the CLI's plugin manager, docker/cli cli-plugins/manager); ``docker version
--format {{.Server.Version}}`` prints the engine's version only when one answers.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from doctor import proc

TIMEOUT_S = 5.0  # each question; a plugin or engine that takes longer is treated as absent


@dataclass(frozen=True)
class DockerCli:
    docker: str | None  # the docker CLI PATH finds, or None
    compose: bool = False  # `docker compose version` exited 0
    engine: bool = False  # `docker version` reported a server
    legacy_compose: str | None = None  # a standalone docker-compose that answers `version`, or None
    program: str = "docker"  # how a suggestion names docker: its bare name (PATH finds it)


def _answers(argv: list[str], environ: Mapping[str, str], timeout: float) -> proc.Completed | None:
    try:
        done = proc.run(argv, timeout=timeout, env=proc.child_env(environ))
    except (OSError, proc.ProcTimeout):
        return None
    return done if done.returncode == 0 else None


def probe(environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S) -> DockerCli:
    """Ask this machine's Docker what it can do; runs at most three short commands, without the token."""
    env = dict(os.environ if environ is None else environ)
    path = env.get("PATH", os.defpath)
    docker = shutil.which("docker", path=path)
    legacy = shutil.which("docker-compose", path=path)
    legacy_ok = legacy if legacy and _answers([legacy, "version"], env, timeout) else None
    if docker is None:
        return DockerCli(None, legacy_compose="docker-compose" if legacy_ok else None)
    compose = _answers([docker, "compose", "version"], env, timeout) is not None
    server = _answers([docker, "version", "--format", "{{.Server.Version}}"], env, timeout)
    engine = bool(server and server.stdout.strip())
    return DockerCli(docker, compose, engine, "docker-compose" if legacy_ok else None)
