"""Compose lint as a check: applies whenever the target came with a compose file."""

from __future__ import annotations

from typing import Any

from doctor.model import Result
from doctor.runner import Check


def _lint(ctx: Any) -> list[Result]:
    from doctor.checks.compose_lint import lint_compose
    from doctor.local.docker_cli import engine_cpus

    project = ctx.target.compose
    # CPU limits are judged against the engine's CPUs (Docker Desktop's VM has fewer than the laptop):
    # asked only when a service sets one.
    if any("cpus" in svc.limits for svc in project.services.values()):
        cpus = engine_cpus(ctx.environ)
        if cpus is not None:
            return lint_compose(project, cpu_count=cpus, cpu_source="the Docker engine's")
    return lint_compose(project)


def checks_for(ctx: Any) -> list[Check]:
    if ctx.target.compose is None:
        return []
    return [Check("compose.lint", "compose", "Compose file", _lint, timeout=10)]
