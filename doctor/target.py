"""Parse ``--address`` / ``RAY_ADDRESS`` into the head's host and ports.

Accepted forms (the port meaning follows the scheme):

* ``host`` → dashboard on 8265
* ``host:port`` → the dashboard port, unless it equals the GCS port
  (``RAY_ADDRESS=host:6379`` is how Ray names a GCS address)
* ``http(s)://host:port`` → the dashboard
* ``ray://host:port`` → the Ray Client port; the dashboard is then 8265 on that host
* IPv6 literals in brackets: ``[::1]:8265``
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from doctor.errors import UsageError
from doctor.options import DEFAULT_CLIENT_PORT, DEFAULT_DASHBOARD_PORT, DEFAULT_GCS_PORT
from doctor.origin import NAMED_BY_USER, Origin

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


@dataclass(frozen=True)
class HeadAddress:
    """The head's host and the ports raydoctor talks to."""

    host: str
    dashboard_port: int = DEFAULT_DASHBOARD_PORT
    client_port: int = DEFAULT_CLIENT_PORT
    gcs_port: int = DEFAULT_GCS_PORT
    scheme: str = "http"  # of the dashboard
    given: str = ""  # what the user typed, for messages

    @property
    def host_for_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def dashboard_url(self) -> str:
        return f"{self.scheme}://{self.host_for_url}:{self.dashboard_port}"

    @property
    def client_url(self) -> str:
        return f"ray://{self.host_for_url}:{self.client_port}"

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "dashboard": self.dashboard_url,
            "client": self.client_url,
            "gcs_port": self.gcs_port,
        }


def _port(text: str, given: str) -> int:
    # ASCII digits only: '²'.isdigit() is true and int('²') raises; int('٣') is 3, not a port anyone typed.
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not 0 < int(text) < 65536:
        raise UsageError(f"address {given!r}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def _check_host(host: str, given: str) -> str:
    if not host:
        raise UsageError(f"address {given!r} has no host name", hint="e.g. --address 127.0.0.1:8265")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise UsageError(f"address {given!r}: {host!r} is not a valid host name or IP address")
    return host


def parse_address(
    text: str,
    *,
    client_port: int | None = None,
    gcs_port: int | None = None,
) -> HeadAddress:
    """Parse what the user typed; raise ``UsageError`` with a one-line reason."""
    given = text
    text = text.strip()
    if not text:
        raise UsageError("empty address", hint="e.g. --address 127.0.0.1:8265")
    if text.lower() in {"auto", "local"}:
        raise UsageError(
            f"address {given!r} means 'a cluster on this machine' to Ray",
            hint="name the dashboard instead, e.g. --address 127.0.0.1:8265",
        )
    gcs = gcs_port or DEFAULT_GCS_PORT
    scheme = "http"
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in {"http", "https", "ray"}:
            raise UsageError(f"address {given!r}: unknown scheme {scheme!r}", hint="use http://, https:// or ray://")
        try:
            parts = urlsplit(text)
            host, port = parts.hostname or "", parts.port
        except ValueError as exc:
            raise UsageError(f"address {given!r} does not parse: {exc}") from None
        if parts.path not in {"", "/"}:
            raise UsageError(f"address {given!r}: a path is not expected", hint="give only scheme://host:port")
        host = _check_host(host, given)
        if scheme == "ray":
            return HeadAddress(
                host, DEFAULT_DASHBOARD_PORT, port or client_port or DEFAULT_CLIENT_PORT, gcs, "http", given
            )
        return HeadAddress(host, port or DEFAULT_DASHBOARD_PORT, client_port or DEFAULT_CLIENT_PORT, gcs, scheme, given)

    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"address {given!r}: unclosed '[' in an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"address {given!r} does not parse", hint="e.g. [::1]:8265")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    host = _check_host(host, given)
    port = _port(port_text, given) if port_text else DEFAULT_DASHBOARD_PORT
    if port_text and port == gcs:
        # RAY_ADDRESS=host:6379 names the GCS; the dashboard is then on its default port.
        port = DEFAULT_DASHBOARD_PORT
    return HeadAddress(host, port, client_port or DEFAULT_CLIENT_PORT, gcs, scheme, given)


# Where Docker publishes a port by default, and what a user means by "this machine": a head reached here
# gets the token even when the address came from a compose file (the default "ports: - 8265:8265").
DEFAULT_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def named_by_user(origin: Origin | None) -> bool:
    """A flag, ``RAY_ADDRESS`` or a trusted settings file's ``address``: where the user names the target."""
    return origin in NAMED_BY_USER


def is_loopback(host: str) -> bool:
    """Any loopback address (127.0.0.0/8, ::1) or ``localhost``: the head answers on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_withheld(
    address: HeadAddress | None, origin: Origin | None, token_source: str, where: str | None = None
) -> str | None:
    """Why the auth token must not go to ``address``, or None when it may.

    Decided on ``origin``, a type, never on a display string: the token goes only to a target the
    user named (a flag, ``RAY_ADDRESS``, a settings file the user trusts) or to the loopback address
    Docker publishes on by default; a compose file can publish its dashboard on any ``host_ip``, and a
    cloned repository's compose file must not pick where the token goes. ``where`` names the origin in
    the message.
    """
    if address is None or named_by_user(origin) or address.host.lower() in DEFAULT_LOOPBACK:
        return None
    said = where or (origin.value if origin is not None else "the target")
    return (
        f"raydoctor has one (from {token_source}) but did not send it to {address.host}: that address comes "
        f"from {said} ({address.given or address.dashboard_url}), not from --address, RAY_ADDRESS or a "
        f"settings file you trust; "
        f"to send it, name the target yourself: --address {address.host_for_url}:{address.dashboard_port}"
    )
