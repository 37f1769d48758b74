"""The Jobs API path (category ``jobs``): the path that needs no env matching at all.

Ray's Jobs API runs the entrypoint on the cluster, in the cluster's Python and Ray (Ray's job-submission
docs; the client is ``ray/dashboard/modules/job/sdk.py::JobSubmissionClient``, talking HTTP to
``ray/dashboard/modules/job/job_head.py``), so the local side only needs a working job client. What can go
wrong is on the way there: the Jobs API, the runtime_env's ``working_dir`` as Ray packs it
(``doctor.head.runtime_env``), and its ``pip`` list, which the head installs.

* ``jobs.client`` (``--mode jobs``): ``ray.job_submission.JobSubmissionClient`` imports in the judged interpreter;
* ``jobs.api``: ``GET /api/jobs/`` answers as Ray's Jobs API does;
* ``jobs.runtime_env`` (``--mode jobs`` or ``--runtime-env``): judged before upload, nothing is sent;
* ``jobs.submit`` (``--jobs``, also ``--deep``): one real job with that runtime_env, followed to its end.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from doctor import remedies
from doctor.codes import JOBS_CLIENT_OK
from doctor.context import CheckContext
from doctor.head import jobs as jobs_api
from doctor.head.dashboard import DashboardError
from doctor.head.runtime_env import (
    FILE_SIZE_WARNING,
    MIB,
    Package,
    PackError,
    RuntimeEnv,
    confine,
    default_runtime_env,
    mib,
    pack,
    package_limit,
)
from doctor.local.interpreter import JOB_CLIENT_TIMEOUT_S, InterpreterError
from doctor.model import Remediation, Result, Status, finding
from doctor.runner import Check
from doctor.text import sanitize

NO_MATCHING = "this path needs no env matching: the Jobs API runs the entrypoint in the cluster's own Python and Ray"
POLL_S = 0.1  # how often the job's status is read: the resolution of the times reported
SUBMIT_LIMIT_S = 240.0  # a pip runtime_env builds a virtualenv on the head: tens of seconds
# The job raydoctor submits: a constant, never user text. It proves the working_dir arrived (its cwd).
JOB_PROBE = (
    "import json, os, sys\n"
    "print('" + jobs_api.MARKER + "' + json.dumps({'python': sys.version.split()[0], "
    "'files': len(os.listdir('.'))}))\n"
)


def jobs_enabled(ctx: CheckContext) -> bool:
    return bool(getattr(ctx.options, "jobs", False) or ctx.options.deep)


def runtime_env_judged(ctx: CheckContext) -> bool:
    return ctx.options.mode == "jobs" or getattr(ctx, "runtime_env", None) is not None or jobs_enabled(ctx)


# -- jobs.client ---------------------------------------------------------------------------


def job_client(ctx: CheckContext) -> Result:
    """``ray[default]`` in the judged interpreter: any Ray whose job client the cluster's Jobs API accepts.

    The answer is the context's one interpreter probe, which in ``--mode jobs`` also tries the import
    (``doctor.local.interpreter.inspect_interpreter(job_client=True)``): the interpreter is not run again.
    """
    python = ctx.interpreter_path
    try:
        local = ctx.local()
    except InterpreterError as exc:
        if exc.kind == "timeout":
            return finding(
                Status.ERROR,
                f"{python} took over {JOB_CLIENT_TIMEOUT_S:g} s to import Ray's job client",
                code="jobs.client.slow",
            )
        return finding(Status.FAIL, str(exc), code="jobs.client.no_interpreter")  # the message names it
    client = local.job_client
    if client is not None and client.works:
        info = {"ray": client.ray, "python": client.python}
        head = _head_ray(ctx)
        versions = f"Ray {client.ray or '?'} on Python {client.python or '?'}"
        note = f"; the cluster runs Ray {head}, which need not match" if head else ""
        return finding(
            Status.OK,
            f"the job client works ({versions}){note}: {NO_MATCHING}",
            code=JOBS_CLIENT_OK,
            data=info,
        )
    error = client.error if client is not None else "the interpreter was not asked"
    last = sanitize(error or "")[:200]
    pip = shlex.join(
        [str(python), "-m", "pip", "install", "ray[default]" + (f"=={_head_ray(ctx)}" if _head_ray(ctx) else "")]
    )
    # The module the ImportError named: "ray", no Ray at all; another, Ray without the default extra.
    missing = client.missing if client is not None else None
    if missing == "ray" or client is None:
        what = "Ray is not installed"
    elif missing is not None:
        what = "ray[default]'s extras are missing"
    else:
        what = "Ray's job client is broken"
    return finding(
        Status.FAIL,
        f"{what} in {python}: ray.job_submission.JobSubmissionClient does not import ({last})",
        code="jobs.client.missing",
        details=[f"{NO_MATCHING}; any Python works, and Ray's version need not match the cluster's."],
        fix=Remediation(
            "Install ray[default] (raydoctor fix --mode jobs builds a small env with it).",
            (pip, remedies.raydoctor(["fix", *remedies.target_flags(ctx.options), "--mode", "jobs"], ctx.environ)),
        ),
    )


def _head_ray(ctx: CheckContext) -> str | None:
    try:
        return ctx.head().ray_version
    except Exception:
        return None


# -- jobs.api ------------------------------------------------------------------------------


def _live_ray(ctx: CheckContext) -> str | None:
    """The head's Ray as its dashboard itself reported it (not a guess from an image tag)."""
    try:
        facts = ctx.head()
    except Exception:
        return None
    return facts.ray_version if facts.live else None


