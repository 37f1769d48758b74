"""A token from the cluster itself, for real (issue 19): a Ray 2.60 compose cluster with token auth on.

The cluster is ``tests/engine/token-ray-cluster.yaml`` (a head and a worker from the stand-in
``rayproject/ray:2.60.0-py312-cpu`` that ``tests/engine/setup.sh up`` builds; the head generates its own
token at start) with free host ports, published on 127.0.0.1. raydoctor runs from an empty folder, with no
``RAY_*`` in its environment and a HOME of its own (no ``~/.ray/auth_token``): the only token there is is
the head's, which ``docker exec <head> ray get-auth-token`` prints (``doctor.head.token_sources``). The
test reads that token itself the same way and asserts it appears in nothing raydoctor prints.

Marked ``engine``: where the engine or the image is missing these tests skip saying so, and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine_rig import ComposeCluster, docker, report
from tests.engine_rig import result_in as by_id
from tests.helpers import missing, raydoctor_cli, tool_env
from tests.ray_cluster import ensure_ray_venv, free_ports

pytestmark = [pytest.mark.engine, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "tests" / "engine" / "token-ray-cluster.yaml"
IMAGE = "rayproject/ray:2.60.0-py312-cpu"
ROLES = {8265: "dashboard", 10001: "client", 6379: "gcs", 8500: "metrics"}
WRONG = "not-the-clusters-token-0123456789"


@dataclass
class TokenCluster(ComposeCluster):
    head: str = ""  # the head's container name, once up
    token: str = ""  # the head's token, read by the test with docker exec

    def get(self, path: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['dashboard']}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)

    def wait_ready(self, timeout: float = 240) -> None:
        """The head's token written, its dashboard in token mode, and both nodes alive (the worker joined
        with the head's token)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            done = docker("ps", "--filter", f"label=com.docker.compose.project={self.project}",
                          "--filter", "label=com.docker.compose.service=ray-head", "--format", "{{.Names}}")  # fmt: skip
            self.head = done.stdout.strip()
            got = docker("exec", self.head, "ray", "get-auth-token") if self.head else None
            if got is not None and got.returncode == 0 and got.stdout.strip():
                self.token = got.stdout  # printed without a newline (ray/scripts/scripts.py::get_auth_token)
                try:
                    if self.get("/api/authentication_mode") == {"authentication_mode": "token"}:
                        summary = self.get("/nodes?view=summary")["data"]["summary"]
                        alive = sum(1 for n in summary if n.get("raylet", {}).get("state") == "ALIVE")
                        if alive >= 2:
                            return
                        last = f"{alive} node(s) alive"
                except (OSError, ValueError, KeyError) as exc:
                    last = repr(exc)
            time.sleep(2)
        logs = self.compose("logs", "--tail", "30").stdout
        raise AssertionError(f"the token cluster was not ready in {timeout} s ({last}):\n{logs[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[TokenCluster]:
    for tool in ("docker", "docker-compose"):
        try:
            subprocess.run([tool, "version"], capture_output=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            missing(f"{tool} does not answer: run tests/engine/setup.sh up (as root)")
    if docker("image", "inspect", IMAGE).returncode != 0:
        missing(f"the stand-in image {IMAGE} is not built: run tests/engine/setup.sh up")
    folder = tmp_path_factory.mktemp(f"token{os.getpid()}-")
    ports = dict(zip(ROLES.values(), free_ports(len(ROLES))))
    text = COMPOSE.read_text()
    for container_port, role in ROLES.items():
        text, n = re.subn(
            rf'"127\.0\.0\.1:{container_port}:{container_port}"', f'"127.0.0.1:{ports[role]}:{container_port}"', text
        )
        assert n == 1, role
    file = folder / COMPOSE.name
    file.write_text(text)
    # docker-compose 1.29 names the project after the folder: lowercase, [-_a-z0-9] kept (compose/cli/command.py).
    made = TokenCluster(folder, file, re.sub(r"[^-_a-z0-9]", "", folder.name.lower()), ports)
    try:
        up = made.compose("up", "-d")
        assert up.returncode == 0, up.stderr
        made.wait_ready()
        yield made
    finally:
        down = made.compose("down", "-v", "--remove-orphans")
        assert down.returncode == 0, down.stderr
        assert made.leftovers() == []


@pytest.fixture(scope="module")
def client_python() -> Path:
    """A Ray 2.60.0 env on the head's Python (3.12.1, the stand-in's), for the round trip."""
    try:
        return ensure_ray_venv(ray="2.60.0", minor="3.12")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        missing(f"cannot build a Ray 2.60.0 venv on Python 3.12: {exc}")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """No RAY_* at all and a HOME of its own: no ~/.ray/auth_token, no settings, no cached answers."""
    home = tmp_path / "home"
    home.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_"))}
    environ["HOME"] = str(home)
    return tool_env(environ)


def run(cluster: TokenCluster, args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return raydoctor_cli([args[0], "--compose", str(cluster.file), *args[1:]], cwd, env, 600)


def test_token_comes_from_the_head_container(cluster: TokenCluster, client_python: Path, tmp_path, env) -> None:
    """From an empty folder with no token anywhere here, check reads the head's own and the round trip passes."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not (Path(env["HOME"]) / ".ray").exists() and not any(k.startswith("RAY_AUTH") for k in env)
    done = run(cluster, ["check", "--python", str(client_python), "--json"], empty, env)
    doc = report(done)
    source = f"docker exec {cluster.head} ray get-auth-token"
    token = by_id(doc, "network.token")
    assert token["status"] == "ok" and token["code"] == "network.token.found", token
    assert token["data"] == {"source": source, "sent": True, "from_cluster": True}, token["data"]
    assert f"auth token from {source}, sent to http://127.0.0.1:{cluster.ports['dashboard']}" in token["summary"]
    head = by_id(doc, "head.source")
    assert head["code"] == "head.source.live" and doc["head"]["auth_mode"] == "token", head
    assert doc["head"]["ray"]["value"] == "2.60.0", doc["head"]
    assert by_id(doc, "head.nodes")["status"] == "ok", by_id(doc, "head.nodes")
    trip = by_id(doc, "roundtrip.client")
    assert trip["status"] == "ok" and trip["data"]["worker"]["ray"] == "2.60.0", trip
    assert done.returncode == 0, [(r["id"], r["summary"]) for r in doc["results"] if r["status"] == "fail"]

    # The token is in nothing raydoctor prints: JSON, text, verbose text, the Markdown report; nor was it
    # saved here.
    outputs = [done.stdout, done.stderr]
    for args in (["check", "--python", str(client_python)], ["check", "-v", "--no-roundtrip"], ["report", "-v"]):
        more = run(cluster, args, empty, env)
        assert more.returncode in (0, 1) and "docker exec" in more.stdout, more.stdout[-2000:] + more.stderr[-2000:]
        outputs += [more.stdout, more.stderr]
    assert len(cluster.token) >= 32
    assert all(cluster.token not in text for text in outputs)
    assert list(empty.iterdir()) == [] and not (Path(env["HOME"]) / ".ray").exists()


def test_wrong_env_token_is_refused_and_named(cluster: TokenCluster, client_python: Path, tmp_path, env) -> None:
    """A wrong RAY_AUTH_TOKEN wins over the cluster's own (Ray's order) and is named as what the head refused."""
    done = run(cluster, ["check", "--python", str(client_python), "--json"], tmp_path, {**env, "RAY_AUTH_TOKEN": WRONG})
    doc = report(done)
    assert done.returncode == 1
    head = by_id(doc, "head.source")
    assert head["code"] == "head.source.forbidden" and head["data"]["kind"] == "forbidden", head
    assert "rejected the auth token (from RAY_AUTH_TOKEN)" in head["summary"], head["summary"]
    assert "docker exec <head container> ray get-auth-token" in head["remediation"]["text"]
    assert by_id(doc, "network.token")["data"]["source"] == "RAY_AUTH_TOKEN"
    # Not ray.init's 20 s wait for a refused client: the round trip says why it is not tried.
    trip = by_id(doc, "roundtrip.client")
    assert trip["code"] == "roundtrip.client.token_refused" and trip["data"]["reason"] == "token_refused", trip
    assert WRONG not in done.stdout + done.stderr and cluster.token not in done.stdout + done.stderr
