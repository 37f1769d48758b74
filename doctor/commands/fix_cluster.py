"""``raydoctor fix --cluster``: fix the cluster's compose file, then restart what changed and check again.

Check gives the edits (the ``doctor.model.Change`` of its compose findings, never their text);
``doctor.fix.cluster_file`` applies them with a round-trip YAML library and proves the result; the diff
is shown and fix asks before writing, as it asks before building (``--yes``; no terminal and no
``--yes`` refuses; ``--dry-run`` shows the diff and writes nothing). Then the services it changed are
recreated where the cluster runs (``doctor.fix.cluster_restart``), fix waits, bounded, until they answer
as Ray again (``doctor.fix.cluster_wait``), and check runs again: the one ``Report`` (command ``"fix"``)
carries the final check's findings and ``outcome.cluster_file``.

The file is one the user named (``--compose``, ``--cluster-file``, or a trusted settings file's key:
an untrusted file's compose path is set aside by ``doctor.settings``), or the default
``compose/cpu-ray-cluster.yaml`` of the current folder; never raydoctor's own shipped copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.errors import DoctorError, UsageError
from doctor.model import Edit, Report, Result, Status

if TYPE_CHECKING:
    from doctor.context import CheckContext
    from doctor.fix.cluster_wait import Waited
    from doctor.secrets import Token
    from doctor.target import HeadAddress

EXIT_DECLINED = 1  # as fix: "you said no"


def _compose_file(path: Path | None, named: bool, cwd: Path) -> Path:
    """The compose file to edit: the target's, if the user named it or it is this folder's default."""
    if path is None:
        raise UsageError(
            "fix --cluster edits a compose file, and the target has none",
            hint="name the cluster's file with --compose FILE",
        )
    from doctor.facts.target import DEFAULT_COMPOSE, editable_compose

    file = Path(path)
    if not editable_compose(file, named, cwd):
        raise UsageError(
            f"{file} is raydoctor's own copy of the tutorial's compose file: fix --cluster edits only a file "
            "you named or the one in this folder",
            hint=f"copy it here as {DEFAULT_COMPOSE} or name your copy with --compose FILE",
        )
    return file


def _edits_for(report: Report, file: Path) -> tuple[list[Edit], list[Result]]:
    """The structured edits of check's compose findings for ``file``, and the findings that have none."""
    edits: list[Edit] = []
    by_hand: list[Result] = []
    want = os.path.abspath(file)
    for res in report.results:
        if res.category != "compose" or res.status in (Status.OK, Status.SKIP):
            continue
        mine = [
            e
            for e in (res.remediation.edits if res.remediation else ())
            if e.change is not None and os.path.abspath(e.path) == want
        ]
        edits.extend(mine)
        if not mine:
            by_hand.append(res)
    return edits, by_hand


def _ask(file: Path, *, yes: bool, as_json: bool) -> bool:
    """fix's question before acting (``doctor.commands.fix.ask_before``), here before writing ``file``."""
    from doctor.commands.fix import ask_before

    return ask_before(f"Write {file} now? [y/N] ", yes=yes, as_json=as_json, what="writing")


