"""Which settings files the user trusts, as ``direnv allow`` and ``mise trust`` record it.

A settings file in a repository the user has just cloned was written by someone else. Its harmless
keys (ports, mode, timeout) apply at once; the keys that choose what runs, where the token goes, or
what is read, uploaded, written or deleted (``SENSITIVE_KEYS``) apply only once the user trusts that
very file: ``raydoctor trust [FILE]`` records its real path and the SHA-256 of its bytes in the
user's state folder (``doctor.state``), so any edit needs trusting again, as direnv's content hash
does. ``RAYDOCTOR_TRUSTED_SETTINGS`` (paths, ``os.pathsep``-separated: a file, or a folder that
holds it) and ``--trust-settings`` trust a file for one run (CI). Nothing in a settings file can
grant or widen trust: mise's 2026.6.5 advisory (GHSA-436v-8fw5-4mj8) was a project's own
``mise.toml`` trusting itself through ``trusted_config_paths``; no key here is read from the file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from doctor.errors import UsageError
from doctor.files import Unreadable, read_bytes, write_atomic
from doctor.state import state_dir

RECORD = "trusted-settings.json"
RECORD_CAP = 4 * 1024 * 1024
TRUST_ENV = "RAYDOCTOR_TRUSTED_SETTINGS"
# Keys that choose what runs (python, installer, python-source, image), where the token goes
# (address and the target files), or what is read, uploaded, written or deleted (requirements,
# runtime-env, env-dir, kernel, kernel-prefix, compose, cluster-file).
SENSITIVE_KEYS = frozenset(
    {
        "address",
        "compose",
        "cluster-file",
        "image",
        "python",
        "requirements",
        "runtime-env",
        "env-dir",
        "installer",
        "python-source",
        "kernel",
        "kernel-prefix",
    }
)


class TrustState(str, Enum):
    TRUSTED = "trusted"  # recorded by `raydoctor trust`, same bytes
    TRUSTED_FOR_RUN = "trusted for this run"  # --trust-settings or RAYDOCTOR_TRUSTED_SETTINGS
    CHANGED = "changed since it was trusted"
    UNTRUSTED = "not trusted"

    @property
    def applies(self) -> bool:
        return self in (TrustState.TRUSTED, TrustState.TRUSTED_FOR_RUN)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _key(path: Path) -> str:
    return str(Path(os.path.realpath(path)))


def record_path(environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ) / RECORD


def _load(environ: Mapping[str, str] | None) -> dict[str, Any]:
    """The record, or an empty one; a record that is not raydoctor's own JSON trusts nothing."""
    try:
        data = json.loads(read_bytes(record_path(environ), RECORD_CAP, follow_symlinks=False))
    except (Unreadable, ValueError, RecursionError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def _save(files: Mapping[str, Any], environ: Mapping[str, str] | None) -> None:
    path = record_path(environ)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(
            path, json.dumps({"version": 1, "files": dict(files)}, indent=2, sort_keys=True) + "\n", mode=0o600
        )
    except OSError as exc:
        raise UsageError(f"{path}: cannot record trust: {exc.strerror or exc}") from None


def _trusted_by_env(path: Path, environ: Mapping[str, str]) -> bool:
    raw = environ.get(TRUST_ENV, "")
    real = Path(_key(path))
    for item in filter(None, raw.split(os.pathsep)):
        try:
            allowed = Path(os.path.realpath(Path(item).expanduser()))
        except (OSError, ValueError):
            continue
        if real == allowed or allowed in real.parents:
            return True
    return False


def trust_state(path: Path, sha: str, environ: Mapping[str, str] | None = None, *, for_run: bool = False) -> TrustState:
    """How far the file at ``path``, whose bytes hash to ``sha``, is trusted."""
    env = os.environ if environ is None else environ
    if for_run or _trusted_by_env(path, env):
        return TrustState.TRUSTED_FOR_RUN
    entry = _load(env).get(_key(path))
    if entry is None:
        return TrustState.UNTRUSTED
    return TrustState.TRUSTED if entry.get("sha256") == sha else TrustState.CHANGED


@dataclass(frozen=True)
class TrustEntry:
    path: str
    sha256: str
    trusted_at: str


def trust_file(path: Path, sha: str, environ: Mapping[str, str] | None = None) -> TrustEntry:
    """Record ``path`` with ``sha``, the digest of the bytes the caller read, parsed and showed."""
    files = _load(environ)
    entry = TrustEntry(_key(path), sha, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    files[entry.path] = {"sha256": entry.sha256, "trusted_at": entry.trusted_at}
    _save(files, environ)
    return entry


def untrust_file(path: Path, environ: Mapping[str, str] | None = None) -> bool:
    """Forget ``path``; True when it was recorded."""
    files = _load(environ)
    if files.pop(_key(path), None) is None:
        return False
    _save(files, environ)
    return True


def trusted_files(environ: Mapping[str, str] | None = None) -> list[TrustEntry]:
    return [
        TrustEntry(k, str(v.get("sha256", "")), str(v.get("trusted_at", ""))) for k, v in sorted(_load(environ).items())
    ]
