"""Run a small probe job through the Jobs API over plain HTTP, without importing Ray.

The Jobs REST API (``POST /api/jobs/``, ``GET /api/jobs/{id}``, ``.../logs``,
``.../stop``, ``DELETE``: ``ray/dashboard/modules/job/job_head.py``, the client in
``ray/dashboard/modules/job/sdk.py::JobSubmissionClient``) works whatever the
local Ray version is, so it is how raydoctor asks the cluster what a task
really sees. A probe job is bounded: it is stopped when it outlives its time,
and deleted afterwards, so that raydoctor leaves nothing behind in the
cluster's job list. Every read goes through ``DashboardClient.request``
(deadline, byte cap, sanitised text); a job id the server gives back is
checked before it is used in a URL or shown in a command.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from doctor.head.dashboard import Answer, DashboardClient, DashboardError
from doctor.text import sanitize

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# A probe prints one line that starts with this marker and carries its JSON.
MARKER = "RAYDOCTOR_PROBE "


# What Ray's job and submission ids are made of: ``raysubmit_`` + letters and digits
# (``ray/dashboard/modules/job/job_manager.py::generate_job_id``), or the id the submitter chose
# (raydoctor's: ``new_submission_id``). Anything else is refused before it reaches a URL or a command.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class JobError(Exception):
    """The job could not be submitted or followed; ``kind`` is a DashboardError kind or ``jobs``."""

    def __init__(self, kind: str, message: str) -> None:
        message = sanitize(message)
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class JobOutcome:
    """What one probe job did: its final status, its logs, and what it printed."""

    submission_id: str
    status: str  # a Ray job status, or "TIMEOUT" when raydoctor stopped it
    message: str
    logs: str
    duration_s: float
    payload: Any = None  # the JSON after MARKER, when the probe printed it
    deleted: bool = False
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # the last GET /api/jobs/{id} (driver_node_id, ...)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED" and self.payload is not None

    def log_tail(self, lines: int = 12) -> list[str]:
        return [line for line in self.logs.strip().splitlines() if not line.startswith(MARKER)][-lines:]


def valid_job_id(value: object) -> bool:
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def delete_command(submission_id: str) -> str:
    """The command that removes a job, safe to paste whatever the id."""
    return f"ray job delete {shlex.quote(submission_id)}"


def python_entrypoint(script: str) -> str:
    """``python -c '<script>'``: the head runs the entrypoint in a shell, ``python`` through its PATH

    (``ray/dashboard/modules/job/job_supervisor.py::JobSupervisor._exec_entrypoint`` hands it to a shell).
    """
    return "python -c " + shlex.quote(script)


def parse_payload(logs: str) -> Any:
    """The JSON of the last line that starts with MARKER, or None."""
    for line in reversed(logs.splitlines()):
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER) :])
            except (ValueError, RecursionError):
                return None
    return None


def _json(resp: Answer, what: str) -> Any:
    try:
        return resp.json()
    except DashboardError:
        raise JobError(
            "not_ray", f"{what} answered something that is not Ray's JSON (HTTP {resp.status_code})"
        ) from None


def for_jobs(dashboard: DashboardClient, min_timeout: float = 10.0) -> DashboardClient:
    """A client for the Jobs API: a busy head takes seconds to accept a job (measured > 5 s under load)."""
    if dashboard.timeout >= min_timeout:
        return dashboard
    return DashboardClient(dashboard.address, timeout=min_timeout, token=dashboard.token)


def new_submission_id(name: str) -> str:
    return f"raydoctor-{name}-{uuid.uuid4().hex[:10]}"


def submit(dashboard: DashboardClient, entrypoint: str, *, submission_id: str, **fields: Any) -> str:
    """POST /api/jobs/; returns the submission id. ``fields``: entrypoint_num_gpus, runtime_env, ..."""
    body = {"entrypoint": entrypoint, "submission_id": submission_id, "metadata": {"created_by": "raydoctor"}}
    body.update({k: v for k, v in fields.items() if v is not None})
    resp = dashboard.request("POST", "/api/jobs/", json=body)
    if resp.status_code == 404:
        raise JobError(
            "jobs", f"{dashboard.base_url} has no Jobs API (404 on /api/jobs/): Ray older than 1.9, or not Ray"
        )
    if resp.status_code >= 400:
        raise JobError("jobs", f"the Jobs API refused the probe job: HTTP {resp.status_code} {_short(resp.text)}")
    data = _json(resp, "POST /api/jobs/")
    given = (data.get("submission_id") or data.get("job_id") or submission_id) if isinstance(data, dict) else None
    if given is None:
        return submission_id
    if not valid_job_id(given):
        shown = str(given) if len(str(given)) <= 60 else str(given)[:59] + "…"
        raise JobError(
            "not_ray",
            f"{dashboard.base_url}/api/jobs/ answered a job id that no Ray gives ({shown!r}): not Ray's Jobs API",
        )
    return str(given)


def _checked(submission_id: str) -> str:
    if not valid_job_id(submission_id):
        raise JobError("jobs", f"{submission_id!r} is not a Ray job id (letters, digits, '_' and '-')")
    return submission_id


def status(dashboard: DashboardClient, submission_id: str) -> dict[str, Any]:
    _checked(submission_id)
    resp = dashboard.request("GET", f"/api/jobs/{submission_id}")
    if resp.status_code >= 400:
        raise JobError("jobs", f"GET /api/jobs/{submission_id}: HTTP {resp.status_code}")
    data = _json(resp, f"GET /api/jobs/{submission_id}")
    return data if isinstance(data, dict) else {}


def logs(dashboard: DashboardClient, submission_id: str) -> str:
    _checked(submission_id)
    resp = dashboard.request("GET", f"/api/jobs/{submission_id}/logs")
    if resp.status_code >= 400:
        return ""
    data = _json(resp, f"GET /api/jobs/{submission_id}/logs")
    return str(data.get("logs") or "") if isinstance(data, dict) else ""


def stop(dashboard: DashboardClient, submission_id: str) -> None:
    dashboard.request("POST", f"/api/jobs/{_checked(submission_id)}/stop")


def delete(dashboard: DashboardClient, submission_id: str) -> bool:
    _checked(submission_id)
    resp = dashboard.request("DELETE", f"/api/jobs/{submission_id}")
    return resp.status_code < 400


# raydoctor's probe jobs (deep, jobs.submit) ask for a sliver of the one resource only the head has.
# Without it, a job's supervisor actor needs no resources, and the GCS forwards a resource-free
# actor's lease to a node picked at random (src/ray/gcs/gcs_server/gcs_actor_scheduler.cc::
# SelectForwardingNode, src/ray/gcs/actor/ in later releases; the owner's node is used only when
# the actor requires resources; doc/source/ray-core/scheduling/gcs-based-actor-scheduling.rst:
# "where the actor's owner locates, or randomly selected"): a wedged worker's raylet then held the
# job PENDING until its limit (tests/test_deep.py: 1 run in 4 with 3 nodes, and jobs.submit held
# the check 240 s). With it, Ray schedules the supervisor by resources (ray/dashboard/modules/job/
# job_manager.py::_get_scheduling_strategy: "DEFAULT" once resources are given), through the
# owner's node, the head, the only node that has the resource (Ray's own train state actor asks for it
# to stay on the head: ray/train/_internal/state/state_actor.py).
ON_THE_HEAD = {"node:__internal_head__": 0.001}


def run_probe_job(
    dashboard: DashboardClient,
    script: str,
    *,
    limit_s: float,
    name: str = "probe",
    poll_s: float = 0.25,
    on_status: Callable[[str, float], None] | None = None,
    **fields: Any,
) -> JobOutcome:
    """Submit ``python -c script``, wait at most ``limit_s``, read its logs, delete it.

    Raises ``JobError`` only when the job could not be submitted; once it
    exists, every outcome (failed, stopped for time, vanished) is a JobOutcome.
    ``on_status(status, seconds since submission)`` is told each status the first time it is seen.
    """
    start = time.perf_counter()
    deadline = start + limit_s
    dashboard = for_jobs(dashboard)
    submission_id = new_submission_id(name)
    try:
        submission_id = submit(dashboard, python_entrypoint(script), submission_id=submission_id, **fields)
    except DashboardError as exc:
        if exc.kind in {"timeout", "too_slow"}:  # the head may have accepted it all the same: leave nothing behind
            notes: list[str] = []
            _stop_quietly(dashboard, submission_id, notes)
            _delete_quietly(dashboard, submission_id, notes, wait_s=1.0)
        raise JobError(exc.kind, exc.message) from None
    except JobError as exc:
        if exc.kind == "not_ray":  # it answered with an id of its own making: remove the one raydoctor chose
            _stop_quietly(dashboard, submission_id, [])
            _delete_quietly(dashboard, submission_id, [], wait_s=0.0)
        raise
    info: dict[str, Any] = {}
    state = "PENDING"
    notes = []
    seen: set[str] = set()
    try:
        while True:
            try:
                info = status(dashboard, submission_id)
                state = sanitize(str(info.get("status") or state))[:40]
            except (DashboardError, JobError) as exc:
                notes.append(f"status: {getattr(exc, 'message', exc)}")
            if on_status is not None and state not in seen:
                seen.add(state)
                on_status(state, time.perf_counter() - start)
            if state in TERMINAL or time.perf_counter() >= deadline:
                break
            time.sleep(min(poll_s, max(0.0, deadline - time.perf_counter())))
        timed_out = state not in TERMINAL
        if timed_out:
            _stop_quietly(dashboard, submission_id, notes)
        try:
            text = logs(dashboard, submission_id)
        except (DashboardError, JobError) as exc:
            text = ""
            notes.append(f"logs: {getattr(exc, 'message', exc)}")
        message = str(info.get("message") or "")
        if timed_out:
            message = f"still {state} after {limit_s:g} s; raydoctor stopped it" + (f" ({message})" if message else "")
        outcome = JobOutcome(
            submission_id,
            "TIMEOUT" if timed_out else state,
            message,
            text,
            time.perf_counter() - start,
            parse_payload(text),
            notes=notes,
            info=info,
        )
    finally:
        deleted = _delete_quietly(dashboard, submission_id, notes)
    outcome.deleted = deleted
    return outcome


def _stop_quietly(dashboard: DashboardClient, submission_id: str, notes: list[str]) -> None:
    try:
        stop(dashboard, submission_id)
    except (DashboardError, JobError) as exc:
        notes.append(f"stop: {getattr(exc, 'message', exc)}")


def _delete_quietly(dashboard: DashboardClient, submission_id: str, notes: list[str], wait_s: float = 3.0) -> bool:
    """Delete the job; Ray deletes only finished jobs, so a stopped one gets a moment to finish."""
    deadline = time.perf_counter() + wait_s
    while True:
        try:
            if delete(dashboard, submission_id):
                return True
        except (DashboardError, JobError) as exc:
            notes.append(f"delete: {exc.message}")
            return False
        if time.perf_counter() >= deadline:
            notes.append(f"job {submission_id} could not be deleted; remove it with: {delete_command(submission_id)}")
            return False
        time.sleep(0.2)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(sanitize(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- packages (working_dir uploads) and the log API --------------------------------------

# What Ray names a working_dir package: ``_ray_pkg_`` + hex (``ray/_private/runtime_env/packaging.py::
# get_uri_for_directory``); ``gcs`` is the only protocol the dashboard stores (``Protocol.GCS``).
PACKAGE_NAME = re.compile(r"_ray_pkg_[0-9a-f]{1,64}\.zip")
# ``packaging.py::_store_package_in_gcs``: "Package size (X MiB) exceeds the maximum size of Y MiB".
_TOO_LARGE = re.compile(r"Package size \(([0-9.]+) ?MiB\) exceeds the maximum size of ([0-9.]+) ?MiB")


def _package_path(uri: str) -> str:
    """``ray/dashboard/modules/job/common.py::uri_to_http_components`` for a ``gcs://`` package."""
    protocol, _, name = uri.partition("://")
    if protocol != "gcs" or not PACKAGE_NAME.fullmatch(name):
        raise JobError("jobs", f"{uri!r} is not a package URI raydoctor uploads (gcs://_ray_pkg_<hex>.zip)")
    return f"/api/packages/{protocol}/{name}"


