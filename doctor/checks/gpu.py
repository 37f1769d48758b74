"""GPU passthrough, from the host's driver to what a Ray task really sees.

A GPU can get lost at every step: no driver, a driver too old for the image's
CUDA, Docker without the NVIDIA runtime, no device reservation (compose lint),
and Ray told ``--num-gpus`` on a container that has no GPU. The last one is the
sneaky one: Ray then advertises a GPU, a ``num_gpus=1`` task is scheduled and
gets ``CUDA_VISIBLE_DEVICES=0``, but there is no ``/dev/nvidia0`` (Ray takes ``--num-gpus`` at
its word: ``ray/_private/resource_spec.py::ResourceSpec.resolve`` detects GPUs only when it is
absent; measured). Only a job on the cluster can see that, so one is submitted.
Without GPUs anywhere and with a CPU target, every GPU check says skipped.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
from dataclasses import dataclass, field
from typing import Any

from doctor import proc, remedies
from doctor.context import CheckContext
from doctor.facts.cluster import describe_node
from doctor.head.dashboard import DashboardError
from doctor.head.jobs import MARKER, JobError, run_probe_job
from doctor.local import nvidia_toolkit
from doctor.local.docker_cli import DockerEngine
from doctor.model import Remediation, Result, Status, finding
from doctor.runner import Check

PROBE_LIMIT_S = 30.0

# NVIDIA's published minimum drivers (the CUDA Toolkit release notes, table "CUDA Toolkit and Minimum
# Required Driver Version for CUDA Minor Version Compatibility"): CUDA 11.x ≥ 450.80.02, 12.x ≥ 525.60.13
# (minor-version compatibility); the container runtime also refuses an image whose CUDA is newer
# than the driver's ("unsatisfied condition: cuda>=X.Y, please update your driver").
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13)}
FULL_SUPPORT = {(12, 8): (570, 26)}


# Runs on the cluster as the job's entrypoint, which Ray gives one GPU (entrypoint_num_gpus=1).
# It imports neither Ray nor anything slow unless present (torch): what the process sees is the point.
GPU_PROBE = r"""
import glob, json, os, shutil, socket, subprocess
out = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
       "devices": sorted(glob.glob("/dev/nvidia*")), "hostname": socket.gethostname()}
smi = shutil.which("nvidia-smi")
out["nvidia_smi"] = None
if smi:
    try:
        p = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15)
        out["nvidia_smi"] = {"rc": p.returncode, "gpus": [l for l in p.stdout.splitlines() if l.startswith("GPU ")],
                             "err": (p.stderr or p.stdout).strip()[-300:]}
    except Exception as e:
        out["nvidia_smi"] = {"rc": None, "gpus": [], "err": repr(e)[-300:]}
