"""Lint a cluster file that is not a compose file: launcher YAML, KubeRay, Helm values.

The compose lint (``doctor.checks.compose_lint``) already judges compose
files; these are the rules that carry over to the other ways of starting a
cluster, read from the common ``ClusterSpec`` (``doctor.head.cluster_files``):

* ``cluster.same_image``: every group runs the head's image, because Ray
  refuses a node whose Ray or Python differs from the head's
  (``_private/node.py::Node.check_version_info``);
* ``cluster.ray_version``: the Ray version the file declares (KubeRay's
  ``spec.rayVersion``, the chart's ``head.rayVersion``) is the one the images
  run; KubeRay picks features by it, so a wrong one breaks the operator's
  handling of the cluster;
* ``cluster.gpu``: a group meant for GPUs gets one from Kubernetes, and a GPU
  is not handed to an image without CUDA.

Like the compose lint, it reads only the file and runs before anything
exists; ``lint_cluster`` returns one ``Result`` per rule, in a fixed order.
"""

from __future__ import annotations

from collections.abc import Callable

from packaging.version import InvalidVersion, Version

from doctor.checks.compose_lint import Finding
from doctor.head.cluster_files import GPU_RESOURCE, ClusterSpec, NodeGroup
from doctor.head.image_tag import ImageInfo, parse_image
from doctor.model import Remediation, Result, Status, result
from doctor.runner import Check

__all__ = ["RULES", "checks_for", "lint_cluster"]

CATEGORY = "cluster"
_SEVERITY = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}
NODE_CHECK_SOURCE = "ray/_private/node.py::Node.check_version_info"


# --------------------------------------------------------------------------
# the check


def checks_for(ctx) -> list[Check]:
    """Applies to a ``--cluster-file`` that is not a compose file (compose has its own lint)."""
    spec = getattr(ctx.target, "cluster", None)
    if spec is None or spec.compose is not None:
        return []
    return [Check("cluster.lint", CATEGORY, "Cluster file", lambda c: lint_cluster(spec), timeout=10)]


def lint_cluster(spec: ClusterSpec) -> list[Result]:
    """What the file says (``cluster.file``), then every rule: one Result each."""
    results = [_describe(spec)]
    for rule_id, title, rule in RULES:
        try:
            findings, ok_summary = rule(spec)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            results.append(
                result(
                    rule_id, CATEGORY, title, Status.ERROR, f"could not apply the rule: {' '.join(str(exc).split())}"
                )
            )
            continue
        results.append(_combine(rule_id, title, findings, ok_summary))
    return results


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
    return result("cluster.file", CATEGORY, "Cluster file", Status.OK, summary, details=details, data=spec.to_dict())


# --------------------------------------------------------------------------
# rules


def _rule_same_image(spec: ClusterSpec) -> tuple[list[Finding], str]:
    head = spec.head
    if not spec.workers:
        return [Finding(Status.SKIP, "no worker groups to compare with the head")], ""
    if not head.image:
        return [Finding(Status.SKIP, "the head names no image (it runs on the host); nothing to compare")], ""
    findings: list[Finding] = []
    head_info = parse_image(head.image)
    for worker in spec.workers:
        if not worker.image:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{worker.name} names no image (runs on the host) but the head runs {head.image}",
                    (
                        "Ray requires the same Ray and Python on every node, Python to the patch "
                        f"({NODE_CHECK_SOURCE}).",
                    ),
                    "Give every node type the head's image.",
                    (f"{worker.where}: image: {head.image}",),
                )
            )
            continue
        if _same_image(worker.image, head.image):
            findings.append(Finding(Status.OK, f"{worker.name} runs {worker.image}"))
            continue
        info = parse_image(worker.image)
        if _same_ray_and_python(info, head_info):
            findings.append(
                Finding(
                    Status.OK,
                    f"{worker.name} runs {worker.image}, the head {head.image}: same Ray {info.ray} and "
                    f"Python {info.python_minor}, only the platform differs ({head_info.platform} head, {info.platform} workers)",
                )
            )
            continue
        versions = _versions_note(head_info, info)
        findings.append(
            Finding(
                Status.WARN,
                f"{worker.name} runs {worker.image} but the head runs {head.image}",
                tuple(
                    v
                    for v in (
                        versions,
                        "Ray requires the same Ray and Python on every node, Python to the patch "
                        f"({NODE_CHECK_SOURCE}); a different image risks workers that never join.",
                    )
                    if v
                ),
                "Run the head's image in every group.",
                (f"{_image_key(spec, worker)}: {head.image}",),
            )
        )
    return findings, f"head and workers run {head.image}"


