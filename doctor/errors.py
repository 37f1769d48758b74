"""The one exception type raydoctor raises on purpose.

Everything that goes wrong for a reason the user can act on is a
``DoctorError``: the CLI prints its message on one line and exits with its
``exit_code``. Anything else escaping is a bug.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # at least one check failed
EXIT_USAGE = 2  # the command could not run: bad arguments, a missing or unparsable file
EXIT_INTERRUPTED = 130


class DoctorError(Exception):
    """A problem with a one-line, actionable message."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # One line, always: messages often embed text from other tools (parsers, conda, pip).
        message = " ".join(str(message).split())
        super().__init__(message)
        self.message = message
        self.hint = " ".join(hint.split()) if hint else hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(DoctorError):
    """Bad arguments or input files: the check could not run (exit 2)."""


class FixError(DoctorError):
    """``fix`` could not finish; whatever it created has been removed (exit 1)."""

    exit_code = EXIT_FINDINGS
