"""The Jobs path's gaps: ``jobs.api`` against dashboards that are not a working Jobs API (fake servers on
loopback, run through ``run_check --mode jobs``), the runtime_env from the settings file, the ports
``--mode jobs`` judges, ``fix --mode jobs`` end to end, and an index the head cannot reach (``cluster``)."""

from __future__ import annotations

import json
import os
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


# -- the runtime_env from the settings file -----------------------------------------------------


def test_runtime_env_from_the_settings_file_end_to_end(tmp_path, monkeypatch, capsys, clean_env):
    """``runtime-env = "deploy/env.yaml"`` in raydoctor.toml: the path is the file's, relative to the settings
    file (read from a subfolder too); the working_dir in it resolves from the current folder, as Ray's."""
    from doctor.cli import main
    from doctor.trust import TRUST_ENV
    from tests.helpers import parse_cli

    repo = tmp_path / "home" / "repo"
    (repo / "deploy").mkdir(parents=True)
    (repo / "sub").mkdir()
    (repo / "main.py").write_text("print('hi')\n")
    (repo / "model.ckpt").write_bytes(b"\0" * 4096)
    (repo / ".env").write_text("SECRET=x\n")
    (repo / "deploy" / "env.yaml").write_text(
        "working_dir: .\nexcludes: ['*.ckpt', '.env']\npip: ['requests==2.32.3']\n"
    )
    (repo / "requirements.txt").write_text("numpy\n")  # not the pip list once a runtime_env file is named
    (repo / "raydoctor.toml").write_text('mode = "jobs"\nruntime-env = "deploy/env.yaml"\n')
    for cwd in (repo, repo / "sub"):
        options, _ = parse_cli(["check"], cwd, clean_env)
        assert options.runtime_env is None and options.mode == "jobs"  # runtime-env waits for trust; mode does not
        options, _ = parse_cli(["check"], cwd, {**clean_env, TRUST_ENV: str(repo)})
        assert options.runtime_env == repo / "deploy" / "env.yaml"  # relative to raydoctor.toml, not the cwd
        assert options.mode == "jobs"
        assert options.settings is not None
        assert options.settings["runtime-env"]["from"] == str(repo / "raydoctor.toml")

    monkeypatch.chdir(repo)
    assert main(["trust"]) == 0
    capsys.readouterr()
    code = main(["check", "--json", "--no-roundtrip", "--image", "rayproject/ray:2.49.2-py312-cpu"])
    doc = json.loads(capsys.readouterr().out)
    assert code == doc["exit_code"]
    env = next(r for r in doc["results"] if r["id"] == "jobs.runtime_env")
    assert env["code"] == "jobs.runtime_env.ok", env
    assert (
        env["data"]["source"]
        == f"the settings file {repo / 'raydoctor.toml'} (runtime-env = {repo / 'deploy' / 'env.yaml'})"
    )
    names = sorted(m["name"] for m in env["data"]["largest"])  # 5 largest: every file here
    assert names == ["deploy/env.yaml", "main.py", "raydoctor.toml", "requirements.txt"]  # excludes applied
    assert env["data"]["files"] == 4 and env["data"]["left_out"] == []
    assert "1 pip line" in env["summary"]
    assert doc["settings"]["runtime-env"] == {
        "value": str(repo / "deploy" / "env.yaml"),
        "from": str(repo / "raydoctor.toml"),
    }
    # a flag still wins over the file
    (repo / "other.yaml").write_text("pip: ['ray==2.40.0']\n")
    main(
        [
            "check",
            "--json",
            "--no-roundtrip",
            "--image",
            "rayproject/ray:2.49.2-py312-cpu",
            "--runtime-env",
            "other.yaml",
        ]
    )
    env = next(r for r in json.loads(capsys.readouterr().out)["results"] if r["id"] == "jobs.runtime_env")
    assert env["code"] == "jobs.runtime_env.pins_ray" and env["data"]["source"] == "--runtime-env other.yaml"


