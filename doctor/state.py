"""Where raydoctor keeps its per-user state: never the checkout, never a folder others can write."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """raydoctor's per-user state: ``$RAYDOCTOR_STATE_DIR``, else ``$XDG_STATE_HOME/raydoctor``,
    else ``~/.local/state/raydoctor`` (``%LOCALAPPDATA%/raydoctor`` on Windows). Never the checkout."""
    env = os.environ if environ is None else environ
    if env.get("RAYDOCTOR_STATE_DIR"):
        return Path(env["RAYDOCTOR_STATE_DIR"]).expanduser()
    if os.name == "nt":
        return Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "raydoctor"
    return Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "raydoctor"
