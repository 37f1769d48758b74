"""One lint for every cluster file: rules written once, judging compose files and cluster files alike.

``RULES`` is the one list, in report order. Each rule names the check id it
has in each family it judges (``compose`` for Docker Compose files,
``cluster`` for ``ray up`` configs, KubeRay resources and Helm values); a
rule without a ``cluster`` id is about Compose alone.

``checks_for`` is the lint's entry in the checks registry (``doctor.app``):
a target that came with a compose file gets ``compose.lint``
(``lint_compose``), one with another cluster file ``cluster.lint``
(``lint_cluster``: what the file says, then the rules). Each rule reads only
the parsed file and this machine (its routes, the Docker engine's CPUs), so
it runs before any container exists and explains a cluster that will not
start, or starts but cannot be reached, in terms of the line to change (a
``doctor.model.Edit``); every applied rule gives exactly one finding.

The ``cluster`` rules judge the other ways of starting a cluster, read from
the common ``ClusterSpec`` (``doctor.head.cluster_files``):

* ``cluster.same_image``: every group runs the head's image, because Ray
  refuses a node whose Ray or Python differs from the head's
  (``ray/_private/node.py::Node.check_version_info``);
* ``cluster.ray_start_flags``: every ``rayStartParams`` key (or option of the
  launcher's ``*_start_ray_commands``) is one `ray start` of the group's Ray
  takes (``doctor.parsers.ray_start`` holds Ray 2.9 to 2.60 by release);
* ``cluster.ray_version``: the Ray version the file declares (KubeRay's
  ``spec.rayVersion``, the chart's ``head.rayVersion``) is the one the images
  run; KubeRay picks features by it, so a wrong one breaks the operator's
  handling of the cluster;
* ``cluster.gpu``: a group meant for GPUs gets one from Kubernetes, and a GPU
  is not handed to an image without CUDA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from doctor.checks.lint import common, compose_only
from doctor.checks.lint.framework import Item, LintContext, Rule, family_of, lint
from doctor.checks.lint.routes import HostRoute, host_routes
from doctor.head.cluster_files import ClusterSpec, NodeGroup, spec_from_compose
from doctor.head.compose import ComposeProject
from doctor.model import Result, Status, finding
from doctor.runner import Check

__all__ = [
    "RULES",
    "HostRoute",
    "Item",
    "LintContext",
    "Rule",
    "checks_for",
    "family_of",
    "host_routes",
    "lint",
    "lint_cluster",
    "lint_compose",
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


# --------------------------------------------------------------------------
# the lint as checks: compose.lint for a compose file, cluster.lint for every other cluster file


def checks_for(ctx: Any) -> list[Check]:
    """``compose.lint`` where the target came with a compose file, ``cluster.lint`` for a ``--cluster-file``
    that is not one (a compose file given as a cluster file is linted as compose)."""
    checks = []
    if getattr(ctx.target, "compose", None) is not None:
        checks.append(Check("compose.lint", "compose", "Compose file", _lint_compose_target, timeout=10))
    spec = getattr(ctx.target, "cluster", None)
    if spec is not None and spec.compose is None:
        checks.append(Check("cluster.lint", "cluster", "Cluster file", lambda c: lint_cluster(spec), timeout=10))
    return checks


def _lint_compose_target(ctx: Any) -> list[Result]:
    project = ctx.target.compose
    # CPU limits are judged against the engine's CPUs (Docker Desktop's VM has fewer than the laptop):
    # read from the run's Docker probe (doctor.local.docker_cli.DockerEngine) only when a service sets one.
    if any("cpus" in svc.limits for svc in project.services.values()):
        cpus = ctx.docker_engine().ncpu
        if cpus is not None:
            return lint_compose(project, cpu_count=cpus, cpu_source="the Docker engine's")
    return lint_compose(project)


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


def lint_cluster(spec: ClusterSpec) -> list[Result]:
    """What a cluster file that is not a compose file says (``cluster.file``), then every rule: one finding each."""
    return [_describe(spec), *lint_spec(spec)]


def _describe(spec: ClusterSpec) -> Result:
    def line(group: NodeGroup) -> str:
        gpu = ""
        if group.gpus:
            gpu = f", {group.gpus:g} GPU"
        elif group.num_gpus:
            gpu = f", num-gpus {group.num_gpus:g}"
        who = "head" if group.role == "head" else f"worker group {group.name}"
        return f"{who}: {group.image or 'no image (runs on the host)'}{gpu} ({group.where})"

    details = [line(g) for g in spec.groups]
    if spec.ray_version:
        details.append(f"declares Ray {spec.ray_version} ({spec.ray_version_from})")
    details += spec.notes
    workers = len(spec.workers)
    summary = (
        f"{spec.title} ({spec.path.name}): head runs {spec.head.image or 'on the host'}, "
        f"{workers} worker group{'' if workers == 1 else 's'}"
    )
    res = finding(
        Status.OK,
        summary,
        code="cluster.file.read",
        details=details,
        data=spec.to_dict(),
        check_id="cluster.file",
        title="What the cluster file says",
    )
    res.category = "cluster"
    return res
