"""What checks return and what gets rendered: plain data, no printing.

A check returns findings (``Result``) built with ``finding``; the runner stamps
the check's identity (id, category, title) onto them and collects them into a
``Report``, the one document type of every command.
The JSON form (``Report.to_dict``) is the source of truth: the text view is
rendered from the same data. ``SCHEMA`` changes whenever a key changes
meaning or disappears.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Union

SCHEMA = "raydoctor.report/1"


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"  # the check itself crashed or timed out

    @property
    def marker(self) -> str:
        return {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-", "error": "✗"}[self.value]


class Op(str, enum.Enum):
    """What a structured edit does at its key (``Change``): what ``fix --cluster`` applies."""

    SET = "set"  # the key gets ``value`` (missing parent mappings are created)
    DELETE = "delete"  # the key is removed
    APPEND = "append"  # ``value`` is added to the list at the key (created when missing)
    RAY_START = "ray_start"  # in the `ray start` the command at the key runs: drop ``remove``, add ``add``


Key = tuple[Union[str, int], ...]  # a mapping key or a list index, outermost first


@dataclass(frozen=True)
class Change:
    """An edit as data: where (the key path into the parsed file) and what, never a display string.

    ``value`` is YAML-typed data (a str, int, list...). A ``RAY_START`` change names the options to
    drop (``remove``, every occurrence) and the words to add (``add``), right after ``ray start``
    (after ``--head``) when ``first``, else after its last option; the rest of the command is kept.
    """

    op: Op
    key: Key
    value: Any = field(default=None, hash=False)
    remove: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    first: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op.value,
            "key": list(self.key),
            "value": self.value,
            "remove": list(self.remove),
            "add": list(self.add),
            "first": self.first,
        }


@dataclass(frozen=True)
class Edit:
    """A change to a file, shown as the file, the place in it and the new value (never as a command).

    ``place``/``value`` are for display only; ``change`` is the same edit as data, set where the
    edit can be applied as is (``raydoctor fix --cluster`` applies only those).
    """

    path: str
    place: str  # e.g. "services.ray-head.command" or "line 3"
    value: str
    note: str = ""
    change: Change | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "place": self.place,
            "value": self.value,
            "note": self.note,
            "change": self.change.to_dict() if self.change else None,
        }


@dataclass(frozen=True)
class Remediation:
    """How to fix a finding: a sentence, the commands that do it, and the file edits it needs."""

    text: str
    commands: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "commands": list(self.commands), "edits": [e.to_dict() for e in self.edits]}


@dataclass(frozen=True)
class Fact:
    """A value and where it came from (``"dashboard"``, ``"image tag"``, ...)."""

    value: Any
    source: str
    exact: bool = True  # False for a guess such as a table of known image patches

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "exact": self.exact}

    def describe(self) -> str:
        """``3.12.9 (dashboard)``, or ``3.12.9 (a guess: table of known builds …)``: a guess says so."""
        return f"{self.value} ({self.source})" if self.exact else f"{self.value} (a guess: {self.source})"


@dataclass
class Result:
    """One finding of a check.

    ``code`` is stable across releases (``versions.python.minor_mismatch``): ``fix`` and
    scripts key on it, never on ``summary``. ``id``, ``category`` and ``title`` are the
    check's identity, stamped by the runner (see ``doctor.runner``).
    """

    id: str
    category: str
    title: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    remediation: Remediation | None = None
    duration_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "category": self.category,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "details": list(self.details),
            "remediation": self.remediation.to_dict() if self.remediation else None,
            "duration_s": round(self.duration_s, 4),
            "data": self.data,
        }


def finding(
    status: Status,
    summary: str,
    *,
    code: str = "",
    details: list[str] | None = None,
    fix: Remediation | None = None,
    data: dict[str, Any] | None = None,
    check_id: str = "",
    title: str = "",
) -> Result:
    """What a check returns. Identity is left to the runner; ``check_id``/``title`` only for a
    check that returns findings of several ids (the lint rules). ``code`` defaults to
    ``<id>.<status>`` when the runner stamps it."""
    return Result(check_id, "", title, status, summary, details or [], fix, 0.0, data or {}, code)


@dataclass
class Report:
    """Everything one run of a command found: the one document type of ``check``, ``report`` and ``fix``.

    A command's own payload goes in ``extra`` (merged into the JSON document). ``error`` is set when
    the command could not run; the exit code then is ``error_exit_code`` (2 unless said otherwise,
    130 for Ctrl-C), else 1 when any finding failed, else 0. ``secret_values`` are the values this
    run must never show (the token, passwords from the compose file, ...): the one masking pass
    (``doctor.render.mask.mask_report``) reads them; they are never serialised nor shown by ``repr``.
    """

    command: str
    results: list[Result] = field(default_factory=list)
    target: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    local: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_exit_code: int | None = None
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    secret_values: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    # Values interpolated from the user's environment (or a .env) into the target's files, by variable
    # name: never serialised; ``--redact`` replaces each with ``<env-NAME>``.
    environment_values: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for res in self.results:
            counts[res.status.value] += 1
        return counts

    @property
    def exit_code(self) -> int:
        if self.error_exit_code is not None:
            return self.error_exit_code
        if self.error:
            return 2
        bad = {Status.FAIL, Status.ERROR}
        return 1 if any(r.status in bad for r in self.results) else 0

    def to_dict(self) -> dict[str, Any]:
        from doctor import __version__

        return {
            "schema": SCHEMA,
            "raydoctor_version": __version__,
            "command": self.command,
            "exit_code": self.exit_code,
            "error": self.error,
            "target": self.target,
            "head": self.head,
            "local": self.local,
            "results": [r.to_dict() for r in self.results],
            "summary": self.counts(),
            "duration_s": round(self.duration_s, 4),
            **self.extra,
        }
