"""Carry out a fix plan: interpreter, venv, install, verify, export.

The order of operations is what makes fix safe to interrupt:

1. ``EnvLock(dest)``: one fix per env. A second fix first tries once; if
   the lock is held it says so and waits up to ``--lock-timeout`` seconds
   (0: refuse at once). After the wait it looks again: the other run has
   usually just built the very env it wanted, and then there is nothing to do.
2. ``remove_stale_temps``: leftovers of a fix that was SIGKILLed.
3. The interpreter (an existing one, or a conda env this run may create),
   ``create_venv`` in a temporary sibling, the install, ``write_marker``,
   ``commit_venv`` (one rename).
4. On any exception (Ctrl-C and SIGTERM included) before the rename:
   delete the temporary venv and the conda env *this run* created, with
   Ctrl-C ignored while doing so, then re-raise. Nothing else is touched:
   an older env at ``dest`` stays as it was, a reused conda env stays.
5. After the rename, verify with ``run_check`` using the new interpreter
   (an interruption there leaves the finished env in place, as it should).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from doctor.errors import EXIT_INTERRUPTED, DoctorError, FixError
from doctor.fix.conda import Conda, CondaEnv, CondaError
from doctor.fix.install import InstallError, choose_installer
from doctor.fix.plan import BUILD, FIX_SCHEMA, REBUILD, FixOptions, Plan, conda_env_name, shown, up_to_date
from doctor.fix.progress import Steps
from doctor.fix.providers import Interpreter, find_interpreter
from doctor.fix.venv import (
    EnvLock,
    commit_venv,
    create_venv,
    discard_venv,
    read_marker,
    remove_stale_temps,
    temp_path,
    venv_python,
    write_marker,
)
from doctor.model import Report, Result, Status

EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that the same cleanup runs as for Ctrl-C."""


@dataclass
class StepRecord:
    """One step as it happened: for the JSON document and the final summary."""

    name: str
    status: str  # ok | fail | skip | interrupted
    duration_s: float
    summary: str = ""
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary,
            "details": list(self.details),
        }


@dataclass
class FixOutcome:
    """Everything one ``raydoctor fix`` did; rendered once, as text or JSON."""

    plan: Plan | None = None
    dry_run: bool = False
    declined: bool = False
    steps: list[StepRecord] = field(default_factory=list)
    env: Path | None = None
    interpreter: dict[str, Any] | None = None
    conda_env: dict[str, Any] | None = None
    built: bool = False
    built_by_other: bool = False  # another fix built it while this one waited for the lock
    check: Report | None = None
    export: dict[str, Any] | None = None
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    error_details: list[str] = field(default_factory=list)
    error_exit_code: int | None = None
    interrupted: bool = False
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when the final check has no failures; 1 otherwise or on a failure; 2 usage; 130 Ctrl-C."""
        if self.error_exit_code is not None:
            return self.error_exit_code
        if self.check is not None:
            return self.check.exit_code
        return 1 if self.declined else 0

    def activation(self) -> dict[str, str]:
        from doctor.fix.plan import activation_commands

        if self.env is None or self.plan is None:
            return {}
        return activation_commands(self.env, self.plan.cwd)

    def to_dict(self) -> dict[str, Any]:
        from doctor import __version__

        env = None
        if self.env is not None:
            env = {
                "path": str(self.env),
                "python": str(venv_python(self.env)),
                "built": self.built,
                "built_by_other_run": self.built_by_other,
                "interpreter": self.interpreter,
                "conda_env": self.conda_env,
                "activate": self.activation(),
            }
        return {
            "schema": FIX_SCHEMA,
            "raydoctor_version": __version__,
            "command": "fix",
            "exit_code": self.exit_code,
            "error": self.error,
            "error_details": list(self.error_details),
            "dry_run": self.dry_run,
            "declined": self.declined,
            "interrupted": self.interrupted,
            "action": self.plan.action if self.plan else None,
            "plan": self.plan.to_dict() if self.plan else None,
            "steps": [s.to_dict() for s in self.steps],
            "env": env,
            "export": self.export,
            "check": self.check.to_dict() if self.check else None,
            "removed": list(self.removed),
            "warnings": list(self.warnings),
            "duration_s": round(self.duration_s, 3),
        }

    def fail(self, exc: BaseException) -> None:
        """Record why fix stopped."""
        if isinstance(exc, KeyboardInterrupt):
            self.interrupted = True
            self.error = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
            self.error_exit_code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        elif isinstance(exc, DoctorError):
            self.error = str(exc)
            self.error_exit_code = exc.exit_code
            if isinstance(exc, InstallError):
                self.error_details = list(exc.details)


# -- signals -----------------------------------------------------------------------


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While fix works, SIGTERM raises ``Terminated`` so the cleanup runs (a kill -TERM, a CI cancel)."""
    if not _main_thread() or os.name == "nt":
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up: a second Ctrl-C must not leave half a cleanup."""
    if not _main_thread():
        yield
        return
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if os.name != "nt" else [])
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- steps ---------------------------------------------------------------------------


class _Step:
    """A step being run: the body may set ``status``/``summary`` (verify fails without raising)."""

    def __init__(self) -> None:
        self.status = "ok"
        self.summary = ""
        self.details: list[str] = []


@contextmanager
def _step(outcome: FixOutcome, steps: Steps, name: str, text: str) -> Iterator[_Step]:
    state = _Step()
    started = time.perf_counter()
    steps.begin(name, text)
    try:
        yield state
    except BaseException as exc:
        state.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "fail"
        state.summary = (
            "interrupted"
            if isinstance(exc, KeyboardInterrupt)
            else (exc.message if isinstance(exc, DoctorError) else f"{type(exc).__name__}: {exc}")
        )
        if isinstance(exc, InstallError):
            state.details = list(exc.details)
        raise
    finally:
        steps.end(state.status, state.summary, state.details)
        outcome.steps.append(
            StepRecord(name, state.status, time.perf_counter() - started, state.summary, state.details)
        )


# -- building ------------------------------------------------------------------------


def _take_lock(dest: Path, timeout: float, steps: Steps, cwd: Path) -> EnvLock:
    """The env's lock: at once if free, else say who holds it and wait up to ``timeout`` seconds."""
    lock = EnvLock(dest, timeout=0)
    try:
        lock.acquire()
        return lock
    except FixError as exc:
        if timeout <= 0:
            raise FixError(exc.message, hint="wait for it to finish, or pass --lock-timeout SECONDS to wait") from None
        holder = lock._holder()  # the pid it wrote; EnvLock keeps the file format to itself
    steps.note(f"another raydoctor fix ({holder}) is building {shown(dest, cwd)}: waiting up to {timeout:g} s for it")
    lock = EnvLock(dest, timeout=timeout)
    lock.acquire()
    return lock


