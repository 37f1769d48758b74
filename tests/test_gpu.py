"""gpu.*: host driver, Docker runtime, GPUs per node, and a probe job that asks for a GPU."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from urllib.request import urlopen

import pytest
import yaml

from doctor.app import run_check
from doctor.checks import gpu
from doctor.local import nvidia_toolkit
from doctor.model import Status
from doctor.options import TargetOptions
from tests.fake_servers import closed_port
from tests.helpers import by_id, path_without


def ids(report, prefix):
    return {r.id: r for r in report.results if r.id.startswith(prefix)}


def live(node, **kw):
    return TargetOptions(
        address=node.dashboard_url, gcs_port=node.ports["gcs"], client_port=node.ports["client"], roundtrip=False, **kw
    )


@pytest.fixture
def no_gpu_tools(monkeypatch, tmp_path, clean_env):
    """PATH without nvidia-smi or docker, whatever this machine has: this process's and the check's environ
    (the context's Docker probe reads the environ it is given)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    clean_env["PATH"] = str(empty)
    monkeypatch.setattr(gpu, "from_nvml", lambda: None)


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


# ---------------------------------------------------------------- the cluster


@pytest.mark.cluster
def test_advertised_gpu_that_the_task_cannot_see_fails(ray_gpu_head, clean_env, tmp_path):
    """--num-gpus=1 on a machine without a GPU: Ray hands out GPU 0, the task finds no device."""
    report = run_check(live(ray_gpu_head), environ=clean_env, cwd=tmp_path)
    nodes = by_id(report, "gpu.nodes")
    assert nodes.status is Status.OK and nodes.data["total"] == 1
    res = by_id(report, "gpu.probe")
    assert res.status is Status.FAIL, (res.summary, res.details)
    assert "GPU 0" in res.summary and "no /dev/nvidia" in res.summary
    seen = res.data["seen"]
    assert seen["cuda_visible_devices"] == "0"
    assert not [d for d in seen["devices"] if d[-1].isdigit()]
    assert res.remediation and "--num-gpus=0" in res.remediation.text and res.remediation.commands
    # The probe job was deleted afterwards.
    with urlopen(f"{ray_gpu_head.dashboard_url}/api/jobs/", timeout=5) as resp:
        jobs = json.loads(resp.read())
    assert not [j for j in jobs if str(j.get("submission_id", "")).startswith("raydoctor-gpu-")]


@pytest.mark.cluster
def test_cpu_cluster_skips_every_gpu_check(ray_head, clean_env, tmp_path, no_gpu_tools):
    report = run_check(live(ray_head), environ=clean_env, cwd=tmp_path)
    found = ids(report, "gpu.")
    assert set(found) == {"gpu.host", "gpu.nodes", "gpu.probe"}
    assert all(r.status is Status.SKIP for r in found.values()), {k: (r.status, r.summary) for k, r in found.items()}
    assert "CPU cluster" in found["gpu.nodes"].summary


def test_dead_target_gpu_checks_skip(clean_env, tmp_path, no_gpu_tools):
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{closed_port()}", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    found = ids(report, "gpu.")
    assert all(r.status is Status.SKIP for r in found.values())
    # the one guard both node checks share names each check in its code
    assert found["gpu.nodes"].code == "gpu.nodes.unreachable" and found["gpu.probe"].code == "gpu.probe.unreachable"


# ---------------------------------------------------------------- what the task saw


def seen(**kw):
    base = {"cuda_visible_devices": "0", "devices": [], "hostname": "h", "nvidia_smi": None, "torch": None}
    base.update(kw)
    return base


def test_visible_gpu_is_ok():
    res = gpu.judge_probe(
        seen(
            devices=["/dev/nvidia0", "/dev/nvidiactl"],
            nvidia_smi={"rc": 0, "gpus": ["GPU 0: NVIDIA A10G (UUID: GPU-1)"], "err": ""},
        ),
        "worker abc (10.0.0.2)",
        [],
        3.0,
    )
    assert res.status is Status.OK and "NVIDIA A10G" in res.summary


def test_torch_without_cuda_warns():
    res = gpu.judge_probe(
        seen(
            devices=["/dev/nvidia0"],
            nvidia_smi={"rc": 0, "gpus": ["GPU 0: T4"], "err": ""},
            torch={"version": "2.4.0+cpu", "cuda": None, "available": False, "count": 0},
        ),
        "head",
        [],
        1.0,
    )
    assert res.status is Status.WARN and "torch 2.4.0+cpu" in res.summary


def test_broken_nvidia_smi_counts_as_invisible():
    res = gpu.judge_probe(
        seen(nvidia_smi={"rc": 9, "gpus": [], "err": "NVIDIA-SMI has failed because it couldn't communicate"}),
        "head",
        [],
        1.0,
    )
    assert res.status is Status.FAIL and "GPU 0" in res.summary


# ---------------------------------------------------------------- the host's driver against the image's CUDA


@pytest.mark.parametrize(
    "driver, cuda, image, status",
    [
        ("570.86.15", "12.8", "12.8.1", Status.OK),
        ("535.183.01", "12.2", "12.8.1", Status.FAIL),  # the runtime refuses: cuda>=12.8
        ("470.256.02", "11.4", "12.1.1", Status.FAIL),  # below 525.60.13 for 12.x
        ("450.51.06", "11.0", "11.8.0", Status.FAIL),  # below 450.80.02 for 11.x
        ("560.35.03", "12.6", "12.6.3", Status.OK),
    ],
)
def test_judge_driver(driver, cuda, image, status):
    got, why = gpu.judge_driver(gpu.HostGPUs("nvidia-smi", driver, cuda, ["GPU 0: x"]), image)
    assert got is status, why


def test_host_with_nvidia_smi_and_a_cuda_image(tmp_path, monkeypatch, clean_env):
    bin_dir = tmp_path / "bin"
    fake_tool(
        bin_dir,
        "nvidia-smi",
        'case "$1" in\n'
        '  --query-gpu*) echo "0, NVIDIA GeForce RTX 3090, 535.183.01";;\n'
        '  *) echo "| NVIDIA-SMI 535.183.01   Driver Version: 535.183.01   CUDA Version: 12.2 |";;\n'
        "esac\n",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    found = gpu.from_nvidia_smi()
    assert (
        found
        and found.driver == "535.183.01"
        and found.cuda == "12.2"
        and found.gpus == ["GPU 0: NVIDIA GeForce RTX 3090"]
    )
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cu128", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    res = by_id(report, "gpu.host")
    assert res.status is Status.FAIL and "cuda>=12.8" in res.summary
    assert res.remediation and res.remediation.commands


def test_cuda_image_without_a_driver_fails(tmp_path, clean_env, no_gpu_tools):
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-gpu", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    res = by_id(report, "gpu.host")
    assert res.status is Status.FAIL and "CUDA 12.1" in res.summary
    assert by_id(report, "gpu.docker").status is Status.SKIP  # no engine: quiet


def test_cpu_image_skips(tmp_path, clean_env, no_gpu_tools):
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    assert all(r.status is Status.SKIP for r in ids(report, "gpu.").values())


# ---------------------------------------------------------------- gpu.docker: what moby needs for a GPU request

HOOK, CDI_HOOK = nvidia_toolkit.RUNTIME_HOOK, nvidia_toolkit.CDI_HOOK
SHARED_FAKE = Path(__file__).resolve().parent / "fake_docker"
REPO = Path(__file__).resolve().parent.parent
NVIDIA_SPEC = {"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": [{"name": "0"}, {"name": "all"}]}


@pytest.fixture
def docker_here(tmp_path, monkeypatch, clean_env):
    """The shared fake docker (it prints `docker info --format '{{json .}}'`) first on PATH, a folder for fake
    hooks last, and none of the toolkit's programs anywhere else: the rest of PATH without them, the system
    folders out of the hook search (whatever this machine has installed)."""
    monkeypatch.setattr(nvidia_toolkit, "SYSTEM_PATH", ())
    toolkit = [HOOK, CDI_HOOK, "nvidia-ctk", "nvidia-container-toolkit", "docker", "docker-compose"]
    rest = path_without(clean_env["PATH"], toolkit, tmp_path / "bare")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    env = {**clean_env, "PATH": os.pathsep.join([str(SHARED_FAKE), rest, str(hooks)])}
    return env, hooks


def docker_ctx(env, *, image="rayproject/ray:2.49.2-py312-cu128", compose=None):
    """What check_docker reads of the context: the target, the head's CUDA, the environ and the engine probe."""
    from doctor.head.compose import load_compose
    from doctor.local.docker_cli import probe_engine

    loaded = load_compose(compose, {}) if compose is not None else None
    return SimpleNamespace(
        target=SimpleNamespace(image=None if compose else image, compose=loaded, compose_path=compose),
        head=lambda: SimpleNamespace(cuda=None if compose or image.endswith("-cpu") else "12.8.1"),
        environ=env,
        docker_engine=lambda: probe_engine(env),
    )


def test_the_toolkits_hook_without_an_nvidia_runtime_passes(docker_here):
    """moby registers its nvidia device driver where dockerd finds nvidia-container-runtime-hook, with or without
    an nvidia runtime in daemon.json (old code: FAIL, "no NVIDIA runtime", for this toolkit-installed host)."""
    env, hooks = docker_here
    fake_tool(hooks, HOOK, "exit 0\n")
    res = gpu.check_docker(docker_ctx(env, compose=REPO / "compose" / "gpu-ray-cluster.yaml"))
    assert res.status is Status.OK and res.code == "gpu.docker.nvidia_hook", res.summary
    assert res.data["hooks"][HOOK] == str(hooks / HOOK) and res.data["runtimes"] == ["io.containerd.runc.v2", "runc"]
    assert str(hooks) in res.data["searched"]


def test_an_nvidia_runtime_without_the_hook_warns_and_serves_runtime_services(docker_here, tmp_path):
    """A runtime is no device driver: `driver: nvidia` needs the hook on dockerd's PATH, which is not ours to read,
    so a runtime without a hook found here warns (old code: OK); a file whose GPU services name `runtime: nvidia`
    needs the runtime, and is served by it."""
    env, _ = docker_here
    env["FAKE_DOCKER_RUNTIMES"] = "nvidia,runc"
    shipped = REPO / "compose" / "gpu-ray-cluster.yaml"
    res = gpu.check_docker(docker_ctx(env, compose=shipped))
    assert res.status is Status.WARN and res.code == "gpu.docker.hook_not_found", res.summary
    assert any("the runtime nvidia is registered" in d for d in res.details)
    assert res.data["docker_error"] == 'could not select device driver "nvidia" with capabilities: [[gpu]]'
    assert HOOK in res.remediation.text and "nvidia-container-toolkit" in res.remediation.text

    by_runtime = tmp_path / "runtime.yaml"
    head = {"image": "rayproject/ray:2.49.2-py312-cu128", "runtime": "nvidia", "command": "ray start --head --block"}
    by_runtime.write_text(yaml.safe_dump({"services": {"ray-head": head}}))
    res = gpu.check_docker(docker_ctx(env, compose=by_runtime))
    assert res.status is Status.OK and res.code == "gpu.docker.nvidia_runtime", res.summary
    env["FAKE_DOCKER_RUNTIMES"] = "runc"
    res = gpu.check_docker(docker_ctx(env, compose=by_runtime))
    assert res.status is Status.FAIL and res.code == "gpu.docker.no_nvidia_runtime", res.summary
    assert "nvidia-ctk runtime configure" in res.remediation.text


def test_a_cdi_spec_for_nvidia_passes_where_docker_maps_gpus_to_cdi(docker_here, tmp_path):
    """Docker 29.2+ registers its nvidia driver from nvidia-cdi-hook too and hands a GPU request to CDI
    (nvidia.com/gpu=<id>): with CDI on and an NVIDIA spec the engine lists, that passes (old code: FAIL).
    Older Docker, CDI off or no spec: NVIDIA parts without the runtime hook, a warning that says which."""
    env, hooks = docker_here
    fake_tool(hooks, CDI_HOOK, "exit 0\n")
    specs = tmp_path / "cdi"
    specs.mkdir()
    (specs / "nvidia.json").write_text(json.dumps(NVIDIA_SPEC))
    env.update(FAKE_DOCKER_VERSION="29.2.0", FAKE_DOCKER_CDI_SPEC_DIRS=str(specs))
    ctx = docker_ctx(env)
    res = gpu.check_docker(ctx)
    assert res.status is Status.OK and res.code == "gpu.docker.nvidia_cdi", res.summary
    assert res.data["cdi_devices"] == ["nvidia.com/gpu=0", "nvidia.com/gpu=all"]
    assert res.data["cdi_spec_dirs"] == [str(specs)] and res.data["hooks"][CDI_HOOK] == str(hooks / CDI_HOOK)

    env["FAKE_DOCKER_VERSION"] = "28.5.2"  # lists the devices, but maps `driver: nvidia` to the runtime hook only
    res = gpu.check_docker(ctx)
    assert res.status is Status.WARN and any("only from 29.2" in d for d in res.details), res.details
    env.update(FAKE_DOCKER_VERSION="29.2.0", FAKE_DOCKER_CDI_SPEC_DIRS="")
    res = gpu.check_docker(ctx)
    assert res.status is Status.WARN and any(
        "CDI is off in this Docker (docker info: CDISpecDirs empty)" in d for d in res.details
    ), res.details

    # CDI on, the hook there, no spec yet: nvidia-ctk (where installed) writes it into a folder the engine reads.
    empty = tmp_path / "cdi-empty"
    empty.mkdir()
    env["FAKE_DOCKER_CDI_SPEC_DIRS"] = str(empty)
    assert gpu.check_docker(ctx).remediation.commands == ()
    fake_tool(hooks, "nvidia-ctk", "exit 0\n")
    res = gpu.check_docker(ctx)
    assert res.status is Status.WARN and any("no CDI spec for nvidia.com/gpu" in d for d in res.details)
    assert res.remediation.commands[-1].endswith(f"nvidia-ctk cdi generate --output={empty / 'nvidia.yaml'}")


def test_an_nvidia_cdi_spec_on_disk_is_found_where_the_engine_does_not_list_devices(docker_here, tmp_path):
    """Docker before 28.2 lists no devices: the NVIDIA spec is then read from the engine's CDI folders, YAML as
    nvidia-ctk writes it (only files directly in a folder, .json or .yaml, as the cdi package reads them)."""
    env, _ = docker_here
    specs = tmp_path / "cdi"
    (specs / "sub").mkdir(parents=True)
    (specs / "nvidia.yaml").write_text(yaml.safe_dump(NVIDIA_SPEC))
    (specs / "other.yaml").write_text(yaml.safe_dump({**NVIDIA_SPEC, "kind": "vendor.com/fpga"}))
    (specs / "nvidia.yml").write_text(yaml.safe_dump(NVIDIA_SPEC))  # not a spec name the cdi package reads
    (specs / "sub" / "nvidia.yaml").write_text(yaml.safe_dump(NVIDIA_SPEC))
    (specs / "broken.yaml").write_text("kind: [unclosed\n")
    env["FAKE_DOCKER_CDI_SPEC_DIRS"] = str(specs)
    res = gpu.check_docker(docker_ctx(env))
    assert res.data["cdi_specs"] == [str(specs / "nvidia.yaml")] and res.data["cdi_devices"] == []
    assert res.status is Status.WARN and any("CDI knows NVIDIA GPUs" in d for d in res.details), res.details


def test_no_nvidia_part_fails_a_gpu_target_and_skips_a_cpu_one(docker_here):
    env, _ = docker_here
    res = gpu.check_docker(docker_ctx(env, compose=REPO / "compose" / "gpu-ray-cluster.yaml"))
    assert res.status is Status.FAIL and res.code == "gpu.docker.no_nvidia_runtime", res.summary
    assert HOOK in res.summary and CDI_HOOK in res.summary and "CDI spec" in res.summary
    assert res.data["hooks"] == {HOOK: None, CDI_HOOK: None}
    assert "nvidia-container-toolkit" in res.remediation.text and res.remediation.commands == ()
    res = gpu.check_docker(docker_ctx(env, image="rayproject/ray:2.49.2-py312-cpu"))
    assert res.status is Status.SKIP and res.code == "gpu.docker.cpu_target", res.summary
    env["FAKE_DOCKER_ENGINE"] = "0"
    assert gpu.check_docker(docker_ctx(env)).code == "gpu.docker.no_engine"


def test_docker_desktop_is_not_failed_on_this_hosts_path(docker_here):
    """Docker Desktop's engine runs in a VM: this host's PATH says nothing of its hook (old code: FAIL)."""
    env, _ = docker_here
    env["FAKE_DOCKER_OS"] = "Docker Desktop"
    res = gpu.check_docker(docker_ctx(env))
    assert res.status is Status.SKIP and res.code == "gpu.docker.desktop", res.summary
    assert res.data["operating_system"] == "Docker Desktop" and "hooks" not in res.data
    assert any(d.startswith("runtimes: io.containerd.runc.v2, runc") for d in res.details)
    res = gpu.check_docker(docker_ctx(env, image="rayproject/ray:2.49.2-py312-cpu"))
    assert res.status is Status.SKIP and res.code == "gpu.docker.cpu_target"


def test_host_tools_run_without_the_token(tmp_path, monkeypatch):
    """nvidia-smi runs through doctor.proc with the token dropped (old code: subprocess.run inherited it)."""
    bin_dir = tmp_path / "bin"
    seen = tmp_path / "env.txt"
    fake_tool(
        bin_dir,
        "nvidia-smi",
        f'env > "{seen}"\n'
        'case "$1" in\n'
        '  --query-gpu*) echo "0, NVIDIA T4, 570.86.15";;\n'
        '  *) echo "| CUDA Version: 12.8 |";;\n'
        "esac\n",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "tok-should-not-leak-1234")
    found = gpu.from_nvidia_smi()
    assert found and found.driver == "570.86.15" and found.cuda == "12.8"
    assert "tok-should-not-leak-1234" not in seen.read_text()


def test_stable_codes_on_gpu_findings(tmp_path, clean_env, no_gpu_tools):
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-gpu", roundtrip=False), environ=dict(os.environ), cwd=tmp_path
    )
    assert by_id(report, "gpu.host").code == "gpu.host.no_driver"
    assert by_id(report, "gpu.docker").code == "gpu.docker.no_engine"


def test_docker_refusal_is_what_docker_says_for_the_compose_device_request(tmp_path):
    """The error Docker gives for the GPU tutorial's device request (seen for real: tests/test_compose_gpu_real.py),
    built from the file's driver and capabilities; none for a CPU file."""
    from doctor.head.compose import load_compose

    repo = Path(__file__).resolve().parent.parent
    shipped = load_compose(repo / "compose" / "gpu-ray-cluster.yaml", {})
    ctx = SimpleNamespace(target=SimpleNamespace(compose=shipped))
    assert gpu.docker_refusal(ctx) == 'could not select device driver "nvidia" with capabilities: [[gpu]]'
    other = tmp_path / "other.yaml"
    other.write_text(
        (repo / "compose" / "gpu-ray-cluster.yaml")
        .read_text()
        .replace("capabilities: [gpu]", "capabilities: [gpu, utility]")
    )
    assert gpu.docker_refusal(SimpleNamespace(target=SimpleNamespace(compose=load_compose(other, {})))) == (
        'could not select device driver "nvidia" with capabilities: [[gpu utility]]'
    )
    cpu = load_compose(repo / "compose" / "cpu-ray-cluster.yaml", {})
    assert gpu.docker_refusal(SimpleNamespace(target=SimpleNamespace(compose=cpu))) is None
