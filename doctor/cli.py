"""The ``raydoctor`` command: a thin shell that parses, calls the library, renders once.

Exit codes, for every command: 0 no failures (warnings allowed), 1 at least one failure,
2 the command could not run (bad arguments or input), 130 interrupted. A closed pipe on
stdout (``raydoctor check --json | head -1``) ends the output, never the command: no
traceback, and the exit code stays the command's own.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from doctor import __version__
from doctor.commands.common import EPILOG, emit, guarded_stdout, write_stream
from doctor.errors import EXIT_INTERRUPTED, EXIT_USAGE, DoctorError
from doctor.model import Report

# Subcommand modules under doctor/commands/, in --help order.
COMMANDS = ("check", "fix", "report", "run", "lock", "trust")
# Options of the top-level parser itself: never moved behind a subcommand.
_TOP_LEVEL = {"-h", "--help", "--version", "-V"}


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


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def hoist_options(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``raydoctor --json -v check …`` means ``raydoctor check --json -v …``: the subcommand's options
    given before its name move behind it. Anything else before the name is left for argparse to judge
    (an unknown option then gets its usual one-line error, naming the subcommand it was meant for)."""
    subs = _subparsers(parser)
    takes_value = {
        opt
        for sub in subs.values()
        for opt, action in sub._option_string_actions.items()
        if action.nargs != 0 and action.nargs != "?"
    }
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in subs:
            break
        if token in _TOP_LEVEL or token == "--" or not token.startswith("-"):
            return argv  # top-level help/version, or not a known subcommand: argparse says what is wrong
        i += 2 if token in takes_value else 1
    else:
        return argv
    return [argv[i], *argv[:i], *argv[i + 1 :]] if i else argv


def command_name(argv: Sequence[str]) -> str:
    """The subcommand the user meant (after ``hoist_options``), for the error document."""
    return argv[0] if argv and argv[0] in COMMANDS else "raydoctor"


def print_error(exc: DoctorError, as_json: bool, command: str, *, exit_code: int | None = None) -> int:
    """A command that could not run: one line on stderr, or one JSON document with the error."""
    code = exc.exit_code if exit_code is None else exit_code
    report = Report(command, error=str(exc), error_exit_code=code)
    return emit(report, form="json" if as_json else "text")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):  # fast path: no subcommand imports
        print(f"raydoctor {__version__}")
        return 0
    with guarded_stdout():
        return _main(argv)


def _main(argv: list[str]) -> int:
    modules = _command_modules()
    parser = build_parser(modules)
    argv = hoist_options(argv, parser)
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    command = command_name(argv)
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_USAGE
        from doctor.settings import record_given

        record_given(args, parser, argv)  # which options were given, so a settings file fills only the rest
        return int(modules[args.command].run(args))  # type: ignore[attr-defined]
    except DoctorError as exc:
        return print_error(exc, as_json, command)
    except KeyboardInterrupt:
        if as_json:
            return print_error(DoctorError("interrupted"), True, command, exit_code=EXIT_INTERRUPTED)
        write_stream(sys.stderr, "raydoctor: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
