"""Render a Report once: rich text on a terminal, plain text when piped, or JSON.

The JSON document is the source of truth; the text view is built from the
same data. Every byte written passes through ``secrets.scrub``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from doctor.model import Report, Result, Status

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


def render_json(report: Report) -> str:
    from doctor.secrets import scrub

    return scrub(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(report: Report) -> str:
    c = report.counts()
    parts = [f"{c['ok']} ok"]
    if c["warn"]:
        parts.append(_plural(c["warn"], "warning"))
    if c["fail"]:
        parts.append(_plural(c["fail"], "failure"))
    if c["error"]:
        parts.append(_plural(c["error"], "error"))
    if c["skip"]:
        parts.append(f"{c['skip']} skipped")
    verdict = (
        "No problems found"
        if report.exit_code == 0 and not c["warn"]
        else ("Works, with warnings" if report.exit_code == 0 else "Problems found")
    )
    return f"{verdict}: {', '.join(parts)} in {report.duration_s:.2f} s"


def _result_lines(res: Result, verbose: bool) -> list[tuple[str, str]]:
    """(style, text) pairs for one result."""
    timing = f"  ({res.duration_s * 1000:.0f} ms)" if verbose else ""
    lines = [(STYLES[res.status], f"[{res.status.marker}] {res.title}: {res.summary}{timing}")]
    show_details = verbose or res.status in {Status.FAIL, Status.ERROR}
    if show_details:
        lines += [("dim", f"    {d}") for d in res.details]
    if res.remediation and res.status is not Status.OK:
        lines.append(("", f"    fix: {res.remediation.text}"))
        lines += [("bold", f"      $ {cmd}") for cmd in res.remediation.commands]
    return lines


def text_lines(report: Report, verbose: bool = False) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if report.error:
        return [("red", f"raydoctor: error: {report.error}")]
    seen: list[str] = []
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
    from doctor.secrets import scrub

    stream = stream or sys.stdout
    lines = [(style, scrub(text)) for style, text in text_lines(report, verbose)]
    if not use_color(stream):
        stream.write("\n".join(text for _, text in lines) + "\n")
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True)
    for style, text in lines:
        console.print(Text(text, style=style or ""))