# -- the ports --mode jobs judges ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["jobs", "client"])
def test_jobs_mode_probes_only_the_dashboard(tmp_path, clean_env, mode):
    from tests.fake_servers import SilentPort

    with fake_ray() as server, SilentPort() as gcs, SilentPort() as client:
        (tmp_path / "main.py").write_text("")
        options = TargetOptions(
            address=server.url, mode=mode, timeout=1.0, roundtrip=False, gcs_port=gcs.port, client_port=client.port
        )
        res = by_id(run_check(options, environ=clean_env, cwd=tmp_path))
        touched = gcs.contacted.is_set() or client.contacted.is_set()
    ports = res["network.ports"]
    if mode == "client":  # the contrast: Ray Client's path probes them, and a silent client port fails it
        assert touched and ports.status is Status.FAIL
        assert {p["role"] for p in ports.data["ports"]} >= {"gcs", "client", "dashboard"}
        return
    assert not touched  # not a single connection to a port the Jobs path does not use
    assert ports.status is Status.OK and ports.code == "network.ports.ok"
    assert [p["role"] for p in ports.data["ports"]] == ["dashboard"]
    assert {p["role"]: p["port"] for p in ports.data["not_probed"]} == {"gcs": gcs.port, "client": client.port}
    line = next(d for d in ports.details if d.startswith("judged in jobs mode"))
    assert f"dashboard {server.port}" in line and f"gcs {gcs.port}" in line and f"client {client.port}" in line
    assert "metrics" in line and "6379" not in ports.summary


def test_jobs_mode_verbose_says_which_ports_were_judged(tmp_path, monkeypatch, capsys, clean_env):
    from doctor.cli import main

    with fake_ray() as server:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "home").mkdir(exist_ok=True)
        main(["check", "-v", "--no-roundtrip", "--mode", "jobs", "--address", server.url, "--timeout", "1"])
    out = capsys.readouterr().out
    assert f"judged in jobs mode: dashboard {server.port}" in out
    assert "not probed: gcs 6379, client 10001, metrics" in out
    assert "refused" not in out.split("judged in jobs mode")[0].rsplit("Head's ports", 1)[-1]


# -- fix --mode jobs, end to end ------------------------------------------------------------------


