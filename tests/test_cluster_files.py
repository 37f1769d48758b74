"""Cluster files of every format: what is read from them, what the lint says, and every error.

Each row is a small file shaped like the ones people really use (KubeRay's
samples, ``ray up`` configs, the ray-cluster chart's values), cut down to
what raydoctor reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.checks.lint import checks_for, lint_cluster
from doctor.errors import UsageError
from doctor.head.cluster_files import ClusterSpec, detect_format, load_cluster_file
from doctor.model import Status
from doctor.options import TargetOptions
from tests.helpers import by_id, lint_cluster_file_results
from tests.samples import KUBERAY_GPU

REPO = Path(__file__).resolve().parent.parent

KUBERAY_CPU = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-kuberay
spec:
  rayVersion: '2.46.0'
  headGroupSpec:
    rayStartParams:
      dashboard-host: '0.0.0.0'
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.46.0
          resources:
            limits: {cpu: 1, memory: 2G}
            requests: {cpu: 1, memory: 2G}
          ports:
          - {containerPort: 6379, name: gcs-server}
          - {containerPort: 8265, name: dashboard}
          - {containerPort: 10001, name: client}
  workerGroupSpecs:
  - replicas: 1
    minReplicas: 1
    maxReplicas: 5
    groupName: workergroup
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.46.0
          resources:
            limits: {cpu: 1, memory: 1G}
"""


RAYJOB = """\
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: rayjob-sample
spec:
  entrypoint: python /home/ray/samples/sample_code.py
  rayClusterSpec:
    rayVersion: '2.41.0'
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.41.0-py311
    workerGroupSpecs:
    - groupName: small-group
      replicas: 1
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-worker
            image: rayproject/ray:2.41.0-py311
"""

RAYSERVICE = """\
apiVersion: ray.io/v1
kind: RayService
metadata:
  name: rayservice-sample
spec:
  serveConfigV2: |
    applications: []
  rayClusterConfig:
    rayVersion: '2.46.0'
    headGroupSpec:
      rayStartParams: {dashboard-host: '0.0.0.0'}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.46.0
"""

# kubectl files often carry several objects: the RayCluster need not be first.
MULTI_DOC = (
    "apiVersion: v1\nkind: Service\nmetadata: {name: head-svc}\nspec: {ports: [{port: 8265}]}\n---\n" + KUBERAY_CPU
)

LAUNCHER = """\
cluster_name: gpu-docker
max_workers: 2
upscaling_speed: 1.0
docker:
  image: rayproject/ray-ml:2.9.3-py310-gpu
  container_name: ray_container
  pull_before_run: true
  run_options: ["--ulimit nofile=65536:65536"]
idle_timeout_minutes: 5
provider:
  type: aws
  region: us-west-2
auth:
  ssh_user: ubuntu
available_node_types:
  ray.head.default:
    resources: {}
    node_config: {InstanceType: m5.large}
  ray.worker.gpu:
    min_workers: 0
    max_workers: 2
    resources: {CPU: 8, GPU: 1}
    node_config: {InstanceType: g4dn.2xlarge}
head_node_type: ray.head.default
setup_commands:
  - pip install -U "ray[default]==2.9.3"
head_start_ray_commands:
  - ray stop
  - ulimit -n 65536; ray start --head --port=6379 --object-manager-port=8076 --autoscaling-config=~/ray_bootstrap_config.yaml --dashboard-host=0.0.0.0
worker_start_ray_commands:
  - ray stop
  - ulimit -n 65536; ray start --address=$RAY_HEAD_IP:6379 --object-manager-port=8076
"""

# An old-style config: no node types, Ray's provider defaults fill them in.
LAUNCHER_LEGACY = """\
cluster_name: minimal
max_workers: 1
provider: {type: local, head_ip: 10.0.0.5, worker_ips: [10.0.0.6]}
docker:
  image: rayproject/ray:2.49.2-py312-cpu
  container_name: ray_container
"""

