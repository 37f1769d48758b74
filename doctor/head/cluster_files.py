"""Read the file a Ray cluster is started from, whatever tool starts it.

A developer's cluster is described by one of four kinds of file, and each
says what the head runs in its own words:

* a Docker Compose file (``services:``; read by ``doctor.head.compose``);
* a Ray cluster launcher config (``ray up``: ``docker.image``,
  ``available_node_types``, ``head_node_type``, ``*_start_ray_commands``);
* a KubeRay custom resource (``apiVersion: ray.io/v1``, ``kind: RayCluster``,
  or a ``RayJob``/``RayService`` that embeds a cluster spec);
* values for KubeRay's ``ray-cluster`` Helm chart (``image.repository``/
  ``image.tag``, ``head``, ``worker``, ``additionalWorkerGroups``).

The format is recognised by content, not by file name, because all four are
commonly called ``cluster.yaml``. Each reader returns the same
``ClusterSpec`` (head and worker groups: image, `ray start` options as Ray
will see them, GPUs asked for) so that the head's versions (from its image)
and the one lint (``doctor.checks.lint``, whose rules judge every format)
do not care which tool is used. `ray start` lines and KubeRay's
``rayStartParams`` are read by the one parser, ``doctor.parsers.ray_start``;
YAML by the bounded loader of ``doctor.parsers.yaml_load`` (alias bombs refused).

Every problem with the file is a one-line ``UsageError`` naming the file;
nothing else escapes (``tests/test_fuzz_parsers.py`` holds us to that).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from doctor.errors import DoctorError, UsageError
from doctor.parsers.ray_start import RayStartLine, find_ray_starts, from_params, is_secret_name
from doctor.parsers.yaml_load import BoundedLoader, read_text, yaml_error
from doctor.parsers.yaml_load import kind as yaml_kind
from doctor.text import clip

__all__ = [
    "FORMATS",
    "FORMAT_TITLES",
    "ClusterSpec",
    "NodeGroup",
    "detect_format",
    "load_cluster_file",
    "read_compose",
    "read_helm_values",
    "read_kuberay",
    "read_ray_launcher",
    "spec_from_compose",
]

FORMATS = ("compose", "ray-launcher", "kuberay", "helm")
FORMAT_TITLES = {
    "compose": "Docker Compose file",
    "ray-launcher": "Ray cluster launcher config",
    "kuberay": "KubeRay resource",
    "helm": "KubeRay ray-cluster Helm values",
}
KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService")
GPU_RESOURCE = "nvidia.com/gpu"

# Top-level keys only the cluster launcher uses (python/ray/autoscaler/ray-schema.json).
_LAUNCHER_KEYS = frozenset(
    {
        "available_node_types",
        "head_node_type",
        "head_start_ray_commands",
        "worker_start_ray_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "initialization_commands",
        "idle_timeout_minutes",
        "upscaling_speed",
        "cluster_synced_files",
    }
)
_HELM_KEYS = frozenset({"head", "worker", "additionalWorkerGroups"})
# `pip install ray[default]==2.49.2` (or `"ray==2.49.2"`) in a setup command.
_RAY_PIN = re.compile(r"(?<![\w.-])ray(?:\[[^\]\s]*\])?==([0-9][0-9A-Za-z.+!-]*)")
_MAX_DOCS = 64
MIN_SECRET_LEN = 4  # as doctor.head.compose: shorter values would mask half the output


@dataclass
class NodeGroup:
    """One kind of node: the head, or a worker group / node type / service.

    ``gpus`` is what the group asks the platform for (a Kubernetes
    ``nvidia.com/gpu`` limit, the launcher's ``resources: {GPU: n}``, a
    Compose device reservation); ``num_gpus`` is what Ray itself is told
    (``rayStartParams.num-gpus``, ``ray start --num-gpus``). Either is None
    when the file does not say.
    """

    name: str
    role: str  # "head" | "worker"
    image: str | None
    where: str  # where in the file, for messages: "spec.workerGroupSpecs[0]"
    gpus: float | None = None
    num_gpus: float | None = None
    gpu_notes: list[str] = field(default_factory=list)  # e.g. a GPU asked for under requests only
    gpus_exact: bool = True  # False where the platform hands out "all" GPUs: ``gpus`` is then a floor
    # The `ray start` options this group runs with (doctor.parsers.ray_start), where the
    # file says them ("services.ray-head.command", "head_start_ray_commands[1]",
    # "spec.headGroupSpec.rayStartParams"), and in which form: "command" (a shell line)
    # or "params" (KubeRay's rayStartParams mapping, which the operator turns into flags).
    ray_start: RayStartLine | None = None
    ray_start_at: str = ""
    ray_start_form: str = ""
    service: Any = None  # the doctor.head.compose.ComposeService of a compose group
    secrets: set[str] = field(default_factory=set, repr=False)  # env values named like secrets

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "image": self.image,
            "where": self.where,
            "gpus": self.gpus,
            "num_gpus": self.num_gpus,
        }


@dataclass
class ClusterSpec:
    """A cluster file seen the same way whatever its format."""

    format: str  # one of FORMATS
    path: Path
    head: NodeGroup
    workers: list[NodeGroup] = field(default_factory=list)
    ray_version: str | None = None  # what the file declares, e.g. KubeRay spec.rayVersion
    ray_version_from: str | None = None  # where it says so
    kind: str | None = None  # KubeRay kind (RayCluster, RayJob, RayService)
    name: str | None = None  # metadata.name / cluster_name
    namespace: str | None = None  # KubeRay metadata.namespace (where its secret lives)
    compose: Any = None  # doctor.head.compose.ComposeProject for a compose file
    # The platform hands GPUs out explicitly (Kubernetes limits, Compose
    # reservations); the launcher's Docker runner adds the NVIDIA runtime itself.
    explicit_gpus: bool = True
    setup_commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set, repr=False)  # see secret_values()

    def secret_values(self) -> set[str]:
        """What must never be shown: values of `ray start` flags (command lines and rayStartParams)
        named like a password, token, secret or key, and of environment variables so named (a
        compose ``environment:``, a pod's ``env:``, the chart's ``containerEnv``). Values shorter
        than ``MIN_SECRET_LEN`` are left out."""
        values = set(self.secrets)
        if self.compose is not None:
            values |= self.compose.secret_values()
        for group in self.groups:
            values |= group.secrets
            if group.ray_start is not None:
                values |= group.ray_start.secret_values()
        return {v for v in values if len(v) >= MIN_SECRET_LEN}

    @property
    def groups(self) -> list[NodeGroup]:
        return [self.head, *self.workers]

    @property
    def head_image(self) -> str | None:
        return self.head.image

    @property
    def worker_images(self) -> dict[str, str | None]:
        return {w.name: w.image for w in self.workers}

    @property
    def gpu_requests(self) -> dict[str, float | None]:
        """GPUs each group (head included) asks the platform for."""
        return {g.name: g.gpus for g in self.groups}

    @property
    def title(self) -> str:
        what = FORMAT_TITLES.get(self.format, self.format)
        if self.kind:
            what = f"KubeRay {self.kind}"
        return f"{what} {self.name}" if self.name else what

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": str(self.path),
            "kind": self.kind,
            "name": self.name,
            "head": self.head.to_dict(),
            "workers": [w.to_dict() for w in self.workers],
            "ray_version": self.ray_version,
            "ray_version_from": self.ray_version_from,
        }


# --------------------------------------------------------------------------
# entry points


def load_cluster_file(path: Path, environ: Mapping[str, str] | None = None) -> ClusterSpec:
    """Read ``path``, recognise its format and return its ``ClusterSpec``.

    ``environ`` is used for Compose's variable interpolation only. Raises
    ``UsageError`` (one line, naming the file) for anything wrong with it.
    """
    path = Path(path)
    try:
        docs = _read_yaml(path)
        for doc in docs:
            fmt = detect_format(doc)
            if fmt is not None:
                return READERS[fmt](doc, path, environ)
        raise UsageError(
            f"{path}: not a cluster file raydoctor knows ({_describe_docs(docs)})",
            hint="expected a Docker Compose file, a Ray cluster launcher YAML, a KubeRay "
            "RayCluster/RayJob/RayService, or values for KubeRay's ray-cluster Helm chart",
        )
    except DoctorError:
        raise
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply to read") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        # Defence in depth: a shape the readers missed is the file's fault, not a crash.
        raise UsageError(f"{path}: unexpected structure ({type(exc).__name__}: {clip(str(exc))})") from None


def detect_format(doc: Any) -> str | None:
    """Which format a parsed YAML document is in, or None. Never raises.

    Checked most specific first: a KubeRay resource names itself
    (``apiVersion: ray.io/...``), Compose has ``services:``, the launcher has
    keys no other format uses, and Helm values have ``head``/``worker``
    mappings.
    """
    if not isinstance(doc, dict):
        return None
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if isinstance(api, str) and api.startswith("ray.io/") and kind in KUBERAY_KINDS:
        return "kuberay"
    if "apiVersion" in doc and "kind" in doc:
        return None  # some other Kubernetes object (a Service, a ConfigMap...)
    if "services" in doc:
        return "compose"  # doctor.head.compose says precisely what is wrong with a broken one
    keys = {k for k in doc if isinstance(k, str)}
    if keys & _LAUNCHER_KEYS:
        return "ray-launcher"
    provider = doc.get("provider")
    if isinstance(provider, dict) and "type" in provider and ("cluster_name" in keys or "docker" in keys):
        return "ray-launcher"
    if keys & _HELM_KEYS:
        return "helm"
    return None


# --------------------------------------------------------------------------
# readers, one per format


def read_compose(doc: Any, path: Path, environ: Mapping[str, str] | None = None) -> ClusterSpec:
    """A Compose file: ``doctor.head.compose`` reads it (interpolation and all)."""
    from doctor.head.compose import load_compose

    return spec_from_compose(load_compose(path, environ))


def spec_from_compose(project: Any) -> ClusterSpec:
    """The common description of a loaded ``ComposeProject``: one group per Ray service."""
    from doctor.head.compose import reserved_gpu_count

    def group(svc: Any, role: str) -> NodeGroup:
        line = svc.ray_start_line
        num = _number(line.value("--num-gpus")) if line is not None else None
        gpus, exact = None, True
        if svc.gpu_reservation:
            count = reserved_gpu_count(svc.raw)
            gpus, exact = float(count or 1), count is not None
        return NodeGroup(
            svc.name,
            role,
            svc.image,
            f"services.{svc.name}",
            gpus=gpus,
            num_gpus=num,
            gpus_exact=exact,
            ray_start=line,
            ray_start_at=f"services.{svc.name}.command",
            ray_start_form="command",
            service=svc,
        )

    return ClusterSpec(
        "compose",
        project.path,
        group(project.head, "head"),
        [group(w, "worker") for w in project.workers],
        compose=project,
    )


def read_ray_launcher(doc: Any, path: Path, environ: Mapping[str, str] | None = None) -> ClusterSpec:
    """A ``ray up`` config.

    The image of a node follows Ray's Docker command runner: the node type's
    ``docker`` settings override the top-level ones, then ``head_image`` /
    ``worker_image`` win over ``image`` (autoscaler/_private/command_runner.py,
    ``DockerCommandRunner.run_init``). Without ``docker:`` Ray runs on the
    host and the file names no image.
    """
    where = f"{path}: "
    docker = _mapping(doc.get("docker"), where, "docker")
    node_types = _mapping(doc.get("available_node_types"), where, "available_node_types")
    head_start = _commands(doc.get("head_start_ray_commands"), where, "head_start_ray_commands")
    worker_start = _commands(doc.get("worker_start_ray_commands"), where, "worker_start_ray_commands")
    head_line, head_at = _first_ray_start(head_start, "head_start_ray_commands")
    worker_line, worker_at = _first_ray_start(worker_start, "worker_start_ray_commands")
    head_num = _number(head_line.value("--num-gpus")) if head_line else None
    worker_num = _number(worker_line.value("--num-gpus")) if worker_line else None

    def image_for(settings: dict, role: str, at: str) -> str | None:
        merged = {**docker, **settings}
        value = merged.get(f"{role}_image") or merged.get("image")
        return _image(value, where, at) if value is not None else None

    def _launcher_start(role: str) -> dict[str, Any]:
        line, at = (head_line, head_at) if role == "head" else (worker_line, worker_at)
        return {"ray_start": line, "ray_start_at": at, "ray_start_form": "command" if line else ""}

    def group(name: str, role: str, node: Any) -> NodeGroup:
        at = f"available_node_types.{name}"
        node = _mapping(node, where, at)
        node_docker = _mapping(node.get("docker"), where, f"{at}.docker")
        resources = _mapping(node.get("resources"), where, f"{at}.resources")
        gpus = _number(resources.get("GPU"), where, f"{at}.resources.GPU")
        num = head_num if role == "head" else worker_num
        return NodeGroup(
            name,
            role,
            image_for(node_docker, role, f"{at}.docker"),
            at,
            gpus=gpus,
            num_gpus=num if num is not None else gpus,
            **_launcher_start(role),
        )

    if node_types:
        head_type = doc.get("head_node_type")
        if head_type is None:
            raise UsageError(
                f"{where}available_node_types is set but head_node_type is missing",
                hint="name the head's node type in head_node_type",
            )
        if not isinstance(head_type, str) or head_type not in node_types:
            raise UsageError(
                f"{where}head_node_type {clip(str(head_type)) if _is_scalar(head_type) else yaml_kind(head_type)!r} "
                "is not one of available_node_types",
                hint=f"one of: {', '.join(clip(str(k)) for k in list(node_types)[:8])}",
            )
        head = group(head_type, "head", node_types[head_type])
        workers = [group(str(name), "worker", node) for name, node in node_types.items() if name != head_type]
    else:
        # An old-style config: Ray fills in its provider's default head and worker types.
        head = NodeGroup(
            "ray.head.default",
            "head",
            image_for({}, "head", "docker"),
            "docker",
            num_gpus=head_num,
            **_launcher_start("head"),
        )
        workers = []
        if doc.get("max_workers") != 0:
            workers.append(
                NodeGroup(
                    "ray.worker.default",
                    "worker",
                    image_for({}, "worker", "docker"),
                    "docker",
                    num_gpus=worker_num,
                    **_launcher_start("worker"),
                )
            )
    setup: list[str] = []
    for key in ("setup_commands", "head_setup_commands", "worker_setup_commands", "initialization_commands"):
        setup += _commands(doc.get(key), where, key)
    ray_version, ray_from = None, None
    for cmd in setup:
        match = _RAY_PIN.search(cmd)
        if match:
            ray_version, ray_from = match.group(1).rstrip("."), "setup_commands (pip install ray==...)"
            break
    name = doc.get("cluster_name")
    return ClusterSpec(
        "ray-launcher",
        path,
        head,
        workers,
        ray_version=ray_version,
        ray_version_from=ray_from,
        name=clip(str(name)) if _is_scalar(name) and name is not None else None,
        explicit_gpus=False,
        setup_commands=setup,
    )


def read_kuberay(doc: Any, path: Path, environ: Mapping[str, str] | None = None) -> ClusterSpec:
    """A KubeRay resource: a RayCluster, or a RayJob/RayService's embedded cluster.

    KubeRay treats the pod's first container as Ray's (``RayContainerIndex``
    is 0 in the operator), so that one's image and GPU limit are read.
    """
    kind = str(doc.get("kind"))
    where = f"{path}: {kind}: "
    meta = _mapping(doc.get("metadata"), where, "metadata")
    name = meta.get("name")
    spec = _mapping(doc.get("spec"), where, "spec")
    prefix = "spec"
    if kind == "RayJob":
        prefix = "spec.rayClusterSpec"
        if spec.get("rayClusterSpec") is None:
            selector = "clusterSelector" if spec.get("clusterSelector") else "no rayClusterSpec"
            raise UsageError(
                f"{where}defines no cluster ({selector}): it runs on an existing RayCluster",
                hint="point --cluster-file at that RayCluster's file, or use --address",
            )
        spec = _mapping(spec.get("rayClusterSpec"), where, prefix)
    elif kind == "RayService":
        prefix = "spec.rayClusterConfig"
        spec = _mapping(spec.get("rayClusterConfig"), where, prefix)
    head_spec = spec.get("headGroupSpec")
    if head_spec is None:
        raise UsageError(
            f"{where}{prefix}.headGroupSpec is missing: the cluster has no head", hint="KubeRay needs a headGroupSpec"
        )
    head = _kuberay_group(head_spec, "head", "head", f"{prefix}.headGroupSpec", where)
    groups_raw = spec.get("workerGroupSpecs")
    if groups_raw is None:
        groups_raw = []
    if not isinstance(groups_raw, list):
        raise UsageError(f"{where}{prefix}.workerGroupSpecs is a {yaml_kind(groups_raw)}, not a list")
    workers = []
    for i, raw in enumerate(groups_raw[:256]):
        at = f"{prefix}.workerGroupSpecs[{i}]"
        group_name = raw.get("groupName") if isinstance(raw, dict) else None
        label = (
            clip(str(group_name)) if _is_scalar(group_name) and group_name not in (None, "") else f"worker group {i}"
        )
        workers.append(_kuberay_group(raw, "worker", label, at, where))
    version = spec.get("rayVersion")
    return ClusterSpec(
        "kuberay",
        path,
        head,
        workers,
        ray_version=_scalar_text(version, where, f"{prefix}.rayVersion") if version is not None else None,
        ray_version_from=f"{prefix}.rayVersion" if version is not None else None,
        kind=kind,
        name=clip(str(name)) if _is_scalar(name) and name is not None else None,
        namespace=clip(str(meta["namespace"])) if _is_scalar(meta.get("namespace")) and meta.get("namespace") else None,
    )


def read_helm_values(doc: Any, path: Path, environ: Mapping[str, str] | None = None) -> ClusterSpec:
    """Values for KubeRay's ``ray-cluster`` chart, read as its template reads them.

    The chart (helm-chart/ray-cluster/templates/raycluster-cluster.yaml)
    writes ``image.repository:image.tag`` into every pod unless a group sets
    its own ``image``; ``head.rayVersion`` becomes ``spec.rayVersion``;
    ``initArgs`` is the old name of ``rayStartParams``; ``worker`` and each
    ``additionalWorkerGroups`` entry whose ``disabled`` is not true become
    worker groups. Values the file leaves out come from the chart's defaults,
    which raydoctor does not know, so a file without any image is an error.
    """
    where = f"{path}: "
    default_image = _helm_image(doc.get("image"), where, "image")
    head_values = doc.get("head")
    if head_values is None:
        head_values = {}
    head_values = _mapping(head_values, where, "head")

    def group(values: dict, role: str, name: str, at: str) -> NodeGroup:
        image = _helm_image(values.get("image"), where, f"{at}.image") or default_image
        if image is None:
            raise UsageError(
                f"{where}no image for {at}: set image.repository and image.tag",
                hint="the chart's own default image is not known to raydoctor",
            )
        params = {}
        for key in ("initArgs", "rayStartParams"):
            params.update(_mapping(values.get(key), where, f"{at}.{key}"))
        gpus, notes = _k8s_gpus(values.get("resources"), where, f"{at}.resources")
        num = _number(params.get("num-gpus"), where, f"{at}.rayStartParams.num-gpus")
        return NodeGroup(
            name,
            role,
            image,
            at,
            gpus=gpus,
            num_gpus=num,
            gpu_notes=notes,
            ray_start=from_params(params),
            ray_start_at=f"{at}.rayStartParams",
            ray_start_form="params",
            secrets=_env_secrets(values.get("containerEnv")),
        )

    head = group(head_values, "head", "head", "head")
    workers: list[NodeGroup] = []
    extra = _mapping(doc.get("additionalWorkerGroups"), where, "additionalWorkerGroups")
    for key, values in list(extra.items())[:256]:
        values = _mapping(values, where, f"additionalWorkerGroups.{key}")
        if values.get("disabled") is True:
            continue
        workers.append(group(values, "worker", clip(str(key)), f"additionalWorkerGroups.{key}"))
    worker = doc.get("worker")
    worker = _mapping({} if worker is None else worker, where, "worker")
    if worker.get("disabled") is not True:
        name = worker.get("groupName")
        label = clip(str(name)) if _is_scalar(name) and name not in (None, "") else "workergroup"
        workers.append(group(worker, "worker", label, "worker"))
    version = head_values.get("rayVersion")
    return ClusterSpec(
        "helm",
        path,
        head,
        workers,
        ray_version=_scalar_text(version, where, "head.rayVersion") if version is not None else None,
        ray_version_from="head.rayVersion" if version is not None else None,
    )


READERS: dict[str, Callable[[Any, Path, Mapping[str, str] | None], ClusterSpec]] = {
    "compose": read_compose,
    "ray-launcher": read_ray_launcher,
    "kuberay": read_kuberay,
    "helm": read_helm_values,
}


# --------------------------------------------------------------------------
# helpers


def _read_yaml(path: Path) -> list[Any]:
    text = read_text(path, "cluster file", "pass the file the cluster is started from with --cluster-file PATH")
    docs: list[Any] = []
    try:
        for doc in yaml.load_all(text, Loader=BoundedLoader):  # a SafeLoader subclass: safe
            docs.append(doc)
            if len(docs) >= _MAX_DOCS:
                break
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    return docs


def _describe_docs(docs: list[Any]) -> str:
    if not docs or all(d is None for d in docs):
        return "it is empty"
    kinds = []
    for doc in docs[:3]:
        if isinstance(doc, dict) and _is_scalar(doc.get("kind")) and doc.get("kind") is not None:
            kinds.append(f"a {clip(str(doc.get('kind')), 40)}")
        elif isinstance(doc, dict):
            keys = [clip(str(k), 30) for k in list(doc)[:4] if _is_scalar(k)]
            kinds.append("a mapping with " + (", ".join(keys) or "no keys"))
        else:
            kinds.append(f"a {yaml_kind(doc)}")
    return "it holds " + "; ".join(kinds)


def _kuberay_group(raw: Any, role: str, name: str, at: str, where: str) -> NodeGroup:
    raw = _mapping(raw, where, at)
    template = _mapping(raw.get("template"), where, f"{at}.template")
    pod = _mapping(template.get("spec"), where, f"{at}.template.spec")
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise UsageError(
            f"{where}{at}.template.spec.containers is missing or empty",
            hint="the first container runs Ray and names its image",
        )
    ray_container = _mapping(containers[0], where, f"{at}.template.spec.containers[0]")
    image = ray_container.get("image")
    if image is None:
        raise UsageError(f"{where}{at}.template.spec.containers[0] has no image")
    image_text = _image(image, where, f"{at}.template.spec.containers[0].image")
    params = _mapping(raw.get("rayStartParams"), where, f"{at}.rayStartParams")
    gpus, notes = _k8s_gpus(ray_container.get("resources"), where, f"{at}.template.spec.containers[0].resources")
    num = _number(params.get("num-gpus"), where, f"{at}.rayStartParams.num-gpus")
    secrets: set[str] = set()
    for container in containers[:64]:
        if isinstance(container, dict):
            secrets |= _env_secrets(container.get("env"))
    return NodeGroup(
        name,
        role,
        image_text,
        at,
        gpus=gpus,
        num_gpus=num,
        gpu_notes=notes,
        ray_start=from_params(params),
        ray_start_at=f"{at}.rayStartParams",
        ray_start_form="params",
        secrets=secrets,
    )


def _env_secrets(env: Any) -> set[str]:
    """Values of a pod's ``env:`` list (``{name, value}``) whose names look secret."""
    out: set[str] = set()
    for item in env[:1000] if isinstance(env, list) else []:
        if not isinstance(item, dict):
            continue
        name, value = item.get("name"), item.get("value")
        if isinstance(name, str) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if is_secret_name(name):
                out.add(str(value))
    return out


