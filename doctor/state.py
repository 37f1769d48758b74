"""raydoctor's per-user state folder: seal keys, trust records. Never inside a checkout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$RAYDOCTOR_STATE_DIR``, else ``$XDG_STATE_HOME/raydoctor``, else ``~/.local/state/raydoctor``
    (``%LOCALAPPDATA%/raydoctor`` on Windows)."""
    env = os.environ if environ is None else environ
    if env.get("RAYDOCTOR_STATE_DIR"):
        return Path(env["RAYDOCTOR_STATE_DIR"]).expanduser()
    if os.name == "nt":
        return Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "raydoctor"
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "raydoctor"