HELM = """\
image:
  repository: rayproject/ray
  tag: 2.49.2-py312-cpu
  pullPolicy: IfNotPresent
head:
  rayVersion: 2.49.2
  rayStartParams:
    dashboard-host: '0.0.0.0'
  resources:
    limits: {cpu: "1", memory: "2G"}
worker:
  groupName: workergroup
  replicas: 1
  resources:
    limits: {cpu: "1", memory: "1G"}
additionalWorkerGroups:
  gpuGroup:
    disabled: false
    replicas: 1
    image:
      repository: rayproject/ray
      tag: 2.49.2-py312-cu128
    rayStartParams: {num-gpus: "1"}
    resources:
      limits: {cpu: "4", nvidia.com/gpu: 1}
  smallGroup:
    disabled: true
    replicas: 0
"""


def write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> ClusterSpec:
    return load_cluster_file(write(tmp_path, text), environ={})


# --------------------------------------------------------------------------
# reading


@pytest.mark.parametrize(
    "text, fmt, head, workers, ray_version, gpus",
    [
        (
            KUBERAY_CPU,
            "kuberay",
            "rayproject/ray:2.46.0",
            {"workergroup": "rayproject/ray:2.46.0"},
            "2.46.0",
            {"head": None, "workergroup": None},
        ),
        (
            KUBERAY_GPU,
            "kuberay",
            "rayproject/ray:2.49.2-py312-cpu",
            {"gpu-group": "rayproject/ray:2.49.2-py312-cu128"},
            "2.49.2",
            {"head": None, "gpu-group": 1.0},
        ),
        (
            RAYJOB,
            "kuberay",
            "rayproject/ray:2.41.0-py311",
            {"small-group": "rayproject/ray:2.41.0-py311"},
            "2.41.0",
            {"head": None, "small-group": None},
        ),
        (RAYSERVICE, "kuberay", "rayproject/ray:2.46.0", {}, "2.46.0", {"head": None}),
        (
            MULTI_DOC,
            "kuberay",
            "rayproject/ray:2.46.0",
            {"workergroup": "rayproject/ray:2.46.0"},
            "2.46.0",
            {"head": None, "workergroup": None},
        ),
        (
            LAUNCHER,
            "ray-launcher",
            "rayproject/ray-ml:2.9.3-py310-gpu",
            {"ray.worker.gpu": "rayproject/ray-ml:2.9.3-py310-gpu"},
            "2.9.3",
            {"ray.head.default": None, "ray.worker.gpu": 1.0},
        ),
        (
            LAUNCHER_LEGACY,
            "ray-launcher",
            "rayproject/ray:2.49.2-py312-cpu",
            {"ray.worker.default": "rayproject/ray:2.49.2-py312-cpu"},
            None,
            {"ray.head.default": None, "ray.worker.default": None},
        ),
        (
            HELM,
            "helm",
            "rayproject/ray:2.49.2-py312-cpu",
            {"gpuGroup": "rayproject/ray:2.49.2-py312-cu128", "workergroup": "rayproject/ray:2.49.2-py312-cpu"},
            "2.49.2",
            {"head": None, "gpuGroup": 1.0, "workergroup": None},
        ),
    ],
    ids=["kuberay-cpu", "kuberay-gpu", "rayjob", "rayservice", "multi-doc", "launcher", "launcher-legacy", "helm"],
)
def test_reads_every_format(tmp_path, text, fmt, head, workers, ray_version, gpus):
    spec = load(tmp_path, text)
    assert spec.format == fmt
    assert spec.head_image == head
    assert spec.worker_images == workers
    assert spec.ray_version == ray_version
    assert spec.gpu_requests == gpus
    assert spec.compose is None


def test_kuberay_kind_name_and_params(tmp_path):
    spec = load(tmp_path, KUBERAY_GPU)
    assert spec.kind == "RayCluster" and spec.name == "raycluster-gpu"
    assert spec.head.num_gpus == 0.0 and spec.workers[0].num_gpus == 1.0
    assert spec.ray_version_from == "spec.rayVersion"
    assert load(tmp_path, RAYJOB).ray_version_from == "spec.rayClusterSpec.rayVersion"