def run_cluster(args: argparse.Namespace) -> int:
    from doctor.app import run_check
    from doctor.commands.common import options_from
    from doctor.fix.cluster_file import plan_file, write_plan
    from doctor.fix.cluster_restart import rejoining, restart_changed

    started = time.perf_counter()
    as_json = bool(args.json)
    cwd = Path.cwd()
    outcome: dict[str, Any] = {"action": "cluster_file", "dry_run": bool(args.dry_run)}
    report = Report("fix", extra={"outcome": outcome})
    try:
        options = options_from(args)
        named = options.compose is not None or options.cluster_file is not None
        # What the plan needs is the compose lint: no round trip, no resolution, no probe jobs.
        contexts: list[CheckContext] = []  # the run's CheckContext: the target as a type, not its serialized form
        before = run_check(
            replace(options, roundtrip=False, resolve=False, deep=False, jobs=False),
            cwd=cwd,
            on_context=contexts.append,
        )
        report.secret_values = before.secret_values
        report.environment_values = before.environment_values
        report.target, report.head, report.local = before.target, before.head, before.local
        if before.error:
            raise UsageError(before.error)
        file = _compose_file(contexts[0].target.compose_path if contexts else None, named, cwd)
        edits, by_hand = _edits_for(before, file)
        cluster: dict[str, Any] = {
            "path": str(file),
            "edits": [],
            "already": [],
            "by_hand": [r.code for r in by_hand],
            "diff": "",
            "written": False,
            "restart": None,
        }
        outcome["cluster_file"] = cluster
        if not edits:  # exit 0, as fix with nothing to do; the file is not even read
            outcome["nothing_to_do"] = True
            return _finish(report, as_json, args.verbose, started)
        plan = plan_file(file, edits)
        cluster["edits"] = [e.to_dict() for e in plan.applied]
        cluster["already"] = [e.to_dict() for e in plan.already]
        cluster["diff"] = plan.diff()
        if not plan.changed:  # exit 0, as fix with nothing to do; what is left by hand is in by_hand
            outcome["nothing_to_do"] = True
            return _finish(report, as_json, args.verbose, started)
        if not as_json:
            _show(report)
        if args.dry_run:  # exit 0, as fix --dry-run
            return _finish(report, as_json, args.verbose, started)
        if not _ask(file, yes=args.yes, as_json=as_json):
            outcome["declined"] = True
            report.error = "you answered no at the prompt: nothing was written"
            report.error_exit_code = EXIT_DECLINED
            return _finish(report, as_json, args.verbose, started)
        checked = contexts[0] if contexts else None
        # Where the check read the head, with the token it sent there (read now, while the cluster is as
        # check saw it): the wait after a restart asks the same dashboard. No compose edit moves the
        # head's published dashboard port, so the address holds for the rewritten file.
        address = checked.target.address if checked is not None else None
        token = checked.target_token if checked is not None and address is not None else None
        write_plan(plan)
        cluster["written"] = True
        services = plan.services()
        if plan.touches_networks():
            from doctor.head.compose import load_compose

            services = list(load_compose(file, os.environ).services)
        project = checked.target.compose if checked is not None else None
        head = project.head.name if project is not None else None
        restart = restart_changed(
            file,
            services,
            os.environ,
            docker_cli=checked.docker_cli if checked is not None else None,
            rejoin=rejoining(head, _ray_services(checked), services),
        )
        cluster["restart"] = {**restart.to_dict(), "waited": None}
        if restart.state == "restarted":
            waited = _wait(file, restart.services, _ray_services(checked), address, token, options.timeout, as_json)
            cluster["restart"]["waited"] = waited.to_dict()
        after = run_check(options, cwd=cwd)
        report.results = list(after.results)
        report.target, report.head, report.local = after.target, after.head, after.local
        report.secret_values = before.secret_values | after.secret_values
        if after.error:
            report.error = f"the final check could not run: {after.error}"
            report.error_exit_code = after.exit_code
        elif restart.state == "failed":
            report.error = f"{file} was written, but restarting {', '.join(services)} failed"
            report.error_exit_code = 1
    except DoctorError as exc:
        report.error = str(exc)
        report.error_exit_code = exc.exit_code
    return _finish(report, as_json, args.verbose, started)


def _ray_services(checked: CheckContext | None) -> list[str]:
    """The compose services whose command runs ``ray start`` (each container of them is one Ray node)."""
    project = checked.target.compose if checked is not None else None
    if project is None:
        return []
    return [project.head.name, *(worker.name for worker in project.workers)]


def _wait(
    file: Path,
    services: list[str],
    ray_services: list[str],
    address: HeadAddress | None,
    token: Token | None,
    timeout: float,
    as_json: bool,
) -> Waited:
    """Wait (``doctor.fix.cluster_wait``) until what was recreated answers as Ray again; one progress line
    on stderr in text mode (as fix's steps), nothing with ``--json``: the outcome's ``restart.waited`` says."""
    from doctor.fix.cluster_wait import wait_restarted
    from doctor.fix.progress import make_steps

    names = ", ".join(services)
    with make_steps(json_output=as_json) as steps:
        steps.begin("restart", f"waiting for {names} to answer again…")
        waited = wait_restarted(file, services, ray_services, os.environ, address=address, token=token, timeout=timeout)
        steps.end("ok" if waited.healthy else "fail", waited.last)
    return waited


def _show(report: Report) -> None:
    """The plan before asking: the edits and the diff, masked as the report will be."""
    from doctor.commands.common import run_secrets
    from doctor.render.mask import mask_report
    from doctor.render.text import write_lines

    masked = mask_report(report, secrets=run_secrets(os.environ), environ=os.environ)
    write_lines(plan_lines(masked), sys.stdout)
    sys.stdout.flush()


