"""The GPU tutorial on a host without an NVIDIA driver, for real (issue 19).

``compose/gpu-ray-cluster.yaml`` reserves ``driver: nvidia`` devices. This host has no NVIDIA driver and
no toolkit hook for its engine (nor an nvidia runtime, nor CDI): ``check`` on a copy of the file (the
cluster down) must fail with the GPU passthrough findings, whose remedies run where pasted, and
``docker-compose up -d`` must then fail with the very error the finding predicted.

The copy differs from the shipped file only where asserted: free host ports (on 127.0.0.1), the worker's
``cpus`` fitted to the engine (else Docker's CPU refusal could come first: tests/test_compose_real.py), a
subnet of its own, and the image: no CUDA image is built here, so the CPU stand-in is tagged as the GPU tag
for the test (and that tag removed afterwards), making the device request, not a missing image, the failure.

Marked ``engine``: where the engine or the stand-in image is missing it skips saying so, and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from doctor.local import nvidia_toolkit
from tests.engine_rig import docker, leftovers
from tests.helpers import missing, raydoctor_cli, tool_env
from tests.ray_cluster import ensure_ray_venv, free_ports

pytestmark = [pytest.mark.engine, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "compose" / "gpu-ray-cluster.yaml"
GPU_IMAGE = "rayproject/ray:2.49.2.7b0af3-py312-cu128"
CPU_IMAGE = "rayproject/ray:2.49.2.7b0af3-py312-cpu"  # the stand-in tests/engine/setup.sh builds
ROLES = {8265: "dashboard", 10001: "client", 6379: "gcs", 8500: "metrics"}
SUBNET = "172.26."  # not the tutorial's 172.29 nor the broken variants' 172.30 (tests/test_compose_real.py)
# What Docker 20.10 said here when docker-compose 1.29 started the head (moby daemon/errors.go,
# incompatibleDeviceRequest; the driver named in the compose file, its capabilities as Go prints [][]string).
DOCKER_SAYS = 'Cannot start service ray-head: could not select device driver "nvidia" with capabilities: [[gpu]]'


@pytest.fixture
def gpu_tag() -> Iterator[None]:
    """The CPU stand-in under the GPU tag, for this test only: the tag is removed afterwards if the test added it."""
    for tool in ("docker", "docker-compose"):
        if shutil.which(tool) is None:
            missing(f"needs {tool}: run tests/engine/setup.sh up (as root)")
    if docker("version", "--format", "{{.Server.Version}}").returncode != 0:
        missing("no Docker engine answers: run tests/engine/setup.sh up (as root)")
    if docker("image", "inspect", CPU_IMAGE).returncode != 0:
        missing(f"the stand-in image {CPU_IMAGE} is not built: run tests/engine/setup.sh up")
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout or "{}")
    folders = nvidia_toolkit.search_path()
    hooks = [h for h in (nvidia_toolkit.RUNTIME_HOOK, nvidia_toolkit.CDI_HOOK) if nvidia_toolkit.find_hook(h, folders)]
    if any("nvidia" in name for name in runtimes) or shutil.which("nvidia-smi") or hooks:
        pytest.skip("this host has an NVIDIA runtime, hook or driver: the test is about one without")
    added = docker("image", "inspect", GPU_IMAGE).returncode != 0
    if added:
        assert docker("tag", CPU_IMAGE, GPU_IMAGE).returncode == 0
    try:
        yield
    finally:
        if added:
            removed = docker("image", "rm", GPU_IMAGE)  # the tag only: the stand-in keeps its own
            assert removed.returncode == 0 and "Untagged: " + GPU_IMAGE in removed.stdout, removed.stderr


def fitted_copy(folder: Path) -> tuple[Path, str]:
    """The shipped GPU file with free host ports, the worker's CPUs fitted, its own subnet; the file and project."""
    text = SHIPPED.read_text()
    for container_port, port in zip(ROLES, free_ports(len(ROLES))):
        text, n = re.subn(
            rf'"127\.0\.0\.1:{container_port}:{container_port}"', f'"127.0.0.1:{port}:{container_port}"', text
        )
        assert n == 1, container_port
    cpus = int(docker("info", "--format", "{{.NCPU}}").stdout.strip())
    if cpus < 3:
        text, n = re.subn(r"cpus: '3'", f"cpus: '{cpus}'", text)
        assert n == 1
    text = text.replace("172.29.", SUBNET)
    file = folder / SHIPPED.name
    file.write_text(text)
    mine, shipped = yaml.safe_load(text), yaml.safe_load(SHIPPED.read_text())
    for doc in (mine, shipped):
        doc["networks"]["study_network"]["ipam"] = None
        for service in doc["services"].values():
            service["ports"] = [re.sub(r":\d+:", ":X:", p) for p in service.get("ports", [])]
            service["deploy"]["resources"].get("limits", {}).pop("cpus", None)
            service["networks"] = None
    assert mine == shipped  # the device reservations and images are the tutorial's own
    return file, re.sub(r"[^-_a-z0-9]", "", folder.name.lower())