def package_exists(dashboard: DashboardClient, uri: str) -> bool:
    """``GET /api/packages/gcs/NAME``: 200 when the head has it, 404 when not
    (``ray/dashboard/modules/job/job_head.py::get_package``; the SDK's ``_package_exists``)."""
    resp = dashboard.request("GET", _package_path(uri))
    if resp.status_code == 200:
        return True
    if resp.status_code == 404:
        return False
    raise JobError("jobs", f"GET {_package_path(uri)}: HTTP {resp.status_code} {_short(resp.text)}")


def upload_package(dashboard: DashboardClient, uri: str, zip_path: Path) -> None:
    """``PUT /api/packages/gcs/NAME`` with the zip's bytes, as the SDK's ``_upload_package`` sends them
    (streamed from the file). A package over the head's limit comes back as HTTP 500 with Ray's
    ``ValueError`` text: ``JobError("too_large", ...)`` naming the head's own limit."""
    with open(zip_path, "rb") as handle:
        resp = dashboard.request("PUT", _package_path(uri), data=handle)
    if resp.status_code == 200:
        return
    match = _TOO_LARGE.search(resp.text)
    if match:
        raise JobError(
            "too_large",
            f"the head refused the working_dir package: {match.group(1)} MiB is over its limit of "
            f"{match.group(2)} MiB (GCS_STORAGE_MAX_SIZE, RAY_max_grpc_message_size on the head)",
        )
    raise JobError("jobs", f"PUT {_package_path(uri)}: HTTP {resp.status_code} {_short(resp.text)}")


