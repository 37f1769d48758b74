"""Where the Ray auth token is found, and which source gave it.

This machine's places in Ray's order (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``),
then the cluster's own: ``docker exec <head> ray get-auth-token`` for a compose cluster and the KubeRay
cluster's secret through ``kubectl`` (tests/fake_docker, tests/fake_kubectl follow those tools' output).
Tests marked ``cluster`` run against a real Ray 2.60 head in token mode (tests/test_token_auth.py's fixtures).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.head import token_sources
from doctor.head.cluster_files import load_cluster_file
from doctor.head.compose import load_compose
from doctor.model import Status
from doctor.options import TargetOptions
from doctor.secrets import load_token, loose_permissions
from tests.fake_servers import fake_ray

FAKE_DOCKER = Path(__file__).parent / "fake_docker"
FAKE_KUBECTL = Path(__file__).parent / "fake_kubectl"
TOKEN = "rdt-" + secrets.token_hex(20)
WRONG = "rdt-wrong-" + secrets.token_hex(8)

COMPOSE = """\
services:
  ray-head:
    image: rayproject/ray:2.60.0-py313-cpu
    command: bash -c "ray start --head --port=6379 --dashboard-host=0.0.0.0 --block"
    ports:
      - "127.0.0.1:{dashboard}:8265"
      - "127.0.0.1:{client}:10001"
  ray-worker:
    image: rayproject/ray:2.60.0-py313-cpu
    command: bash -c "ray start --address=ray-head:6379 --block"
"""

KUBERAY = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: {name}
spec:
  rayVersion: '2.60.0'
  authOptions:
    mode: token
  headGroupSpec:
    rayStartParams: {{}}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.60.0-py313-cpu
"""


@pytest.fixture
def env(clean_env):
    """No token anywhere (HOME is a fresh folder); the fake docker and kubectl first on PATH."""
    out = {k: v for k, v in clean_env.items() if not k.startswith("RAY_")}
    out["PATH"] = os.pathsep.join([str(FAKE_DOCKER), str(FAKE_KUBECTL), out.get("PATH", "")])
    return out


def _containers(tmp_path: Path, env: dict[str, str], rows: dict) -> None:
    path = tmp_path / "containers.json"
    path.write_text(json.dumps(rows))
    env["FAKE_DOCKER_CONTAINERS"] = str(path)


def _k8s_secrets(tmp_path: Path, env: dict[str, str], rows: dict) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(rows))
    env["FAKE_KUBECTL_SECRETS"] = str(path)


def _compose(tmp_path: Path, dashboard: int, client: int = 1) -> Path:
    folder = tmp_path / "My Cluster"  # Compose normalises the folder name: "mycluster"
    folder.mkdir(exist_ok=True)
    path = folder / "ray.yaml"
    path.write_text(COMPOSE.format(dashboard=dashboard, client=client))
    return path


def _head_labels(project: str = "mycluster", service: str = "ray-head") -> dict[str, str]:
    return {"com.docker.compose.project": project, "com.docker.compose.service": service}


def _result(report, rid: str):
    found = [r for r in report.results if r.id == rid]
    assert found, [r.id for r in report.results]
    return found


# --------------------------------------------------------------------------- the fakes themselves


@pytest.mark.slow
def test_the_fakes_answer_as_the_real_tools(env, tmp_path):
    def run(*argv: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), capture_output=True, text=True, env={**env, **extra}, timeout=30)

    down = run("docker", "ps", FAKE_DOCKER_DAEMON="down")
    assert down.returncode == 1 and down.stderr.startswith("Cannot connect to the Docker daemon at unix:///var/run/")
    assert run("docker", "compose", "version").stdout.startswith("Docker Compose version v2.")
    missing = run("docker", "exec", "nope", "ray", "get-auth-token")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error response from daemon: No such container: nope"
    secret = run("kubectl", "get", "secret", "x", "-o", "jsonpath={.data.auth_token}")
    assert secret.returncode == 1 and secret.stderr.strip() == 'Error from server (NotFound): secrets "x" not found'
    plugin = run("kubectl", "ray", "get", "token", "x")
    assert plugin.returncode == 1 and plugin.stderr.strip() == 'error: unknown command "ray" for "kubectl"'


# --------------------------------------------------------------------------- this machine's places