def _get_interpreter(
    plan: Plan,
    options: FixOptions,
    outcome: FixOutcome,
    steps: Steps,
    environ: Mapping[str, str],
    created: list[tuple[Conda, CondaEnv]],
) -> Interpreter:
    """The planned interpreter as is, or the real lookup (which may create a conda env)."""
    ip = plan.interpreter
    assert ip is not None
    ready = ip.interpreter()
    if ready is not None:
        with _step(outcome, steps, "interpreter", f"Python {ready.version} from {ready.source}") as st:
            st.summary = f"Python {ready.version} from {ready.source} ({ready.path})"
        return ready
    name = "conda" if ip.how == "conda" else "interpreter"
    text = (
        f"conda env {ip.conda_env} with python={ip.want}"
        if ip.how == "conda"
        else f"Python {ip.want}: looking for the closest interpreter"
    )
    with _step(outcome, steps, name, text) as st:
        conda = Conda.locate(environ) if options.use_conda else None
        interp = find_interpreter(
            plan.head.python,
            conda=conda,
            env_name=ip.conda_env or conda_env_name(plan.head.ray, plan.head.python),
            allow_conda=options.use_conda,
            search_dirs=options.search_dirs,
            environ=environ,
        )
        if interp.created is not None and conda is not None:
            created.append((conda, interp.created))
        st.summary = f"Python {interp.version} from {interp.source} ({interp.path})"
        if interp.created is not None:
            st.summary += " (created by this run)"
        elif interp.source.startswith("conda env"):
            st.summary += " (reused: an earlier raydoctor run made it)"
    for warning in interp.warnings:
        outcome.warnings.append(warning)
        if not any(warning in w for w in plan.warnings):  # the plan already said it
            steps.note(warning)
    return interp


def _cleanup(
    outcome: FixOutcome, dest: Path, venv_started: bool, created: list[tuple[Conda, CondaEnv]], cwd: Path
) -> None:
    """Remove exactly what this run created: the temporary venv and a conda env it made."""
    tmp = temp_path(dest)
    if tmp.exists() or tmp.is_symlink():
        discard_venv(tmp)
    if venv_started and not tmp.exists():
        outcome.removed.append(f"the unfinished venv {shown(tmp, cwd)}")
    for conda, env in created:
        try:
            conda.remove(env)
            outcome.removed.append(f"conda env {env.name} ({env.prefix}), created by this run")
        except CondaError as exc:
            outcome.warnings.append(f"could not remove conda env {env.name} that this run created: {exc}")


