"""Run a small probe job through the Jobs API over plain HTTP, without importing Ray.

The Jobs REST API (REFERENCE §2) works whatever the local Ray version is, so
it is how raydoctor asks the cluster what a task really sees. A probe job is
bounded: it is stopped when it outlives its time, and deleted afterwards, so
that raydoctor leaves nothing behind in the cluster's job list.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from doctor.head.dashboard import DashboardClient, DashboardError

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# A probe prints one line that starts with this marker and carries its JSON.
MARKER = "RAYDOCTOR_PROBE "


class JobError(Exception):
    """The job could not be submitted or followed; ``kind`` is a DashboardError kind or ``jobs``."""

    def __init__(self, kind: str, message: str) -> None:
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


def python_entrypoint(script: str) -> str:
    """``python -c '<script>'``: the head resolves ``python`` through its PATH (REFERENCE §8)."""
    return "python -c " + shlex.quote(script)


def parse_payload(logs: str) -> Any:
    """The JSON of the last line that starts with MARKER, or None."""
    for line in reversed(logs.splitlines()):
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER) :])
            except ValueError:
                return None
    return None


def _json(resp: Any, what: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise JobError("not_ray", f"{what} answered something that is not JSON (HTTP {resp.status_code})") from None


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
    return (
        str(data.get("submission_id") or data.get("job_id") or submission_id)
        if isinstance(data, dict)
        else submission_id
    )


def status(dashboard: DashboardClient, submission_id: str) -> dict[str, Any]:
    resp = dashboard.request("GET", f"/api/jobs/{submission_id}")
    if resp.status_code >= 400:
        raise JobError("jobs", f"GET /api/jobs/{submission_id}: HTTP {resp.status_code}")
    data = _json(resp, f"GET /api/jobs/{submission_id}")
    return data if isinstance(data, dict) else {}


def logs(dashboard: DashboardClient, submission_id: str) -> str:
    resp = dashboard.request("GET", f"/api/jobs/{submission_id}/logs")
    if resp.status_code >= 400:
        return ""
    data = _json(resp, f"GET /api/jobs/{submission_id}/logs")
    return str(data.get("logs") or "") if isinstance(data, dict) else ""


def stop(dashboard: DashboardClient, submission_id: str) -> None:
    dashboard.request("POST", f"/api/jobs/{submission_id}/stop")


def delete(dashboard: DashboardClient, submission_id: str) -> bool:
    resp = dashboard.request("DELETE", f"/api/jobs/{submission_id}")
    return resp.status_code < 400


def run_probe_job(
    dashboard: DashboardClient,
    script: str,
    *,
    limit_s: float,
    name: str = "probe",
    poll_s: float = 0.25,
    **fields: Any,
) -> JobOutcome:
    """Submit ``python -c script``, wait at most ``limit_s``, read its logs, delete it.

    Raises ``JobError`` only when the job could not be submitted; once it
    exists, every outcome (failed, stopped for time, vanished) is a JobOutcome.
    """
    start = time.perf_counter()
    deadline = start + limit_s
    dashboard = for_jobs(dashboard)
    submission_id = new_submission_id(name)
    try:
        submission_id = submit(dashboard, python_entrypoint(script), submission_id=submission_id, **fields)
    except DashboardError as exc:
        if exc.kind == "timeout":  # the head may have accepted it all the same: leave nothing behind
            notes: list[str] = []
            _stop_quietly(dashboard, submission_id, notes)
            _delete_quietly(dashboard, submission_id, notes, wait_s=1.0)
        raise JobError(exc.kind, exc.message) from None
    info: dict[str, Any] = {}
    state = "PENDING"
    notes = []
    try:
        while True:
            try:
                info = status(dashboard, submission_id)
                state = str(info.get("status") or state)
            except (DashboardError, JobError) as exc:
                notes.append(f"status: {getattr(exc, 'message', exc)}")
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
        except DashboardError as exc:
            notes.append(f"delete: {exc.message}")
            return False
        if time.perf_counter() >= deadline:
            notes.append(f"job {submission_id} could not be deleted; remove it with: ray job delete {submission_id}")
            return False
        time.sleep(0.2)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
