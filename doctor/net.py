"""Bounded name resolution and TCP probes: a dead host costs seconds, not minutes."""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PortProbe:
    """What a TCP connect to one port did."""

    host: str
    port: int
    state: str  # "open" | "refused" | "timeout" | "unreachable" | "unresolvable"
    latency_s: float
    detail: str = ""

    @property
    def open(self) -> bool:
        return self.state == "open"


class ResolveError(Exception):
    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host!r} does not resolve: {reason}")
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
    return box["addrs"]  # type: ignore[return-value]


def probe_port(host: str, port: int, timeout: float) -> PortProbe:
    """Connect once; tell refused, timed out and unreachable apart."""
    start = time.perf_counter()
    try:
        addrs = resolve(host, timeout)
    except ResolveError as exc:
        return PortProbe(host, port, "unresolvable", time.perf_counter() - start, exc.reason)
    remaining = max(0.05, timeout - (time.perf_counter() - start))
    family = socket.AF_INET6 if ":" in addrs[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(remaining)
    try:
        sock.connect((addrs[0], port))
        return PortProbe(host, port, "open", time.perf_counter() - start)
    except socket.timeout:
        return PortProbe(host, port, "timeout", time.perf_counter() - start, f"no answer within {timeout:g} s")
    except ConnectionRefusedError:
        return PortProbe(host, port, "refused", time.perf_counter() - start, "connection refused")
    except OSError as exc:
        state = "refused" if exc.errno == errno.ECONNREFUSED else "unreachable"
        return PortProbe(host, port, state, time.perf_counter() - start, exc.strerror or str(exc))
    finally:
        sock.close()
