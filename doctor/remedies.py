"""Commands that fix things, built from data so JSON and text agree.

A command is suggested only where it can work: ``conda create`` only where conda
exists (``doctor.fix.discover.locate_conda``), ``pip install`` only into an
interpreter that passes Ray's Python rule (else ``raydoctor fix``, which builds one),
``raydoctor fix`` only when the head's Ray and Python are both known (else fix
refuses: it does not know what to build), ``ray status`` only with the judged env's
own ``ray``. raydoctor names itself the way it was started (``self_command``), and
``docker compose … up -d`` is suggested only where the compose plugin and an engine answer
(``start_compose``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from doctor.model import Remediation
from doctor.options import TargetOptions

if TYPE_CHECKING:
    from doctor.local.docker_cli import DockerCli
    from doctor.target import HeadAddress

SCRIPT = "raydoctor.exe" if os.name == "nt" else "raydoctor"

CONDA_PREFIX = "raydoctor-"  # marks a conda env as fix's own


def env_name(ray: str, python: str) -> str:
    """How ``fix`` names the venv it builds: ``ray2.49.2-py3.12.9``."""
    return f"ray{ray}-py{python}"


def conda_env_name(ray: str, python: str) -> str:
    """The conda env fix may create: ``raydoctor-ray2.49.2-py3.12.9`` (the prefix marks it as fix's own)."""
    return CONDA_PREFIX + env_name(ray, python)


def target_flags(options: TargetOptions) -> list[str]:
    flags: list[str] = []
    for flag, value in (
        ("--address", options.address),
        ("--compose", options.compose),
        ("--cluster-file", options.cluster_file),
        ("--image", options.image),
        ("--client-port", options.client_port),
        ("--gcs-port", options.gcs_port),
        ("--requirements", options.requirements),
    ):
        if value is not None:
            flags += [flag, str(value)]
    return flags


def _own_scripts() -> list[Path]:
    """Where this install's console script lives: the scripts folder of this interpreter's prefix
    (a venv, pipx's venv, the system) and of its per-user scheme (``pip install --user``)."""
    folders: list[str] = []
    schemes: list[str | None] = [None]
    try:
        schemes.append(sysconfig.get_preferred_scheme("user"))
    except (AttributeError, KeyError):  # Python < 3.10: no preferred schemes
        schemes.append(f"{os.name}_user")
    for scheme in schemes:
        try:
            folder = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        if folder and folder not in folders:
            folders.append(folder)
    return [Path(folder) / SCRIPT for folder in folders]


def _running_script() -> Path | None:
    """The console script this process was started as (``sys.argv[0]`` named raydoctor), absolute; else None."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or Path(argv0).name not in {SCRIPT, "raydoctor"}:
        return None
    path = Path(os.path.abspath(argv0))
    return path if path.is_file() else None


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _runs_this_interpreter(script: str) -> bool:
    """The script's ``#!`` names this interpreter's folder (a console script pip wrote for this env)."""
    from doctor import files

    try:
        first = files.read_head(script, 512).split(b"\n", 1)[0]
    except files.Unreadable:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode(errors="replace").split()
    if not words:
        return False
    # Folders compared unresolved: two venvs of one base Python resolve to the same binary.
    return os.path.dirname(os.path.abspath(words[0])) == os.path.dirname(os.path.abspath(sys.executable))


def self_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """How a pasted suggestion reaches this same raydoctor, as argv.

    ``raydoctor`` only when PATH finds this install's own console script (the one beside this
    interpreter, or the one this process was started as); else the absolute path of the console
    script this process runs as; else ``<this interpreter> -m doctor`` (``doctor/__main__.py``).
    """
    env = os.environ if environ is None else environ
    found = shutil.which("raydoctor", path=env.get("PATH", os.defpath))
    running = _running_script()
    if found is not None:
        mine = [*_own_scripts(), *([running] if running else [])]
        if any(_same_file(found, script) for script in mine) or _runs_this_interpreter(found):
            return ["raydoctor"]
    if running is not None:
        return [str(running)]
    return [sys.executable, "-m", "doctor"]


def raydoctor(args: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """A raydoctor command line to paste: ``raydoctor check --address …``, named as ``self_command`` says."""
    return shlex.join([*self_command(environ), *args])


def raydoctor_fix(options: TargetOptions, environ: Mapping[str, str] | None = None) -> str:
    return raydoctor(["fix", *target_flags(options)], environ)


def raydoctor_check(address: str, environ: Mapping[str, str] | None = None) -> str:
    return raydoctor(["check", "--address", address], environ)


def fix_knows_what_to_build(head_ray: str | None, head_python: str | None) -> bool:
    """``raydoctor fix`` refuses (exit 2) unless the head's Ray and Python are both known."""
    return bool(head_ray) and bool(head_python)


