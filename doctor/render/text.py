"""A Report as text: rich on a colour terminal, plain when piped.

The text is built from the same data as the JSON document. The report reaching
here is already masked and sanitised (``doctor.render.mask``, called once by the
command layer); this module only lays it out.
"""

from __future__ import annotations

import os
import sys
from typing import IO

from doctor.model import Edit, Report, Result, Status

CATEGORY_TITLES = {
    "head": "Head",
    "local": "Local",
    "versions": "Versions",
    "packages": "Packages",
    "network": "Network",
    "roundtrip": "Round trip",
    "gpu": "GPU",
    "compose": "Compose file",
    "cluster": "Cluster file",
    "deep": "Deep (probe jobs)",
}
STYLES = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.ERROR: "red", Status.SKIP: "dim"}


def use_color(stream: IO[str]) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(report: Report) -> str:
    """The closing line, leading with what matters: "3 failures, 4 warnings · 12 ok, 8 skipped (2.31 s)"."""
    c = report.counts()
    problems = [
        _plural(c[key], word) for key, word in (("fail", "failure"), ("error", "error"), ("warn", "warning")) if c[key]
    ]
    rest = [f"{c['ok']} ok"] + ([f"{c['skip']} skipped"] if c["skip"] else [])
    lead = ", ".join(problems) if problems else "No problems found"
    return f"{lead} · {', '.join(rest)} ({report.duration_s:.2f} s)"


def _result_lines(res: Result, verbose: bool) -> list[tuple[str, str]]:
    """(style, text) pairs for one result."""
    timing = f"  ({res.duration_s * 1000:.0f} ms)" if verbose else ""
    lines = [(STYLES[res.status], f"[{res.status.marker}] {res.title}: {res.summary}{timing}")]
    show_details = verbose or res.status in {Status.FAIL, Status.ERROR}
    if show_details:
        lines += [("dim", f"    {d}") for d in res.details]
    if res.remediation and res.status is not Status.OK:
        if res.remediation.text:
            lines.append(("", f"    fix: {res.remediation.text}"))
        lines += [("bold", f"      $ {cmd}") for cmd in res.remediation.commands]
        lines += [("bold", f"      {edit_line(edit)}") for edit in res.remediation.edits]
    return lines


def edit_line(edit: Edit) -> str:
    """A file edit as the file, the place in it and the new value; never shown as a command."""
    note = f" ({edit.note})" if edit.note else ""
    return f"edit {edit.path}, {edit.place}: {edit.value}{note}"


def text_lines(report: Report, verbose: bool = False) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if report.error:
        return [("red", f"raydoctor: error: {report.error}")]
    seen: list[str] = []
    if verbose and isinstance(report.extra.get("settings"), dict):  # where each option came from
        from doctor.settings import settings_line

        out += [("", ""), ("dim", settings_line(report.extra["settings"]))]
    for res in report.results:
        if res.category not in seen:
            seen.append(res.category)
            out.append(("", ""))
            out.append(("bold", CATEGORY_TITLES.get(res.category, res.category.title())))
        out.extend(_result_lines(res, verbose))
    out.append(("", ""))
    out.append(("bold", summary_line(report)))
    return out[1:] if out and out[0] == ("", "") else out


def render_text(report: Report, stream: IO[str] | None = None, *, verbose: bool = False) -> None:
    stream = stream or sys.stdout
    write_lines(text_lines(report, verbose), stream)


def write_lines(lines: list[tuple[str, str]], stream: IO[str]) -> None:
    """(style, text) lines: rich on a colour terminal, plain otherwise."""
    if not lines:
        return
    if not use_color(stream):
        stream.write("\n".join(text for _, text in lines) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for style, text in lines:
        console.print(Text(text, style=style or ""))
