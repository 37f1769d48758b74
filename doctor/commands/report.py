"""``raydoctor report``: run the check and print it as Markdown to paste into a bug report.

The check is the same as ``raydoctor check`` (same target options); only the
output differs. Secrets never appear (the one masking pass, ``doctor.render.mask``);
``--redact`` also hides host names, addresses and the home directory, for
reports posted in public.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from doctor.commands.common import EPILOG, add_check_options, add_target_options, emit, options_from


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="run the check and print a Markdown summary to share (no secrets; --redact hides hosts)",
        description="Run the same check as `raydoctor check` and print a Markdown summary fit for a bug report "
        "or a chat message: the versions on both sides, every finding with its fix, and timings. "
        "Tokens and passwords never appear in it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_options(parser)
    add_check_options(parser)
    g = parser.add_argument_group("sharing")
    g.add_argument(
        "--redact",
        action="store_true",
        help="also replace host names, IP addresses and URL hosts with placeholders, and the home "
        "directory with ~ (for reports posted in public)",
    )
    g.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write the report to FILE instead of standard output"
    )


def run(args: argparse.Namespace) -> int:
    """Print (or write) the Markdown; with ``--json``, the check's JSON document, masked the same way."""
    from doctor.app import run_check

    environ = dict(os.environ)
    report = run_check(options_from(args), environ=environ, verbose=args.verbose)
    return emit(
        report,
        form="json" if args.json else "markdown",
        verbose=args.verbose,
        environ=environ,
        redact=args.redact,
        output=args.output,
    )
