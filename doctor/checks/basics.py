"""Part 1 of check: what the head is, what the local side is, and Ray's verdict on both.

Each finding carries a stable ``code`` (``versions.python.minor_mismatch``, ...): ``fix``
and scripts key on it, never on the wording. The verdicts come from ``doctor.rules``.
"""

from __future__ import annotations

import shlex

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from doctor import remedies
from doctor.codes import CLIENT_EXTRAS_MISSING
from doctor.context import CheckContext
from doctor.facts.target import DEFAULT_COMPOSE, editable_compose
from doctor.local.interpreter import InterpreterError, LocalFacts
from doctor.local.requirements import mask_credentials
from doctor.model import Edit, Remediation, Result, Status, finding
from doctor.origin import PythonOrigin
from doctor.rules import GUESSED_PATCH, Verdict, judge_python, judge_ray
from doctor.runner import Check
from doctor.versions import VersionSpec

# Ray Client needs these on the client side: ray's `client` extra
# (python/setup.py in ray-project/ray: setup_spec.extras["client"] holds grpcio).
CLIENT_EXTRA = ("grpcio",)
# Dashboard errors that mean nothing answered at the address (doctor.head.dashboard.DashboardError.kind).
UNREACHABLE_KINDS = {"refused", "timeout", "unreachable", "unresolvable"}


def head_source(ctx: CheckContext) -> Result:
    """Say what is known about the head and where it came from; a dead target is a finding."""
    facts = ctx.head()
    target = ctx.target
    known = ", ".join(
        f"{name} {fact.describe()}" if fact else f"{name} ?"
        for name, fact in (("Ray", facts.ray), ("Python", facts.python))
    )
    details = [
        f"{name}: {fact.value} (from {fact.source}{'' if fact.exact else ', a guess'})"
        for name, fact in (("ray", facts.ray), ("python", facts.python))
        if fact
    ]
    details += [f"note: {p}" for p in facts.problems]
    if facts.live:
        auth = f", auth {facts.auth_mode}" if facts.auth_mode else ""
        where = target.address.dashboard_url if target.address else "the head"
        return finding(
            Status.OK,
            f"Ray {facts.ray_version}, Python {facts.python_version} from the running cluster at {where}{auth}",
            code="head.source.live",
            details=details,
        )
    if facts.from_roundtrip and facts.ray and facts.python:
        return _known_by_roundtrip(ctx, facts.from_roundtrip, details)
    if target.kind == "address":
        return _dead_target(ctx, known, details)
    if facts.ray is None or facts.python is None:
        how = (
            "point raydoctor at the running cluster with --address HOST:8265, or pull the image so Docker can be asked"
        )
        return finding(
            Status.WARN,
            f"the head's versions are unknown ({'; '.join(facts.problems) or 'no source had them'})",
            code="head.source.versions_unknown",
            details=details,
            fix=Remediation(how.capitalize() + ".", (remedies.raydoctor_check("127.0.0.1:8265", ctx.environ),)),
        )
    if target.kind == "compose" and target.address is not None:
        inside = _inside(ctx, known, details)
        if inside is not None:
            return inside
        if facts.live_error_kind in UNREACHABLE_KINDS:
            # The cause in tcp.describe's one wording, as network.dashboard says it.
            cause = facts.live_error or f"{target.address.dashboard_url}: {facts.live_error_kind}"
            summary = f"{known}; the cluster is not running: {cause}"
            # The one place that says how to start it (network.ports and network.dashboard point here).
            return finding(
                Status.WARN,
                summary,
                code="head.source.cluster_down",
                details=details,
                fix=start_remedy(ctx),
            )
        if facts.live_error:
            return _dead_target(ctx, known, details)
    return finding(Status.OK, known, code="head.source.known", details=details)


