"""What ``raydoctor fix`` will do, decided before anything is touched.

Why a plan first: fix creates things (a conda env, a venv, hundreds of MB of
packages) and a user should see exactly what, and why, before saying yes.
The plan is plain data built from what ``check`` judged, typed (``Checked``: the
head's ``HeadFacts``, the judged interpreter's ``LocalFacts``, and the stable
``code`` of each finding; never a summary, a detail or a serialized dict), plus a
look at what already exists (``doctor.fix.discover``: an exact interpreter on this
machine, conda's location, an env from an earlier run). It is rendered once, as text
or inside the JSON document, and ``--dry-run`` stops after it.

Nothing here creates anything, by construction: this module imports discovery
(read-only) and no provider; the plan holds discovery results and a description of
the provider (``InterpreterPlan``), which only the executor turns into one.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doctor.codes import CLIENT_EXTRAS_MISSING, JOBS_CLIENT_OK, RESOLUTION_UNSATISFIABLE
from doctor.errors import FixError, UsageError
from doctor.fix.discover import Interpreter, closest_warning, discover, no_interpreter
from doctor.fix.install import choose_installer, pin_constraints, ray_client_requirement, ray_constraint
from doctor.fix.kernel import KernelPlan, plan_kernel
from doctor.fix.uv_python import UvLookup, describe_lookup, downloads_refused
from doctor.fix.uv_python import lookup as uv_lookup
from doctor.fix.venv import env_dir_name, env_matches, read_marker, requirements_hash, venv_python
from doctor.head.facts import HeadFacts
from doctor.local.interpreter import LocalFacts
from doctor.local.tools import locate_conda
from doctor.model import Report, Result, Status
from doctor.options import TargetOptions
from doctor.pins import Pin
from doctor.remedies import conda_env_name, raydoctor
from doctor.versions import VersionSpec, release_equal

if TYPE_CHECKING:
    from doctor.context import CheckContext

DEFAULT_ENV_DIR = Path("envs")
DEFAULT_REQUIREMENTS = "packages.txt"
DEFAULT_LOCK_TIMEOUT_S = 600.0
# Finding codes the plan keys on: doctor.codes, which the checks that write them import too.
REQUIREMENTS_CHECK = "packages.requirements"

# Actions a plan can end in.
NOTHING = "nothing"  # the judged interpreter already matches the head
UP_TO_DATE = "up-to-date"  # the env fix would build exists and matches
BUILD = "build"
# Where the env's interpreter may come from (--python-source); auto tries them in this order:
# an exact one already here, uv's managed Pythons, conda, the same minor already here.
PYTHON_SOURCES = ("auto", "existing", "uv", "conda")
REBUILD = "rebuild"  # an earlier raydoctor env of that name holds something else: replaced atomically


@dataclass
class FixOptions:
    """Everything ``fix`` was asked to do; the CLI fills it from argv."""

    target: TargetOptions
    env_dir: Path = DEFAULT_ENV_DIR
    installer: str = "auto"
    use_conda: bool = True
    export: Path | None = None
    force: bool = False  # overwrite an --export file raydoctor did not write
    rebuild: bool = False  # rebuild an env that already matches
    dry_run: bool = False
    yes: bool = False
    verbose: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
    search_dirs: Sequence[Path] | None = None  # interpreters' folders (tests); None: pyenv, uv, PATH
    kernel: str | None = None  # --kernel [NAME]: register a Jupyter kernel ("" = the default name)
    kernel_prefix: Path | None = None  # --kernel-prefix DIR: DIR/share/jupyter/kernels, not the user's folder
    match_head: bool = False  # pin the packages of doctor.package_skew's breaking rows to the head's
    constraints: Path | None = None  # a team's constraints file (raydoctor lock), added to Ray's pin
    python_source: str = "auto"  # one of PYTHON_SOURCES


@dataclass(frozen=True)
class Checked:
    """What ``check`` judged, typed: the facts it gathered and its findings (read by ``code`` and status).

    Made from the check run's ``CheckContext`` (``from_run``); fix never reads a
    summary, a detail or a serialized dict to decide anything.
    """

    head: HeadFacts
    local: LocalFacts | None = None
    interpreter: str | None = None  # the judged interpreter's path, even when it could not be inspected
    chosen_by: str | None = None
    findings: tuple[Result, ...] = ()
    target: Mapping[str, Any] = field(default_factory=dict)
    requirements: Path | None = None  # the requirements file check judged
    error: str | None = None  # check could not run (a usage problem): fix cannot either
    error_exit_code: int | None = None
    resolution: Any = None  # doctor.facts.resolution.Resolution, when packages.resolution ran
    head_packages: Mapping[str, str] | None = None  # CheckContext.head_packages: --deep, --head-packages, the image
    head_packages_from: str | None = None  # which of them (HeadPackages.source)

    @classmethod
    def from_run(cls, report: Report, ctx: CheckContext | None) -> Checked:
        """The facts of a finished ``run_check`` (``ctx`` from its ``on_context``; None when check could not start)."""
        if ctx is None or report.error:
            return cls(HeadFacts(), error=report.error or "check could not run", error_exit_code=report.error_exit_code)
        try:
            head = ctx.head()
        except Exception as exc:  # already a finding of head.source; fix only needs to know it is unknown
            head = HeadFacts(problems=(f"{type(exc).__name__}: {exc}",))
        return cls(
            head,
            ctx.local_or_none(),
            ctx.interpreter_path,
            ctx.interpreter_chosen_by,
            tuple(report.results),
            dict(report.target),
            ctx.requirements_path,
            resolution=ctx.resolution_if_done(),
            **_head_packages(ctx),
        )

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(r.code for r in self.findings)

    def failed(self, check_id: str) -> bool:
        """Whether check ``check_id`` failed (or crashed)."""
        return any(r.id == check_id and r.status in (Status.FAIL, Status.ERROR) for r in self.findings)


def _head_packages(ctx: CheckContext) -> dict[str, Any]:
    """``head_packages`` and ``head_packages_from`` of ``Checked``, from the context's one answer."""
    try:
        known = ctx.head_packages()
    except Exception:  # a bad --head-packages file is packages.skew's finding
        return {}
    return {"head_packages": known.packages, "head_packages_from": known.source} if known is not None else {}


