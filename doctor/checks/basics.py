"""Part 1 of check: what the head is, what the local side is, and Ray's verdict on both."""

from __future__ import annotations

import shlex

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from doctor import remedies
from doctor.context import CheckContext
from doctor.local.interpreter import InterpreterError
from doctor.local.requirements import mask_credentials
from doctor.model import Remediation, Result, Status, finding, result
from doctor.rules import judge_python, judge_ray
from doctor.runner import Check

# Ray Client needs these on the client side (ray's `client` extra, REFERENCE §3).
CLIENT_EXTRA = ("grpcio",)


def head_source(ctx: CheckContext) -> Result:
    """Say what is known about the head and where it came from; a dead target is a finding."""
    facts = ctx.head()
    target = ctx.target
    title = "Ray head"
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
        return result(
            "head.source",
            "head",
            title,
            Status.OK,
            f"Ray {facts.ray_version}, Python {facts.python_version} from the running cluster at {target.address.dashboard_url}{auth}",
            details=details,
        )
    if target.kind == "address":
        return _dead_target(ctx, known, details)
    if facts.ray is None or facts.python is None:
        how = (
            "point raydoctor at the running cluster with --address HOST:8265, or pull the image so Docker can be asked"
        )
        return result(
            "head.source",
            "head",
            title,
            Status.WARN,
            f"the head's versions are unknown ({'; '.join(facts.problems) or 'no source had them'})",
            details=details,
            fix=Remediation(how.capitalize() + ".", ("raydoctor check --address 127.0.0.1:8265",)),
        )
    if target.kind == "compose" and target.address is not None:
        if facts.live_error_kind in {"refused", "timeout", "unreachable", "unresolvable"}:
            summary = f"{known}; the cluster is not running ({target.address.dashboard_url}: {facts.live_error_kind})"
            up = f"docker compose -f {target.compose_path} up -d"
            return result(
                "head.source",
                "head",
                title,
                Status.WARN,
                summary,
                details=details,
                fix=Remediation("Start the cluster to check it live.", (up,)),
            )
        if facts.live_error:
            return _dead_target(ctx, known, details)
    return result("head.source", "head", title, Status.OK, known, details=details)


def _dead_target(ctx: CheckContext, known: str, details: list[str]) -> Result:
    facts = ctx.head()
    address = ctx.target.address
    kind = facts.live_error_kind or "unreachable"
    fixes = {
        "unresolvable": Remediation("Check the host name, or use the head's IP address.", ()),
        "refused": Remediation(
            "Start the cluster, or check the dashboard port (--dashboard-port on `ray start --head`).", ("ray status",)
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
            "The token is wrong: get the current one from the cluster's admin and set RAY_AUTH_TOKEN.", ()
        ),
        "token_withheld": Remediation(
            "The token goes only to a target you name: pass the address yourself if you trust it.",
            (f"raydoctor check --address {address.host_for_url}:{address.dashboard_port}",) if address else (),
        ),
    }
    summary = facts.live_error or f"{address.dashboard_url} did not answer"
    if facts.ray or facts.python:
        details.append(f"fell back to: {known}")
    return result(
        "head.source",
        "head",
        "Ray head",
        Status.FAIL,
        summary,
        details=details,
        fix=fixes.get(kind, Remediation("Check the address and that the cluster is up.", ())),
        data={"kind": kind},
    )


def local_interpreter(ctx: CheckContext) -> Result:
    title = "Local interpreter"
    try:
        local = ctx.local()
    except InterpreterError as exc:
        return result(
            "local.interpreter",
            "local",
            title,
            Status.FAIL,
            str(exc),
            fix=Remediation("Pass a working interpreter with --python PATH.", ()),
        )
    env = " (venv)" if local.in_venv else ""
    summary = f"Python {local.python} ({local.implementation}, {local.machine}){env} at {local.executable}, chosen by {local.chosen_by}"
    status = Status.OK
    details = []
    if local.implementation != "CPython":
        status = Status.WARN
        details.append("Ray supports CPython only.")
    return result("local.interpreter", "local", title, status, summary, details=details, data={"ray": local.ray})


def _skip(check_id: str, category: str, title: str, why: str) -> Result:
    return result(check_id, category, title, Status.SKIP, why)


