"""``packages.resolution``: can the pins exist for the head's Python; ``packages.skew``: the packages
whose difference from the cluster breaks object exchange.

Both only judge facts: the resolution (``doctor.facts.resolution``, through
``CheckContext.resolution()``) and the head's packages (``--deep``'s probe, or ``--head-packages
FILE``) against the local interpreter's, with the table in ``doctor.package_skew``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from doctor.codes import RESOLUTION_UNSATISFIABLE
from doctor.facts.cluster import JOB_LIMIT_S
from doctor.facts.resolution import BUDGET_S, changes
from doctor.model import Remediation, Result, Status, finding
from doctor.package_skew import judge, matched_pins
from doctor.runner import Check

if TYPE_CHECKING:
    from doctor.context import CheckContext

from doctor.rules import GUESSED_PATCH

UNSATISFIABLE = RESOLUTION_UNSATISFIABLE
SOURCE_ONLY = "packages.resolution.source_only"
UNKNOWN_PACKAGE = "packages.resolution.unknown_package"
SKEW_BREAKS = "packages.skew.breaks"


def judge_resolution(ctx: CheckContext) -> Result:
    if ctx.requirements is None:
        return finding(Status.SKIP, "no requirements file", code="packages.resolution.no_file")
    res = ctx.resolution()
    where = f"Python {res.python} on Linux {res.platform}" + (f" with Ray {res.ray}" if res.ray else "")
    head_python = ctx.head().python
    if head_python is not None and not head_python.exact and res.python == head_python.value:
        where += f" ({res.python} is {GUESSED_PATCH})"
    data = res.to_dict()
    notes = [f"not resolved (built from the checkout or a URL): {item}" for item in res.left_out]
    notes += ["from the cache (no uv call)"] if res.cached else [f"{res.uv_calls} uv call(s), {res.duration_s:.1f} s"]
    if res.skipped:
        return finding(Status.SKIP, res.skipped, code="packages.resolution.skipped", details=notes, data=data)
    name = ctx.requirements.path.name
    failing = res.failing
    if failing:
        lines = [
            f"{u.requirement}: {u.why}" + (f"; nearest that fits: {u.nearest}" if u.nearest else "") for u in failing
        ]
        return finding(
            Status.FAIL,
            f"{len(failing)} pin(s) of {name} cannot be installed for {where}: " + "; ".join(lines[:3]),
            code=UNSATISFIABLE,
            details=lines + list(res.conflict) + notes,
            data=data,
            fix=Remediation(
                f"Change these pins in {name} (raydoctor fix will not build until they fit): "
                + "; ".join(changes(failing) or ["see uv's words above"]),
            ),
        )
    if res.source_only:
        lines = [f"{u.requirement}: {u.why}" for u in res.source_only]
        return finding(
            Status.WARN,
            f"{len(lines)} pin(s) of {name} for {where}: " + "; ".join(lines[:3]),
            code=SOURCE_ONLY if all(u.reason == "source_only" for u in res.source_only) else UNKNOWN_PACKAGE,
            details=lines + notes,
            data=data,
        )
    return finding(
        Status.OK,
        f"every pin of {name} has wheels for {where} ({len(res.resolved)} packages resolved)",
        code="packages.resolution.ok",
        details=notes,
        data=data,
    )


def judge_skew(ctx: CheckContext) -> Result:
    known = ctx.head_packages()
    if known is None:
        return finding(
            Status.SKIP,
            "the cluster's packages are unknown: run with --deep, or --head-packages FILE (see raydoctor lock), "
            "or have the head's image on a local Docker engine",
            code="packages.skew.unknown",
        )
    head, source = known.packages, known.source
    local = ctx.local_or_none()
    if local is None:
        return finding(Status.SKIP, "the local interpreter could not be inspected", code="packages.skew.no_local")
    skews = judge(local.distributions, head)
    breaking = [s for s in skews if s.breaks]
    table = [s for s in skews if s.rule is not None and not s.breaks]
    others = [s for s in skews if s.rule is None]
    details = [s.describe() + (f" [{s.rule.why}]" if s.rule else "") for s in breaking + table]
    if others:
        details.append(f"{len(others)} other package(s) differ; none known to break exchange (see deep.local)")
    data = {
        "source": source,
        "differences": [
            {"name": s.name, "local": s.local, "head": s.head, "breaks": s.breaks, "in_table": s.rule is not None}
            for s in skews
        ],
    }
    if breaking:
        pins = " ".join(str(p) for p in matched_pins(head, only={s.name for s in breaking}))  # a command line
        return finding(
            Status.FAIL,
            "; ".join(s.describe() for s in breaking[:2])
            + (f"; and {len(breaking) - 2} more" if len(breaking) > 2 else ""),
            code=SKEW_BREAKS,
            details=details,
            data=data,
            fix=Remediation(
                f"Use the cluster's versions here ({source}): raydoctor fix --match-head pins them in the env it builds.",
                (f"{local.executable} -m pip install {pins}",) if pins else (),
            ),
        )
    if table:
        return finding(
            Status.WARN if any(s.rule and s.rule.level != "none" for s in table) else Status.OK,
            "differences that do not break object exchange: " + "; ".join(s.describe() for s in table[:3]),
            code="packages.skew.harmless",
            details=details,
            data=data,
        )
    return finding(
        Status.OK,
        f"no package that breaks object exchange differs from the cluster ({source})",
        code="packages.skew.same",
        details=details,
        data=data,
    )


def checks_for(ctx: CheckContext) -> list[Check]:
    checks = []
    if ctx.requirements is not None:
        # head.source may take its 15 s before uv's own budget starts.
        checks.append(
            Check("packages.resolution", "packages", "Pins for the head's Python", judge_resolution, BUDGET_S + 25)
        )
    checks.append(
        Check("packages.skew", "packages", "Packages that must match the cluster", judge_skew, timeout=JOB_LIMIT_S + 20)
    )
    return checks