def build(plan: Plan, options: FixOptions, steps: Steps, outcome: FixOutcome, environ: Mapping[str, str]) -> None:
    """Build the env atomically under its lock; on any failure remove what this run created, re-raise."""
    assert plan.install is not None and plan.interpreter is not None
    dest, cwd = plan.env_path, plan.cwd
    made_dir = not dest.parent.exists()
    lock = _take_lock(dest, options.lock_timeout, steps, cwd)
    created: list[tuple[Conda, CondaEnv]] = []
    venv_started = False
    ok = False
    try:
        for stale in remove_stale_temps(dest):
            steps.note(f"removed {shown(stale, cwd)}, left by a fix that did not finish")
        if dest.exists() or dest.is_symlink():
            if (read_marker(dest) or {}).get("created_by") != "raydoctor":
                raise FixError(
                    f"{shown(dest, cwd)} appeared meanwhile and raydoctor did not create it: leaving it alone"
                )
            if not options.rebuild and up_to_date(dest, plan):
                outcome.env, outcome.built_by_other = dest, True
                _record_interpreter(outcome, read_marker(dest) or {})
                steps.note(
                    f"{shown(dest, cwd)} was built meanwhile by another raydoctor fix and matches: nothing to do"
                )
                ok = True
                return
        interp = _get_interpreter(plan, options, outcome, steps, environ, created)
        venv_started = True
        with _step(
            outcome, steps, "venv", f"a virtualenv from Python {interp.version} ({plan.install.installer})"
        ) as st:
            tmp = create_venv(interp.path, dest, installer=plan.install.installer)
            st.summary = f"built in {shown(tmp, cwd)}, renamed when complete"
        install = plan.install
        with _step(outcome, steps, "install", install.describe(cwd)) as st:
            installer = choose_installer(install.installer)
            with install.files() as files:
                installer.install(
                    venv_python(tmp),
                    files,
                    install.constraints,
                    install.extra,
                    verbose=options.verbose,
                    on_output=steps.output if options.verbose else None,
                )
            conda_name = interp.source[len("conda env ") :] if interp.source.startswith("conda env ") else None
            write_marker(
                tmp,
                ray_version=plan.head.ray,
                python_version=plan.head.python,
                requirements_hash=install.hash,
                interpreter=str(interp.path),
                interpreter_version=interp.version,
                interpreter_source=interp.source,
                conda_env=conda_name,
                installer=install.installer,
                requirements=str(install.requirements or ""),
            )
            commit_venv(tmp, dest, replace=dest.exists() or dest.is_symlink())
            st.summary = f"{shown(dest, cwd)}: Ray {plan.head.ray} on Python {interp.version}"
        outcome.env, outcome.built = dest, True
        _record_interpreter(outcome, read_marker(dest) or {})
        if created:
            conda, env = created[0]
            outcome.conda_env = {
                "name": env.name,
                "prefix": str(env.prefix),
                "created": True,
                "note": "the venv's interpreter lives there: keep it while you use the venv",
            }
        ok = True
    except BaseException:
        with uninterruptible():
            _cleanup(outcome, dest, venv_started, created, cwd)
        raise
    finally:
        lock.release()
        if not ok and made_dir:
            try:
                dest.parent.rmdir()  # only if empty: this run made it
                outcome.removed.append(f"the empty folder {shown(dest.parent, cwd)}")
            except OSError:
                pass


def _record_interpreter(outcome: FixOutcome, marker: Mapping[str, Any]) -> None:
    outcome.interpreter = {
        "path": marker.get("interpreter"),
        "version": marker.get("interpreter_version"),
        "source": marker.get("interpreter_source"),
    }
    if marker.get("conda_env") and outcome.conda_env is None:
        outcome.conda_env = {"name": marker.get("conda_env"), "created": False}


# -- proving it ----------------------------------------------------------------------


