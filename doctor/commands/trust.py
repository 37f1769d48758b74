"""``raydoctor trust [FILE]``: let a settings file choose what runs and where the token goes.

As ``direnv allow`` and ``mise trust``: the file's real path and the SHA-256 of the bytes shown are
recorded in the user's state folder (``doctor.trust``); an edit needs trusting again. Without trust
a settings file's harmless keys still apply, and its sensitive ones are named in one finding.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from doctor.commands.common import EPILOG, write_stream
from doctor.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "trust",
        help="trust a settings file (raydoctor.toml or [tool.raydoctor]) so its sensitive keys apply",
        description="Record that you trust a settings file, so that its keys that choose what runs, where the "
        "auth token goes, and what is read, uploaded, written or deleted (address, python, requirements, "
        "runtime-env, env-dir, kernel, installer, python-source, compose, cluster-file, image) apply. "
        "The file's path and content hash are recorded in raydoctor's state folder: any edit needs trusting "
        "again. Nothing in a settings file can trust itself.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", type=Path, metavar="FILE", help="the file (default: the one that applies here)"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--untrust", action="store_true", help="forget FILE (or the one that applies here)")
    what.add_argument("--show", action="store_true", help="list the files you trust, with their hashes")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from doctor.settings import SettingsFile, find_settings_noting, load_settings
    from doctor.trust import SENSITIVE_KEYS, trust_file, trusted_files, untrust_file

    environ = dict(os.environ)
    if args.show:
        entries = trusted_files(environ)
        lines = [f"{e.path}  {e.sha256[:19]}…  trusted {e.trusted_at}" for e in entries]
        write_stream(sys.stdout, "\n".join(lines or ["no settings file is trusted"]) + "\n")
        return 0
    settings: SettingsFile | None
    if args.file is not None:
        settings = load_settings(args.file)
    else:
        settings, refused = find_settings_noting(Path.cwd(), environ)
        if settings is None:
            raise UsageError(
                refused[0]
                if refused
                else "no settings file applies here (raydoctor.toml or pyproject.toml "
                "with [tool.raydoctor], up to the repository root)",
                hint="name one: raydoctor trust path/to/raydoctor.toml",
            )
    assert settings is not None
    if args.untrust:
        known = untrust_file(settings.path, environ)
        write_stream(sys.stdout, f"{'no longer trusted' if known else 'was not trusted'}: {settings.path}\n")
        return 0
    entry = trust_file(settings.path, settings.sha256, environ)
    sensitive = {k: v for k, v in settings.values.items() if k in SENSITIVE_KEYS}
    lines = [f"trusted {settings.path} ({entry.sha256[:19]}…)"]
    lines += [f"  now applies: {k} = {str(v)!r}" for k, v in sorted(sensitive.items())]
    if not sensitive:
        lines.append("  (it sets no sensitive key today; an edit that adds one needs trusting again)")
    write_stream(sys.stdout, "\n".join(lines) + "\n")
    return 0
