"""Where a fact or a choice came from, as a type: decisions read this, never a display string.

The auth token goes only to a target the user named (``NAMED_BY_USER``): a flag, ``RAY_ADDRESS``,
or a settings file the user has trusted (``doctor.trust``; an untrusted file's ``address`` is never
applied at all). A compose file's published ports or a cluster file are the file's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Origin(str, Enum):
    """Who chose a value. A ``str`` so that it serializes as its value in the report's JSON."""

    FLAG = "flag"  # the command line
    ENVIRONMENT = "environment"  # RAY_ADDRESS and the like
    SETTINGS = "settings file"  # a settings file the user trusts (doctor.trust)
    COMPOSE = "compose file"  # a compose file's services and published ports
    CLUSTER_FILE = "cluster file"  # a ray up YAML, KubeRay resource or Helm values
    DEFAULT = "default"  # raydoctor's own default (the shipped compose file)


# Places where the user names the target: an address from one of these may receive the auth token.
NAMED_BY_USER = frozenset({Origin.FLAG, Origin.ENVIRONMENT, Origin.SETTINGS})


class PythonOrigin(str, Enum):
    """Why an interpreter is the one judged (``doctor.local.interpreter.choose_interpreter``)."""

    FLAG = "--python"
    SETTINGS = "settings file"  # ``python =`` in a settings file the user trusts
    KERNEL = "kernel"  # ``--kernel NAME``: the Python that Jupyter kernel runs
    ACTIVE_VENV = "active venv"
    ACTIVE_CONDA = "active conda env"
    PATH = "PATH"  # python3 (or python) on PATH
    OWN = "raydoctor's own interpreter"  # nothing on PATH


@dataclass(frozen=True)
class Chosen:
    """Why the judged interpreter was chosen: decisions read ``origin`` (and ``name``); ``str()`` is the
    report's ``chosen_by`` text (docs/json.md), made here and nowhere else."""

    origin: PythonOrigin
    name: str = ""  # the kernel's name, the command on PATH, the settings file
    where: str = ""  # the kernel's kernel.json

    def __str__(self) -> str:
        if self.origin is PythonOrigin.SETTINGS:
            return f"python = in {self.name}"
        if self.origin is PythonOrigin.KERNEL:
            return f"kernel {self.name} ({self.where})"
        if self.origin is PythonOrigin.PATH:
            return f"{self.name} on PATH"
        if self.origin is PythonOrigin.OWN:
            return "raydoctor's own interpreter (no python3 on PATH)"
        return str(self.origin.value)


class PackagesOrigin(str, Enum):
    """Where the head's installed packages were read (``doctor.head.facts.HeadPackages``)."""

    DEEP_PROBE = "the --deep probe"  # the running head's probe job
    FILE = "file"  # --head-packages FILE, a team's lock
    IMAGE = "image"  # the head's image, through a local Docker engine