def _rule_ray_version(spec: ClusterSpec) -> tuple[list[Finding], str]:
    declared = spec.ray_version
    if not declared:
        what = {"kuberay": "spec.rayVersion", "helm": "head.rayVersion"}.get(spec.format, "a Ray version")
        return [Finding(Status.SKIP, f"the file declares no Ray version ({what} not set)")], ""
    launcher = spec.format == "ray-launcher"
    findings: list[Finding] = []
    unknown: list[str] = []
    for group in spec.groups:
        if not group.image:
            continue
        info = parse_image(group.image)
        if info.ray is None:
            unknown.append(group.name)
            continue
        if _version_equal(info.ray, declared):
            findings.append(Finding(Status.OK, f"{group.name} runs Ray {info.ray}"))
            continue
        if launcher:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{spec.ray_version_from} install Ray {declared} over Ray {info.ray} of {group.image} ({group.name})",
                    (
                        "Every node reinstalls Ray when it starts; the image's other packages were built for its own Ray.",
                    ),
                    f"Use the image of Ray {declared}, or drop the ray pin from the setup commands.",
                )
            )
            continue
        findings.append(
            Finding(
                Status.FAIL,
                f"{spec.ray_version_from} is {declared} but {group.name} runs {group.image} (Ray {info.ray})",
                (
                    "KubeRay chooses how to start and manage the cluster by the declared version; "
                    "the image decides what really runs.",
                ),
                f"Set {spec.ray_version_from} to {info.ray}, the Ray of the image, or run an image of Ray {declared}.",
                (f"{spec.ray_version_from}: '{info.ray}'",),
            )
        )
    if not findings:
        return [
            Finding(
                Status.SKIP,
                f"declares Ray {declared}; no image tag names a Ray version to compare "
                f"({', '.join(unknown) or 'no images'})",
            )
        ], ""
    return findings, f"{spec.ray_version_from} {declared} matches every image's Ray"


def _rule_gpu(spec: ClusterSpec) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    for group in spec.groups:
        info = parse_image(group.image) if group.image else None
        gpu_image = info is not None and info.is_ray_image and info.platform == "gpu"
        cpu_image = info is not None and info.is_ray_image and info.platform == "cpu" and info.unknown_reason is None
        num = group.num_gpus
        got = group.gpus or 0
        if spec.explicit_gpus:
            wants_by_num = bool(num)
            wants_by_image = gpu_image and group.role == "worker" and num is None
            if (wants_by_num or wants_by_image) and not got:
                why = f"rayStartParams num-gpus is {num:g}" if wants_by_num else f"it runs the GPU image {group.image}"
                details = [f"Kubernetes gives a pod GPUs only through resources.limits[{GPU_RESOURCE}]."]
                if wants_by_num:
                    details.append(
                        "Ray advertises GPUs that do not exist: a num_gpus=1 task is scheduled, "
                        "sees CUDA_VISIBLE_DEVICES=0 and finds no device."
                    )
                details += group.gpu_notes
                want = int(num) if num and num == int(num) else (num or 1)
                findings.append(
                    Finding(
                        Status.FAIL,
                        f"{group.name}: {why} but the pod has no {GPU_RESOURCE} limit: it gets no GPU",
                        tuple(details),
                        f"Give the Ray container of {group.name} a GPU limit.",
                        (f"{_resources_key(spec, group)}: {{limits: {{{GPU_RESOURCE}: {want}}}}}",),
                    )
                )
                continue
            if num and got and num > got:
                findings.append(
                    Finding(
                        Status.WARN,
                        f"{group.name}: num-gpus {num:g} but only {got:g} GPU in its {GPU_RESOURCE} limit",
                        ("Ray schedules tasks on GPUs the pod cannot see.",),
                        f"Set num-gpus to {got:g}, or raise the limit to {num:g}.",
                    )
                )
                continue
        if (got or num) and cpu_image:
            amount = got or num or 0
            asked = f"{GPU_RESOURCE}: {amount:g}" if spec.explicit_gpus and got else f"{amount:g} GPU"
            findings.append(
                Finding(
                    Status.WARN,
                    f"{group.name}: {asked} on the CPU image {group.image}",
                    ("The CPU images have no CUDA: the GPU is reserved but frameworks inside cannot use it.",),
                    "Use the GPU variant of the image (-gpu or -cuXYZ).",
                    (f"{_image_key(spec, group)}: {_gpu_variant(group.image or '')}",),
                )
            )
            continue
        if got or num:
            findings.append(Finding(Status.OK, f"{group.name}: {got or num:g} GPU"))
    if not findings:
        return [], "no group asks for GPUs"
    return findings, "every GPU group gets a GPU and a CUDA image"


