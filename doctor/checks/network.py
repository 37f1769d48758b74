"""Can this machine reach the head? Name, ports, and the dashboard's health.

Every probe is bounded by ``--timeout`` and they all run at once, so a dead
host costs one timeout, not one per port. A TCP connect alone cannot tell a
Ray port from another service, so each open port is also asked one question
in its own protocol: the GCS and the Ray Client server speak gRPC (HTTP/2),
the dashboard and the metrics exporter speak HTTP. That tells apart refused,
timed out, unresolvable, "accepts but never answers", "answers too slowly"
and "answers, but not as Ray".

Every failure is worded once, by ``doctor.tcp.describe``, and every finding
carries a stable code: ``network.<check>.<cause>`` (``network.ports.refused``,
``network.dashboard.not_ray``, ``network.resolve.unresolvable``).
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from doctor import remedies
from doctor.context import CheckContext
from doctor.facts.ports import LearnedPorts
from doctor.head.dashboard import DashboardError
from doctor.model import Remediation, Result, Status, finding
from doctor.options import DEFAULT_METRICS_PORT
from doctor.runner import Check
from doctor.target import HeadAddress
from doctor.tcp import DEAD, ResolveError, connect, describe, label, resolve
from doctor.text import ascii_int, sanitize

# An HTTP/2 client preface and an empty SETTINGS frame: a gRPC server answers with its SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_SETTINGS = 0x04
# What each role's port should answer as, for "answers, but not as ...".
SERVICE = {
    "gcs": "Ray's GCS",
    "dashboard": "a Ray dashboard",
    "client": "a Ray Client server",
    "metrics": "Ray's metrics exporter",
}


@dataclass(frozen=True)
class PortSpec:
    role: str  # "gcs" | "dashboard" | "client" | "metrics"
    port: int
    protocol: str  # "grpc" | "http" | "metrics"
    source: str  # where the port number came from


@dataclass
class PortState:
    """One port: TCP state, then what answered."""

    spec: PortSpec
    host: str
    state: str  # open | refused | timeout | unreachable | unresolvable | silent | too_slow | not_ray
    connect_s: float
    detail: str = ""  # the particular reason: the resolver's words, what spoke instead
    speaks: str = ""  # what answered: "gRPC", "HTTP", "Prometheus metrics", ...
    timeout: float | None = None

    @property
    def ok(self) -> bool:
        return self.state == "open"

    @property
    def where(self) -> str:
        return f"{self.spec.role} {self.host}:{self.spec.port}"

    def message(self) -> str:
        """This port's state in the words every check uses (``doctor.tcp.describe``)."""
        if self.state == "open":
            return f"{self.where}: open ({self.speaks})" if self.speaks else f"{self.where}: open"
        return describe(
            self.state,
            self.where,
            port=self.spec.port,
            timeout=self.timeout,
            detail=self.detail,
            what=SERVICE.get(self.spec.role, "Ray"),
        )

    def line(self) -> str:
        lat = f", connect {self.connect_s * 1000:.1f} ms" if self.state not in DEAD else ""
        origin = "default port" if self.spec.source == "default" else f"port from {self.spec.source}"
        return f"{self.message()}{lat} [{origin}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.spec.role,
            "port": self.spec.port,
            "host": self.host,
            "state": self.state,
            "connect_ms": round(self.connect_s * 1000, 2),
            "speaks": self.speaks,
            "detail": self.detail,
            "message": self.message(),
            "source": self.spec.source,
        }


# ---------------------------------------------------------------- probes


def _read_some(sock: socket.socket, deadline: float, want: int, enough: Callable[[bytes], bool]) -> tuple[bytes, str]:
    """Up to ``want`` bytes before ``deadline``, stopping once ``enough``.

    Returns the bytes and why reading stopped: ``enough``, ``closed``, ``deadline`` or ``error``.
    """
    data = b""
    while len(data) < want:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return data, "deadline"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(want - len(data))
        except socket.timeout:
            return data, "deadline"
        except OSError:
            return data, "error"
        if not chunk:
            return data, "closed"
        data += chunk
        if enough(data):
            return data, "enough"
    return data, "enough"