def _k8s_gpus(resources: Any, where: str, at: str) -> tuple[float | None, list[str]]:
    """The ``nvidia.com/gpu`` limit of a container; a request alone is noted, not counted.

    Kubernetes hands out extended resources such as GPUs by their limit; a
    GPU named only under ``requests`` is rejected by the API server.
    """
    resources = _mapping(resources, where, at)
    limits = _mapping(resources.get("limits"), where, f"{at}.limits")
    requests = _mapping(resources.get("requests"), where, f"{at}.requests")
    notes: list[str] = []
    gpus = _number(limits.get(GPU_RESOURCE), where, f"{at}.limits.{GPU_RESOURCE}")
    if gpus is None and requests.get(GPU_RESOURCE) is not None:
        notes.append(f"{at}.requests names {GPU_RESOURCE} but limits do not: Kubernetes wants GPUs under limits")
    return gpus, notes


def _helm_image(value: Any, where: str, at: str) -> str | None:
    """``{repository, tag}`` → ``repository:tag`` as the chart's template writes it."""
    if value is None:
        return None
    if isinstance(value, str):
        return _image(value, where, at)  # not the chart's shape, but unambiguous
    value = _mapping(value, where, at)
    repo, tag = value.get("repository"), value.get("tag")
    if repo is None and tag is None:
        return None
    if repo is None:
        raise UsageError(f"{where}{at}.tag is set but {at}.repository is not")
    repo_text = _scalar_text(repo, where, f"{at}.repository")
    if tag is None or tag == "":
        return _image(repo_text, where, f"{at}.repository")
    return _image(f"{repo_text}:{_scalar_text(tag, where, f'{at}.tag')}", where, at)