RULES: list[tuple[str, str, Callable[[ClusterSpec], tuple[list[Finding], str]]]] = [
    ("cluster.same_image", "Every group runs the head's image", _rule_same_image),
    ("cluster.ray_version", "Declared Ray version matches the images", _rule_ray_version),
    ("cluster.gpu", "GPU groups get a GPU", _rule_gpu),
]


# --------------------------------------------------------------------------
# helpers


def _combine(rule_id: str, title: str, findings: list[Finding], ok_summary: str) -> Result:
    bad = [f for f in findings if f.status is not Status.OK]
    if not bad:
        return result(rule_id, CATEGORY, title, Status.OK, ok_summary, details=[f.summary for f in findings])
    if all(f.status is Status.SKIP for f in bad):
        return result(rule_id, CATEGORY, title, Status.SKIP, "; ".join(f.summary for f in bad))
    bad = sorted((f for f in bad if f.status is not Status.SKIP), key=lambda f: -_SEVERITY[f.status])
    details: list[str] = []
    for f in bad:
        details.append(f"{f.status.value}: {f.summary}")
        details.extend(f"  {d}" for d in f.details)
    texts = list(dict.fromkeys(f.fix for f in bad if f.fix))
    commands = list(dict.fromkeys(c for f in bad for c in f.commands))
    fix = Remediation(" ".join(texts), tuple(commands)) if texts or commands else None
    return result(
        rule_id,
        CATEGORY,
        title,
        bad[0].status,
        "; ".join(f.summary for f in bad),
        details=details,
        fix=fix,
        data={"findings": len(bad)},
    )


def _same_image(a: str, b: str) -> bool:
    """Equal references, ignoring Docker Hub's implicit ``docker.io/`` and ``library/`` and ``:latest``."""

    def norm(ref: str) -> str:
        for prefix in ("docker.io/", "index.docker.io/", "library/"):
            if ref.startswith(prefix):
                ref = ref[len(prefix) :]
        return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"

    return norm(a.strip()) == norm(b.strip())


def _same_ray_and_python(a: ImageInfo, b: ImageInfo) -> bool:
    """Two rayproject images of one release and Python: only CPU/GPU/arch differ."""
    return (
        a.is_ray_image
        and b.is_ray_image
        and a.ray is not None
        and a.ray == b.ray
        and a.python_minor is not None
        and a.python_minor == b.python_minor
        and a.repository == b.repository
    )


def _versions_note(head: ImageInfo, worker: ImageInfo) -> str:
    parts = []
    if head.ray and worker.ray and head.ray != worker.ray:
        parts.append(f"Ray {worker.ray} ≠ {head.ray}")
    if head.python_minor and worker.python_minor and head.python_minor != worker.python_minor:
        parts.append(f"Python {worker.python_minor} ≠ {head.python_minor}")
    return ("By their tags: " + ", ".join(parts) + ".") if parts else ""


def _version_equal(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except (InvalidVersion, ValueError):  # ValueError: a number past int()'s 4300 digits
        return a.strip() == b.strip()


def _image_key(spec: ClusterSpec, group: NodeGroup) -> str:
    if spec.format == "kuberay":
        return f"{group.where}.template.spec.containers[0].image"
    if spec.format == "helm":
        return f"{group.where}.image (repository, tag)" if group.role == "worker" else "image (repository, tag)"
    if spec.format == "ray-launcher":
        return f"{group.where}.docker.{'head' if group.role == 'head' else 'worker'}_image"
    return f"{group.where}.image"


def _resources_key(spec: ClusterSpec, group: NodeGroup) -> str:
    if spec.format == "kuberay":
        return f"{group.where}.template.spec.containers[0].resources"
    return f"{group.where}.resources"


def _gpu_variant(image: str) -> str:
    """``…:2.49.2-py312-cpu`` → ``…:2.49.2-py312-gpu``; a tag without a platform gets ``-gpu``."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image + ":latest-gpu"
    parts = tag.split("-")
    if "cpu" in parts:
        parts[parts.index("cpu")] = "gpu"
    elif "aarch64" in parts:
        parts.insert(parts.index("aarch64"), "gpu")
    else:
        parts.append("gpu")
    return f"{name}:{'-'.join(parts)}"
