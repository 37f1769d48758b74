"""One lint for every cluster file: rules written once, judging compose files and cluster files alike.

``RULES`` is the one list, in report order. Each rule names the check id it
has in each family it judges (``compose`` for Docker Compose files,
``cluster`` for ``ray up`` configs, KubeRay resources and Helm values); a
rule without a ``cluster`` id is about Compose alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from doctor.checks.lint import common, compose_only
from doctor.checks.lint.framework import Item, LintContext, Rule, family_of, lint
from doctor.checks.lint.routes import HostRoute, host_routes
from doctor.head.cluster_files import ClusterSpec
from doctor.model import Result

__all__ = [
    "RULES",
    "HostRoute",
    "Item",
    "LintContext",
    "Rule",
    "family_of",
    "host_routes",
    "lint",
    "lint_spec",
    "rules_for",
]

RULES: list[Rule] = [
    Rule(
        {"compose": "compose.same_image", "cluster": "cluster.same_image"},
        "Every node runs the head's image",
        common.same_image,
    ),
    Rule(
        {"compose": "compose.ray_start_flags", "cluster": "cluster.ray_start_flags"},
        "ray start options are ones Ray takes",
        common.ray_start_flags,
    ),
    Rule({"cluster": "cluster.ray_version"}, "Declared Ray version matches the images", common.ray_version),
    Rule(
        {"compose": "compose.dashboard_host"},
        "Dashboard reachable from outside the container",
        compose_only.dashboard_host,
    ),
    Rule({"compose": "compose.block"}, "ray start keeps the container running", compose_only.block),
    Rule({"compose": "compose.worker_address"}, "Workers join the head", compose_only.worker_address),
    Rule({"compose": "compose.shm_size"}, "Shared memory for the object store", compose_only.shm_size),
    Rule({"compose": "compose.published_ports"}, "Ports published safely and reachably", compose_only.published_ports),
    Rule({"compose": "compose.gpu_reservation", "cluster": "cluster.gpu"}, "GPU groups get a GPU", common.gpu),
    Rule({"compose": "compose.resource_limits"}, "Resource limits fit this machine", compose_only.resource_limits),
    Rule(
        {"compose": "compose.network_mode"}, "Network mode lets Ray nodes reach each other", compose_only.network_mode
    ),
    Rule({"compose": "compose.subnet"}, "Compose subnets are private and free here", compose_only.subnet),
]


def rules_for(family: str) -> list[tuple[str, str, Rule]]:
    """``(check id, title, rule)`` of every rule that judges ``family``, in report order."""
    return [(rule.ids[family], rule.title, rule) for rule in RULES if rule.applies(family)]


def lint_spec(
    spec: ClusterSpec,
    *,
    routes: Callable[[], Iterable[HostRoute]] | None = None,
    cpu_count: int | None = None,
    cpu_source: str | None = None,
) -> list[Result]:
    """Every rule that fits the file, one finding each (see ``doctor.checks.lint.framework.lint``)."""
    return lint(spec, RULES, routes=routes, cpu_count=cpu_count, cpu_source=cpu_source)