def start_remedy(ctx: CheckContext) -> Remediation:
    """How to start the compose cluster, unless Docker would refuse its file on this engine as it is (a
    service's CPU limit above the engine's CPUs): then ``fix --cluster`` first, not a command that fails."""
    project, target = ctx.target.compose, ctx.target
    refusals: list[str] = []
    if project is not None and any(svc.cpus_limit for svc in project.services.values()):
        engine_cpus = ctx.docker_engine().ncpu
        refusals = [
            f"{svc.name}: '{refusal}'"
            for svc in project.services.values()
            if (refusal := svc.cpus_refusal(engine_cpus)) is not None
        ]
    if not refusals:
        return remedies.start_compose(target.compose_path or "", ctx.docker_cli())
    fix = remedies.raydoctor(["fix", "--cluster", *remedies.target_flags(ctx.options)], ctx.environ)
    commands: tuple[str, ...] = (fix,)
    named = ctx.options.compose is not None or ctx.options.cluster_file is not None
    if target.compose_path and not editable_compose(target.compose_path, named, ctx.cwd):
        # raydoctor's own copy is not edited: a copy in this folder is, and is then the default target.
        copy = ctx.cwd / DEFAULT_COMPOSE
        commands = (
            shlex.join(["mkdir", "-p", str(copy.parent)]),
            shlex.join(["cp", str(target.compose_path), str(copy)]),
            fix,
        )
    return remedies.start_compose(target.compose_path or "", ctx.docker_cli(), refusals, commands)


def _inside(ctx: CheckContext, known: str, details: list[str]) -> Result | None:
    """A compose head read from inside its container: one that exited (its log says why), or one that
    runs without its dashboard (said to run: its GCS and client server answer)."""
    from doctor.checks.network import inside_view

    if ctx.head().live_error_kind is None:
        return None
    view = inside_view(ctx)
    if view is None or view.head is None:
        return None
    head = view.head
    if view.dashboard_died:
        return finding(
            Status.WARN,
            f"{known}; the head runs ({head.name}: {head.status}) without its dashboard: {view.dashboard_err.error}",
            code="head.source.runs_without_dashboard",
            details=[*details, f"{view.dashboard_err.source}:", *view.dashboard_err.quoted()],
            fix=Remediation("The dashboard died at start: network.dashboard says what its log says and what to do."),
            data={"container": head.name, "state": head.state},
        )
    if not head.running:
        log = view.head_log
        cause = f": {log.error}" if log is not None and log.error else ""
        start = start_remedy(ctx)
        return finding(
            Status.FAIL,
            f"{known}; the head container {head.name} is not running ({head.status}){cause}",
            code="head.source.head_exited",
            details=[*details, *([f"{log.source}:", *log.quoted()] if log is not None else [])],
            fix=Remediation(
                "Fix what the head's log says (above), then start the cluster again. " + start.text, start.commands
            ),
            data={"container": head.name, "state": head.state},
        )
    return None


def dashboard_hint(ctx: CheckContext) -> tuple[str, str]:
    """How to point raydoctor at the dashboard: the sentence and the command (``--address host:8265``)."""
    address = ctx.target.address
    host = address.host_for_url if address is not None else "HEAD"
    command = remedies.raydoctor_check(f"{host}:8265", ctx.environ)
    text = (
        "Point raydoctor at the dashboard to check the cluster itself: --address HOST:DASHBOARD_PORT "
        "(`--dashboard-port` on `ray start --head`, default 8265; published or forwarded to this machine)."
    )
    return text, command


def _known_by_roundtrip(ctx: CheckContext, client_url: str, details: list[str]) -> Result:
    """Only the Ray Client address was given and the dashboard is not where it was guessed, but the round
    trip answered: its task's Ray and Python are the head's. A connection that works is not a failure."""
    facts = ctx.head()
    address = ctx.target.address
    guessed = address.dashboard_url if address is not None else "the dashboard"
    text, command = dashboard_hint(ctx)
    return finding(
        Status.WARN,
        f"Ray {facts.ray_version}, Python {facts.python_version} from the round trip through {client_url}; "
        f"the dashboard is not at {guessed} ({facts.live_error_kind or 'no answer'}), so the checks that need it "
        "are skipped",
        code="head.source.roundtrip",
        details=details + ([f"dashboard: {facts.live_error}"] if facts.live_error else []),
        fix=Remediation(text, (command,)),
        data={"kind": facts.live_error_kind, "from_roundtrip": client_url},
    )


def _ray_status(ctx: CheckContext) -> tuple[str, ...]:
    """``ray status`` against the head, with the judged env's own ``ray``; nothing when that env has none."""
    local = ctx.local_or_none()
    return remedies.ray_status(local.executable if local is not None and local.ray else None, ctx.target.address)


