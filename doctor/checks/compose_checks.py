"""Compose lint as a check: applies whenever the target came with a compose file."""

from __future__ import annotations

from typing import Any

from doctor.model import Result
from doctor.runner import Check


def _lint(ctx: Any) -> list[Result]:
    from doctor.checks.compose_lint import lint_compose

    return lint_compose(ctx.target.compose)


def checks_for(ctx: Any) -> list[Check]:
    if ctx.target.compose is None:
        return []
    return [Check("compose.lint", "compose", "Compose file", _lint, timeout=10)]
