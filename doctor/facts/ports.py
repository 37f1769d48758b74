"""The head's real GCS and Ray Client ports, as the head itself says, when the user did not name them.

Ray's dashboard reports neither port (Ray 2.49.2: ``/api/v0/cluster_metadata`` holds versions only,
``/nodes?view=summary`` the raylet's own ports and ``metricsExportPort``). The head's Ray Client server
does: its proxy logs, first thing, ``Starting Ray Client server on HOST:PORT, args Namespace(...)``
(``ray/util/client/server/server.py::main``), and the arguments are those ``ray start`` gave it
(``ray/_private/services.py::start_ray_client_server``: ``--address=<GCS host:port>``, ``--port=<client
port>``, ``--mode=proxy``), the Redis password already masked there. raydoctor reads that line through the
dashboard's log API (``/api/v0/logs/file``, bounded like every read) from ``ray_client_server.err``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from doctor.head.dashboard import DashboardError

LOG = "ray_client_server.err"
LINES = 2000  # the start line is the file's first; the client cap on bytes still applies
_START = re.compile(r"Starting Ray Client server on \S+, args Namespace\((?P<args>.*)\)\s*$")
_PORT = re.compile(r"(?:^|[ ,])port=(\d{1,5})(?:,|$)")
_ADDRESS = re.compile(r"(?:^|[ ,])address='[^']*:(\d{1,5})'")
_MODE = re.compile(r"(?:^|[ ,])mode='([\w-]+)'")


@dataclass(frozen=True)
class LearnedPorts:
    gcs: int | None
    client: int | None
    source: str = f"the head's Ray Client server log ({LOG})"


def _port(match: re.Match[str] | None) -> int | None:
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value < 65536 else None


def parse_start_line(text: str) -> LearnedPorts | None:
    """The ports in the proxy's start line, or None when the text has none."""
    for line in text.splitlines():
        found = _START.search(line)
        if found is None:
            continue
        args = found.group("args")
        mode = _MODE.search(args)
        if mode is not None and mode.group(1) != "proxy":
            continue  # a per-client SpecificServer on its own port (23000+), not the one clients dial
        learned = LearnedPorts(_port(_ADDRESS.search(args)), _port(_PORT.search(args)))
        if learned.gcs or learned.client:
            return learned
    return None


def read_head_ports(dashboard: Any, nodes: list[dict[str, Any]]) -> LearnedPorts | None:
    """Ask the live head's log file (the head node from ``nodes``, the run's one node list); None when it
    cannot tell. Never raises."""
    try:
        node_id = next((str(n["node_id"]) for n in nodes if n.get("is_head_node") and n.get("node_id")), None)
        if node_id is None or not re.fullmatch(r"[0-9a-f]{16,64}", node_id):
            return None
        resp = dashboard.request("GET", f"/api/v0/logs/file?node_id={node_id}&filename={LOG}&lines={LINES}")
    except (DashboardError, KeyError, TypeError, AttributeError):
        return None
    if resp.status_code != 200:
        return None
    return parse_start_line(resp.text)