def runnable_here(command: str) -> bool:
    """A pasted command runs here: its program is installed, and no sudo for root."""
    argv = shlex.split(command)
    if argv[0] == "sudo" and os.geteuid() == 0:
        return False
    program = argv[1] if argv[0] == "sudo" else argv[0]
    return shutil.which(program) is not None or Path(program).is_file()


def test_gpu_tutorial_without_a_driver_fails_as_check_said(gpu_tag, tmp_path) -> None:
    folder = tmp_path / f"gpu{os.getpid()}"
    folder.mkdir()
    file, project = fitted_copy(folder)
    home = tmp_path / "home"
    home.mkdir()
    env = tool_env(
        {**{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV"))}, "HOME": str(home)}
    )
    try:
        python = ensure_ray_venv(ray="2.49.2", minor="3.12")  # the head's Ray and Python: versions are not the failure
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        missing(f"cannot build a Ray 2.49.2 venv on Python 3.12: {exc}")

    # check, the cluster down: the GPU passthrough findings are its failures, and they say what Docker will say.
    done = raydoctor_cli(["check", "--compose", str(file), "--python", str(python), "--json"], folder, env, 600)
    doc = json.loads(done.stdout)
    results = {r["id"]: r for r in doc["results"]}
    assert done.returncode == 1 and results["head.source"]["code"] == "head.source.cluster_down", results["head.source"]
    failed = {r["id"] for r in doc["results"] if r["status"] in ("fail", "error")}
    assert failed == {"gpu.host", "gpu.docker"}, [(i, results[i]["summary"]) for i in failed]
    host, engine = results["gpu.host"], results["gpu.docker"]
    assert host["code"] == "gpu.host.no_driver" and "no NVIDIA driver on this host" in host["summary"], host
    assert engine["code"] == "gpu.docker.no_nvidia_runtime", engine
    assert "runc" in engine["data"]["runtimes"] and not any("nvidia" in r for r in engine["data"]["runtimes"])
    predicted = engine["data"]["docker_error"]
    assert predicted == 'could not select device driver "nvidia" with capabilities: [[gpu]]', predicted
    assert any(predicted in line for line in engine["details"]), engine["details"]
    # Their remedies run where pasted: nothing to paste that is not installed (nvidia-smi, nvidia-ctk are
    # not here), no sudo for root; the text says what to install instead.
    for result in (host, engine):
        assert all(runnable_here(c) for c in result["remediation"]["commands"]), result["remediation"]
    assert "Install the NVIDIA driver" in host["remediation"]["text"]
    assert "nvidia-container-toolkit" in engine["remediation"]["text"]

    # The start command check offers for the cluster, pasted: Docker refuses the device request, as predicted.
    start = shlex.split(results["head.source"]["remediation"]["commands"][0])
    assert start[-2:] == ["up", "-d"], start
    try:
        up = subprocess.run(start, cwd=folder, capture_output=True, text=True, timeout=300)
        assert up.returncode != 0 and DOCKER_SAYS in up.stderr, up.stderr
        assert predicted in DOCKER_SAYS
        status = docker(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Status}}"
        )
        assert status.stdout.split() == ["Created"], status.stdout  # the head was created, never started
    finally:
        down = subprocess.run(
            ["docker-compose", "-f", str(file), "down", "-v", "--remove-orphans"],
            cwd=folder, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
    assert leftovers(project) == []