@dataclass(frozen=True)
class HeadTarget:
    """The versions the env must match, and how sure we are of the Python patch."""

    ray: str
    want: VersionSpec  # 3.12.9, or 3.12 when only the minor is known
    basis: str  # "exact" | "guess" (table of known image builds) | "minor"
    ray_source: str
    python_source: str

    @property
    def python(self) -> str:
        return str(self.want)

    def describe(self) -> str:
        """One line that says which of exact / guess / minor-only the Python is."""
        if self.basis == "exact":
            how = f"exact, from {self.python_source}"
        elif self.basis == "guess":
            how = (
                f"a guess from the {self.python_source}: the tag names only {self.want.minor}; "
                "--address on the running cluster reads the real patch"
            )
        else:
            how = (
                f"minor only, from {self.python_source}: any {self.python}.x; a driver joining the "
                "cluster needs the exact patch (--address on the running cluster reads it)"
            )
        return f"Ray {self.ray}, Python {self.python} ({how})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ray": self.ray,
            "python": self.python,
            "python_basis": self.basis,
            "ray_source": self.ray_source,
            "python_source": self.python_source,
        }


@dataclass(frozen=True)
class Judged:
    """The interpreter ``check`` judged, and whether it already is what fix would build."""

    executable: str | None
    python: str | None
    ray: str | None
    chosen_by: str | None
    matches: bool
    reasons: list[str] = field(default_factory=list)  # why it does not match

    def to_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "python": self.python,
            "ray": self.ray,
            "chosen_by": self.chosen_by,
            "matches": self.matches,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class InterpreterPlan:
    """Where the env's interpreter will come from: discovery's results and a provider's description.

    ``how``: "existing" (this exact patch is already here: used as is),
    "uv" (uv's managed Python ``uv_key``: installed already, or downloaded from
    ``uv_url``; ``found`` is the fallback when uv fails, in auto mode only),
    "conda" (conda creates ``conda_env``; its channels may only have the
    minor, then a warning; ``found`` is the fallback), "closest" (same minor,
    another patch, warned). Only the executor makes a provider of it
    (``doctor.fix.execute.provider_for``).
    """

    how: str
    want: VersionSpec
    found: Interpreter | None = None  # existing/closest: the interpreter; conda: the fallback
    conda_env: str | None = None
    conda_exe: Path | None = None
    conda_flavor: str | None = None
    warnings: tuple[str, ...] = ()  # what the executor repeats when it uses ``found``
    why: str = ""  # why this source (--python-source, and what the ones before it lacked)
    uv: UvLookup | None = None  # how == "uv": what uv has (key, url, install folder)
    way_out: str = ""  # what to try when every source of the plan failed (the one-line error's hint)

    @property
    def _creates(self) -> bool:
        return self.how in ("conda", "uv")

    @property
    def path(self) -> Path | None:
        return self.found.path if self.found and not self._creates else None

    @property
    def version(self) -> str | None:
        return self.found.version if self.found and not self._creates else None

    @property
    def source(self) -> str | None:
        return self.found.source if self.found and not self._creates else None

    @property
    def exact(self) -> bool:
        return self.how in ("existing", "uv")

    @property
    def creates(self) -> bool:
        """Whether the provider makes the interpreter (uv, conda): then the patch it hands may differ."""
        return self._creates

    @property
    def expected_version(self) -> str:
        """The Python the env will have, as far as the plan knows (the env's folder is named after it):
        the interpreter here, uv's key, else the head's."""
        if self.how == "uv" and self.uv is not None and self.uv.python is not None:
            return self.uv.python.version
        return self.version or str(self.want)

    def outcomes(self) -> tuple[str, ...]:
        """Each Python the provider chain may hand, as the plan knows it: the planned one first, then the
        minor (whatever patch conda's channels, or a failing uv's conda, give: ``EnvTarget.any_patch``),
        then the nearest patch here (the last fallback)."""
        out = [self.expected_version]
        if self._creates:
            out.append(self.want.minor)
            if self.found is not None:
                out.append(self.found.version)
        return tuple(dict.fromkeys(out))

    @property
    def downloads(self) -> str | None:
        """What carrying out the plan would download (uv's url), None when nothing."""
        py = self.uv.python if self.uv is not None else None
        return py.url if self.how == "uv" and py is not None and not py.installed else None

    @property
    def fallback(self) -> str | None:
        """What conda's or uv's failure would fall back to: for uv, conda where it is here, then the nearest patch."""
        if not self._creates:
            return None
        then = []
        if self.how == "uv" and self.conda_env is not None:
            then.append(f"conda env {self.conda_env} with python={self.want} (created by {self.conda_exe})")
        if self.found is not None:
            then.append(f"Python {self.found.version} from {self.found.source} ({self.found.path})")
        return "; if that fails: ".join(then) or None

    def describe(self) -> str:
        if self.how == "existing":
            return f"Python {self.version} from {self.source}: {self.path}"
        if self.how == "uv" and self.uv is not None:
            text = describe_lookup(self.uv)
            if self.fallback:
                text += f"; if uv fails: {self.fallback}"
            return text
        if self.how == "conda":
            text = (
                f"conda env {self.conda_env} with python={self.want} "
                f"(created by {self.conda_exe}, or reused if an earlier raydoctor run made it; "
                f"if the channels lack that patch, python={self.want.minor} with a warning)"
            )
            if self.fallback:
                text += f"; if conda fails: {self.fallback}"
            return text
        return f"Python {self.version} from {self.source}: {self.path} (not {self.want}: see the warning)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "want": str(self.want),
            "path": _s(self.path),
            "version": self.version,
            "source": self.source,
            "exact": self.exact,
            "conda_env": self.conda_env,
            "conda_exe": _s(self.conda_exe),
            "fallback": self.fallback,
            "why": self.why,
            "way_out": self.way_out,
            "uv": self._uv_dict(),
            "downloads": self.downloads,
        }

    def _uv_dict(self) -> dict[str, Any] | None:
        if self.how != "uv" or self.uv is None or self.uv.python is None:
            return None
        py = self.uv.python
        return {
            "uv": _s(self.uv.uv),
            "key": py.key,
            "installed": py.installed,
            "path": _s(py.path),
            "url": py.url,
            "install_dir": _s(self.uv.install_dir),
            "offline": self.uv.offline,
        }


