"""Commands that fix things, built from data so JSON and text agree.

A command is suggested only where it can work: ``conda create`` only where conda
exists (``doctor.fix.discover.locate_conda``), ``pip install`` only into an
interpreter that passes Ray's Python rule (else ``raydoctor fix``, which builds one),
``raydoctor fix`` only when the head's Ray and Python are both known (else fix
refuses: it does not know what to build), ``ray status`` only with the judged env's
own ``ray``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from doctor.options import TargetOptions

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


def raydoctor_fix(options: TargetOptions) -> str:
    return shlex.join(["raydoctor", "fix", *target_flags(options)])


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

    from doctor.fix.discover import locate_conda

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


def env_ray(python_exe: str | None) -> Path | None:
    """The judged env's own ``ray`` script (next to its interpreter), or None."""
    if not python_exe:
        return None
    folder = Path(python_exe).parent
    for name in ("ray.exe", "ray") if os.name == "nt" else ("ray",):
        if (folder / name).is_file():
            return folder / name
    return None
