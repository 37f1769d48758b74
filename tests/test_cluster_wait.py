"""``fix --cluster`` waits, bounded, for what it recreated before its final check (``doctor.fix.cluster_wait``).

The wait's decisions are tested with its looks as small fakes (the containers ``docker ps`` lists, the
dashboard's count of alive nodes) and a fake clock whose ``sleep`` only moves it: no engine, no real wait,
no timed assertion. ``count_alive`` meets a real HTTP server; the engine test
(``test_compose_real.py::test_fix_cluster_fits_the_cpu_limit_and_recreates_only_what_it_changed``) meets
a real recreated worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from doctor.fix import cluster_restart
from doctor.fix.cluster_wait import WAIT_S, Waited, count_alive, wait_for_services
from doctor.head.containers import Container
from doctor.head.dashboard import DashboardError
from doctor.local.docker_cli import DockerCli
from doctor.model import Report
from doctor.secrets import Token
from doctor.target import HeadAddress
from tests.fake_servers import FakeHTTP, closed_port, json_answer

RAY = ("ray-head", "ray-worker")


class Clock:
    """``time.monotonic`` and ``time.sleep`` for the wait: sleeping moves the clock, nothing else does
    (unless a look says it took ``look_s``)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def box(name: str, service: str, state: str = "running", cid: str | None = None) -> Container:
    return Container(cid or f"id-{name}", name, service, state, state, "cluster", "1.29.2")


HEAD = box("cluster_ray-head_1", "ray-head")
WORKER = box("cluster_ray-worker_1", "ray-worker")


def looks(*answers: object) -> Callable[[], object]:
    """A look that gives ``answers`` in turn (an exception is raised), then the last one for ever."""
    seq: Iterator[object] = iter(answers)
    last: list[object] = [None]

    def look() -> object:
        last[0] = next(seq, last[0])
        if isinstance(last[0], Exception):
            raise last[0]
        return last[0]

    return look


def wait(containers: Any, alive: Any, clock: Clock, services: tuple[str, ...] = ("ray-worker",), **kw: Any) -> Waited:
    """The wait after ``services`` were recreated, on the fake clock."""
    return wait_for_services(
        services, RAY, containers=containers, alive_nodes=alive, clock=clock, sleep=clock.sleep, **kw
    )


def test_healthy_at_once_costs_one_look_and_no_sleep() -> None:
    clock = Clock()
    done = wait(looks([HEAD, WORKER]), looks(2), clock)
    assert (done.ended, done.healthy, done.polls, done.exited) == ("answered", True, 1, ())
    assert clock.slept == [] and done.seconds == 0
    assert done.last == "2 of 2 Ray nodes alive"
    assert done.to_dict()["healthy"] is True and done.to_dict()["limit_s"] == WAIT_S


def test_healthy_after_the_worker_runs_the_dashboard_answers_and_the_node_joins() -> None:
    clock = Clock()
    asked: list[int] = []
    nodes = looks(DashboardError("refused", "127.0.0.1:8265 refused the connection"), 1, 2)

    def alive() -> object:
        asked.append(1)
        return nodes()

    new_worker = box("cluster_ray-worker_1", "ray-worker", "created", cid="id-new")
    containers = looks([HEAD], [HEAD, new_worker], [HEAD, box("cluster_ray-worker_1", "ray-worker", cid="id-new")])
    done = wait(containers, alive, clock)
    # look 1: no worker container; 2: created, not running; 3: the dashboard refuses; 4: 1 of 2; 5: 2 of 2.
    assert (done.ended, done.polls) == ("answered", 5), done
    assert len(asked) == 3  # the dashboard is asked only once the recreated worker runs
    assert clock.slept == [1.0] * 4 and done.seconds == 4.0


def test_the_counts_are_the_running_ray_containers_not_other_services() -> None:
    """A service that is not Ray (no ``ray start``) is no node to wait for, even recreated and stopped (a
    one-shot job); a second worker replica is."""
    clock = Clock()
    sidecar = box("cluster_redis_1", "redis")
    oneshot = box("cluster_init_1", "init", "exited")
    second = box("cluster_ray-worker_2", "ray-worker")
    containers = looks([HEAD, WORKER, second, sidecar, oneshot])
    done = wait(containers, looks(2, 3), clock, services=("ray-worker", "init"))
    assert (done.ended, done.polls, done.last) == ("answered", 2, "3 of 3 Ray nodes alive")


def test_a_recreated_container_that_exited_ends_the_wait_at_once() -> None:
    clock = Clock()
    exited = box("cluster_ray-head_1", "ray-head", "exited", cid="id-new-head")
    done = wait(looks([exited, WORKER]), looks(1), clock, services=("ray-head",))
    assert (done.ended, done.healthy, done.polls, done.exited) == ("exited", False, 1, ("cluster_ray-head_1",))
    assert clock.slept == []


def test_a_worker_seen_running_that_stops_ends_the_wait_but_an_old_stopped_one_does_not() -> None:
    clock = Clock()
    old = box("cluster_ray-worker_9", "ray-worker", "exited", cid="id-old")  # stopped before fix began
    stopped = box("cluster_ray-worker_1", "ray-worker", "exited")
    done = wait(looks([HEAD, WORKER, old], [HEAD, stopped, old]), looks(1), clock, services=("ray-head",))
    assert (done.ended, done.polls, done.exited) == ("exited", 2, ("cluster_ray-worker_1",)), done