def jobs_api_answers(ctx: CheckContext) -> Result:
    """``GET /api/jobs/`` (``ray/dashboard/modules/job/job_head.py::JobHead.list_jobs``): a JSON list of
    ``JobDetails``. Told apart: no token / a refused token (``ray/dashboard/http_server_head.py``'s auth
    middleware answers 401 / 403), no such route (404), and an answer that is not Ray's."""
    dashboard = ctx.dashboard
    if dashboard is None:
        return finding(Status.SKIP, "no dashboard address to ask", code="jobs.api.no_address")
    url = f"{dashboard.base_url}/api/jobs/"
    try:
        resp = dashboard.request("GET", "/api/jobs/")
    except DashboardError as exc:
        return _api_error(ctx, url, exc)
    if resp.status_code == 404:
        ray = _live_ray(ctx)
        if ray:  # the same port answers as Ray elsewhere: the job module is missing, or a proxy drops the path
            why = (
                f"the dashboard answers as Ray {ray} but has no Jobs API route: its job module did not start "
                "(dashboard.log on the head says why), or a proxy in front of it forwards only some paths"
            )
            fix = Remediation(
                "Read dashboard.log on the head (/tmp/ray/session_latest/logs) for the job module's error, "
                "or let the proxy forward /api/jobs/ and /api/packages/ too.",
                (),
            )
        else:
            why = "nothing answers as Ray's Jobs API there: Ray older than 1.9, or the port is not Ray's dashboard"
            fix = Remediation("Point --address at the Ray dashboard (default port 8265) of a Ray >= 1.9 cluster.", ())
        return finding(
            Status.FAIL,
            f"{url} answered 404: {why}",
            code="jobs.api.not_found",
            details=[f"GET {url} → HTTP 404"],
            fix=fix,
            data={"status": 404, "head_ray": ray},
        )
    if resp.status_code >= 400:
        return finding(
            Status.FAIL,
            f"{url} answered HTTP {resp.status_code}: the dashboard is up but its Jobs API fails",
            code="jobs.api.http_error",
            details=[f"GET {url} → HTTP {resp.status_code}"],
            fix=Remediation("Read dashboard.log on the head (/tmp/ray/session_latest/logs).", ()),
            data={"status": resp.status_code},
        )
    try:
        data = resp.json()
        why = "its JSON is not Ray's job list (a JSON list of jobs)"
    except DashboardError as exc:  # describe("not_ray", ...)'s sentence: its last clause says what answered
        data, why = None, exc.message.rsplit(": ", 1)[-1]
    if not isinstance(data, list) or not all(isinstance(job, dict) for job in data):
        return finding(
            Status.FAIL,
            f"{url} answered HTTP {resp.status_code}, but not as Ray's Jobs API: {why}",
            code="jobs.api.not_ray",
            details=[f"content type: {resp.headers.get('content-type', 'none')}"],
            fix=Remediation("Point --address at the Ray dashboard port (default 8265), not another service.", ()),
            data={"status": resp.status_code},
        )
    return finding(
        Status.OK,
        f"the Jobs API answers at {url} ({len(data)} job{'s' if len(data) != 1 else ''} listed)",
        code="jobs.api.ok",
        data={"jobs": len(data)},
    )


