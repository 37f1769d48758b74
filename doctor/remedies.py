"""Commands that fix things, built from data so JSON and text agree."""

from __future__ import annotations

import shlex

from doctor.options import TargetOptions


def env_name(ray: str, python: str) -> str:
    """How ``fix`` names what it builds: ``ray2.49.2-py3.12.9``."""
    return f"ray{ray}-py{python}"


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


def conda_create(ray: str, python: str) -> str:
    return shlex.join(["conda", "create", "-n", env_name(ray, python), f"python={python}", "--yes"])


def pip_install_ray(ray: str, python_exe: str | None = None) -> str:
    pip = [python_exe, "-m", "pip"] if python_exe else ["pip"]
    return shlex.join([*pip, "install", f"ray[default]=={ray}"])
