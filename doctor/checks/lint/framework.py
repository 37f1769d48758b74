"""One lint framework for every way of starting a cluster.

A rule is written once against the common description of a cluster
(``doctor.head.cluster_files.ClusterSpec``: the head and its worker groups,
each with its image, its `ray start` options as Ray will see them, the GPUs
it asks the platform for...) and judges every format where it makes sense:
a Docker Compose file, a ``ray up`` config, a KubeRay RayCluster/RayJob/
RayService, values for KubeRay's Helm chart. Rules about Docker Compose
alone (shared memory, published ports, networks, limits) say so with
``families={"compose"}``.

A rule returns ``Item``s (what it found, each with a stable ``cause``) and
the summary for when all is well; ``lint`` combines them into exactly one
finding per rule, so a report always shows every rule that was applied. The
finding's id keeps the family's historical name (``compose.gpu_reservation``,
``cluster.gpu``), its code is ``<id>.<cause>`` of the worst item.

A fix is a sentence and the file edits it needs (``doctor.model.Edit``: the
file, the place in it, the new value), never a command to paste. An edit a
compose rule can state as data carries a ``doctor.model.Change`` (the key path,
the operation, the YAML value): what ``raydoctor fix --cluster`` applies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from doctor.checks.lint.routes import HostRoute, host_routes
from doctor.errors import UsageError
from doctor.head.cluster_files import ClusterSpec, NodeGroup
from doctor.model import Change, Edit, Remediation, Result, Status, finding

__all__ = ["Item", "LintContext", "Rule", "family_of", "lint"]

_SEVERITY = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


def family_of(spec: ClusterSpec) -> str:
    """``compose`` for a Docker Compose file, ``cluster`` for every other cluster file."""
    return "compose" if spec.format == "compose" else "cluster"


@dataclass
class Item:
    """One thing a rule found: a status, one line, why, and how to fix it (text and edits)."""

    status: Status
    summary: str
    details: tuple[str, ...] = ()
    fix: str = ""
    edits: tuple[Edit, ...] = ()
    cause: str = ""  # the last part of the finding's code, e.g. "missing" in compose.dashboard_host.missing


@dataclass
class LintContext:
    """What a rule may look at: the file, seen the same way whatever its format, and this machine."""

    spec: ClusterSpec
    routes: Callable[[], Iterable[HostRoute]]
    cpu_count: int | None
    cpu_source: str = "this machine's"  # whose CPUs cpu_count counts: "the Docker engine's" where it answered

    @property
    def path(self) -> str:
        return str(self.spec.path)

    @property
    def family(self) -> str:
        return family_of(self.spec)

    @property
    def project(self) -> Any:
        """The ``ComposeProject`` of a compose file (compose-only rules)."""
        return self.spec.compose

    def edit(self, place: str, value: str, note: str = "", change: Change | None = None) -> Edit:
        """An edit shown as ``place``/``value``; ``change`` is the same edit as data, kept for a
        compose file only (what ``fix --cluster`` applies: its keys are compose keys)."""
        return Edit(self.path, place, value, note, change if self.family == "compose" else None)

    def ray_groups(self) -> list[NodeGroup]:
        """Groups that run `ray start` (every group of a compose file does)."""
        return [g for g in self.spec.groups if g.ray_start is not None]


Judge = Callable[[LintContext], "tuple[list[Item], str]"]


@dataclass(frozen=True)
class Rule:
    """A rule, written once; ``ids`` names it per family and says where it applies."""

    ids: dict[str, str]  # family ("compose" | "cluster") -> check id
    title: str
    judge: Judge

    def applies(self, family: str) -> bool:
        return family in self.ids


def lint(
    spec: ClusterSpec,
    rules: Sequence[Rule],
    *,
    routes: Callable[[], Iterable[HostRoute]] | None = None,
    cpu_count: int | None = None,
    cpu_source: str | None = None,
) -> list[Result]:
    """Apply every rule that fits the file's family: one finding each, in the order of ``rules``.

    ``routes`` gives this machine's networks (default ``host_routes``);
    ``cpu_count`` the CPUs Docker can hand out (default ``os.cpu_count()``), ``cpu_source`` whose they are.
    """
    count = cpu_count if cpu_count is not None else os.cpu_count()
    ctx = LintContext(spec, routes or host_routes, count, cpu_source or "this machine's")
    family = ctx.family
    results: list[Result] = []
    for rule in rules:
        if not rule.applies(family):
            continue
        rule_id = rule.ids[family]
        try:
            items, ok_summary = rule.judge(ctx)
        except (UsageError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            res = finding(
                Status.ERROR,
                f"could not apply the rule: {' '.join(str(exc).split())}",
                code=f"{rule_id}.could_not_apply",
                check_id=rule_id,
                title=rule.title,
            )
        else:
            res = combine(rule_id, rule.title, items, ok_summary)
        res.category = family
        results.append(res)
    return results


def combine(rule_id: str, title: str, items: list[Item], ok_summary: str) -> Result:
    """One finding of a rule's items: the worst status, every problem named once, fixes merged."""
    bad = [f for f in items if f.status != Status.OK]
    if not bad:
        notes = [d for f in items for d in (f.summary, *f.details)]
        return finding(Status.OK, ok_summary, code=f"{rule_id}.ok", details=notes, check_id=rule_id, title=title)
    if all(f.status == Status.SKIP for f in bad):
        cause = bad[0].cause or "skipped"
        return finding(
            Status.SKIP,
            "; ".join(f.summary for f in bad),
            code=f"{rule_id}.{cause}",
            check_id=rule_id,
            title=title,
        )
    bad = sorted((f for f in bad if f.status != Status.SKIP), key=lambda f: -_SEVERITY[f.status])
    worst, rest = bad[0], bad[1:]
    # Each item once: the worst in the summary (with the count of the rest) and its explanation
    # first in the details; every other item as a detail line of its own, with its explanation
    # under it unless an earlier item already gave the same one.
    details = list(worst.details)
    explained = set(worst.details)
    for f in rest:
        details.append(f"{f.status.value}: {f.summary}")
        details.extend(f"  {d}" for d in f.details if d not in explained)
        explained.update(f.details)
    texts = list(dict.fromkeys(f.fix for f in bad if f.fix))
    edits = list(dict.fromkeys(e for f in bad for e in f.edits))
    fix = Remediation(" ".join(texts), (), tuple(edits)) if texts or edits else None
    summary = worst.summary + (f" (and {len(rest)} more)" if rest else "")
    return finding(
        worst.status,
        summary,
        code=f"{rule_id}.{worst.cause or worst.status.value}",
        details=details,
        fix=fix,
        data={"findings": len(bad), "causes": list(dict.fromkeys(f.cause for f in bad if f.cause))},
        check_id=rule_id,
        title=title,
    )
