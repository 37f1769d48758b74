"""Read the head through the dashboard's HTTP API, without importing Ray.

The endpoints are Ray's own: ``/api/v0/cluster_metadata`` (rayVersion,
pythonVersion; ``ray/dashboard/modules/reporter/reporter_head.py::ReportHead.get_cluster_metadata``),
``/api/version`` (``ray/dashboard/modules/job/job_head.py::JobHead.get_version``),
``/api/gcs_healthz`` (``ray/dashboard/modules/healthz/healthz_head.py``), ``/api/authentication_mode``
and the 401/403 of token auth (``ray/dashboard/http_server_head.py``,
``ray/_private/authentication/http_token_authentication.py``), and the state
API's ``/api/v0/nodes`` (``ray/dashboard/modules/state/state_head.py``).

A dashboard may be anything that listens on the port, so every answer is read
as untrusted: each request has a wall-clock deadline that ``--timeout`` governs
(a server that sends one byte a second cannot hold a check), a byte cap
(``MAX_BODY``), JSON is decoded in one place (``decode_json``: nesting deeper
than any Ray answer is "not Ray", never a ``RecursionError``), and every string
is sanitised (``doctor.text.sanitize``) before it leaves this module.

Every failure becomes a ``DashboardError`` whose ``kind`` tells apart what the
user must do: ``unresolvable``, ``refused``, ``timeout``, ``unreachable``,
``too_slow``, ``too_large``, ``not_ray``, ``unauthorized`` (no token),
``forbidden`` (wrong token), ``not_found``, ``http``, ``server_error``,
``unhealthy``; its message is worded by ``doctor.tcp.describe`` where the kind
is one of its failures (a port that accepts and never answers is kind ``timeout``,
worded as ``silent``).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from doctor import __version__
from doctor.masking import mask_text as scrub
from doctor.secrets import TOKEN_PLACES, Token
from doctor.target import HeadAddress
from doctor.tcp import describe, probe_port
from doctor.text import ascii_int, sanitize

# The dashboard refuses browser-like clients anything but GET (a middleware in
# ``ray/dashboard/http_server_head.py`` looks at the User-Agent): send a plain agent.
USER_AGENT = f"raydoctor/{__version__}"
MAX_BODY = 4 * 1024 * 1024  # bytes of one answer; Ray's own answers to what raydoctor asks are kilobytes
MAX_DEPTH = 64  # JSON nesting; Ray's answers nest a handful of levels
CHUNK = 64 * 1024
DASH = "a Ray dashboard"  # what a not-Ray answer is not
GRACE_S = 0.25


class DashboardError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        message = scrub(sanitize(message))
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ClusterVersions:
    ray: str
    python: str | None  # None before Ray exposed cluster_metadata
    endpoint: str


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole within its deadline and cap; ``text`` and ``json()`` are sanitised."""

    status_code: int
    headers: Mapping[str, str]  # names in lower case
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return sanitize(self.content.decode("utf-8", errors="replace"), multiline=True)

    def json(self) -> Any:
        """The body as JSON with every string sanitised; raises ``DashboardError`` (not_ray) otherwise."""
        return decode_json(self.content, self.url, self.headers.get("content-type", ""))


