"""``raydoctor fix``: build an env that matches the cluster, after showing the plan.

The command is a thin shell over ``doctor.fix.execute.run_fix``: check gives the
facts, ``make_plan`` turns them into a plan, the plan is shown here (and
``--dry-run`` stops), the user confirms here (or ``--yes``), the executor builds,
verifies and exports, and the one ``Report`` (command ``"fix"``) is rendered once:
text on stdout (progress on stderr), or one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from doctor.commands.common import add_target_options, options_from

if TYPE_CHECKING:  # the fix modules load only when fix runs: `raydoctor check` never pays for them
    from doctor.fix.plan import FixOptions, Plan
    from doctor.model import Report

EPILOG = """\
exit codes: 0 the env matches (the final check has no failures), or nothing to do, or --dry-run
            1 fix failed (what it created was removed) or the final check still fails, or you said no
            2 fix could not run (bad arguments, the head's versions unknown, no terminal and no --yes,
              --cluster: a compose file it will not edit safely, nothing written)
            130 interrupted (Ctrl-C; what this run created was removed)
target: --address, else --compose/--image, else $RAY_ADDRESS, else compose/cpu-ray-cluster.yaml
--export never overwrites a file raydoctor did not write (such as a repository's own environment.yml)
unless --force; its own earlier exports are updated."""


def lock_seconds(text: str) -> float:
    """``--lock-timeout``: 0 refuses at once; the upper bound keeps a typo from waiting for days."""
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 86400")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fix",
        help="build a venv that matches the Ray head (its Python, its Ray, your packages)",
        description="Plan, then build: the head's exact Python (an interpreter already here, or conda), "
        "a virtualenv in --env-dir named for what it holds, the requirements file with Ray "
        "pinned to the head's version plus Ray Client's extras; then check again with the "
        "new interpreter. Built in a temporary folder and renamed at the end: a failure or "
        "Ctrl-C leaves nothing behind.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_options(parser)
    g = parser.add_argument_group("fix")
    g.add_argument(
        "--env-dir",
        type=Path,
        default=Path("envs"),
        metavar="DIR",
        help="where the env goes, as DIR/ray<RAY>-py<PYTHON> (default: envs/ here)",
    )
    g.add_argument(
        "--installer",
        choices=("auto", "uv", "pip"),
        default="auto",
        help="auto = uv when installed (much faster), else pip (default: auto)",
    )
    g.add_argument(
        "--no-conda",
        dest="use_conda",
        action="store_false",
        help="never create a conda env for the interpreter; use the interpreters already here",
    )
    g.add_argument(
        "--python-source",
        choices=("auto", "existing", "uv", "conda"),
        default="auto",
        help="where the head's Python comes from: auto = an exact one already here, else uv's managed "
        "Pythons (uv python install X.Y.Z --no-bin; honours UV_PYTHON_INSTALL_DIR, UV_PYTHON_INSTALL_MIRROR, "
        "UV_PYTHON_DOWNLOADS_JSON_URL, UV_OFFLINE), else conda, else the same minor with a warning "
        "(default: auto)",
    )
    g.add_argument("--dry-run", action="store_true", help="print the plan and stop: create nothing")
    g.add_argument(
        "--cluster",
        action="store_true",
        help="fix the cluster's compose file instead: apply check's compose edits (comments and layout kept), "
        "show the diff and ask, then recreate the changed services if the cluster runs, and check again",
    )
    g.add_argument(
        "-y", "--yes", action="store_true", help="do not ask before building (needed when stdin is not a terminal)"
    )
    g.add_argument(
        "--export",
        nargs="?",
        type=Path,
        const=Path("environment.yml"),
        metavar="FILE",
        help="also write a conda environment.yml (python=X.Y.Z, pip, the pip list) "
        "to FILE (default: ./environment.yml)",
    )
    g.add_argument("--force", action="store_true", help="let --export overwrite a file that raydoctor did not write")
    g.add_argument(
        "--rebuild",
        action="store_true",
        help="build again even when the env (or the judged interpreter) already matches",
    )
    g.add_argument(
        "--match-head",
        action="store_true",
        help="pin the packages whose difference breaks object exchange (numpy, pyarrow, pandas, attrs, "
        "pydantic, torch) to the cluster's versions: asks the running cluster with a probe job, or reads "
        "--head-packages FILE; your requirements file is not edited",
    )
    g.add_argument(
        "--constraints",
        type=Path,
        metavar="FILE",
        help="also pin the env to FILE's name==version lines (what `raydoctor lock` writes)",
    )
    g.add_argument(
        "--lock-timeout",
        type=lock_seconds,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for another fix building the same env (0: refuse at once; default 600)",
    )
    g.add_argument(
        "--no-roundtrip", dest="roundtrip", action="store_false", help="skip the ray.init round trip in the final check"
    )
    g.add_argument(
        "--kernel",
        nargs="?",
        const="",
        metavar="NAME",
        help="also register the env as a Jupyter kernel NAME (default: raydoctor-<env name>), with ipykernel, "
        "in Jupyter's user data folder ($JUPYTER_DATA_DIR honoured); run again to update it",
    )
    g.add_argument(
        "--kernel-prefix",
        type=Path,
        metavar="DIR",
        help="register the kernel in DIR/share/jupyter/kernels instead (ipykernel install --prefix)",
    )


def fix_options(args: argparse.Namespace) -> FixOptions:
    from doctor.fix.plan import FixOptions

    target = options_from(args)
    if args.match_head and target.head_packages is None:
        target.deep = True  # the head's packages come from the probe job (doctor.facts.cluster)
    return FixOptions(
        target=target,
        env_dir=args.env_dir,
        installer=args.installer,
        use_conda=args.use_conda,
        python_source=args.python_source,
        export=args.export,
        force=args.force,
        rebuild=args.rebuild,
        dry_run=args.dry_run,
        yes=args.yes,
        verbose=args.verbose,
        lock_timeout=args.lock_timeout,
        kernel=args.kernel if args.kernel is not None or args.kernel_prefix is None else "",
        kernel_prefix=args.kernel_prefix,
        match_head=args.match_head,
        constraints=args.constraints,
    )


# -- rendering -------------------------------------------------------------------------


def plan_lines(plan: Plan) -> list[tuple[str, str]]:
    """The plan as text: what the head runs, what is here, what will be created."""
    from doctor.fix.plan import NOTHING, UP_TO_DATE, shown

    cwd = plan.cwd
    judged = plan.judged
    here = f"{judged.executable or '?'}"
    if judged.chosen_by:
        here += f" ({judged.chosen_by})"
    here += f": Python {judged.python or '?'}, " + (f"Ray {judged.ray}" if judged.ray else "no Ray")
    here += " — matches" if judged.matches else f" — does not match ({'; '.join(judged.reasons)})"
    lines = [
        ("bold", "Plan (raydoctor fix)"),
        ("", f"  cluster       {plan.head.describe()}"),
        ("", f"  judged        {here}"),
    ]
    if plan.head_packages_from:
        lines.append(("", f"  match head    the cluster's packages from {plan.head_packages_from}"))
    if plan.action in (NOTHING, UP_TO_DATE):
        lines.append(("green", f"  nothing to do: {plan.reason}"))
    else:
        assert plan.interpreter is not None and plan.install is not None
        verb = "replace" if plan.action == "rebuild" else "create"
        if plan.action == "rebuild":
            lines.append(("", f"  why           {plan.reason}"))
        lines += [
            ("", f"  interpreter   {plan.interpreter.describe()}"),
            *([("", f"  because       {plan.interpreter.why}")] if plan.interpreter.why else []),
            (
                "",
                f"  env           {verb} {shown(plan.env_path, cwd)}: a virtualenv with pip, built in a "
                f"temporary sibling and renamed when complete",
            ),
            ("", f"  install       {plan.install.describe(cwd)}"),
            (
                "",
                "  verify        raydoctor check with the new interpreter"
                + (" (round trip included when the cluster is up)" if plan.roundtrip else " (no round trip)"),
            ),
        ]
    if plan.export is not None:
        lines.append(("", f"  export        {shown(plan.export, cwd)} (conda's environment.yml)"))
    if plan.kernel is not None:
        lines.append(("", f"  kernel        {plan.kernel.describe(plan.kernel_python)}"))
    lines += [("yellow", f"  warning: {w}") for w in plan.warnings]
    return lines


def outcome_lines(report: Report, plan: Plan | None, verbose: bool) -> list[tuple[str, str]]:
    """After acting: the final check, where the env is, how to activate it; or what was removed.

    Read from the document (``report.extra["outcome"]``), as the JSON shows it.
    """
    from doctor.fix.plan import shown
    from doctor.render import text_lines

    outcome: dict[str, Any] = report.extra.get("outcome") or {}
    steps: list[dict[str, Any]] = report.extra.get("steps") or []
    env: dict[str, Any] | None = outcome.get("env")
    built = bool(env and env.get("built"))
    lines: list[tuple[str, str]] = []
    if report.error:
        lines.append(("red", f"raydoctor fix: {report.error}"))
        if outcome.get("removed"):
            lines.append(("", "Removed what this run created: " + "; ".join(outcome["removed"]) + "."))
        elif not built and plan is not None and plan.acts:
            lines.append(("", "Nothing was left behind."))
        lines += [("yellow", f"warning: {w}") for w in outcome.get("not_removed", [])]
        if env is None or not built:
            return lines
        lines.append(("", ""))
    if any(step["name"] == "verify" for step in steps) and report.results:
        lines.append(("bold", "Check with the new interpreter"))
        lines += text_lines(_without_error(report), verbose)
        lines.append(("", ""))
    if env is not None and plan is not None:
        where = shown(Path(env["path"]), plan.cwd)
        interp = env.get("interpreter") or {}
        if built:
            head = f"Built {where}: Ray {plan.head.ray} on Python {interp.get('version') or plan.head.python}"
        elif env.get("built_by_other_run"):
            head = f"{where} was just built by another raydoctor fix and matches the cluster"
        else:
            head = f"{where} matches the cluster"
        lines.append(("bold green" if report.exit_code == 0 else "bold", head + "."))
        conda = env.get("conda_env") or {}
        if conda.get("created"):
            lines.append(
                (
                    "",
                    f"Its interpreter lives in the conda env {conda['name']} ({conda['prefix']}): "
                    "keep it while you use the venv.",
                )
            )
        uv_python = env.get("uv_python") or {}
        if uv_python.get("created"):
            lines.append(
                ("", f"Its interpreter is uv's managed Python {uv_python['key']}: keep it while you use the venv.")
            )
        if report.results and report.exit_code != 0:
            lines.append(("yellow", "The env is built, but the check above still finds problems."))
        activate: dict[str, str] = env.get("activate") or {}
        if activate:
            lines.append(("", "Activate it:"))
            width = max(len(k) for k in activate)
            lines += [("", f"  {shell:<{width}}  {cmd}") for shell, cmd in activate.items()]
    kernel = outcome.get("kernel")
    if kernel:
        lines.append(("", f"Jupyter kernel {kernel['name']} ({kernel['display_name']}): {kernel['folder']}"))
    export = outcome.get("export")
    if export:
        path = shown(Path(export["path"]), plan.cwd) if plan else export["path"]
        lines.append(("", f"{path} {export['state']}: conda users recreate the env with `conda env create -f {path}`"))
    return lines


def _without_error(report: Report) -> Report:
    """The final check's part of the document, for ``text_lines`` (which shows only the error of one with an error)."""
    from dataclasses import replace

    return replace(report, error=None, error_exit_code=None)


def emit(lines: list[tuple[str, str]], stream: IO[str]) -> None:
    """Write (style, text) lines that come from the masked report (see ``_finish``)."""
    from doctor.render.text import write_lines

    if lines:
        write_lines(lines, stream)
        stream.flush()


def emit_plan(plan: Plan) -> None:
    """The plan, before anything is done: not yet a report, so each line is masked here."""
    from doctor.commands.common import mask_line

    emit([(style, mask_line(text)) for style, text in plan_lines(plan)], sys.stdout)


# -- asking --------------------------------------------------------------------------


def ask_before(question: str, *, yes: bool, as_json: bool, what: str = "building") -> bool:
    """fix's one way of asking before it acts (``what``: "building", "writing"). ``--yes`` answers
    yes; no terminal and no ``--yes``: refuse (UsageError), since nobody can answer."""
    from doctor.errors import UsageError

    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(
            f"fix asks before {what}, and stdin is not a terminal: nothing was done",
            hint=f"pass --yes to go on without asking, or --dry-run to only see the {'plan' if what == 'building' else 'diff'}",
        )
    out = sys.stderr if as_json else sys.stdout
    if question:
        out.write(question)
    out.flush()
    try:
        answer = sys.stdin.readline()
    except (EOFError, OSError):
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def confirm(plan: Plan, *, yes: bool, as_json: bool) -> bool:
    """Ask before building (``ask_before``)."""
    from doctor.fix.plan import shown

    verb = "Replace" if plan.action == "rebuild" else "Build"
    question = ""
    if plan.action in ("build", "rebuild"):
        question = f"{verb} {shown(plan.env_path, plan.cwd)} now? [y/N] "
    elif plan.kernel is not None:  # only the kernel step acts
        question = f"Register the Jupyter kernel {plan.kernel.name} now? [y/N] "
    return ask_before(question, yes=yes, as_json=as_json)


# -- the command -----------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from doctor.errors import DoctorError
    from doctor.fix.execute import Outcome, fix_report, run_fix
    from doctor.fix.progress import make_steps

    if getattr(args, "cluster", False):
        from doctor.commands.fix_cluster import run_cluster

        return run_cluster(args)
    started = time.perf_counter()
    as_json = bool(args.json)
    steps = make_steps(json_output=as_json)
    try:
        options = fix_options(args)
    except DoctorError as exc:
        steps.close()
        report = fix_report(None, Outcome(Path.cwd()), error=exc, duration_s=time.perf_counter() - started)
        return _finish(report, None, as_json, args.verbose)
    shown_plan: list[Plan] = []

    def on_plan(plan: Plan) -> None:
        shown_plan.append(plan)
        if not as_json:
            emit_plan(plan)

    def ask(plan: Plan) -> bool:
        answer = confirm(plan, yes=options.yes, as_json=as_json)
        if answer and not as_json:
            sys.stdout.write("\n")
            sys.stdout.flush()
        return answer

    report = run_fix(options, steps, confirm=ask, on_plan=on_plan, environ=os.environ, cwd=Path.cwd())
    if options.target.settings is not None:  # where each option came from (doctor.settings)
        report.extra.setdefault("settings", options.target.settings)
    return _finish(report, shown_plan[0] if shown_plan else None, as_json, args.verbose)


def _finish(report: Report, plan: Plan | None, as_json: bool, verbose: bool) -> int:
    """Render the one document: JSON, or the text for what happened; masked once, first."""
    from doctor.commands.common import emit as emit_report
    from doctor.commands.common import run_secrets
    from doctor.render.mask import mask_report

    if as_json:
        return emit_report(report, form="json")
    report = mask_report(report, secrets=run_secrets(os.environ), environ=os.environ)
    outcome: dict[str, Any] = report.extra.get("outcome") or {}
    if outcome.get("declined"):
        emit([("", "Nothing done.")], sys.stdout)
    elif plan is None and report.error:  # fix could not start: one line, as for any usage error
        print(f"raydoctor: error: {report.error}", file=sys.stderr)
    elif outcome.get("dry_run") and not report.error:
        if plan is not None and plan.acts:
            emit([("", ""), ("", "--dry-run: nothing was created.")], sys.stdout)
    elif report.error and not report.extra.get("steps"):  # refused before acting (no terminal, a lock...)
        print(f"raydoctor: error: {report.error}", file=sys.stderr)
    else:
        lines = outcome_lines(report, plan, verbose)
        env = outcome.get("env") or {}
        if report.error and not env.get("built"):
            emit(lines, sys.stderr)
        else:
            if report.extra.get("steps"):
                sys.stdout.write("\n")
            emit(lines, sys.stdout)
    return report.exit_code
