"""Read the head through the dashboard's HTTP API, without importing Ray.

Endpoints and their answers are in REFERENCE §2. Every failure becomes a
``DashboardError`` whose ``kind`` tells apart what the user must do:
``unresolvable``, ``refused``, ``timeout``, ``unreachable``, ``not_ray``,
``unauthorized`` (no token), ``forbidden`` (wrong token), ``http``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from doctor import __version__
from doctor.net import probe_port
from doctor.secrets import TOKEN_PLACES, Token, scrub
from doctor.target import HeadAddress

# The dashboard limits browser-like clients to GET (REFERENCE §2): send a plain agent.
USER_AGENT = f"raydoctor/{__version__}"


class DashboardError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(scrub(message))
        self.kind = kind
        self.message = scrub(message)
        self.status = status


@dataclass(frozen=True)
class ClusterVersions:
    ray: str
    python: str | None  # None before Ray exposed cluster_metadata
    endpoint: str


class DashboardClient:
    """A small, bounded HTTP client for one dashboard."""

    def __init__(self, address: HeadAddress, *, timeout: float = 2.0, token: Token | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.token = token
        self._session: Any = None
        self._preflight_error: DashboardError | None = None
        self._preflight_done = False
        self._answered = False

    @property
    def base_url(self) -> str:
        return self.address.dashboard_url

    def _preflight(self) -> None:
        """Resolve and connect once with plain sockets before any HTTP.

        It tells unresolvable, refused and silent hosts apart within the timeout,
        and a dead target never pays for importing ``requests`` (~0.2 s).
        """
        if not self._preflight_done:
            probe = probe_port(self.address.host, self.address.dashboard_port, self.timeout)
            where = f"{self.base_url}"
            if probe.state == "unresolvable":
                self._preflight_error = DashboardError(
                    "unresolvable",
                    f"{self.address.host!r} does not resolve: {probe.detail}; check the host name or use an IP address",
                )
            elif probe.state == "refused":
                self._preflight_error = DashboardError(
                    "refused", f"{where}: connection refused (nothing listens on port {self.address.dashboard_port})"
                )
            elif probe.state == "timeout":
                self._preflight_error = DashboardError(
                    "timeout", f"{where} did not accept a connection within {self.timeout:g} s"
                )
            elif probe.state != "open":
                self._preflight_error = DashboardError("unreachable", f"{where} is unreachable: {probe.detail}")
            self._preflight_done = True
        if self._preflight_error is not None:
            raise self._preflight_error

    def _open_session(self) -> Any:
        if self._session is None:
            import requests  # imported late: `--version` and dead targets should not pay for it

            session = requests.Session()
            session.trust_env = False  # never route the user's target through a proxy from the env
            session.headers["User-Agent"] = USER_AGENT
            if self.token:
                session.headers["Authorization"] = f"Bearer {self.token.value}"
            self._session = session
        return self._session

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return the response, or raise a classified ``DashboardError``."""
        self._preflight()
        session = self._open_session()
        import requests as req

        url = self.base_url + path
        # Until the dashboard has answered once, a read waits one --timeout (a port that accepts and never
        # answers must cost what a port probe costs); after that, slower endpoints get twice as long.
        read = self.timeout * 2 if self._answered else self.timeout
        try:
            resp = session.request(method, url, timeout=(self.timeout, read), allow_redirects=False, **kwargs)
        except req.exceptions.ConnectTimeout:
            raise DashboardError(
                "timeout", f"{self.base_url} did not accept a connection within {self.timeout:g} s"
            ) from None
        except req.exceptions.ReadTimeout:
            raise DashboardError(
                "timeout", f"{self.base_url} accepted the connection but sent no answer within {read:g} s"
            ) from None
        except req.exceptions.SSLError as exc:
            raise DashboardError(
                "not_ray", f"{self.base_url}: TLS failed ({type(exc).__name__}); try http://"
            ) from None
        except req.exceptions.ConnectionError as exc:
            text = str(exc)
            if "refused" in text.lower():
                raise DashboardError(
                    "refused",
                    f"{self.base_url}: connection refused (nothing listens on port {self.address.dashboard_port})",
                ) from None
            if "RemoteDisconnected" in text or "BadStatusLine" in text or "Connection aborted" in text:
                raise DashboardError(
                    "not_ray", f"{self.base_url} closed the connection without an HTTP answer: not a Ray dashboard"
                ) from None
            raise DashboardError("unreachable", f"{self.base_url} is unreachable: {_short(text)}") from None
        except req.exceptions.RequestException as exc:
            raise DashboardError("http", f"{self.base_url}{path}: {_short(str(exc))}") from None
        self._answered = True
        if resp.status_code == 401:
            raise DashboardError(
                "unauthorized",
                f"{self.base_url} requires a Ray auth token and none was sent; raydoctor looks in {TOKEN_PLACES}",
                401,
            )
        if resp.status_code == 403:
            where = self.token.source if self.token else "nowhere"
            raise DashboardError(
                "forbidden", f"{self.base_url} rejected the auth token (from {where}): it is wrong or expired", 403
            )
        return resp

    def get_json(self, path: str) -> Any:
        resp = self.request("GET", path)
        if resp.status_code == 404:
            raise DashboardError("not_found", f"{self.base_url}{path}: 404", 404)
        if resp.status_code >= 400:
            raise DashboardError("http", f"{self.base_url}{path} answered HTTP {resp.status_code}", resp.status_code)
        try:
            return resp.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested ~1000 deep
            kind = (
                "HTML"
                if "html" in resp.headers.get("content-type", "").lower() or resp.text.lstrip().startswith("<")
                else "text that is not JSON"
            )
            raise DashboardError(
                "not_ray", f"{self.base_url}{path} answered {kind}, not Ray's JSON: this port is not a Ray dashboard"
            ) from None

    def cluster_versions(self) -> ClusterVersions:
        """Ray and Python of the head: ``cluster_metadata`` first, ``/api/version`` for older Ray."""
        try:
            body = self.get_json("/api/v0/cluster_metadata")
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, dict) and data.get("rayVersion"):
                python = data.get("pythonVersion")
                return ClusterVersions(
                    str(data["rayVersion"]), str(python) if python else None, "/api/v0/cluster_metadata"
                )
        except DashboardError as exc:
            if exc.kind not in {"not_found", "not_ray", "http"}:
                raise
        try:
            body = self.get_json("/api/version")
        except DashboardError as exc:
            if exc.status is not None and exc.status >= 500:
                raise DashboardError(
                    "server_error",
                    f"{self.base_url} answered HTTP {exc.status} (a server error) to /api/version: "
                    "the dashboard is up but failing",
                    exc.status,
                ) from None
            if exc.kind in {"not_found", "http"}:
                raise DashboardError(
                    "not_ray",
                    f"{self.base_url} answers HTTP but not as a Ray dashboard ({exc.message.split(': ')[-1]} on /api/version)",
                    exc.status,
                ) from None
            raise
        if isinstance(body, dict) and body.get("ray_version"):
            return ClusterVersions(str(body["ray_version"]), None, "/api/version")
        raise DashboardError(
            "not_ray", f"{self.base_url}/api/version answered JSON without a ray_version: not a Ray dashboard"
        )

    def healthz(self) -> str:
        resp = self.request("GET", "/api/gcs_healthz")
        text = resp.text.strip()[:200]
        if resp.status_code == 200 and text == "success":
            return "success"
        raise DashboardError("unhealthy", f"GCS health: HTTP {resp.status_code} {_short(text)}", resp.status_code)

    def auth_mode(self) -> str | None:
        """``disabled``/``token`` on Ray ≥ 2.52, None on older Ray (404)."""
        try:
            body = self.get_json("/api/authentication_mode")
        except DashboardError as exc:
            if exc.kind in {"not_found", "not_ray", "http"}:
                return None
            raise
        return str(body.get("authentication_mode")) if isinstance(body, dict) else None

    def nodes(self) -> list[dict[str, Any]]:
        body = self.get_json("/api/v0/nodes?limit=1000")
        try:
            rows = body["data"]["result"]["result"]
        except (KeyError, TypeError):
            raise DashboardError("not_ray", f"{self.base_url}/api/v0/nodes: unexpected answer shape") from None
        if not isinstance(rows, list):
            raise DashboardError("not_ray", f"{self.base_url}/api/v0/nodes: unexpected answer shape")
        return [row for row in rows if isinstance(row, dict)]

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(scrub(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