def _explain_override(report: Report, plan: Plan) -> None:
    """A file that pins another Ray fails check's requirements test although the env is right.

    fix overrode that pin on purpose (and said so in the plan); when the pin
    is the only problem, the failure becomes a warning that says to edit the
    file, so fix's exit code reflects the env it built.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    for index, res in enumerate(report.results):
        if res.id != "packages.requirements" or res.status is not Status.FAIL:
            continue
        data = res.data or {}
        if data.get("missing") or not data.get("head_conflict"):
            continue
        names = []
        for wrong in data.get("wrong") or []:
            try:
                names.append(canonicalize_name(Requirement(str(wrong).split(" (installed")[0]).name))
            except InvalidRequirement:
                names.append("?")
        if any(n != "ray" for n in names):
            continue
        conflict = "; ".join(data["head_conflict"])
        report.results[index] = Result(
            res.id,
            res.category,
            res.title,
            Status.WARN,
            f"{conflict}: fix installed Ray {plan.head.ray} anyway (a constraint overrode the pin; the file is "
            "unchanged). Edit the pin so that others get the right Ray too",
            res.details,
            res.remediation,
            res.duration_s,
            {**data, "overridden_by_fix": True},
        )


def verify(plan: Plan, options: FixOptions, steps: Steps, outcome: FixOutcome, environ: Mapping[str, str]) -> Report:
    """``check`` with the new interpreter and the same target (the round trip too, unless --no-roundtrip)."""
    from doctor.app import run_check
    from doctor.render import summary_line

    assert outcome.env is not None
    python = venv_python(outcome.env)
    target = replace(
        options.target,
        python=str(python),
        roundtrip=plan.roundtrip,
        requirements=plan.install.requirements if plan.install else options.target.requirements,
    )
    trip = "round trip included" if plan.roundtrip else "no round trip"
    with _step(outcome, steps, "verify", f"raydoctor check with {shown(python, plan.cwd)} ({trip})") as st:
        report = run_check(target, environ=environ, cwd=plan.cwd, verbose=options.verbose)
        _explain_override(report, plan)
        outcome.check = report
        st.summary = summary_line(report) if not report.error else f"check could not run: {report.error}"
        st.status = "ok" if report.exit_code == 0 else "fail"
    return report


def export(
    plan: Plan, options: FixOptions, steps: Steps, outcome: FixOutcome, python: Path, interpreter_version: str | None
) -> None:
    """``--export``: the env's packages as an environment.yml."""
    from doctor.fix.export import export_env

    assert plan.export is not None
    note = None
    if interpreter_version and plan.head.basis != "minor" and interpreter_version != plan.head.python:
        note = (
            f"python={plan.head.python} is the cluster's; the venv raydoctor built here runs "
            f"{interpreter_version}, the closest this machine had"
        )
    with _step(outcome, steps, "export", f"{shown(plan.export, plan.cwd)} from pip freeze") as st:
        state, packages = export_env(
            python, plan.export, name=plan.env_name, python_version=plan.head.python, force=options.force, note=note
        )
        st.summary = f"{shown(plan.export, plan.cwd)} {state} ({len(packages)} packages)"
        outcome.export = {
            "path": str(plan.export),
            "state": state,
            "python": plan.head.python,
            "packages": len(packages),
        }


def execute(plan: Plan, options: FixOptions, steps: Steps, *, environ: Mapping[str, str] | None = None) -> FixOutcome:
    """Carry out ``plan`` (build or rebuild, verify, export); never raises a DoctorError or Ctrl-C.

    Ctrl-C and SIGTERM are caught after the cleanup and recorded in the
    outcome (exit 130 / 143), so the caller can still render one document.
    """
    environ = dict(os.environ if environ is None else environ)
    outcome = FixOutcome(plan=plan)
    started = time.perf_counter()
    with sigterm_as_interrupt():
        try:
            if plan.action in (BUILD, REBUILD):
                build(plan, options, steps, outcome, environ)
            elif plan.action == "up-to-date":
                outcome.env = plan.env_path
                _record_interpreter(outcome, read_marker(plan.env_path) or {})
            if outcome.env is not None and outcome.built:
                verify(plan, options, steps, outcome, environ)
            if plan.export is not None:
                if outcome.env is not None:
                    version = (outcome.interpreter or {}).get("version")
                    export(plan, options, steps, outcome, venv_python(outcome.env), version)
                elif plan.judged.executable:
                    export(plan, options, steps, outcome, Path(plan.judged.executable), plan.judged.python)
        except (DoctorError, KeyboardInterrupt) as exc:
            outcome.fail(exc)
        except OSError as exc:  # a read-only or full env dir: build() has cleaned up; one line, no traceback
            where = exc.filename or plan.env_path
            outcome.fail(
                FixError(
                    f"cannot write {where}: {exc.strerror or exc}", hint="choose another --env-dir, or free space there"
                )
            )
        finally:
            steps.close()
    outcome.duration_s = time.perf_counter() - started
    return outcome