def _api_error(ctx: CheckContext, url: str, exc: DashboardError) -> Result:
    """The Jobs API did not answer: a token missing or refused, or the dashboard itself down."""
    from doctor.secrets import TOKEN_PLACES

    withheld = getattr(ctx, "token_withheld", None)
    if exc.kind == "unauthorized" and withheld:
        why = f"the cluster requires a Ray auth token; {withheld}"
        fix = Remediation("Name the cluster's address yourself (--address or the settings file) to send the token.", ())
    elif exc.kind == "unauthorized":
        why = "the cluster requires a Ray auth token (token authentication) and raydoctor found none to send"
        fix = Remediation(f"Give raydoctor the cluster's token: {TOKEN_PLACES}.", ())
    elif exc.kind == "forbidden":
        where = ctx.token.source if ctx.token is not None else "nowhere"
        why = f"the cluster refused the token raydoctor sent (from {where}): it is wrong or expired"
        fix = Remediation(
            f"Replace the token in {where} with the cluster's current one (ray get-auth-token on the head).", ()
        )
    else:
        why = exc.message
        fix = Remediation("Check that the dashboard is up (see network.dashboard).", ())
    return finding(
        Status.FAIL,
        f"the Jobs API did not answer: {why}",
        code=f"jobs.api.{exc.kind}",
        details=[f"GET {url}: {exc.message}"],
        fix=fix,
        data={"kind": exc.kind, "status": exc.status},
    )


# -- jobs.runtime_env ------------------------------------------------------------------------


@dataclass
class Judged:
    """The runtime_env judged before upload."""

    env: RuntimeEnv
    package: Package | None = None
    limit: int = 0
    limit_from: str = ""
    errors: list[str] = field(default_factory=list)  # the job would fail: never submitted
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "name (why)": Ray would upload them, raydoctor does not
    ray_pins: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)


def project_runtime_env(ctx: CheckContext) -> RuntimeEnv:
    """``--runtime-env FILE``, else the settings file's ``runtime-env`` (its path relative to that file,
    ``doctor.settings``), else ``{"working_dir": ".", "pip": <requirements>}``. A relative ``working_dir``
    resolves from the current folder either way, as ``ray job submit`` resolves it
    (``ray/_private/runtime_env/working_dir.py::upload_working_dir_if_needed`` takes the submitter's cwd)."""
    given = getattr(ctx, "runtime_env", None)
    if given is not None:
        origin = (ctx.options.settings or {}).get("runtime-env", {}).get("from", "")
        if origin and not str(origin).startswith("--"):  # it came from the settings file, not the flag
            return replace(given, source=f"the settings file {origin} (runtime-env = {given.path})")
        return given  # type: ignore[no-any-return]
    reqs = ctx.requirements
    lines = [e.text for e in reqs.entries if not e.constraint] if reqs is not None else None
    return default_runtime_env(ctx.cwd, lines)


def judge_runtime_env(ctx: CheckContext) -> Judged:
    env = project_runtime_env(ctx)
    limit, limit_from = package_limit(ctx.environ)
    out = Judged(env, limit=limit, limit_from=limit_from)
    _judge_pip(ctx, out)
    root = env.working_dir
    if root is None:
        out.notes.append(
            f"working_dir {env.remote_working_dir} is a remote URI: nothing to pack"
            if env.remote_working_dir
            else "no working_dir: nothing is uploaded"
        )
        return out
    refused = confine(env)
    if refused is not None:
        out.errors.append(refused)
        out.codes.append("outside_project")
        return out
    try:
        package = pack(root, env.excludes, ctx.environ)
    except PackError as exc:
        out.errors.append(str(exc))
        out.codes.append("unpackable")
        return out
    out.package = package
    size = package.zip_size
    if size >= limit:
        out.errors.append(
            f"working_dir packs to {_size(size)}, over Ray's limit of {_size(limit)} ({limit_from}): "
            "the upload would be refused"
        )
        out.codes.append("too_large")
    big = package.over_warning()
    if big:
        out.warnings.append(
            f"{len(big)} file{'s' if len(big) != 1 else ''} of {_size(FILE_SIZE_WARNING)} or more "
            f"(Ray warns for each): {', '.join(f'{m.name} ({_size(m.size)})' for m in big[:5])}"
        )
        out.codes.append("large_files")
    out.left_out = [str(item) for item in package.left_out]
    if out.left_out:
        shown = ", ".join(item.name for item in package.left_out[:5])
        more = f" and {len(out.left_out) - 5} more" if len(out.left_out) > 5 else ""
        out.notes.insert(0, f"left out of the upload (Ray would send them, raydoctor never does): {shown}{more}")
    return out


