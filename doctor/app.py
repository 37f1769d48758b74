"""The library entry: ``run_check(options) -> Report``. The CLI only renders what it returns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

from doctor.context import CheckContext
from doctor.errors import DoctorError
from doctor.local.docker_cli import remembering as remembering_docker
from doctor.model import Report, Result
from doctor.options import TargetOptions
from doctor.runner import Check, run_checks


def build_checks(ctx: CheckContext) -> list[Check]:
    """Every check that applies to this target, in registration order.

    ``basics`` always applies; each other module decides per target with ``checks_for(ctx)``.
    """
    from doctor.checks import (
        auth_token,
        basics,
        deep,
        environment,
        gpu,
        jobs,
        lint,
        network,
        nodes,
        packages,
        roundtrip,
    )

    checks: list[Check] = list(basics.CHECKS)
    for module in (
        nodes,
        packages,
        network,
        auth_token,
        roundtrip,
        jobs,
        gpu,
        lint,
        deep,
        environment,
    ):
        checks.extend(module.checks_for(ctx))
    return checks


def target_section(ctx: CheckContext) -> dict[str, Any]:
    """The report's ``target``: what was looked at, where its head runs, and whether the token went there."""
    out = ctx.target.to_dict()
    if ctx.token is not None:
        out["token"] = {"from": ctx.token.source, "sent": ctx.target_token is not None, "why_not": ctx.token_withheld}
    return out


def head_section(ctx: CheckContext) -> dict[str, Any]:
    """The report's ``head``: the same facts the checks judged (never gathered again, never waited for)."""
    try:
        head = ctx.head().to_dict()
    except Exception:  # already reported by head.source
        return {}
    counts = ctx.node_counts()
    head["nodes"] = counts["alive"] if counts else None
    head["node_counts"] = counts
    probe = ctx.deep_probe_if_done()
    packages = probe.head_packages if probe is not None else None
    head["packages"] = len(packages) if packages is not None else None
    return head


def error_report(command: str, exc: DoctorError, started: float) -> Report:
    return Report(command, error=str(exc), error_exit_code=exc.exit_code, duration_s=time.perf_counter() - started)


def run_check(
    options: TargetOptions,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_done: Callable[[Check, list[Result]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    verbose: bool = False,
    on_context: Callable[[CheckContext], None] | None = None,
) -> Report:
    """Run every applicable check; a usage problem becomes a Report with ``error`` set (exit 2).

    ``on_context`` receives the run's context, so a caller (``fix``) can read the typed
    facts the checks judged instead of the Report's serialized form.
    """
    with remembering_docker():  # one run's Docker answers, asked once (doctor.local.docker_cli.ask)
        return _run_check(
            options,
            environ=environ,
            cwd=cwd,
            on_done=on_done,
            on_start=on_start,
            verbose=verbose,
            on_context=on_context,
        )


def _run_check(
    options: TargetOptions,
    *,
    environ: Mapping[str, str] | None,
    cwd: Path | None,
    on_done: Callable[[Check, list[Result]], None] | None,
    on_start: Callable[[int], None] | None,
    verbose: bool,
    on_context: Callable[[CheckContext], None] | None,
) -> Report:
    started = time.perf_counter()
    try:
        ctx = CheckContext(options, environ=environ, cwd=cwd, start_probe=True)
    except DoctorError as exc:
        return error_report("check", exc, started)
    if on_context is not None:
        on_context(ctx)
    ctx.prefetch()
    checks = build_checks(ctx)
    if on_start:
        on_start(len(checks))
    try:
        results = run_checks(checks, ctx, on_done=on_done, verbose_errors=verbose)
    finally:
        ctx.cancel_roundtrip()  # a probe started early that no check waited for (none did, or one crashed)
    report = Report("check", results=results, target=target_section(ctx), duration_s=time.perf_counter() - started)
    report.head = head_section(ctx)
    report.secret_values = ctx.secret_values()  # not serialised: what the one masking pass hides
    report.environment_values = ctx.environment_values()  # not serialised: what --redact also hides
    local = ctx.local_or_none()
    report.local = (
        local.to_dict() if local else {"executable": ctx.interpreter_path, "chosen_by": ctx.interpreter_chosen_by}
    )
    if ctx.requirements is not None:
        report.local["requirements"] = str(ctx.requirements.path)
    if options.settings is not None:  # where each option came from (doctor.settings)
        report.extra["settings"] = options.settings
    return report