def ray_version(ctx: CheckContext) -> Result:
    title = "Ray version"
    head = ctx.head()
    local = ctx.local_or_none()
    if head.ray is None:
        return _skip("versions.ray", "versions", title, "the head's Ray version is unknown")
    if local is None:
        return _skip("versions.ray", "versions", title, "the local interpreter could not be inspected")
    verdict = judge_ray(head.ray_version or "", local.ray, ctx.options.mode, ctx.environ)
    fix = None
    if verdict.status is not Status.OK:
        fix = Remediation(
            f"Install Ray {head.ray_version} in an env with the head's Python (raydoctor fix does both).",
            (remedies.raydoctor_fix(ctx.options), remedies.pip_install_ray(head.ray_version or "", local.executable)),
        )
    return result(
        "versions.ray",
        "versions",
        title,
        verdict.status,
        verdict.summary,
        details=list(verdict.details),
        fix=fix,
        data={"head": head.ray_version, "local": local.ray},
    )


def python_version(ctx: CheckContext) -> Result:
    title = f"Python version ({ctx.options.mode} mode)"
    head = ctx.head()
    local = ctx.local_or_none()
    if head.python is None:
        return _skip("versions.python", "versions", title, "the head's Python version is unknown")
    if local is None:
        return _skip("versions.python", "versions", title, "the local interpreter could not be inspected")
    verdict = judge_python(
        head.python_version or "", head.python.exact, local.python, ctx.options.mode, head.ray_version, ctx.environ
    )
    fix = None
    if verdict.status is not Status.OK:
        want = head.python_version or ""
        commands = [remedies.raydoctor_fix(ctx.options)]
        if head.ray_version and want.count(".") == 2:
            commands.append(remedies.conda_create(head.ray_version, want))
        fix = Remediation(
            f"Use Python {want} locally: raydoctor fix builds a matching conda env and venv.", tuple(commands)
        )
    return result(
        "versions.python",
        "versions",
        title,
        verdict.status,
        verdict.summary,
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
    title = "Ray Client extras"
    if ctx.options.mode != "client":
        return _skip("packages.client_extras", "packages", title, "not needed in driver mode")
    local = ctx.local_or_none()
    if local is None or local.ray is None:
        return _skip("packages.client_extras", "packages", title, "Ray is not installed locally")
    missing = [name for name in CLIENT_EXTRA if canonicalize_name(name) not in local.distributions]
    if not missing:
        return result(
            "packages.client_extras",
            "packages",
            title,
            Status.OK,
            f"{', '.join(f'{n} {local.distributions[n]}' for n in CLIENT_EXTRA)} installed (ray[client])",
        )
    return result(
        "packages.client_extras",
        "packages",
        title,
        Status.FAIL,
        f"{', '.join(missing)} missing: Ray Client (ray://) cannot connect without ray[client]",
        fix=Remediation(
            "Install Ray with the client extra.", (f"{local.executable} -m pip install 'ray[client]=={local.ray}'",)
        ),
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
    commands = [
        remedies.raydoctor_fix(ctx.options),
        shlex.join([str(local.executable), "-m", "pip", "install", "-r", str(reqs.path)]),
    ]
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


def head_packages(ctx: CheckContext) -> Result:
    title = "Requirements on the head"
    reqs = ctx.requirements
    packages = ctx.head_packages()  # from the --deep probe job (doctor.facts.cluster), else None
    if packages is None:
        return _skip("packages.head", "packages", title, "the head's packages are known only with --deep (a probe job)")
    if reqs is None:
        return _skip("packages.head", "packages", title, "no requirements file")
    problems = []
    for req in reqs.requirements:
        have = packages.get(canonicalize_name(req.name))
        if have is None:
            problems.append(f"{req.name} is not installed on the head")
        elif req.specifier and not _satisfies(req.specifier, have):
            problems.append(f"{req} but the head has {have}")
    if not problems:
        return result(
            "packages.head",
            "packages",
            title,
            Status.OK,
            f"the head satisfies all {len(reqs.requirements)} requirements",
        )
    return result(
        "packages.head",
        "packages",
        title,
        Status.WARN,
        "; ".join(problems[:3]),
        details=problems,
        fix=Remediation("Install them on the cluster too (a runtime_env with pip, or a custom image).", ()),
    )


CHECKS = [
    Check("head.source", "head", "Ray head", head_source, timeout=15),
    Check("local.interpreter", "local", "Local interpreter", local_interpreter, timeout=25),
    Check("versions.ray", "versions", "Ray version", ray_version, timeout=25),
    Check("versions.python", "versions", "Python version", python_version, timeout=25),
    Check("packages.client_extras", "packages", "Ray Client extras", client_extras, timeout=25),
    Check("packages.requirements", "packages", "Requirements", requirement_pins, timeout=25),
    Check(
        "packages.head", "packages", "Requirements on the head", head_packages, timeout=45
    ),  # --deep: waits for the probe job
]
