"""Servers that are not Ray, on loopback, for the network, round-trip and GPU tests.

* ``FakeHTTP``: an HTTP server with canned answers per path (HTML, 404, JSON
  that is not Ray's, or a fake dashboard's log API).
* ``SilentPort``: accepts TCP connections and never says a word.
* ``GrpcLookalike``: answers the HTTP/2 preface with a SETTINGS frame, like a
  gRPC server, then never completes anything (a Ray Client server that hangs).
* ``closed_port()``: a port where nothing listens.
* ``RawHTTP``: hands each connection, once its request has come, to a function
  that writes whatever it likes; ``dribble`` (one byte every so often) and
  ``huge`` (a body of any size, made as it is sent) are the hostile ones.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union
from urllib.parse import urlsplit

Answer = tuple[int, str, Union[str, bytes]]  # status, content type, body
Route = Union[Answer, Callable[[str, str, bytes], Answer]]  # or fn(method, path_with_query, body)

HTML = (200, "text/html", "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>nginx</body></html>")
NOT_FOUND = (404, "text/plain", "404: Not Found")
GARBAGE_JSON = (200, "application/json", json.dumps({"status": "ok", "service": "something else"}))
BROKEN_JSON = (200, "application/json", "{not json")
UNAUTHORIZED = (401, "text/plain", "Unauthorized: Missing authentication token")
FORBIDDEN = (403, "text/plain", "Forbidden: Invalid authentication token")
PUBLIC_PATHS = (
    "/api/gcs_healthz",
    "/api/authentication_mode",
)  # answer without a token (ray/dashboard/http_server_head.py)


def json_answer(data: Any, status: int = 200) -> Answer:
    return status, "application/json", json.dumps(data)


class FakeHTTP:
    """A threaded HTTP server on 127.0.0.1 with ``routes`` keyed by path (query ignored unless given)."""

    def __init__(
        self,
        routes: dict[str, Route] | None = None,
        default: Route = NOT_FOUND,
        token: str | None = None,
        public: tuple[str, ...] = PUBLIC_PATHS,
    ) -> None:
        self.routes = dict(routes or {})
        self.default = default
        self.token = token  # like Ray's token auth: 401 without it, 403 when wrong, except on public paths
        self.public = public
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path))
                path = urlsplit(self.path).path
                route = fake.routes.get(self.path) or fake.routes.get(path) or fake.default
                auth = self.headers.get("Authorization")
                if fake.token is not None and path not in fake.public and auth != f"Bearer {fake.token}":
                    route = UNAUTHORIZED if auth is None else FORBIDDEN
                status, ctype, payload = route(self.command, self.path, body) if callable(route) else route
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_ray(ray: str = "2.49.2", python: str = "3.12.9", token: str | None = None) -> FakeHTTP:
    """A dashboard that answers what raydoctor reads (versions, health, auth mode), optionally behind a token."""
    return FakeHTTP(
        {
            "/api/v0/cluster_metadata": json_answer(
                {"result": True, "msg": "", "data": {"rayVersion": ray, "pythonVersion": python}}
            ),
            "/api/version": json_answer({"version": "4", "ray_version": ray}),
            "/api/gcs_healthz": (200, "text/plain", "success"),
            "/api/authentication_mode": json_answer({"authentication_mode": "token" if token else "disabled"}),
        },
        token=token,
    )


class SilentPort:
    """Accepts connections and keeps them open without reading or writing."""

    def __init__(self, host: str = "127.0.0.1", answer: bytes | None = None) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.conns: list[socket.socket] = []
        self.contacted = threading.Event()  # set on the first connection
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(conn)
            self.contacted.set()
            if self.answer is not None:
                try:
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def __enter__(self) -> SilentPort:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


# An empty HTTP/2 SETTINGS frame: what a gRPC server sends first.
H2_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def GrpcLookalike() -> SilentPort:  # noqa: N802 - reads like a class at the call site
    """Says SETTINGS like a gRPC server, then nothing: passes the sniff, hangs a real client."""
    return SilentPort(answer=H2_SETTINGS_FRAME)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- hostile servers

Serve = Callable[[socket.socket, bytes], None]  # fn(connection, the request's head and what came with it)


class RawHTTP:
    """A TCP server on 127.0.0.1 that reads each request's head and lets ``serve`` answer, one thread a connection."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.requests.append(head)
            self.serve(conn, head)
        except OSError:
            pass  # the client went away: what a bounded client does
        finally:
            conn.close()

    def __enter__(self) -> RawHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def http_answer(body: bytes, status: str = "200 OK", content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def dribble(answer: bytes, every_s: float = 0.9, *, headers_at_once: bool = False) -> Serve:
    """Send ``answer`` one byte every ``every_s`` seconds (after its headers at once, if asked)."""

    def serve(conn: socket.socket, request: bytes) -> None:
        rest = answer
        if headers_at_once:
            head, sep, rest = answer.partition(b"\r\n\r\n")
            conn.sendall(head + sep)
        for i in range(len(rest)):
            conn.sendall(rest[i : i + 1])
            time.sleep(every_s)

    return serve


def huge(size: int, *, content_length: bool = False, block: int = 1 << 20) -> Serve:
    """A 200 answer of ``size`` bytes of JSON-looking text, made while it is sent (never held whole)."""

    def serve(conn: socket.socket, request: bytes) -> None:
        length = f"Content-Length: {size}\r\n" if content_length else ""
        conn.sendall(f"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n{length}\r\n".encode())
        chunk = b"[" + b"0," * (block // 2 - 1) + b"0"
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            conn.sendall(piece)
            sent += len(piece)

    return serve


class RecordingDashboard:
    """A dashboard on 127.0.0.2 (loopback, but not an address the token rule sends to unasked) that
    answers what raydoctor reads of a Ray 2.49.2 head and records every Authorization header it gets."""

    def __init__(self, auth_mode: str | None = None) -> None:
        self.auth: list[str | None] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                rec.auth.append(self.headers.get("Authorization"))
                body = b"{}"
                if self.path.startswith("/api/v0/cluster_metadata"):
                    data = {"rayVersion": "2.49.2", "pythonVersion": "3.12.9"}
                    body = json.dumps({"result": True, "msg": "", "data": data}).encode()
                elif self.path.startswith("/api/version"):
                    body = json.dumps({"version": "4", "ray_version": "2.49.2"}).encode()
                elif auth_mode and self.path.startswith("/api/authentication_mode"):
                    body = json.dumps({"authentication_mode": auth_mode}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
