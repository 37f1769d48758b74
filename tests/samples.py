"""Sample cluster documents that several test modules judge: one copy each, never imported from a test module."""

from __future__ import annotations

from typing import Any

IMAGE = "rayproject/ray:2.49.2.7b0af3-py312-cpu"  # the tutorial's image

# A KubeRay RayCluster: a CPU head and one GPU worker group.
KUBERAY_GPU = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-gpu
spec:
  rayVersion: '2.49.2'
  headGroupSpec:
    rayStartParams: {num-gpus: "0"}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.49.2-py312-cpu
  workerGroupSpecs:
  - groupName: gpu-group
    replicas: 1
    rayStartParams: {num-gpus: "1"}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.49.2-py312-cu128
          resources:
            limits: {nvidia.com/gpu: 1, cpu: 4}
"""

# The tutorial's compose cluster (head + worker) as a parsed document.
HEAD_ARGS = (
    "--head --port=6379 --dashboard-host=0.0.0.0 --dashboard-port=8265 "
    "--metrics-export-port=8500 --ray-client-server-port=10001 --block"
)

BASE: dict[str, Any] = {
    "networks": {
        "study_network": {
            "driver": "bridge",
            "ipam": {"config": [{"subnet": "172.29.0.0/16"}]},
        }
    },
    "services": {
        "ray-head": {
            "image": IMAGE,
            "command": f'bash -c "ray start {HEAD_ARGS}"',
            "shm_size": "2gb",
            "ports": [
                "127.0.0.1:8265:8265",
                "127.0.0.1:10001:10001",
                "127.0.0.1:6379:6379",
                "127.0.0.1:8500:8500",
            ],
            "networks": {"study_network": {"ipv4_address": "172.29.0.15"}},
        },
        "ray-worker": {
            "image": IMAGE,
            "command": 'bash -c "ray start --address=ray-head:6379 --block"',
            "shm_size": "2gb",
            "depends_on": ["ray-head"],
            "deploy": {"resources": {"limits": {"cpus": "3", "memory": "4g"}}},
            "networks": ["study_network"],
        },
    },
}
