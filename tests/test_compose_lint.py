"""Compose lint rules: a table of small compose files, one row per finding."""

from __future__ import annotations

import copy
import ipaddress
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from doctor.checks.lint import HostRoute, host_routes, lint_compose, rules_for
from doctor.head.compose import load_compose
from doctor.model import Change, Edit, Op, Result, Status
from doctor.parsers.ray_start import OPTIONS, VALUELESS
from tests.samples import BASE, HEAD_ARGS, IMAGE

RULES = rules_for("compose")  # (check id, title, rule) of every compose rule, in report order
REPO = Path(__file__).resolve().parent.parent
GPU_IMAGE = "rayproject/ray:2.49.2.7b0af3-py312-cu128"


def no_routes() -> list[HostRoute]:
    return []


def lint(
    tmp_path: Path,
    tree: dict[str, Any],
    routes: Callable[[], list[HostRoute]] = no_routes,
) -> dict[str, Result]:
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    results = lint_compose(load_compose(path, {}), routes=routes, cpu_count=8)
    return {r.id: r for r in results}


def head(t: dict) -> dict:
    return t["services"]["ray-head"]


def worker(t: dict) -> dict:
    return t["services"]["ray-worker"]


def set_worker_cmd(words: str) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        worker(t)["command"] = f'bash -c "ray start {words}"'

    return mutate


def set_head_args(args: str) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        head(t)["command"] = f'bash -c "ray start {args}"'

    return mutate


def chain(*fns: Callable[[dict], None]) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        for fn in fns:
            fn(t)

    return mutate


def set_key(which: Callable[[dict], dict], key: str, value: Any) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        which(t)[key] = value

    return mutate


def del_key(which: Callable[[dict], dict], key: str) -> Callable[[dict], None]:
    def mutate(t: dict) -> None:
        which(t).pop(key, None)

    return mutate


GPU_DEVICES = {"resources": {"reservations": {"devices": [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]}}}

