"""How raydoctor runs uv so that no folder's ``uv.toml`` steers it, and what uv is configured with.

uv reads ``uv.toml`` and ``pyproject.toml [tool.uv]`` from its working folder and every parent
(``FilesystemOptions::find`` walks the ancestors, ``crates/uv-settings/src/lib.rs``), then the
user's and the system's ``uv.toml``. A cloned repo's file could name the index uv installs from
(``index-url``) or the list it downloads Pythons from (``python-downloads-json-url``), and a
``uv.toml`` planted in a shared parent (``/tmp``) is found from any folder below it. Children start
in a private folder (``doctor.proc.private_cwd``), but its parents are still walked, so uv also
gets ``UV_NO_CONFIG=1``: no discovery at all.

The user's own configuration is kept: ``UV_NO_CONFIG`` turns off the user-level file too, so its
path goes back in as ``UV_CONFIG_FILE``, which uv reads even with ``UV_NO_CONFIG`` (``--config-file``
wins over ``--no-config`` in ``crates/uv/src/lib.rs``). One file only: the user's
(``$XDG_CONFIG_HOME/uv/uv.toml``, else ``~/.config/uv/uv.toml``), else the system's
(``$XDG_CONFIG_DIRS/uv/uv.toml``, else ``/etc/uv/uv.toml``); where both exist uv would merge them
and raydoctor runs uv with the user's alone. A ``UV_CONFIG_FILE`` or ``UV_NO_CONFIG`` the user set
stays as it is: the environment is the user's, the folder is not.

``fingerprint`` is what uv is configured with, for cache keys: every ``UV_*`` variable uv gets and
the content hash of the configuration file it reads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from doctor.files import Unreadable, read_bytes

CONFIG_CAP = 1024 * 1024
# uv's settings that are paths: relative ones meant the user's folder, not the child's private one.
_PATH_VARS = (
    "UV_CACHE_DIR",
    "UV_CONFIG_FILE",
    "UV_PYTHON_INSTALL_DIR",
    "UV_PYTHON_BIN_DIR",
    "UV_PYTHON_DOWNLOADS_JSON_URL",
    "UV_TOOL_DIR",
    "UV_TOOL_BIN_DIR",
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def user_config_file(environ: Mapping[str, str]) -> Path | None:
    """The one configuration file raydoctor lets uv read: the user's, else the system's, else none."""
    if environ.get("UV_CONFIG_FILE"):
        return Path(environ["UV_CONFIG_FILE"]).expanduser()
    if _truthy(environ.get("UV_NO_CONFIG")):
        return None
    home = environ.get("HOME") or str(Path.home())
    if os.name == "nt":
        user = [Path(environ.get("APPDATA") or Path(home) / "AppData" / "Roaming") / "uv" / "uv.toml"]
        system = [Path(environ.get("SYSTEMDRIVE", "C:") + "\\") / "ProgramData" / "uv" / "uv.toml"]
    else:
        user = [Path(environ.get("XDG_CONFIG_HOME") or Path(home) / ".config") / "uv" / "uv.toml"]
        dirs = [d for d in (environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
        system = [Path(d) / "uv" / "uv.toml" for d in dirs] + [Path("/etc/uv/uv.toml")]
    for candidate in (*user, *system):
        if candidate.is_absolute() and candidate.is_file():
            return candidate
    return None


def isolated_env(env: Mapping[str, str], cwd: Path | None = None) -> dict[str, str]:
    """``env`` for a uv child: no configuration discovered from folders, the user's file kept.

    Relative path settings are made absolute against ``cwd`` (default: the current folder), where
    the user meant them, since uv itself starts elsewhere. ``COLUMNS`` goes: uv wraps its messages at
    that width, and raydoctor reads them (``doctor.fix.uv_python.one_line_error``, the resolution's
    patterns) line by line.
    """
    out = dict(env)
    out.pop("COLUMNS", None)
    here = (cwd or Path.cwd()).absolute()
    for name in _PATH_VARS:
        value = out.get(name)
        if value and "://" not in value and not Path(value).expanduser().is_absolute():
            out[name] = str(here / value)
    config = user_config_file(out)
    if config is not None:
        out["UV_CONFIG_FILE"] = str(config)
    out["UV_NO_CONFIG"] = "1"
    return out


def fingerprint(env: Mapping[str, str]) -> dict[str, object]:
    """What a uv started with ``isolated_env(env)`` is configured with: its ``UV_*`` variables and
    the sha256 of the configuration file it reads (a changed file is another configuration)."""
    uv_env = isolated_env(env)
    config = uv_env.get("UV_CONFIG_FILE")
    digest: str | None = None
    if config:
        try:
            digest = hashlib.sha256(read_bytes(config, CONFIG_CAP)).hexdigest()
        except Unreadable as exc:
            digest = f"unreadable: {exc.reason}"
    return {"env": sorted((k, v) for k, v in uv_env.items() if k.startswith("UV_")), "config_sha256": digest}