def test_ray_order_and_which_source(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    named = tmp_path / "named"
    named.write_text("  from-path  ")
    both = {"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(named)}
    assert load_token({**both, "RAY_AUTH_TOKEN": "from-env"}).source == "RAY_AUTH_TOKEN"
    by_path = load_token(both)
    assert (by_path.value, by_path.source, by_path.path) == ("from-path", "RAY_AUTH_TOKEN_PATH", str(named))
    by_home = load_token({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    assert (by_home.value, by_home.source) == ("from-home", "~/.ray/auth_token")
    assert "from-home" not in repr(by_home) and "from-home" not in str(by_home)


def test_the_token_read_from_each_place_is_its_value(tmp_path, monkeypatch):
    """Issue 20: the value read from RAY_AUTH_TOKEN was never asserted, only where it came from."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    from_env = load_token({"RAY_AUTH_TOKEN": "  from-env\n", "HOME": str(home)})
    assert (from_env.value, from_env.source, from_env.path, from_env.from_cluster) == (
        "from-env",
        "RAY_AUTH_TOKEN",
        None,
        False,
    )
    # blank variables count as unset: the next place is read
    assert load_token({"RAY_AUTH_TOKEN": " \n", "RAY_AUTH_TOKEN_PATH": "", "HOME": str(home)}).value == "from-home"
    # `home` wins over HOME; with no HOME in the given environment, the user's home
    other = tmp_path / "other"
    (other / ".ray").mkdir(parents=True)
    (other / ".ray" / "auth_token").write_text("from-other")
    assert load_token({"HOME": str(home)}, home=other).value == "from-other"
    monkeypatch.setenv("HOME", str(other))
    assert load_token({}).value == "from-other"
    # no environment given: this process's
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-process")
    assert load_token().value == "from-process"
    assert load_token({"HOME": str(tmp_path / "nobody")}) is None


def test_an_unreadable_token_file_is_skipped(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home")
    bad = tmp_path / "bad"
    bad.write_bytes(b"\xff\xfe not utf-8")
    blank = tmp_path / "blank"
    blank.write_text("  \n")
    for named in (bad, blank, tmp_path):  # not UTF-8, empty, a folder
        token = load_token({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(named)})
        assert (token.value, token.source) == ("from-home", "~/.ray/auth_token")


def test_loose_permissions(tmp_path):
    path = tmp_path / "t"
    path.write_text("x")
    path.chmod(0o600)
    assert loose_permissions(path) is None
    path.chmod(0o640)
    assert loose_permissions(path) == "group"
    path.chmod(0o644)
    assert loose_permissions(path) == "group and others"


def test_a_world_readable_token_file_is_warned(env, tmp_path):
    ray_dir = Path(env["HOME"]) / ".ray"
    ray_dir.mkdir()
    token_file = ray_dir / "auth_token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    with fake_ray(token=TOKEN) as fake:
        report = run_check(TargetOptions(address=fake.url, roundtrip=False), environ=env, cwd=tmp_path)
    results = {r.code: r for r in _result(report, "network.token")}
    assert results["network.token.found"].data["source"] == "~/.ray/auth_token"
    warn = results["network.token.file_readable"]
    assert warn.status is Status.WARN and str(token_file) in warn.summary and "others" in warn.summary
    assert warn.remediation.commands == (f"chmod 600 {token_file}",)
    assert TOKEN not in json.dumps(report.to_dict())


# --------------------------------------------------------------------------- the cluster's side, unit


def test_compose_head_found_by_its_labels(env, tmp_path):
    project = load_compose(_compose(tmp_path, 8265), env)
    _containers(tmp_path, env, {"mycluster-ray-head-7": {"labels": _head_labels(), "auth_token": TOKEN}})
    found = token_sources.from_compose(project, env)
    assert found.token is not None and found.token.value == TOKEN
    assert found.token.source == "docker exec mycluster-ray-head-7 ray get-auth-token" and found.token.from_cluster


@pytest.mark.slow
def test_compose_head_by_container_name_and_the_errors_docker_gives(env, tmp_path):
    path = _compose(tmp_path, 8265)
    path.write_text(path.read_text().replace("  ray-head:\n", "  ray-head:\n    container_name: the-head\n", 1))
    project = load_compose(path, env)
    _containers(tmp_path, env, {"the-head": {"labels": {}, "auth_token": TOKEN}})
    assert token_sources.from_compose(project, env).token.value == TOKEN
    _containers(tmp_path, env, {})
    missing = token_sources.from_compose(project, env)
    assert missing.token is None and missing.tried == (
        "docker exec the-head ray get-auth-token: Error response from daemon: No such container: the-head",
    )
    _containers(tmp_path, env, {"the-head": {"labels": {}, "auth_token": None}})
    none = token_sources.from_compose(project, env)
    assert none.token is None and "No authentication token found" in none.tried[0]
    down = token_sources.from_compose(project, {**env, "FAKE_DOCKER_DAEMON": "down"})
    assert down.token is None and "Cannot connect to the Docker daemon" in down.tried[0]


@pytest.mark.slow
def test_compose_guesses_composes_own_name_when_ps_finds_none(env, tmp_path):
    project = load_compose(_compose(tmp_path, 8265), env)
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": {}, "auth_token": TOKEN}})
    assert (
        token_sources.from_compose(project, env).token.source == "docker exec mycluster-ray-head-1 ray get-auth-token"
    )
    found = token_sources.from_compose(project, {**env, "COMPOSE_PROJECT_NAME": "Other"})
    assert found.token is None and "No such container: other-ray-head-1" in found.tried[0]


@pytest.mark.slow
def test_kuberay_plugin_then_the_secret(env, tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBERAY.format(name="ray-auth"))
    cluster = load_cluster_file(path, env)
    _k8s_secrets(tmp_path, env, {"ray-auth": {"auth_token": TOKEN}})
    by_secret = token_sources.from_kuberay(cluster, env)
    assert by_secret.token.value == TOKEN and by_secret.token.source == "kubectl get secret ray-auth (key auth_token)"
    assert by_secret.tried == ('kubectl ray get token ray-auth: error: unknown command "ray" for "kubectl"',)
    by_plugin = token_sources.from_kuberay(cluster, {**env, "FAKE_KUBECTL_PLUGIN": "1"})
    assert by_plugin.token.value == TOKEN and by_plugin.token.source == "kubectl ray get token ray-auth"
    log = tmp_path / "kubectl.jsonl"
    path.write_text(
        KUBERAY.format(name="ray-auth").replace("  name: ray-auth\n", "  name: ray-auth\n  namespace: ml\n")
    )
    token_sources.from_kuberay(load_cluster_file(path, env), {**env, "FAKE_KUBECTL_LOG": str(log)})
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [
        ["ray", "get", "token", "ray-auth", "-n", "ml"],
        ["get", "secret", "ray-auth", "-n", "ml", "-o", "jsonpath={.data.auth_token}"],
    ]
    _k8s_secrets(tmp_path, env, {})
    missing = token_sources.from_kuberay(cluster, env)
    assert missing.token is None
    assert missing.tried[-1].endswith('Error from server (NotFound): secrets "ray-auth" not found')


# --------------------------------------------------------------------------- check, against fake dashboards


def test_a_cluster_without_auth_is_never_asked_for_a_token(env, tmp_path):
    """No docker exec, no head-container lookup, no kubectl: the token sources never run. The compose
    cluster's own listing (``docker ps -a --no-trunc``, the inside view's one read) may run: it reads states."""
    log = tmp_path / "calls.jsonl"
    env.update(FAKE_DOCKER_LOG=str(log), FAKE_KUBECTL_LOG=str(log))
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": _head_labels(), "auth_token": TOKEN}})
    with fake_ray(ray="2.60.0", python="3.13.0") as fake:
        compose = _compose(tmp_path, fake.port)
        report = run_check(TargetOptions(compose=compose, roundtrip=False), environ=env, cwd=tmp_path)
    assert _result(report, "head.source")[0].status is Status.OK
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    token_calls = [c for c in calls if c[:1] in (["exec"], ["ray"], ["get"]) or (c[:1] == ["ps"] and "--filter" in c)]
    assert not token_calls, calls
    assert all(c[:3] == ["ps", "-a", "--no-trunc"] for c in calls if c[:1] == ["ps"]), calls


@pytest.mark.slow
def test_compose_check_with_the_token_from_docker_exec(env, tmp_path):
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": _head_labels(), "auth_token": TOKEN}})
    with fake_ray(ray="2.60.0", python="3.13.0", token=TOKEN) as fake:
        compose = _compose(tmp_path, fake.port)
        report = run_check(TargetOptions(compose=compose, roundtrip=False), environ=env, cwd=tmp_path)
        sent = [p for _, p in fake.requests]
    assert _result(report, "head.source")[0].status is Status.OK
    found = _result(report, "network.token")[0]
    assert found.status is Status.OK and "docker exec mycluster-ray-head-1 ray get-auth-token" in found.summary
    assert report.target["token"]["from"].startswith("docker exec") and report.target["token"]["sent"]
    assert "/api/v0/cluster_metadata" in sent
    assert TOKEN not in json.dumps(report.to_dict())


@pytest.mark.slow
def test_a_token_withheld_target_never_asks_docker(env, tmp_path):
    """A compose file publishing its dashboard on another address: the token must not go there, so no search.
    (127.0.0.3: any address but 127.0.0.1/localhost/::1 is withheld, and test traffic stays on loopback.)"""
    log = tmp_path / "calls.jsonl"
    env["FAKE_DOCKER_LOG"] = str(log)
    compose = _compose(tmp_path, 8265)
    compose.write_text(compose.read_text().replace("127.0.0.1:8265", "127.0.0.3:8265"))
    report = run_check(TargetOptions(compose=compose, roundtrip=False, timeout=0.5), environ=env, cwd=tmp_path)
    assert report.target.get("token") is None
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    # docker ps may still look for the head container to diagnose a dashboard that does not answer
    # (doctor.head.containers); what must never run is the token search: docker exec … ray get-auth-token.
    assert not [c for c in calls if c[:1] == ["exec"] or "get-auth-token" in c], calls


@pytest.mark.slow
def test_the_cli_never_prints_a_token_from_docker(env, tmp_path):
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": _head_labels(), "auth_token": TOKEN}})
    with fake_ray(ray="2.60.0", python="3.13.0", token=TOKEN) as fake:
        compose = _compose(tmp_path, fake.port)
        for args in (["check", "-v"], ["check", "--json"]):
            done = subprocess.run(
                [sys.executable, "-m", "doctor", *args, "--no-roundtrip", "--compose", str(compose)],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
            )
            assert "docker exec mycluster-ray-head-1 ray get-auth-token" in done.stdout, done.stderr
            assert TOKEN not in done.stdout + done.stderr and TOKEN[4:] not in done.stdout + done.stderr


# --------------------------------------------------------------------------- real Ray 2.60 head in token mode


@pytest.mark.cluster
def test_real_head_token_only_from_docker_exec(token_head, token_python, env, tmp_path):
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": _head_labels(), "auth_token": TOKEN_AUTH}})
    compose = _compose(tmp_path, token_head.ports["dashboard"], token_head.ports["client"])
    options = TargetOptions(
        address=token_head.dashboard_url,
        compose=compose,
        client_port=token_head.ports["client"],
        python=str(token_python),
    )
    report = run_check(options, environ=env, cwd=tmp_path)
    source = _result(report, "head.source")[0]
    assert source.status is Status.OK and report.head["ray"]["value"] == TOKEN_RAY
    found = _result(report, "network.token")[0]
    assert found.status is Status.OK and "docker exec mycluster-ray-head-1 ray get-auth-token" in found.summary
    trip = _result(report, "roundtrip.client")[0]
    assert trip.status is Status.OK, (trip.summary, trip.details)  # ray.init against the token head, token from docker
    assert TOKEN_AUTH not in json.dumps(report.to_dict())


@pytest.mark.cluster
def test_real_head_probe_job_carries_the_token_from_docker(token_head, token_python, env, tmp_path):
    """--deep submits a probe job through the Jobs API: with the token from docker exec, as the round trip."""
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": _head_labels(), "auth_token": TOKEN_AUTH}})
    compose = _compose(tmp_path, token_head.ports["dashboard"])
    options = TargetOptions(
        address=token_head.dashboard_url, compose=compose, python=str(token_python), roundtrip=False, deep=True
    )
    report = run_check(options, environ=env, cwd=tmp_path)
    probe = _result(report, "deep.probe")[0]
    assert probe.status is not Status.FAIL and probe.status is not Status.ERROR, (probe.summary, probe.details)
    assert report.head["packages"], report.head  # the job answered: the head's packages were listed
    assert TOKEN_AUTH not in json.dumps(report.to_dict())


@pytest.mark.cluster
def test_real_head_token_only_from_kubectl(token_head, token_python, env, tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBERAY.format(name="ray-auth"))
    _k8s_secrets(tmp_path, env, {"ray-auth": {"auth_token": TOKEN_AUTH}})
    options = TargetOptions(
        address=token_head.dashboard_url, cluster_file=path, python=str(token_python), roundtrip=False
    )
    report = run_check(options, environ=env, cwd=tmp_path)
    assert _result(report, "head.source")[0].status is Status.OK
    found = _result(report, "network.token")[0]
    assert found.data["source"] == "kubectl get secret ray-auth (key auth_token)"


@pytest.mark.cluster
def test_real_head_wrong_token_from_docker_names_the_source(token_head, token_python, env, tmp_path):
    _containers(tmp_path, env, {"mycluster-ray-head-1": {"labels": _head_labels(), "auth_token": WRONG}})
    compose = _compose(tmp_path, token_head.ports["dashboard"])
    options = TargetOptions(
        address=token_head.dashboard_url, compose=compose, python=str(token_python), roundtrip=False
    )
    report = run_check(options, environ=env, cwd=tmp_path)
    source = _result(report, "head.source")[0]
    assert source.status is Status.FAIL and source.data["kind"] == "forbidden"
    assert "rejected the auth token (from docker exec mycluster-ray-head-1 ray get-auth-token)" in source.summary
    assert WRONG not in json.dumps(report.to_dict())


from tests.helpers import TOKEN as TOKEN_AUTH  # noqa: E402  (the token the shared head runs with)
from tests.helpers import TOKEN_RAY  # noqa: E402
