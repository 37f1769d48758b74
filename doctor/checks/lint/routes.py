"""This machine's networks, for the compose subnet rule: routes and interface subnets.

Read from ``/proc/net/route`` and ``ip -j addr`` (iproute2), through the one
subprocess runner (``doctor.proc.run``, no Ray token in the child's
environment). Where neither exists the list is empty and the overlap check
is skipped rather than failed.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from doctor.proc import ProcTimeout, child_env, run

ROUTE_TABLE_MAX_BYTES = 4 * 1024 * 1024  # /proc/net/route of a host with very many routes

__all__ = ["HostRoute", "IPNetwork", "host_routes"]

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 - runtime alias, Python 3.9


@dataclass(frozen=True)
class HostRoute:
    """A network this machine reaches directly: a route or an interface's subnet."""

    network: IPNetwork
    interface: str
    source: str  # "/proc/net/route" or "ip -j addr"


def host_routes(
    proc_route: Path = Path("/proc/net/route"),
    ip_command: Sequence[str] | None = None,
    timeout: float = 2.0,
) -> list[HostRoute]:
    """This machine's routes and interface subnets; empty where neither is readable.

    Linux gives ``/proc/net/route``; ``ip -j addr`` (iproute2) adds the
    interfaces' subnets, IPv6 included. Elsewhere both are absent and the
    overlap check is skipped rather than failed.
    """
    routes: list[HostRoute] = []
    from doctor import files

    try:  # /proc files say size 0: the cap bounds the read, not the stat
        lines = files.read_bytes(proc_route, ROUTE_TABLE_MAX_BYTES).decode("ascii", errors="replace").splitlines()
    except files.Unreadable:
        lines = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            flags = int(fields[3], 16)
            dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
            network = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error, OSError):
            continue
        if flags & 0x1:  # RTF_UP
            routes.append(HostRoute(network, fields[0], "/proc/net/route"))
    cmd = list(ip_command) if ip_command is not None else None
    if cmd is None:
        ip = shutil.which("ip")
        cmd = [ip, "-j", "addr"] if ip else None
    if cmd:
        try:
            proc = run(cmd, timeout=timeout, env=child_env(), cap=1 << 20)
            data = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []
        except (OSError, ProcTimeout, ValueError, RecursionError):
            data = []
        for iface in data if isinstance(data, list) else []:
            if not isinstance(iface, dict) or iface.get("ifname") == "lo":
                continue
            for info in iface.get("addr_info") or []:
                try:
                    net = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
                except (KeyError, TypeError, ValueError):
                    continue
                if net.is_loopback or net.is_link_local:
                    continue
                routes.append(HostRoute(net, str(iface.get("ifname", "?")), "ip -j addr"))
    return routes