def _first_ray_start(commands: list[str], key: str) -> tuple[RayStartLine | None, str]:
    """The first `ray start` in a list of shell commands (doctor.parsers.ray_start), and where it is."""
    for i, cmd in enumerate(commands):
        calls = find_ray_starts(cmd)
        if calls:
            return calls[0].line, f"{key}[{i}]"
    return None, ""


def _commands(value: Any, where: str, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise UsageError(f"{where}{key} is a {yaml_kind(value)}, not a list of commands")
    out = []
    for item in value[:1000]:
        if not _is_scalar(item) or item is None:
            raise UsageError(f"{where}{key} holds a {yaml_kind(item)}, not a command")
        out.append(str(item))
    return out


def _mapping(value: Any, where: str, at: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}{at} is a {yaml_kind(value)}, not a mapping")
    return value


def _image(value: Any, where: str, at: str) -> str:
    text = _scalar_text(value, where, at).strip()
    if not text or any(c.isspace() for c in text):
        raise UsageError(
            f"{where}{at} {clip(text)!r} is not an image reference", hint="e.g. rayproject/ray:2.49.2-py312-cpu"
        )
    return text


def _scalar_text(value: Any, where: str, at: str) -> str:
    if not _is_scalar(value) or value is None:
        raise UsageError(f"{where}{at} is a {yaml_kind(value)}, not a value")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any, where: str = "", at: str = "") -> float | None:
    """A GPU count: ``1``, ``"2"``, ``0.5``. Kubernetes quantities such as ``"1k"`` are not GPU counts.

    With ``at`` a value that is not a count is a UsageError; without, None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not _is_scalar(value):
        if at:
            raise UsageError(f"{where}{at} is a {yaml_kind(value)}, not a number")
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        if at:
            raise UsageError(f"{where}{at} {clip(str(value))!r} is not a number") from None
        return None
    if not math.isfinite(number) or number < 0:
        if at:
            raise UsageError(f"{where}{at} {clip(str(value))!r} is not a count")
        return None
    return number


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
