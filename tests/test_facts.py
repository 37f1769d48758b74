"""Facts flow one way, the report agrees with the checks, where the head runs is part of the target,
and the token goes only to a target the user named (issue 8 items 2 and 8, issue 13 item 3)."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from doctor.app import run_check
from doctor.checks import gpu
from doctor.context import CheckContext
from doctor.facts.cluster import DeepProbe, NodeEnv, node_counts
from doctor.head.facts import HeadFacts, HeadPackages
from doctor.model import Status
from doctor.options import TargetOptions
from doctor.origin import Origin, PackagesOrigin
from doctor.target import HeadAddress, token_withheld
from tests.fake_servers import fake_ray, json_answer

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-value-0123456789"


def by_id(report, check_id):
    found = [r for r in report.results if r.id == check_id]
    assert found, f"no {check_id} in {[r.id for r in report.results]}"
    return found[0]


@pytest.fixture
def bare_path(monkeypatch, tmp_path):
    """PATH with no nvidia-smi and no docker (whatever this machine has), and no NVML."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(gpu, "from_nvml", lambda: None)
    return empty


# ---------------------------------------------------------------- facts never import checks


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_fact_modules_never_import_checks():
    """Old code: context.py imported doctor.checks.nodes and doctor.checks.deep (inside methods)."""
    facts = [REPO / "doctor" / "context.py", REPO / "doctor" / "target.py"]
    for folder in ("facts", "head", "local"):
        facts += sorted((REPO / "doctor" / folder).glob("*.py"))
    offenders = {
        str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.startswith("doctor.checks") or m == "doctor.app")
        for p in facts
    }
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_importing_the_context_loads_no_check():
    code = (
        "import sys, doctor.context; print(json.dumps(sorted(m for m in sys.modules if m.startswith('doctor.checks'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_head_facts_and_the_deep_probe_are_frozen():
    """Old code: HeadFacts was a plain dataclass and the deep probe wrote head().packages from a check."""
    facts = HeadFacts()
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.live = True  # type: ignore[misc]
    assert not hasattr(facts, "packages") and not hasattr(facts, "nodes")
    node = NodeEnv("a" * 56, "10.0.0.1", True, "3.12.9", "2.49.2", "/x/python", {"numpy": "1.26.4"})
    probe = DeepProbe(nodes=(node,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.error = "x"  # type: ignore[misc]
    assert probe.head_packages == {"numpy": "1.26.4"}


def test_head_packages_come_from_the_deep_probe_fact(clean_env, tmp_path):
    ctx = CheckContext(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", deep=True), environ=clean_env, cwd=tmp_path
    )
    node = NodeEnv("a" * 56, "10.0.0.1", True, packages={"numpy": "1.26.4"})
    ctx._deep = SimpleNamespace(get=lambda: DeepProbe(nodes=(node,)), peek=lambda: None)  # type: ignore[assignment]
    assert ctx.head_packages() == HeadPackages({"numpy": "1.26.4"}, PackagesOrigin.DEEP_PROBE)
    assert ctx.head_packages().source == "the --deep probe"  # the report's words, made from the origin
    plain = CheckContext(TargetOptions(image="rayproject/ray:2.49.2-py312-cpu"), environ=clean_env, cwd=tmp_path)
    assert plain.probed_head_packages() is None  # without --deep nobody runs the job


# ---------------------------------------------------------------- the report agrees with the check


def _node(node_id: str, head: bool, state: str = "ALIVE") -> dict[str, Any]:
    return {
        "node_id": node_id * 28,
        "node_ip": "10.0.0.1" if head else "10.0.0.2",
        "is_head_node": head,
        "state": state,
        "resources_total": {"CPU": 2.0},
    }


def test_json_head_nodes_is_the_node_list_the_check_judged(clean_env, tmp_path):
    """Old code: --json said head.nodes 0 while the head.nodes check said "2 alive"."""
    server = fake_ray()
    nodes = [_node("a", True), _node("b", False), _node("c", False, "DEAD")]
    server.routes["/api/v0/nodes"] = json_answer({"data": {"result": {"result": nodes}}})
    with server:
        report = run_check(TargetOptions(address=server.url, roundtrip=False), environ=clean_env, cwd=tmp_path)
    check = by_id(report, "head.nodes")
    assert check.summary.startswith("2 alive") and check.code == "head.nodes.dead_workers"
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["head"]["nodes"] == 2 == check.data["alive"]
    assert doc["head"]["node_counts"] == {"listed": 3, "alive": 2, "dead": 1}
    # one read of the node list served the check and the report
    assert sum(1 for _, path in server.requests if path.startswith("/api/v0/nodes")) == 1


def test_json_head_nodes_is_null_when_no_list_was_read(clean_env, tmp_path, bare_path):
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", roundtrip=False), environ=dict(os.environ), cwd=tmp_path
    )
    assert report.head["nodes"] is None and report.head["packages"] is None


def test_node_counts():
    assert node_counts([_node("a", True), _node("b", False, "DEAD")]) == {"listed": 2, "alive": 1, "dead": 1}


# ---------------------------------------------------------------- where the head runs

KUBERAY_GPU_HEAD = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-gpu
spec:
  rayVersion: '2.49.2'
  headGroupSpec:
    rayStartParams: {num-gpus: "1"}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.49.2-py312-gpu
          resources:
            limits: {nvidia.com/gpu: 1}
  workerGroupSpecs:
  - groupName: gpu-group
    replicas: 1
    rayStartParams: {num-gpus: "1"}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.49.2-py312-gpu
          resources:
            limits: {nvidia.com/gpu: 1, cpu: 4}
"""


def test_a_kuberay_head_is_not_judged_on_this_laptop(tmp_path, clean_env, bare_path):
    """Old code: target kind "image", and gpu.host failed with "no NVIDIA driver on this host"."""
    path = tmp_path / "raycluster.yaml"
    path.write_text(KUBERAY_GPU_HEAD)
    report = run_check(TargetOptions(cluster_file=path, roundtrip=False), environ=dict(os.environ), cwd=tmp_path)
    assert report.error is None
    assert report.target["kind"] == "cluster_file" and report.target["head_is_here"] is False
    assert report.head["cuda"]  # the image is a GPU image: the old code wanted this host's driver
    ids = {r.id: r for r in report.results}
    assert "gpu.host" not in ids and "gpu.docker" not in ids, {k: v.summary for k, v in ids.items()}
    assert not [r for r in report.results if "this host" in r.summary and r.status is Status.FAIL]


def test_an_image_run_here_still_wants_this_hosts_driver(tmp_path, bare_path):
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-gpu", roundtrip=False), environ=dict(os.environ), cwd=tmp_path
    )
    assert report.target["kind"] == "image" and report.target["head_is_here"] is True
    host = by_id(report, "gpu.host")
    assert host.status is Status.FAIL and host.code == "gpu.host.no_driver"


@pytest.mark.parametrize(
    "options, kind, here",
    [
        (TargetOptions(address="127.0.0.1:8265"), "address", True),
        (TargetOptions(address="10.1.2.3:8265"), "address", False),
        (TargetOptions(compose=REPO / "compose" / "cpu-ray-cluster.yaml"), "compose", True),
        (TargetOptions(image="rayproject/ray:2.49.2-py312-cpu"), "image", True),
    ],
)
def test_target_kind_and_where_the_head_runs(options, kind, here, clean_env, tmp_path):
    target = CheckContext(options, environ=clean_env, cwd=tmp_path).target
    assert (target.kind, target.head_is_here) == (kind, here)
    assert target.to_dict()["kind"] == kind


# ---------------------------------------------------------------- the token only to a named target


class HeaderRecorder:
    """A fake Ray dashboard behind token auth on any loopback IP, recording every request's headers."""

    def __init__(self, host: str) -> None:
        self.headers: list[dict[str, str]] = []
        rec = self
        answers = fake_ray(token=TOKEN).routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rec.headers.append({k.lower(): v for k, v in self.headers.items()})
                path = self.path.split("?", 1)[0]
                public = path in {"/api/gcs_healthz", "/api/authentication_mode"}
                if not public and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    status, ctype, body = 401, "text/plain", "Unauthorized: Missing authentication token"
                else:
                    status, ctype, body = answers.get(path, (404, "text/plain", "404"))  # type: ignore[misc]
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the port probe hangs up without reading

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def authorized(self) -> list[dict[str, str]]:
        return [h for h in self.headers if "authorization" in h]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _loopback_alias_works(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def _compose(tmp_path: Path, host_ip: str, port: int) -> Path:
    path = tmp_path / "docker-compose.yaml"
    path.write_text(
        "services:\n"
        "  ray-head:\n"
        "    image: rayproject/ray:2.49.2-py312-cpu\n"
        '    command: bash -c "ray start --head --dashboard-host=0.0.0.0 --block"\n'
        "    ports:\n"
        f'      - "{host_ip}:{port}:8265"\n'
    )
    return path


@pytest.fixture
def recorder():
    if not _loopback_alias_works("127.0.0.3"):
        pytest.skip("this system cannot bind 127.0.0.3")
    rec = HeaderRecorder("127.0.0.3")
    yield rec
    rec.close()


def test_no_token_to_a_host_the_compose_file_picks(tmp_path, clean_env, recorder, bare_path):
    """Old code: the compose file's host_ip became the target and got the bearer token."""
    compose = _compose(tmp_path, "127.0.0.3", recorder.port)
    env = {**os.environ, "RAY_AUTH_TOKEN": TOKEN}
    report = run_check(TargetOptions(compose=compose, roundtrip=False), environ=env, cwd=tmp_path)
    assert report.error is None
    assert recorder.headers, "raydoctor never asked the compose head"
    assert recorder.authorized() == [], recorder.authorized()
    source = by_id(report, "head.source")
    assert source.status is Status.FAIL and source.data["kind"] == "token_withheld"
    assert "did not send it to 127.0.0.3" in source.summary and "--address" in source.summary
    assert source.remediation and f"--address 127.0.0.3:{recorder.port}" in " ".join(source.remediation.commands)
    assert report.target["token"] == {
        "from": "RAY_AUTH_TOKEN",
        "sent": False,
        "why_not": report.target["token"]["why_not"],
    }
    assert TOKEN not in json.dumps(report.to_dict())
    assert TOKEN in report.secret_values  # type: ignore[attr-defined]


def test_the_token_file_is_not_sent_either(tmp_path, clean_env, recorder, bare_path):
    home = Path(os.environ["HOME"])
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(TOKEN + "\n")
    compose = _compose(tmp_path, "127.0.0.3", recorder.port)
    report = run_check(TargetOptions(compose=compose, roundtrip=False), environ=dict(os.environ), cwd=tmp_path)
    assert recorder.headers and recorder.authorized() == []
    assert "~/.ray/auth_token" in by_id(report, "head.source").summary


def test_the_token_goes_to_an_address_the_user_names(tmp_path, clean_env, recorder, bare_path):
    compose = _compose(tmp_path, "127.0.0.3", recorder.port)
    env = {**os.environ, "RAY_AUTH_TOKEN": TOKEN}
    named = TargetOptions(address=f"127.0.0.3:{recorder.port}", compose=compose, roundtrip=False)
    report = run_check(named, environ=env, cwd=tmp_path)
    assert recorder.authorized() and by_id(report, "head.source").status is Status.OK
    assert report.target["token"]["sent"] is True


def test_the_token_goes_to_the_default_loopback_docker_publishes_on(tmp_path, clean_env, bare_path):
    server = fake_ray(token=TOKEN)
    with server:
        compose = _compose(tmp_path, "127.0.0.1", server.port)
        env = {**os.environ, "RAY_AUTH_TOKEN": TOKEN}
        report = run_check(TargetOptions(compose=compose, roundtrip=False), environ=env, cwd=tmp_path)
    assert by_id(report, "head.source").status is Status.OK
    assert report.head["live"] is True and report.target["token"]["sent"] is True


@pytest.mark.parametrize(
    "host, source, withheld",
    [
        ("10.0.0.5", Origin.FLAG, False),
        ("10.0.0.5", Origin.ENVIRONMENT, False),
        ("10.0.0.5", Origin.SETTINGS, False),
        ("10.0.0.5", Origin.CLUSTER_FILE, True),
        ("10.0.0.5", None, True),
        ("127.0.0.1", Origin.COMPOSE, False),
        ("localhost", Origin.COMPOSE, False),
        ("::1", Origin.COMPOSE, False),
        ("127.0.0.3", Origin.COMPOSE, True),
        ("192.168.1.20", Origin.COMPOSE, True),
    ],
)
def test_token_withheld(host, source, withheld):
    why = token_withheld(HeadAddress(host, 8265, given="compose x.yaml"), source, "RAY_AUTH_TOKEN", "compose x.yaml")
    assert (why is not None) is withheld
    if why:
        assert "--address" in why and "RAY_AUTH_TOKEN" in why


def test_the_round_trip_child_gets_the_token_only_where_it_may_go(tmp_path, clean_env):
    compose = _compose(tmp_path, "192.168.7.7", 8265)
    env = {**clean_env, "RAY_AUTH_TOKEN": TOKEN}
    far = CheckContext(TargetOptions(compose=compose), environ=env, cwd=tmp_path)
    assert far.target_token is None and "RAY_AUTH_TOKEN" not in far.child_environ()
    named = CheckContext(TargetOptions(address="192.168.7.7:8265"), environ=env, cwd=tmp_path)
    assert named.target_token is not None and named.child_environ()["RAY_AUTH_TOKEN"] == TOKEN
    # Ray 2.60's client attaches a token only in token mode: without it, ray:// timed out against a token
    # head (tests/test_ray_matrix.py's 2.60 row). The mode goes with the token, never without it, and a mode
    # the user set is kept.
    assert named.child_environ()["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_MODE" not in far.child_environ()
    mine = CheckContext(
        TargetOptions(address="192.168.7.7:8265"), environ={**env, "RAY_AUTH_MODE": "disabled"}, cwd=tmp_path
    )
    assert mine.child_environ()["RAY_AUTH_MODE"] == "disabled"


# ---------------------------------------------------------------- per-run secrets


def test_secret_values_collects_every_source(tmp_path, clean_env):
    env = {**clean_env, "RAY_AUTH_TOKEN": TOKEN}
    ctx = CheckContext(TargetOptions(image="rayproject/ray:2.49.2-py312-cpu"), environ=env, cwd=tmp_path)
    assert ctx.secret_values() == frozenset({TOKEN})
    ctx.target.compose = SimpleNamespace(secret_values=lambda: {"compose-password", ""})
    ctx.target.cluster = SimpleNamespace(secret_values=lambda: ["cluster-password"])
    ctx.requirements = SimpleNamespace(secret_values=lambda: frozenset({"index-token"}))  # type: ignore[assignment]
    assert ctx.secret_values() == frozenset({TOKEN, "compose-password", "cluster-password", "index-token"})
    ctx.target.compose = SimpleNamespace()  # before the other branch lands: no method, no crash
    assert "compose-password" not in ctx.secret_values()


def test_run_check_puts_the_secrets_on_the_report(tmp_path, clean_env, bare_path):
    env = {**os.environ, "RAY_AUTH_TOKEN": TOKEN}
    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", roundtrip=False), environ=env, cwd=tmp_path
    )
    assert report.secret_values == frozenset({TOKEN})  # type: ignore[attr-defined]
    assert "secret_values" not in report.to_dict()
