"""deep.*: the probe job that lists every node's Python, Ray and packages, and packages.head fed by it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from doctor.app import run_check
from doctor.checks import deep
from doctor.facts.cluster import (
    IN_FLIGHT,
    MAX_ENVS,
    PROBE_MAX_BYTES,
    DeepProbe,
    NodeEnv,
    deep_probe_script,
    parse_probe,
    probe_limits,
    run_deep_probe,
)
from doctor.head.dashboard import MAX_BODY, NODE_LIMIT, NODE_LIST_MAX_BODY, DashboardClient, node_list
from doctor.head.facts import HeadFacts
from doctor.head.jobs import MARKER, JobOutcome, parse_payload
from doctor.model import Fact, Status
from doctor.options import TargetOptions
from doctor.target import parse_address
from tests.fake_servers import FakeHTTP, closed_port, fake_ray, json_answer
from tests.helpers import by_id


@pytest.mark.cluster
def test_deep_head_and_worker(ray_head_worker, head_python, clean_env, tmp_path):
    head, _worker = ray_head_worker
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("ray[default]==2.49.2\nnumpy==1.26.4\n")
    opts = TargetOptions(
        address=head.dashboard_url,
        gcs_port=head.ports["gcs"],
        client_port=head.ports["client"],
        python=str(head_python),
        requirements=reqs,
        deep=True,
        roundtrip=False,
    )
    report = run_check(opts, environ=clean_env, cwd=tmp_path)

    probe = by_id(report, "deep.probe")
    assert probe.status is Status.OK, (probe.summary, probe.details)
    assert "2 of 2 node(s) answered" in probe.summary
    assert sum(1 for n in probe.data["nodes"] if n["head"]) == 1

    # The head's packages reached packages.head through the shared probe.
    head_pkgs = by_id(report, "packages.head")
    assert head_pkgs.status is Status.WARN, head_pkgs.summary
    assert "numpy is not installed on the head" in head_pkgs.summary
    assert report.head["packages"] and report.head["packages"] > 20

    # The worker carries one extra distribution: a difference between nodes.
    nodes = by_id(report, "deep.nodes")
    assert nodes.status is Status.WARN, nodes.summary
    assert "worker" in nodes.summary and "1 not on the head" in nodes.summary
    assert any("raydoctor-node-marker 1.0" in d for d in nodes.details)

    # Local env = the head's env (same venv): nothing differs.
    local = by_id(report, "deep.local")
    assert local.status is Status.OK, local.summary


def test_without_deep_nothing_runs(clean_env, tmp_path):
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{closed_port()}", roundtrip=False), environ=clean_env, cwd=tmp_path
    )
    assert not [r for r in report.results if r.id.startswith("deep.")]
    assert by_id(report, "packages.head").status is Status.SKIP


def test_deep_against_a_dead_head_skips(clean_env, tmp_path):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("numpy\n")
    report = run_check(
        TargetOptions(address=f"127.0.0.1:{closed_port()}", deep=True, roundtrip=False, requirements=reqs),
        environ=clean_env,
        cwd=tmp_path,
    )
    found = {r.id: r for r in report.results if r.id.startswith("deep.")}
    assert set(found) == {"deep.probe", "deep.local", "deep.nodes"}
    assert all(r.status is Status.SKIP for r in found.values())
    assert by_id(report, "packages.head").status is Status.SKIP


# ---------------------------------------------------------------- comparisons, without a cluster


def env(node_id, head, python="3.12.9", ray="2.49.2", exe="/home/ray/anaconda3/bin/python", **packages):
    base = {"ray": ray, "numpy": "1.26.4"}
    base.update(packages)
    return NodeEnv(node_id, "10.0.0.%d" % (1 if head else 2), head, python, ray, exe, base)


def fake_ctx(probe, local=None):
    head = HeadFacts(ray=Fact("2.49.2", "dashboard"), python=Fact("3.12.9", "dashboard"))
    return SimpleNamespace(
        deep_probe=lambda: probe,
        local_or_none=lambda: local,
        head=lambda: head,
        options=TargetOptions(address="h:8265"),
        environ={"PATH": ""},
        target=SimpleNamespace(address=None),
    )


def test_worker_with_other_python_fails():
    head = env("a" * 56, True)
    worker = env("b" * 56, False, python="3.12.1")
    probe = DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=head, nodes=(head, worker))
    res = deep.judge_nodes_alike(fake_ctx(probe))
    assert res.status is Status.FAIL and "Python 3.12.1" in res.summary


def test_worker_with_other_package_warns():
    head = env("a" * 56, True)
    worker = env("b" * 56, False, numpy="2.1.0")
    probe = DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=head, nodes=(head, worker))
    res = deep.judge_nodes_alike(fake_ctx(probe))
    assert res.status is Status.WARN and "1 package version(s) differ" in res.summary
    assert any("numpy: 1.26.4 on the head, 2.1.0 there" in d for d in res.details)


def test_job_python_not_the_workers_python_warns():
    head = env("a" * 56, True)
    driver = env("a" * 56, False, python="3.11.7", exe="/usr/bin/python3")
    probe = DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=driver, nodes=(head,))
    res = deep.judge_nodes_alike(fake_ctx(probe))
    assert res.status is Status.WARN and "PATH" in res.summary


def test_local_differs_from_head():
    head = env("a" * 56, True, pandas="2.2.2")
    local = SimpleNamespace(
        python="3.12.9",
        ray="2.49.2",
        executable="/venv/bin/python",
        distributions={"ray": "2.49.2", "numpy": "2.0.0", "pandas": "2.2.2", "pytest": "8.0"},
    )
    probe = DeepProbe(outcome=SimpleNamespace(duration_s=1.0), driver=head, nodes=(head,))
    res = deep.judge_local_vs_head(fake_ctx(probe, local))
    assert res.status is Status.WARN and "numpy 2.0.0 ≠ 1.26.4" in res.summary
    assert "/venv/bin/python -m pip install numpy==1.26.4" in res.remediation.commands
    assert res.data["only_local"] == ["pytest"]


# ---------------------------------------------------------------- any cluster size


def _stop_raylet_once_the_probe_is_submitted(url, node, stop):
    """SIGSTOP the node's raylet as soon as raydoctor's probe job is listed: the node stays ALIVE in the
    GCS (the head's health-check threshold is raised) while a task pinned to it never runs. Stopped
    before submission, it would hold the Jobs API's POST itself (seen here: > 60 s)."""
    import signal
    import time
    import urllib.request

    raylets = [pid for pid in node.pids() if b"raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]]
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{url}/api/jobs/", timeout=2) as resp:
                jobs = json.loads(resp.read())
        except (OSError, ValueError):
            jobs = []
        if any(str(j.get("submission_id", "")).startswith("raydoctor-deep-") for j in jobs):
            for pid in raylets:
                os.kill(pid, signal.SIGSTOP)
            stop.wait()
            for pid in raylets:
                os.kill(pid, signal.SIGCONT)
            return
        time.sleep(0.1)


@pytest.mark.cluster
def test_a_node_that_never_answers_is_named_and_does_not_stall_the_others(head_python, clean_env, tmp_path):
    import threading

    from tests.ray_cluster import SLOW_MACHINE, RayNode

    # The GCS would mark a stopped raylet dead after ~5 missed health checks; keep it ALIVE for the test.
    keep_alive = {**SLOW_MACHINE, "RAY_health_check_failure_threshold": "1000"}
    head = RayNode(head_python, num_cpus=1, ip="127.0.0.9", env=keep_alive).start()
    good = RayNode(head_python, head=False, gcs_address=head.gcs, num_cpus=1, ip="127.0.0.10", env=dict(SLOW_MACHINE))
    stuck = RayNode(head_python, head=False, gcs_address=head.gcs, num_cpus=1, ip="127.0.0.11", env=dict(SLOW_MACHINE))
    stop = threading.Event()
    try:
        # One at a time: workers on one host share the head's session folder (Ray ignores their
        # --temp-dir), and two starting at once race on its node_ip_address.json. The stuck node
        # first: a job's driver attaches to the raylet that file names, the last node started
        # (ray/_private/node.py::_wait_and_get_for_node_address, connect_only), and a driver attached
        # to the stopped raylet waits in CoreWorkerProcessImpl::InitializeSystemConfig before its
        # first task (seen with py-spy on Ray 2.49.2). One node per host, as on a real cluster,
        # has no such file to share.
        stuck.start()
        head.wait_nodes(2, timeout=120)
        good.start()
        head.wait_nodes(3, timeout=120)
        opts = TargetOptions(
            address=head.dashboard_url,
            gcs_port=head.ports["gcs"],
            client_port=head.ports["client"],
            python=str(head_python),
            deep=True,
            roundtrip=False,
        )
        watcher = threading.Thread(
            target=_stop_raylet_once_the_probe_is_submitted, args=(head.dashboard_url, stuck, stop), daemon=True
        )
        watcher.start()
        report = run_check(opts, environ=clean_env, cwd=tmp_path)
    finally:
        stop.set()
        stuck.stop()
        good.stop()
        head.stop()

    probe = by_id(report, "deep.probe")
    task_s, job_s = probe_limits(opts.timeout)
    assert probe.code == "deep.probe.node_silent", (probe.summary, probe.details)
    rows = {n["ip"]: n for n in probe.data["nodes"]}
    assert rows["127.0.0.11"]["silent"] and "(127.0.0.11)" in probe.summary
    for ip in ("127.0.0.9", "127.0.0.10"):  # the others answered, long before the deadline
        assert rows[ip]["error"] is None and rows[ip]["answered_s"] < task_s
    assert probe.data["silent"] == [rows["127.0.0.11"]["node_id"]]
    assert probe.data["duration_s"] < job_s  # the job ended by itself, at the task deadline, not stopped at its limit
    assert report.to_dict()["results"]  # the report came back: nothing waited past the limits
    assert by_id(report, "head.nodes").summary.startswith("3 alive")


# ---------------------------------------------------------------- the node list, with a fake state API


def _state_answer(rows, *, total=None, after=None, filtered=None, warning=""):
    n = len(rows)
    return {
        "result": True,
        "msg": "",
        "data": {
            "result": {
                "total": n if total is None else total,
                "num_after_truncation": n if after is None else after,
                "num_filtered": n if filtered is None else filtered,
                "result": rows,
                "partial_failure_warning": warning,
                "warnings": None,
            }
        },
    }


def _row(i, head=False):
    return {
        "node_id": f"{i:056x}",
        "node_ip": f"10.0.{i // 250}.{i % 250}",
        "is_head_node": head,
        "state": "ALIVE",
        "resources_total": {"CPU": 1.0},
    }


def test_node_list_asks_with_an_explicit_limit_and_names_a_cut(clean_env, tmp_path):
    # Ray answers at most `limit` rows and says how many it had in num_filtered
    # (ray/dashboard/state_aggregator.py::list_nodes): 100 rows of 1,000.
    server = fake_ray()
    rows = [_row(0, head=True)] + [_row(i) for i in range(1, 100)]
    server.routes["/api/v0/nodes"] = json_answer(_state_answer(rows, total=1000, after=1000, filtered=1000))
    with server:
        report = run_check(TargetOptions(address=server.url, roundtrip=False), environ=clean_env, cwd=tmp_path)
    asked = [path for _, path in server.requests if path.startswith("/api/v0/nodes")]
    assert asked == [f"/api/v0/nodes?limit={NODE_LIMIT}"]
    nodes = by_id(report, "head.nodes")
    assert nodes.status is Status.WARN and nodes.code == "head.nodes.truncated", nodes.summary
    assert "100 of 1000 nodes" in nodes.summary
    assert nodes.data["listed"] == 100 and nodes.data["total"] == 1000


def test_node_list_cut_at_the_data_source_and_partial_failure():
    rows = [_row(0, head=True), _row(1)]
    got = node_list(_state_answer(rows, total=12000, after=10000, warning="Failed to query data from GCS."), "x")
    assert len(got) == 2 and got.total == 12000
    assert got.truncated and "12000 nodes" in got.truncated and "read 10000" in got.truncated
    assert got.warning == "Failed to query data from GCS."
    whole = node_list(_state_answer(rows), "x")
    assert whole.truncated is None and whole.warning is None and list(whole) == rows


def test_node_list_limit_lowered_on_the_head_is_asked_again():
    # A head started with RAY_MAX_LIMIT_FROM_API_SERVER=500 refuses limit=10000 with a 500 and says its limit.
    rows = [_row(0, head=True), _row(1)]

    def answer(method, path, body):
        if "limit=500" in path:
            return json_answer(_state_answer(rows))
        return 500, "text/plain", "ValueError: Given limit 10000 exceeds the supported limit 500. Use a lower limit."

    server = fake_ray()
    server.routes["/api/v0/nodes"] = answer
    with server:
        client = DashboardClient(parse_address(server.url), timeout=2.0)
        got = client.nodes()
    assert list(got) == rows and got.truncated is None
    assert [p for _, p in server.requests] == [f"/api/v0/nodes?limit={NODE_LIMIT}", "/api/v0/nodes?limit=500"]


def test_a_thousand_node_list_fits_its_cap():
    # One real node row is ~0.5-1 KB; 10,000 of them must not be refused as too large.
    def real_row(i):  # the fields of a Ray 2.49 row (ray/util/state/common.py::NodeState), real sizes
        row = _row(i, head=i == 0)
        row.update(
            node_name=row["node_ip"],
            state_message=None,
            resources_total={
                "CPU": 16.0,
                "memory": 48318382080.0,
                "object_store_memory": 20707877683.0,
                f"node:{row['node_ip']}": 1.0,
                "accelerator_type:A100": 1.0,
                "GPU": 8.0,
            },
            labels={
                "ray.io/node_id": row["node_id"],
                "ray.io/accelerator-type": "A100",
                "ray.io/market-type": "on-demand",
                "ray.io/availability-zone": "us-west-2a",
                "ray.io/node-group": "gpu-workers",
            },
            start_time_ms=1767225600000 + i,
            end_time_ms=0,
        )
        return row

    rows = [real_row(i) for i in range(10_000)]
    body = json.dumps(_state_answer(rows)).encode()
    assert len(body) > MAX_BODY  # the ordinary cap would refuse it
    assert len(body) < NODE_LIST_MAX_BODY
    server = fake_ray()
    server.routes["/api/v0/nodes"] = (200, "application/json", body)
    with server:
        got = DashboardClient(parse_address(server.url), timeout=5.0).nodes()
    assert len(got) == 10_000 and got.truncated is None


# ---------------------------------------------------------------- the probe's answer, without a cluster


def test_probe_payload_shares_one_env_and_names_silent_nodes():
    env_a = {"python": "3.12.9", "ray": "2.49.2", "executable": "/py", "packages": {"Ray": "2.49.2", "numpy": "1.26.4"}}
    payload = {
        "v": 2,
        "task_limit_s": 15.0,
        "envs": {"k1": env_a},
        "driver": {"env": "k1", "node_id": "a" * 56},
        "nodes": {
            "a" * 56: {"env": "k1", "ip": "10.0.0.1", "is_head": True, "answered_s": 0.4},
            "b" * 56: {"env": "k1", "ip": "10.0.0.2", "is_head": False, "answered_s": 0.6},
            "c" * 56: {"silent": True, "error": "no answer within 15 s", "ip": "10.0.0.3", "is_head": False},
        },
    }
    outcome = JobOutcome("raydoctor-deep-x", "SUCCEEDED", "", "", 3.0, payload, deleted=True)
    probe = parse_probe(outcome)
    assert probe.head is not None and probe.head.packages == {"ray": "2.49.2", "numpy": "1.26.4"}
    assert [n.node_id[:1] for n in probe.silent] == ["c"]
    res = deep.judge_probe_job(fake_ctx(probe))
    assert res.code == "deep.probe.node_silent"
    assert "no answer within 15 s from worker cccccccccccc (10.0.0.3)" in res.summary
    nodes = deep.judge_nodes_alike(fake_ctx(probe))
    assert nodes.status is Status.WARN and "worker cccccccccccc (10.0.0.3) did not answer" in nodes.summary


def test_probe_limits_follow_timeout():
    assert probe_limits(2.0) == (15.0, 30.0)
    task, job = probe_limits(10.0)
    assert task == 75.0 and job == task + 15.0


# The probe script itself, run by a Python with a stand-in `ray` module that keeps Ray's API
# (ray.nodes() rows, remote/options/wait/get/cancel): N nodes cannot be started here, so this
# proves the script's own bounds (tasks in flight, one deadline, the size of what it prints).
FAKE_RAY = """
import os, time, json
N = int(os.environ["FAKE_NODES"]); SILENT = int(os.environ["FAKE_SILENT"]); DISTINCT = os.environ["FAKE_DISTINCT"] == "1"
state = {"in_flight": 0, "max_in_flight": 0, "submitted": 0}
def init(**kw): pass
def nodes():
    return [{"NodeID": "%056x" % i, "Alive": True, "NodeManagerAddress": "10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255),
             "Resources": {"node:__internal_head__": 1.0} if i == 0 else {}} for i in range(N)]
class Ref:
    def __init__(self, i): self.i = i; self.done = i >= SILENT
def remote(**kw):
    def wrap(fn):
        class R:
            def options(self, scheduling_strategy=None):
                i = int(scheduling_strategy.node_id, 16)
                class S:
                    def remote(self):
                        state["submitted"] += 1; state["in_flight"] += 1
                        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
                        return Ref(i)
                return S()
        return R()
    return wrap
def wait(refs, num_returns=1, timeout=None):
    ready = [r for r in refs if r.done][:max(num_returns, 1)]
    if not ready and timeout:
        time.sleep(min(timeout, 0.05))
    return ready, [r for r in refs if r not in ready]
def get(ref):
    state["in_flight"] -= 1
    pk = {"pkg%d" % j: "1.0" for j in range(300)}
    if DISTINCT:
        pk["node-marker"] = str(ref.i)
    return {"python": "3.12.9", "ray": "2.49.2", "executable": "/py", "packages": pk, "node_id": "%056x" % ref.i}
def cancel(ref, force=False): state["in_flight"] -= 1
class _Ctx:
    def get_node_id(self): return "%056x" % 0
def get_runtime_context(): return _Ctx()
__version__ = "2.49.2"
import sys
_exit = os._exit
def _report_then_exit(code):  # the probe leaves with os._exit once its answer is printed
    print("FAKE_STATE " + json.dumps(state)); sys.stdout.flush(); _exit(code)
os._exit = _report_then_exit
"""


def _run_probe_with_fake_ray(tmp_path, nodes, silent, distinct, task_s=1.0):
    import subprocess
    import sys

    pkg = tmp_path / "ray"
    (pkg / "util").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(FAKE_RAY)
    (pkg / "util" / "__init__.py").write_text("")
    (pkg / "util" / "scheduling_strategies.py").write_text(
        "class NodeAffinitySchedulingStrategy:\n"
        "    def __init__(self, node_id, soft):\n"
        "        self.node_id = node_id\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "FAKE_NODES": str(nodes), "FAKE_SILENT": str(silent)}
    env["FAKE_DISTINCT"] = "1" if distinct else "0"
    out = subprocess.run(
        [sys.executable, "-c", deep_probe_script(task_s)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    line = next(x for x in lines if x.startswith(MARKER))
    state = json.loads(next(x for x in lines if x.startswith("FAKE_STATE "))[len("FAKE_STATE ") :])
    return line, state


def test_probe_script_keeps_tasks_in_flight_bounded_and_one_deadline(tmp_path):
    # 1,000 nodes, the first 100 never answer: at most IN_FLIGHT tasks at once; the silent ones hold
    # their slots until the one deadline, while the other slots cycle through the 900 that answer.
    import time

    started = time.monotonic()
    line, state = _run_probe_with_fake_ray(tmp_path, 1000, 100, distinct=False, task_s=1.0)
    assert time.monotonic() - started < 15
    assert state["max_in_flight"] == IN_FLIGHT and state["submitted"] == 1000
    probe = parse_probe(JobOutcome("x", "SUCCEEDED", "", line, 1.0, parse_payload(line)))
    assert len(probe.nodes) == 1000
    assert len(probe.silent) == 100 and all("never ran" in (n.error or "") for n in probe.silent)
    assert sum(1 for n in probe.nodes if n.error is None and n.ray == "2.49.2") == 900
    assert len(parse_payload(line)["envs"]) == 2  # identical envs travel once: the nodes' and the driver's

    # With more silent nodes than slots, the window stays full: the rest are named as never asked.
    line, state = _run_probe_with_fake_ray(tmp_path, 1000, 300, distinct=False, task_s=1.0)
    probe = parse_probe(JobOutcome("x", "SUCCEEDED", "", line, 1.0, parse_payload(line)))
    never_ran = [n for n in probe.silent if "never ran" in (n.error or "")]
    not_asked = [n for n in probe.silent if (n.error or "").startswith("not asked")]
    assert len(never_ran) == IN_FLIGHT and len(not_asked) == 1000 - IN_FLIGHT and state["submitted"] == IN_FLIGHT


def test_probe_output_is_bounded_at_any_node_count(tmp_path):
    # 12,000 nodes, each with its own env of 300 packages (~70 MB unbounded): the line stays under the
    # cap, the head keeps its packages, at most MAX_ENVS package lists travel, and what was left out is said.
    line, _ = _run_probe_with_fake_ray(tmp_path, 12_000, 0, distinct=True, task_s=20.0)
    assert len(line) <= PROBE_MAX_BYTES + len(MARKER)
    payload = parse_payload(line)
    assert len(payload["envs"]) <= MAX_ENVS + 1
    probe = parse_probe(JobOutcome("x", "SUCCEEDED", "", line, 1.0, payload))
    assert probe.head is not None and probe.head.is_head and len(probe.head.packages) == 301
    assert probe.left_out > 0 and len(probe.nodes) + probe.left_out == 12_000
    assert len(probe.nodes) > 10_000  # most nodes are still named
    dropped = [n for n in probe.nodes if n.packages_dropped]
    assert dropped and all(not n.is_head for n in dropped)
    res = deep.judge_nodes_alike(fake_ctx(probe))
    assert any("packages not compared" in d for d in res.details)
    assert not any("missing" in w for w in res.data["warns"])  # a dropped list is not "every package missing"
    job = deep.judge_probe_job(fake_ctx(probe))
    assert job.status is Status.WARN and any("left out" in d for d in job.details)


def test_the_probe_job_asks_for_the_heads_own_resource():
    """A job that asks for no resources has its supervisor forwarded to a random node, where a wedged
    raylet holds it PENDING (tests above; gcs_actor_scheduler.cc::SelectForwardingNode): the POST asks
    for a sliver of the resource only the head has."""
    posted: list[dict] = []

    def post(method, path, body):
        posted.append(json.loads(body))
        return json_answer({"submission_id": posted[-1]["submission_id"]})

    def job(method, path, body):
        if method == "DELETE":
            return json_answer({"deleted": True})
        if path.endswith("/logs"):
            return json_answer({"logs": MARKER + json.dumps({"v": 2, "nodes": {}, "envs": {}}) + "\n"})
        return json_answer({"status": "SUCCEEDED", "message": ""})

    with FakeHTTP({"/api/jobs/": post}) as fake:
        fake.default = job
        probe = run_deep_probe(DashboardClient(parse_address(fake.url), timeout=5), live=True)
    assert probe.error is None, probe.error
    assert [p.get("entrypoint_resources") for p in posted] == [{"node:__internal_head__": 0.001}]
    assert not any(k in posted[0] for k in ("entrypoint_num_cpus", "entrypoint_num_gpus"))
    # It uploads nothing: no runtime_env, so no working_dir of the current folder (issue 20, item 9).
    assert "runtime_env" not in posted[0] and not any("/api/packages/" in path for _, path in fake.requests)
