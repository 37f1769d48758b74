"""The live spinner on stderr while ``check`` runs (terminal only; never in pipes or with ``--json``).

Not to be confused with ``doctor.fix.progress``, the display of fix's build steps.
"""

from __future__ import annotations

import threading
from typing import IO, Any


class Spinner:
    """``with Spinner(sys.stderr) as s: run_check(..., on_start=s.start, on_done=s.done)``."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console

        self._console = Console(file=stream, highlight=False)
        self._status: Any = None  # rich.status.Status once entered
        self._total = 0
        self._done = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Spinner:
        self._status = self._console.status("Checking…", spinner="dots")
        self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)

    def start(self, total: int) -> None:
        self._total = total

    def done(self, check: object, results: list[Any]) -> None:
        with self._lock:
            self._done += 1
            if self._status is not None:
                self._status.update(f"Checking… {self._done}/{self._total} ({getattr(check, 'title', '')})")