def test_time_out_is_bounded_and_says_what_the_last_look_saw() -> None:
    clock = Clock()

    def slow_containers() -> object:
        clock.now += 0.5  # each docker ps takes a while
        return [HEAD, WORKER]

    done = wait(slow_containers, looks(1), clock, limit_s=9.0, interval_s=2.0)
    assert (done.ended, done.healthy, done.last) == ("timed_out", False, "1 of 2 Ray nodes alive")
    # Looks begin at 0, 2.5, 5, 7.5 and 9 s (the last sleep cut to the 1 s left): none after 9 s.
    assert done.polls == 5 and clock.slept == [2.0, 2.0, 2.0, 1.0] and done.seconds == 9.5


def test_a_dashboard_that_refuses_the_token_ends_the_wait() -> None:
    clock = Clock()
    done = wait(looks([HEAD, WORKER]), looks(DashboardError("unauthorized", "needs a token", 401)), clock)
    assert (done.ended, done.healthy, done.polls, done.last) == ("refused", False, 1, "needs a token")


def test_without_a_dashboard_address_running_containers_are_enough() -> None:
    clock = Clock()
    done = wait(looks(None, [HEAD, WORKER]), None, clock)
    assert (done.ended, done.polls) == ("answered", 2)  # docker could not tell at first: looked again


def test_count_alive_reads_the_state_api_with_the_token() -> None:
    rows = [
        {"node_id": "a", "state": "ALIVE", "is_head_node": True},
        {"node_id": "b", "state": "DEAD"},  # the worker the restart replaced
        {"node_id": "c", "state": "ALIVE"},
    ]
    answer = json_answer({"data": {"result": {"result": rows, "total": 3}}})
    with FakeHTTP({"/api/v0/nodes": answer}, token="s3cret") as server:
        address = HeadAddress("127.0.0.1", server.port)
        assert count_alive(address, timeout=2.0, token=Token("s3cret", "RAY_AUTH_TOKEN")) == 2
        with pytest.raises(DashboardError) as refused:
            count_alive(address, timeout=2.0, token=None)
    assert refused.value.kind == "unauthorized"
    with pytest.raises(DashboardError) as closed:
        count_alive(HeadAddress("127.0.0.1", closed_port()), timeout=2.0, token=None)
    assert closed.value.kind == "refused"


# -- the Docker CLI: the check run's answer, not a second probe ---------------------------------------


def test_compose_argv_reads_the_runs_docker_answer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_second_probe(*args: object, **kwargs: object) -> DockerCli:
        raise AssertionError("asked docker again")

    monkeypatch.setattr("doctor.local.docker_cli.probe", no_second_probe)
    asked: list[int] = []

    def the_runs() -> DockerCli:
        asked.append(1)
        return DockerCli("/usr/bin/docker", compose=True, engine=True)

    env = {"PATH": str(tmp_path)}
    assert cluster_restart._compose_argv("2.29.7", env, the_runs) == ["/usr/bin/docker", "compose"]
    assert asked == [1]
    legacy = tmp_path / "docker-compose"
    legacy.write_text("#!/bin/sh\n")
    legacy.chmod(0o755)
    # Containers made by docker-compose 1.x are recreated by it: the plugin is not even asked about.
    assert cluster_restart._compose_argv("1.29.2", env, the_runs) == [str(legacy)]
    assert asked == [1]


# -- what fix says after the wait ---------------------------------------------------------------------


def _lines(waited: dict[str, object]) -> list[str]:
    from doctor.commands.fix_cluster import outcome_lines

    restart = {"state": "restarted", "services": ["ray-head"], "command": ["docker-compose", "up"], "waited": waited}
    cluster = {"path": "c.yaml", "edits": [{}], "restart": restart, "written": True}
    report = Report("fix", extra={"outcome": {"action": "cluster_file", "cluster_file": cluster}})
    return [text for _, text in outcome_lines(report, False)]


def test_fix_says_in_one_line_that_the_recreated_services_did_not_answer() -> None:
    lines = _lines({"ended": "timed_out", "seconds": 90.4, "limit_s": 90.0, "last": "0 of 2 Ray nodes alive"})
    assert "ray-head did not answer within 90 s (0 of 2 Ray nodes alive): see the check above." in lines
    lines = _lines({"ended": "exited", "seconds": 3.0, "limit_s": 90.0, "exited": ["cluster_ray-head_1"]})
    said = "cluster_ray-head_1 stopped while fix waited for ray-head to answer again (docker logs cluster_ray-head_1 says why)."
    assert said in lines
    lines = _lines({"ended": "answered", "seconds": 7.5, "limit_s": 90.0})
    assert "ray-head answered again after 7.5 s; the check above ran then." in lines


def test_workers_rejoin_a_recreated_head_and_nothing_else_does() -> None:
    """A new head is a new GCS: its unchanged Ray workers are recreated with it; services that run no
    ``ray start`` are not, and an edit that leaves the head alone recreates only what it changed."""
    from doctor.fix.cluster_restart import rejoining

    ray = ["ray-head", "ray-worker", "gpu-worker"]
    assert rejoining("ray-head", ray, ["ray-head"]) == ["ray-worker", "gpu-worker"]
    assert rejoining("ray-head", ray, ["ray-head", "ray-worker"]) == ["gpu-worker"]
    assert rejoining("ray-head", ray, ["ray-worker"]) == []
    assert rejoining("ray-head", ray, ["redis"]) == []
    assert rejoining(None, ray, ["ray-head"]) == []