def conda_create(ray: str, python: str, program: str = "conda") -> str:
    """The conda env fix would make, by hand (same name as fix's: ``raydoctor-ray<RAY>-py<PYTHON>``)."""
    return shlex.join([program, "create", "-n", conda_env_name(ray, python), f"python={python}", "--yes"])


def conda_program(environ: Mapping[str, str] | None = None) -> str | None:
    """How to call this machine's conda (or mamba, micromamba) in a suggestion; None without one.

    Read-only: conda is located, never run. Its bare name when PATH finds that same
    program, else its full path (``$CONDA_EXE`` outside PATH).
    """
    import shutil

    from doctor.local.tools import locate_conda

    env = os.environ if environ is None else environ
    found = locate_conda(env)
    if found is None:
        return None
    on_path = shutil.which(found.exe.name, path=env.get("PATH", os.defpath))
    try:
        same = on_path is not None and Path(on_path).resolve() == found.exe.resolve()
    except OSError:
        same = False
    return found.exe.name if same else str(found.exe)


def pip_install_ray(ray: str, python_exe: str | None = None) -> str:
    pip = [python_exe, "-m", "pip"] if python_exe else ["pip"]
    return shlex.join([*pip, "install", f"ray[default]=={ray}"])


def ray_status(python_exe: str | None, address: HeadAddress | None) -> tuple[str, ...]:
    """``<env>/bin/ray status --address HOST:GCS`` with the judged env's own ``ray``; nothing without one."""
    ray = env_ray(python_exe)
    if ray is None or address is None:
        return ()
    return (shlex.join([str(ray), "status", "--address", f"{address.host_for_url}:{address.gcs_port}"]),)


def env_ray(python_exe: str | None) -> Path | None:
    """The judged env's own ``ray`` script (next to its interpreter), or None."""
    if not python_exe:
        return None
    folder = Path(python_exe).parent
    for name in ("ray.exe", "ray") if os.name == "nt" else ("ray",):
        if (folder / name).is_file():
            return folder / name
    return None


def start_compose(
    compose_path: Path | str, cli: DockerCli, refusals: Sequence[str] = (), fix_file: Sequence[str] = ()
) -> Remediation:
    """How to start a compose cluster here: ``docker compose -f FILE up -d`` only where the compose
    plugin answers (``docker compose version``) and so does the engine; else what to install or start.

    ``refusals``: what Docker will answer when it creates this file's containers on this engine
    (``ComposeService.cpus_refusal``): then the start command would fail where pasted, so it is not offered;
    ``fix_file`` (the commands to ``raydoctor fix --cluster``, which makes the compose lint's edits) is."""
    path = str(compose_path)
    if refusals and cli.engine:
        return Remediation(
            f"Docker refuses to start this file here as it is ({refusals[0]}): make the compose edits this check "
            f"gives first{' (the commands below make them)' if fix_file else ''}, then start the cluster.",
            tuple(fix_file),
        )
    if cli.docker is None and cli.legacy_compose is None:
        return Remediation(
            "No docker command here: install Docker with its compose plugin (Docker Desktop, or Docker Engine "
            "and the docker-compose-plugin package), then start the cluster from " + path + "."
        )
    if not cli.engine:
        return Remediation(
            "No Docker engine answers here: start Docker (Docker Desktop, or `systemctl start docker`), "
            "then start the cluster from " + path + "."
        )
    if cli.compose:
        return Remediation(
            "Start the cluster to check it live.", (shlex.join([cli.program, "compose", "-f", path, "up", "-d"]),)
        )
    if cli.legacy_compose is not None:
        return Remediation(
            "Start the cluster to check it live (with the standalone docker-compose: the docker compose plugin "
            "does not answer here).",
            (shlex.join([cli.legacy_compose, "-f", path, "up", "-d"]),),
        )
    return Remediation(
        "The docker compose plugin does not answer here (`docker compose version` failed): install Docker "
        "Compose v2 (the docker-compose-plugin package, or Docker Desktop), then start the cluster from " + path + "."
    )


