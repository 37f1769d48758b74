"""One masking pass over a Report, before any renderer sees it.

Every command builds a ``Report``; the command layer (``doctor.commands.common.emit``)
calls ``mask_report`` once and hands only the masked copy to the text, JSON or
Markdown renderer. Nothing is process-global: the secrets of one run are the
report's own ``secret_values`` (the token, values the compose file, cluster file
and requirements file marked secret) plus whatever the caller adds for that run,
so two runs never share what they hide.

What is masked, in every string of the report (summaries, details, remedies and
their edits, data, target, head, local, extra, the error):

- each known secret value, longest first;
- the value of a flag whose name looks secret (``--*password*``, ``--*token*``,
  ``--*secret*``, ``--*key*``), in both ``--flag=value`` and ``--flag value`` forms;
- a URL's password (``scheme://user:pass@`` becomes ``scheme://user:***@``);
- ``Bearer <token>`` (an ``Authorization`` header);
- ``name=value`` / ``name: value`` pairs whose name looks secret (``REDIS_PASSWORD=…``).

The same pass strips C0/C1 control characters (terminal escape sequences from a
hostile dashboard, say) from every string: the last line of defence before a
terminal (tab and newline stay).
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import PurePath
from typing import Any, Iterable, Mapping

from doctor.masking import MASK, mask_ordered, mask_text, ordered_secrets, secret_env_values
from doctor.model import Edit, Remediation, Report, Result
from doctor.text import sanitize

__all__ = ["MASK", "mask_report", "mask_text", "sanitize", "secret_env_values"]


def mask_report(report: Report, *, secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Report:
    """A copy of ``report`` with every string masked and sanitised; the original is left as it was.

    ``secrets`` adds values for this run (the token the command layer read); ``environ`` adds
    the values of its secret-looking variables. ``report.secret_values`` always counts.
    """
    ordered = ordered_secrets([*report.secret_values, *secrets, *secret_env_values(environ)])
    walk = _Walker(ordered)
    return dataclasses.replace(
        report,
        command=walk(report.command),
        results=[walk.result(r) for r in report.results],
        target=walk(report.target),
        head=walk(report.head),
        local=walk(report.local),
        error=walk(report.error),
        extra=walk(report.extra),
    )


class _Walker:
    """Rebuild a value with every string in it masked: dicts (keys too), sequences, dataclasses."""

    def __init__(self, ordered: list[str]) -> None:
        self.ordered = ordered

    def result(self, res: Result) -> Result:
        return dataclasses.replace(
            res,
            id=self(res.id),
            category=self(res.category),
            title=self(res.title),
            summary=self(res.summary),
            details=[self(d) for d in res.details],
            remediation=self.remediation(res.remediation),
            data=self(res.data),
            code=self(res.code),
        )

    def remediation(self, fix: Remediation | None) -> Remediation | None:
        if fix is None:
            return None
        return Remediation(
            self(fix.text),
            tuple(self(c) for c in fix.commands),
            tuple(self.edit(e) for e in fix.edits),
        )

    def edit(self, edit: Edit) -> Edit:
        """Every string of an edit masked, its structured ``change`` included (its op kept)."""
        change = edit.change
        if change is not None:
            change = dataclasses.replace(
                change,
                key=tuple(self(k) for k in change.key),
                value=self(change.value),
                remove=tuple(self(r) for r in change.remove),
                add=tuple(self(a) for a in change.add),
            )
        return Edit(self(edit.path), self(edit.place), self(edit.value), self(edit.note), change)

    def __call__(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return mask_ordered(value, self.ordered)
        if value is None or isinstance(value, (bool, int, float, enum.Enum)):
            return value
        if depth > 50:  # nothing raydoctor builds nests this deep; never recurse without bound
            return MASK
        if isinstance(value, dict):
            return {self(k, depth + 1): self(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self(v, depth + 1) for v in value]
            return items if isinstance(value, list) else type(value)(items)
        if isinstance(value, PurePath):
            return type(value)(mask_ordered(str(value), self.ordered))
        if isinstance(value, Result):
            return self.result(value)
        if isinstance(value, Remediation):
            return self.remediation(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {f.name: self(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value) if f.init}
            try:
                return dataclasses.replace(value, **changes)
            except (TypeError, ValueError):
                pass
        # Anything else is shown through str() (JSON's default=str): mask that form.
        return mask_ordered(str(value), self.ordered)
