"""Real Ray heads and workers on loopback for the tests.

* ``ensure_ray_venv`` builds (once, cached between runs, keyed by versions) a
  venv from this machine's Python with ``ray[default]==VERSION``.
* ``RayNode`` starts ``ray start --block`` (``ray/scripts/scripts.py::start``)
  on free ports with its own temp dir and stops exactly the processes it
  started (never ``ray stop``, which would kill a user's own cluster too).
  Every node gets the slow-machine settings (``SLOW_MACHINE``) and a TMPDIR
  inside its temp dir, so that nothing it makes outlives ``stop()``.
* A head is ready when its dashboard answers; a dashboard that dies or stops
  answering on the way fails the start at once, with the tail of its log.
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
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

RAY_VERSION = os.environ.get("RAYDOCTOR_TEST_RAY", "2.49.2")
HEAD_PYTHON = os.environ.get("RAYDOCTOR_TEST_PYTHON", "3.12")
CACHE = Path(os.environ.get("RAYDOCTOR_TEST_CACHE", Path.home() / ".cache" / "raydoctor-tests"))


def pyenv_versions() -> Path:
    """pyenv's versions folder: ``$PYENV_ROOT/versions``, else ``~/.pyenv/versions``."""
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def _vkey(name: str) -> tuple[int, ...]:
    return tuple(int(x) if x.isdigit() else -1 for x in name.split("."))


def find_pyenv_python(version: str) -> Path | None:
    """pyenv's interpreter of ``version``: a minor ("3.12", its newest patch) or an exact patch ("3.12.1")."""
    folders = [pyenv_versions() / version] if version.count(".") == 2 else pyenv_versions().glob(f"{version}.*")
    found = [f / "bin" / "python" for f in folders if (f / "bin" / "python").exists()]
    return max(found, key=lambda p: _vkey(p.parent.parent.name)) if found else None


