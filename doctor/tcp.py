"""The one TCP probe, bounded name resolution, and the one wording of each way a connection fails.

A dead host costs seconds, not minutes: name resolution runs in a daemon thread
(``getaddrinfo`` has no timeout of its own) and the connect shares the same
``timeout``. ``connect`` is used by the dashboard client's preflight
(``doctor.head.dashboard``) and by the ports check (``doctor.checks.network``),
so both tell refused, timed out, unreachable and unresolvable apart the same way,
and ``describe`` words each of them the same way wherever it is shown.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass

# The ways reaching a server can fail, each with its one short label (a summary's list of ports).
LABELS = {
    "unresolvable": "does not resolve",
    "refused": "refused",
    "timeout": "timed out",
    "unreachable": "unreachable",
    "silent": "accepts but never answers",
    "not_ray": "is not Ray",
    "too_slow": "answers too slowly",
    "too_large": "answers too much",
}
DEAD = frozenset({"unresolvable", "refused", "timeout", "unreachable"})  # nothing was ever said on the connection


def describe(
    kind: str,
    where: str,
    *,
    port: int | None = None,
    timeout: float | None = None,
    detail: str = "",
    what: str = "Ray",
) -> str:
    """The one sentence for ``kind`` at ``where`` (``http://host:8265``, ``client 10.0.0.5:10001``).

    ``detail`` adds the particular reason (the resolver's words, what answered instead of Ray, the
    cap); ``what`` names the service a ``not_ray`` answer is not (``a Ray dashboard``).
    """
    within = f" within {timeout:g} s" if timeout is not None else ""
    extra = f": {detail}" if detail else ""
    if kind == "unresolvable":
        return f"{where}: the host name does not resolve{extra}"
    if kind == "refused":
        listens = f"on port {port}" if port is not None else "there"
        return f"{where}: connection refused (the host is up but nothing listens {listens})"
    if kind == "timeout":
        return f"{where}: no answer to the connection{within} (dropped by a firewall, or the host is down)"
    if kind == "unreachable":
        return f"{where} is unreachable{extra}"
    if kind == "silent":
        return f"{where} accepts connections but never answers (no answer{within})"
    if kind == "not_ray":
        return f"{where} answers, but not as {what}{extra}"
    if kind == "too_slow":
        return f"{where} answers too slowly: the answer was not complete{within}"
    if kind == "too_large":
        return f"{where}: answer too large{extra}"
    return f"{where}: {kind}{extra}"


def label(kind: str) -> str:
    return LABELS.get(kind, kind)


@dataclass(frozen=True)
class PortProbe:
    """What a TCP connect to one port did; ``latency_s`` is the connect alone once the name resolved."""

    host: str
    port: int
    state: str  # "open" | "refused" | "timeout" | "unreachable" | "unresolvable"
    latency_s: float
    detail: str = ""  # the resolver's or the kernel's own words, when they add something

    @property
    def open(self) -> bool:
        return self.state == "open"


class ResolveError(Exception):
    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: the host name does not resolve: {reason}")
        self.host = host
        self.reason = reason


def resolve(host: str, timeout: float) -> list[str]:
    """Addresses for ``host``; ``getaddrinfo`` has no timeout, so it runs in a daemon thread."""
    box: dict[str, object] = {}

    def work() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            box["addrs"] = list(dict.fromkeys(str(info[4][0]) for info in infos))
        except (socket.gaierror, UnicodeError, OSError) as exc:
            box["error"] = str(getattr(exc, "strerror", None) or exc)

    thread = threading.Thread(target=work, daemon=True, name=f"resolve-{host}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ResolveError(host, f"no answer from the resolver within {timeout:g} s")
    if "error" in box:
        raise ResolveError(host, str(box["error"]))
    addrs = box.get("addrs")
    if not isinstance(addrs, list) or not addrs:
        raise ResolveError(host, "no address")
    return [str(a) for a in addrs]


def connect(host: str, port: int, timeout: float) -> tuple[socket.socket | None, PortProbe]:
    """Resolve and connect once, all within ``timeout``; the socket (the caller closes it) when open."""
    start = time.perf_counter()
    try:
        addrs = resolve(host, timeout)
    except ResolveError as exc:
        return None, PortProbe(host, port, "unresolvable", time.perf_counter() - start, exc.reason)
    remaining = max(0.05, timeout - (time.perf_counter() - start))
    family = socket.AF_INET6 if ":" in addrs[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(remaining)
    t0 = time.perf_counter()
    try:
        sock.connect((addrs[0], port))
    except socket.timeout:
        sock.close()
        return None, PortProbe(host, port, "timeout", time.perf_counter() - t0)
    except ConnectionRefusedError:
        sock.close()
        return None, PortProbe(host, port, "refused", time.perf_counter() - t0)
    except OSError as exc:
        sock.close()
        state = "refused" if exc.errno == errno.ECONNREFUSED else "unreachable"
        return None, PortProbe(host, port, state, time.perf_counter() - t0, exc.strerror or str(exc))
    return sock, PortProbe(host, port, "open", time.perf_counter() - t0)


def probe_port(host: str, port: int, timeout: float) -> PortProbe:
    """Connect once and close again: ``connect`` without keeping the socket."""
    sock, probe = connect(host, port, timeout)
    if sock is not None:
        sock.close()
    return probe