@dataclass(frozen=True)
class InstallPlan:
    """What goes into the env: the requirements file, Ray pinned, the client extras."""

    installer: str  # "uv" | "pip" (resolved from auto)
    requirements: Path | None  # the user's file (packages.txt, another file, or environment.yml)
    count: int  # requirements in it (nested files included)
    constraints: list[str]
    extra: list[str]
    hash: str
    converted: str | None = None  # pip lines made from an environment.yml's dependencies
    because: list[str] = field(default_factory=list)  # why an extra beyond Ray is there (doctor.ray_bugs rows)

    def describe(self, cwd: Path) -> str:
        what = [
            f"{shown(self.requirements, cwd)} ({self.count} requirement{'s' if self.count != 1 else ''})"
            if self.requirements
            else "no requirements file: Ray only"
        ]
        what += self.extra
        text = f"{' + '.join(what)}, Ray pinned by the constraint {' '.join(self.constraints)}, with {self.installer}"
        return text + "".join(f"; {why}" for why in self.because)

    @contextmanager
    def files(self) -> Iterator[list[Path]]:
        """The requirements files to hand to the installer (an environment.yml becomes a pip file)."""
        if self.requirements is None:
            yield []
        elif self.converted is None:
            yield [self.requirements]
        else:
            with tempfile.TemporaryDirectory(prefix="raydoctor-yml-") as tmp:
                yield [_write_converted(Path(tmp), self.converted)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "installer": self.installer,
            "requirements": _s(self.requirements),
            "count": self.count,
            "constraints": list(self.constraints),
            "extra": list(self.extra),
            "hash": self.hash,
            "from_environment_yml": self.converted is not None,
            "because": list(self.because),
        }


# What an env folder holds, judged once by ``make_plan`` (``env_state``); execute only checks it still does.
ABSENT = "absent"  # nothing at that path
OURS = "ours"  # an env raydoctor built, for something else (or --rebuild)
MATCHES = "matches"  # an env raydoctor built that holds what the plan wants
FOREIGN = "foreign"  # something raydoctor did not create: never touched
REFUSE = "refuse"  # the action for a FOREIGN folder: stop, leaving it alone


def env_action(state: str, *, rebuild: bool) -> str:
    """What fix does with an env folder in ``state``: the one rule, for the planned env and each fallback's."""
    if state == FOREIGN:
        return REFUSE
    if state == MATCHES and not rebuild:
        return UP_TO_DATE
    return REBUILD if state in (OURS, MATCHES) else BUILD


@dataclass(frozen=True)
class EnvTarget:
    """One env folder the plan may end in, and what it held when the plan was made.

    The planned env is named after the Python the plan expects; a provider that falls back (uv's download
    fails, then conda or the nearest patch here) hands another Python, and the env then goes to the folder
    named after that one, which the plan lists too (``Plan.fallbacks``), its state judged at plan time.
    ``any_patch``: the folder for a patch of the minor no entry names (conda's channels choose it).
    """

    python: str  # the Python the env's interpreter is (its folder is named after it)
    path: Path
    state: str  # ABSENT | OURS | MATCHES | FOREIGN, at plan time
    action: str  # env_action(state): BUILD | REBUILD | UP_TO_DATE | REFUSE
    built: Mapping[str, Any] = field(default_factory=dict)  # its trusted marker at plan time (OURS, MATCHES)
    any_patch: bool = False

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, Any]:
        return {"python": self.python, "name": self.name, "path": str(self.path), "state": self.state}


