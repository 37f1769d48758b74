"""Lint a cluster file that is not a compose file: launcher YAML, KubeRay, Helm values.

The rules are the one lint's (``doctor.checks.lint``), written once for
compose files and cluster files alike; here they judge the other ways of
starting a cluster, read from the common ``ClusterSpec``
(``doctor.head.cluster_files``):

* ``cluster.same_image``: every group runs the head's image, because Ray
  refuses a node whose Ray or Python differs from the head's
  (``ray/_private/node.py::Node.check_version_info``);
* ``cluster.ray_start_flags``: every ``rayStartParams`` key (or option of the
  launcher's ``*_start_ray_commands``) is one `ray start` takes;
* ``cluster.ray_version``: the Ray version the file declares (KubeRay's
  ``spec.rayVersion``, the chart's ``head.rayVersion``) is the one the images
  run; KubeRay picks features by it, so a wrong one breaks the operator's
  handling of the cluster;
* ``cluster.gpu``: a group meant for GPUs gets one from Kubernetes, and a GPU
  is not handed to an image without CUDA.

Like the compose lint, it reads only the file and runs before anything
exists; ``lint_cluster`` describes the file (``cluster.file``), then returns
one finding per rule, in a fixed order.
"""

from __future__ import annotations

from typing import Any

from doctor.checks.lint import lint_spec, rules_for
from doctor.head.cluster_files import ClusterSpec, NodeGroup
from doctor.model import Result, Status, finding
from doctor.runner import Check

__all__ = ["RULES", "checks_for", "lint_cluster"]

CATEGORY = "cluster"
RULES = rules_for("cluster")


# --------------------------------------------------------------------------
# the check


def checks_for(ctx: Any) -> list[Check]:
    """Applies to a ``--cluster-file`` that is not a compose file (compose has its own check)."""
    spec = getattr(ctx.target, "cluster", None)
    if spec is None or spec.compose is not None:
        return []
    return [Check("cluster.lint", CATEGORY, "Cluster file", lambda c: lint_cluster(spec), timeout=10)]


def lint_cluster(spec: ClusterSpec) -> list[Result]:
    """What the file says (``cluster.file``), then every rule: one finding each."""
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
    res.category = CATEGORY
    return res