def decode_json(body: bytes, where: str, content_type: str = "") -> Any:
    """The one JSON decoder for dashboard and Jobs API answers.

    Not JSON, or JSON nested deeper than ``MAX_DEPTH`` (Python's decoder raises
    ``RecursionError`` near 1000 levels): a ``DashboardError`` of kind ``not_ray``.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise DashboardError("not_ray", describe("not_ray", where, what=DASH, detail=_TOO_DEEP)) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer too long to convert
        head = body[:512].lstrip().lower()
        what = "HTML" if "html" in content_type.lower() or head.startswith(b"<") else "text that is not JSON"
        raise DashboardError(
            "not_ray", describe("not_ray", where, what=DASH, detail=f"it answered {what}, not Ray's JSON")
        ) from None
    try:
        return _clean(data, 0)
    except _TooDeep:
        raise DashboardError("not_ray", describe("not_ray", where, what=DASH, detail=_TOO_DEEP)) from None


_TOO_DEEP = f"its JSON nests deeper than {MAX_DEPTH} levels, which no Ray answer does"


class _TooDeep(Exception):
    pass


def _clean(value: Any, depth: int) -> Any:
    """``value`` with every string (keys too) sanitised; logs keep their newlines and tabs."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        return sanitize(value, multiline=True)
    if isinstance(value, dict):
        return {sanitize(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return value  # int, float, bool, None


# A version as Ray and Python spell theirs (2.49.2, 3.0.0.dev0, 2.10.0rc1, 3.12.9+): anything else is not Ray's.
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+){0,3}(?:[.+_-]?[A-Za-z0-9]+){0,4}\+?")


def version_field(value: Any, where: str, name: str) -> str:
    """A one-line version string from an answer, or ``DashboardError`` (not_ray) when it is not one."""
    text = sanitize(str(value)).strip()
    if len(text) <= 64 and _VERSION.fullmatch(text):
        return text
    shown = text if len(text) <= 40 else text[:39] + "…"
    raise DashboardError(
        "not_ray", describe("not_ray", where, what=DASH, detail=f"its {name} {shown!r} is not a version")
    )


# ---------------------------------------------------------------- the deadline of one request

_local = threading.local()


class _Deadline:
    """A wall-clock limit on one request: when it passes, the request's sockets are shut down.

    A read that is blocked (a server sending one byte just inside each read timeout)
    returns at once; the request then fails as ``too_slow``.
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.at = time.monotonic() + budget
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        # A moment after the budget: a server that says nothing at all meets its read timeout first ("silent").
        self._timer = threading.Timer(budget + GRACE_S, self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    @property
    def passed(self) -> bool:
        return self.fired or time.monotonic() >= self.at

    def __enter__(self) -> _Deadline:
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _local.deadline = None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _watch_socket(sock: Any) -> None:
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and isinstance(sock, socket.socket):
        deadline.watch(sock)


_ADAPTER: Any = None


def _adapter_class() -> Any:
    """An ``HTTPAdapter`` whose connections hand their sockets to the request's ``_Deadline``.

    urllib3 makes the socket inside ``HTTPConnection._new_conn`` (1.26 and 2.x), in the
    thread that sends the request; a reused connection is handed over when it sends.
    """
    global _ADAPTER
    if _ADAPTER is None:
        from requests.adapters import HTTPAdapter
        from urllib3.connection import HTTPConnection, HTTPSConnection
        from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

        class Watched:
            """Hands a new or reused connection's socket to the request's deadline (before the base class)."""

            def _new_conn(self) -> Any:
                sock = super()._new_conn()  # type: ignore[misc]
                _watch_socket(sock)
                return sock

            def request(self, *args: Any, **kwargs: Any) -> Any:
                _watch_socket(getattr(self, "sock", None))
                return super().request(*args, **kwargs)  # type: ignore[misc]

        class WatchedHTTP(Watched, HTTPConnection):
            pass

        class WatchedHTTPS(Watched, HTTPSConnection):
            pass

        class Pool(HTTPConnectionPool):
            ConnectionCls = WatchedHTTP

        class TLSPool(HTTPSConnectionPool):
            ConnectionCls = WatchedHTTPS

        class Adapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                super().init_poolmanager(*args, **kwargs)
                self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

        _ADAPTER = Adapter
    return _ADAPTER


# ---------------------------------------------------------------- the client


class DashboardClient:
    """A small, bounded HTTP client for one dashboard."""

    def __init__(
        self, address: HeadAddress, *, timeout: float = 2.0, token: Token | None = None, max_body: int = MAX_BODY
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.token = token
        self.max_body = max_body
        self._session: Any = None
        self._session_lock = threading.Lock()
        self._preflight_error: DashboardError | None = None
        self._preflight_done = False
        self._answered = False
        self._too_slow: DashboardError | None = None

    @property
    def base_url(self) -> str:
        return self.address.dashboard_url

    def _preflight(self) -> None:
        """Resolve and connect once with plain sockets (``doctor.tcp``) before any HTTP.

        It tells unresolvable, refused and silent hosts apart within the timeout,
        and a dead target never pays for importing ``requests`` (~0.2 s).
        """
        if not self._preflight_done:
            probe = probe_port(self.address.host, self.address.dashboard_port, self.timeout)
            if probe.state != "open":
                where = self.address.host if probe.state == "unresolvable" else self.base_url
                self._preflight_error = DashboardError(
                    probe.state,
                    describe(
                        probe.state,
                        where,
                        port=self.address.dashboard_port,
                        timeout=self.timeout,
                        detail=probe.detail,
                    ),
                )
            self._preflight_done = True
        if self._preflight_error is not None:
            raise self._preflight_error

    def _open_session(self) -> Any:
        with self._session_lock:
            if self._session is None:
                import requests  # imported late: `--version` and dead targets should not pay for it

                session = requests.Session()
                session.trust_env = False  # never route the user's target through a proxy from the env
                adapter = _adapter_class()(max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                session.headers["Accept-Encoding"] = "identity"  # a compressed answer could outgrow the cap
                if self.token:
                    session.headers["Authorization"] = f"Bearer {self.token.value}"
                self._session = session
            return self._session

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """Send one request and read its answer whole; or raise a classified ``DashboardError``.

        Until the dashboard has answered once, the whole request (connect, headers, body) has one
        ``--timeout``: a port that accepts and never answers costs what a port probe costs, and a
        dashboard that cannot answer its first request in time is judged too slow for every
        request after it. Once it has answered, slower endpoints get twice as long.
        """
        max_body = kwargs.pop("max_body", None)  # a larger cap for one request (the node list)
        self._preflight()
        if self._too_slow is not None:
            raise self._too_slow
        session = self._open_session()
        import requests as req
        import urllib3.exceptions

        url = self.base_url + path
        budget = self.timeout * 2 if self._answered else self.timeout
        first = not self._answered
        got_headers = False
        with _Deadline(budget) as deadline:
            try:
                resp = session.request(
                    method, url, timeout=(self.timeout, budget), allow_redirects=False, stream=True, **kwargs
                )
                got_headers = True
                try:
                    body = self._read_body(resp, deadline, url, max_body)
                finally:
                    resp.close()
            except DashboardError as exc:
                if exc.kind == "too_slow" and first:
                    self._too_slow = exc
                raise
            except (req.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if isinstance(exc, req.exceptions.ReadTimeout) and not deadline.fired:
                    raise DashboardError("timeout", describe("silent", self.base_url, timeout=budget)) from None
                if deadline.passed:
                    error = DashboardError("too_slow", describe("too_slow", url, timeout=budget))
                    if first:
                        self._too_slow = error
                    raise error from None
                raise self._classify(exc, url, budget, got_headers) from None
        self._answered = True
        headers = {str(k).lower(): sanitize(str(v)) for k, v in resp.headers.items()}
        answer = Answer(resp.status_code, headers, body, url)
        if answer.status_code == 401:
            raise DashboardError(
                "unauthorized",
                f"{self.base_url} requires a Ray auth token and none was sent; raydoctor looks in {TOKEN_PLACES}",
                401,
            )
        if answer.status_code == 403:
            where = self.token.source if self.token else "nowhere"
            raise DashboardError(
                "forbidden", f"{self.base_url} rejected the auth token (from {where}): it is wrong or expired", 403
            )
        return answer

    def _read_body(self, resp: Any, deadline: _Deadline, url: str, max_body: int | None = None) -> bytes:
        """The body, at most ``max_body`` bytes (decoded), before the deadline."""
        cap = self.max_body if max_body is None else max(self.max_body, max_body)
        too_large = DashboardError("too_large", describe("too_large", url, detail=f"more than {_size(cap)}"))
        length = ascii_int(resp.headers.get("Content-Length", ""), digits=30)  # '²' is no length
        if length is not None and length > cap:
            raise too_large
        data = bytearray()
        for chunk in resp.raw.stream(CHUNK, decode_content=False):
            if deadline.passed:
                raise DashboardError("too_slow", describe("too_slow", url, timeout=deadline.budget))
            data += chunk
            if len(data) > cap:
                raise too_large
        if deadline.passed:
            raise DashboardError("too_slow", describe("too_slow", url, timeout=deadline.budget))
        encoding = resp.headers.get("Content-Encoding", "").strip().lower()
        if encoding in {"", "identity"}:
            return bytes(data)
        if encoding in {"gzip", "x-gzip", "deflate"}:
            # Bounded: a few kilobytes of gzip can inflate to gigabytes.
            inflate = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib, told apart by the header
            try:
                out = inflate.decompress(bytes(data), cap + 1)
            except zlib.error:
                raise DashboardError(
                    "not_ray", describe("not_ray", url, what=DASH, detail=f"its {encoding} answer does not inflate")
                ) from None
            if len(out) > cap or inflate.unconsumed_tail:
                raise too_large
            return out
        raise DashboardError(
            "not_ray",
            describe(
                "not_ray", url, what=DASH, detail=f"it answered in an encoding raydoctor did not ask for ({encoding})"
            ),
        )

    def _classify(self, exc: Exception, url: str, budget: float, got_headers: bool) -> DashboardError:
        import requests as req

        if isinstance(exc, req.exceptions.ConnectTimeout):
            return DashboardError("timeout", describe("timeout", self.base_url, timeout=self.timeout))
        if isinstance(exc, req.exceptions.ReadTimeout):
            return DashboardError("timeout", describe("silent", self.base_url, timeout=budget))
        if got_headers:  # the body broke off (or timed out) after the headers came
            if "timed out" in str(exc).lower():
                return DashboardError("too_slow", describe("too_slow", url, timeout=budget))
            return DashboardError("http", f"{url}: the answer broke off ({_short(type(exc).__name__)})")
        if isinstance(exc, req.exceptions.SSLError):
            return DashboardError(
                "not_ray",
                describe("not_ray", self.base_url, what=DASH, detail=f"TLS failed ({type(exc).__name__}); try http://"),
            )
        if isinstance(exc, req.exceptions.ConnectionError):
            text = str(exc)
            if "refused" in text.lower():
                return DashboardError("refused", describe("refused", self.base_url, port=self.address.dashboard_port))
            if "RemoteDisconnected" in text or "BadStatusLine" in text or "Connection aborted" in text:
                return DashboardError(
                    "not_ray",
                    describe(
                        "not_ray", self.base_url, what=DASH, detail="it closed the connection without an HTTP answer"
                    ),
                )
            return DashboardError("unreachable", describe("unreachable", self.base_url, detail=_short(text)))
        return DashboardError("http", f"{url}: {_short(str(exc))}")

    def get_json(self, path: str) -> Any:
        resp = self.request("GET", path)
        if resp.status_code == 404:
            raise DashboardError("not_found", f"{self.base_url}{path}: 404", 404)
        if resp.status_code >= 400:
            raise DashboardError("http", f"{self.base_url}{path} answered HTTP {resp.status_code}", resp.status_code)
        return resp.json()

    def cluster_versions(self) -> ClusterVersions:
        """Ray and Python of the head: ``cluster_metadata`` first, ``/api/version`` for older Ray."""
        where = f"{self.base_url}/api/v0/cluster_metadata"
        try:
            body = self.get_json("/api/v0/cluster_metadata")
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, dict) and data.get("rayVersion"):
                python = data.get("pythonVersion")
                return ClusterVersions(
                    version_field(data["rayVersion"], where, "rayVersion"),
                    version_field(python, where, "pythonVersion") if python else None,
                    "/api/v0/cluster_metadata",
                )
        except DashboardError as exc:
            if exc.kind not in {"not_found", "not_ray", "http"}:
                raise
        where = f"{self.base_url}/api/version"
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
                    describe("not_ray", self.base_url, what=DASH, detail=f"HTTP {exc.status} on /api/version"),
                    exc.status,
                ) from None
            raise
        if isinstance(body, dict) and body.get("ray_version"):
            return ClusterVersions(version_field(body["ray_version"], where, "ray_version"), None, "/api/version")
        raise DashboardError("not_ray", describe("not_ray", where, what=DASH, detail="its JSON has no ray_version"))

    def healthz(self) -> str:
        resp = self.request("GET", "/api/gcs_healthz")
        text = sanitize(resp.text).strip()[:200]
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
        mode = body.get("authentication_mode") if isinstance(body, dict) else None
        return _short(sanitize(str(mode)), 40) if mode is not None else None

    def nodes(self) -> NodeList:
        """The state API's node list, asked with an explicit ``limit`` (``NODE_LIMIT``) and a larger
        byte cap (``NODE_LIST_MAX_BODY``), and told whether Ray cut it short (``NodeList.truncated``).

        ``/api/v0/nodes`` answers at most ``limit`` rows (default 100: ``ray/util/state/common.py::
        DEFAULT_LIMIT``), refuses a ``limit`` above ``RAY_MAX_LIMIT_FROM_API_SERVER`` (10,000 by default,
        ``ray/dashboard/state_api_utils.py::options_from_req`` raises, the server answers 500), and says
        what it left out in the same fields ``ray/util/state/api.py::_print_api_warning`` reads: ``total``
        against ``num_after_truncation`` (cut at the data source), ``num_filtered`` against the rows
        (cut by the limit), ``partial_failure_warning``. A head whose limit was lowered is asked again
        with the limit it names.
        """
        limit = NODE_LIMIT
        resp = self.request("GET", f"/api/v0/nodes?limit={limit}", max_body=NODE_LIST_MAX_BODY)
        lowered = _LOWER_LIMIT.search(resp.text) if resp.status_code >= 500 else None
        if lowered and 0 < int(lowered.group(1)) < limit:
            limit = int(lowered.group(1))
            resp = self.request("GET", f"/api/v0/nodes?limit={limit}", max_body=NODE_LIST_MAX_BODY)
        path = f"/api/v0/nodes?limit={limit}"
        if resp.status_code == 404:
            raise DashboardError("not_found", f"{self.base_url}{path}: 404", 404)
        if resp.status_code >= 400:
            raise DashboardError("http", f"{self.base_url}{path} answered HTTP {resp.status_code}", resp.status_code)
        return node_list(resp.json(), f"{self.base_url}/api/v0/nodes", limit)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


# Ray's own ceiling on ``limit`` (``ray/util/state/common.py::RAY_MAX_LIMIT_FROM_API_SERVER``, 10,000),
# so one request lists every node of any cluster Ray itself lists whole.
NODE_LIMIT = 10_000
# One node row is about 1 KB (resources, labels, death info): 10,000 rows do not fit MAX_BODY.
NODE_LIST_MAX_BODY = 24 * 1024 * 1024
# ``ray/dashboard/state_api_utils.py::options_from_req``: "Given limit N exceeds the supported limit M."
_LOWER_LIMIT = re.compile(r"exceeds the supported limit ([0-9]{1,9})")


class NodeList(list[dict[str, Any]]):
    """The node rows, and what the state API said it left out."""

    total: int | None = None  # nodes the cluster has, as the API counted them
    truncated: str | None = None  # why the list is not whole, in one sentence; None when it is
    warning: str | None = None  # the API's partial_failure_warning, sanitised


def node_list(body: Any, where: str, limit: int = NODE_LIMIT) -> NodeList:
    """Read ``/api/v0/nodes``'s answer (``ListApiResponse`` as ``asdict``, under ``data.result``)."""
    shape = DashboardError("not_ray", describe("not_ray", where, what=DASH, detail="its answer has another shape"))
    try:
        result = body["data"]["result"]
        rows = result["result"]
    except (KeyError, TypeError):
        raise shape from None
    if not isinstance(rows, list) or not isinstance(result, dict):
        raise shape
    out = NodeList(row for row in rows if isinstance(row, dict))

    def count(name: str) -> int | None:
        value = result.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    total, after, filtered = count("total"), count("num_after_truncation"), count("num_filtered")
    out.total = total
    reasons = []
    if total is not None and after is not None and total > after:
        reasons.append(
            f"the cluster has {total} nodes and Ray's state API read {after} of them "
            "(RAY_MAX_LIMIT_FROM_DATA_SOURCE on the head)"
        )
    if filtered is not None and filtered > len(rows):
        reasons.append(
            f"the dashboard answered {len(rows)} of {filtered} nodes (limit {limit}; "
            "RAY_MAX_LIMIT_FROM_API_SERVER on the head caps it)"
        )
    out.truncated = "; ".join(reasons) or None
    warning = result.get("partial_failure_warning")
    out.warning = _short(str(warning), 300) if warning else None
    return out


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(scrub(sanitize(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