@dataclass(frozen=True)
class Plan:
    """The whole plan: what the head runs, what is here, and what fix will create.

    Frozen: ``make_plan`` settles everything (the interpreter, the env and each fallback's, the kernel's
    Python, the pins) and ``doctor.fix.execute`` only carries it out.
    """

    action: str
    reason: str
    head: HeadTarget
    judged: Judged
    env: EnvTarget
    cwd: Path
    interpreter: InterpreterPlan | None = None
    install: InstallPlan | None = None
    export: Path | None = None
    verify: bool = True
    roundtrip: bool = True
    warnings: tuple[str, ...] = ()
    findings: tuple[Mapping[str, str], ...] = ()  # check's failures and warnings, before
    target: Mapping[str, Any] = field(default_factory=dict)
    checked: Checked | None = None  # what the plan was made from (not serialized: findings are)
    kernel: KernelPlan | None = None  # with --kernel
    kernel_python: str | None = None  # the Python the kernel will run, as the plan knows it
    head_packages_from: str | None = None  # --match-head: where the head's packages were read
    env_suffix: str = ""  # "-jobs" for the job-client env of --mode jobs
    fallbacks: tuple[EnvTarget, ...] = ()  # where each fallback's Python would build (see EnvTarget)
    rebuild: bool = False  # --rebuild: an env that matches is built again

    @property
    def env_name(self) -> str:
        return self.env.name

    @property
    def env_path(self) -> Path:
        return self.env.path

    def env_name_for(self, python: str) -> str:
        """The env folder's name for an interpreter of ``python``: named after what it really holds."""
        return env_dir_name(self.head.ray, python) + self.env_suffix

    def target_for(self, python: str) -> EnvTarget | None:
        """The env an interpreter of ``python`` builds: the planned one or a fallback's; None when the plan
        foresaw no such Python (docs/fix.md: then fix stops)."""
        targets = (self.env, *self.fallbacks)
        exact = next((t for t in targets if t.python == python and not t.any_patch), None)
        if exact is not None:
            return exact
        spec = VersionSpec.read(python)
        return next((t for t in targets if t.any_patch and spec is not None and spec.minor == t.python), None)

    def state_now(self, target: EnvTarget) -> str:
        """What ``target`` holds now, judged by the rule the plan used: execute compares it with
        ``target.state`` to notice a world that changed since (another fix, a folder that appeared)."""
        assert self.install is not None and self.interpreter is not None
        return env_state(target.path, self.head, self.install.hash, self.interpreter)[0]

    @property
    def acts(self) -> bool:
        """Whether carrying out the plan creates or changes anything."""
        return self.action in (BUILD, REBUILD) or self.kernel is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "head": self.head.to_dict(),
            "judged": self.judged.to_dict(),
            "env": {"name": self.env_name, "path": str(self.env_path)},
            "interpreter": self.interpreter.to_dict() if self.interpreter else None,
            "install": self.install.to_dict() if self.install else None,
            "export": _s(self.export),
            "verify": {"check": self.verify, "roundtrip": self.roundtrip},
            "warnings": list(self.warnings),
            "findings": [dict(f) for f in self.findings],
            "target": dict(self.target),
            "kernel": self.kernel.to_dict(self.kernel_python) if self.kernel is not None else None,
            "head_packages_from": self.head_packages_from,
        }


# -- small helpers -----------------------------------------------------------------