def test_fix_jobs_mode_builds_the_job_client_env_on_any_python(tmp_path, clean_env):
    """fix --mode jobs --yes against an image target (no head): the real uv builds ray[default] at the
    image's Ray on a Python that is not the image's, the project's requirements stay for the cluster,
    and the final check's jobs.client finds the job client working."""
    import subprocess
    import sys

    from doctor.fix.install import find_uv
    from doctor.fix.venv import read_marker
    from tests.helpers import tool_env
    from tests.ray_cluster import find_python

    local = find_python("3.11")  # the image runs 3.12: any Python will do for the Jobs API
    if local is None or find_uv() is None:
        pytest.skip("needs a Python 3.11 and uv")
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("tabulate\n")  # for the cluster's runtime_env, not this env
    (project / "main.py").write_text("print('hi')\n")
    done = subprocess.run(
        [sys.executable, "-m", "doctor", "fix", "--image", "rayproject/ray:2.49.2-py312-cpu", "--mode", "jobs"]
        + ["--python", str(local), "--installer", "uv", "--no-conda", "--no-roundtrip", "--yes", "--json"],
        cwd=project,
        env=tool_env(clean_env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    doc = json.loads(done.stdout)
    assert done.returncode == 0 and doc["exit_code"] == 0, (doc["error"], done.stderr[-2000:])
    plan = doc["plan"]
    assert plan["action"] == "build" and plan["install"]["extra"] == ["ray[default]==2.49.2"]
    assert plan["install"]["requirements"] is None
    version = plan["judged"]["python"]
    assert version.startswith("3.11.")
    dest = project / "envs" / f"ray2.49.2-py{version}-jobs"
    assert plan["env"]["path"] == str(dest) and [s["status"] for s in doc["steps"]] == ["ok"] * len(doc["steps"])
    probe = (
        "import json, sys, importlib.metadata as m\n"
        "from ray.job_submission import JobSubmissionClient\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({'python': sys.version.split()[0], 'ray': v('ray'), 'aiohttp_cors': v('aiohttp-cors'),"
        " 'colorful': v('colorful'), 'tabulate': v('tabulate')}))\n"
    )
    inside = subprocess.run([str(dest / "bin" / "python"), "-c", probe], capture_output=True, text=True, timeout=120)
    assert inside.returncode == 0, inside.stderr[-1000:]
    got = json.loads(inside.stdout)
    assert got["python"] == version and got["ray"] == "2.49.2"
    assert got["aiohttp_cors"] and got["colorful"]  # the default extra, which the job client needs
    assert got["tabulate"] is None  # the requirements go to the cluster in the runtime_env
    marker = read_marker(dest)
    assert marker is not None and marker["ray_version"] == "2.49.2" and marker["python_version"] == version
    results = {r["id"]: r for r in doc["results"]}  # the final check, judging the new env
    client = results["jobs.client"]
    assert client["status"] == "ok" and client["code"] == "jobs.client.ok", client
    assert client["data"] == {"ray": "2.49.2", "python": version}
    assert doc["local"]["executable"] == str(dest / "bin" / "python")
    assert not [r for r in results.values() if r["status"] in ("fail", "error")]
    env = results["jobs.runtime_env"]  # the env built in ./envs is not uploaded with the working_dir
    assert env["status"] == "ok" and not any(m["name"].startswith("envs/") for m in env["data"]["largest"])


# -- an index the head cannot reach ---------------------------------------------------------------

# runtime_env_setup-01000000.log on the Ray 2.49.2 test head, pip_install_options --index-url at a closed port
# (the first line as captured by test_an_index_the_head_cannot_reach_is_named; pip's lines that follow it).
REAL_SETUP_LOG = (
    "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
    "broken by 'NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=55555): Failed to establish a new "
    "connection: [Errno 111] Connection refused\")': /simple/tabulate/\n"
    "ERROR: Could not find a version that satisfies the requirement tabulate (from versions: none)\n"
    "ERROR: No matching distribution found for tabulate\n"
)


def test_the_index_not_the_package_is_the_cause():
    from doctor.checks.jobs import _evidence, name_cause

    index = "http://127.0.0.1:55555/simple"
    code, why = name_cause(REAL_SETUP_LOG, [index])  # type: ignore[misc]
    assert code == "index_unreachable" and index in why and "Failed to establish a new connection" in why
    # line by line, the package's "no matching distribution" comes too; the index outranks it
    log = "ERROR: No matching distribution found for x\n" + REAL_SETUP_LOG
    (code, _), line = _evidence([("runtime_env_setup-01000000.log", log)], [index])  # type: ignore[misc]
    assert code == "index_unreachable" and line.startswith("runtime_env_setup-01000000.log: WARNING: Retrying")


def test_only_what_this_job_added_to_the_shared_setup_log_counts():
    from doctor.checks.jobs import _new_since

    name = "runtime_env_setup-01000000.log"
    before = [(name, "INFO setup\n" + REAL_SETUP_LOG)]  # an earlier job's failure in the same file
    after = [(name, before[0][1] + "INFO setup\nERROR: No matching distribution found for nopkg\n")]
    assert _new_since(before, after) == [(name, "\nINFO setup\nERROR: No matching distribution found for nopkg\n")]
    assert _new_since(before, before) == []
    assert _new_since([], after) == after


def test_pip_options_and_index_urls_are_read_as_ray_reads_them(tmp_path):
    from doctor.head.runtime_env import RuntimeEnv

    env = RuntimeEnv(
        {
            "pip": {
                "packages": ["six", "--extra-index-url=https://b/simple"],
                "pip_install_options": ["-i", "https://a"],
            }
        },
        "t",
        tmp_path,
    )
    assert env.pip_options() == ["-i", "https://a"] and env.index_urls() == ["https://a", "https://b/simple"]
    assert (
        RuntimeEnv({"pip": {"packages": [], "pip_install_options": "--isolated"}}, "t", tmp_path).pip_options() is None
    )


def test_bad_pip_install_options_fail_before_upload(tmp_path, clean_env):
    (tmp_path / "re.json").write_text(json.dumps({"pip": {"packages": ["six"], "pip_install_options": [1]}}))
    res = jobs_mode(f"127.0.0.1:{closed_port()}", tmp_path, clean_env, runtime_env=tmp_path / "re.json")
    assert res["jobs.runtime_env"].code == "jobs.runtime_env.pip_options"
    assert "list of strings" in res["jobs.runtime_env"].remediation.text


def submit_on_the_head(ray_head, tmp_path, clean_env, head_python, runtime_env: dict) -> dict:
    """check --mode jobs --jobs against the test head, with ``runtime_env`` as the project's file."""
    (tmp_path / "re.json").write_text(json.dumps(runtime_env))
    return jobs_mode(
        ray_head.dashboard_url,
        tmp_path,
        clean_env,
        python=str(head_python),
        jobs=True,
        runtime_env=tmp_path / "re.json",
    )


@pytest.mark.cluster
def test_an_index_the_head_cannot_reach_is_named(ray_head, tmp_path, clean_env, head_python):
    """pip_install_options (ray/_private/runtime_env/validation.py::parse_and_validate_pip; pip.py passes them
    to ``pip install`` in place of its defaults) pointing at a closed port: the head's own setup log says
    why, and jobs.submit names the index, not the package it could not find there."""
    index = f"http://127.0.0.1:{closed_port()}/simple"
    # The head's pip must know no other source: this machine's pip config and PIP_FIND_LINKS (which the head
    # inherits) hold local wheels. --isolated sets its env vars aside, PIP_CONFIG_FILE=/dev/null its config
    # files (pip skips them all then); Ray's pip plugin adds the runtime_env's env_vars to pip's environment.
    runtime_env = {
        "pip": {"packages": ["tabulate"], "pip_install_options": ["--isolated", "--index-url", index]},
        "env_vars": {"PIP_CONFIG_FILE": os.devnull},
    }
    res = submit_on_the_head(ray_head, tmp_path, clean_env, head_python, runtime_env)
    env = res["jobs.runtime_env"]
    assert env.status is Status.OK and any(index in d for d in env.details), env.details
    sub = res["jobs.submit"]
    assert sub.status is Status.FAIL and sub.code == "jobs.submit.index_unreachable", (sub.summary, sub.details)
    assert "cannot reach its package index" in sub.summary and index in sub.summary
    assert any(d.startswith("the head's setup log, runtime_env_setup-") for d in sub.details), sub.details
    assert sub.data["deleted"] is True


def test_an_unknown_setup_failure_quotes_the_heads_last_error_line():
    from doctor.checks.jobs import _last_error

    name = "runtime_env_setup-01000000.log"
    log = (
        "INFO pip.py:123 -- Creating virtualenv at /tmp/ray/session/runtime_resources/pip/abc/virtualenv\n"
        "Traceback (most recent call last):\n"
        '  File "virtualenv/create/creator.py", line 40, in run\n'
        "PermissionError: [Errno 13] Permission denied: '/old/prefix/lib/libpython3.12.so.1.0'\n"
        "INFO -- cleaning up\n"
    )
    assert _last_error([(name, log)]) == (
        f"{name}: PermissionError: [Errno 13] Permission denied: '/old/prefix/lib/libpython3.12.so.1.0'"
    )
    assert _last_error([(name, "INFO all good\n")]) == ""


@pytest.mark.cluster
def test_an_unknown_runtime_env_failure_is_quoted_and_never_sends_you_to_a_deleted_job(
    ray_head, tmp_path, clean_env, head_python
):
    """pip refuses an option raydoctor has no rule for: the finding quotes the head's own last error line
    (read through the dashboard's log API) and, the probe job being removed, does not send the user to it."""
    runtime_env = {
        "pip": {"packages": ["six"], "pip_install_options": ["--isolated", "--no-such-option-raydoctor"]},
        "env_vars": {"PIP_CONFIG_FILE": os.devnull},
    }
    res = submit_on_the_head(ray_head, tmp_path, clean_env, head_python, runtime_env)
    sub = res["jobs.submit"]
    assert sub.status is Status.FAIL and sub.data["deleted"] is True, (sub.summary, sub.details)
    quoted = [d for d in sub.details if d.startswith("the head's last error, runtime_env_setup-")]
    assert quoted and "no-such-option-raydoctor" in quoted[0], sub.details
    assert "ray job logs" not in sub.remediation.text


def test_past_rays_wrapper_line_the_commands_own_last_line_is_quoted():
    from doctor.checks.jobs import _last_error

    name = "runtime_env_setup-01000000.log"
    log = (
        "ray._private.runtime_env.utils.SubprocessCalledProcessError: Run cmd[9] failed with the following details.\n"
        "Usage:   \n  /venv/bin/python -m pip install [options] <requirement specifier> ...\n\n"
        "no such option: --no-such-option-raydoctor\n"
    )
    assert _last_error([(name, log)]) == f"{name}: no such option: --no-such-option-raydoctor"