try:
    import torch
    out["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                    "available": bool(torch.cuda.is_available()), "count": int(torch.cuda.device_count())}
except ImportError:
    out["torch"] = None
except Exception as e:
    out["torch"] = {"error": repr(e)[-300:]}
print("MARKER" + json.dumps(out), flush=True)
""".replace("MARKER", MARKER)


# ---------------------------------------------------------------- host


@dataclass
class HostGPUs:
    """The host's NVIDIA driver and GPUs, from nvidia-smi or NVML."""

    source: str
    driver: str
    cuda: str | None  # the highest CUDA the driver supports, "12.8"
    gpus: list[str] = field(default_factory=list)


def _run(args: list[str], timeout: float = 8.0) -> proc.Completed | None:
    """A host tool's output, or None when it cannot run or outlives ``timeout`` (then its group is stopped)."""
    try:
        return proc.run(args, timeout=timeout, env=proc.child_env())
    except (OSError, proc.ProcTimeout):
        return None


def from_nvidia_smi() -> HostGPUs | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    listing = _run([smi, "--query-gpu=index,name,driver_version", "--format=csv,noheader"])
    if listing is None or listing.returncode != 0:
        return None
    rows = [[c.strip() for c in line.split(",")] for line in listing.stdout.strip().splitlines() if line.strip()]
    if not rows:
        return None
    header = _run([smi])
    cuda = None
    if header is not None:
        found = re.search(r"CUDA Version:\s*([\d.]+)", header.stdout)
        cuda = found.group(1) if found else None
    return HostGPUs("nvidia-smi", rows[0][-1], cuda, [f"GPU {r[0]}: {r[1]}" for r in rows if len(r) >= 3])


def from_nvml() -> HostGPUs | None:
    """NVML through ctypes, for hosts with the driver but without nvidia-smi on PATH."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    try:
        if nvml.nvmlInit_v2() != 0:
            return None
        buf = ctypes.create_string_buffer(96)
        nvml.nvmlSystemGetDriverVersion(buf, 96)
        driver = buf.value.decode()
        version = ctypes.c_int()
        cuda = None
        if nvml.nvmlSystemGetCudaDriverVersion_v2(ctypes.byref(version)) == 0:
            cuda = f"{version.value // 1000}.{version.value % 1000 // 10}"
        count = ctypes.c_uint()
        nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
        gpus = []
        for i in range(count.value):
            handle = ctypes.c_void_p()
            if nvml.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) == 0:
                nvml.nvmlDeviceGetName(handle, buf, 96)
                gpus.append(f"GPU {i}: {buf.value.decode()}")
        nvml.nvmlShutdown()
        return HostGPUs("NVML", driver, cuda, gpus)
    except (AttributeError, OSError):
        return None


def host_gpus() -> HostGPUs | None:
    return from_nvidia_smi() or from_nvml()


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def judge_driver(host: HostGPUs, image_cuda: str) -> tuple[Status, str]:
    """The host's driver against the image's CUDA (minimums as in ``MIN_DRIVER``; the refusal comes from
    libnvidia-container checking the image's ``NVIDIA_REQUIRE_CUDA=cuda>=X.Y``)."""
    want = _version_tuple(image_cuda)
    have = _version_tuple(host.driver)
    major_minor = want[:2]
    minimum = MIN_DRIVER.get(want[0]) if want else None
    if minimum and have and have < minimum:
        return Status.FAIL, (
            f"driver {host.driver} is older than {'.'.join(map(str, minimum))}, the minimum for CUDA "
            f"{want[0]}.x: the image (CUDA {image_cuda}) will not run"
        )
    if host.cuda and _version_tuple(host.cuda)[:2] < major_minor:
        return Status.FAIL, (
            f"driver {host.driver} supports CUDA {host.cuda}, the image needs CUDA {image_cuda}: the NVIDIA "
            f'container runtime refuses it ("unsatisfied condition: cuda>={want[0]}.{want[1]}")'
        )
    full = FULL_SUPPORT.get(tuple(major_minor))  # type: ignore[arg-type]
    if full and have and have[:2] < full:
        need = ".".join(map(str, full))
        return (
            Status.WARN,
            f"driver {host.driver} runs CUDA {image_cuda} in compatibility mode; full support needs ≥ {need}",
        )
    return Status.OK, f"driver {host.driver} (CUDA {host.cuda or '?'}) runs the image's CUDA {image_cuda}"


# ---------------------------------------------------------------- what the target wants


def wanted_cuda(ctx: CheckContext) -> str | None:
    """The image's CUDA, when the target is a GPU image."""
    try:
        return ctx.head().cuda
    except Exception:
        return None


def compose_reserves_gpu(ctx: CheckContext) -> bool:
    compose = ctx.target.compose
    return bool(compose is not None and any(getattr(s, "gpu_reservation", False) for s in compose.services.values()))


def wants_gpu(ctx: CheckContext) -> bool:
    return bool(wanted_cuda(ctx) or compose_reserves_gpu(ctx))


def _why_gpu(ctx: CheckContext) -> str:
    cuda = wanted_cuda(ctx)
    if cuda:
        return f"the image {ctx.target.image} is built for CUDA {cuda}"
    return f"{ctx.target.compose_path} reserves NVIDIA GPUs"


# ---------------------------------------------------------------- checks


def check_host(ctx: CheckContext) -> Result:
    """This host's driver against the image's CUDA: registered only where the head runs here."""
    found = host_gpus()
    cuda = wanted_cuda(ctx)
    want = wants_gpu(ctx) and ctx.target.head_is_here
    if found is None:
        if want:
            return finding(
                Status.FAIL,
                f"no NVIDIA driver on this host (no nvidia-smi, no NVML), but {_why_gpu(ctx)}",
                code="gpu.host.no_driver",
                fix=Remediation(
                    "Install the NVIDIA driver (it brings nvidia-smi; then the NVIDIA Container Toolkit), "
                    "or use the image's -cpu variant.",
                    remedies.nvidia_smi(),  # PATH as host_gpus reads it
                ),
            )
        why = ""
        if ctx.target.kind in {"compose", "image"} and not wants_gpu(ctx):
            why = "; the target's image is CPU-only"
        elif wants_gpu(ctx):
            why = "; the head is not on this host"
        return finding(Status.SKIP, f"no NVIDIA driver or GPU on this host{why}", code="gpu.host.none")
    details = found.gpus + [f"driver {found.driver}, CUDA {found.cuda or '?'} (from {found.source})"]
    data = {"driver": found.driver, "cuda": found.cuda, "gpus": found.gpus, "source": found.source}
    summary = f"{len(found.gpus)} GPU(s), driver {found.driver}, CUDA {found.cuda or '?'}"
    if not cuda:
        return finding(Status.OK, summary, code="gpu.host.found", details=details, data=data)
    status, verdict = judge_driver(found, cuda)
    fix = None
    if status is not Status.OK:
        fix = Remediation(
            "Update the NVIDIA driver, or use an image built for an older CUDA (a -cuXYZ tag your driver supports).",
            remedies.nvidia_smi(),
        )
    return finding(
        status, f"{summary}: {verdict}", code=f"gpu.host.driver_{status.value}", details=details, fix=fix, data=data
    )


def docker_refusal(ctx: CheckContext) -> str | None:
    """What Docker answers when it starts a compose service whose device request it has no driver for.

    The daemon picks a device driver by name (``moby daemon/devices.go``); ``nvidia`` is registered only
    where the NVIDIA Container Toolkit's hook is installed (``daemon/nvidia_linux.go``), and otherwise the
    start fails with ``incompatibleDeviceRequest`` (``daemon/errors.go``): ``could not select device driver
    %q with capabilities: %v``, the capabilities as Go prints a list of lists (docker-compose 1.29 sends the
    service's list as the only one: compose/project.py wraps ``capabilities`` in a list).
    Seen on this project's engine: ``Cannot start service ray-head: could not select device driver "nvidia"
    with capabilities: [[gpu]]`` (tests/test_compose_gpu_real.py)."""
    compose = ctx.target.compose
    for service in compose.services.values() if compose is not None else ():
        request = service.gpu_request  # read once, by the compose parser (doctor.head.compose)
        if request is not None:
            listed = " ".join(request.capabilities)
            return f"could not select device driver {json.dumps(request.driver)} with capabilities: [[{listed}]]"
    return None


# Docker Desktop's engine runs in its own VM: ``docker info``'s OperatingSystem says "Docker Desktop".
DESKTOP = "Docker Desktop"
# moby registers its "nvidia" device driver from nvidia-cdi-hook too (mapping a request to CDI devices
# nvidia.com/gpu=<id>) since docker-v29.2.0 (daemon/devices_nvidia_linux.go::getNVIDIADeviceDrivers).
CDI_HOOK_SINCE = (29, 2)


def runtime_only(ctx: CheckContext) -> bool:
    """The compose file's GPU services all name ``runtime: nvidia`` and make no device request (neither a
    ``driver: nvidia`` reservation nor ``gpus:``): then the runtime is what Docker needs, not a device driver
    (an unregistered runtime: "unknown or invalid runtime name", moby ``daemon/runtime_unix.go``)."""
    compose = ctx.target.compose
    services = [s for s in compose.services.values() if s.gpu_reservation] if compose is not None else []
    return bool(services) and all(
        s.gpu_request is None and not s.raw.get("gpus") and s.raw.get("runtime") == "nvidia" for s in services
    )


def _listed(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_docker(ctx: CheckContext) -> Result:
    """This host's Docker can pass NVIDIA GPUs to a container: registered only for a head run here (compose,
    image), so the engine is taken to run on this host.

    Judged as moby judges a device request (compose's ``driver: nvidia`` reservation, ``docker run --gpus``):
    it needs the ``nvidia`` device driver, which dockerd registers at start where its PATH has
    ``nvidia-container-runtime-hook``, or (Docker 29.2+) ``nvidia-cdi-hook`` with CDI on and a spec for
    ``nvidia.com/gpu`` (``doctor.local.nvidia_toolkit`` says where that is read). An ``nvidia`` runtime in
    ``docker info``'s Runtimes is no device driver: it serves ``runtime: nvidia`` only. dockerd's PATH is
    not ours: the hooks are looked for on this process's PATH and in the standard system folders, so a hook
    missing there but with other NVIDIA parts present is a warning, not a failure. Docker Desktop's engine
    runs in a VM whose files this host cannot see: only what ``docker info`` says is reported."""
    engine = ctx.docker_engine()
    if not engine.answers:
        return finding(Status.SKIP, "no Docker engine answers here", code="gpu.docker.no_engine")
    environ = getattr(ctx, "environ", None)
    runtimes = sorted(engine.runtimes or ())
    devices = [d for d in engine.discovered_devices or () if d.startswith(nvidia_toolkit.CDI_KIND + "=")]
    cdi_dirs = list(engine.cdi_spec_dirs or ())
    want = wants_gpu(ctx)
    data: dict[str, Any] = {
        "runtimes": runtimes,
        "server_version": engine.server_version,
        "operating_system": engine.operating_system,
        "cdi_spec_dirs": None if engine.cdi_spec_dirs is None else cdi_dirs,
        "cdi_devices": devices,
    }
    said = [f"runtimes: {', '.join(runtimes) or 'none listed'}"] + (
        [f"NVIDIA CDI devices the engine lists: {_listed(devices)}"] if devices else []
    )
    if engine.operating_system == DESKTOP:
        if not want:
            return finding(
                Status.SKIP, "Docker Desktop; the target is CPU-only", code="gpu.docker.cpu_target", data=data
            )
        return finding(
            Status.SKIP,
            "Docker Desktop runs its engine in a VM: whether it has NVIDIA's hook cannot be read from this host "
            "(Docker Desktop passes NVIDIA GPUs only on Windows with the WSL 2 backend)",
            code="gpu.docker.desktop",
            details=said + ["try it: docker run --rm --gpus all ubuntu nvidia-smi -L"],
            data=data,
        )
    if want and runtime_only(ctx):
        if "nvidia" in runtimes:
            return finding(
                Status.OK,
                "Docker has the nvidia runtime the compose file's GPU services name (runtime: nvidia)",
                code="gpu.docker.nvidia_runtime",
                data=data,
            )
        return finding(
            Status.FAIL,
            f"Docker has no nvidia runtime (runtimes: {', '.join(runtimes) or 'none listed'}), but the compose "
            "file's GPU services name runtime: nvidia",
            code="gpu.docker.no_nvidia_runtime",
            fix=remedies.nvidia_toolkit(environ, runtime=True),
            data={**data, "docker_error": "unknown or invalid runtime name: nvidia"},
        )

    kit = nvidia_toolkit.look(environ, cdi_dirs)
    hooks = {nvidia_toolkit.RUNTIME_HOOK: kit.runtime_hook, nvidia_toolkit.CDI_HOOK: kit.cdi_hook}
    nvidia_cdi = devices if engine.discovered_devices is not None else list(kit.cdi_specs)
    data.update(hooks=hooks, searched=list(kit.searched), cdi_specs=list(kit.cdi_specs))
    version = engine.version
    cdi_era = version is not None and version[:2] >= CDI_HOOK_SINCE
    serves = "a GPU request (compose's driver: nvidia, docker run --gpus)"
    if kit.runtime_hook:
        return finding(
            Status.OK,
            f"Docker can pass NVIDIA GPUs: {nvidia_toolkit.RUNTIME_HOOK} is at {kit.runtime_hook}",
            code="gpu.docker.nvidia_hook",
            details=[
                f"dockerd serves {serves} through its nvidia device driver, registered when dockerd starts where "
                "it finds this hook (a toolkit installed since needs a restart of Docker)",
                *said,
            ],
            data=data,
        )
    if kit.cdi_hook and cdi_era and cdi_dirs and nvidia_cdi:
        return finding(
            Status.OK,
            f"Docker {engine.server_version} can pass NVIDIA GPUs through CDI: {nvidia_toolkit.CDI_HOOK} is at "
            f"{kit.cdi_hook}, NVIDIA devices in its CDI specs ({_listed(nvidia_cdi)})",
            code="gpu.docker.nvidia_cdi",
            details=[
                f"dockerd serves {serves} as CDI devices {nvidia_toolkit.CDI_KIND}=<id> (Docker 29.2+)",
                f"CDI spec folders: {', '.join(cdi_dirs)}",
                *said,
            ],
            data=data,
        )
    found = _partial(engine, kit, nvidia_cdi, cdi_era)
    searched = (
        f"neither {nvidia_toolkit.RUNTIME_HOOK} nor {nvidia_toolkit.CDI_HOOK} is on this PATH or in the system folders"
    )
    if not want:
        seen = "; ".join(found) if found else f"{searched}, no nvidia runtime, no NVIDIA CDI spec"
        return finding(
            Status.SKIP, f"{seen}; the target is CPU-only", code="gpu.docker.cpu_target", details=said, data=data
        )
    refusal = docker_refusal(ctx)
    data["docker_error"] = refusal
    refused = [f"Docker refuses to start a service that reserves them: '{refusal}'"] if refusal else []
    cdi_fix = bool(kit.cdi_hook and cdi_era and cdi_dirs and not nvidia_cdi)
    fix = remedies.nvidia_toolkit(
        environ, cdi_spec_dir=("/etc/cdi" if "/etc/cdi" in cdi_dirs else cdi_dirs[0]) if cdi_fix else None
    )
    if found:
        return finding(
            Status.WARN,
            f"Docker has NVIDIA parts but not the hook its nvidia device driver needs: {searched} (dockerd may "
            f"still find one on a PATH of its own), and {_why_gpu(ctx)}",
            code="gpu.docker.hook_not_found",
            details=found + said + refused,
            fix=fix,
            data=data,
        )
    return finding(
        Status.FAIL,
        f"Docker cannot pass NVIDIA GPUs here: {searched}, and Docker has no nvidia runtime and no NVIDIA CDI "
        f"spec; but {_why_gpu(ctx)}",
        code="gpu.docker.no_nvidia_runtime",
        details=said + refused,
        fix=fix,
        data=data,
    )


def _partial(engine: DockerEngine, kit: nvidia_toolkit.Toolkit, nvidia_cdi: list[str], cdi_era: bool) -> list[str]:
    """The NVIDIA parts Docker has that do not serve a GPU request on their own, each with why not."""
    found = []
    nvidia_runtimes = [r for r in engine.runtimes or () if "nvidia" in r]
    cdi_dirs = list(engine.cdi_spec_dirs or ())
    if nvidia_runtimes:
        found.append(
            f"the runtime {', '.join(nvidia_runtimes)} is registered, but a device request goes to a device "
            f"driver, not a runtime: the runtime serves only services that name it (runtime: nvidia)"
        )
    version = engine.server_version or "?"
    if kit.cdi_hook:
        if not cdi_era:
            why = f"Docker {version} maps a GPU request to CDI only from 29.2"
        elif not cdi_dirs:
            said = "CDISpecDirs empty" if engine.cdi_spec_dirs is not None else "no CDISpecDirs"
            why = f"CDI is off in this Docker (docker info: {said})"
        else:
            why = f"no CDI spec for {nvidia_toolkit.CDI_KIND} in {', '.join(cdi_dirs)}"
        found.append(f"{nvidia_toolkit.CDI_HOOK} is at {kit.cdi_hook}, but {why}")
    elif nvidia_cdi:
        found.append(
            f"CDI knows NVIDIA GPUs ({_listed(nvidia_cdi)}), but dockerd maps a GPU request to them only with "
            f"{nvidia_toolkit.CDI_HOOK} on its PATH (Docker 29.2+); `--device {nvidia_toolkit.CDI_KIND}=all` "
            "asks CDI directly"
        )
    return found


def _alive_nodes(ctx: CheckContext, check: str) -> list[dict[str, Any]] | Result:
    """The alive nodes, or the skip ``gpu.<check>`` gives when the cluster or its node list is out of reach."""
    if ctx.dashboard is None or not ctx.head().live:
        return finding(Status.SKIP, "the cluster is not reachable (see head.source)", code=f"gpu.{check}.unreachable")
    try:
        nodes = ctx.nodes()
    except DashboardError as exc:
        return finding(Status.SKIP, f"the node list could not be read: {exc.message}", code=f"gpu.{check}.unreadable")
    return [n for n in nodes if str(n.get("state", "ALIVE")).upper() == "ALIVE"]


def _gpus(node: dict[str, Any]) -> float:
    try:
        return float((node.get("resources_total") or {}).get("GPU") or 0)
    except (TypeError, ValueError):
        return 0.0


def judge_gpus_per_node(ctx: CheckContext) -> Result:
    """The GPUs each alive node advertises to Ray, against what the target wants."""
    nodes = _alive_nodes(ctx, "nodes")
    if isinstance(nodes, Result):
        return nodes
    per_node = [(n, _gpus(n)) for n in nodes]
    total = sum(g for _, g in per_node)
    details = [f"{describe_node(n)}: {g:g} GPU" for n, g in per_node]
    data = {
        "nodes": [
            {"node_id": n.get("node_id"), "ip": n.get("node_ip"), "head": bool(n.get("is_head_node")), "gpus": g}
            for n, g in per_node
        ],
        "total": total,
    }
    if total == 0:
        if wants_gpu(ctx):
            return finding(
                Status.FAIL,
                f"no node advertises a GPU, but {_why_gpu(ctx)}",
                code="gpu.nodes.no_gpu_advertised",
                details=details,
                fix=Remediation(
                    "Pass the GPUs into the containers (device reservation, NVIDIA runtime); Ray then "
                    "detects them, or set `ray start --num-gpus=N`.",
                    (),
                ),
                data=data,
            )
        return finding(
            Status.SKIP,
            f"no GPUs on any of {len(nodes)} node(s): a CPU cluster",
            code="gpu.nodes.cpu_cluster",
            details=details,
            data=data,
        )
    summary = ", ".join(f"{describe_node(n)} {g:g}" for n, g in per_node if g) + f" ({total:g} GPU in all)"
    return finding(Status.OK, summary, code="gpu.nodes.gpus", details=details, data=data)


def check_probe(ctx: CheckContext) -> Result:
    """Ask for a GPU through the Jobs API and report what the process Ray gave it to sees."""
    nodes = _alive_nodes(ctx, "probe")
    if isinstance(nodes, Result):
        return nodes
    assert ctx.dashboard is not None  # _alive_nodes answered: the dashboard is there
    if not any(_gpus(n) for n in nodes):
        return finding(
            Status.SKIP, "no node advertises a GPU, so no GPU job can be placed", code="gpu.probe.no_gpu_node"
        )
    try:
        outcome = run_probe_job(ctx.dashboard, GPU_PROBE, limit_s=PROBE_LIMIT_S, name="gpu", entrypoint_num_gpus=1)
    except JobError as exc:
        return finding(
            Status.FAIL,
            f"the GPU probe job could not be submitted: {exc.message}",
            code="gpu.probe.submit_failed",
            fix=Remediation("The dashboard's Jobs API must answer: check the dashboard (network.dashboard).", ()),
        )
    node_id = str(outcome.info.get("driver_node_id") or "")
    node = next((n for n in nodes if n.get("node_id") == node_id), None)
    where = describe_node(node) if node else (f"node {node_id[:12]}" if node_id else "the node Ray chose")
    details = [
        f"job {outcome.submission_id}: {outcome.status} in {outcome.duration_s:.1f} s"
        + ("" if outcome.deleted else " (not deleted)")
    ] + outcome.notes
    if outcome.status == "TIMEOUT":
        return finding(
            Status.WARN,
            f"no GPU became free for the probe within {PROBE_LIMIT_S:g} s ({outcome.message})",
            code="gpu.probe.no_free_gpu",
            details=details + outcome.log_tail(),
            fix=Remediation(
                "The GPUs are busy, or the advertised GPU cannot be placed; look at the cluster's jobs.",
                ("ray list jobs", "ray status"),
            ),
        )
    if not outcome.ok:
        return finding(
            Status.FAIL,
            f"the GPU probe job {outcome.status} on {where}: {outcome.message or 'no output'}",
            code="gpu.probe.job_failed",
            details=details + outcome.log_tail(),
            fix=Remediation("Read the job's log above; the head must run `python` with Ray on its PATH.", ()),
        )
    return judge_probe(outcome.payload, where, details, outcome.duration_s)


def judge_probe(seen: dict[str, Any], where: str, details: list[str], duration_s: float) -> Result:
    """Ray assigned a GPU (CUDA_VISIBLE_DEVICES): is a device really there?"""
    cvd = seen.get("cuda_visible_devices")
    assigned = [x for x in (cvd or "").split(",") if x.strip()]
    devices = [d for d in seen.get("devices") or [] if re.fullmatch(r"/dev/nvidia\d+", d)]
    smi = seen.get("nvidia_smi")
    smi_gpus = (smi or {}).get("gpus") or []
    torch = seen.get("torch")
    smi_line = "not installed" if smi is None else ("; ".join(smi_gpus) or f"failed ({smi.get('err') or 'no GPUs'})")
    lines = [
        f"CUDA_VISIBLE_DEVICES={cvd!s} (the GPU ids Ray assigned to the process: {', '.join(assigned) or 'none'})",
        f"/dev/nvidia*: {', '.join(seen.get('devices') or []) or 'none'}",
        f"nvidia-smi -L: {smi_line}",
    ]
    if torch is None:
        lines.append("torch: not installed")
    elif "error" in torch:
        lines.append(f"torch: import failed: {torch['error']}")
    else:
        lines.append(
            f"torch {torch.get('version')} (CUDA {torch.get('cuda')}): "
            f"cuda available {torch.get('available')}, {torch.get('count')} device(s)"
        )
    details = lines + details
    data = {"seen": seen, "node": where, "duration_s": round(duration_s, 3)}
    visible = bool(devices or smi_gpus or (torch and torch.get("count")))
    names = ", ".join(f"GPU {g}" for g in assigned) or "a GPU"
    if assigned and not visible:
        return finding(
            Status.FAIL,
            f"Ray advertises {names} on {where} and gave it to the task, but the task sees no /dev/nvidia* and "
            f"no working nvidia-smi: the GPU is not passed into the node",
            code="gpu.probe.not_passed_through",
            details=details,
            fix=Remediation(
                "Pass the GPU into the container (compose: deploy.resources.reservations.devices with "
                "driver: nvidia and capabilities: [gpu]; docker run --gpus all) on a host with the NVIDIA "
                "runtime, or stop claiming it (`ray start --num-gpus=0`).",
                ("docker run --rm --gpus all ubuntu nvidia-smi -L",),
            ),
            data=data,
        )
    if not assigned:
        return finding(
            Status.WARN,
            f"the task on {where} got a GPU from Ray but CUDA_VISIBLE_DEVICES is not set "
            "(RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES?)",
            code="gpu.probe.cuda_visible_devices_unset",
            details=details,
            fix=Remediation("Let Ray set CUDA_VISIBLE_DEVICES, or make sure tasks pick their GPU themselves.", ()),
            data=data,
        )
    if torch and "error" not in torch and not torch.get("available"):
        return finding(
            Status.WARN,
            f"{names} is visible on {where}, but torch {torch.get('version')} cannot use CUDA (a CPU-only build?)",
            code="gpu.probe.torch_without_cuda",
            details=details,
            fix=Remediation(
                "Install a CUDA build of torch that matches the driver on the nodes.",
                ("pip install torch --index-url https://download.pytorch.org/whl/cu121",),
            ),
            data=data,
        )
    first = smi_gpus[0] if smi_gpus else (devices[0] if devices else names)
    return finding(
        Status.OK, f"a GPU task on {where} sees {names}: {first}", code="gpu.probe.visible", details=details, data=data
    )


def checks_for(ctx: CheckContext) -> list[Check]:
    """Checks about this host only where the head runs here (``Target.head_is_here``): a cluster file's
    head (ray up, KubeRay, Helm) runs elsewhere, and this laptop's driver says nothing about it."""
    checks = []
    if ctx.target.head_is_here:
        checks.append(Check("gpu.host", "gpu", "GPU driver fits the image's CUDA (this host)", check_host, timeout=20))
    if ctx.target.head_is_here and ctx.target.kind in {"compose", "image"}:
        checks.append(Check("gpu.docker", "gpu", "Docker can pass NVIDIA GPUs", check_docker, timeout=15))
    if ctx.target.address is not None:
        checks.append(Check("gpu.nodes", "gpu", "Nodes advertise the GPUs asked for", judge_gpus_per_node, timeout=25))
        checks.append(Check("gpu.probe", "gpu", "A Ray task sees its GPU", check_probe, timeout=PROBE_LIMIT_S + 25))
    return checks