def log_files(dashboard: DashboardClient, node_id: str, glob: str) -> list[str]:
    """``GET /api/v0/logs?node_id=&glob=``: the names of the node's log files that match
    (``ray/dashboard/modules/log/log_manager.py::list_logs``; the answer groups them by component)."""
    if not valid_job_id(node_id.replace("-", "")):
        return []
    resp = dashboard.request("GET", "/api/v0/logs", params={"node_id": node_id, "glob": glob})
    if resp.status_code >= 400:
        return []
    try:
        data = resp.json()
    except DashboardError:
        return []
    found: list[str] = []

    def gather(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                gather(item)
        elif isinstance(value, dict):
            for item in value.values():
                gather(item)

    result = data.get("data", {}).get("result") if isinstance(data, dict) else None
    gather(result)
    return [sanitize(name) for name in found if name.endswith(".log") and "/" not in name.lstrip("/")]


def read_log(dashboard: DashboardClient, node_id: str, filename: str, lines: int = 400) -> str:
    """``GET /api/v0/logs/file?node_id=&filename=&lines=``: the last lines of one log file, sanitised."""
    params = {"node_id": node_id, "filename": filename, "lines": str(lines)}
    resp = dashboard.request("GET", "/api/v0/logs/file", params=params)
    return resp.text if resp.status_code < 400 else ""
