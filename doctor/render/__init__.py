"""Rendering a Report, once, after one masking pass.

- ``mask.py``: ``mask_report`` masks secrets and strips control characters from every string of a
  report (the command layer calls it once, before any renderer);
- ``text.py``: the terminal view (``render_text``, ``text_lines``, ``summary_line``);
- ``json.py``: the JSON document (``render_json``);
- ``markdown.py``: the Markdown of ``raydoctor report`` (``render_markdown``, ``Redactor``);
- ``live.py``: the spinner on stderr while checks run.

The names below are re-exported for code that imports them from ``doctor.render``.
"""

from __future__ import annotations

from doctor.render.json import render_json
from doctor.render.mask import mask_report, mask_text, sanitize
from doctor.render.text import render_text, summary_line, text_lines, use_color, write_lines

__all__ = [
    "mask_report",
    "mask_text",
    "render_json",
    "render_text",
    "sanitize",
    "summary_line",
    "text_lines",
    "use_color",
    "write_lines",
]
