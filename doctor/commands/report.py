"""``raydoctor report``: run the check and print it as Markdown to paste into a bug report.

The check is the same as ``raydoctor check`` (same target options); only the
output differs. Secrets never appear (see ``doctor.report_markdown``);
``--redact`` also hides host names, addresses and the home directory, for
reports posted in public.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from doctor.commands.common import EPILOG, add_check_options, add_target_options, options_from
from doctor.errors import UsageError


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
    from doctor.render import render_json
    from doctor.report_markdown import Redactor, mask_secrets, render_markdown
    from doctor.secrets import load_token

    environ = dict(os.environ)
    load_token(environ)  # registers the token for scrubbing even when the check stops early
    report = run_check(options_from(args), environ=environ, verbose=args.verbose)
    if args.json:
        text = mask_secrets(render_json(report), environ) + "\n"
        if args.redact:
            text = Redactor.for_report(report, environ).apply(text)
    else:
        text = render_markdown(report, redact=args.redact, environ=environ, verbose=args.verbose)
    if args.output is not None:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{args.output}: cannot write the report: {exc.strerror or exc}") from None
        print(f"raydoctor: report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return report.exit_code
