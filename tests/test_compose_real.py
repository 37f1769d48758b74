"""The tutorial's compose cluster, for real (issue 19): a real Docker engine, the standalone
docker-compose, and the stand-in image ``tests/engine/setup.sh`` builds (no registry is used).

Marked ``engine``: these tests need ``tests/engine/setup.sh up`` to have run (.ci/run does it); where
the engine or the image is missing they skip saying so, and fail under CI=true.

The cluster is the shipped ``compose/cpu-ray-cluster.yaml`` with two changes, both asserted: its host
ports are free ones (published on 127.0.0.1 as the tutorial does, so that a user's cluster or a parallel
run keeps its own), and the worker's ``cpus: '3'`` is fitted to the engine's CPUs where the engine has
fewer (Docker refuses the container otherwise; ``test_shipped_worker_limit_is_a_failure_on_this_engine``
shows the tutorial's own file failing, and check saying so first). Only ports published on 127.0.0.1 are
contacted; the containers talk on the bridge the compose file creates.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.engine_rig import ComposeCluster, docker, report
from tests.engine_rig import result_in as by_id
from tests.helpers import missing, raydoctor_cli, tool_env
from tests.ray_cluster import free_ports

pytestmark = [pytest.mark.engine, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "compose" / "cpu-ray-cluster.yaml"
IMAGE = "rayproject/ray:2.49.2.7b0af3-py312-cpu"
NOSSL_IMAGE = "raydoctor-test/ray-nossl:2.49.2"
SKEWED_IMAGE = "raydoctor-test/ray-skewed:2.49.2"
ROLES = {8265: "dashboard", 10001: "client", 6379: "gcs", 8500: "metrics"}
TUTORIAL_CODE = 'import ray\n\nray.init(\n    address="ray://127.0.0.1:10001"\n)\n'


def engine_cpus() -> int:
    return int(docker("info", "--format", "{{.NCPU}}").stdout.strip())


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        missing("needs docker and docker-compose: run tests/engine/setup.sh up (as root)")
    if docker("version", "--format", "{{.Server.Version}}").returncode != 0:
        missing("no Docker engine answers: run tests/engine/setup.sh up (as root)")
    for image in (IMAGE, NOSSL_IMAGE, SKEWED_IMAGE):
        if docker("image", "inspect", image).returncode != 0:
            missing(f"the stand-in image {image} is not built: run tests/engine/setup.sh up")


def raydoctor(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return raydoctor_cli(args, cwd, env, timeout)


@dataclass
class Cluster(ComposeCluster):
    def container(self, service: str) -> str:
        done = docker(
            "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        )  # fmt: skip
        return done.stdout.strip().splitlines()[0]

    def wait_healthy(self, timeout: float = 180) -> None:
        url = f"http://127.0.0.1:{self.ports['dashboard']}/api/gcs_healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=3) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            raise AssertionError(f"{url} not healthy in {timeout} s:\n{self.compose('logs', '--tail', '30').stdout}")
        # The metrics exporter (the head's agent) starts after the dashboard.
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['metrics']}/metrics", timeout=3) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(1)
        # Both nodes alive (the worker joins after the head).
        nodes_url = f"http://127.0.0.1:{self.ports['dashboard']}/nodes?view=summary"
        while time.monotonic() < deadline:
            with urllib.request.urlopen(nodes_url, timeout=5) as answer:
                summary = json.load(answer)["data"]["summary"]
            if sum(1 for n in summary if n.get("raylet", {}).get("state") == "ALIVE") >= 2:
                return
            time.sleep(1)
        raise AssertionError("the worker did not join the head")


def fitted_copy(folder: Path, *, image: str = IMAGE, fit_cpus: bool = True) -> Cluster:
    """The shipped file with free host ports (still on 127.0.0.1) and the worker's CPUs fitted to the engine
    (unless not ``fit_cpus``: then the tutorial's own limit stays, for ``fix --cluster`` to fit)."""
    text = SHIPPED.read_text()
    ports = dict(zip(ROLES.values(), free_ports(len(ROLES))))
    for container_port, role in ROLES.items():
        text, n = re.subn(
            rf'"127\.0\.0\.1:{container_port}:{container_port}"', f'"127.0.0.1:{ports[role]}:{container_port}"', text
        )
        assert n == 1, role
    cpus = engine_cpus()
    if cpus < 3 and fit_cpus:
        text, n = re.subn(r"cpus: '3'", f"cpus: '{cpus}'", text)
        assert n == 1
    text = text.replace(IMAGE, image)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "cpu-ray-cluster.yaml"
    file.write_text(text)
    # Nothing else differs from the tutorial's file.
    mine, shipped = yaml.safe_load(text), yaml.safe_load(SHIPPED.read_text())
    for service in mine["services"].values():
        service["ports"] = [re.sub(r":\d+:", ":X:", p) for p in service.get("ports", [])]
        service.get("deploy", {}).get("resources", {}).get("limits", {}).pop("cpus", None)
        service["image"] = IMAGE
    for service in shipped["services"].values():
        service["ports"] = [re.sub(r":\d+:", ":X:", p) for p in service.get("ports", [])]
        service.get("deploy", {}).get("resources", {}).get("limits", {}).pop("cpus", None)
    assert mine == shipped
    # docker-compose 1.29 names the project after the folder: lowercase, [-_a-z0-9] kept (compose/cli/command.py).
    project = re.sub(r"[^-_a-z0-9]", "", folder.name.lower())
    return Cluster(folder, file, project, ports)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_"))}
    environ["HOME"] = str(home)
    return tool_env(environ)


@pytest.fixture(scope="module")
def tutorial(engine, tmp_path_factory, env) -> Iterator[Cluster]:
    """The fitted tutorial cluster, checked while down, then started by pasting check's own command."""
    cluster = fitted_copy(tmp_path_factory.mktemp(f"tutorial{os.getpid()}-"))
    try:
        yield cluster
    finally:
        cluster.compose("down", "-v", "--remove-orphans")


def test_shipped_worker_limit_is_a_failure_on_this_engine(engine, tmp_path, env) -> None:
    """Case 4: the tutorial's `cpus: '3'` judged against the engine's CPUs (docker info's NCPU), and Docker agrees."""
    cpus = engine_cpus()
    if cpus >= 3:
        pytest.skip(f"this engine has {cpus} CPUs: the tutorial's worker fits")
    done = raydoctor(["check", "--compose", str(SHIPPED), "--no-roundtrip", "--json"], tmp_path, env)
    limits = by_id(report(done), "compose.resource_limits")
    assert limits["status"] == "fail", limits
    assert f"{cpus} CPU" in limits["summary"] and "engine" in limits["summary"], limits["summary"]
    # head.source offers no `up -d` that Docker would refuse: it quotes what Docker will say, and the fix.
    start = by_id(report(done), "head.source")["remediation"]
    said = re.search(r"'(Range of CPUs is from [^']*)'", start["text"])
    assert said is not None and not any("up" in c.split() for c in start["commands"]), start
    assert start["commands"][-1].endswith(f"fix --cluster --compose {SHIPPED}"), start
    # Docker refuses to create the container: `up --no-start` creates without starting (no port is bound).
    project = f"rdshipped{os.getpid()}"
    try:
        up = subprocess.run(
            ["docker-compose", "-p", project, "-f", str(SHIPPED), "up", "--no-start"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert up.returncode != 0 and said.group(1) in up.stderr, (said.group(1), up.stderr)  # Docker's words
    finally:
        subprocess.run(
            ["docker-compose", "-p", project, "-f", str(SHIPPED), "down", "-v"], capture_output=True, timeout=120
        )


def test_down_then_pasted_start_command_starts_it(tutorial: Cluster, env) -> None:
    """While down, check says the cluster is not running and how to start it; that command, pasted, works."""
    done = raydoctor(["check", "--compose", str(tutorial.file), "--no-roundtrip", "--json"], tutorial.folder, env)
    doc = report(done)
    source = by_id(doc, "head.source")
    assert source["code"] == "head.source.cluster_down", source
    commands = source["remediation"]["commands"]
    assert len(commands) == 1 and " up -d" in commands[0], commands
    started = subprocess.run(shlex.split(commands[0]), cwd=tutorial.folder, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    tutorial.wait_healthy()


def _recording_docker(folder: Path, env: dict[str, str]) -> tuple[dict[str, str], Path]:
    """``env`` with a ``docker`` first on PATH that writes each argv to a file, then runs the real one."""
    real = shutil.which("docker", path=env.get("PATH"))
    assert real is not None
    bindir, calls = folder / "recording-bin", folder / "docker-calls.jsonl"
    bindir.mkdir(exist_ok=True)
    shim = bindir / "docker"
    shim.write_text(
        f"#!{shutil.which('python3')}\nimport json, os, sys\n"
        f"with open({str(calls)!r}, 'a') as fh:\n    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
    )
    shim.chmod(0o755)
    return {**env, "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}, calls


def test_live_check_through_published_ports(tutorial: Cluster, env) -> None:
    recording, calls = _recording_docker(tutorial.folder, env)
    done = raydoctor(["check", "--compose", str(tutorial.file), "--no-roundtrip", "--json"], tutorial.folder, recording)
    doc = report(done)
    # A healthy cluster is read from outside: no container's log is read (every worker container is an
    # alive node, so none was refused; the dashboard answers, so it did not die).
    asked = [json.loads(line) for line in calls.read_text().splitlines()]
    assert ["ps", "-a", "--no-trunc"] in [argv[:3] for argv in asked], asked
    assert not [argv for argv in asked if argv[:1] in (["exec"], ["logs"])], asked
    assert doc["head"]["live"] is True, doc["head"]
    assert doc["head"]["ray"]["value"] == "2.49.2" and doc["head"]["python"]["value"] == "3.12.1", doc["head"]
    assert by_id(doc, "head.source")["code"] == "head.source.live"
    assert by_id(doc, "network.dashboard")["status"] == "ok"
    assert by_id(doc, "network.ports")["status"] == "ok", by_id(doc, "network.ports")
    assert doc["head"]["node_counts"], doc["head"]
    assert by_id(doc, "head.nodes")["status"] == "ok", by_id(doc, "head.nodes")
    assert by_id(doc, "compose.resource_limits")["status"] == "ok"  # the fitted copy


def test_a_stopped_worker_is_said_with_its_container_state(tutorial: Cluster, env) -> None:
    """A worker container that stopped is named with its state (the node list alone shows one node fewer,
    or a dead one); started again, the cluster is whole. Before: head.nodes said OK, "1 alive"."""
    assert docker("stop", "-t", "5", tutorial.container("ray-worker")).returncode == 0
    try:
        doc = report(
            raydoctor(["check", "--compose", str(tutorial.file), "--no-roundtrip", "--json"], tutorial.folder, env)
        )
        nodes = by_id(doc, "head.nodes")
        assert nodes["code"] == "head.nodes.worker_stopped" and nodes["status"] == "warn", nodes
        assert nodes["data"]["not_running"] and "Exited" in nodes["summary"], nodes["summary"]
        assert any("up" in c and "-d" in c for c in nodes["remediation"]["commands"]), nodes["remediation"]
    finally:
        assert tutorial.compose("up", "-d").returncode == 0
        tutorial.wait_healthy()


def test_fix_run_jobs_lock_and_down(tutorial: Cluster, env) -> None:
    envs = tutorial.folder / "envs"
    # fix: builds the head's Python and Ray, then proves it with a round trip through the published client port.
    fixed = raydoctor(["fix", "--compose", str(tutorial.file), "--yes", "--env-dir", str(envs)], tutorial.folder, env)
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]
    venv = next(envs.iterdir())
    python = venv / "bin" / "python"
    checked = raydoctor(
        ["check", "--compose", str(tutorial.file), "--python", str(python), "--json"], tutorial.folder, env
    )
    doc = report(checked)
    assert by_id(doc, "roundtrip.client")["status"] == "ok", by_id(doc, "roundtrip.client")

    # run: the tutorial's own code, its client port the published one.
    code = TUTORIAL_CODE.replace(":10001", f":{tutorial.ports['client']}")
    code += "print('resources', ray.cluster_resources().get('CPU'))\n"
    script = tutorial.folder / "tutorial.py"
    script.write_text(code)
    ran = raydoctor(
        ["run", "--compose", str(tutorial.file), "--env-dir", str(envs), "--", "python", str(script)],
        tutorial.folder,
        env,
    )
    assert ran.returncode == 0 and "resources " in ran.stdout, ran.stdout[-2000:] + ran.stderr[-2000:]

    # --mode jobs --jobs: one real job through the published dashboard port.
    jobs = raydoctor(
        ["check", "--compose", str(tutorial.file), "--mode", "jobs", "--jobs", "--python", str(python), "--json"],
        tutorial.folder,
        env,
    )
    jdoc = report(jobs)
    job = [r for r in jdoc["results"] if r["id"].startswith("jobs.")]
    assert job and all(r["status"] in {"ok", "skip", "warn"} for r in job), [(r["id"], r["summary"]) for r in job]
    assert by_id(jdoc, "jobs.submit")["status"] == "ok", by_id(jdoc, "jobs.submit")

    # lock from the running cluster.
    live_lock = raydoctor(["lock", "--compose", str(tutorial.file)], tutorial.folder, env)
    assert live_lock.returncode == 0, live_lock.stderr
    assert "ray==2.49.2" in live_lock.stdout.splitlines(), live_lock.stdout

    # down leaves nothing of the project behind (the label filter does find what up made).
    made = tutorial.leftovers()
    assert sum(x.startswith("ps ") for x in made) == 2 and any(x.startswith("network ") for x in made), made
    down = tutorial.compose("down", "-v", "--remove-orphans")
    assert down.returncode == 0, down.stderr
    assert tutorial.leftovers() == []

    # lock from the image, the cluster down.
    image_lock = raydoctor(["lock", "--compose", str(tutorial.file)], tutorial.folder, env)
    assert image_lock.returncode == 0, image_lock.stderr
    assert "ray==2.49.2" in image_lock.stdout.splitlines(), image_lock.stdout
    pins = [[line for line in done.stdout.splitlines() if not line.startswith("#")] for done in (live_lock, image_lock)]
    assert pins[0] == pins[1], pins  # the same pins from either source
    assert f"the cluster (http://127.0.0.1:{tutorial.ports['dashboard']})" in live_lock.stdout
    assert f"the cluster (docker image {IMAGE}" in image_lock.stdout


# -- diagnoses read from inside the cluster (case 3) ------------------------------------------------


@pytest.fixture
def broken(engine, tmp_path_factory) -> Iterator[list[Cluster]]:
    """Clusters a test starts from a broken variant of the fitted copy; each is taken down afterwards."""
    made: list[Cluster] = []
    try:
        yield made
    finally:
        for cluster in made:
            cluster.compose("down", "-v", "--remove-orphans")
            assert cluster.leftovers() == []


def start_variant(made: list[Cluster], folder: Path, edit) -> Cluster:
    """A broken variant of the fitted copy, on a bridge of its own (172.30.0.0/16): the tutorial's
    172.29.0.0/16 may still be held by the module's tutorial cluster."""
    cluster = fitted_copy(folder)
    cluster.file.write_text(edit(cluster.file.read_text()).replace("172.29.", "172.30."))
    made.append(cluster)
    up = cluster.compose("up", "-d")
    assert up.returncode == 0, up.stderr
    return cluster


def wait_in_log(cluster: Cluster, service: str, argv: list[str], needle: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        done = docker(*(cluster.container(service) if arg == "{c}" else arg for arg in argv))
        text = done.stdout + done.stderr
        if needle in text:
            return text
        time.sleep(2)
    raise AssertionError(f"{needle!r} not in {service}'s log in {timeout} s:\n{text[-2000:]}")


def test_dashboard_that_died_in_its_container_is_read_from_there(broken, tmp_path_factory, env) -> None:
    """The image lacks libssl3: GCS and the client server run, the dashboard dies at start, and Docker's port
    proxy accepts and closes. Not "another service": the container runs, and the dashboard's log says why."""
    cluster = start_variant(
        broken, tmp_path_factory.mktemp(f"nossl{os.getpid()}-"), lambda text: text.replace(IMAGE, NOSSL_IMAGE)
    )
    wait_in_log(
        cluster,
        "ray-head",
        ["exec", "{c}", "cat", "/tmp/ray/session_latest/logs/dashboard.err"],
        "ImportError: libssl.so.3",
    )
    doc = report(raydoctor(["check", "--compose", str(cluster.file), "--no-roundtrip", "--json"], cluster.folder, env))
    dashboard = by_id(doc, "network.dashboard")
    assert dashboard["code"] == "network.dashboard.died_in_container", dashboard
    assert "ImportError: libssl.so.3: cannot open shared object file" in dashboard["summary"]
    assert any("dashboard.err" in line for line in dashboard["details"])
    source = by_id(doc, "head.source")
    assert source["code"] == "head.source.runs_without_dashboard" and "the head runs" in source["summary"], source
    ports = by_id(doc, "network.ports")
    assert (
        "Another service" not in ports["remediation"]["text"]
        and "nothing listens inside" in ports["remediation"]["text"]
    )
    assert all("another service" not in (r["remediation"] or {}).get("text", "") for r in doc["results"])


def test_head_container_that_exited_is_said_with_its_log(broken, tmp_path_factory, env) -> None:
    cluster = start_variant(
        broken,
        tmp_path_factory.mktemp(f"exited{os.getpid()}-"),
        lambda text: text.replace(
            "--ray-client-server-port=10001 --block", "--ray-client-server-port=10001 --num-cpus=abc --block"
        ),
    )
    wait_in_log(cluster, "ray-head", ["logs", "{c}"], "Invalid value")
    wait_in_log(cluster, "ray-head", ["inspect", "--format", "{{.State.Status}}", "{c}"], "exited")
    doc = report(raydoctor(["check", "--compose", str(cluster.file), "--no-roundtrip", "--json"], cluster.folder, env))
    source = by_id(doc, "head.source")
    assert source["code"] == "head.source.head_exited" and source["status"] == "fail", source
    assert "is not running (Exited (2)" in source["summary"] and "'abc' is not a valid" in source["summary"], source[
        "summary"
    ]
    assert by_id(doc, "network.dashboard")["code"] == "network.dashboard.head_exited"


def test_worker_refused_by_the_head_quotes_rays_version_line(broken, tmp_path_factory, env) -> None:
    def skew_worker(text: str) -> str:
        head, worker = text.split("  ray-worker:")
        return head + "  ray-worker:" + worker.replace(IMAGE, SKEWED_IMAGE, 1)

    cluster = start_variant(broken, tmp_path_factory.mktemp(f"skewed{os.getpid()}-"), skew_worker)
    wait_in_log(cluster, "ray-worker", ["logs", "{c}"], "Version mismatch")
    # Said from the worker's own log, whether or not the head's dashboard answers yet.
    doc = report(raydoctor(["check", "--compose", str(cluster.file), "--no-roundtrip", "--json"], cluster.folder, env))
    nodes = by_id(doc, "head.nodes")
    assert nodes["code"] == "head.nodes.worker_refused" and nodes["status"] == "fail", nodes
    assert "Version mismatch" in nodes["summary"] and "Ray: 2.49.1" in nodes["summary"], nodes["summary"]


# -- fix --cluster (issue 19): the tutorial's own CPU limit fitted by raydoctor, then a running cluster edited --


def test_fix_cluster_fits_the_cpu_limit_and_recreates_only_what_it_changed(engine, tmp_path_factory, env) -> None:
    cpus = engine_cpus()
    if cpus >= 3:
        pytest.skip(f"this engine has {cpus} CPUs: the tutorial's worker fits")
    cluster = fitted_copy(tmp_path_factory.mktemp(f"fixcluster{os.getpid()}-"), fit_cpus=False)
    cluster.file.write_text(cluster.file.read_text().replace("172.29.", "172.31."))  # a bridge of its own
    original = cluster.file.read_text()
    try:
        before = report(
            raydoctor(["check", "--compose", str(cluster.file), "--no-roundtrip", "--json"], cluster.folder, env)
        )
        assert by_id(before, "compose.resource_limits")["code"] == "compose.resource_limits.cpus_over_machine"

        fix = ["fix", "--cluster", "--compose", str(cluster.file), "--yes", "--no-roundtrip", "--json"]
        done = raydoctor(fix, cluster.folder, env)
        doc = report(done)
        outcome = doc["outcome"]["cluster_file"]
        assert outcome["written"] is True, (doc["error"], outcome)
        keys = [e["change"]["key"] for e in outcome["edits"]]
        assert keys == [["services", "ray-worker", "deploy", "resources", "limits", "cpus"]], keys
        assert outcome["restart"]["state"] == "not_running"
        text = cluster.file.read_text()
        assert text == original.replace("cpus: '3'", f"cpus: '{cpus}'")  # one line changed, comments kept
        assert by_id(doc, "compose.resource_limits")["status"] == "ok"  # fix's final check

        # Started without the worker's shm_size, so that the next fix changes what the worker runs with.
        cut = text.replace("    shm_size: '2gb'\n    depends_on:", "    depends_on:")
        assert cut != text
        cluster.file.write_text(cut)
        up = cluster.compose("up", "-d")
        assert up.returncode == 0, up.stderr  # Docker now creates the worker
        cluster.wait_healthy()
        after = report(
            raydoctor(["check", "--compose", str(cluster.file), "--no-roundtrip", "--json"], cluster.folder, env)
        )
        assert by_id(after, "compose.resource_limits")["status"] == "ok"
        assert by_id(after, "compose.shm_size")["code"] == "compose.shm_size.missing"

        # The cluster running: the edit to the worker recreates the worker only.
        head, worker = cluster.container("ray-head"), cluster.container("ray-worker")
        doc = report(raydoctor(fix, cluster.folder, env))
        outcome = doc["outcome"]["cluster_file"]
        assert [e["change"]["key"] for e in outcome["edits"]] == [["services", "ray-worker", "shm_size"]], outcome
        restart = outcome["restart"]
        assert restart["state"] == "restarted" and restart["services"] == ["ray-worker"], restart
        assert restart["command"][-4:] == ["up", "-d", "--", "ray-worker"] and cluster.project in restart["command"]
        assert cluster.container("ray-head") == head and cluster.container("ray-worker") != worker
        assert by_id(doc, "compose.shm_size")["status"] == "ok"
        # fix waited for the recreated worker to join the head again before its final check (no
        # wait_healthy() here): that check sees both nodes alive (the replaced worker's node is listed
        # dead: a warning), and nothing of the cluster fails. What fails, if anything, is this machine's
        # interpreter (versions.*, packages.*: the test's Python has no Ray), which fix --cluster leaves alone.
        nodes = by_id(doc, "head.nodes")
        assert nodes["status"] in ("ok", "warn") and nodes["data"]["alive"] >= 2, (nodes["summary"], nodes["data"])
        assert doc["head"]["node_counts"]["alive"] >= 2, doc["head"]["node_counts"]
        failed = [(r["id"], r["summary"]) for r in doc["results"] if r["status"] in ("fail", "error")]
        cluster_failed = [f for f in failed if not f[0].startswith(("versions.", "packages."))]
        assert doc["error"] is None and cluster_failed == [], (doc["error"], failed)
        assert doc["exit_code"] == (1 if failed else 0), doc["exit_code"]
        waited = restart["waited"]
        assert waited["healthy"] is True and waited["exited"] == [], waited
        again = report(raydoctor(fix, cluster.folder, env))
        assert again["outcome"].get("nothing_to_do") is True and again["exit_code"] == 0, again["outcome"]

        # An edit to the head: the new head starts a new GCS that the old worker cannot join, so the
        # unchanged worker is recreated with it (--force-recreate), and both join before the final check.
        text = cluster.file.read_text()
        cut = text.replace("    shm_size: '2gb'\n", "", 1)  # the head's, the first service
        assert cut != text and cut.count("shm_size") == text.count("shm_size") - 1
        cluster.file.write_text(cut)
        # (`up -d` alone would recreate the head and leave the worker on the old one's GCS: what fix avoids.)
        assert cluster.compose("up", "-d", "--force-recreate").returncode == 0
        cluster.wait_healthy()
        head, worker = cluster.container("ray-head"), cluster.container("ray-worker")
        doc = report(raydoctor(fix, cluster.folder, env))
        outcome = doc["outcome"]["cluster_file"]
        assert [e["change"]["key"] for e in outcome["edits"]] == [["services", "ray-head", "shm_size"]], outcome
        restart = outcome["restart"]
        assert restart["services"] == ["ray-head", "ray-worker"] and restart["rejoined"] == ["ray-worker"], restart
        assert restart["command"][-6:] == ["up", "-d", "--force-recreate", "--", "ray-head", "ray-worker"], restart
        assert cluster.container("ray-head") != head and cluster.container("ray-worker") != worker
        assert restart["waited"]["healthy"] is True, restart["waited"]
        nodes = by_id(doc, "head.nodes")
        assert nodes["data"]["alive"] == 2, (nodes["summary"], nodes["data"])  # a fresh GCS: no dead node
    finally:
        cluster.compose("down", "-v", "--remove-orphans")
    assert cluster.leftovers() == []