def find_python(version: str) -> Path | None:
    """An interpreter of ``version`` (a minor, "3.12", or a patch, "3.12.1") on this machine.

    pyenv's folder first, then ``pythonX.Y`` on PATH (asked for its version, so a pyenv shim
    of an unselected version or another patch does not count).
    """
    in_pyenv = find_pyenv_python(version)
    if in_pyenv is not None:
        return in_pyenv
    minor = ".".join(version.split(".")[:2])
    found = shutil.which(f"python{minor}")
    if found:
        probe = subprocess.run(
            [found, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        )
        full = probe.stdout.strip()
        if probe.returncode == 0 and (full == version or ".".join(full.split(".")[:2]) == version):
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


def python_version(python: Path | str) -> str:
    """The full version (``3.12.1``) an interpreter reports of itself."""
    return subprocess.run(
        [str(python), "-c", "import platform;print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    ).stdout.strip()


def ensure_venv(
    key: str, packages: Sequence[str], python: Path | str, about: Mapping[str, object] | None = None
) -> Path:
    """A cached venv ``CACHE/venvs/KEY`` from interpreter ``python`` with ``packages`` installed by uv; its python.

    Built once: under the lock file ``CACHE/.KEY.lock`` (another test process waits for it), and
    complete only once its marker, written last, is there (``about``, else the packages and the
    Python, as JSON); a folder without the marker is a build that was cut short, and is rebuilt.
    """
    dest = CACHE / "venvs" / key
    marker = dest / "raydoctor-test-venv.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return dest / "bin" / "python"
        shutil.rmtree(dest, ignore_errors=True)
        uv = uv_bin()
        quiet = {"check": True, "stdin": subprocess.DEVNULL}
        subprocess.run([uv, "venv", "--seed", "-q", "-p", str(python), str(dest)], timeout=300, **quiet)
        subprocess.run(
            [uv, "pip", "install", "-q", "-p", str(dest / "bin" / "python"), *packages], timeout=1800, **quiet
        )
        marker.write_text(
            json.dumps(dict(about) if about is not None else {"packages": list(packages), "python": str(python)})
        )
    return dest / "bin" / "python"


def ensure_ray_venv(ray: str = RAY_VERSION, minor: str = HEAD_PYTHON, extra: tuple[str, ...] = ()) -> Path:
    """A cached venv with ``ray[default]==ray`` on Python ``minor``; returns its python."""
    python = find_python(minor)
    if python is None:
        raise RuntimeError(f"no Python {minor} on this machine")
    version = python_version(python)
    key = f"ray{ray}-py{version}" + ("-" + "-".join(sorted(extra)).replace("=", "") if extra else "")
    return ensure_venv(
        key, [f"ray[default]=={ray}", *extra], python, about={"ray": ray, "python": version, "extra": list(extra)}
    )


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


# On a busy 2-core machine the dashboard's subprocess modules may need more than Ray's default
# 30 s to report ready (``ray/dashboard/subprocesses/handle.py::wait_for_module_ready`` reads
# ``RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT``, ``ray/dashboard/consts.py``), and the
# dashboard gives up when they do not. Every node gets this; a node's own ``env`` may override it.
SLOW_MACHINE = {"RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "150"}


# What Ray's dashboard logs when its start fails (ray/dashboard/dashboard.py, `__main__`).
DASHBOARD_FAILED = b"failed with the following error"


class NodeStartError(RuntimeError):
    """A node did not come up; the message carries the tails of its logs."""


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
    # (ray/_private/services.py::resolve_ip_for_localhost) and binds the client server there;
    # any other 127/8 address is kept as given, so nodes stay on loopback.
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

    @property
    def target_args(self) -> list[str]:
        """raydoctor's options naming this head: its dashboard, client and GCS ports."""
        return [
            "--address",
            self.dashboard_url,
            "--client-port",
            str(self.ports["client"]),
            "--gcs-port",
            str(self.ports["gcs"]),
        ]

    @property
    def logs_dir(self) -> Path | None:
        """Ray's log folder for this node (``<temp dir>/session_latest/logs``)."""
        return self.temp_dir / "session_latest" / "logs" if self.temp_dir else None

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
        # The node's processes make their temp files (multiprocessing's pymp-* folders: Ray
        # 2.60's dashboard starts its modules through a forkserver whose socket lives there,
        # ray/dashboard/subprocesses/handle.py) inside the node's temp dir, removed by stop().
        tmp = self.temp_dir / "tmp"
        tmp.mkdir()
        env = dict(os.environ)
        env.update(
            {
                "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}",  # a job's `python` must be this env's
                # The client server forks its specific servers while gRPC threads run
                # (ray/util/client/server/proxier.py; ray-project/ray#63202), and gRPC's fork
                # handlers crash then (grpc/grpc doc/fork_support.md): keep them off.
                "GRPC_ENABLE_FORK_SUPPORT": "0",
                "RAY_USAGE_STATS_ENABLED": "0",
                "VIRTUAL_ENV": str(self.bin.parent),
                "TMPDIR": str(tmp),
                **SLOW_MACHINE,
            }
        )
        for var in ("RAY_ADDRESS", "PYTHONPATH", "PYTHONHOME", "RAY_TMPDIR"):
            env.pop(var, None)
        env.update(self.env)
        self.log = self.temp_dir / "ray-start.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if self.head:
            try:
                self._wait_head(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def _wait_head(self, timeout: float) -> None:
        """Until the dashboard answers with Ray's version, the client port listens and a node is alive.

        Fails at once, with the logs' tails, when ``ray start`` exits, when the dashboard
        process exits, or when its port, having answered, refuses connections again.
        """
        started = time.monotonic()
        deadline = started + timeout
        headers = {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}
        request = urllib.request.Request(f"{self.dashboard_url}/api/v0/cluster_metadata", headers=headers)
        dashboard_seen = answered = False
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                self._fail(f"ray start exited {self.proc.returncode}")
            # `ray start` starts the dashboard before it prints "Ray runtime started", and its
            # --block loop takes a dashboard that exits with SIGTERM's number as graceful
            # (ray/scripts/scripts.py::start): a head with no dashboard process is a dead head.
            if self.dashboard_pids():
                dashboard_seen = True
            elif dashboard_seen or self._ray_start_done():
                self._fail(f"the dashboard process exited ({time.monotonic() - started:.0f} s after ray start began)")
            # A dashboard whose start failed logs this and may hang on instead of exiting
            # (ray/dashboard/dashboard.py, its `__main__`; seen with Ray 2.49.2).
            if self._dashboard_log_says(DASHBOARD_FAILED):
                self._fail(f"the dashboard failed to start ({time.monotonic() - started:.0f} s after ray start began)")
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    answered = True
                    if json.loads(resp.read()).get("data", {}).get("rayVersion"):
                        if _port_open(self.ip, self.ports["client"]) and self._alive_nodes(headers) >= 1:
                            return
            except urllib.error.HTTPError:
                answered = True  # it answers, just not yet with the data
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                if answered and isinstance(reason, ConnectionRefusedError):
                    self._fail(f"the dashboard's port {self.ports['dashboard']} answered, then refused connections")
            time.sleep(0.3)
        self._fail(f"Ray head did not come up within {timeout} s")

    def _fail(self, what: str) -> NoReturn:
        raise NodeStartError(f"{what} (temp dir {self.temp_dir}):\n{self.diagnostics()}")

    def diagnostics(self, lines: int = 15) -> str:
        """The tails of ``ray start``'s output and of the dashboard's log and stderr."""
        parts = [f"--- ray start:\n{self.log_tail(lines)}"]
        logs = self.logs_dir
        for name in ("dashboard.err", "dashboard.log"):
            text = _tail(logs / name, lines) if logs else ""
            if text:
                parts.append(f"--- {name}:\n{text}")
        return "\n".join(parts)

    def _dashboard_log_says(self, words: bytes) -> bool:
        logs = self.logs_dir
        try:
            return logs is not None and words in (logs / "dashboard.log").read_bytes()
        except OSError:
            return False

    def _ray_start_done(self) -> bool:
        try:
            return b"Ray runtime started" in self.log.read_bytes() if self.log else False
        except OSError:
            return False

    def dashboard_pids(self) -> list[int]:
        """This node's dashboard process (``ray/dashboard/dashboard.py``), if it runs."""
        return [pid for pid, cmd in self._processes() if "dashboard/dashboard.py" in cmd]

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
        raise NodeStartError(f"{count} nodes did not join within {timeout} s:\n{self.diagnostics()}")

    def log_tail(self, lines: int = 15) -> str:
        return _tail(self.log, lines) if self.log else ""

    def _processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process of this node: its process group, and anything naming its temp dir."""
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
                found.append((int(entry.name), cmd))
        return found

    def pids(self) -> list[int]:
        return [pid for pid, _cmd in self._processes()]

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=8)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.1)
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


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
