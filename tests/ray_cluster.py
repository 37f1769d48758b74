"""Real Ray heads and workers on loopback for the tests (REFERENCE §8).

* ``ensure_ray_venv`` builds (once, cached between runs, keyed by versions) a
  venv from this machine's Python with ``ray[default]==VERSION``.
* ``RayNode`` starts ``ray start --block`` on free ports with its own temp dir
  and stops exactly the processes it started (never ``ray stop``, which would
  kill a user's own cluster too).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

RAY_VERSION = os.environ.get("RAYDOCTOR_TEST_RAY", "2.49.2")
HEAD_PYTHON = os.environ.get("RAYDOCTOR_TEST_PYTHON", "3.12")
CACHE = Path(os.environ.get("RAYDOCTOR_TEST_CACHE", Path.home() / ".cache" / "raydoctor-tests"))


def find_python(minor: str) -> Path | None:
    """An interpreter of ``minor`` on this machine: pyenv's folder, then PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv.glob(f"{minor}.*/bin/python"), reverse=True):
        if candidate.exists():
            return candidate
    found = shutil.which(f"python{minor}")
    if found:
        probe = subprocess.run(
            [found, "-c", "import sys;print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == minor:
            return Path(found)
    return None


def uv_bin() -> str:
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise RuntimeError("uv is needed to build the test venvs: pip install uv") from None
        return found


def ensure_ray_venv(ray: str = RAY_VERSION, minor: str = HEAD_PYTHON, extra: tuple[str, ...] = ()) -> Path:
    """A cached venv with ``ray[default]==ray`` on Python ``minor``; returns its python."""
    python = find_python(minor)
    if python is None:
        raise RuntimeError(f"no Python {minor} on this machine")
    version = subprocess.run(
        [str(python), "-c", "import platform;print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    key = f"ray{ray}-py{version}" + ("-" + "-".join(sorted(extra)).replace("=", "") if extra else "")
    dest = CACHE / "venvs" / key
    marker = dest / "raydoctor-test-venv.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return dest / "bin" / "python"
        shutil.rmtree(dest, ignore_errors=True)
        uv = uv_bin()
        subprocess.run([uv, "venv", "--seed", "-q", "-p", str(python), str(dest)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "-p", str(dest / "bin" / "python"), f"ray[default]=={ray}", *extra], check=True
        )
        marker.write_text(json.dumps({"ray": ray, "python": version, "extra": list(extra)}))
    return dest / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """n distinct free ports (held open together so none repeats); bound on all addresses so
    that they are free on every loopback address a node may use."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("0.0.0.0", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class RayNode:
    """One ``ray start --block`` process group (a head, or a worker joining one)."""

    python: Path
    head: bool = True
    num_cpus: int = 1
    num_gpus: int | None = None
    gcs_address: str | None = None  # for workers
    env: dict[str, str] = field(default_factory=dict)
    temp_dir: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log: Path | None = None
    # Ray rewrites --node-ip-address=127.0.0.1 to the machine's routable IP
    # (services.resolve_ip_for_localhost) and binds the client server there; any
    # other 127/8 address is kept as given, so nodes stay on loopback.
    ip: str = "127.0.0.2"
    auth_token: str | None = None  # sent by the readiness probe to a head with token auth on

    @property
    def bin(self) -> Path:
        return self.python.parent

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.ip}:{self.ports['dashboard']}"

    @property
    def client_url(self) -> str:
        return f"ray://{self.ip}:{self.ports['client']}"

    @property
    def gcs(self) -> str:
        return f"{self.ip}:{self.ports['gcs']}"

    def start(self, timeout: float = 180) -> RayNode:
        names = [
            "gcs",
            "dashboard",
            "client",
            "metrics",
            "agent_listen",
            "agent_grpc",
            "runtime_env",
            "node_manager",
            "object_manager",
        ]
        self.ports = dict(zip(names, free_ports(len(names))))
        # Ray's socket paths must stay short (AF_UNIX limit): a short temp dir.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rdt-", dir="/tmp"))
        p = self.ports
        args = [
            str(self.bin / "ray"),
            "start",
            "--block",
            "--disable-usage-stats",
            f"--num-cpus={self.num_cpus}",
            f"--temp-dir={self.temp_dir}",
            f"--node-manager-port={p['node_manager']}",
            f"--object-manager-port={p['object_manager']}",
            f"--metrics-export-port={p['metrics']}",
            f"--dashboard-agent-listen-port={p['agent_listen']}",
            f"--dashboard-agent-grpc-port={p['agent_grpc']}",
            f"--runtime-env-agent-port={p['runtime_env']}",
            f"--node-ip-address={self.ip}",
            "--object-store-memory=100000000",
        ]
        if self.num_gpus is not None:
            args.append(f"--num-gpus={self.num_gpus}")
        if self.head:
            args += [
                "--head",
                f"--port={p['gcs']}",
                f"--dashboard-host={self.ip}",
                f"--dashboard-port={p['dashboard']}",
                f"--ray-client-server-port={p['client']}",
            ]
        else:
            args.append(f"--address={self.gcs_address}")
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}",  # a job's `python` must be this env's
                "GRPC_ENABLE_FORK_SUPPORT": "0",  # REFERENCE §8: the client server crashes on fork otherwise
                "RAY_USAGE_STATS_ENABLED": "0",
                "VIRTUAL_ENV": str(self.bin.parent),
            }
        )
        for var in ("RAY_ADDRESS", "PYTHONPATH", "PYTHONHOME"):
            env.pop(var, None)
        env.update(self.env)
        self.log = self.temp_dir / "ray-start.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if self.head:
            self._wait_head(timeout)
        return self

    def _wait_head(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}
        request = urllib.request.Request(f"{self.dashboard_url}/api/v0/cluster_metadata", headers=headers)
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    if json.loads(resp.read()).get("data", {}).get("rayVersion"):
                        if _port_open(self.ip, self.ports["client"]) and self._alive_nodes(headers) >= 1:
                            return
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"Ray head did not come up within {timeout} s: {tail}")

    def _alive_nodes(self, headers: dict[str, str] | None = None) -> int:
        request = urllib.request.Request(f"{self.dashboard_url}/api/v0/nodes", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                rows = json.loads(resp.read())["data"]["result"]["result"]
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        return sum(1 for r in rows if r.get("state") == "ALIVE")

    def wait_nodes(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._alive_nodes() >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"{count} nodes did not join within {timeout} s")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log else ""
        except OSError:
            return ""

    def pids(self) -> list[int]:
        """Every process of this node: its process group, and anything naming its temp dir."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                pgid = os.getpgid(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
            if (self.proc and pgid == self.proc.pid) or (self.temp_dir and str(self.temp_dir) in cmd):
                found.append(int(entry.name))
        return found

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.3)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def kill_hard(self) -> None:
        """Simulate a crash: SIGKILL everything at once (fault tests)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
