"""The ``raydoctor`` command: a thin shell that parses, calls the library, renders once."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from doctor import __version__
from doctor.errors import EXIT_INTERRUPTED, EXIT_USAGE, DoctorError
from doctor.options import DEFAULT_TIMEOUT_S, MODES, TargetOptions

EPILOG = """\
exit codes: 0 no failures (warnings allowed) · 1 at least one failure · 2 the command could not run
target: --address, else --compose/--image, else $RAY_ADDRESS, else compose/cpu-ray-cluster.yaml"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so --json can still print one document."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise DoctorError(f"{message} (see {self.prog} --help)")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 600")
    return value


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The options check, fix and report share."""
    g = parser.add_argument_group("target (the Ray head)")
    g.add_argument("--address", metavar="ADDR",
                   help="a running cluster: host, host:port (dashboard), http(s)://host:port, or ray://host:port "
                        "(client port; dashboard then 8265). Default: $RAY_ADDRESS")
    g.add_argument("--client-port", type=_port, metavar="PORT", help="Ray Client server port (default 10001)")
    g.add_argument("--gcs-port", type=_port, metavar="PORT", help="GCS port (default 6379)")
    g.add_argument("--compose", type=Path, metavar="FILE",
                   help="a Docker Compose file with a `ray start --head` service (default: compose/cpu-ray-cluster.yaml)")
    g.add_argument("--image", metavar="IMAGE", help="judge a rayproject/ray image directly, e.g. rayproject/ray:2.49.2-py312-cpu")
    g = parser.add_argument_group("local side")
    g.add_argument("--python", metavar="PATH_OR_NAME",
                   help="interpreter to judge (default: the active venv or conda env, else python3 on PATH)")
    g.add_argument("--requirements", type=Path, metavar="FILE",
                   help="the project's pins: a requirements file or environment.yml (default: ./packages.txt if present)")
    g.add_argument("--mode", choices=MODES, default="client",
                   help="how you connect: client = Ray Client (ray://, Python major.minor must match); "
                        "driver = joining the cluster (Python patch must match too). Default: client")
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON document (schema in the README) instead of text")
    g.add_argument("-v", "--verbose", action="store_true", help="show details and per-check timings")
    g.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"per-connection network timeout (default {DEFAULT_TIMEOUT_S:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="raydoctor", description="Get this machine talking to a Ray cluster.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"raydoctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    check = sub.add_parser("check", help="compare this machine with the Ray head and say what to fix",
                           description="Read the head's Ray and Python versions, compare them with the local "
                                       "interpreter and packages, and check the network, GPUs and a round trip.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_target_options(check)
    check.add_argument("--deep", action="store_true",
                       help="also submit probe jobs that list the head's and every node's packages")
    check.add_argument("--no-roundtrip", dest="roundtrip", action="store_false",
                       help="skip the ray.init round trip")
    return parser


def options_from(args: argparse.Namespace) -> TargetOptions:
    return TargetOptions(
        address=args.address, client_port=args.client_port, gcs_port=args.gcs_port, compose=args.compose,
        image=args.image, python=args.python, requirements=args.requirements, mode=args.mode,
        timeout=args.timeout, deep=getattr(args, "deep", False), roundtrip=getattr(args, "roundtrip", True),
    )


def _wants_json(argv: Sequence[str]) -> bool:
    return "--json" in argv


def print_error(exc: DoctorError, as_json: bool, command: str = "raydoctor") -> int:
    from doctor.check import error_report
    from doctor.secrets import scrub

    if as_json:
        from doctor.render import render_json

        print(render_json(error_report(command, exc, 0.0)))
    else:
        print(f"raydoctor: error: {scrub(str(exc))}", file=sys.stderr)
    return exc.exit_code


def cmd_check(args: argparse.Namespace) -> int:
    from doctor.check import run_check
    from doctor.render import render_json, render_text, use_color

    progress = None
    if not args.json and use_color(sys.stderr):
        from doctor.progress import Spinner

        progress = Spinner(sys.stderr)
    if progress:
        with progress:
            report = run_check(options_from(args), on_done=progress.done, on_start=progress.start, verbose=args.verbose)
    else:
        report = run_check(options_from(args), verbose=args.verbose)
    if args.json:
        print(render_json(report))
    elif report.error:
        print(f"raydoctor: error: {report.error}", file=sys.stderr)
    else:
        render_text(report, sys.stdout, verbose=args.verbose)
    return report.exit_code


COMMANDS = {"check": cmd_check}


def register(name: str, handler) -> None:  # noqa: ANN001 - used by optional subcommands
    COMMANDS[name] = handler


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        return COMMANDS[args.command](args)
    except DoctorError as exc:
        return print_error(exc, as_json, argv[0] if argv else "raydoctor")
    except KeyboardInterrupt:
        print("raydoctor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
