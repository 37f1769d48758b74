"""``fix --export``: an ``environment.yml`` that recreates the env with conda.

Why: conda users (the tutorial starts with ``conda create``) want a file
they can hand to ``conda env create -f``. It names the head's Python
(``python=X.Y.Z``), ``pip``, and everything the venv holds as a ``pip:``
list (``pip freeze``), so the conda env gets exactly the same packages.

A repository often already has its own ``environment.yml``: raydoctor never
overwrites one it did not write (its first line says who wrote it) unless
``--force``; its own earlier exports are updated in place.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from doctor.errors import FixError, UsageError

HEADER = "# Written by raydoctor fix"
FREEZE_TIMEOUT_S = 120.0


def written_by_raydoctor(path: Path) -> bool:
    """Whether ``path`` is an export of an earlier run (so updating it is not overwriting a user's file)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().startswith(HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def check_export_target(path: Path, *, force: bool) -> None:
    """Refuse, before anything is built, to overwrite a file raydoctor did not write."""
    if path.is_dir():
        raise UsageError(f"--export {path}: is a directory; name a file such as {path / 'environment.yml'}")
    if path.exists() and not force and not written_by_raydoctor(path):
        raise UsageError(
            f"--export {path}: the file exists and raydoctor did not write it; not overwriting it",
            hint="pass --force to replace it, or --export another-name.yml",
        )


def frozen_packages(python: Path) -> list[str]:
    """``pip freeze`` of the env: one requirement per line (pip, setuptools and wheel are left out by pip)."""
    try:
        proc = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--disable-pip-version-check", "--exclude-editable"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=FREEZE_TIMEOUT_S,
            check=False,
            env={**os.environ, "PIP_NO_INPUT": "1", "PYTHONUTF8": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FixError(f"could not list the env's packages with pip freeze: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FixError(f"pip freeze in {python} failed (exit {proc.returncode}): {last}")
    return [ln.strip() for ln in proc.stdout.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "-"))]


def environment_yml(name: str, python: str, packages: Sequence[str], *, note: str | None = None) -> str:
    """The text of the file (conda's format: ``name``, ``channels``, ``dependencies``)."""
    import yaml

    body = yaml.safe_dump(
        {
            "name": name,
            "channels": ["conda-forge"],
            "dependencies": [f"python={python}", "pip", {"pip": list(packages)}],
        },
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )
    lines = [f"{HEADER}: `conda env create -f <this file>` recreates the env for this Ray cluster."]
    if note:
        lines.append(f"# {note}")
    return "\n".join(lines) + "\n" + body


def write_export(path: Path, text: str, *, force: bool) -> str:
    """Write ``text`` to ``path`` atomically; returns "written", "updated" or "unchanged"."""
    path = Path(path)
    if path.exists():
        try:
            if path.read_text(encoding="utf-8") == text:
                return "unchanged"
        except (OSError, UnicodeDecodeError):
            pass
        check_export_target(path, force=force)  # the file may have appeared since the plan
        state = "updated"
    else:
        state = "written"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.raydoctor-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FixError(f"could not write {path}: {exc.strerror or exc}") from None
    return state


def export_env(
    python: Path, path: Path, *, name: str, python_version: str, force: bool, note: str | None = None
) -> tuple[str, list[str]]:
    """Freeze the env of ``python`` into ``path``; returns (state, packages)."""
    packages = frozen_packages(python)
    return write_export(path, environment_yml(name, python_version, packages, note=note), force=force), packages
