"""A Report as the one JSON document (``Report.to_dict``): the source of truth the text is built from.

The report reaching here is already masked (``doctor.render.mask``); this module only serialises.
"""

from __future__ import annotations

import json

from doctor.model import Report


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str)
