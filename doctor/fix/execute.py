"""Carry out a fix plan: interpreter, venv, install, verify, export; the one place fix creates things.

``run_fix`` is ``raydoctor fix`` as a library call: options in, a ``doctor.model.Report``
(command ``"fix"``) out, with the plan, the steps and the outcome in ``Report.extra``,
one ``error`` and one exit-code rule (``Report.exit_code``).

The order of operations is what makes fix safe to interrupt:

1. ``EnvLock(dest)``: one fix per env. A second fix first tries once; if
   the lock is held it says so and waits up to ``--lock-timeout`` seconds
   (0: refuse at once). After the wait it looks again: the other run has
   usually just built the very env it wanted, and then there is nothing to do.
2. ``remove_stale_temps``: leftovers of a fix that was SIGKILLed.
3. The interpreter (``provider_for(plan.interpreter)``: an existing one, uv's
   managed Python or a conda env this run may create; when it is another patch than
   planned, the env's folder follows the Python it really has, under its own lock),
   ``create_venv`` in a temporary sibling, the
   install, ``write_marker``, ``commit_venv`` (one rename).
4. On any exception (Ctrl-C and SIGTERM included) before the rename:
   delete the temporary venv and undo the provider (the conda env or uv's managed
   Python *this run* created), with Ctrl-C ignored while doing so, then re-raise. Nothing else is
   touched: an older env at ``dest`` stays as it was, a reused conda env stays.
5. After the rename, verify with ``run_check`` using the new interpreter and told
   that fix installed the head's Ray over any pin in the requirements file
   (``TargetOptions.ray_override``), so the check judges that pin itself (an
   interruption there leaves the finished env in place, as it should).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from doctor.errors import EXIT_INTERRUPTED, DoctorError, FixError
from doctor.fix.conda import CondaError
from doctor.fix.discover import closest_warning
from doctor.fix.install import InstallError, choose_installer
from doctor.fix.plan import (
    BUILD,
    FOREIGN,
    MATCHES,
    REBUILD,
    REFUSE,
    UP_TO_DATE,
    EnvTarget,
    FixOptions,
    InterpreterPlan,
    Plan,
    activation_commands,
    gather,
    make_plan,
    shown,
)
from doctor.fix.progress import Steps
from doctor.fix.providers import CondaProvider, Existing, Interpreter, Provider, UvProvider
from doctor.fix.uv_python import UvPython
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
from doctor.local.tools import CondaLocation
from doctor.model import Report

EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_DECLINED = 1


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
class Outcome:
    """What one ``raydoctor fix`` did, gathered while it works.

    No error and no exit code here: those are the Report's (``fix_report``).
    """

    cwd: Path
    dry_run: bool = False
    declined: bool = False
    interrupted: bool = False
    steps: list[StepRecord] = field(default_factory=list)
    env: Path | None = None
    interpreter: dict[str, Any] | None = None
    conda_env: dict[str, Any] | None = None
    uv_python: dict[str, Any] | None = None  # uv's managed Python the env's interpreter is
    built: bool = False
    built_by_other: bool = False  # another fix built it while this one waited for the lock
    export: dict[str, Any] | None = None
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    not_removed: list[str] = field(default_factory=list)  # cleanup that failed: also among the warnings
    check: Report | None = None  # the final check (its findings become the fix Report's results)
    kernel: dict[str, Any] | None = None  # --kernel: the kernelspec registered (doctor.fix.kernel)

    def to_dict(self, plan: Plan | None) -> dict[str, Any]:
        env = None
        if self.env is not None:
            env = {
                "path": str(self.env),
                "python": str(venv_python(self.env)),
                "built": self.built,
                "built_by_other_run": self.built_by_other,
                "interpreter": self.interpreter,
                "conda_env": self.conda_env,
                "uv_python": self.uv_python,
                "activate": activation_commands(self.env, self.cwd),
            }
        return {
            "action": plan.action if plan else None,
            "dry_run": self.dry_run,
            "declined": self.declined,
            "interrupted": self.interrupted,
            "env": env,
            "export": self.export,
            "removed": list(self.removed),
            "warnings": list(self.warnings),
            "not_removed": list(self.not_removed),
            "kernel": self.kernel,
        }


def fix_report(
    plan: Plan | None,
    outcome: Outcome,
    *,
    before: Report | None = None,
    after: Report | None = None,
    error: BaseException | None = None,
    duration_s: float = 0.0,
) -> Report:
    """The one document of ``raydoctor fix``.

    ``results`` are the final check's (with the new interpreter), so the exit code
    follows the one rule: ``error_exit_code`` when fix stopped (2 usage, 1 failure or
    a "no" at the prompt, 130 Ctrl-C, 143 SIGTERM), else 1 when a finding fails, else 0.
    ``target``/``head``/``local`` are the final check's, else those of the check the
    plan was made from. The plan, the steps and the outcome are in ``extra``.
    """
    shown_by = after if after is not None and not after.error else before
    report = Report(
        "fix",
        results=list(after.results) if after is not None else [],
        target=dict(shown_by.target) if shown_by else {},
        head=dict(shown_by.head) if shown_by else {},
        local=dict(shown_by.local) if shown_by else {},
        duration_s=duration_s,
    )
    if isinstance(error, KeyboardInterrupt):
        outcome.interrupted = True
        report.error = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted (Ctrl-C)"
        report.error_exit_code = EXIT_TERMINATED if isinstance(error, Terminated) else EXIT_INTERRUPTED
    elif isinstance(error, DoctorError):
        report.error = str(error)
        report.error_exit_code = error.exit_code
    elif outcome.declined:
        report.error = "you answered no at the prompt: nothing was done"
        report.error_exit_code = EXIT_DECLINED
    elif after is not None and after.error:
        report.error = f"the final check could not run: {after.error}"
        report.error_exit_code = after.exit_code
    report.extra = {
        "plan": plan.to_dict() if plan else None,
        "steps": [s.to_dict() for s in outcome.steps],
        "outcome": outcome.to_dict(plan),
    }
    return report


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
def _step(outcome: Outcome, steps: Steps, name: str, text: str) -> Iterator[_Step]:
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


# -- the interpreter -------------------------------------------------------------------


def provider_for(ip: InterpreterPlan, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Provider:
    """The provider the plan described: the only way from a plan to something that may create."""
    if ip.how == "uv":
        assert ip.uv is not None and ip.uv.uv is not None and ip.uv.python is not None
        planned = ip.uv.python
        python = UvPython(planned.key, planned.version, planned.path, planned.url)
        warning = closest_warning(ip.want, ip.found) if ip.found is not None else None
        then = None
        if ip.conda_exe is not None and ip.conda_env is not None:  # auto: conda where uv's download fails
            location = CondaLocation(ip.conda_exe, ip.conda_flavor or "conda")
            then = CondaProvider.at(location, ip.conda_env, ip.want, None, environ=environ)
        return UvProvider(
            ip.uv.uv,
            ip.want,
            python,
            environ=environ,
            cwd=cwd,
            fallback=ip.found,
            fallback_warning=warning,
            then=then,
            way_out=ip.way_out,
        )
    if ip.how == "conda":
        assert ip.conda_exe is not None and ip.conda_env is not None
        location = CondaLocation(ip.conda_exe, ip.conda_flavor or "conda")
        return CondaProvider.at(location, ip.conda_env, ip.want, ip.found, environ=environ)
    assert ip.found is not None
    return Existing(ip.found.with_warnings(*ip.warnings) if ip.warnings else ip.found)


def _get_interpreter(provider: Provider, plan: Plan, outcome: Outcome, steps: Steps) -> Interpreter:
    """The planned interpreter: as is, or made by conda (``provider.undo`` removes what that created)."""
    if isinstance(provider, CondaProvider):
        text = provider.describe()
    elif plan.interpreter is not None and plan.interpreter.how == "closest":
        text = f"Python {plan.head.python}: the closest here, {provider.describe()}"
    else:
        text = provider.describe()
    with _step(outcome, steps, provider.step, text) as st:
        interp = provider.provide()
        st.summary = f"Python {interp.version} from {interp.source} ({interp.path})"
        if interp.created is not None or (isinstance(provider, UvProvider) and provider.installed_key):
            st.summary += " (created by this run)"
        elif interp.conda_env is not None:
            st.summary += " (reused: an earlier raydoctor run made it)"
    for warning in interp.warnings:
        outcome.warnings.append(warning)
        if not any(warning in w for w in plan.warnings):  # the plan already said it
            steps.note(warning)
    return interp


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


def _cleanup(outcome: Outcome, dest: Path, venv_started: bool, provider: Provider | None, cwd: Path) -> None:
    """Remove exactly what this run created: the temporary venv and what the provider made."""
    tmp = temp_path(dest)
    if tmp.exists() or tmp.is_symlink():
        discard_venv(tmp)
    if venv_started and not tmp.exists():
        outcome.removed.append(f"the unfinished venv {shown(tmp, cwd)}")
    if provider is None:
        return
    try:
        outcome.removed += provider.undo()
    except CondaError as exc:
        failure = f"could not remove what this run created ({provider.describe()}): {exc}"
        outcome.warnings.append(failure)
        outcome.not_removed.append(failure)


def _carry_on(plan: Plan, target: EnvTarget, outcome: Outcome, steps: Steps) -> bool:
    """Whether to build ``target``: its recorded action, once verified that it still holds what the plan saw.

    Called under ``target``'s lock. execute decides nothing here: when the folder changed since the plan
    (another fix built it meanwhile, a folder appeared), it stops or skips; else it does what the plan says.
    """
    cwd, dest = plan.cwd, target.path
    for stale in remove_stale_temps(dest):
        steps.note(f"removed {shown(stale, cwd)}, left by a fix that did not finish")
    now = plan.state_now(target)
    if now != target.state:  # changed since the plan: stop or skip, never choose anew
        if now == FOREIGN:
            raise FixError(f"{shown(dest, cwd)} appeared meanwhile and raydoctor did not create it: leaving it alone")
        if now == MATCHES and not plan.rebuild:
            outcome.env, outcome.built_by_other = dest, True
            _record_interpreter(outcome, read_marker(dest) or {})
            steps.note(f"{shown(dest, cwd)} was built meanwhile by another raydoctor fix and matches: nothing to do")
            return False
        return True  # emptied or changed meanwhile: the new env replaces what is there only once complete
    if target.action == REFUSE:
        raise FixError(f"{shown(dest, cwd)} exists and raydoctor did not create it: leaving it alone")
    if target.action == UP_TO_DATE:  # a fallback's env that already matches
        outcome.env, outcome.built_by_other = dest, True
        _record_interpreter(outcome, target.built)
        steps.note(f"{shown(dest, cwd)} already matches: nothing to build")
        return False
    return True


def build(plan: Plan, options: FixOptions, steps: Steps, outcome: Outcome, environ: Mapping[str, str]) -> None:
    """Build the env atomically under its lock; on any failure remove what this run created, re-raise."""
    assert plan.install is not None and plan.interpreter is not None
    target, cwd = plan.env, plan.cwd
    dest = target.path
    made_dir = not dest.parent.exists()
    lock = _take_lock(dest, options.lock_timeout, steps, cwd)
    provider: Provider | None = None
    venv_started = False
    ok = False
    try:
        if not _carry_on(plan, target, outcome, steps):
            ok = True
            return
        provider = provider_for(plan.interpreter, environ, cwd)
        interp = _get_interpreter(provider, plan, outcome, steps)
        landed = plan.target_for(interp.version)
        if landed is None:  # no plan entry foresaw it (docs/fix.md): stop, removing what the provider made
            raise FixError(
                f"{provider.describe()} gave Python {interp.version}, which the plan did not foresee "
                f"({', '.join(t.python for t in (plan.env, *plan.fallbacks))}): building nothing",
                hint="run fix again: the new plan starts from what is on this machine now",
            )
        if landed != target:  # another patch than planned (a fallback): the folder the plan named for it
            steps.note(
                f"Python {interp.version}, not {plan.interpreter.expected_version}: building {shown(landed.path, cwd)}"
            )
            second = _take_lock(landed.path, options.lock_timeout, steps, cwd)
            lock.release()
            lock, target, dest = second, landed, landed.path
            if not _carry_on(plan, target, outcome, steps):
                ok = True
                return
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
            write_marker(
                tmp,
                ray_version=plan.head.ray,
                python_version=plan.head.python,
                requirements_hash=install.hash,
                interpreter=str(interp.path),
                interpreter_version=interp.version,
                interpreter_source=interp.source,
                conda_env=interp.conda_env,
                installer=install.installer,
                requirements=str(install.requirements or ""),
            )
            commit_venv(tmp, dest, replace=dest.exists() or dest.is_symlink())
            st.summary = f"{shown(dest, cwd)}: Ray {plan.head.ray} on Python {interp.version}"
        outcome.env, outcome.built = dest, True
        _record_interpreter(outcome, read_marker(dest) or {})
        if isinstance(provider, UvProvider) and provider.managed:
            outcome.uv_python = {
                "key": provider.python.key,
                "path": str(interp.path),
                "created": provider.installed_key is not None,
                "note": "the venv's interpreter lives there: keep it while you use the venv",
            }
        if interp.created is not None:
            outcome.conda_env = {
                "name": interp.created.name,
                "prefix": str(interp.created.prefix),
                "created": True,
                "note": "the venv's interpreter lives there: keep it while you use the venv",
            }
        ok = True
    except BaseException:
        with uninterruptible():
            _cleanup(outcome, dest, venv_started, provider, cwd)
        raise
    finally:
        lock.release()
        if not ok and made_dir:
            try:
                dest.parent.rmdir()  # only if empty: this run made it
                outcome.removed.append(f"the empty folder {shown(dest.parent, cwd)}")
            except OSError:
                pass


def _record_interpreter(outcome: Outcome, marker: Mapping[str, Any]) -> None:
    outcome.interpreter = {
        "path": marker.get("interpreter"),
        "version": marker.get("interpreter_version"),
        "source": marker.get("interpreter_source"),
    }
    if marker.get("conda_env") and outcome.conda_env is None:
        outcome.conda_env = {"name": marker.get("conda_env"), "created": False}


# -- proving it ----------------------------------------------------------------------


def verify(plan: Plan, options: FixOptions, steps: Steps, outcome: Outcome, environ: Mapping[str, str]) -> Report:
    """``check`` with the new interpreter and the same target (the round trip too, unless --no-roundtrip).

    The check is told that fix installed the head's Ray over any Ray pin in the
    requirements file (``ray_override``): it judges that pin knowing so.
    """
    from doctor.app import run_check
    from doctor.render import summary_line

    assert outcome.env is not None
    python = venv_python(outcome.env)
    target = replace(
        options.target,
        python=str(python),
        roundtrip=plan.roundtrip,
        requirements=plan.install.requirements if plan.install else options.target.requirements,
        ray_override=plan.head.ray,
    )
    trip = "round trip included" if plan.roundtrip else "no round trip"
    with _step(outcome, steps, "verify", f"raydoctor check with {shown(python, plan.cwd)} ({trip})") as st:
        report = run_check(target, environ=environ, cwd=plan.cwd, verbose=options.verbose)
        st.summary = summary_line(report) if not report.error else f"check could not run: {report.error}"
        st.status = "ok" if report.exit_code == 0 else "fail"
    return report


def export(
    plan: Plan, options: FixOptions, steps: Steps, outcome: Outcome, python: Path, interpreter_version: str | None
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
    name = outcome.env.name if outcome.env is not None else plan.env_name  # a fallback's env is named for it
    with _step(outcome, steps, "export", f"{shown(plan.export, plan.cwd)} from pip freeze") as st:
        state, packages = export_env(
            python, plan.export, name=name, python_version=plan.head.python, force=options.force, note=note
        )
        st.summary = f"{shown(plan.export, plan.cwd)} {state} ({len(packages)} packages)"
        outcome.export = {
            "path": str(plan.export),
            "state": state,
            "python": plan.head.python,
            "packages": len(packages),
        }


def register_kernel(plan: Plan, options: FixOptions, steps: Steps, outcome: Outcome, environ: Mapping[str, str]) -> Any:
    """``--kernel``: ipykernel into the env (or the judged interpreter that already matches) and the
    kernelspec; returns the ``doctor.fix.kernel.KernelRegistration`` (its ``undo`` runs if a later step fails)."""
    from doctor.fix.kernel import KernelRegistration

    kp = plan.kernel
    if kp is None:
        raise FixError("no kernel was planned")  # called only when the plan has one
    if outcome.env is not None:
        python = venv_python(outcome.env)
        version = (outcome.interpreter or {}).get("version") or plan.head.python
    elif plan.judged.executable:
        python, version = Path(plan.judged.executable), plan.judged.python or plan.head.python
    else:
        raise FixError("no interpreter to register as a Jupyter kernel")
    reg = KernelRegistration(kp, environ)

    def install(target: Path, packages: Any) -> None:
        installer = choose_installer(plan.install.installer if plan.install else options.installer)
        installer.install(
            target,
            [],
            plan.install.constraints if plan.install else [],
            list(packages),
            verbose=options.verbose,
            on_output=steps.output if options.verbose else None,
        )

    try:
        with _step(outcome, steps, "kernel", kp.describe()) as st:
            spec = reg.register(python, str(version), install=install)
            st.summary = f"{spec.name}: {spec.display_name!r} in {spec.folder}" + (
                " (ipykernel installed)" if reg.installed_ipykernel else ""
            )
    except BaseException:
        with uninterruptible():
            outcome.removed += reg.undo()
        raise
    outcome.kernel = {
        "name": spec.name,
        "folder": str(spec.folder),
        "display_name": spec.display_name,
        "argv": list(spec.argv),
        "updated": kp.exists,
        "ipykernel_installed": reg.installed_ipykernel,
    }
    return reg


def execute(plan: Plan, options: FixOptions, steps: Steps, outcome: Outcome, environ: Mapping[str, str]) -> None:
    """Carry out ``plan`` (build or rebuild, verify, export); the final check goes to ``outcome.check``.

    Raises what stopped it (a DoctorError, Ctrl-C, SIGTERM as ``Terminated``) after the
    cleanup; an unwritable env folder becomes a FixError.
    """
    try:
        if plan.action in (BUILD, REBUILD):
            build(plan, options, steps, outcome, environ)
        elif plan.action == UP_TO_DATE:
            outcome.env = plan.env_path
            _record_interpreter(outcome, plan.env.built)  # the marker make_plan read
        kernel = register_kernel(plan, options, steps, outcome, environ) if plan.kernel is not None else None
        try:
            if outcome.env is not None and outcome.built:
                outcome.check = verify(plan, options, steps, outcome, environ)
            if plan.export is not None:
                if outcome.env is not None:
                    version = (outcome.interpreter or {}).get("version")
                    export(plan, options, steps, outcome, venv_python(outcome.env), version)
                elif plan.judged.executable:
                    export(plan, options, steps, outcome, Path(plan.judged.executable), plan.judged.python)
        except BaseException:  # a later step failed: the kernelspec this run made goes (one from before comes back)
            if kernel is not None:
                with uninterruptible():
                    outcome.removed += kernel.undo()
            raise
        if kernel is not None:
            kernel.commit()
    except OSError as exc:  # a read-only or full env dir: build() has cleaned up; one line, no traceback
        where = exc.filename or plan.env_path
        raise FixError(
            f"cannot write {where}: {exc.strerror or exc}", hint="choose another --env-dir, or free space there"
        ) from None


def run_fix(
    options: FixOptions,
    steps: Steps,
    *,
    confirm: Callable[[Plan], bool],
    on_plan: Callable[[Plan], None] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Report:
    """``raydoctor fix`` as a library call; never raises a DoctorError or Ctrl-C.

    check (no round trip: the plan needs facts) → ``make_plan`` → ``on_plan`` (show it)
    → stop for ``--dry-run`` → ``confirm`` (prompting and ``--yes`` live in the caller,
    as conda's fixers take a ``confirm`` callback) → ``execute``. Ctrl-C and SIGTERM
    are caught after the cleanup and recorded (exit 130 / 143).
    """
    started = time.perf_counter()
    environ = dict(os.environ if environ is None else environ)
    cwd = (cwd or Path.cwd()).absolute()
    outcome = Outcome(cwd, dry_run=options.dry_run)
    plan: Plan | None = None
    before: Report | None = None
    error: BaseException | None = None
    with sigterm_as_interrupt():
        try:
            with steps.waiting("Reading the cluster and this machine…"):
                before, checked = gather(
                    replace(options.target, roundtrip=False), environ=environ, cwd=cwd, verbose=options.verbose
                )
                plan = make_plan(options, checked, environ=environ, cwd=cwd)
            if on_plan is not None:
                on_plan(plan)
            if not options.dry_run:
                if plan.acts and not confirm(plan):
                    outcome.declined = True
                else:
                    execute(plan, options, steps, outcome, environ)
        except (DoctorError, KeyboardInterrupt) as exc:
            error = exc
        finally:
            steps.close()
    return fix_report(
        plan, outcome, before=before, after=outcome.check, error=error, duration_s=time.perf_counter() - started
    )