def protocol_known(data: bytes) -> bool:
    return len(data) >= 9 or data.startswith(b"HTTP/")


def metrics_known(data: bytes) -> bool:
    """Enough to judge a metrics answer: its status line and, for a 200, the first ``# HELP``/``# TYPE``."""
    if not data.startswith(b"HTTP/"[: len(data)]):
        return True  # not HTTP at all
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    if b" 200" not in head.split(b"\r\n", 1)[0]:
        return True
    return b"# HELP" in body or b"# TYPE" in body or len(body) >= 2048


def identify(data: bytes) -> str:
    if len(data) >= 9 and data[3] == H2_SETTINGS:
        return "gRPC"
    if data.startswith(b"HTTP/"):
        return "HTTP"
    if data.lstrip().startswith(b"<"):
        return "HTML without HTTP"
    return "an unknown protocol"


def probe(spec: PortSpec, host: str, timeout: float) -> PortState:
    """Connect (``doctor.tcp.connect``), then ask one question in the port's protocol, all within ``timeout``."""
    start = time.perf_counter()
    sock, tcp = connect(host, spec.port, timeout)
    took = tcp.latency_s
    if sock is None:
        return PortState(spec, host, tcp.state, took, tcp.detail, timeout=timeout)
    deadline = start + timeout
    try:
        if spec.protocol == "grpc":
            sock.sendall(H2_PREFACE)
        else:
            path = "/metrics" if spec.protocol == "metrics" else "/"
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: raydoctor\r\n\r\n".encode())
        if spec.protocol == "metrics":
            data, why = _read_some(sock, deadline, 8192, metrics_known)
        else:
            data, why = _read_some(sock, deadline, 64, protocol_known)
    except OSError as exc:
        return PortState(spec, host, "not_ray", took, f"it reset the connection ({exc.strerror or exc})")
    finally:
        sock.close()
    if not data and why == "deadline":
        return PortState(spec, host, "silent", took, timeout=timeout)
    if not data:
        return PortState(spec, host, "not_ray", took, "it closed the connection without answering")
    if why == "deadline":  # it began to answer, but not enough to tell what it is within the timeout
        return PortState(spec, host, "too_slow", took, f"{len(data)} bytes", timeout=timeout)
    speaks = identify(data)
    if spec.protocol == "grpc":
        if speaks == "gRPC":
            return PortState(spec, host, "open", took, speaks="gRPC")
        return PortState(spec, host, "not_ray", took, f"it speaks {speaks}, not gRPC", speaks)
    if speaks != "HTTP":
        return PortState(spec, host, "not_ray", took, f"it speaks {speaks}, not HTTP", speaks)
    if spec.protocol == "metrics":
        body = data.split(b"\r\n\r\n", 1)[-1]
        if b"# HELP" in body or b"# TYPE" in body:
            return PortState(spec, host, "open", took, speaks="Prometheus metrics")
        status_line = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        status_line = sanitize(status_line)[:80]
        return PortState(spec, host, "not_ray", took, f"HTTP but not Prometheus metrics ({status_line})", "HTTP")
    return PortState(spec, host, "open", took, speaks="HTTP")


