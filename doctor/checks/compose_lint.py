"""Lint a Ray cluster's compose file: the mistakes seen in public Ray compose files.

The rules live in ``doctor.checks.lint`` and are shared with the other
cluster files (``doctor.checks.cluster_lint``); this module applies the ones
that judge compose files. Each rule reads only the parsed file
(``doctor.head.compose``) and this machine's routes, so it runs before any
container exists and explains a cluster that will not start, or starts but
cannot be reached, in terms of the line to change (a ``doctor.model.Edit``).
``lint_compose`` returns exactly one finding per rule, so a report always
shows every rule that was applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from doctor.checks.lint import HostRoute, lint_spec, rules_for
from doctor.head.cluster_files import spec_from_compose
from doctor.head.compose import ComposeProject
from doctor.model import Result

__all__ = ["RULES", "lint_compose"]

CATEGORY = "compose"
RULES = rules_for("compose")


def lint_compose(
    project: ComposeProject,
    *,
    routes: Callable[[], Iterable[HostRoute]] | None = None,
    cpu_count: int | None = None,
    cpu_source: str | None = None,
) -> list[Result]:
    """Apply every compose rule to ``project``: one finding each, in a fixed order.

    ``routes`` gives this machine's networks (default: ``host_routes``, read
    from ``/proc/net/route`` and ``ip -j addr``); ``cpu_count`` the CPUs
    Docker can hand out (default ``os.cpu_count()``) and ``cpu_source`` whose they are
    ("the Docker engine's" where ``docker info`` said). Tests inject them.
    """
    return lint_spec(spec_from_compose(project), routes=routes, cpu_count=cpu_count, cpu_source=cpu_source)
