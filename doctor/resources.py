"""Files raydoctor ships beside its code: the tutorial's compose files.

A wheel installs them as data files under ``<prefix>/share/raydoctor/`` (setup.cfg's
``[options.data_files]``), so the embedded default target works from any install, not
only from a source checkout. ``shipped`` finds one: the prefix of the running
interpreter (a venv, pipx's venv, the system), then the user scheme (``pip install --user``).
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path
from typing import Sequence

SHARE = Path("share") / "raydoctor"


def data_prefixes() -> list[Path]:
    """Where an install puts its data files, most specific first, each once."""
    candidates = [sys.prefix, sysconfig.get_path("data")]
    for scheme in ("posix_user", "nt_user", "osx_framework_user"):
        try:
            candidates.append(sysconfig.get_path("data", scheme))
        except KeyError:
            continue
    out: list[Path] = []
    for item in candidates:
        if item and Path(item) not in out:
            out.append(Path(item))
    return out


def shipped(relative: Path | str, *, prefixes: Sequence[Path] | None = None) -> Path | None:
    """The installed copy of ``relative`` (e.g. ``compose/cpu-ray-cluster.yaml``), or None."""
    for prefix in data_prefixes() if prefixes is None else prefixes:
        path = Path(prefix) / SHARE / relative
        if path.is_file():
            return path
    return None