# (row id, mutation, rule id, expected status, fragments the summary names,
#  fragment of a fix edit, shown as "place: value", or None)
ROWS = [
    (
        "other-image",
        set_key(worker, "image", "rayproject/ray:2.48.0-py311-cpu"),
        "compose.same_image",
        Status.FAIL,  # another Ray and Python: Ray refuses the worker when it joins
        ["ray-worker", "rayproject/ray:2.48.0-py311-cpu", IMAGE],
        IMAGE,
    ),
    (
        "docker-io-prefix",
        set_key(worker, "image", "docker.io/" + IMAGE),
        "compose.same_image",
        Status.OK,
        [],
        None,
    ),
    (
        "single-dash",
        set_worker_cmd("--address=ray-head:6379 -num-cpus=1 --block"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "-num-cpus=1", "--num-cpus=1"],
        "--num-cpus=1",
    ),
    (
        "typo",
        set_worker_cmd("--address=ray-head:6379 --num-cpu=1 --block"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "--num-cpu", "did you mean --num-cpus"],
        "--num-cpus=1",
    ),
    (
        "unknown-far",
        set_worker_cmd("--address=ray-head:6379 --frobnicate --block"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "--frobnicate"],
        None,
    ),
    (
        "redis-password-for-a-fault-tolerant-gcs",  # current (Ray's fault_tolerance/gcs.rst): never dropped
        set_worker_cmd("--address=ray-head:6379 --redis-password=5241590000000000 --block"),
        "compose.ray_start_flags",
        Status.OK,
        [],
        None,
    ),
    (
        "removed",
        set_head_args(HEAD_ARGS + " --webui-host=0.0.0.0"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-head", "--webui-host", "--dashboard-host"],
        "--dashboard-host=0.0.0.0",
    ),
    (
        "bad-int",
        set_worker_cmd("--address=ray-head:6379 --num-cpus=two --block"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "--num-cpus=two"],
        None,
    ),
    (
        "flag-with-value",
        set_worker_cmd("--address=ray-head:6379 --block=true"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "--block=true"],
        "--block",
    ),
    (
        "missing-value",
        set_worker_cmd("--address=ray-head:6379 --block --num-cpus"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "--num-cpus needs a value"],
        None,
    ),
    (
        "bad-json",
        set_worker_cmd("--address=ray-head:6379 --resources={bad} --block"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "--resources"],
        None,
    ),
    (
        "stray-arg",
        set_worker_cmd("--address=ray-head:6379 --block --block extra"),
        "compose.ray_start_flags",
        Status.FAIL,
        ["ray-worker", "extra"],
        None,
    ),
    (
        "shell-var-ok",
        set_worker_cmd("--address=ray-head:6379 --num-cpus=$$NCPU --block"),
        "compose.ray_start_flags",
        Status.OK,
        [],
        None,
    ),
    (
        "no-dashboard-host",
        set_head_args(HEAD_ARGS.replace("--dashboard-host=0.0.0.0 ", "")),
        "compose.dashboard_host",
        Status.FAIL,
        ["ray-head", "127.0.0.1", "8265"],
        "--dashboard-host=0.0.0.0",
    ),
    (
        "dashboard-localhost-space",
        set_head_args(HEAD_ARGS.replace("--dashboard-host=0.0.0.0", "--dashboard-host 127.0.0.1")),
        "compose.dashboard_host",
        Status.FAIL,
        ["ray-head", "127.0.0.1"],
        "--dashboard-host=0.0.0.0",
    ),
    (
        "dashboard-unpublished",
        chain(
            set_head_args(HEAD_ARGS.replace("--dashboard-host=0.0.0.0 ", "")),
            set_key(head, "ports", []),
        ),
        "compose.dashboard_host",
        Status.WARN,
        ["ray-head", "127.0.0.1"],
        "--dashboard-host=0.0.0.0",
    ),
    (
        "dashboard-off",
        set_head_args(HEAD_ARGS + " --include-dashboard=false"),
        "compose.dashboard_host",
        Status.WARN,
        ["ray-head", "--include-dashboard=false"],
        None,
    ),
    (
        "no-block",
        set_worker_cmd("--address=ray-head:6379"),
        "compose.block",
        Status.FAIL,
        ["ray-worker", "--block"],
        "--address=ray-head:6379 --block",
    ),
    (
        "no-block-head",
        set_head_args(HEAD_ARGS.replace(" --block", "")),
        "compose.block",
        Status.FAIL,
        ["ray-head"],
        "--block",
    ),
    (
        "sleep-infinity",
        set_worker_cmd("--address=ray-head:6379 && sleep infinity"),
        "compose.block",
        Status.OK,
        [],
        None,
    ),
    (
        "then-driver",
        set_worker_cmd("--address=ray-head:6379 && python train.py"),
        "compose.block",
        Status.WARN,
        ["ray-worker", "python train.py"],
        "--block",
    ),
    (
        "wrong-host",
        set_worker_cmd("--address=ray-haed:6379 --block"),
        "compose.worker_address",
        Status.FAIL,
        ["ray-worker", "ray-haed:6379", "ray-head"],
        "--address=ray-head:6379",
    ),
    (
        "wrong-port",
        set_worker_cmd("--address=ray-head:6380 --block"),
        "compose.worker_address",
        Status.FAIL,
        ["ray-worker", "6380", "6379"],
        "--address=ray-head:6379",
    ),
    (
        "no-address",
        set_worker_cmd("--block"),
        "compose.worker_address",
        Status.FAIL,
        ["ray-worker", "--address"],
        "--address=ray-head:6379 --block",
    ),
    (
        "head-port-changed",
        set_head_args(HEAD_ARGS.replace("--port=6379", "--port=6380")),
        "compose.worker_address",
        Status.FAIL,
        ["ray-worker", "6379", "6380"],
        "--address=ray-head:6380",
    ),
    (
        "by-ip",
        set_worker_cmd("--address=172.29.0.15:6379 --block"),
        "compose.worker_address",
        Status.OK,
        [],
        None,
    ),
    (
        "by-hostname",
        chain(
            set_key(head, "hostname", "rayhead"),
            set_worker_cmd("--address=rayhead:6379 --block"),
        ),
        "compose.worker_address",
        Status.OK,
        [],
        None,
    ),
    (
        "no-shared-network",
        set_key(worker, "networks", ["other"]),
        "compose.worker_address",
        Status.FAIL,
        ["ray-worker", "ray-head", "share no network"],
        None,
    ),
    (
        "no-shm",
        del_key(worker, "shm_size"),
        "compose.shm_size",
        Status.WARN,
        ["ray-worker", "shm_size", "64 MB"],
        "shm_size: '2gb'",
    ),
    (
        "small-shm",
        set_key(head, "shm_size", "64m"),
        "compose.shm_size",
        Status.WARN,
        ["ray-head", "64m"],
        "shm_size: '2gb'",
    ),
    (
        "bad-shm",
        set_key(head, "shm_size", "lots"),
        "compose.shm_size",
        Status.FAIL,
        ["ray-head", "lots"],
        None,
    ),
    (
        "shm-over-memory",
        set_key(worker, "shm_size", "8g"),
        "compose.shm_size",
        Status.WARN,
        ["ray-worker", "8g", "4g"],
        None,
    ),
    (
        "ipc-host",
        chain(del_key(worker, "shm_size"), set_key(worker, "ipc", "host")),
        "compose.shm_size",
        Status.OK,
        [],
        None,
    ),
    (
        "all-interfaces",
        set_key(head, "ports", ["8265:8265", "127.0.0.1:10001:10001"]),
        "compose.published_ports",
        Status.WARN,
        ["ray-head", "8265", "all interfaces"],
        "127.0.0.1:8265:8265",
    ),
    (
        "zero-ip",
        set_key(head, "ports", ["0.0.0.0:8265:8265", "127.0.0.1:10001:10001"]),
        "compose.published_ports",
        Status.WARN,
        ["ray-head", "8265"],
        "127.0.0.1:8265:8265",
    ),
    (
        "client-unpublished",
        set_key(head, "ports", ["127.0.0.1:8265:8265"]),
        "compose.published_ports",
        Status.WARN,
        ["ray-head", "10001", "not published"],
        "127.0.0.1:10001:10001",
    ),
    (
        "long-syntax-ok",
        set_key(
            head,
            "ports",
            [
                {"target": 8265, "published": 8265, "host_ip": "127.0.0.1"},
                {"target": 10001, "published": 10001, "host_ip": "127.0.0.1"},
            ],
        ),
        "compose.published_ports",
        Status.OK,
        [],
        None,
    ),
    (
        "gpu-image-no-reservation",
        chain(set_key(head, "image", GPU_IMAGE), set_key(worker, "image", GPU_IMAGE)),
        "compose.gpu_reservation",
        Status.FAIL,
        ["ray-head", "ray-worker", GPU_IMAGE],
        "driver: nvidia",
    ),
    (
        "num-gpus-no-reservation",
        set_worker_cmd("--address=ray-head:6379 --num-gpus=1 --block"),
        "compose.gpu_reservation",
        Status.FAIL,
        ["ray-worker", "--num-gpus=1"],
        "capabilities: [gpu]",
    ),
    (
        "gpu-tag",
        chain(
            set_key(worker, "image", "rayproject/ray:2.44.1-py312-gpu"),
            set_key(head, "image", "rayproject/ray:2.44.1-py312-gpu"),
            set_key(head, "deploy", GPU_DEVICES),
        ),
        "compose.gpu_reservation",
        Status.FAIL,
        ["ray-worker", "-gpu"],
        None,
    ),
    (
        "gpu-count-short",
        chain(
            set_worker_cmd("--address=ray-head:6379 --num-gpus=2 --block"),
            set_key(worker, "deploy", GPU_DEVICES),
        ),
        "compose.gpu_reservation",
        Status.WARN,
        ["ray-worker", "--num-gpus=2", "1"],
        None,
    ),
    (
        "gpu-ok",
        chain(
            set_key(head, "image", GPU_IMAGE),
            set_key(worker, "image", GPU_IMAGE),
            set_key(head, "deploy", GPU_DEVICES),
            set_key(worker, "gpus", "all"),
        ),
        "compose.gpu_reservation",
        Status.OK,
        [],
        None,
    ),
    (
        "bad-cpus",
        set_key(
            worker,
            "deploy",
            {"resources": {"limits": {"cpus": "three", "memory": "4g"}}},
        ),
        "compose.resource_limits",
        Status.FAIL,
        ["ray-worker", "three"],
        None,
    ),
    (
        "bad-memory",
        set_key(
            worker,
            "deploy",
            {"resources": {"limits": {"cpus": "3", "memory": "4 gigs"}}},
        ),
        "compose.resource_limits",
        Status.FAIL,
        ["ray-worker", "4 gigs"],
        None,
    ),
    (
        "limit-typo",
        set_key(worker, "deploy", {"resources": {"limits": {"cpu": "3"}}}),
        "compose.resource_limits",
        Status.FAIL,
        ["ray-worker", "cpu", "cpus"],
        None,
    ),
    (
        "too-many-cpus",
        set_key(worker, "deploy", {"resources": {"limits": {"cpus": "16"}}}),
        "compose.resource_limits",
        Status.FAIL,
        ["ray-worker", "16", "8 CPUs"],
        "cpus: '8'",
    ),
    (
        "tiny-memory",
        set_key(worker, "deploy", {"resources": {"limits": {"memory": "256m"}}}),
        "compose.resource_limits",
        Status.WARN,
        ["ray-worker", "256m"],
        None,
    ),
    (
        "host-mode",
        set_key(worker, "network_mode", "host"),
        "compose.network_mode",
        Status.WARN,
        ["ray-worker", "network_mode: host"],
        None,
    ),
    (
        "none-mode",
        set_key(worker, "network_mode", "none"),
        "compose.network_mode",
        Status.FAIL,
        ["ray-worker", "none"],
        None,
    ),
    (
        "public-subnet",
        lambda t: t["networks"]["study_network"]["ipam"]["config"][0].update(subnet="172.63.0.0/16"),
        "compose.subnet",
        Status.FAIL,
        ["study_network", "172.63.0.0/16", "public"],
        "172.29.0.0/16",
    ),
    (
        "garbage-subnet",
        lambda t: t["networks"]["study_network"]["ipam"]["config"][0].update(subnet="not-a-net"),
        "compose.subnet",
        Status.FAIL,
        ["study_network", "not-a-net"],
        None,
    ),
    (
        "ip-outside",
        lambda t: head(t)["networks"]["study_network"].update(ipv4_address="10.0.0.5"),
        "compose.subnet",
        Status.FAIL,
        ["ray-head", "10.0.0.5", "172.29.0.0/16"],
        None,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_rule_table(tmp_path: Path, row: tuple) -> None:
    _, mutate, rule_id, status, fragments, command = row
    tree = copy.deepcopy(BASE)
    mutate(tree)
    results = lint(tmp_path, tree)
    res = results[rule_id]
    assert res.status == status, res.to_dict()
    shown = [res.summary, *res.details]  # the worst item in the summary, the rest in the details
    for fragment in fragments:
        assert any(fragment in line for line in shown), (fragment, shown)
    assert "\n" not in res.summary
    if status in (Status.WARN, Status.FAIL):
        assert res.remediation is not None and res.remediation.text
        # one item: its own line is the summary; several: the count in the summary, the rest below
        assert res.details or res.data["findings"] == 1
        assert (f"(and {res.data['findings'] - 1} more)" in res.summary) == (res.data["findings"] > 1)
    if res.remediation is not None:
        # Edits are edits: a change to the compose file is the file, the place and the value, never a command.
        assert res.remediation.commands == ()
        assert all(e.path == str(tmp_path / "compose.yaml") and "$ " not in e.value for e in res.remediation.edits)
    if command is not None:
        assert res.remediation is not None
        shown = [f"{e.place}: {e.value}" for e in res.remediation.edits]
        assert any(command in edit for edit in shown), shown
    # A mutation aimed at one rule leaves the unrelated ones alone.
    others = {r.id for r in results.values() if r.status in (Status.FAIL, Status.ERROR) and r.id != rule_id}
    assert Status.ERROR not in {r.status for r in results.values()}
    assert not others - {
        "compose.worker_address",
        "compose.dashboard_host",
        "compose.block",
        "compose.gpu_reservation",
        "compose.ray_start_flags",
        "compose.resource_limits",
    }


def test_base_is_clean(tmp_path: Path) -> None:
    results = lint(tmp_path, copy.deepcopy(BASE))
    assert [r.id for r in results.values()] == [rule_id for rule_id, _, _ in RULES]
    assert {r.status for r in results.values()} == {Status.OK}, [
        r.to_dict() for r in results.values() if r.status != Status.OK
    ]
    assert all(r.category == "compose" for r in results.values())


EXPECTED_IDS = {
    "compose.same_image",
    "compose.ray_start_flags",
    "compose.dashboard_host",
    "compose.block",
    "compose.worker_address",
    "compose.shm_size",
    "compose.published_ports",
    "compose.gpu_reservation",
    "compose.resource_limits",
    "compose.network_mode",
    "compose.subnet",
}


@pytest.mark.parametrize("name", ["cpu-ray-cluster.yaml", "gpu-ray-cluster.yaml"])
def test_shipped_files_are_clean(name: str) -> None:
    project = load_compose(REPO / "compose" / name, {})
    results = lint_compose(project, routes=no_routes, cpu_count=8)
    assert {r.id for r in results} == EXPECTED_IDS and len(results) == len(EXPECTED_IDS)
    bad = [r.to_dict() for r in results if r.status != Status.OK]
    assert not bad


def test_multiple_findings_name_every_service(tmp_path: Path) -> None:
    tree = copy.deepcopy(BASE)
    del head(tree)["shm_size"]
    del worker(tree)["shm_size"]
    res = lint(tmp_path, tree)["compose.shm_size"]
    assert res.status == Status.WARN
    assert "ray-head" in res.summary and "(and 1 more)" in res.summary
    assert "ray-worker" not in res.summary
    assert not any("ray-head" in d for d in res.details)  # the summary's item is not listed again
    assert [d for d in res.details if "ray-worker" in d] == [
        "warn: ray-worker: no shm_size: Docker's 64 MB /dev/shm makes Ray's object store fall back to /tmp"
    ]
    assert res.data["findings"] == 2


def test_no_workers_skips_worker_rules(tmp_path: Path) -> None:
    tree = copy.deepcopy(BASE)
    del tree["services"]["ray-worker"]
    results = lint(tmp_path, tree)
    assert results["compose.worker_address"].status == Status.SKIP
    assert results["compose.same_image"].status == Status.SKIP
    assert {r.status for r in results.values()} <= {Status.OK, Status.SKIP}


# --------------------------------------------------------------------------
# subnet overlap and the route source


def route(net: str, iface: str = "wg0") -> HostRoute:
    return HostRoute(ipaddress.ip_network(net), iface, "test")


@pytest.mark.parametrize(
    "routes, status",
    [
        ([route("172.29.5.0/24")], Status.WARN),
        ([route("172.16.0.0/12", "tun0")], Status.WARN),
        ([route("0.0.0.0/0", "eth0"), route("192.168.1.0/24", "eth0")], Status.OK),
        (
            [route("172.29.0.0/16", "br-0123456789ab")],
            Status.OK,
        ),  # the compose network itself, running
        ([route("fd00::/64", "eth0")], Status.OK),
        ([], Status.OK),
    ],
)
def test_subnet_overlap(tmp_path: Path, routes: list[HostRoute], status: Status) -> None:
    res = lint(tmp_path, copy.deepcopy(BASE), routes=lambda: routes)["compose.subnet"]
    assert res.status == status, res.to_dict()
    if status == Status.WARN:
        assert "study_network" in res.summary and "172.29.0.0/16" in res.summary and "overlaps" in res.summary


def test_route_source_failure_is_not_fatal(tmp_path: Path) -> None:
    def broken() -> list[HostRoute]:
        raise OSError("no /proc here")

    res = lint(tmp_path, copy.deepcopy(BASE), routes=broken)["compose.subnet"]
    assert res.status == Status.OK
    assert any("not checked" in d for d in res.details)


def test_host_routes_parses_proc_and_ip(tmp_path: Path) -> None:
    proc = tmp_path / "route"
    proc.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "wg0\t0000100A\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0\n"  # not up
        "garbage line\n",
        encoding="ascii",
    )
    ip_json = (
        '[{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},'
        ' {"ifname": "tun0", "addr_info": [{"family": "inet", "local": "10.8.0.2", "prefixlen": 24},'
        ' {"family": "inet6", "local": "fe80::1", "prefixlen": 64}, {"bogus": 1}]}]'
    )
    routes = host_routes(proc, [sys.executable, "-c", f"print({ip_json!r})"])
    nets = {(str(r.network), r.interface) for r in routes}
    assert nets == {
        ("0.0.0.0/0", "eth0"),
        ("192.168.1.0/24", "eth0"),
        ("10.8.0.0/24", "tun0"),
    }


def test_host_routes_without_sources(tmp_path: Path) -> None:
    assert host_routes(tmp_path / "missing", [str(tmp_path / "no-such-ip"), "-j", "addr"]) == []
    assert host_routes(tmp_path / "missing", [sys.executable, "-c", "print('not json')"]) == []


def test_default_route_source_runs_here(tmp_path: Path) -> None:
    # Whatever this machine has (or lacks), the default source must not raise.
    results = lint_compose(load_compose(REPO / "compose" / "cpu-ray-cluster.yaml", {}))
    assert len(results) == len(EXPECTED_IDS)
    assert Status.ERROR not in {r.status for r in results}


def test_one_option_table_serves_the_parser_and_the_lint() -> None:
    # There used to be two tables kept in step by a test; now the compose loader, the
    # cluster-file readers and the lint all read doctor.parsers.ray_start.OPTIONS.
    import doctor.checks.lint.common as lint_common
    import doctor.head.compose as compose

    table = {name for name, opt in OPTIONS.items() if opt.kind in ("flag", "count")}
    assert table == set(VALUELESS)
    assert lint_common.OPTIONS is OPTIONS
    assert not hasattr(compose, "RAY_START_VALUELESS_FLAGS")  # no second name for the table


# --------------------------------------------------------------------------
# ray start options judged by the Ray of the service's image (the table holds Ray 2.9 to 2.60 by release)


def on_ray(image: str, option: str) -> dict[str, Any]:
    """The tutorial's cluster on ``image``, its head's `ray start` given ``option`` too."""
    tree = copy.deepcopy(BASE)
    for service in tree["services"].values():
        service["image"] = image
    set_head_args(f"{HEAD_ARGS} {option}")(tree)
    return tree


def edit_values(res: Result) -> list[str]:
    return [e.value for e in (res.remediation.edits if res.remediation else ())]


@pytest.mark.parametrize(
    "image, option, status, cause, words",
    [
        # Ray 2.55 added --proxy-server-url: a 2.60 head takes it, a 2.49 head stops at it.
        ("rayproject/ray:2.60.0-py312-cpu", "--proxy-server-url=http://history:8080", Status.OK, "ok", ["Ray 2.60.0"]),
        (
            "rayproject/ray:2.49.2-py312-cpu",
            "--proxy-server-url=http://history:8080",
            Status.FAIL,
            "too_new",
            ["ray-head", "--proxy-server-url came in Ray 2.55", "Ray 2.49.2"],
        ),
        ("rayproject/ray:2.35.0-py311-cpu", "--labels-file=/etc/labels.yaml", Status.FAIL, "too_new", ["Ray 2.45"]),
        # Ray 2.48 dropped --storage: a 2.9 head takes it, a 2.49 head stops at it.
        ("rayproject/ray:2.9.3-py311-cpu", "--storage=/mnt/cluster", Status.OK, "ok", ["Ray 2.9.3"]),
        (
            "rayproject/ray:2.49.2-py312-cpu",
            "--storage=/mnt/cluster",
            Status.FAIL,
            "removed",
            ["--storage", "ray start 2.49.2", "removed in Ray 2.48", "drop it"],
        ),
        ("rayproject/ray:2.9.3-py311-cpu", "--gcs-server-port=6380", Status.WARN, "deprecated", ["ignores it"]),
        ("rayproject/ray:2.49.2-py312-cpu", "--gcs-server-port=6380", Status.FAIL, "removed", ["Ray 2.48"]),
        # --labels takes key=value pairs from 2.45, only a JSON object before.
        ("rayproject/ray:2.49.2-py312-cpu", "--labels=gpu=a100,zone=b", Status.OK, "ok", []),
        ("rayproject/ray:2.44.1-py312-cpu", "--labels=gpu=a100", Status.FAIL, "bad_value", ["only JSON"]),
        ("rayproject/ray:2.44.1-py312-cpu", """--labels='{\\"gpu\\": \\"a100\\"}'""", Status.OK, "ok", []),
        # An image that does not say its Ray: any release of the table may run, none of their options fails.
        ("myorg/ray-app:3", "--proxy-server-url=http://history:8080", Status.OK, "ok", ["2.9 to 2.60"]),
        ("myorg/ray-app:3", "--storage=/mnt/cluster", Status.OK, "ok", []),
    ],
)
def test_options_are_judged_by_the_ray_of_the_image(
    tmp_path: Path, image: str, option: str, status: Status, cause: str, words: list[str]
) -> None:
    res = lint(tmp_path, on_ray(image, option))["compose.ray_start_flags"]
    assert (res.status, res.code) == (status, f"compose.ray_start_flags.{cause}"), res.to_dict()
    for word in words:
        assert word in res.summary, res.summary
    name = option.split("=", 1)[0]
    if cause in ("too_new", "ok"):
        assert edit_values(res) == [], res.remediation  # an option of another release is never rewritten
    if cause == "removed":
        (value,) = edit_values(res)
        assert name not in value and "--dashboard-host=0.0.0.0" in value


def test_an_option_raydoctor_cannot_know_on_a_newer_ray_is_a_warning_left_as_written(tmp_path: Path) -> None:
    # Ray 2.61 is past the table: an option no release of it knows may be new there. Not failed, not renamed
    # (the old table read it as a typo of --labels-file and rewrote it).
    res = lint(tmp_path, on_ray("rayproject/ray:2.61.0-py312-cpu", "--node-labels-file=/etc/l.yaml"))[
        "compose.ray_start_flags"
    ]
    assert (res.status, res.code) == (Status.WARN, "compose.ray_start_flags.beyond_table"), res.to_dict()
    assert "stops at Ray 2.60" in res.summary and "Ray 2.61.0" in res.summary and "--labels-file" in res.summary
    assert edit_values(res) == []
    # Beside a typo it still corrects, the corrected line keeps it as written.
    tree = on_ray("rayproject/ray:2.61.0-py312-cpu", "--node-labels-file=/etc/l.yaml -num-gpus=0")
    res = lint(tmp_path, tree)["compose.ray_start_flags"]
    assert res.code == "compose.ray_start_flags.single_dash" and res.data["causes"] == ["single_dash", "beyond_table"]
    (value,) = edit_values(res)
    assert "--node-labels-file=/etc/l.yaml" in value and "--num-gpus=0" in value and "--labels-file" not in value


@pytest.mark.parametrize(
    "image, typo, correction",
    [
        ("rayproject/ray:2.60.0-py312-cpu", "--proxy-server-ur=http://h:1", "--proxy-server-url=http://h:1"),
        ("rayproject/ray:2.49.2-py312-cpu", "--num-gpu=1", "--num-gpus=1"),
        ("rayproject/ray:2.9.3-py311-cpu", "--object-store-memry=100", "--object-store-memory=100"),
    ],
)
def test_typos_on_a_known_ray_are_corrected_to_an_option_of_that_ray(
    tmp_path: Path, image: str, typo: str, correction: str
) -> None:
    res = lint(tmp_path, on_ray(image, typo))["compose.ray_start_flags"]
    assert res.code == "compose.ray_start_flags.unknown" and res.status is Status.FAIL
    (value,) = edit_values(res)
    assert correction in value
    # On a Ray without --proxy-server-url its typo is not "corrected" into it.
    older = lint(tmp_path, on_ray("rayproject/ray:2.49.2-py312-cpu", "--proxy-server-ur=http://h:1"))
    assert all("--proxy-server-url" not in v for v in edit_values(older["compose.ray_start_flags"]))


# --------------------------------------------------------------------------
# secrets stay out of remedies and details


PASSWORD = "Sup3r-Secret-Pw"


def _secret_tree() -> dict[str, Any]:
    tree = copy.deepcopy(BASE)
    # The head's password comes from the environment, interpolated into the flag; it has no
    # --dashboard-host, so compose.dashboard_host offers a corrected command line.
    head(tree)["command"] = 'bash -c "ray start --head --port=6379 --redis-password=${REDIS_PASSWORD} --block"'
    # The worker gives it space-separated and points at a wrong host: compose.worker_address
    # offers a corrected line too.
    worker(tree)["command"] = f'bash -c "ray start --address=ray-haed:6379 --redis-password {PASSWORD} --block"'
    worker(tree)["environment"] = {"RAY_API_TOKEN": "tok-0123456789", "OTHER": "visible"}
    return tree


def test_password_never_in_a_remedy_or_detail(tmp_path: Path) -> None:
    results = lint_compose(
        load_compose(_write(tmp_path, _secret_tree()), {"REDIS_PASSWORD": PASSWORD}), routes=no_routes, cpu_count=8
    )
    by = {r.id: r for r in results}
    for rule_id in ("compose.dashboard_host", "compose.worker_address"):
        assert by[rule_id].status in (Status.FAIL, Status.WARN), by[rule_id].to_dict()
    assert by["compose.ray_start_flags"].status is Status.OK  # --redis-password is a current option
    assert by["compose.dashboard_host"].code == "compose.dashboard_host.missing"
    text = json.dumps([r.to_dict() for r in results])
    assert PASSWORD not in text
    edits = {e.place: e for r in results if r.remediation for e in r.remediation.edits}
    head_edit = edits["services.ray-head.command"]
    assert "--dashboard-host=0.0.0.0" in head_edit.value and "--redis-password=***" in head_edit.value
    worker_edit = edits["services.ray-worker.command"]
    assert "--address=ray-head:6379" in worker_edit.value and "--redis-password ***" in worker_edit.value


def test_a_corrected_ray_start_line_masks_the_password(tmp_path: Path) -> None:
    tree = copy.deepcopy(BASE)
    worker(tree)["command"] = (
        f'bash -c "ray start --address=ray-head:6379 --redis-password {PASSWORD} --num-cpu=2 --block"'
    )
    flags = next(
        r
        for r in lint_compose(load_compose(_write(tmp_path, tree), {}), routes=no_routes, cpu_count=8)
        if r.id == "compose.ray_start_flags"
    )
    assert flags.status is Status.FAIL and "--num-cpu" in flags.summary, flags.to_dict()
    assert PASSWORD not in json.dumps(flags.to_dict())
    (edit,) = flags.remediation.edits
    assert "--num-cpus=2" in edit.value and "--redis-password ***" in edit.value, edit


def test_secret_values_of_a_compose_project(tmp_path: Path) -> None:
    project = load_compose(_write(tmp_path, _secret_tree()), {"REDIS_PASSWORD": PASSWORD})
    assert project.secret_values() == {PASSWORD, "tok-0123456789"}


def test_check_text_and_json_never_show_the_password(tmp_path: Path, clean_env: dict[str, str]) -> None:
    from doctor.app import run_check
    from doctor.options import TargetOptions
    from doctor.render import render_json, text_lines

    path = _write(tmp_path, _secret_tree())
    env = {**clean_env, "REDIS_PASSWORD": PASSWORD}
    report = run_check(TargetOptions(compose=path, roundtrip=False), environ=env, cwd=tmp_path)
    assert report.error is None
    ids = {r.id for r in report.results}
    assert {"compose.dashboard_host", "compose.worker_address"} <= ids
    raw = json.dumps(report.to_dict(), default=str)  # before any masking pass
    assert PASSWORD not in raw
    assert PASSWORD not in render_json(report)
    assert PASSWORD not in "\n".join(text for _, text in text_lines(report, verbose=True))
    assert "--redis-password=***" in raw


def _write(tmp_path: Path, tree: dict[str, Any]) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# edits, codes and titles


def test_limits_rule_gives_an_edit_of_the_limit(tmp_path: Path) -> None:
    tree = copy.deepcopy(BASE)
    worker(tree)["deploy"] = {"resources": {"limits": {"cpus": "16", "memory": "4g"}}}
    res = lint(tmp_path, tree)["compose.resource_limits"]
    assert res.status is Status.FAIL and res.code == "compose.resource_limits.cpus_over_machine"
    assert res.title == "Resource limits fit this machine"
    assert res.remediation is not None and res.remediation.commands == ()
    key = ("services", "ray-worker", "deploy", "resources", "limits", "cpus")
    assert res.remediation.edits == (
        Edit(
            str(tmp_path / "compose.yaml"),
            "services.ray-worker.deploy.resources.limits.cpus",
            "'8'",
            change=Change(Op.SET, key, "8"),  # a string stays a string
        ),
    )
    assert res.to_dict()["remediation"]["edits"][0]["place"] == "services.ray-worker.deploy.resources.limits.cpus"


def test_no_lint_remedy_is_a_command(tmp_path: Path) -> None:
    # Every row's finding: fixes to the file are edits, never text after a `$`.
    for _, mutate, rule_id, _, _, _ in ROWS:
        tree = copy.deepcopy(BASE)
        mutate(tree)
        res = lint(tmp_path, tree)[rule_id]
        if res.remediation:
            assert res.remediation.commands == (), (rule_id, res.remediation)


def test_codes_are_stable_and_name_the_cause(tmp_path: Path) -> None:
    results = lint(tmp_path, copy.deepcopy(BASE))
    assert {r.code for r in results.values()} == {f"{rule_id}.ok" for rule_id, _, _ in RULES}
    tree = copy.deepcopy(BASE)
    set_worker_cmd("--address=ray-head:6379 --num-cpu=1 --block")(tree)
    assert lint(tmp_path, tree)["compose.ray_start_flags"].code == "compose.ray_start_flags.unknown"


def test_subnet_overlap_suggests_a_free_subnet(tmp_path: Path) -> None:
    routes = [route("172.29.5.0/24")]
    res = lint(tmp_path, copy.deepcopy(BASE), routes=lambda: routes)["compose.subnet"]
    assert res.remediation is not None
    (edit,) = res.remediation.edits
    assert edit.place == "networks.study_network.ipam.config[0].subnet"
    assert not ipaddress.ip_network(edit.value).overlaps(ipaddress.ip_network("172.29.0.0/16"))


def test_cpu_limit_is_judged_against_the_engine_not_this_process(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """The tutorial's worker `cpus: '3'` on a 2-CPU engine is a failure, whatever this machine's CPU count
    (Docker Desktop's VM has fewer CPUs than the laptop): the count is `docker info`'s NCPU."""
    from doctor.app import run_check
    from doctor.options import TargetOptions
    from tests.helpers import by_id

    shipped = Path(__file__).resolve().parent.parent / "compose" / "cpu-ray-cluster.yaml"
    fake = Path(__file__).resolve().parent / "fake_docker"
    for ncpu, status in (("2", Status.FAIL), ("64", Status.OK)):
        env = {**clean_env, "PATH": f"{fake}:{clean_env['PATH']}", "FAKE_DOCKER_NCPU": ncpu, "FAKE_DOCKER_ENGINE": "1"}
        report = run_check(TargetOptions(compose=str(shipped), roundtrip=False), environ=env, cwd=tmp_path)
        res = by_id(report, "compose.resource_limits")
        assert res.status is status, (ncpu, res.summary)
        if status is Status.FAIL:
            assert "the Docker engine's 2 CPUs" in res.summary
            assert res.details and "Range of CPUs is from 0.01 to 2.00" in res.details[0]