def plan_lines(report: Report) -> list[tuple[str, str]]:
    from doctor.render.text import edit_line

    cluster: dict[str, Any] = report.extra["outcome"].get("cluster_file") or {}
    lines = [("bold", "Plan (raydoctor fix --cluster)"), ("", f"  file          {cluster.get('path')}")]
    for edit in cluster.get("edits") or []:
        shown = Edit(edit["path"], edit["place"], edit["value"], edit["note"])
        lines.append(("", f"  {edit_line(shown)}"))
    for code in cluster.get("by_hand") or []:
        lines.append(("yellow", f"  by hand       {code}: no edit raydoctor can make (see check)"))
    lines.append(("", ""))
    lines += [(_diff_style(line), line) for line in (cluster.get("diff") or "").splitlines()]
    lines.append(("", ""))
    return lines


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    return "green" if line.startswith("+") else "red" if line.startswith("-") else ""


def outcome_lines(report: Report, verbose: bool) -> list[tuple[str, str]]:
    """After acting (from the masked document, as the JSON shows it)."""
    from doctor.render import text_lines

    outcome: dict[str, Any] = report.extra.get("outcome") or {}
    cluster: dict[str, Any] = outcome.get("cluster_file") or {}
    lines: list[tuple[str, str]] = []
    if outcome.get("declined"):
        return [("", "Nothing written.")]
    if outcome.get("nothing_to_do"):
        lines.append(("green", f"{cluster.get('path')}: nothing to do: check suggests no edit raydoctor can make."))
        lines += [("yellow", f"by hand: {code}") for code in cluster.get("by_hand") or []]
        return lines
    if outcome.get("dry_run"):
        return [("", "--dry-run: nothing was written.")]
    if report.results:
        lines.append(("bold", "Check after the edit"))
        lines += text_lines(replace(report, error=None, error_exit_code=None), verbose)
        lines.append(("", ""))
    count = len(cluster.get("edits") or [])
    lines.append(("bold", f"Wrote {cluster.get('path')} ({count} edit{'s' if count != 1 else ''})."))
    restart = cluster.get("restart") or {}
    state = restart.get("state")
    services = ", ".join(restart.get("services") or [])
    if state == "restarted":
        lines.append(("", f"Recreated {services}: {' '.join(restart.get('command') or [])}"))
        if restart.get("rejoined"):
            rejoined = ", ".join(restart["rejoined"])
            lines.append(("", f"  {rejoined} too, unchanged: a worker of the old head cannot join the new one."))
        lines += _waited_lines(restart.get("waited") or {}, services)
    elif state == "not_running":
        lines.append(("", "The cluster is not running: nothing restarted."))
    elif state == "no_compose":
        lines.append(("yellow", f"No docker compose here to recreate {services}: restart them yourself."))
    elif state == "failed":
        lines.append(("red", f"Recreating {services} failed: {' '.join(restart.get('command') or [])}"))
        lines += [("", f"  {line}") for line in restart.get("output") or []]
    return lines


def _waited_lines(waited: dict[str, Any], services: str) -> list[tuple[str, str]]:
    """One line on how the wait after the restart ended (``doctor.fix.cluster_wait.Waited``)."""
    ended = waited.get("ended")
    seconds, limit = waited.get("seconds", 0), waited.get("limit_s", 0)
    if ended == "answered":
        return [("", f"{services} answered again after {seconds:g} s; the check above ran then.")]
    if ended == "exited":
        names = waited.get("exited") or []
        logs = "; ".join(f"docker logs {name}" for name in names)
        return [
            ("red", f"{', '.join(names)} stopped while fix waited for {services} to answer again ({logs} says why).")
        ]
    if ended == "refused":
        return [("yellow", f"The dashboard answers but does not list its nodes to raydoctor ({waited.get('last')}).")]
    if ended == "timed_out":
        return [
            ("yellow", f"{services} did not answer within {limit:g} s ({waited.get('last')}): see the check above.")
        ]
    return []


def _finish(report: Report, as_json: bool, verbose: bool, started: float) -> int:
    from doctor.commands.common import emit, run_secrets
    from doctor.render.mask import mask_report

    report.duration_s = time.perf_counter() - started
    if as_json:
        return emit(report, form="json")
    cluster = (report.extra.get("outcome") or {}).get("cluster_file") or {}
    if report.error and not cluster.get("written") and not report.extra["outcome"].get("declined"):
        masked = mask_report(report, secrets=run_secrets(os.environ), environ=os.environ)
        print(f"raydoctor: error: {masked.error}", file=sys.stderr)  # one line, as for any usage error
        return masked.exit_code
    return emit(report, form="text", verbose=verbose, lines=outcome_lines)