def test_launcher_node_type_docker_overrides_top_level(tmp_path):
    text = LAUNCHER.replace(
        "    node_config: {InstanceType: g4dn.2xlarge}\n",
        "    node_config: {InstanceType: g4dn.2xlarge}\n    docker: {worker_image: rayproject/ray-ml:2.9.3-py310-cu118}\n",
    )
    spec = load(tmp_path, text)
    assert spec.worker_images == {"ray.worker.gpu": "rayproject/ray-ml:2.9.3-py310-cu118"}
    assert spec.head_image == "rayproject/ray-ml:2.9.3-py310-gpu"
    # head_image wins over image for the head only
    spec = load(
        tmp_path, LAUNCHER.replace("  container_name:", "  head_image: rayproject/ray:2.9.3-py310\n  container_name:")
    )
    assert spec.head_image == "rayproject/ray:2.9.3-py310"
    assert spec.worker_images["ray.worker.gpu"] == "rayproject/ray-ml:2.9.3-py310-gpu"


def test_launcher_num_gpus_from_start_commands(tmp_path):
    text = LAUNCHER.replace("--object-manager-port=8076\n", "--object-manager-port=8076 --num-gpus=2\n")
    spec = load(tmp_path, text)
    assert spec.workers[0].num_gpus == 2.0


def test_launcher_without_docker_runs_on_host(tmp_path):
    spec = load(tmp_path, "cluster_name: bare\nprovider: {type: aws, region: us-east-1}\nmax_workers: 0\n")
    assert spec.format == "ray-launcher" and spec.head_image is None and spec.workers == []


def test_helm_group_image_override_and_disabled_groups(tmp_path):
    spec = load(tmp_path, HELM)
    assert [w.name for w in spec.workers] == ["gpuGroup", "workergroup"]  # smallGroup is disabled
    spec = load(tmp_path, HELM.replace("worker:\n  groupName", "worker:\n  disabled: true\n  groupName"))
    assert [w.name for w in spec.workers] == ["gpuGroup"]


def test_helm_initargs_alias(tmp_path):
    spec = load(tmp_path, HELM.replace('rayStartParams: {num-gpus: "1"}', 'initArgs: {num-gpus: "1"}'))
    assert spec.workers[0].num_gpus == 1.0


def test_compose_file_carries_its_project(tmp_path):
    path = REPO / "compose" / "cpu-ray-cluster.yaml"
    spec = load_cluster_file(path, environ={})
    assert spec.format == "compose" and spec.compose is not None
    assert spec.head_image == spec.compose.head.image
    assert spec.worker_images == {w.name: w.image for w in spec.compose.workers}


def test_gpu_compose_file(tmp_path):
    spec = load_cluster_file(REPO / "compose" / "gpu-ray-cluster.yaml", environ={})
    assert spec.head.gpus == 1.0 and spec.head.num_gpus == 1.0


@pytest.mark.parametrize(
    "doc, fmt",
    [
        ({"apiVersion": "ray.io/v1alpha1", "kind": "RayCluster"}, "kuberay"),
        ({"apiVersion": "ray.io/v1", "kind": "RayJob"}, "kuberay"),
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, None),
        ({"services": {}}, "compose"),
        ({"head_node_type": "x"}, "ray-launcher"),
        ({"provider": {"type": "gcp"}, "cluster_name": "c"}, "ray-launcher"),
        ({"head": {"rayStartParams": {}}}, "helm"),
        ({"additionalWorkerGroups": {}}, "helm"),
        ({"image": {"repository": "rayproject/ray"}}, None),
        ({}, None),
        ([1, 2], None),
        ("text", None),
        (None, None),
        ({1: 2, None: [], ("a",): 3}, None),
    ],
)
def test_detect_format(doc, fmt):
    assert detect_format(doc) == fmt


# --------------------------------------------------------------------------
# errors: one line, naming the file