def _s(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def shown(path: Path | None, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when it is inside it (what a user would type), else absolute."""
    if path is None:
        return "-"
    try:
        return str(Path(path).absolute().relative_to(cwd.absolute()))
    except ValueError:
        return str(path)


def activation_commands(env: Path, cwd: Path) -> dict[str, str]:
    """How to activate the venv at ``env`` in each shell, with paths as the user would type them.

    uv and virtualenv write ``activate.ps1`` and the stdlib ``venv`` writes
    ``Activate.ps1``; the one that exists is named (Windows does not care).
    """
    rel = shown(env, cwd)
    if os.name == "nt":
        scripts = rel.replace("/", "\\") + "\\Scripts"
        return {
            "bash/zsh": f"source {shlex.quote(rel.replace(chr(92), '/') + '/Scripts/activate')}",
            "PowerShell": f"{scripts}\\Activate.ps1",
            "cmd": f"{scripts}\\activate.bat",
        }
    bindir = Path(env) / "bin"
    ps1 = next((n for n in ("Activate.ps1", "activate.ps1") if (bindir / n).exists()), "Activate.ps1")
    prefix = "" if rel.startswith(("/", "./", "../")) else "./"
    return {
        "bash/zsh": f"source {shlex.quote(rel + '/bin/activate')}",
        "fish": f"source {shlex.quote(rel + '/bin/activate.fish')}",
        "PowerShell": f"& '{prefix}{rel}/bin/{ps1}'",
    }


# -- from what check judged -----------------------------------------------------------


def gather(
    target: TargetOptions,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    verbose: bool = False,
) -> tuple[Report, Checked]:
    """Run ``check`` on ``target`` and keep its typed facts (read-only: checks create nothing)."""
    from doctor.app import run_check

    contexts: list[CheckContext] = []
    report = run_check(target, environ=environ, cwd=cwd, verbose=verbose, on_context=contexts.append)
    return report, Checked.from_run(report, contexts[0] if contexts else None)


def head_target(head: HeadFacts) -> HeadTarget:
    """The head's Ray and Python from check's facts; UsageError (exit 2) when either is unknown.

    fix cannot guess what to build without both, so it refuses in one line
    that says what was tried and how to learn the missing version.
    """
    want = VersionSpec.read(head.python.value) if head.python is not None else None
    missing = [name for name, known in (("Ray", bool(head.ray_version)), ("Python", want is not None)) if not known]
    if missing:
        problems = "; ".join(str(p) for p in head.problems) or "no source had it"
        tried = ", ".join(head.sources_tried) or "nothing"
        raise UsageError(
            f"the head's {' and '.join(missing)} version{'s are' if len(missing) > 1 else ' is'} unknown "
            f"(tried: {tried}; {problems}), so fix does not know what to build",
            hint="start the cluster and pass --address HOST:8265, or name the image with "
            f"--image rayproject/ray:VERSION-pyXY; `{raydoctor(['check'])}` shows what is known",
        )
    assert want is not None and head.ray is not None and head.python is not None
    basis = ("exact" if head.python.exact else "guess") if want.exact else "minor"
    return HeadTarget(str(head.ray.value), want, basis, head.ray.source, head.python.source)


def jobs_head_target(checked: Checked) -> HeadTarget:
    """``--mode jobs``: the head's Ray for the job client; the Python is whichever is here, since the Jobs
    API runs the entrypoint in the cluster's own Python (``ray/dashboard/modules/job/sdk.py`` is HTTP)."""
    head = checked.head
    if not head.ray_version or head.ray is None:
        raise UsageError(
            "the head's Ray version is unknown, so fix does not know which job client to install",
            hint="start the cluster and pass --address HOST:8265; `raydoctor check --mode jobs` shows what is known",
        )
    local = checked.local.python if checked.local is not None else None
    want = VersionSpec.read(local) if local else None
    if want is None:
        want = VersionSpec.read(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert want is not None
    return HeadTarget(
        head.ray_version, want, "exact" if want.exact else "minor", head.ray.source, "any Python (jobs mode)"
    )


def judge_local(checked: Checked, head: HeadTarget, mode: str, pins: Sequence[Pin] = ()) -> Judged:
    """Whether the judged interpreter already is what fix would build.

    Stricter than check's verdict on purpose: Ray equal, Python equal to the
    patch (when the head's patch is known), the Ray Client extras present
    (client mode: no ``packages.client_extras.missing`` finding), the
    requirements file satisfied (``packages.requirements`` did not fail), and
    with ``--match-head`` every package it pins (``pins``) that
    this interpreter has at the head's version.
    """
    local = checked.local
    reasons: list[str] = []
    if mode == "jobs":  # only the job client matters (jobs.client): any Python, any Ray the Jobs API accepts
        if JOBS_CLIENT_OK not in checked.codes:
            reasons.append("Ray's job client (ray[default]) does not import")
    elif local is None:
        reasons.append("it could not be inspected")
    else:
        if not head.want.satisfies(local.python):
            reasons.append(f"Python {local.python} ≠ {head.python}")
        if local.ray is None:
            reasons.append("Ray is not installed")
        elif not release_equal(local.ray, head.ray):
            reasons.append(f"Ray {local.ray} ≠ {head.ray}")
    if mode == "client" and CLIENT_EXTRAS_MISSING in checked.codes:
        reasons.append("the Ray Client extras (ray[client]) are missing")
    if checked.failed(REQUIREMENTS_CHECK):
        name = checked.requirements.name if checked.requirements else "the requirements file"
        reasons.append(f"the requirements of {name} are not met")
    here = local.distributions if local is not None else {}
    for pin in pins:
        if pin.name in here and here[pin.name] != pin.version:
            reasons.append(f"--match-head: {pin.name} {here[pin.name]} here, {pin.version} on the cluster")
    return Judged(
        local.executable if local else checked.interpreter,
        local.python if local else None,
        local.ray if local else None,
        local.chosen_by if local else checked.chosen_by,
        not reasons,
        reasons,
    )


def findings(checked: Checked) -> list[dict[str, str]]:
    """check's failures and warnings, for the plan's "why" (shown, never read back)."""
    bad = (Status.FAIL, Status.ERROR, Status.WARN)
    return [
        {"id": r.id, "code": r.code, "status": r.status.value, "summary": r.summary}
        for r in checked.findings
        if r.status in bad
    ]


# -- requirements -------------------------------------------------------------------


def requirements_path(options: TargetOptions, cwd: Path) -> Path | None:
    """``--requirements`` (relative to ``cwd``), else ``packages.txt`` in ``cwd`` if there is one."""
    if options.requirements is not None:
        path = Path(options.requirements)
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            raise UsageError(f"--requirements {options.requirements}: no such file")
        return path
    default = cwd / DEFAULT_REQUIREMENTS
    return default if default.is_file() else None


_CONVERTED_NAME = "requirements-from-environment-yml.txt"


def _write_converted(folder: Path, text: str) -> Path:
    """The converted file always has the same name, so its hash depends only on its content."""
    path = folder / _CONVERTED_NAME
    path.write_text(text, encoding="utf-8")
    return path


def _from_environment_yml(path: Path) -> tuple[str, int, list[str]]:
    """(pip requirements text, count, notes) from an environment.yml's dependencies."""
    from doctor.local.requirements import load_requirements

    reqs = load_requirements(path)
    lines = [f"# from {path.name} (raydoctor fix)", *reqs.pip_lines()]  # pip: options and includes kept
    notes = [f"{path.name}: conda dependencies are installed with pip (python and pip themselves excepted)"]
    if reqs.python and reqs.python.strip("=") and not reqs.python.startswith(("<", ">")):
        notes.append(f"{path.name} asks for python={reqs.python}; the env follows the head's Python instead")
    return "\n".join(lines) + "\n", len(reqs.requirements), notes + list(reqs.notes)


def extra_pins(options: FixOptions, checked: Checked, head: HeadTarget, cwd: Path) -> list[tuple[Pin, str]]:
    """(pin, where from) beyond Ray's: ``--constraints FILE`` and ``--match-head`` (the head's wins)."""
    from doctor.package_skew import read_pins

    out: dict[str, tuple[Pin, str]] = {}
    if options.constraints is not None:
        path = options.constraints if options.constraints.is_absolute() else cwd / options.constraints
        for name, version in read_pins(path).items():
            if name != "ray":  # Ray follows the head
                out[name] = (Pin(name, version), str(options.constraints))
    if options.match_head:
        for pin in match_head_pins(checked):
            out[pin.name] = (pin, "the cluster")
    return list(out.values())


def match_head_pins(checked: Checked) -> list[Pin]:
    """``--match-head``: the head's ``Pin`` for each breaking row of ``doctor.package_skew`` it has;
    UsageError when no source (the ``--deep`` probe of the running head, ``--head-packages``, the image) had them."""
    from doctor.package_skew import matched_pins

    if checked.head_packages is None:
        raise UsageError(
            "--match-head: the cluster's packages are unknown",
            hint="the cluster must be running (fix asks it with a probe job), or give --head-packages FILE",
        )
    return matched_pins(checked.head_packages)


def plan_install(
    requirements: Path | None,
    ray: str,
    installer: str,
    extra_requirement: str | None = None,
    *,
    extra_pins: Sequence[tuple[Pin, str]] = (),
) -> tuple[InstallPlan, list[str]]:
    """(what to install, warnings): the file, ``ray==HEAD`` as a constraint, ``ray[client]==HEAD``
    (or ``extra_requirement``: ``ray[default]==HEAD`` for the Jobs API's client), what Ray's known bugs
    need beside that Ray (``doctor.ray_bugs.pins_for``: setuptools<81 for Ray before 2.10), and ``extra_pins``."""
    from doctor.ray_bugs import pins_for

    resolved = choose_installer(installer).name
    bug_pins = pins_for(ray)
    extra = [extra_requirement or ray_client_requirement(ray), *(pin for pin, _ in bug_pins)]
    warnings: list[str] = []
    converted: str | None = None
    count = 0
    if requirements is not None and requirements.suffix in (".yml", ".yaml"):
        converted, count, notes = _from_environment_yml(requirements)
        warnings += notes
    elif requirements is not None:
        from doctor.local.requirements import load_requirements

        count = len(load_requirements(requirements).requirements)
    because = [f"{pin}: Ray {ray} is affected by the known Ray bug {bug.key} ({bug.symptom})" for pin, bug in bug_pins]
    reading = InstallPlan(resolved, requirements, count, [], extra, "", converted, because)
    with reading.files() as files:
        constraints, pin_warnings = ray_constraint(files, ray)
        for source in dict.fromkeys(where for _, where in extra_pins):
            more, more_warnings = pin_constraints(files, [p for p, w in extra_pins if w == source], source)
            constraints, pin_warnings = [*constraints, *more], [*pin_warnings, *more_warnings]
        plan = replace(reading, constraints=constraints, hash=requirements_hash(files, [*constraints, *extra]))
    if converted is not None:  # name the user's file, not the temporary copy
        pin_warnings = [w.replace(_CONVERTED_NAME, requirements.name) for w in pin_warnings]  # type: ignore[union-attr]
    return plan, warnings + pin_warnings


# -- the plan -----------------------------------------------------------------------


def plan_interpreter(
    want: VersionSpec,
    conda_name: str,
    *,
    use_conda: bool,
    environ: Mapping[str, str],
    search_dirs: Sequence[Path] | None,
    source: str = "auto",
    cwd: Path | None = None,
    known: Sequence[LocalFacts] = (),
) -> tuple[InterpreterPlan, list[str]]:
    """Where the interpreter will come from, decided without creating anything.

    ``source`` (``--python-source``): "auto" tries, in order, the exact patch already
    here, uv's managed Pythons (installed, or downloadable: ``uv python list``, which
    creates nothing), conda (located, not called), then the same minor already here with
    the patch rule's warning; "existing", "uv" and "conda" use only that source and
    fail in one line when it cannot help. ``--no-conda`` drops conda from auto. ``known``: the
    interpreters check already probed in this run, which discovery does not run again.
    """
    if source not in PYTHON_SOURCES:
        raise UsageError(f"--python-source {source}: expected one of {', '.join(PYTHON_SOURCES)}")
    use_conda = use_conda and source in ("auto", "conda")
    found = discover(want, use_conda=use_conda, search_dirs=search_dirs, environ=environ, known=known)
    if found.exact is not None and source in ("auto", "existing"):
        why = f"Python {found.exact.version} is already here ({found.exact.source}): nothing to download or create"
        return InterpreterPlan("existing", want, found.exact, why=why), []
    missing = f"no Python {want} on this machine" if want.exact else f"no Python {want.minor} on this machine"
    notes: list[str] = []
    if source in ("auto", "uv"):
        uv = uv_lookup(want, environ=environ, cwd=cwd)
        reason = uv.reason
        if uv.python is not None and not uv.python.installed:
            reason = downloads_refused(environ) or ""
        if uv.python is not None and not reason:
            fallback = found.closest if source == "auto" else None
            how = "already installed" if uv.python.installed else "can install it"
            why = (
                "--python-source uv" if source == "uv" else f"{missing} (pyenv, uv's folder, PATH)"
            ) + f"; uv's managed Pythons {how} ({uv.python.key})"
            # A download that fails (offline, a network that blocks it) goes on to conda where it is here.
            conda = found.conda if source == "auto" else None
            return InterpreterPlan(
                "uv",
                want,
                fallback,
                conda_env=conda_name if conda else None,
                conda_exe=conda.exe if conda else None,
                conda_flavor=conda.flavor if conda else None,
                uv=uv,
                why=why,
                way_out=_way_out(want, conda_here=conda is None and locate_conda(environ) is not None),
            ), []
        if source == "uv":
            raise FixError(f"--python-source uv: {reason}")
        notes.append(f"uv: {reason}")
    if found.conda is not None:
        fallback = found.closest if source == "auto" else None
        why = "--python-source conda" if source == "conda" else "; ".join([missing, *notes, "conda is here"])
        plan = InterpreterPlan(
            "conda",
            want,
            fallback,
            conda_env=conda_name,
            conda_exe=found.conda.exe,
            conda_flavor=found.conda.flavor,
            why=why,
        )
        return plan, []
    if source == "conda":
        why = "--no-conda" if not use_conda else "no conda, mamba or micromamba ($CONDA_EXE, $MAMBA_EXE, PATH)"
        raise FixError(f"--python-source conda: {why}")
    if found.closest is not None:
        warning = closest_warning(want, found.closest)
        why = "; ".join([missing, *notes, "no conda" + ("" if use_conda or source != "auto" else " (--no-conda)")])
        plan = InterpreterPlan("closest", want, found.closest, warnings=(warning,), why=why)
        hint = "" if use_conda or source == "existing" else " (--no-conda)"
        return plan, [f"no conda here{hint}: {warning}"]
    raise no_interpreter(want, conda_name, notes)


def _way_out(want: VersionSpec, *, conda_here: bool) -> str:
    """What is left when uv (and what follows it in the plan) could not give Python ``want``."""
    if conda_here:
        return "conda is here: run fix again with --python-source conda"
    return (
        f"install Python {want} (pyenv install {want}, or conda, then --python-source conda), "
        "or point uv at a reachable copy of its downloads (UV_PYTHON_INSTALL_MIRROR)"
    )


def make_plan(
    options: FixOptions,
    checked: Checked,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Plan:
    """Turn what check judged into a plan, settled whole: the interpreter, the env and each fallback's env
    (their state judged here, once), the kernel and the Python it runs, the pins. Raises UsageError/FixError
    when fix cannot go on."""
    environ = dict(os.environ if environ is None else environ)
    cwd = (cwd or Path.cwd()).absolute()
    if checked.error:
        raise UsageError(checked.error)
    jobs_mode = options.target.mode == "jobs"
    head = jobs_head_target(checked) if jobs_mode else head_target(checked.head)
    pins = match_head_pins(checked) if options.match_head else []
    judged = judge_local(checked, head, options.target.mode, pins)
    suffix = "-jobs" if jobs_mode else ""
    env_dir = options.env_dir if options.env_dir.is_absolute() else cwd / options.env_dir
    export = None
    if options.export is not None:
        from doctor.fix.export import check_export_target

        export = options.export if options.export.is_absolute() else cwd / options.export
        check_export_target(export, force=options.force)

    def kernel_for(env_name: str, python: str, envs: list[Path]) -> KernelPlan | None:
        """The kernelspec step, named after the env and the Python it really holds."""
        if options.kernel is None:
            return None
        return plan_kernel(
            options.kernel,
            env_name=env_name,
            prefix=options.kernel_prefix,
            ray=head.ray,
            python=python,
            target=checked.target,
            environ=environ,
            cwd=cwd,
            envs=envs,
        )

    name = env_dir_name(head.ray, head.python) + suffix
    plan = Plan(
        action=NOTHING,
        reason="",
        head=head,
        judged=judged,
        env=EnvTarget(head.python, env_dir / name, ABSENT, NOTHING),
        cwd=cwd,
        export=export,
        verify=True,
        roundtrip=options.target.roundtrip,
        findings=tuple(findings(checked)),
        target=checked.target,
        checked=checked,
        head_packages_from=checked.head_packages_from if options.match_head else None,
        env_suffix=suffix,
        rebuild=options.rebuild,
    )
    if judged.matches and not options.rebuild:  # nothing to build: the kernel (if any) runs the judged one
        kernel = kernel_for(
            name, head.python, [Path(str(judged.executable)).parent.parent] if judged.executable else []
        )
        if jobs_mode:
            reason = f"{judged.executable} already has a working job client (ray[default]); jobs need no env matching"
        else:
            reason = (
                f"{judged.executable} already has Ray {judged.ray} and Python {judged.python}, "
                "as the head does, and the requirements are met"
                + (f"; the packages --match-head pins are the head's ({', '.join(map(str, pins))})" if pins else "")
            )
        return replace(plan, reason=reason, kernel=kernel, kernel_python=judged.python if kernel else None)
    kernel_for(name, head.python, [])  # a kernelspec raydoctor did not write fails here, before any work
    warnings: list[str] = []
    if head.basis == "guess":
        warnings.append(
            f"the head's Python patch {head.python} is a guess from a table of known image builds; "
            "run fix with --address on the running cluster to build for the real patch"
        )
    # jobs mode: the requirements go to the cluster (the runtime_env's pip list), not into the local env.
    requirements = None if jobs_mode else requirements_path(options.target, cwd)
    refuse_unresolvable(checked, head, requirements)
    install, install_warnings = plan_install(
        requirements,
        head.ray,
        options.installer,
        f"ray[default]=={head.ray}" if jobs_mode else None,
        extra_pins=extra_pins(options, checked, head, cwd),
    )
    warnings += install_warnings
    interpreter, interp_warnings = plan_interpreter(
        head.want,
        conda_env_name(head.ray, head.python),
        use_conda=options.use_conda,
        environ=environ,
        search_dirs=options.search_dirs,
        source=options.python_source,
        cwd=cwd,
        known=(checked.local,) if checked.local is not None else (),  # check probed it: not run again
    )
    plan = replace(plan, interpreter=interpreter, install=install)

    def target(python: str, *, any_patch: bool = False) -> EnvTarget:
        path = env_dir / plan.env_name_for(python)
        state, marker = env_state(path, head, install.hash, interpreter)
        return EnvTarget(python, path, state, env_action(state, rebuild=options.rebuild), marker, any_patch)

    # Named after the Python the env will really have (3.12.1 when that is the closest here).
    env, *others = (target(p, any_patch=interpreter.creates and p == head.want.minor) for p in interpreter.outcomes())
    fallbacks = tuple(others)
    kernel = kernel_for(env.name, interpreter.expected_version, [env.path])
    plan = replace(plan, env=env, fallbacks=fallbacks, kernel=kernel, action=env.action)
    dest = env.path
    if env.action == REFUSE:
        raise FixError(
            f"{shown(dest, cwd)} exists and raydoctor did not create it: leaving it alone",
            hint="move it away, or build elsewhere with --env-dir DIR",
        )
    if env.action == UP_TO_DATE:
        built = env.built.get("interpreter_version")
        reason = (
            f"{shown(dest, cwd)} already holds Ray {head.ray} on Python "
            f"{built or head.python} with these requirements (built by raydoctor)"
        )
        return replace(plan, reason=reason, warnings=tuple(warnings), kernel_python=built if kernel else None)
    warnings += interp_warnings
    if env.action == REBUILD and options.rebuild:
        reason = f"--rebuild: {shown(dest, cwd)} is rebuilt and replaced only once complete"
    elif env.action == REBUILD:
        reason = (
            f"{shown(dest, cwd)} was built by raydoctor for something else "
            f"({_marker_summary(env.built)}); a new env replaces it only once complete"
        )
    else:
        why = "; ".join(judged.reasons) or "--rebuild"
        reason = f"{judged.executable or 'the judged interpreter'} does not match the head: {why}"
    return replace(plan, reason=reason, warnings=tuple(warnings), kernel_python=interpreter.version if kernel else None)


def refuse_unresolvable(checked: Checked, head: HeadTarget, requirements: Path | None) -> None:
    """No build that uv's resolver already says will fail (``packages.resolution.unsatisfiable``):
    one line naming each pin to change and the nearest release that fits."""
    if RESOLUTION_UNSATISFIABLE not in checked.codes:
        return
    from doctor.facts.resolution import changes

    res = checked.resolution
    pins = "; ".join(changes(res.failing)) if res is not None and res.failing else "see packages.resolution"
    name = requirements.name if requirements else "the requirements file"
    raise FixError(
        f"{name} cannot be installed for Python {head.python}: change {pins}",
        hint="edit those pins and run fix again; `raydoctor check` says why each one does not fit",
    )


def _marker_summary(marker: Mapping[str, Any]) -> str:
    return (
        f"Ray {marker.get('ray_version')}, Python {marker.get('interpreter_version') or marker.get('python_version')}, "
        f"requirements {str(marker.get('requirements_hash', ''))[:15]}…"
    )


def env_state(
    dest: Path, head: HeadTarget, requirements_hash: str, interpreter: InterpreterPlan
) -> tuple[str, Mapping[str, Any]]:
    """(what the folder at ``dest`` holds, its trusted marker): ABSENT, FOREIGN (raydoctor did not create
    it), MATCHES or OURS (built by raydoctor for something else).

    MATCHES needs the head's Ray and Python, the same requirements, and no better interpreter appeared since
    it was built: an env built from a nearby patch (3.12.1 for a 3.12.9 head) is rebuilt once the exact
    patch is on this machine.
    """
    if not (dest.exists() or dest.is_symlink()):
        return ABSENT, {}
    marker = read_marker(dest)
    if marker is None or marker.get("created_by") != "raydoctor":
        return FOREIGN, {}
    if not env_matches(dest, ray_version=head.ray, python_version=head.python, requirements_hash=requirements_hash):
        return OURS, marker
    built = marker.get("interpreter_version")
    if interpreter.how == "existing" and built and built != interpreter.version:
        return OURS, marker
    return (MATCHES if venv_python(dest).exists() else OURS), marker
