"""The ``raydoctor`` command: a thin shell that parses, calls the library, renders once."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from doctor import __version__
from doctor.commands.common import EPILOG
from doctor.errors import EXIT_INTERRUPTED, EXIT_USAGE, DoctorError

# Subcommand modules under doctor/commands/, in --help order.
COMMANDS = ("check", "fix", "report")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so --json can still print one document."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise DoctorError(f"{message} (see {self.prog} --help)")


def _command_modules() -> dict[str, object]:
    return {name: importlib.import_module(f"doctor.commands.{name}") for name in COMMANDS}


def build_parser(modules: dict[str, object]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="raydoctor",
        description="Get this machine talking to a Ray cluster.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"raydoctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in modules.values():
        module.add_parser(sub)  # type: ignore[attr-defined]
    return parser


def print_error(exc: DoctorError, as_json: bool, command: str) -> int:
    from doctor.secrets import scrub

    if as_json:
        from doctor.app import error_report
        from doctor.render import render_json

        print(render_json(error_report(command, exc, 0.0)))
    else:
        print(f"raydoctor: error: {scrub(str(exc))}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):  # fast path: no subcommand imports
        print(f"raydoctor {__version__}")
        return 0
    as_json = "--json" in argv
    modules = _command_modules()
    parser = build_parser(modules)
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        return modules[args.command].run(args)  # type: ignore[attr-defined]
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