@pytest.mark.parametrize(
    "text, expected",
    [
        ("services: [\n", "invalid YAML at line"),
        ("key: value: other\n", "invalid YAML"),
        ("", "not a cluster file raydoctor knows (it is empty)"),
        ("- a\n- b\n", "not a cluster file raydoctor knows (it holds a list)"),
        ("just text\n", "not a cluster file"),
        ("name: x\nversion: 1\n", "it holds a mapping with name, version"),
        ("apiVersion: apps/v1\nkind: Deployment\n", "it holds a Deployment"),
        (
            "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  workerGroupSpecs: []\n",
            "headGroupSpec is missing: the cluster has no head",
        ),
        ("apiVersion: ray.io/v1\nkind: RayCluster\nspec: [1]\n", "spec is a list, not a mapping"),
        (
            "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  headGroupSpec:\n    template: {spec: {containers: []}}\n",
            "containers is missing or empty",
        ),
        (
            "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  headGroupSpec:\n    template: {spec: {containers: [{name: x}]}}\n",
            "containers[0] has no image",
        ),
        (
            "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  headGroupSpec:\n    template: {spec: {containers: [{image: [a]}]}}\n",
            "image is a list, not a value",
        ),
        (
            "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  headGroupSpec:\n    rayStartParams: {num-gpus: lots}\n"
            "    template: {spec: {containers: [{image: rayproject/ray:2.46.0}]}}\n",
            "num-gpus 'lots' is not a number",
        ),
        (
            "apiVersion: ray.io/v1\nkind: RayJob\nspec:\n  clusterSelector: {ray.io/cluster: shared}\n",
            "defines no cluster (clusterSelector)",
        ),
        ("available_node_types: {a: {}}\ndocker: {image: rayproject/ray:2.9.3}\n", "head_node_type is missing"),
        ("available_node_types: {a: {}}\nhead_node_type: b\n", "head_node_type 'b' is not one of available_node_types"),
        (
            "head_node_type: a\navailable_node_types: {a: {resources: {GPU: many}}}\n",
            "resources.GPU 'many' is not a number",
        ),
        ("head_node_type: a\navailable_node_types: {a: {}}\nsetup_commands: {x: 1}\n", "setup_commands is a mapping"),
        ("head:\n  rayStartParams: {}\n", "no image for head: set image.repository and image.tag"),
        ("image: {tag: '2.9.3'}\nhead: {}\n", "image.tag is set but image.repository is not"),
        (
            "image: {repository: rayproject/ray, tag: 2.9.3}\nadditionalWorkerGroups: [a]\n",
            "additionalWorkerGroups is a list",
        ),
        ("services:\n  web: {image: nginx}\n", "no service runs `ray start --head`"),
    ],
)
def test_errors_are_one_line_usage_errors(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as info:
        load_cluster_file(path, environ={})
    message = str(info.value)
    assert expected in message, message
    assert str(path) in message and "\n" not in message


def test_missing_file_directory_and_binary(tmp_path):
    with pytest.raises(UsageError, match="no such cluster file"):
        load_cluster_file(tmp_path / "absent.yaml")
    with pytest.raises(UsageError, match="is a directory"):
        load_cluster_file(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_cluster_file(binary)


def test_alias_bomb_is_refused_in_one_line(tmp_path):
    # ~700 bytes standing for 9**9 values: refused while loading, in bounded time, naming the file
    # (it used to load, and any str() of it in a message could run for minutes).
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    text = bomb + "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  headGroupSpec: *i\n"
    path = write(tmp_path, text)
    start = time.perf_counter()
    with pytest.raises(UsageError) as info:
        load_cluster_file(path, environ={})
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert str(path) in message and "alias" in message and "\n" not in message


def test_anchors_shared_between_groups_still_load(tmp_path):
    text = KUBERAY_CPU.replace(
        "    template:\n      spec:\n        containers:\n        - name: ray-head",
        "    template: &pod\n      spec:\n        containers:\n        - name: ray-head",
        1,
    )
    text = text.replace(
        "    template:\n      spec:\n        containers:\n        - name: ray-worker\n          image: rayproject/ray:2.46.0\n          resources:\n            limits: {cpu: 1, memory: 1G}\n",
        "    template: *pod\n",
    )
    assert "*pod" in text
    spec = load(tmp_path, text)
    assert spec.worker_images == {"workergroup": "rayproject/ray:2.46.0"}


# --------------------------------------------------------------------------
# lint


def lint(tmp_path, text):
    return lint_cluster(load(tmp_path, text))


def test_clean_files_lint_ok(tmp_path):
    for text in (KUBERAY_CPU, KUBERAY_GPU, HELM, RAYJOB):
        results = lint(tmp_path, text)
        assert [r.id for r in results] == [
            "cluster.file",
            "cluster.same_image",
            "cluster.ray_start_flags",
            "cluster.ray_version",
            "cluster.gpu",
        ]
        bad = [r for r in results if r.status not in (Status.OK, Status.SKIP)]
        assert not bad, bad


def test_cpu_head_gpu_workers_of_one_release_are_fine(tmp_path):
    res = by_id(lint(tmp_path, KUBERAY_GPU), "cluster.same_image")
    assert res.status is Status.OK
    assert "only the platform differs" in " ".join(res.details)


@pytest.mark.parametrize(
    "text, rule_id, status, words",
    [
        # a worker group on another Ray release: warn, naming both images
        (
            KUBERAY_CPU.replace(
                "image: rayproject/ray:2.46.0\n          resources:\n            limits: {cpu: 1, memory: 1G}",
                "image: rayproject/ray:2.45.0\n          resources:\n            limits: {cpu: 1, memory: 1G}",
            ),
            "cluster.same_image",
            Status.FAIL,  # Ray refuses a worker of another Ray when it joins (ray/_private/utils.py::check_version_info)
            ["rayproject/ray:2.45.0", "rayproject/ray:2.46.0", "Ray 2.45.0 ≠ 2.46.0", "Ray refuses"],
        ),
        # another Python minor in the worker's tag
        (
            RAYJOB.replace(
                "image: rayproject/ray:2.41.0-py311\n    workerGroupSpecs",
                "image: rayproject/ray:2.41.0-py310\n    workerGroupSpecs",
            ),
            "cluster.same_image",
            Status.FAIL,  # and one of another Python
            ["2.41.0-py310", "2.41.0-py311", "Python 3.11 ≠ 3.10"],
        ),
        # declared rayVersion is not the image's Ray
        (
            KUBERAY_CPU.replace("rayVersion: '2.46.0'", "rayVersion: '2.44.1'"),
            "cluster.ray_version",
            Status.FAIL,
            ["spec.rayVersion is 2.44.1", "Ray 2.46.0"],
        ),
        (
            HELM.replace("rayVersion: 2.49.2", "rayVersion: 2.48.0"),
            "cluster.ray_version",
            Status.FAIL,
            ["head.rayVersion is 2.48.0"],
        ),
        # a GPU image without a GPU limit
        (
            KUBERAY_GPU.replace("limits: {nvidia.com/gpu: 1, cpu: 4}", "limits: {cpu: 4}").replace(
                '{num-gpus: "1"}', "{}"
            ),
            "cluster.gpu",
            Status.FAIL,
            ["gpu-group", "GPU image", "no nvidia.com/gpu limit"],
        ),
        # num-gpus without a GPU limit
        (
            KUBERAY_GPU.replace("limits: {nvidia.com/gpu: 1, cpu: 4}", "limits: {cpu: 4}"),
            "cluster.gpu",
            Status.FAIL,
            ["num-gpus is 1", "no nvidia.com/gpu limit"],
        ),
        # the GPU only under requests
        (
            KUBERAY_GPU.replace("limits: {nvidia.com/gpu: 1, cpu: 4}", "requests: {nvidia.com/gpu: 1}"),
            "cluster.gpu",
            Status.FAIL,
            ["no nvidia.com/gpu limit"],
        ),
        # Helm: num-gpus without a limit
        (
            HELM.replace('limits: {cpu: "4", nvidia.com/gpu: 1}', 'limits: {cpu: "4"}'),
            "cluster.gpu",
            Status.FAIL,
            ["gpuGroup", "no nvidia.com/gpu limit"],
        ),
        # a GPU limit on a CPU image
        (
            KUBERAY_GPU.replace("rayproject/ray:2.49.2-py312-cu128", "rayproject/ray:2.49.2-py312-cpu"),
            "cluster.gpu",
            Status.WARN,
            ["nvidia.com/gpu: 1", "CPU image rayproject/ray:2.49.2-py312-cpu"],
        ),
        # more num-gpus than the limit gives
        (
            KUBERAY_GPU.replace('{num-gpus: "1"}', '{num-gpus: "2"}'),
            "cluster.gpu",
            Status.WARN,
            ["num-gpus 2 but only 1 GPU"],
        ),
        # launcher: a GPU node type on a CPU image
        (
            LAUNCHER.replace("rayproject/ray-ml:2.9.3-py310-gpu", "rayproject/ray:2.9.3-py310-cpu"),
            "cluster.gpu",
            Status.WARN,
            ["ray.worker.gpu", "1 GPU on the CPU image"],
        ),
        # launcher: setup commands install another Ray over the image's
        (
            LAUNCHER.replace("ray[default]==2.9.3", "ray[default]==2.10.0"),
            "cluster.ray_version",
            Status.WARN,
            ["Ray 2.10.0", "Ray 2.9.3"],
        ),
    ],
    ids=[
        "other-ray",
        "other-python",
        "rayversion",
        "helm-rayversion",
        "gpu-image-no-limit",
        "num-gpus-no-limit",
        "gpu-in-requests",
        "helm-no-limit",
        "limit-on-cpu-image",
        "num-gpus-over-limit",
        "launcher-cpu-image",
        "launcher-pin",
    ],
)
def test_lint_findings(tmp_path, text, rule_id, status, words):
    res = by_id(lint(tmp_path, text), rule_id)
    assert res.status is status, res
    for word in words:
        assert word in res.summary, (word, res.summary)
    if status is not Status.OK:
        assert res.remediation is not None and res.remediation.text


def test_launcher_gpu_image_without_resources_is_not_a_failure(tmp_path):
    """The launcher's Docker runner adds the NVIDIA runtime itself: no limit to forget."""
    res = by_id(lint(tmp_path, LAUNCHER.replace("resources: {CPU: 8, GPU: 1}", "resources: {CPU: 8}")), "cluster.gpu")
    assert res.status is Status.OK


def test_compose_files_keep_their_own_lint(tmp_path):
    class Ctx:
        class target:
            cluster = load_cluster_file(REPO / "compose" / "cpu-ray-cluster.yaml", environ={})

    assert checks_for(Ctx) == []


# --------------------------------------------------------------------------
# through check and the CLI


def test_check_reads_the_head_from_a_kuberay_file(tmp_path, clean_env):
    path = write(tmp_path, KUBERAY_GPU)
    report = run_check(TargetOptions(cluster_file=path, roundtrip=False), environ=clean_env, cwd=tmp_path)
    assert report.error is None
    assert report.target["image"] == "rayproject/ray:2.49.2-py312-cpu"
    assert "KubeRay RayCluster raycluster-gpu" in report.target["image_from"]
    assert report.target["cluster_file"]["format"] == "kuberay"
    assert report.head["ray"]["value"] == "2.49.2"
    ids = [r.id for r in report.results]
    assert {"cluster.file", "cluster.same_image", "cluster.ray_version", "cluster.gpu"} <= set(ids)
    assert "compose.lint" not in ids and not any(i.startswith("compose.") for i in ids)


def test_check_with_a_compose_cluster_file_runs_the_compose_lint(tmp_path, clean_env):
    report = run_check(
        TargetOptions(cluster_file=REPO / "compose" / "cpu-ray-cluster.yaml", roundtrip=False),
        environ=clean_env,
        cwd=tmp_path,
    )
    ids = [r.id for r in report.results]
    assert report.target["kind"] == "compose" and report.target["compose"]
    assert any(i.startswith("compose.") for i in ids) and "cluster.file" not in ids


def test_cli_cluster_file_json_and_errors(tmp_path, clean_env):
    path = write(tmp_path, HELM.replace("rayVersion: 2.49.2", "rayVersion: 2.48.0"))
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "check", "--json", "--no-roundtrip", "--cluster-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        cwd=tmp_path,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert next(r for r in doc["results"] if r["id"] == "cluster.ray_version")["status"] == "fail"
    bad = write(tmp_path, "kind: Nothing\n", "bad.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "check", "--no-roundtrip", "--cluster-file", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and str(bad) in proc.stderr and "not a cluster file" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "check", "--cluster-file", str(path), "--compose", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "not both" in proc.stderr


# --------------------------------------------------------------------------
# one lint: a rule written once judges compose files and cluster files alike

COMPOSE_TYPO = """\
services:
  ray-head:
    image: rayproject/ray:2.49.2-py312-cpu
    command: ray start --head --dashboard-host=0.0.0.0 --num-cpu=2 --block
    shm_size: 2gb
    ports: ["127.0.0.1:8265:8265", "127.0.0.1:10001:10001"]
  ray-worker:
    image: rayproject/ray:2.48.0-py311-cpu
    command: ray start --address=ray-head:6379 --block
    shm_size: 2gb
"""


def test_one_rule_judges_a_compose_file_and_a_kuberay_file(tmp_path):
    kuberay = KUBERAY_GPU.replace('{num-gpus: "0"}', '{num-gpus: "0", num-cpu: "2"}').replace(
        "image: rayproject/ray:2.49.2-py312-cu128", "image: rayproject/ray:2.48.0-py311-cu128"
    )
    compose_results = lint_cluster_file_results(tmp_path / "c", COMPOSE_TYPO)
    kuberay_results = lint_cluster_file_results(tmp_path / "k", kuberay)
    for family, results in (("compose", compose_results), ("cluster", kuberay_results)):
        flags = by_id(results, f"{family}.ray_start_flags")
        assert flags.status is Status.FAIL and "did you mean --num-cpus" in flags.summary, flags
        assert flags.code == f"{family}.ray_start_flags.unknown"
        image = by_id(results, f"{family}.same_image")
        assert image.status is Status.FAIL and "rayproject/ray:2.48.0" in image.summary
        assert image.code == f"{family}.same_image.join_refused"
        assert all(r.category == family for r in results if r.id != "cluster.file")
    # Each in the file's own words: the compose command line, KubeRay's rayStartParams key.
    (compose_edit,) = by_id(compose_results, "compose.ray_start_flags").remediation.edits
    assert compose_edit.place == "services.ray-head.command" and "--num-cpus=2" in compose_edit.value
    (kuberay_edit,) = by_id(kuberay_results, "cluster.ray_start_flags").remediation.edits
    assert kuberay_edit.place == "spec.headGroupSpec.rayStartParams.num-cpus" and kuberay_edit.value == "'2'"
    (image_edit,) = by_id(kuberay_results, "cluster.same_image").remediation.edits
    assert image_edit.place == "spec.workerGroupSpecs[0].template.spec.containers[0].image"
    assert image_edit.value == "rayproject/ray:2.49.2-py312-cpu"


def test_launcher_start_commands_are_linted_once(tmp_path):
    text = LAUNCHER.replace("--object-manager-port=8076\n", "--object-manager-port=8076 --webui-host=0.0.0.0\n")
    res = by_id(lint(tmp_path, text), "cluster.ray_start_flags")
    assert res.status is Status.FAIL and res.data["findings"] == 1
    assert "worker_start_ray_commands[1]" in res.summary and "--dashboard-host" in res.summary
    (edit,) = res.remediation.edits
    assert edit.place == "worker_start_ray_commands[1]" and "--dashboard-host=0.0.0.0" in edit.value


def kuberay_on(image: str, version: str, params: str) -> str:
    """KUBERAY_CPU with every image ``image``, rayVersion ``version`` and ``params`` among the head's rayStartParams."""
    return (
        KUBERAY_CPU.replace("rayproject/ray:2.46.0", image)
        .replace("rayVersion: '2.46.0'", f"rayVersion: '{version}'")
        .replace("      dashboard-host: '0.0.0.0'\n", f"      dashboard-host: '0.0.0.0'\n      {params}\n")
    )


@pytest.mark.parametrize(
    "image, version, params, code, words",
    [
        ("rayproject/ray:2.60.0", "2.60.0", "proxy-server-url: 'http://hs:8080'", "ok", ["Ray 2.60.0"]),
        ("rayproject/ray:2.46.0", "2.46.0", "proxy-server-url: 'http://hs:8080'", "too_new", ["Ray 2.55", "2.46.0"]),
        # An image that names no Ray: the declared version is the one judged by.
        ("myorg/ray:custom", "2.44.1", "labels-file: /etc/l.yaml", "too_new", ["Ray 2.45", "spec.rayVersion"]),
        ("myorg/ray:custom", "2.49.2", "storage: /mnt/s", "removed", ["removed in Ray 2.48"]),
        ("rayproject/ray:2.61.0", "2.61.0", "node-labels-file: /etc/l.yaml", "beyond_table", ["stops at Ray 2.60"]),
    ],
)
def test_kuberay_params_are_judged_by_the_ray_of_the_cluster(tmp_path, image, version, params, code, words):
    res = by_id(lint(tmp_path, kuberay_on(image, version, params)), "cluster.ray_start_flags")
    assert res.code == f"cluster.ray_start_flags.{code}", res.to_dict()
    assert all(word in res.summary for word in words), res.summary
    edits = res.remediation.edits if res.remediation else ()
    if code == "removed":
        (edit,) = edits
        assert edit.place == "spec.headGroupSpec.rayStartParams.storage" and edit.value == ""  # the key goes
    else:
        assert edits == (), edits  # an option of another release, or past the table, is never renamed


def test_the_launchers_pinned_ray_is_the_one_judged_by(tmp_path):
    # setup_commands install Ray 2.9.3 over the image's 2.49.2: `ray start` is 2.9.3's, which takes --storage.
    text = LAUNCHER.replace("rayproject/ray-ml:2.9.3-py310-gpu", "rayproject/ray-ml:2.49.2-py312-gpu").replace(
        "--dashboard-host=0.0.0.0\n", "--dashboard-host=0.0.0.0 --storage=/mnt/s\n"
    )
    assert by_id(lint(tmp_path, text), "cluster.ray_start_flags").status is Status.OK
    unpinned = text.replace('  - pip install -U "ray[default]==2.9.3"\n', "  - echo no pin\n")
    res = by_id(lint(tmp_path, unpinned), "cluster.ray_start_flags")
    assert res.code == "cluster.ray_start_flags.removed" and "ray start 2.49.2" in res.summary, res.summary


def test_cluster_gpu_fix_is_an_edit_of_the_limit(tmp_path):
    text = KUBERAY_GPU.replace("limits: {nvidia.com/gpu: 1, cpu: 4}", "limits: {cpu: 4}")
    res = by_id(lint(tmp_path, text), "cluster.gpu")
    assert res.code == "cluster.gpu.no_limit" and res.remediation.commands == ()
    (edit,) = res.remediation.edits
    assert edit.place == 'spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits["nvidia.com/gpu"]'
    assert edit.value == "1"


def test_no_cluster_remedy_is_a_command(tmp_path):
    for text in (
        KUBERAY_CPU.replace("rayVersion: '2.46.0'", "rayVersion: '2.44.1'"),
        KUBERAY_GPU.replace("rayproject/ray:2.49.2-py312-cu128", "rayproject/ray:2.49.2-py312-cpu"),
        HELM.replace('limits: {cpu: "4", nvidia.com/gpu: 1}', 'limits: {cpu: "4"}'),
        LAUNCHER.replace("ray[default]==2.9.3", "ray[default]==2.10.0"),
    ):
        for res in lint(tmp_path, text):
            if res.remediation:
                assert res.remediation.commands == (), res


def test_kuberay_secret_values_and_masked_params(tmp_path):
    text = KUBERAY_CPU.replace(
        "      dashboard-host: '0.0.0.0'\n",
        "      dashboard-host: '0.0.0.0'\n      redis-password: 'Kube-Secret-1'\n",
    ).replace(
        "        - name: ray-head\n          image: rayproject/ray:2.46.0\n",
        "        - name: ray-head\n          image: rayproject/ray:2.46.0\n"
        "          env:\n          - {name: HF_TOKEN, value: hf-abcdef}\n          - {name: MODE, value: fast}\n",
    )
    spec = load(tmp_path, text)
    assert spec.secret_values() == {"Kube-Secret-1", "hf-abcdef"}
    results = lint_cluster(spec)
    flags = by_id(results, "cluster.ray_start_flags")
    assert flags.status is Status.OK, flags.to_dict()  # redis-password: KubeRay's external-Redis GCS, current
    assert "Kube-Secret-1" not in json.dumps([r.to_dict() for r in results])


def test_compose_cluster_spec_secret_values(tmp_path):
    text = COMPOSE_TYPO.replace("--num-cpu=2", "--redis-password ${PW}")
    spec = load_cluster_file(write(tmp_path, text), environ={"PW": "from-the-env"})
    assert spec.secret_values() == {"from-the-env"}
