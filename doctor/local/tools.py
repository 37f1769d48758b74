"""Which tools this machine has: uv and a conda-like program. Facts, found without running them.

Check (``doctor.context``, ``doctor.remedies``) and fix (``doctor.fix``) ask the same questions, so
the answers live here, in the fact layer, and neither reaches into the other.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FLAVORS = ("conda", "mamba", "micromamba")


def find_uv(environ: Mapping[str, str] | None = None) -> Path | None:
    """uv's binary: the ``uv`` wheel's own (``uv.find_uv_bin()``), then PATH."""
    try:
        import uv  # the PyPI wheel that carries the binary; not imported for anything else

        found = Path(uv.find_uv_bin())
        if found.is_file():
            return found
    except (ImportError, FileNotFoundError, AttributeError):
        pass
    env = os.environ if environ is None else environ
    which = shutil.which("uv", path=env.get("PATH", os.defpath))
    return Path(which) if which else None


@dataclass(frozen=True)
class CondaLocation:
    """A conda-like program found on this machine; not run, so nothing is known of its channels."""

    exe: Path
    flavor: str  # conda | mamba | micromamba


def flavor_of(exe: Path) -> str:
    stem = exe.name.lower()
    for suffix in (".exe", ".bat", ".cmd"):
        stem = stem.removesuffix(suffix)
    if stem.startswith("micromamba"):
        return "micromamba"
    if stem.startswith("mamba"):
        return "mamba"
    return "conda"


def locate_conda(environ: Mapping[str, str] | None = None) -> CondaLocation | None:
    """``$CONDA_EXE`` (set by ``conda activate``), ``$MAMBA_EXE``, then ``conda``, ``mamba``, ``micromamba`` on PATH.

    None when there is none: conda is optional.
    """
    env = os.environ if environ is None else environ
    for var in ("CONDA_EXE", "MAMBA_EXE"):
        value = env.get(var)
        if value and Path(value).is_file() and os.access(value, os.X_OK):
            return CondaLocation(Path(value), flavor_of(Path(value)))
    path = env.get("PATH", os.defpath)
    for name in FLAVORS:
        found = shutil.which(name, path=path)
        if found:
            return CondaLocation(Path(found), name)
    return None