def _left_out_words(left_out: list[str]) -> str:
    """``3 left out of the upload: .env (looks like a secret), .git/ (…), …``: names and reasons only."""
    more = f", and {len(left_out) - 3} more" if len(left_out) > 3 else ""
    return f"{len(left_out)} left out of the upload: {', '.join(left_out[:3])}{more}"


def _judge_pip(ctx: CheckContext, out: Judged) -> None:
    """The ``pip`` list, each line read by the one requirements parser; ``ray`` there is an error."""
    from doctor.errors import UsageError
    from doctor.local.requirements import parse_text

    try:
        lines = out.env.pip_lines()
    except UsageError as exc:
        out.errors.append(str(exc))
        out.codes.append("pip_unreadable")
        return
    options = out.env.pip_options()
    if options is None:
        out.errors.append("pip.pip_install_options must be a list of strings (Ray refuses the runtime_env)")
        out.codes.append("pip_options")
        return
    for url in out.env.index_urls():
        out.notes.append(f"the head's pip installs from {url}: whether the head reaches it, only --jobs can tell")
    if not lines:
        return
    lines = [line for line in lines if not line.lstrip().startswith("-")]  # pip options, not requirements
    try:
        parsed = parse_text("\n".join(lines), out.env.path or Path("runtime_env"))
    except UsageError as exc:
        out.errors.append(f"pip list: {exc}")
        out.codes.append("pip_unparsable")
        return
    head_python = None
    try:
        head_python = ctx.head().python_version
    except Exception:
        pass
    env = (
        {"python_version": ".".join(head_python.split(".")[:2]), "python_full_version": head_python}
        if head_python
        else None
    )
    for line in parsed:
        entry = line.entry
        req = entry.requirement if entry is not None else None
        if req is None:
            continue
        if canonicalize_name(req.name) == "ray":
            shown = entry.display if entry is not None else req.name
            if req.specifier or req.url:
                out.ray_pins.append(shown)
            else:
                out.warnings.append(
                    f"pip lists {shown}: the cluster has Ray already; the line does nothing but slow setup"
                )
        elif env is not None and req.marker is not None:
            try:
                applies = req.marker.evaluate(env)
            except Exception:
                applies = True
            if not applies:
                out.notes.append(
                    f"{entry.display if entry else req}: its marker excludes the head's Python {head_python}"
                )
    if out.ray_pins:
        out.errors.append(
            f"the pip list pins {', '.join(out.ray_pins)}: a job must not reinstall Ray (the cluster's Ray runs it)"
        )
        out.codes.append("pins_ray")


def runtime_env_check(ctx: CheckContext) -> Result:
    judged = judge_runtime_env(ctx)
    env, package = judged.env, judged.package
    details = [f"runtime_env from {env.source}"]
    data: dict[str, Any] = {"source": env.source, "limit": judged.limit, "limit_from": judged.limit_from}
    if package is not None:
        files = package.files
        data.update(
            zip_bytes=package.zip_size,
            files=len(files),
            largest=[{"name": m.name, "bytes": m.size} for m in package.largest()],
            left_out=judged.left_out,
            gitignore=package.gitignore,
        )
        details.append(
            f"working_dir {package.root}: {len(files)} files, packs to {_size(package.zip_size)} "
            f"(limit {_size(judged.limit)}: {judged.limit_from}; the head's own RAY_max_grpc_message_size is not "
            "exposed by its dashboard, so an upload over a lower limit there is found by --jobs)"
        )
        details.append(
            ".gitignore files honoured"
            if package.gitignore
            else ".gitignore files ignored (RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1)"
        )
        if package.excludes:
            details.append(f"excludes: {', '.join(package.excludes)}")
        details += [f"largest: {m.name} ({_size(m.size)})" for m in package.largest(3)]
    details += judged.notes
    if judged.errors:
        fix_text = (
            "Remove ray from the runtime_env's pip list."
            if "pins_ray" in judged.codes
            else "Point working_dir at a folder inside the project (beside the runtime_env file)."
            if judged.codes[0] == "outside_project"
            else "Write pip_install_options as a list of strings, e.g. ['--index-url', 'https://…/simple']."
            if judged.codes[0] == "pip_options"
            else (
                "Add the bulk to the runtime_env's 'excludes' (or .gitignore), or use a remote working_dir URI (s3://, https://)."
            )
        )
        return finding(
            Status.FAIL,
            "; ".join(judged.errors),
            code=f"jobs.runtime_env.{judged.codes[0]}",
            details=details + judged.warnings,
            fix=Remediation(fix_text, ()),
            data=data,
        )
    if judged.warnings:
        fix_text = "Add large files to 'excludes' (or .gitignore) unless the job needs them."
        return finding(
            Status.WARN,
            "; ".join(judged.warnings),
            code=f"jobs.runtime_env.{judged.codes[0] if judged.codes else 'warned'}",
            details=details,
            fix=Remediation(fix_text, ()),
            data=data,
        )
    size = f"working_dir packs to {_size(package.zip_size)} of {_size(judged.limit)}" if package else "nothing to pack"
    pins = env.pip_lines() or []
    kept = f"; {_left_out_words(judged.left_out)}" if judged.left_out else ""
    return finding(
        Status.OK,
        f"{size}; {len(pins)} pip line{'s' if len(pins) != 1 else ''}, none pins Ray{kept} (judged before upload; nothing was sent)",
        code="jobs.runtime_env.ok",
        details=details,
        data=data,
    )


