"""This machine's Docker, asked once per run: one typed probe of the engine (``DockerEngine``, from one
``docker info --format '{{json .}}'``) and what the CLI can do with it (``DockerCli``: its compose plugin,
the standalone ``docker-compose``). Checks read them from the context (``CheckContext.docker_engine``,
``.docker_cli``); suggestions read ``DockerCli`` (``doctor.remedies.start_compose``): ``docker compose …
up -d`` is pasted only where it can run.

One ``docker info`` answers what four questions asked before (``docker version`` for the server,
``docker info`` for NCPU and for Runtimes, ``docker compose version``): the CLI lists its plugins in
``ClientInfo.Plugins`` whether or not an engine answers, after loading each one's metadata, and puts a
plugin that fails to load there with an ``Err`` (docker/cli ``cli/command/system/info.go::runInfo``,
``cli-plugins/manager``); where no engine answers it still prints the JSON, with empty server fields,
writes the error on stderr and exits 1.

The standalone ``docker-compose`` (1.29, a Python program: ~0.46 s to say its version) is asked only
where a suggestion could name it (no docker, or no compose plugin), and its answer is remembered per
binary (real path, size and mtime) in raydoctor's cache, so a check pays for it once per install.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor import proc
from doctor.files import Unreadable, read_bytes, write_atomic
from doctor.text import sanitize

TIMEOUT_S = 5.0  # each question; a plugin or engine that takes longer is treated as absent


@dataclass(frozen=True)
class DockerEngine:
    """The engine's facts, from one ``docker info --format '{{json .}}'``: computed once per run."""

    docker: str | None  # the docker CLI PATH finds, or None (then nothing else is known)
    answers: bool = False  # an engine answered (its ServerVersion came back)
    server_version: str | None = None
    ncpu: int | None = None  # the CPUs the engine can hand out (Docker Desktop's VM has fewer than the laptop)
    runtimes: tuple[str, ...] | None = None  # the engine's runtimes ("nvidia", "runc"...), sorted; None: not said
    default_runtime: str | None = None
    operating_system: str | None = None  # "Debian GNU/Linux 12 (bookworm)"; "Docker Desktop" for its VM's engine
    # CDI (Container Device Interface, Docker >= 25): the spec folders the engine reads; () where CDI is off
    # (moby's swagger: "An empty list indicates that CDI device injection is disabled"); None: not said.
    cdi_spec_dirs: tuple[str, ...] | None = None
    # The IDs of the devices the engine's device drivers list ("nvidia.com/gpu=0"; Docker >= 28.2, from its
    # CDI specs); None where ``docker info`` does not say (an older engine or CLI, or none: the field is omitempty).
    discovered_devices: tuple[str, ...] | None = None
    containers: int | None = None  # containers on the engine, running or not; None: not said
    plugins: tuple[str, ...] | None = None  # CLI plugins that load ("compose"...); None: the CLI listed none
    error: str | None = None  # why no engine answers, docker's own words on one line

    @property
    def version(self) -> tuple[int, ...] | None:
        """The engine's version as numbers, (29, 2, 0) from "29.2.0" or "20.10.24+dfsg1"; None: not said."""
        found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", self.server_version or "")
        return tuple(int(p) for p in found.groups() if p is not None) if found else None

    def has_plugin(self, name: str) -> bool | None:
        """Whether the CLI loads the plugin ``name``; None where this CLI does not list its plugins."""
        return None if self.plugins is None else name in self.plugins


@dataclass(frozen=True)
class DockerCli:
    docker: str | None  # the docker CLI PATH finds, or None
    compose: bool = False  # `docker compose version` exited 0
    engine: bool = False  # an engine answers (DockerEngine.answers)
    legacy_compose: str | None = None  # a standalone docker-compose that answers `version`, or None
    program: str = "docker"  # how a suggestion names docker: its bare name (PATH finds it)


_ASKED: dict[tuple[Any, ...], proc.Completed | None] = {}
_ASKING: dict[tuple[Any, ...], threading.Lock] = {}
_ASKED_LOCK = threading.Lock()