def probe_all(specs: list[PortSpec], host: str, timeout: float) -> list[PortState]:
    """Probe every port at once; each is bounded by ``timeout``, so the lot is too."""
    states: list[PortState | None] = [None] * len(specs)

    def work(i: int) -> None:
        states[i] = probe(specs[i], host, timeout)

    threads = [
        threading.Thread(target=work, args=(i,), daemon=True, name=f"probe-{s.role}") for i, s in enumerate(specs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 1.0)
    return [s or PortState(specs[i], host, "timeout", timeout, timeout=timeout) for i, s in enumerate(states)]


# ---------------------------------------------------------------- which ports


def _metrics_port(ctx: CheckContext) -> PortSpec | None:
    """The metrics port: from the compose file's flag and publication, else as the live head reports it."""
    compose = ctx.target.compose
    if compose is not None:
        flag = compose.flag(compose.head, "--metrics-export-port")
        container = ascii_int(flag)
        if container is None:
            return None
        pub = compose.published(container)
        if pub and pub.host_port:
            return PortSpec(
                "metrics",
                pub.host_port,
                "metrics",
                f"{compose.path.name}: --metrics-export-port={container}, published",
            )
        if compose.head.network_mode == "host":
            return PortSpec(
                "metrics", container, "metrics", f"{compose.path.name}: --metrics-export-port (host network)"
            )
        return None
    return None


def _reported_metrics_port(ctx: CheckContext) -> PortSpec | None:
    """Ask the live head which port its metrics exporter uses (``/nodes?view=summary``)."""
    dashboard = ctx.dashboard
    if dashboard is None:
        return None
    try:
        body = dashboard.get_json("/nodes?view=summary")
        rows = body["data"]["summary"]
    except (DashboardError, KeyError, TypeError):
        return None
    for row in rows if isinstance(rows, list) else []:
        raylet = row.get("raylet") if isinstance(row, dict) else None
        port = raylet.get("metricsExportPort") if isinstance(raylet, dict) and raylet.get("isHeadNode") else None
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            return PortSpec("metrics", port, "metrics", "the head's own report (/nodes?view=summary)")
    return None


def port_specs(ctx: CheckContext) -> list[PortSpec]:
    address = _address(ctx)
    src = ctx.target.address_from or "the target"

    def origin(flag: str, value: int | None) -> str:
        if value is not None:
            return flag
        return src if ctx.target.kind == "compose" else "default"

    specs = [
        PortSpec("gcs", address.gcs_port, "grpc", origin("--gcs-port", ctx.options.gcs_port)),
        PortSpec("dashboard", address.dashboard_port, "http", src),
        PortSpec(
            "client",
            address.client_port,
            "grpc",
            src if (address.given or "").startswith("ray://") else origin("--client-port", ctx.options.client_port),
        ),
    ]
    metrics = _metrics_port(ctx)
    if metrics is not None:
        specs.append(metrics)
    return specs


def with_learned(specs: list[PortSpec], learned: LearnedPorts | None) -> list[PortSpec]:
    """The live head's own ports (``doctor.facts.ports``) in place of those raydoctor only guessed."""
    if learned is None:
        return specs
    out = list(specs)
    for i, spec in enumerate(out):
        port = {"gcs": learned.gcs, "client": learned.client}.get(spec.role)
        if spec.source == "default" and port:
            out[i] = PortSpec(spec.role, port, spec.protocol, learned.source)
    return out


def _address(ctx: CheckContext) -> HeadAddress:
    address = ctx.target.address
    assert address is not None, "network checks are registered only for targets with an address"
    return address


def _compose_not_running(ctx: CheckContext, states: list[PortState]) -> bool:
    """A compose target whose cluster is down: every port refused on loopback."""
    if ctx.target.kind != "compose" or ctx.target.address is None:
        return False
    try:
        loopback = ipaddress.ip_address(_address(ctx).host).is_loopback
    except ValueError:
        loopback = _address(ctx).host == "localhost"
    return loopback and all(s.state == "refused" for s in states)


# How to start a compose cluster is said once, by head.source (doctor.remedies.start_compose):
# the network findings of the same stopped cluster point there instead of repeating it.
START_SEE_HEAD = Remediation("Start the cluster: the head finding (head.source) says how on this machine.")


# ---------------------------------------------------------------- checks


def check_resolve(ctx: CheckContext) -> Result:
    """Name resolution alone: a typo in the host is the cheapest thing to rule out."""
    address = _address(ctx)
    start = time.perf_counter()
    try:
        ipaddress.ip_address(address.host)
        return finding(
            Status.OK,
            f"{address.host} is an IP address (nothing to resolve)",
            code="network.resolve.ip_address",
            data={"host": address.host, "addresses": [address.host]},
        )
    except ValueError:
        pass
    try:
        addrs = resolve(address.host, ctx.options.timeout)
    except ResolveError as exc:
        commands = (shlex.join(["getent", "hosts", address.host]),) if shutil.which("getent") else ()
        return finding(
            Status.FAIL,
            describe("unresolvable", address.host, detail=exc.reason),
            code="network.resolve.unresolvable",
            details=[f"from {ctx.target.address_from or 'the target'}: {address.given or address.host}"],
            fix=Remediation("Fix the host name, add it to /etc/hosts, or use the head's IP address.", commands),
            data={"host": address.host, "reason": exc.reason},
        )
    took = time.perf_counter() - start
    return finding(
        Status.OK,
        f"{address.host} → {', '.join(addrs[:4])}",
        code="network.resolve.ok",
        details=[f"resolved in {took * 1000:.1f} ms"],
        data={"host": address.host, "addresses": addrs, "resolve_ms": round(took * 1000, 2)},
    )


_PORT_FIX = {
    "gcs": "the GCS port (`ray start --head --port`, default 6379)",
    "dashboard": "the dashboard port (`--dashboard-port`, default 8265; `--dashboard-host=0.0.0.0` inside a container)",
    "client": "the Ray Client server port (`--ray-client-server-port`, default 10001; needs ray[client] on the head)",
    "metrics": "the metrics export port (`--metrics-export-port`)",
}


# Every port the mode needs answered; some it does not need did not (an ok finding, never a warning).
PORTS_UNNEEDED_CLOSED = "network.ports.unneeded_closed"


def check_ports(ctx: CheckContext) -> Result:
    """TCP to every port the target names, at once, each asked one question in its protocol."""
    address = _address(ctx)
    timeout = ctx.options.timeout
    # The head's own ports are learned from its dashboard while the given and guessed ones are probed:
    # a silent dashboard costs one --timeout, not one before the probes and one more for them.
    learned: list[LearnedPorts | None] = [None]
    learner = threading.Thread(target=lambda: learned.__setitem__(0, ctx.learned_ports()), daemon=True)
    learner.start()
    given = port_specs(ctx)
    specs, unused = _ports_for_mode(ctx, given)
    reported: list[PortSpec | None] = [None]
    extra = None
    if not unused and not any(s.role == "metrics" for s in specs) and ctx.target.compose is None:
        # The live head knows its metrics port; ask it while the other ports are probed.
        extra = threading.Thread(target=lambda: reported.__setitem__(0, _reported_metrics_port(ctx)), daemon=True)
        extra.start()
    states = probe_all(specs, address.host, timeout)
    learner.join(timeout * 3 + 1.0)
    final = with_learned(given, learned[0])
    if final != given:  # probe the learned ports too, in place of the guesses they replace
        specs, unused = _ports_for_mode(ctx, final)
        known = {s.spec: s for s in states}
        fresh = iter(probe_all([spec for spec in specs if spec not in known], address.host, timeout))
        states = [known[spec] if spec in known else next(fresh) for spec in specs]
    dashboard_up = any(s.spec.role == "dashboard" and s.ok for s in states)
    if extra is not None and dashboard_up:
        extra.join(timeout * 2)
        if reported[0] is not None:
            states += probe_all([reported[0]], address.host, timeout)
    data: dict[str, Any] = {"ports": [s.to_dict() for s in states], "timeout_s": timeout}
    details = [s.line() for s in states]
    if unused:
        data["not_probed"] = [{"role": s.role, "port": s.port, "source": s.source} for s in unused]
        details.append(_unused_line(ctx, states, unused))
    elif not any(s.spec.role == "metrics" for s in states):
        details.append(
            f"metrics: not probed (no --metrics-export-port named; the tutorial uses {DEFAULT_METRICS_PORT})"
        )
    guessed = _unused_guesses(ctx, states, dashboard_up)
    if guessed:
        # The live dashboard answered for the cluster; a default this mode never uses is not the cluster's port.
        details += [
            f"{s.spec.role}: {s.spec.port} is only raydoctor's default and {ctx.options.mode} mode does not use it "
            f"({_NOT_NEEDED[s.spec.role]}); not judged (name it with --{s.spec.role}-port to check it)"
            for s in guessed
        ]
        data["not_judged"] = [s.spec.role for s in guessed]
    judged_states = [s for s in states if s not in guessed]
    summary = ", ".join(f"{s.spec.role} {s.spec.port} {_word(s)}" for s in judged_states)
    bad = [s for s in judged_states if not s.ok]
    if not bad:
        return finding(Status.OK, summary, code="network.ports.ok", details=details, data=data)
    if _compose_not_running(ctx, states):
        return finding(
            Status.WARN,
            f"the compose cluster is not running ({summary})",
            code="network.ports.compose_not_running",
            details=details,
            fix=START_SEE_HEAD,
            data=data,
        )
    # What the connection mode needs: ray:// needs the client port, a driver or worker the GCS;
    # raydoctor, the Jobs API and the dashboard UI need the dashboard. The rest are only noted.
    needed = needed_roles(ctx.options.mode)
    if _head_known_by_roundtrip(ctx):
        needed.discard("dashboard")  # Ray Client works without it; network.dashboard says how to name it
    optional = [s for s in bad if s.spec.role not in needed]
    details += [f"{s.spec.role}: not needed in {ctx.options.mode} mode ({_NOT_NEEDED[s.spec.role]})" for s in optional]
    if len(optional) == len(bad):
        # Every port this mode needs answered: a closed port it never uses is no warning (issue 18: the
        # metrics port that Ray 2.9-2.44 heads report in /nodes?view=summary is refused on a healthy head).
        return finding(
            Status.OK,
            ", ".join(
                f"{s.spec.role} {s.spec.port} {_word(s)}" + (" (not needed)" if s in optional else "")
                for s in judged_states
            ),
            code=PORTS_UNNEEDED_CLOSED,
            details=details,
            data={**data, "needed": sorted(needed), "not_needed": [s.spec.role for s in optional]},
        )
    # The cause of what matters: the needed ports'.
    causes = {s.state for s in bad if s.spec.role in needed}
    cause = causes.pop() if len(causes) == 1 else "mixed"
    return finding(
        Status.FAIL,
        summary,
        code=f"network.ports.{cause}",
        details=details,
        fix=_ports_fix(ctx, bad),
        data={**data, "needed": sorted(needed)},
    )


def _ports_for_mode(ctx: CheckContext, specs: list[PortSpec]) -> tuple[list[PortSpec], list[PortSpec]]:
    """The ports to probe and those left alone: ``--mode jobs`` probes only what the Jobs API uses.

    ``JobSubmissionClient`` (``ray/dashboard/modules/job/sdk.py``, through
    ``ray/dashboard/modules/dashboard_sdk.py::SubmissionClient``) speaks HTTP to the dashboard alone;
    the GCS and the Ray Client server are the head's business, never the submitter's.
    """
    if ctx.options.mode != "jobs":
        return specs, []
    needed = needed_roles("jobs")
    return [s for s in specs if s.role in needed], [s for s in specs if s.role not in needed]


def _unused_line(ctx: CheckContext, states: list[PortState], unused: list[PortSpec]) -> str:
    judged = ", ".join(f"{s.spec.role} {s.spec.port}" for s in states)
    skipped = [f"{s.role} {s.port}" for s in unused] + ([] if any(s.role == "metrics" for s in unused) else ["metrics"])
    return (
        f"judged in {ctx.options.mode} mode: {judged} (the Jobs API is HTTP on the dashboard port); "
        f"not probed: {', '.join(skipped)} (a job submitter never connects to them)"
    )


_NOT_NEEDED = {
    "gcs": "only drivers and workers that join the cluster connect to the GCS",
    "client": "only Ray Client (ray://) uses it",
    "metrics": "Prometheus scrapes it; a client never does",
    "dashboard": "Ray Client answered without it; raydoctor guessed its port",
}


def _unused_guesses(ctx: CheckContext, states: list[PortState], dashboard_up: bool) -> list[PortState]:
    """Ports that failed but are only raydoctor's defaults, for roles this mode never uses, on a head whose
    dashboard answered as Ray: a healthy cluster on other ports must not be warned about them.

    The dashboard does not report the GCS or Ray Client port (Ray 2.49: ``/api/v0/cluster_metadata`` holds
    versions only, ``/nodes?view=summary`` the raylet's ports and ``metricsExportPort``); so a guess is judged
    only when the mode needs that role.
    """
    if not dashboard_up:
        return []
    needed = needed_roles(ctx.options.mode)
    candidates = [s for s in states if not s.ok and s.spec.source == "default" and s.spec.role not in needed]
    if not candidates:
        return []
    try:
        live = ctx.head().live
    except Exception:
        return []
    return candidates if live else []


def _head_known_by_roundtrip(ctx: CheckContext) -> bool:
    """Only ray:// was given and the head's facts came from the round trip (``HeadFacts.from_roundtrip``)."""
    address = ctx.target.address
    if address is None or not (address.given or "").strip().lower().startswith("ray://"):
        return False  # never wait for the round trip otherwise
    try:
        return bool(ctx.head().from_roundtrip)
    except Exception:
        return False


def needed_roles(mode: str) -> set[str]:
    if mode == "jobs":  # the Jobs API is HTTP on the dashboard port only (ray/dashboard/modules/job/sdk.py)
        return {"dashboard"}
    return {"dashboard", "client"} if mode == "client" else {"dashboard", "gcs"}


def _word(state: PortState) -> str:
    if state.state == "open":
        return f"open ({state.connect_s * 1000:.1f} ms)"
    return label(state.state)


def _dashboard_died_inside(ctx: CheckContext) -> str | None:
    """The head container's name where the dashboard died inside it (it runs), else None."""
    view = inside_view(ctx)
    return view.head.name if view is not None and view.dashboard_died else None


def _ports_fix(ctx: CheckContext, bad: list[PortState]) -> Remediation:
    kinds = {s.state for s in bad}
    roles = ", ".join(_PORT_FIX[s.spec.role] for s in bad)
    host = ctx.target.address.host if ctx.target.address else "HEAD"
    dead = [s for s in bad if s.state in DEAD and s.state != "unresolvable"]
    commands: tuple[str, ...] = ()
    if dead and shutil.which("nc"):  # suggested only where it runs
        commands = tuple(shlex.join(["nc", "-vz", "-w", "2", host, str(s.spec.port)]) for s in dead)
    if kinds <= {"refused"}:
        text = f"Nothing listens on {roles}: start the head, or point raydoctor at the ports it really uses (--gcs-port, --client-port)."
    elif kinds <= {"timeout", "unreachable"}:
        text = f"Packets to {roles} are dropped or cannot be routed: check that the host is up, the firewall/security group, and the VPN."
    elif kinds <= {"unresolvable"}:
        text = "The host name does not resolve: fix it or use the head's IP address."
    elif kinds <= {"silent", "not_ray", "too_slow"} and _dashboard_died_inside(ctx) is not None:
        text = (
            f"Docker's port proxy holds {roles} but nothing listens inside {_dashboard_died_inside(ctx)}: "
            "the dashboard died there (network.dashboard quotes its log); its agent's ports go with it."
        )
    elif kinds <= {"silent", "not_ray", "too_slow"}:
        text = f"Another service, or a proxy that does not forward, holds {roles}: point raydoctor at the head's real ports."
    else:
        text = f"Fix the reachability of {roles}: start the head, open the firewall, or correct the ports."
    return Remediation(text, commands)


def check_dashboard(ctx: CheckContext) -> Result:
    """The dashboard's own health endpoint, and its auth mode: the Jobs API and deep checks need it."""
    dashboard = ctx.dashboard
    address = _address(ctx)
    assert dashboard is not None
    url = address.dashboard_url
    spec = PortSpec("dashboard", address.dashboard_port, "http", ctx.target.address_from or "defaults")
    # One bounded probe first: a port that never answers must cost one timeout, not the HTTP client's two.
    pre = probe(spec, address.host, ctx.options.timeout)
    if pre.state in DEAD | {"silent", "too_slow"}:
        where = address.host if pre.state == "unresolvable" else url
        message = describe(
            pre.state, where, port=address.dashboard_port, timeout=ctx.options.timeout, detail=pre.detail
        )
        return _dashboard_dead(ctx, pre.state, message)
    start = time.perf_counter()
    try:
        health = dashboard.healthz()
    except DashboardError as exc:
        return _dashboard_error(ctx, exc)
    latency = time.perf_counter() - start
    try:
        mode = dashboard.auth_mode()
    except DashboardError:
        mode = None
    auth = f"auth mode {mode}" if mode else "auth mode not reported (Ray < 2.52: no token authentication)"
    details = [f"GET /api/gcs_healthz → {health} in {latency * 1000:.1f} ms", auth]
    data = {"healthz": health, "auth_mode": mode, "healthz_ms": round(latency * 1000, 2)}
    if mode == "token" and ctx.token is None:
        return finding(
            Status.FAIL,
            f"{url} is healthy but requires a token (auth mode token) and none was found",
            code="network.dashboard.token_missing",
            details=details,
            fix=Remediation(
                "Set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token) to the cluster's token.", ()
            ),
            data=data,
        )
    return finding(
        Status.OK,
        f"{url} healthy (GCS {health}), {auth}",
        code="network.dashboard.ok",
        details=details,
        data=data,
    )


_DEAD_FIX = {
    "refused": Remediation(
        "Start the head, or pass the dashboard port it really uses (--address HOST:PORT); "
        "on the head, `ray status` tells whether Ray runs."
    ),
    "timeout": Remediation("The host drops the dashboard port: check that it is up, the firewall, and the VPN."),
    "unreachable": Remediation("There is no route to the head: check the network, VPN and the address."),
    "unresolvable": Remediation("Fix the host name or use the head's IP address."),
    "silent": Remediation(
        "Something accepts connections on the dashboard port but never answers: a stuck dashboard or a "
        "proxy that does not forward; restart the head or point --address at the real dashboard."
    ),
    "too_slow": Remediation(
        "The dashboard port answers, but too slowly to be read within --timeout: a dashboard under heavy load, "
        "a slow link, or another service; raise --timeout, or point --address at the real dashboard."
    ),
    "too_large": Remediation(
        "The dashboard port sends far more than a Ray dashboard answers: another service holds it; "
        "point --address at the Ray dashboard port (default 8265)."
    ),
}


def _dashboard_elsewhere(ctx: CheckContext, kind: str, message: str) -> Result | None:
    """The user named only the Ray Client address and the round trip answered: a dashboard that is not
    where it was guessed is a warning that says how to name it, not a failure of a connection that works."""
    try:
        facts = ctx.head()
    except Exception:
        return None
    if not facts.from_roundtrip:
        return None
    host = ctx.target.address.host_for_url if ctx.target.address else "HEAD"
    return finding(
        Status.WARN,
        f"{message}; Ray Client at {facts.from_roundtrip} works, and raydoctor guessed the dashboard's port",
        code="network.dashboard.not_where_guessed",
        fix=Remediation(
            "Name the dashboard: --address HOST:DASHBOARD_PORT (`--dashboard-port` on `ray start --head`, default 8265).",
            (remedies.raydoctor_check(f"{host}:8265", ctx.environ),),
        ),
        data={"kind": kind, "from_roundtrip": facts.from_roundtrip},
    )


def inside_view(ctx: CheckContext) -> Any:
    """The compose cluster read from inside its containers (``doctor.head.containers.InsideView``), or None:
    only for a compose target on loopback (``TargetFacts.compose_on_this_engine``)."""
    try:
        return ctx.inside()
    except Exception:
        return None


def _inside_dashboard(ctx: CheckContext, message: str) -> Result | None:
    """A dashboard that died in a running head container, or a head container that is not running: said
    from the container's state and the component's own log, not guessed from the published port."""
    view = inside_view(ctx)
    if view is None or view.head is None:
        return None
    head = view.head
    if view.dashboard_died:
        log = view.dashboard_err
        return finding(
            Status.FAIL,
            f"the dashboard died inside {head.name}, which runs ({head.status}): {log.error}",
            code="network.dashboard.died_in_container",
            details=[
                message,
                "Docker's port proxy accepts on the published port and closes it: nothing listens inside",
                f"{log.source}:",
                *log.quoted(),
            ],
            fix=Remediation(
                f"Fix what the dashboard's log says (the image, usually), then restart the head: {head.name}'s GCS "
                "and Ray Client server run without the dashboard, but the Jobs API and raydoctor's facts need it.",
                (log.source,),
            ),
            data={"kind": "died_in_container", "container": head.name, "error": log.error},
        )
    if not head.running:
        log = view.head_log
        cause = f": {log.error}" if log is not None and log.error else ""
        return finding(
            Status.FAIL,
            f"the head container {head.name} is not running ({head.status}){cause}",
            code="network.dashboard.head_exited",
            details=[message, *([f"{log.source}:", *log.quoted()] if log is not None else [])],
            fix=START_SEE_HEAD,
            data={"kind": "head_exited", "container": head.name, "state": head.state},
        )
    return None


def _dashboard_dead(ctx: CheckContext, kind: str, message: str) -> Result:
    elsewhere = _dashboard_elsewhere(ctx, kind, message)
    if elsewhere is not None:
        return elsewhere
    inside = _inside_dashboard(ctx, message)
    if inside is not None:
        return inside
    if kind == "refused" and ctx.target.compose_on_this_engine:
        return finding(
            Status.WARN,
            f"the compose cluster is not running: {message}",
            code="network.dashboard.compose_not_running",
            fix=START_SEE_HEAD,
            data={"kind": kind},
        )
    cause = kind if kind in _DEAD_FIX else "unreachable"
    return finding(
        Status.FAIL,
        message,
        code=f"network.dashboard.{cause}",
        fix=_DEAD_FIX[cause],
        data={"kind": kind},
    )


def _dashboard_error(ctx: CheckContext, exc: DashboardError) -> Result:
    kind = exc.kind
    if kind == "unhealthy":
        facts = ctx.head()
        if facts.live_error_kind == "not_ray" and facts.live_error:
            return _not_ray(ctx, facts.live_error)
        if exc.status in {404, 405} and not facts.live:
            url = _address(ctx).dashboard_url
            return _not_ray(ctx, describe("not_ray", url, detail=exc.message, what=SERVICE["dashboard"]))
        return finding(
            Status.FAIL,
            f"{_address(ctx).dashboard_url} answers but the GCS is unhealthy ({exc.message})",
            code="network.dashboard.unhealthy",
            fix=Remediation(
                "The head's GCS is down or overloaded: look at the head's gcs_server.err "
                "(/tmp/ray/session_latest/logs on the head) and restart the head."
            ),
            data={"kind": kind, "status": exc.status},
        )
    if kind == "not_ray":
        return _not_ray(ctx, exc.message)
    if kind in {"unauthorized", "forbidden"}:
        return finding(
            Status.FAIL,
            exc.message,
            code=f"network.dashboard.{kind}",
            fix=Remediation("Set RAY_AUTH_TOKEN to the cluster's current token.", ()),
            data={"kind": kind},
        )
    return _dashboard_dead(ctx, kind, exc.message)


def _not_ray(ctx: CheckContext, message: str) -> Result:
    """``message`` is ``describe("not_ray", ...)``'s sentence, from the dashboard client or the probe."""
    inside = _inside_dashboard(ctx, message)
    if inside is not None:
        return inside
    address = _address(ctx)
    return finding(
        Status.FAIL,
        message,
        code="network.dashboard.not_ray",
        fix=Remediation(
            "Point --address at the Ray dashboard port (default 8265); another service holds this one.",
            (remedies.raydoctor_check(f"{address.host_for_url}:8265", ctx.environ),),
        ),
        data={"kind": "not_ray"},
    )


def checks_for(ctx: CheckContext) -> list[Check]:
    if ctx.target.address is None:
        return []
    # Each is bounded by --timeout per connection; the runner's limit is a safety net.
    limit = ctx.options.timeout * 4 + 5
    if (ctx.target.address.given or "").strip().lower().startswith("ray://"):
        limit += 40  # ports and dashboard may wait for head facts from the round trip (doctor.facts.roundtrip)
    return [
        Check("network.resolve", "network", "Head's host name resolves", check_resolve, timeout=limit),
        Check("network.ports", "network", "Head's ports answer", check_ports, timeout=limit),
        Check("network.dashboard", "network", "Dashboard healthy", check_dashboard, timeout=limit),
    ]