# -- jobs.submit -----------------------------------------------------------------------------

_PIP_MISSING = (
    re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-\[\]]+)"),
    re.compile(r"Could not find a version that satisfies the requirement ([A-Za-z0-9_.\-\[\]]+)"),
    re.compile(r"Because ([A-Za-z0-9_.\-]+) was not found in the package registry"),  # uv
)
_INDEX_DOWN = re.compile(
    r"(Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|"
    r"Network is unreachable|Connection refused|ConnectTimeoutError|Could not fetch URL|Max retries exceeded)"
)


def name_cause(text: str, index_urls: list[str] | None = None) -> tuple[str, str] | None:
    """What a failed job's message and logs say went wrong: (code, sentence), or None.

    An index the head cannot reach comes first: pip then also says "No matching distribution found"
    for every package, which is the consequence, not the cause. ``index_urls``: the indexes the
    runtime_env names (pip's own connection errors name only the path, ``/simple/six/``)."""
    match = _INDEX_DOWN.search(text)
    if match:
        where = f" {' or '.join(index_urls)}" if index_urls else ""
        return "index_unreachable", f"the head cannot reach its package index{where} ({match.group(1)})"
    for pattern in _PIP_MISSING:
        match = pattern.search(text)
        if match:
            name = match.group(1).rstrip(".")
            return "pip_package", f"pip on the head cannot install {name}: no such package (or version) on its index"
    if "exceeds the maximum size" in text:
        return "too_large", "the working_dir is over the head's package limit"
    return None


def _setup_logs(ctx: CheckContext, dashboard: Any) -> list[tuple[str, str]]:
    """The head's ``runtime_env_setup-*.log`` files (name, last lines), through the log API (``/api/v0/logs``)."""
    try:
        nodes = ctx.nodes()
    except Exception:
        return []
    head = next((n for n in nodes if n.get("is_head_node")), nodes[0] if nodes else None)
    node_id = str(head.get("node_id") or "") if head else ""
    if not node_id:
        return []
    texts: list[tuple[str, str]] = []
    try:
        for name in jobs_api.log_files(dashboard, node_id, "runtime_env_setup-*.log")[:8]:
            texts.append((name, jobs_api.read_log(dashboard, node_id, name)))
    except (DashboardError, jobs_api.JobError):
        pass
    return texts


