"""After ``fix --cluster`` recreated services: wait, bounded, until the cluster answers as Ray again.

``up -d`` returns once the new containers have started, not once Ray in them has: a recreated head
needs seconds before its dashboard answers and lists its nodes, a recreated worker before its raylet
registers with the head's GCS and shows as ``ALIVE`` in the state API's node list
(``ray/dashboard/modules/state/state_head.py``). A check run at once would report a cluster that is
fine a moment later as not running, or a worker as missing.

So fix polls (``POLL_S``) until every container of the recreated Ray services runs and the head's
dashboard lists at least as many alive nodes as the compose project has running Ray containers (the
services whose command runs ``ray start``), for at most ``WAIT_S`` seconds. A Ray container that
stops meanwhile (``exited``, ``dead``) ends the wait at once: the final check says why (``doctor.head.
containers.InsideView`` quotes a stopped head's log). A dashboard that refuses this run's token ends it
too: it answers, and waiting cannot make it list its nodes. Each look is bounded: ``docker ps`` by its
own limit, each dashboard request by ``--timeout`` (a fresh ``DashboardClient`` per look, since one
remembers a port that refused).

A recreated head is a new GCS: a worker that joined the old one does not join it, and its raylet gives
up after ``gcs_rpc_server_reconnect_timeout_s`` (``src/ray/common/ray_config_def.h``, 60 s), which ends a
``ray start --block`` container. So the workers are recreated with the head
(``doctor.fix.cluster_restart.rejoining``); a worker left on the old head all the same (a service whose
``ray start`` raydoctor did not find) ends the wait when its container exits (seen ~45 s after a head was
recreated alone), and fix says which container stopped.

``wait_for_services`` takes its two looks as functions and its clock and sleep as arguments, so its
decisions are tested without an engine or a wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from doctor.facts.cluster import node_counts
from doctor.head.containers import Container, compose_containers
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.secrets import Token
from doctor.target import HeadAddress

__all__ = ["POLL_S", "WAIT_S", "Waited", "wait_for_services", "wait_restarted"]

WAIT_S = 90.0  # a recreated head of the tutorial's image answers in ~10 s here; a loaded laptop takes longer
POLL_S = 1.0
STOPPED = frozenset({"exited", "dead"})  # Docker's states of a container that will not come back by itself
# A dashboard that answers this run with 401/403 is up; its node list stays closed to this run however long
# fix waits (``doctor.head.dashboard.DashboardClient.request``).
REFUSED_KINDS = frozenset({"unauthorized", "forbidden"})


@dataclass(frozen=True)
class Waited:
    """How the wait ended: ``ended`` is answered | exited | refused | timed_out."""

    ended: str
    seconds: float
    polls: int
    limit_s: float
    exited: tuple[str, ...] = field(default_factory=tuple)  # containers that stopped during the wait
    last: str = ""  # what the last look saw, one line: "1 of 2 Ray nodes alive", "ray-head not running yet"

    @property
    def healthy(self) -> bool:
        return self.ended == "answered"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ended": self.ended,
            "healthy": self.healthy,
            "seconds": round(self.seconds, 1),
            "polls": self.polls,
            "limit_s": self.limit_s,
            "exited": list(self.exited),
            "last": self.last,
        }


@dataclass(frozen=True)
class _Look:
    ready: bool
    exited: tuple[str, ...] = ()
    refused: bool = False
    note: str = ""


def _look(
    found: list[Container] | None,
    services: Sequence[str],
    ray_services: Collection[str],
    alive_nodes: Callable[[], int] | None,
    seen_running: set[str],
) -> _Look:
    """One look at the containers, then (once they run) at the node list."""
    if found is None:
        return _Look(False, note="docker did not list the cluster's containers")
    ray = [c for c in found if c.service in ray_services]
    # Stopped during the wait: a recreated service's container (up -d started it), or one seen running.
    exited = tuple(c.name for c in ray if c.state in STOPPED and (c.service in services or c.id in seen_running))
    seen_running.update(c.id for c in found if c.running)
    if exited:
        return _Look(False, exited=exited, note=f"{', '.join(exited)} stopped")
    # The recreated Ray services (a service without `ray start` is no node: it is not waited for).
    recreated = [s for s in services if s in ray_services]
    waiting = [s for s in recreated if not any(c.service == s for c in ray)]
    waiting += sorted({c.service for c in ray if c.service in recreated and not c.running})
    if waiting:
        return _Look(False, note=f"{', '.join(waiting)} not running yet")
    if alive_nodes is None:  # no dashboard address to ask: running is all that can be seen
        return _Look(True, note="running (no dashboard address to ask)")
    expected = sum(1 for c in ray if c.running)
    try:
        alive = alive_nodes()
    except DashboardError as exc:
        return _Look(False, refused=exc.kind in REFUSED_KINDS, note=exc.message)
    note = f"{alive} of {expected} Ray node{'s' if expected != 1 else ''} alive"
    return _Look(alive >= expected, note=note)


def wait_for_services(
    services: Sequence[str],
    ray_services: Collection[str],
    *,
    containers: Callable[[], list[Container] | None],
    alive_nodes: Callable[[], int] | None,
    limit_s: float = WAIT_S,
    interval_s: float = POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited:
    """Look until ``services`` run and the node list counts every running Ray container, or for ``limit_s``.

    ``containers``: the compose project's containers (None: Docker could not tell); ``alive_nodes``: the
    dashboard's count of alive nodes, raising ``DashboardError`` while it does not answer (None: no
    address to ask). The first look is at once; no look starts after ``limit_s``.
    """
    started = clock()
    seen_running: set[str] = set()
    polls = 0
    while True:
        look = _look(containers(), services, ray_services, alive_nodes, seen_running)
        polls += 1
        spent = clock() - started
        if look.exited:
            return Waited("exited", spent, polls, limit_s, look.exited, look.note)
        if look.ready:
            return Waited("answered", spent, polls, limit_s, last=look.note)
        if look.refused:
            return Waited("refused", spent, polls, limit_s, last=look.note)
        left = limit_s - spent
        if left <= 0:
            return Waited("timed_out", spent, polls, limit_s, last=look.note)
        sleep(min(interval_s, left))


def count_alive(address: HeadAddress, *, timeout: float, token: Token | None) -> int:
    """The alive nodes the dashboard at ``address`` lists now; raises ``DashboardError``."""
    client = DashboardClient(address, timeout=timeout, token=token)  # fresh: a client remembers a refusal
    try:
        return node_counts(client.nodes())["alive"]  # as head.nodes and the report count them
    finally:
        client.close()


def wait_restarted(
    compose_path: Path,
    services: Sequence[str],
    ray_services: Collection[str],
    environ: Mapping[str, str],
    *,
    address: HeadAddress | None,
    token: Token | None,
    timeout: float,
    limit_s: float = WAIT_S,
) -> Waited:
    """``wait_for_services`` on the cluster of ``compose_path``: ``docker ps``, and its dashboard at ``address``
    (with the token the check sent there, each request within ``timeout``: ``--timeout``)."""
    alive_nodes = None if address is None else partial(count_alive, address, timeout=timeout, token=token)
    return wait_for_services(
        services,
        ray_services,
        containers=lambda: compose_containers(compose_path, environ),
        alive_nodes=alive_nodes,
        limit_s=limit_s,
    )