def _dead_target(ctx: CheckContext, known: str, details: list[str]) -> Result:
    facts = ctx.head()
    address = ctx.target.address
    kind = facts.live_error_kind or "unreachable"
    fixes = {
        "unresolvable": Remediation("Check the host name, or use the head's IP address.", ()),
        "refused": Remediation(
            "Start the cluster, or check the dashboard port (--dashboard-port on `ray start --head`).",
            _ray_status(ctx),
        ),
        "timeout": Remediation("Check that the host is up and that a firewall does not drop the dashboard port.", ()),
        "unreachable": Remediation("Check the network route to the head.", ()),
        "not_ray": Remediation("Point --address at the Ray dashboard port (default 8265), not another service.", ()),
        "server_error": Remediation(
            "Read the head's dashboard.log (in /tmp/ray/session_latest/logs on the head) and restart the head if it is stuck.",
            (),
        ),
        "unauthorized": Remediation(
            "Set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, or write ~/.ray/auth_token) to the cluster's token.", ()
        ),
        "forbidden": Remediation(
            "The token is wrong: unset it and raydoctor reads the head's own through `docker exec <head container> "
            "ray get-auth-token`, or set RAY_AUTH_TOKEN to what that prints."
            if ctx.target.compose_path is not None
            else "The token is wrong: get the current one from the cluster's admin and set RAY_AUTH_TOKEN.",
            (),
        ),
        "token_withheld": Remediation(
            "The token goes only to a target you name: pass the address yourself if you trust it.",
            (remedies.raydoctor_check(f"{address.host_for_url}:{address.dashboard_port}", ctx.environ),)
            if address
            else (),
        ),
    }
    summary = facts.live_error or (f"{address.dashboard_url} did not answer" if address else "the head did not answer")
    if facts.ray or facts.python:
        details.append(f"fell back to: {known}")
    cause = "unreachable" if kind in UNREACHABLE_KINDS else kind
    return finding(
        Status.FAIL,
        summary,
        code=f"head.source.{cause}",
        details=details,
        fix=fixes.get(kind, Remediation("Check the address and that the cluster is up.", ())),
        data={"kind": kind},
    )


def local_interpreter(ctx: CheckContext) -> Result:
    try:
        local = ctx.local()
    except InterpreterError as exc:
        return finding(
            Status.FAIL,
            str(exc),
            code="local.interpreter.unusable",
            fix=Remediation("Pass a working interpreter with --python PATH.", ()),
        )
    env = " (venv)" if local.in_venv else ""
    summary = f"Python {local.python} ({local.implementation}, {local.machine}){env} at {local.executable}, chosen by {local.chosen_by}"
    if local.implementation != "CPython":
        return finding(
            Status.WARN,
            summary,
            code="local.interpreter.not_cpython",
            details=["Ray supports CPython only."],
            data={"ray": local.ray},
        )
    return finding(Status.OK, summary, code="local.interpreter.ok", data={"ray": local.ray})


def _skipped(code: str, why: str, title: str = "") -> Result:
    return finding(Status.SKIP, why, code=code, title=title)


# --mode jobs: Ray's Jobs API runs the entrypoint on the cluster, in its Python and Ray
# (ray/dashboard/modules/job/sdk.py::JobSubmissionClient is plain HTTP), so nothing local must match.
JOBS_MODE = (
    "not needed in jobs mode: the Jobs API runs the entrypoint in the cluster's own Python and Ray (see jobs.client)"
)


def _python_verdict(ctx: CheckContext, local: LocalFacts) -> Verdict | None:
    """Ray's Python rule for the judged interpreter; None when the head's Python is unknown."""
    head = ctx.head()
    if head.python is None:
        return None
    return judge_python(
        head.python_version or "", head.python.exact, local.python, ctx.options.mode, head.ray_version, ctx.environ
    )


def python_passes(ctx: CheckContext, local: LocalFacts) -> bool:
    """Whether ``pip install`` into ``local`` can help: its Python does not fail Ray's rule (unknown: it may)."""
    verdict = _python_verdict(ctx, local)
    return verdict is None or verdict.status is not Status.FAIL


def fix_commands(ctx: CheckContext) -> tuple[str, ...]:
    """``raydoctor fix`` when fix knows what to build (the head's Ray and Python are known), else nothing."""
    head = ctx.head()
    if not remedies.fix_knows_what_to_build(head.ray_version, head.python_version):
        return ()
    return (remedies.raydoctor_fix(ctx.options, ctx.environ),)