def _new_since(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What the setup logs gained while this job ran: the files are per job id, and every submission's
    supervisor actor runs under the same one (``runtime_env_setup-01000000.log`` on Ray 2.49's head), so
    the same file carries earlier jobs' failures. Lines after the last ones seen before submitting."""
    seen = dict(before)
    out: list[tuple[str, str]] = []
    for name, text in after:
        old = seen.get(name, "").rstrip("\n")
        if old:
            anchor = "\n".join(old.splitlines()[-5:])
            at = text.rfind(anchor)
            text = text[at + len(anchor) :] if at >= 0 else text
        if text.strip():
            out.append((name, text))
    return out


def _evidence(logs: list[tuple[str, str]], index_urls: list[str] | None = None) -> tuple[tuple[str, str] | None, str]:
    """The cause the setup logs name, and the line that names it (``file: line``); an unreachable index
    anywhere in them outranks the "no matching distribution" lines that follow from it."""
    found: list[tuple[tuple[str, str], str]] = []
    for name, text in logs:
        for line in text.splitlines():
            cause = name_cause(line, index_urls)
            if cause is not None:
                found.append((cause, f"{name}: {' '.join(sanitize(line).split())[:200]}"))
    if not found:
        return None, ""
    return next((f for f in found if f[0][0] == "index_unreachable"), found[0])


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else (f"{n / 1024:.1f} KiB" if n < MIB else mib(n).replace("MiB", " MiB"))


def submit_check(ctx: CheckContext) -> Result:
    if ctx.dashboard is None:
        return finding(Status.SKIP, "no dashboard address to submit to", code="jobs.submit.no_address")
    judged = judge_runtime_env(ctx)
    if judged.errors:
        return finding(
            Status.SKIP,
            f"not submitted: the runtime_env would fail ({judged.errors[0]}; see jobs.runtime_env)",
            code="jobs.submit.runtime_env_refused",
        )
    runtime_env = dict(judged.env.data)
    dashboard = jobs_api.for_jobs(ctx.dashboard)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    package = judged.package
    if package is not None:
        uri = package.uri()
        budget = 30.0 + package.zip_size / (2 * 1024 * 1024)  # 2 MiB/s at worst
        uploader = jobs_api.for_jobs(dashboard, min_timeout=budget)
        try:
            with tempfile.TemporaryDirectory(prefix="raydoctor-pkg-") as tmp:
                from doctor.head.runtime_env import write_zip

                zip_path = Path(tmp) / uri.rsplit("/", 1)[-1]
                if not jobs_api.package_exists(uploader, uri):
                    write_zip(package, zip_path)
                    jobs_api.upload_package(uploader, uri, zip_path)
        except PackError as exc:  # a file swapped (for a FIFO, a device, a link out) since it was judged
            return finding(Status.FAIL, f"the working_dir was not uploaded: {exc}", code="jobs.submit.unpackable")
        except (DashboardError, jobs_api.JobError) as exc:
            kind = getattr(exc, "kind", "jobs")
            code = "too_large" if kind == "too_large" else "upload_failed"
            return finding(
                Status.FAIL,
                f"the working_dir upload failed: {exc.message}",
                code=f"jobs.submit.{code}",
                details=[f"package {uri}, {_size(package.zip_size)}"],
                fix=Remediation(
                    "Shrink the working_dir ('excludes', .gitignore) below the head's limit, or raise "
                    "RAY_max_grpc_message_size on the head.",
                    (),
                )
                if code == "too_large"
                else None,
                data={"uri": uri, "zip_bytes": package.zip_size},
            )
        runtime_env["working_dir"] = uri
    timings["upload_s"] = time.perf_counter() - start
    logs_before = _setup_logs(ctx, dashboard)  # read before submitting: only what this job adds is its evidence
    seen: dict[str, float] = {}

    def on_status(state: str, at: float) -> None:
        seen.setdefault(state, at)

    try:
        outcome = jobs_api.run_probe_job(
            dashboard,
            JOB_PROBE,
            limit_s=SUBMIT_LIMIT_S,
            name="jobs",
            poll_s=POLL_S,
            runtime_env=runtime_env,
            on_status=on_status,
            entrypoint_resources=jobs_api.ON_THE_HEAD,  # a wedged worker cannot hold its start
        )
    except jobs_api.JobError as exc:
        return finding(Status.FAIL, f"the job was not accepted: {exc.message}", code=f"jobs.submit.{exc.kind}")
    end = outcome.duration_s
    running = seen.get("RUNNING")  # PENDING while the head builds the runtime_env, RUNNING once it runs
    timings["env_setup_s"] = running if running is not None else end
    timings["run_s"] = end - running if running is not None else 0.0
    run_text = (
        f"run {timings['run_s']:.2f} s" if running is not None else f"run under {POLL_S:g} s (never seen RUNNING)"
    )
    timings["total_s"] = time.perf_counter() - start
    data = {**{k: round(v, 3) for k, v in timings.items()}, "status": outcome.status, "deleted": outcome.deleted}
    figures = f"upload {timings['upload_s']:.2f} s, env setup {timings['env_setup_s']:.2f} s, {run_text}"
    details = [f"job {outcome.submission_id}: {outcome.status}", *outcome.notes]
    if judged.left_out:
        details.append(_left_out_words(judged.left_out))
    if outcome.ok:
        return finding(
            Status.OK,
            f"a job with the project's runtime_env ran on the cluster: {figures}",
            code="jobs.submit.ok",
            details=details,
            data=data,
        )
    # The head's own account first: its runtime_env setup logs (the job's message repeats part of them).
    indexes = judged.env.index_urls()
    new_logs = _new_since(logs_before, _setup_logs(ctx, dashboard))
    cause, line = _evidence(new_logs, indexes)
    cause = cause or name_cause("\n".join([outcome.message, outcome.logs]), indexes)
    message = " ".join(sanitize(outcome.message).split())[:300]
    details += [f"the head's setup log, {line}"] if line else []
    details += [f"message: {message}"] if message else []
    details += [f"log: {line}" for line in outcome.log_tail(8)]
    code, why = cause if cause else ("timed_out" if outcome.status == "TIMEOUT" else "failed", "")
    last = "" if cause else _last_error(new_logs)  # an unknown failure: the head's own last error line
    if last:
        details.insert(len(details) - len(outcome.log_tail(8)), f"the head's last error, {last}")
    summary = f"the job {outcome.status.lower()}" + (
        f": {why}" if why else (f": {last[:200]}" if last else (f": {message[:160]}" if message else ""))
    )
    fixes = {
        "pip_package": "Correct or remove that line of the runtime_env's pip list.",
        "index_unreachable": "Give the head a reachable index (pip's index_url in the runtime_env, or a proxy), or bake the packages into the image.",
        "too_large": "Shrink the working_dir with 'excludes' or .gitignore.",
    }
    if outcome.deleted:  # its logs went with it: point at what is still there, the head's own log (quoted)
        otherwise = (
            "The head's runtime_env setup log quoted above says why (raydoctor removed its probe job, and the "
            "job's own logs with it). Fix what that line names, on the head or in the runtime_env."
            if last
            else "raydoctor removed its probe job; read the head's runtime_env_setup-*.log (the dashboard's Logs "
            "view, or /tmp/ray/session_latest/logs on the head)."
        )
    else:
        otherwise = f"Read the job's logs: ray job logs {outcome.submission_id}"
    return finding(
        Status.FAIL,
        summary,
        code=f"jobs.submit.{code}",
        details=details,
        fix=Remediation(fixes.get(code, otherwise), ()),
        data=data,
    )


_ERROR_LINE = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b|\bERROR\b|\bfailed\b", re.I)


# Ray's wrapper around a failed setup command (ray/_private/runtime_env/utils.py::SubprocessCalledProcessError):
# the command's own output follows it, and the command's last line says what went wrong.
_RAY_WRAPPER = re.compile(r"failed with the following details")


def _last_error(logs: list[tuple[str, str]]) -> str:
    """The last line of the head's setup logs that names an error (``file: line``), else "". Past Ray's
    wrapper line, the failed command's own last line (pip's ``no such option: …``) is the one quoted."""
    for name, text in reversed(logs):
        lines = text.splitlines()
        for i in range(len(lines) - 1, -1, -1):
            line = lines[i]
            if not _ERROR_LINE.search(line) or line.lstrip().startswith("Traceback"):
                continue
            if _RAY_WRAPPER.search(line):
                after = [ln for ln in lines[i + 1 :] if ln.strip() and not _RAY_WRAPPER.search(ln)]
                line = after[-1] if after else line
            return f"{name}: {' '.join(sanitize(line).split())[:240]}"
    return ""


def checks_for(ctx: CheckContext) -> list[Check]:
    checks: list[Check] = []
    jobs_mode = ctx.options.mode == "jobs"
    if jobs_mode:
        checks.append(Check("jobs.client", "jobs", "Job client", job_client, timeout=70))
    if ctx.target.address is not None and (jobs_mode or jobs_enabled(ctx)):
        checks.append(Check("jobs.api", "jobs", "Jobs API", jobs_api_answers, timeout=20))
    if runtime_env_judged(ctx):
        checks.append(Check("jobs.runtime_env", "jobs", "Job runtime_env", runtime_env_check, timeout=60))
    if ctx.target.address is not None and jobs_enabled(ctx):
        checks.append(Check("jobs.submit", "jobs", "Job submission", submit_check, timeout=SUBMIT_LIMIT_S + 120))
    return checks