def _docker(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> proc.Completed | None:
    try:
        return proc.run(list(argv), timeout=timeout, env=proc.child_env(env), cap=1024 * 1024)
    except (OSError, proc.ProcTimeout):
        return None


def ask(
    argv: Sequence[str], environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S
) -> proc.Completed | None:
    """Docker's answer to one read-only question (``version``, ``info``, ``image inspect``), asked once per
    check run for the same program, arguments and environment: several checks and sources ask the same
    thing, and each answer from a running engine costs a process and a round trip to the daemon (four
    ``docker version`` per compose check before). Outside ``remembering`` (``doctor.app.run_check``'s run)
    every call asks. Without the token; None when it cannot run (not remembered: it may be this moment's)."""
    env = dict(os.environ if environ is None else environ)
    with _ASKED_LOCK:
        if not _RUNS[0]:
            lock = None
        else:
            key = (tuple(argv), frozenset(env.items()))
            if key in _ASKED:
                return _ASKED[key]
            lock = _ASKING.setdefault(key, threading.Lock())
    if lock is None:
        return _docker(argv, env, timeout)
    with lock:  # a second asker of the same question waits for the first one's answer
        with _ASKED_LOCK:
            if key in _ASKED:
                return _ASKED[key]
        done = _docker(argv, env, timeout)
        if done is not None:
            with _ASKED_LOCK:
                if _RUNS[0]:
                    _ASKED[key] = done
        return done


_RUNS = [0]  # check runs in progress (``remembering``): answers are kept only inside one


@contextlib.contextmanager
def remembering() -> Iterator[None]:
    """Keep Docker's answers for the length of one check run, then forget them: within a run the engine,
    its images and containers are one fact; the next run asks again."""
    with _ASKED_LOCK:
        _RUNS[0] += 1
    try:
        yield
    finally:
        with _ASKED_LOCK:
            _RUNS[0] -= 1
            if _RUNS[0] == 0:
                _ASKED.clear()
                _ASKING.clear()


def _answers(argv: list[str], environ: Mapping[str, str], timeout: float) -> proc.Completed | None:
    done = ask(argv, environ, timeout)
    return done if done is not None and done.returncode == 0 else None


def _cache_file(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "raydoctor" / "docker-compose.json"


def _binary_key(path: str) -> str | None:
    """What identifies one install of a program: its real path, size and mtime (a reinstall changes them)."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def legacy_answers(legacy: str, env: Mapping[str, str], timeout: float) -> bool:
    """Whether the standalone ``docker-compose`` at ``legacy`` answers ``version``; remembered per binary."""
    key = _binary_key(legacy)
    cache = _cache_file(env)
    known: dict[str, bool] = {}
    if key is not None:
        try:
            loaded = json.loads(read_bytes(cache, 64 * 1024, follow_symlinks=False))
        except (Unreadable, ValueError, RecursionError):
            loaded = {}
        if isinstance(loaded, dict):
            known = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, bool)}
        if key in known:
            return known[key]
    if _answers([legacy, "version"], env, timeout) is None:
        return False  # a failure or a timeout may be this moment's (a loaded machine): not remembered
    if key is not None:
        known[key] = True
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, json.dumps(dict(list(known.items())[-32:]), indent=1))
        except OSError:
            pass
    return True


INFO = ["info", "--format", "{{json .}}"]
_TEXT_MAX = 200  # a version, a runtime's name, an error line: the engine's text, bounded


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return sanitize(value).strip()[:_TEXT_MAX] or None


def _texts(value: object, limit: int = 64) -> tuple[str, ...] | None:
    """A list of the engine's strings, each sanitized and bounded, at most ``limit`` of them; None: not a list."""
    if not isinstance(value, list):
        return None
    return tuple(t for t in (_text(v) for v in value[:limit]) if t is not None)


def _device_ids(value: object, limit: int = 256) -> tuple[str, ...] | None:
    """``DiscoveredDevices``' IDs (moby api/types/system/info.go ``DeviceInfo``: Source, ID); None: not a list."""
    if not isinstance(value, list):
        return None
    return _texts([d.get("ID") for d in value[:limit] if isinstance(d, dict)], limit)


def _count(value: object, limit: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit else None


def engine_from_info(docker: str, done: proc.Completed | None) -> DockerEngine:
    """``DockerEngine`` from ``docker info --format '{{json .}}'``'s answer (None: it could not run)."""
    if done is None:
        return DockerEngine(docker, error="docker info did not answer in time")
    try:
        data = json.loads(done.stdout.strip() or "null")
    except (ValueError, RecursionError):
        data = None
    info: dict[str, Any] = data if isinstance(data, dict) else {}
    client = info.get("ClientInfo")
    plugins: tuple[str, ...] | None = None
    if isinstance(client, dict) and isinstance(client.get("Plugins"), list):
        names = (p.get("Name") for p in client["Plugins"] if isinstance(p, dict) and not p.get("Err"))
        plugins = tuple(sorted({sanitize(n)[:_TEXT_MAX] for n in names if isinstance(n, str) and n}))
    version = _text(info.get("ServerVersion"))
    server_errors = [e for e in info.get("ServerErrors") or [] if isinstance(e, str)]  # newer CLIs say it here
    answers = done.returncode == 0 and version is not None and not server_errors
    if not answers:
        said = ((server_errors[0] if server_errors else "") or done.stderr).strip() or "docker info failed"
        return DockerEngine(docker, plugins=plugins, error=_text(said.splitlines()[0]))
    runtimes = info.get("Runtimes")
    ncpu = _count(info.get("NCPU"), 100_000)
    return DockerEngine(
        docker,
        answers=True,
        server_version=version,
        ncpu=ncpu or None,
        runtimes=tuple(sorted(sanitize(k)[:_TEXT_MAX] for k in runtimes)) if isinstance(runtimes, dict) else None,
        default_runtime=_text(info.get("DefaultRuntime")),
        operating_system=_text(info.get("OperatingSystem")),
        cdi_spec_dirs=_texts(info.get("CDISpecDirs")),
        discovered_devices=_device_ids(info.get("DiscoveredDevices")),
        containers=_count(info.get("Containers"), 1 << 31),
        plugins=plugins,
    )


def probe_engine(environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S) -> DockerEngine:
    """Ask this machine's Docker engine about itself: one ``docker info``, without the token. Within a check
    run it is asked once (``ask``); the context keeps the answer (``CheckContext.docker_engine``)."""
    env = dict(os.environ if environ is None else environ)
    docker = shutil.which("docker", path=env.get("PATH", os.defpath))
    if docker is None:
        return DockerEngine(None, error="no docker on PATH")
    return engine_from_info(docker, ask([docker, *INFO], env, timeout))


def probe(
    environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S, *, engine: DockerEngine | None = None
) -> DockerCli:
    """What this machine's Docker CLI can do: the plugin and the engine (from ``engine``, the run's probe,
    asked here when not given), and the standalone docker-compose only where a suggestion could name it
    (no docker, or no plugin); without the token."""
    env = dict(os.environ if environ is None else environ)
    path = env.get("PATH", os.defpath)
    legacy = shutil.which("docker-compose", path=path)
    if engine is None:
        engine = probe_engine(env, timeout)
    docker = engine.docker
    if docker is None:
        legacy_ok = bool(legacy and legacy_answers(legacy, env, timeout))
        return DockerCli(None, legacy_compose="docker-compose" if legacy_ok else None)
    compose = engine.has_plugin("compose")
    if compose is None:  # a CLI that does not list its plugins: ask the plugin itself
        compose = _answers([docker, "compose", "version"], env, timeout) is not None
    legacy_ok = bool(not compose and legacy and legacy_answers(legacy, env, timeout))
    return DockerCli(docker, compose, engine.answers, "docker-compose" if legacy_ok else None)
