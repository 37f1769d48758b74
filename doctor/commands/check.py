"""``raydoctor check``: run every applicable check and render the report once."""

from __future__ import annotations

import argparse
import sys

from doctor.commands.common import EPILOG, add_check_options, add_target_options, emit, options_from


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="compare this machine with the Ray head and say what to fix",
        description="Read the head's Ray and Python versions, compare them with the local "
        "interpreter and packages, and check the network, GPUs and a round trip.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_options(parser)
    add_check_options(parser)


def run(args: argparse.Namespace) -> int:
    from doctor.app import run_check
    from doctor.render.text import use_color

    options = options_from(args)
    if not args.json and use_color(sys.stderr):
        from doctor.render.live import Spinner

        with Spinner(sys.stderr) as progress:
            report = run_check(options, on_done=progress.done, on_start=progress.start, verbose=args.verbose)
    else:
        report = run_check(options, verbose=args.verbose)
    return emit(report, form="json" if args.json else "text", verbose=args.verbose)
