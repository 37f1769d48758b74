"""The Jobs path's gaps: ``jobs.api`` against dashboards that are not a working Jobs API (fake servers on
loopback, run through ``run_check --mode jobs``), the runtime_env from the settings file, the ports
``--mode jobs`` judges, ``fix --mode jobs`` end to end, and an index the head cannot reach (``cluster``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.model import Status
from doctor.options import TargetOptions
from tests.fake_servers import HTML, FakeHTTP, closed_port, fake_ray, json_answer

TOKEN = "jobs-api-test-token-5b1f"
JOB = {
    "type": "SUBMISSION",
    "job_id": None,
    "submission_id": "raysubmit_abc",
    "status": "SUCCEEDED",
    "entrypoint": "python main.py",
}


def by_id(report):
    return {r.id: r for r in report.results}


def jobs_mode(url: str, tmp_path: Path, environ: dict[str, str], **extra):
    (tmp_path / "main.py").write_text("print('hi')\n")
    options = TargetOptions(address=url, mode="jobs", timeout=2.0, roundtrip=False, **extra)
    return by_id(run_check(options, environ=environ, cwd=tmp_path))


def with_jobs(server: FakeHTTP, answer) -> FakeHTTP:
    server.routes["/api/jobs/"] = answer
    return server


# -- jobs.api, each way it fails --------------------------------------------------------------


def test_a_listing_is_ok(tmp_path, clean_env):
    with with_jobs(fake_ray(), json_answer([JOB, {**JOB, "submission_id": "raysubmit_def"}])) as server:
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.status is Status.OK and api.code == "jobs.api.ok"
    assert "2 jobs listed" in api.summary and api.data["jobs"] == 2
    assert ("GET", "/api/jobs/") in server.requests


def test_404_from_a_dashboard_that_answers_as_ray(tmp_path, clean_env):
    with fake_ray() as server:  # versions answer, /api/jobs/ does not: the job module is missing
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.status is Status.FAIL and api.code == "jobs.api.not_found"
    assert "answered 404" in api.summary and "Ray 2.49.2" in api.summary and "job module" in api.summary
    assert "dashboard.log" in api.remediation.text
    assert api.data == {"status": 404, "head_ray": "2.49.2"}


def test_404_from_a_server_that_is_not_ray(tmp_path, clean_env):
    with FakeHTTP() as server:  # every path 404: nothing there says it is Ray
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.code == "jobs.api.not_found" and api.data["head_ray"] is None
    assert "older than 1.9" in api.summary and "8265" in api.remediation.text


def test_html_is_not_rays_jobs_api(tmp_path, clean_env):
    with with_jobs(fake_ray(), HTML) as server:
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.status is Status.FAIL and api.code == "jobs.api.not_ray"
    assert "HTML" in api.summary and "not as Ray's Jobs API" in api.summary
    assert "text/html" in api.details[0]
    assert "another service" in api.remediation.text
    assert "nginx" not in api.summary  # the page's text is not repeated


@pytest.mark.parametrize(
    "answer, why",
    [
        ((200, "application/json", "{not json"), "not JSON"),
        (json_answer({"status": "ok", "service": "something else"}), "not Ray's job list"),
        (json_answer([1, 2, 3]), "not Ray's job list"),
        ((200, "application/octet-stream", b"\x00\xff\xfe garbage"), "not JSON"),
    ],
)
def test_garbage_is_not_rays_jobs_api(tmp_path, clean_env, answer, why):
    with with_jobs(fake_ray(), answer) as server:
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.code == "jobs.api.not_ray" and why in api.summary


def test_401_without_a_token(tmp_path, clean_env):
    with with_jobs(fake_ray(token=TOKEN), json_answer([])) as server:
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.status is Status.FAIL and api.code == "jobs.api.unauthorized"
    assert "requires a Ray auth token" in api.summary and "found none" in api.summary
    assert "RAY_AUTH_TOKEN" in api.remediation.text


def test_403_with_a_wrong_token_names_its_source_never_its_value(tmp_path, clean_env):
    wrong = "not-the-token-9c2e"
    with with_jobs(fake_ray(token=TOKEN), json_answer([])) as server:
        res = jobs_mode(server.url, tmp_path, {**clean_env, "RAY_AUTH_TOKEN": wrong})
    api = res["jobs.api"]
    assert api.status is Status.FAIL and api.code == "jobs.api.forbidden"
    assert "refused the token" in api.summary and "from RAY_AUTH_TOKEN" in api.summary
    assert wrong not in json.dumps(api.to_dict())


def test_the_right_token_lists_jobs(tmp_path, clean_env):
    with with_jobs(fake_ray(token=TOKEN), json_answer([JOB])) as server:
        res = jobs_mode(server.url, tmp_path, {**clean_env, "RAY_AUTH_TOKEN": TOKEN})
    assert res["jobs.api"].code == "jobs.api.ok"


def test_a_500_is_an_http_error(tmp_path, clean_env):
    with with_jobs(fake_ray(), (500, "text/plain", "Internal Server Error")) as server:
        res = jobs_mode(server.url, tmp_path, clean_env)
    api = res["jobs.api"]
    assert api.code == "jobs.api.http_error" and "HTTP 500" in api.summary


def test_the_codes_are_distinct(tmp_path, clean_env):
    """One code per cause, each with its own fix: what a script keys on."""
    seen = {}
    for name, server, environ in [
        ("404", fake_ray(), clean_env),
        ("html", with_jobs(fake_ray(), HTML), clean_env),
        ("401", with_jobs(fake_ray(token=TOKEN), json_answer([])), clean_env),
        ("403", with_jobs(fake_ray(token=TOKEN), json_answer([])), {**clean_env, "RAY_AUTH_TOKEN": "x" * 12}),
    ]:
        with server:
            api = jobs_mode(server.url, tmp_path, environ)["jobs.api"]
        seen[name] = (api.code, api.remediation.text if api.remediation else "")
    codes = [code for code, _ in seen.values()]
    fixes = [fix for _, fix in seen.values()]
    assert len(set(codes)) == 4 and len(set(fixes)) == 4 and all(fixes)


def test_a_closed_port_is_not_a_jobs_api_verdict(tmp_path, clean_env):
    res = jobs_mode(f"127.0.0.1:{closed_port()}", tmp_path, clean_env)
    assert res["jobs.api"].code == "jobs.api.refused"
    assert "network.dashboard" in res["jobs.api"].remediation.text
