"""``fix --export``: an ``environment.yml`` that recreates the env with conda.

Why: conda users (the tutorial starts with ``conda create``) want a file
they can hand to ``conda env create -f``. It names the head's Python
(``python=X.Y.Z``), ``pip``, and everything the venv holds as a ``pip:``
list (``pip freeze``), so the conda env gets exactly the same packages.

A repository often already has its own ``environment.yml``: raydoctor never
overwrites one it did not write (its first line says who wrote it) unless
``--force``; its own earlier exports are updated in place.

The package list is ``pip freeze`` read by the one requirements parser
(``doctor.local.requirements``); URL credentials in it are masked, never written.
The file is written to a ``mkstemp`` partial in the target folder and renamed into
place, so a symlink planted at a predictable name is never followed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from doctor import files, proc
from doctor.errors import FixError, UsageError
from doctor.local.requirements import mask_credentials, parse_text
from doctor.masking import MASK as REDACTED

HEADER = "# Written by raydoctor fix"
FREEZE_TIMEOUT_S = 120.0
EXPORT_MAX_BYTES = 8 * 1024 * 1024  # an environment.yml larger than this is not one raydoctor wrote


def written_by_raydoctor(path: Path) -> bool:
    """Whether ``path`` is an export of an earlier run (so updating it is not overwriting a user's file)."""
    try:
        first = files.read_head(path, len(HEADER.encode()), follow_symlinks=False)
    except files.Unreadable:  # a symlink, FIFO or device at the name is no export of ours
        return False
    return first == HEADER.encode()


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
    """``pip freeze`` of the env: one requirement per line (pip, setuptools and wheel are left out by pip).

    Comments, options and editables are dropped; URL credentials are masked (the list is shown and written).
    """
    # -I: the venv's own pip, never a ``pip/`` package in a folder (-X utf8 for the PYTHONUTF8 that -I ignores)
    args = proc.isolated_python(Path(python).absolute(), "-X", "utf8", "-m", "pip", "freeze")
    args += ["--disable-pip-version-check", "--exclude-editable"]
    env = {**proc.child_env(os.environ), "PIP_NO_INPUT": "1"}
    try:
        done = proc.run(args, timeout=FREEZE_TIMEOUT_S, env=env)
    except (OSError, proc.ProcTimeout) as exc:
        raise FixError(f"could not list the env's packages with pip freeze: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FixError(f"pip freeze in {python} failed (exit {done.returncode}): {mask_credentials(last)}")
    return freeze_lines(done.stdout)


def freeze_lines(text: str) -> list[str]:
    """The packages of ``pip freeze`` output, as the requirements parser reads them (credentials masked)."""
    out: list[str] = []
    for raw in text.splitlines():
        try:
            lines = parse_text(raw, Path("pip freeze"))
        except UsageError:  # not a requirement raydoctor can read: pip can, so keep it
            lines = []
            if raw.strip() and not raw.lstrip().startswith(("#", "-")):
                out.append(mask_credentials(raw.strip()))
        for line in lines:
            if line.entry is not None and line.entry.kind != "editable":
                out.append(line.entry.display)
    return out


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
    return "\n".join(lines) + "\n" + str(body)


def write_export(path: Path, text: str, *, force: bool) -> str:
    """Write ``text`` to ``path`` atomically; returns "written", "updated" or "unchanged"."""
    path = Path(path)
    if path.exists():
        try:
            if files.read_text(path, EXPORT_MAX_BYTES, follow_symlinks=False) == text:
                return "unchanged"
        except files.Unreadable:
            pass
        check_export_target(path, force=force)  # the file may have appeared since the plan
        state = "updated"
    else:
        state = "written"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_with(path, text)
    except OSError as exc:
        raise FixError(f"could not write {path}: {exc.strerror or exc}") from None
    return state


def _replace_with(path: Path, text: str) -> None:
    """A fresh ``mkstemp`` file beside ``path``, renamed over it: a planted symlink or FIFO is replaced."""
    files.write_atomic(path, text)


def export_env(
    python: Path, path: Path, *, name: str, python_version: str, force: bool, note: str | None = None
) -> tuple[str, list[str]]:
    """Freeze the env of ``python`` into ``path``; returns (state, packages)."""
    packages = frozen_packages(python)
    if any(f"{REDACTED}@" in p for p in packages):
        masked = "URL credentials are written as ***: put them back before `conda env create`"
        note = f"{note}; {masked}" if note else masked
    return write_export(path, environment_yml(name, python_version, packages, note=note), force=force), packages