def ray_version(ctx: CheckContext) -> Result:
    if ctx.options.mode == "jobs":
        return _skipped("versions.ray.jobs_mode", JOBS_MODE)
    head = ctx.head()
    local = ctx.local_or_none()
    if head.ray is None:
        return _skipped("versions.ray.head_unknown", "the head's Ray version is unknown")
    if local is None:
        return _skipped("versions.ray.local_unknown", "the local interpreter could not be inspected")
    verdict = judge_ray(head.ray_version or "", local.ray, ctx.options.mode, ctx.environ)
    fix = None
    if verdict.status is not Status.OK:
        commands = fix_commands(ctx)
        if python_passes(ctx, local):  # never pip into an interpreter that cannot pass the Python rule
            commands += (remedies.pip_install_ray(head.ray_version or "", local.executable),)
        text = f"Install Ray {head.ray_version} in an env with the head's Python" + (
            " (raydoctor fix does both)." if fix_commands(ctx) else "."
        )
        fix = Remediation(text, commands)
    return finding(
        verdict.status,
        verdict.summary,
        code=f"versions.ray.{verdict.cause}",
        details=list(verdict.details),
        fix=fix,
        data={"head": head.ray_version, "local": local.ray},
    )


def _in_kernel(summary: str, local: LocalFacts) -> str:
    """With ``--kernel NAME`` the judged Python is the kernel's: the finding says so instead of "locally"."""
    if local.chosen is None or local.chosen.origin is not PythonOrigin.KERNEL:
        return summary
    return summary.replace(" locally", f" in the Jupyter kernel {local.chosen.name}", 1)


def python_version(ctx: CheckContext) -> Result:
    title = f"Python matches the head ({ctx.options.mode} mode)"
    if ctx.options.mode == "jobs":
        return _skipped("versions.python.jobs_mode", JOBS_MODE, title)
    head = ctx.head()
    local = ctx.local_or_none()
    if head.python is None:
        return _skipped("versions.python.head_unknown", "the head's Python version is unknown", title)
    if local is None:
        return _skipped("versions.python.local_unknown", "the local interpreter could not be inspected", title)
    verdict = _python_verdict(ctx, local)
    assert verdict is not None
    fix = None
    if verdict.status is not Status.OK:
        want = head.python_version or ""
        commands = fix_commands(ctx)
        spec = VersionSpec.read(want)
        conda = remedies.conda_program(ctx.environ)
        if head.ray_version and spec is not None and spec.exact and conda is not None:
            commands += (remedies.conda_create(head.ray_version, str(spec), conda),)
        how = (
            "raydoctor fix builds a matching venv (uv or conda fetch the exact Python when it is not here)"
            if fix_commands(ctx)
            else f"an env made from it (`uv python install {want}`, pyenv or conda)"
        )
        guess = "" if head.python.exact or spec is None or not spec.exact else f" ({want} is {GUESSED_PATCH})"
        fix = Remediation(f"Use Python {want} locally{guess}: {how}.", commands)
    return finding(
        verdict.status,
        _in_kernel(verdict.summary, local),
        code=f"versions.python.{verdict.cause}",
        title=title,
        details=list(verdict.details),
        fix=fix,
        data={
            "head": head.python_version,
            "head_exact": head.python.exact,
            "local": local.python,
            "mode": ctx.options.mode,
        },
    )


def client_extras(ctx: CheckContext) -> Result:
    if ctx.options.mode != "client":
        return _skipped("packages.client_extras.not_needed", f"not needed in {ctx.options.mode} mode")
    local = ctx.local_or_none()
    if local is None or local.ray is None:
        return _skipped("packages.client_extras.no_ray", "Ray is not installed locally")
    missing = [name for name in CLIENT_EXTRA if canonicalize_name(name) not in local.distributions]
    if not missing:
        return finding(
            Status.OK,
            f"{', '.join(f'{n} {local.distributions[n]}' for n in CLIENT_EXTRA)} installed (ray[client])",
            code="packages.client_extras.ok",
        )
    pip = shlex.join([local.executable, "-m", "pip", "install", f"ray[client]=={local.ray}"])
    commands = (pip,) if python_passes(ctx, local) else fix_commands(ctx)
    return finding(
        Status.FAIL,
        f"{', '.join(missing)} missing: Ray Client (ray://) cannot connect without ray[client]",
        code=CLIENT_EXTRAS_MISSING,
        fix=Remediation("Install Ray with the client extra.", commands),
    )


def _satisfies(spec: object, version: str) -> bool:
    try:
        return spec.contains(Version(version), prereleases=True)  # type: ignore[attr-defined]
    except InvalidVersion:
        return False