def as_root(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """``argv`` to paste where it needs root: bare where this process is root (root often has no sudo:
    containers, CI), behind ``sudo`` where sudo is installed, else bare (the finding says to run it as root)."""
    env = os.environ if environ is None else environ
    if getattr(os, "geteuid", lambda: -1)() == 0 or shutil.which("sudo", path=env.get("PATH", os.defpath)) is None:
        return shlex.join(argv)
    return shlex.join(["sudo", *argv])


def installed(program: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether PATH finds ``program``: a suggestion names only programs that run where it is pasted."""
    env = os.environ if environ is None else environ
    return shutil.which(program, path=env.get("PATH", os.defpath)) is not None


def nvidia_toolkit(
    environ: Mapping[str, str] | None = None, *, runtime: bool = False, cdi_spec_dir: str | None = None
) -> Remediation:
    """What makes this host's Docker pass NVIDIA GPUs, as ``gpu.docker`` found it missing.

    A device request (compose's ``driver: nvidia`` reservation, ``docker run --gpus``) needs moby's ``nvidia``
    device driver, which dockerd registers when it starts where it finds ``nvidia-container-runtime-hook``
    (moby ``daemon/nvidia_linux.go``, ``daemon/devices_nvidia_linux.go``): the nvidia-container-toolkit
    package puts it in /usr/bin; no command here installs it (NVIDIA's repository comes first), so the text
    says it. ``cdi_spec_dir``: Docker 29.2+ with CDI on and ``nvidia-cdi-hook`` installed lacks only the CDI
    spec, which ``nvidia-ctk cdi generate`` writes (named only where nvidia-ctk is installed; the engine's CDI
    cache watches its folders, no restart: container-device-interface ``pkg/cdi/cache.go``, autoRefresh).
    ``runtime``: a service names ``runtime: nvidia``, which ``nvidia-ctk runtime configure --runtime=docker``
    registers in /etc/docker/daemon.json; Docker reads it when it restarts (NVIDIA Container Toolkit install
    guide)."""
    if cdi_spec_dir is not None and installed("nvidia-ctk", environ):
        spec = os.path.join(cdi_spec_dir, "nvidia.yaml")
        return Remediation(
            "Write the CDI spec of this host's NVIDIA GPUs where Docker reads it (write it again after a driver "
            "update, or let the toolkit's nvidia-cdi-refresh service do it).",
            (as_root(["nvidia-ctk", "cdi", "generate", f"--output={spec}"], environ),),
        )
    if not runtime:
        return Remediation(
            "Install the NVIDIA Container Toolkit (the nvidia-container-toolkit package, from NVIDIA's repository; "
            "it needs the NVIDIA driver): it puts nvidia-container-runtime-hook in /usr/bin, where Docker looks for "
            "it when it starts; then restart Docker. (nvidia-ctk alone comes from nvidia-container-toolkit-base, "
            "without the hook.)"
        )
    if not installed("nvidia-ctk", environ):
        return Remediation(
            "Install the NVIDIA Container Toolkit (the nvidia-container-toolkit package, from NVIDIA's repository; "
            "it needs the NVIDIA driver), then run `nvidia-ctk runtime configure --runtime=docker` as root and "
            "restart Docker."
        )
    commands = [as_root(["nvidia-ctk", "runtime", "configure", "--runtime=docker"], environ)]
    if installed("systemctl", environ) and os.path.isdir("/run/systemd/system"):
        commands.append(as_root(["systemctl", "restart", "docker"], environ))
        return Remediation("Register the NVIDIA runtime with Docker, then restart Docker.", tuple(commands))
    return Remediation(
        "Register the NVIDIA runtime with Docker, then restart Docker (no systemd here: stop dockerd and start it "
        "again, or restart Docker Desktop).",
        tuple(commands),
    )


def nvidia_smi(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``nvidia-smi`` where it is installed; nothing where it is not (the finding says to install the driver)."""
    return ("nvidia-smi",) if installed("nvidia-smi", environ) else ()
