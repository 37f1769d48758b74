"""``raydoctor run -- CMD …``: run a command inside the env that ``fix`` built for this target.

The env is found the way fix names it: the head's Ray and Python (``doctor.fix.plan.head_target``
on the head's facts, from the dashboard or the image) give ``DIR/ray<RAY>-py<PYTHON>``
(``doctor.fix.venv.env_dir_name``) under ``--env-dir`` (or the settings file's ``env-dir``). Only
an env whose marker this user's raydoctor sealed for exactly that folder is used
(``doctor.fix.venv.trusted_marker``): a cloned repository can ship an ``envs/`` folder with
anything in it. When the folder of that name holds none, any sibling whose trusted marker
records the same Ray and Python is taken (the newest first).

The command replaces raydoctor's process (``os.execvpe``): no shell, the exit code and every
signal are the command's own. Its environment is this one with the env's ``bin/`` first on
``PATH``, ``VIRTUAL_ENV`` set, and ``PYTHONHOME`` unset (as ``bin/activate`` does).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Mapping, Sequence

from doctor.commands.common import add_target_options, options_from
from doctor.errors import EXIT_USAGE, UsageError

EXIT_NOT_FOUND = 127  # as a shell says "command not found"
EXIT_NOT_EXECUTABLE = 126

EPILOG = """\
exit codes: the command's own; 2 no env built by raydoctor fix matches this target yet (the line says
            how to build it) or bad arguments; 126 the command cannot be run; 127 no such command
example:    raydoctor run -- python train.py     raydoctor run -- jupyter lab"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a command inside the env that fix built for this cluster (raydoctor run -- python app.py)",
        description="Find the env `raydoctor fix` built for this target (the head's Ray and Python) and run "
        "COMMAND in it: its bin/ first on PATH, VIRTUAL_ENV set. No shell is involved.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_options(parser)
    parser.add_argument(
        "--env-dir",
        type=Path,
        default=Path("envs"),
        metavar="DIR",
        help="where fix put the env (default: envs/ here)",
    )
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG ...]", help="what to run")


def find_env(env_dir: Path, ray: str, python: str) -> Path | None:
    """The env fix built for Ray ``ray`` on Python ``python`` under ``env_dir``, trusted; else None."""
    from doctor.fix.venv import env_dir_name, trusted_marker, venv_python

    named = env_dir / env_dir_name(ray, python)
    if trusted_marker(named) is not None and venv_python(named).exists():
        return named
    if not env_dir.is_dir():
        return None
    found: list[tuple[str, Path]] = []
    for child in env_dir.iterdir():
        if child.name.startswith(".") or child == named or not child.is_dir() or child.is_symlink():
            continue
        marker = trusted_marker(child)
        if marker is None or marker.ray_version != ray or marker.python_version != python:
            continue
        if venv_python(child).exists():
            found.append((str(marker.get("created_at") or ""), child))
    return max(found)[1] if found else None


def env_for_child(env: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """This environment, activated for ``env`` as ``bin/activate`` would: no shell needed."""
    from doctor.fix.venv import venv_python

    child = dict(environ)
    bin_dir = str(venv_python(env).parent)
    rest = [p for p in child.get("PATH", os.defpath).split(os.pathsep) if p and p != bin_dir]
    child["PATH"] = os.pathsep.join([bin_dir, *rest])
    child["VIRTUAL_ENV"] = str(env)
    child.pop("PYTHONHOME", None)
    return child


def build_command(args: argparse.Namespace) -> str:
    """The exact fix command for this target: the flags given here (a settings file supplies the rest again)."""
    applied = getattr(args, "_settings_sources", None)
    sources = getattr(applied, "sources", {}) or {}
    words = ["raydoctor", "fix"]
    for key, info in sources.items():
        if str(info.get("from", "")).startswith("--") and info.get("value") not in (None, False):
            words += [f"--{key}", str(info["value"])]
    return shlex.join(words)


def command_argv(args: argparse.Namespace) -> list[str]:
    argv: Sequence[str] = args.argv or []
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("no command to run", hint="e.g. raydoctor run -- python -c 'import ray'")
    return list(argv)


def resolve_env(args: argparse.Namespace, environ: Mapping[str, str], cwd: Path) -> Path:
    """The env to run in, or UsageError (exit 2) saying none matches yet and how to build it."""
    from doctor.context import CheckContext
    from doctor.fix.plan import head_target

    options = options_from(args, environ=environ, cwd=cwd)
    ctx = CheckContext(options, environ=environ, cwd=cwd)
    head = head_target(ctx.head())
    env_dir = Path(args.env_dir)
    env_dir = env_dir if env_dir.is_absolute() else cwd / env_dir
    env = find_env(env_dir, head.ray, head.python)
    if env is None:
        raise UsageError(
            f"no env built by raydoctor fix for Ray {head.ray} on Python {head.python} under {env_dir} yet; "
            f"build it with: {build_command(args)}"
        )
    return env


def run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    argv = command_argv(args)
    env = resolve_env(args, environ, Path.cwd())
    child = env_for_child(env, environ)
    if args.verbose:
        print(f"raydoctor run: in {env}: {shlex.join(argv)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, child)  # searches the child's PATH: the env's bin/ first
    except FileNotFoundError:
        print(f"raydoctor run: {argv[0]}: command not found (in {env} or on PATH)", file=sys.stderr)
        return EXIT_NOT_FOUND
    except PermissionError:
        print(f"raydoctor run: {argv[0]}: permission denied", file=sys.stderr)
        return EXIT_NOT_EXECUTABLE
    except OSError as exc:
        print(f"raydoctor run: {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_NOT_EXECUTABLE
    return EXIT_USAGE  # not reached: execvpe returns only by raising