def _applies(req: Requirement, env: dict[str, str]) -> bool:
    """Whether ``req``'s environment marker holds for the local interpreter (an unreadable one: judged)."""
    if req.marker is None:
        return True
    try:
        return bool(req.marker.evaluate(env))
    except (UndefinedComparison, UndefinedEnvironmentName, InvalidMarker):
        return True


def requirement_pins(ctx: CheckContext) -> Result:
    """Every pin in the requirements file against the local env, and Ray's pin against the head.

    Each requirement that is not met is listed once (in the summary or in the details, not both);
    constraints (``-c`` files) are judged for the packages a requirement names, as pip applies them.
    """
    reqs = ctx.requirements
    if ctx.options.mode == "jobs" and reqs is not None:
        return _skipped(
            "packages.requirements.jobs_mode",
            "not judged locally in jobs mode: the requirements go to the cluster as the runtime_env's pip list "
            "(see jobs.runtime_env)",
        )
    if reqs is None:
        return finding(
            Status.SKIP,
            "no requirements file (packages.txt) here; pass --requirements FILE",
            code="packages.requirements.no_file",
        )
    local = ctx.local_or_none()
    if local is None:
        return finding(
            Status.SKIP, "the local interpreter could not be inspected", code="packages.requirements.no_interpreter"
        )
    env = {"python_version": ".".join(local.python.split(".")[:2]), "python_full_version": local.python}
    shown = {id(e.requirement): e.display for e in reqs.entries if e.requirement is not None}

    def display(req: Requirement) -> str:  # URL credentials masked, as the parser shows the line
        return shown.get(id(req)) or mask_credentials(str(req))

    constraints: dict[str, list[Requirement]] = {}
    for entry in reqs.constraints:
        if entry.requirement is not None and _applies(entry.requirement, env):
            constraints.setdefault(canonicalize_name(entry.requirement.name), []).append(entry.requirement)
    missing: list[str] = []
    wrong: list[str] = []
    head_conflict: list[str] = []
    items: list[str] = []  # one line per requirement that is not met
    skipped: list[str] = []
    head_ray = ctx.head().ray_version
    file = reqs.path.name
    overridden: list[tuple[str, str]] = []  # (the pin, what it conflicts with): fix's --ray-override, judged below
    for req in reqs.requirements:
        if not _applies(req, env):
            skipped.append(f"{display(req)}: its marker excludes Python {local.python}, not judged")
            continue
        name = canonicalize_name(req.name)
        have = local.distributions.get(name)
        state = ""
        if have is None:
            missing.append(display(req))
            state = "not installed"
        elif _overridden(ctx, name, req.specifier, have):
            overridden.append((display(req), req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")))
            continue
        elif req.specifier and not _satisfies(req.specifier, have):
            wrong.append(f"{display(req)} (installed {have})")
            state = f"installed {have}"
        else:
            for con in constraints.get(name, []):
                if con.specifier and not _satisfies(con.specifier, have):
                    wrong.append(f"{display(con)} (installed {have}, a constraint)")
                    state = f"installed {have}, against the constraint {display(con)}"
        if name == "ray" and head_ray and req.specifier and not _satisfies(req.specifier, head_ray):
            conflict = f"{file} pins {display(req)} but the cluster runs Ray {head_ray}"
            head_conflict.append(conflict)
            items.insert(len(head_conflict) - 1, conflict + (f" ({state})" if state else ""))
        elif state == "not installed":
            items.append(f"not installed: {display(req)}")
        elif state:
            items.append(f"wrong version: {display(req)} ({state})")
    n = len(reqs.requirements)
    notes = skipped + list(reqs.notes)
    if not items and overridden:
        return _pin_overridden(ctx, reqs.path, overridden, notes)
    if not items:
        unjudged = f"; {len(notes)} line{'s' if len(notes) != 1 else ''} not judged" if notes else ""
        return finding(
            Status.OK,
            f"all {n} requirements of {file} are satisfied{unjudged}",
            code="packages.requirements.noted" if notes else "packages.requirements.met",
            details=notes,
            data={"not_judged": notes},
        )
    counts = ", ".join(
        text
        for count, text in (
            (len(missing), f"{len(missing)} not installed"),
            (len(wrong), f"{len(wrong)} wrong version"),
        )
        if count
    )
    if head_conflict:
        code = "packages.requirements.ray_conflicts_head"
        rest = len(items) - 1
        summary = items[0] + (f"; {rest} more of {n} not met ({counts})" if rest else "")
        details = items[1:]
    else:
        code = "packages.requirements.not_installed" if missing else "packages.requirements.wrong_version"
        summary = f"{len(items)} of {n} requirements of {file} not met ({counts})"
        details = items
    pip = (shlex.join([str(local.executable), "-m", "pip", "install", "-r", str(reqs.path)]),)
    commands = [*fix_commands(ctx), *(pip if python_passes(ctx, local) else ())]
    text = "Install the project's requirements in an env that matches the head."
    if head_conflict:
        text = f"Pin ray=={head_ray} in {file} (raydoctor fix overrides a wrong pin with a constraint, without editing the file)."
    return finding(
        Status.FAIL,
        summary,
        code=code,
        details=details + notes,
        fix=Remediation(text, tuple(commands)),
        data={"missing": missing, "wrong": wrong, "head_conflict": head_conflict, "not_judged": notes},
    )


def _overridden(ctx: CheckContext, name: str, specifier: object, have: str) -> bool:
    """Whether fix installed Ray over this pin on purpose (``TargetOptions.ray_override``) and it is what is here."""
    override = ctx.options.ray_override
    if name != "ray" or override is None or not specifier or _satisfies(specifier, override):
        return False
    return Version(have) == Version(override) if _valid(have) and _valid(override) else have == override


def _valid(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _pin_overridden(ctx: CheckContext, path: object, pins: list[tuple[str, str]], notes: list[str]) -> Result:
    """A file that pins another Ray, which fix overrode with a constraint: the env is right, the file is not."""
    override = ctx.options.ray_override
    name = getattr(path, "name", str(path))
    conflict = "; ".join(pin for pin, _ in pins)
    return finding(
        Status.WARN,
        f"{name} pins {conflict} but the cluster runs Ray {override}: fix installed Ray {override} anyway "
        "(a constraint overrode the pin; the file is unchanged). Edit the pin so that others get the right Ray too",
        code="packages.requirements.ray_pin_overridden",
        details=list(notes),
        fix=Remediation(
            f"Pin Ray {override} in {name}.",
            (),
            tuple(Edit(str(path), f"the requirement {pin}", f"{base}=={override}") for pin, base in pins),
        ),
        data={"overridden": [pin for pin, _ in pins], "ray_override": override},
    )


def head_packages(ctx: CheckContext) -> Result:
    reqs = ctx.requirements
    known = ctx.head_packages()  # the --deep probe, --head-packages FILE, or the image through Docker
    if known is None:
        return _skipped(
            "packages.head.not_probed",
            "the head's packages are unknown: run with --deep (a probe job), or --head-packages FILE, "
            "or have the head's image on a local Docker engine",
        )
    packages = known.packages
    if reqs is None:
        return _skipped("packages.head.no_requirements", "no requirements file")
    problems = []
    for req in reqs.requirements:
        have = packages.get(canonicalize_name(req.name))
        if have is None:
            if known.complete:  # a team's file that leaves a package out says nothing about it
                problems.append(f"{req.name} is not installed on the head")
        elif req.specifier and not _satisfies(req.specifier, have):
            problems.append(f"{req} but the head has {have}")
    if not problems:
        return finding(
            Status.OK,
            f"the head satisfies all {len(reqs.requirements)} requirements ({known.source})",
            code="packages.head.ok",
        )
    return finding(
        Status.WARN,
        "; ".join(problems[:3]),
        code="packages.head.mismatch",
        details=[*problems, f"the head's packages: {known.source}"],
        fix=Remediation("Install them on the cluster too (a runtime_env with pip, or a custom image).", ()),
    )


CHECKS = [
    # 45 s: a ray:// target's facts may wait for the round trip (doctor.facts.roundtrip.LIMIT_S, 20 s).
    Check("head.source", "head", "Head's Ray and Python known", head_source, timeout=45),
    # 70 s as jobs.client: in --mode jobs the one probe also imports Ray's job client (60 s limit)
    Check("local.interpreter", "local", "Local interpreter usable", local_interpreter, timeout=70),
    Check("versions.ray", "versions", "Ray matches the head", ray_version, timeout=45),
    Check("versions.python", "versions", "Python matches the head", python_version, timeout=45),  # titled per mode
    Check("packages.client_extras", "packages", "Ray Client extras installed", client_extras, timeout=45),
    Check("packages.requirements", "packages", "Requirements met locally", requirement_pins, timeout=45),
    Check(
        "packages.head", "packages", "Requirements met on the head", head_packages, timeout=45
    ),  # --deep: waits for the probe job
]
