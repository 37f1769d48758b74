"""Ray's own known bugs, as data: which Rays they affect, what the user sees, where Ray documents it, and
what raydoctor does about it.

Shaped like ``doctor.package_skew``: one table, each row with its source. ``fix`` reads ``pins``
(requirements it adds to the env it builds for an affected Ray); ``check`` reads ``pattern`` (the
symptom's exact text, searched in what the round trip's client printed and what the head's Ray Client
server logged) and ``needs`` (facts the caller must have seen, for symptoms whose text alone says too
little: a timeout is a timeout until the port it dialled is known to be the GCS's).

Where a row says "seen here", the versions were installed on this machine and their files read
(``tests/test_ray_bugs.py`` and the matrix in ``tests/test_ray_matrix.py`` repeat what can be repeated).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# Facts a caller may have seen besides the text (``RayBug.needs``).
TIMED_OUT = "timed_out"  # the round trip was stopped at its limit, or Ray's client gave up waiting
CLIENT_PORT_IS_GCS = "client_port_is_gcs"  # the ray:// address names the head's GCS port
# Ray Client's own words when it gives up (ray/util/client/worker.py::Worker._connect_channel, 2.60).
CLIENT_TIMEOUT_TEXT = re.compile(r"[Rr]ay [Cc]lient connection time(?:d out|out)")


@dataclass(frozen=True)
class RayBug:
    key: str
    affects: str  # a PEP 440 specifier of Ray versions ("" = every release)
    symptom: str  # the exact text users see
    source: str  # Ray's issue, PR or file
    action: str  # what raydoctor does about it
    pattern: str = ""  # a regular expression for the symptom ("" = the facts in ``needs`` suffice)
    needs: frozenset[str] = frozenset()  # facts that must hold besides the text (TIMED_OUT, CLIENT_PORT_IS_GCS)
    pins: tuple[str, ...] = ()  # requirements fix adds to an env for an affected Ray
    remedy: str = ""  # one sentence for the user

    def affects_ray(self, ray: str | None) -> bool:
        """Whether Ray ``ray`` is affected; an unknown or unreadable version may be."""
        if not ray:
            return True
        try:
            return Version(ray) in SpecifierSet(self.affects)
        except InvalidVersion:
            return True

    def seen_in(self, text: str, facts: Collection[str] = ()) -> bool:
        if not self.needs <= set(facts):
            return False
        return not self.pattern or re.search(self.pattern, text) is not None


TABLE: tuple[RayBug, ...] = (
    RayBug(
        "pkg_resources",
        "<2.10",
        "ModuleNotFoundError: No module named 'pkg_resources'",
        "Ray 2.9.3 imports pkg_resources at run time (ray/__init__.py's pickle5 check, "
        "ray/dashboard/modules/dashboard_sdk.py: `from pkg_resources import packaging`, ray/_private/utils.py, "
        "ray/dashboard/modules/job/sdk.py); ray-project/ray #38257, PR #41376 replaced it with importlib.metadata "
        "and packaging, first released in 2.10.0 (seen here: 2.9.3 has these imports, 2.10.0 and 2.24.0 none). "
        "setuptools 81 dropped pkg_resources, so an env built today lacks it",
        "fix adds setuptools<81 to the env it builds for these Rays; check names this row when the round trip "
        "fails with the symptom",
        pattern=r"No module named '?pkg_resources",
        pins=("setuptools<81",),
        remedy="install setuptools<81 beside this Ray (setuptools 81 dropped pkg_resources, which Ray before 2.10 "
        "imports); on the head too, where its dashboard dies at start for the same reason",
    ),
    RayBug(
        "client_server_fork_crash",
        "",
        "Check failed: next_worker->state == KICKED (or next_worker->initialized_cv) in ray_client_server*.err; "
        "the client gives up with ConnectionError: ray client connection timeout",
        "Ray Client's proxier forks a SpecificServer per client while gRPC threads run "
        "(ray/util/client/server/proxier.py; ray-project/ray #63202); gRPC's fork handlers "
        "(grpc doc/fork_support.md, GRPC_ENABLE_FORK_SUPPORT) abort the child with today's grpcio "
        "(seen here with grpcio 1.85 on Ray 2.49.2)",
        "check reads the head's ray_client_server logs through the dashboard and names this row "
        "(roundtrip.client.fork_crash)",
        pattern=r"next_worker->(?:state == KICKED|initialized_cv)",
        remedy="restart the head with GRPC_ENABLE_FORK_SUPPORT=0 in its environment, or pin the head's grpcio "
        "to a release without the fork crash",
    ),
    RayBug(
        "gcs_port_as_client_port",
        "",
        "ConnectionError: ray client connection timeout (Ray's log: Ray Client connection timed out. Ensure that "
        "the Ray Client port on the head node is reachable from your local machine)",
        "ray.init('ray://host:6379') dials the GCS port, which speaks gRPC but not Ray Client's protocol, and "
        "Ray's client retries until its timeout (ray/util/client/worker.py::Worker._connect_channel); "
        "ray-project/ray #46733, #41158",
        "check names this row when a ray:// address that names the GCS port times out",
        needs=frozenset({CLIENT_PORT_IS_GCS, TIMED_OUT}),
        remedy="use the Ray Client port (ray start --ray-client-server-port, default 10001) in ray://, not the "
        "GCS port (6379); or submit with the Jobs API on the dashboard port (8265)",
    ),
    RayBug(
        "no_node_info_outside",
        ">=2.55",
        "No node info found matching attributes: '...' when trying to resolve node to connect to.",
        "ray.init('host:6379') from a machine or a sibling container without a raylet of the cluster: "
        "ray/_private/services.py (2.60) looks up a local node in the GCS and finds none; ray-project/ray #63923 "
        "(open)",
        "check names this row when the text appears; the remedy is ray:// or the Jobs API",
        pattern=r"No node info found matching attributes",
        remedy="from outside the cluster use ray://HEAD:10001 (Ray Client) or the Jobs API on the dashboard port; "
        "ray.init('host:6379') needs a Ray node (ray start --address) on this machine",
    ),
    RayBug(
        "uv_run_worker_python",
        ">=2.47,<2.54",
        "RuntimeError: Version mismatch: The cluster was started with: ... This process on node ... was started "
        "with: ... Python: <another minor>",
        "a driver started with `uv run` has Ray's uv hook (on by default since 2.47: ray-project/ray PR #53060) "
        "set the workers' py_executable to `uv run ...` without --python, so uv may pick another Python for "
        "them (ray/_private/runtime_env/uv_runtime_env_hook.py); ray-project/ray #59639, fixed by PR #59768 "
        "(seen here: 2.53.0's hook lacks the --python pin, 2.54.0's has it)",
        "check names this row when a worker's version-mismatch text appears",
        pattern=r"This process on node \S+ was started with",
        remedy="run the driver with `uv run --python X.Y.Z` (the cluster's Python), or set "
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV=0; Ray 2.54 pins it",
    ),
)
BUGS = {bug.key: bug for bug in TABLE}


def pins_for(ray: str) -> list[tuple[str, RayBug]]:
    """(requirement, row) that ``fix`` adds to an env for Ray ``ray`` (known: fix builds for a known Ray)."""
    return [(pin, bug) for bug in TABLE if bug.pins and ray and bug.affects_ray(ray) for pin in bug.pins]


def recognise(text: str, ray: str | None, facts: Collection[str] = ()) -> list[RayBug]:
    """The rows whose symptom is in ``text`` (with ``facts`` seen) and that affect Ray ``ray``."""
    return [bug for bug in TABLE if bug.affects_ray(ray) and bug.seen_in(text, facts)]
