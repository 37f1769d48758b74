"""The live display of fix's steps (conda, venv, install, verify), each with its elapsed time.

Why three kinds: on a terminal a rich display that ticks while uv or pip
work (a build can take a minute, and silence looks like a hang); in a pipe
or with ``NO_COLOR`` plain lines a log can keep; with ``--json`` nothing,
so that stdout stays one document. All of it goes to stderr. With ``-v``
the installer's own output streams through ``output``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from doctor.masking import mask_text as scrub

MARKS = {"ok": "✓", "fail": "✗", "skip": "-", "interrupted": "✗"}


class Steps:
    """Silent base: the interface, and what ``--json`` uses."""

    def begin(self, name: str, text: str) -> None:
        """A step starts (one at a time)."""

    def end(self, status: str, summary: str = "", details: list[str] | None = None) -> None:
        """The current step ends: status ``ok``, ``fail``, ``skip`` or ``interrupted``."""

    def output(self, line: str) -> None:
        """A line of the installer's own output (only passed with ``-v``)."""

    def note(self, text: str) -> None:
        """A warning or a remark between steps."""

    @contextmanager
    def waiting(self, text: str) -> Iterator[None]:
        """A transient "busy" indicator for work that is not a step (reading the cluster)."""
        yield

    def close(self) -> None:
        """Stop any live display (idempotent)."""

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainSteps(Steps):
    """One line when a step starts and one when it ends; for pipes, logs and ``NO_COLOR``."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._name: str | None = None
        self._started = 0.0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(scrub(text) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def begin(self, name: str, text: str) -> None:
        self._name, self._started = name, time.perf_counter()
        self._write(f"→ {name}: {text}")

    def end(self, status: str, summary: str = "", details: list[str] | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        tail = f": {summary}" if summary else ""
        self._write(f"{MARKS.get(status, '?')} {self._name} ({elapsed:.1f} s){tail}")
        for line in details or []:
            self._write(f"    {line}")
        self._name = None

    def output(self, line: str) -> None:
        self._write(f"    | {line}")

    def note(self, text: str) -> None:
        self._write(f"! {text}")


class RichSteps(Steps):
    """rich's live progress: a spinner and a ticking clock per step, ✓/✗ when done."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn
        from rich.table import Column
        from rich.text import Text

        class Mark(ProgressColumn):
            """A spinner while the step runs, then its outcome."""

            def __init__(self, table_column: Any = None) -> None:
                super().__init__(table_column=table_column)
                self.spinner = SpinnerColumn("dots")

            def render(self, task: Any) -> Any:
                state = task.fields.get("state", "run")
                if state == "run":
                    return self.spinner.render(task)
                style = {"ok": "green", "skip": "dim"}.get(state, "red")
                return Text(MARKS.get(state, "?"), style=style)

        class Elapsed(ProgressColumn):
            """Seconds with a tenth, frozen when the step ends."""

            max_refresh = 0.1

            def render(self, task: Any) -> Any:
                return Text(f"{task.elapsed or 0.0:6.1f} s", style="cyan")

        self._text = Text
        self.console = Console(file=stream or sys.stderr, highlight=False)
        # Fixed widths for mark, step and clock; the description takes what is left and is cut, never wrapped.
        self.progress = Progress(
            Mark(table_column=Column(width=2, no_wrap=True)),
            TextColumn("[bold]{task.fields[step]}", markup=True, table_column=Column(width=11, no_wrap=True)),
            Elapsed(table_column=Column(width=8, no_wrap=True, justify="right")),
            TextColumn(
                "{task.description}", markup=False, table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")
            ),
            console=self.console,
            refresh_per_second=10,
            transient=False,
            expand=True,
        )
        self._task: Any = None
        self._live = False
        self._status: Any = None

    def _start(self) -> None:
        if not self._live:
            self.progress.start()
            self._live = True

    def begin(self, name: str, text: str) -> None:
        self._start()
        self._task = self.progress.add_task(scrub(text), step=name, state="run", total=None)

    def end(self, status: str, summary: str = "", details: list[str] | None = None) -> None:
        if self._task is None:
            return
        fields: dict[str, Any] = {"state": status}
        if summary:
            fields["description"] = scrub(summary)
        self.progress.update(self._task, total=1, completed=1, **fields)
        self.progress.stop_task(self._task)
        for line in details or []:
            self.progress.console.print(self._text(f"    {scrub(line)}", style="dim"))
        self._task = None

    def output(self, line: str) -> None:
        self.progress.console.print(self._text(f"    {scrub(line)}", style="dim"), soft_wrap=True)

    def note(self, text: str) -> None:
        self.progress.console.print(self._text(f"! {scrub(text)}", style="yellow"))

    @contextmanager
    def waiting(self, text: str) -> Iterator[None]:
        with self.console.status(text, spinner="dots"):
            yield

    def close(self) -> None:
        if self._live:
            self.progress.refresh()
            self.progress.stop()
            self._live = False


def make_steps(*, json_output: bool, stream: IO[str] | None = None) -> Steps:
    """Nothing for --json, rich on a colour terminal, plain lines otherwise."""
    from doctor.render import use_color

    stream = stream or sys.stderr
    if json_output:
        return Steps()
    return RichSteps(stream) if use_color(stream) else PlainSteps(stream)
