"""What this machine's Docker CLI can do, asked once per run: is there a ``docker``, does its
compose plugin answer, does an engine answer. Suggestions read it (``doctor.remedies.start_compose``):
``docker compose … up -d`` is pasted only where it can run.

``docker compose version`` exits non-zero with "docker: unknown command: docker compose" where
the plugin is missing (the CLI's plugin manager, docker/cli cli-plugins/manager); ``docker version
--format {{.Server.Version}}`` prints the engine's version only when one answers.

The standalone ``docker-compose`` (1.29, a Python program: ~0.46 s to say its version) is asked only
where a suggestion could name it (no docker, or no compose plugin), and its answer is remembered per
binary (real path, size and mtime) in raydoctor's cache, so a check pays for it once per install.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor import proc
from doctor.files import Unreadable, read_bytes, write_atomic

TIMEOUT_S = 5.0  # each question; a plugin or engine that takes longer is treated as absent


@dataclass(frozen=True)
class DockerCli:
    docker: str | None  # the docker CLI PATH finds, or None
    compose: bool = False  # `docker compose version` exited 0
    engine: bool = False  # `docker version` reported a server
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


def probe(environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S) -> DockerCli:
    """Ask this machine's Docker what it can do: the plugin and the engine, and the standalone
    docker-compose only where a suggestion could name it (no docker, or no plugin); without the token."""
    env = dict(os.environ if environ is None else environ)
    path = env.get("PATH", os.defpath)
    docker = shutil.which("docker", path=path)
    legacy = shutil.which("docker-compose", path=path)
    if docker is None:
        legacy_ok = bool(legacy and legacy_answers(legacy, env, timeout))
        return DockerCli(None, legacy_compose="docker-compose" if legacy_ok else None)
    compose = _answers([docker, "compose", "version"], env, timeout) is not None
    server = _answers([docker, "version", "--format", "{{.Server.Version}}"], env, timeout)
    engine = bool(server and server.stdout.strip())
    legacy_ok = bool(not compose and legacy and legacy_answers(legacy, env, timeout))
    return DockerCli(docker, compose, engine, "docker-compose" if legacy_ok else None)


def engine_cpus(environ: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S) -> int | None:
    """The CPUs the Docker engine can hand out (``docker info``'s NCPU), or None where no engine answers."""
    env = dict(os.environ if environ is None else environ)
    docker = shutil.which("docker", path=env.get("PATH", os.defpath))
    if docker is None:
        return None
    done = _answers([docker, "info", "--format", "{{.NCPU}}"], env, timeout)
    text = done.stdout.strip() if done else ""
    return int(text) if text.isdigit() and 0 < int(text) < 100_000 else None
