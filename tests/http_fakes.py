"""Servers that are not Ray, for bad-input tests: HTML, 404s, garbage JSON, auth, silence."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

Route = Callable[[BaseHTTPRequestHandler], tuple[int, str, str]]


def _handler(route: Route) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            status, ctype, body = route(self)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def http_server(route: Route) -> Iterator[int]:
    """Serve ``route`` on a free loopback port; yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(route))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def html(_: BaseHTTPRequestHandler) -> tuple[int, str, str]:
    return 200, "text/html", "<!doctype html><html><body>Grafana</body></html>"


def not_found(_: BaseHTTPRequestHandler) -> tuple[int, str, str]:
    return 404, "text/plain", "404 page not found"


def garbage_json(_: BaseHTTPRequestHandler) -> tuple[int, str, str]:
    return 200, "application/json", '{"result": tru'


def fake_ray(ray: str = "2.49.2", python: str = "3.12.9", token: str | None = None) -> Route:
    """A dashboard that answers the endpoints raydoctor reads, optionally behind a token."""

    def route(req: BaseHTTPRequestHandler) -> tuple[int, str, str]:
        if token is not None and req.path.startswith(("/api/v0/cluster_metadata", "/api/version")):
            auth = req.headers.get("Authorization")
            if auth is None:
                return 401, "text/plain", "Unauthorized: missing token"
            if auth != f"Bearer {token}":
                return 403, "text/plain", "Forbidden: invalid token"
        if req.path.startswith("/api/v0/cluster_metadata"):
            body = {"result": True, "msg": "", "data": {"rayVersion": ray, "pythonVersion": python}}
            return 200, "application/json", json.dumps(body)
        if req.path.startswith("/api/version"):
            return 200, "application/json", json.dumps({"version": "4", "ray_version": ray})
        if req.path.startswith("/api/gcs_healthz"):
            return 200, "text/plain", "success"
        if req.path.startswith("/api/authentication_mode"):
            return 200, "application/json", json.dumps({"authentication_mode": "token" if token else "disabled"})
        return 404, "text/plain", "not found"

    return route


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(1)
        for conn in accepted:
            conn.close()
        sock.close()


def closed_port() -> int:
    """A port with nothing listening (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
