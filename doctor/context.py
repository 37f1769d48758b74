"""The shared state of one check run: the target, and facts gathered once.

Facts are computed lazily and at most once, even when several checks ask at
the same moment from their threads; ``prefetch`` starts the slow ones (the
dashboard, the interpreter probe, the ``--deep`` job) before the checks are even created,
and ``run_check`` has the interpreter probe start earlier still, before the target's files are read.

Facts flow one way: this module and the fact sources it calls (``doctor.head``,
``doctor.local``, ``doctor.facts``) never import a check, and checks only read
what they are given here. Every fact is frozen once gathered.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

from doctor import proc
from doctor.facts.cluster import DeepProbe, node_counts, read_nodes, run_deep_probe
from doctor.facts.ports import LearnedPorts, read_head_ports
from doctor.facts.roundtrip import LIMIT_S as ROUNDTRIP_LIMIT_S
from doctor.facts.roundtrip import ProbeRun, Started, cancel_probe, finish_probe, start_probe
from doctor.facts.target import DEFAULT_COMPOSE as DEFAULT_COMPOSE
from doctor.facts.target import REPO_ROOT as REPO_ROOT
from doctor.facts.target import Target as Target
from doctor.facts.target import default_compose as default_compose
from doctor.facts.target import resolve_target as resolve_target
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.head.facts import HeadFacts, HeadPackages
from doctor.head.resolve import gather_head_facts
from doctor.head.token_sources import TokenSearch, find_cluster_token
from doctor.local.docker_cli import DockerCli, DockerEngine, probe_engine
from doctor.local.docker_cli import probe as probe_docker_cli
from doctor.local.interpreter import (
    JOB_CLIENT_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    InterpreterError,
    LocalFacts,
    choose_interpreter,
    inspect_interpreter,
)
from doctor.local.requirements import Requirements, load_requirements
from doctor.options import TargetOptions
from doctor.origin import Chosen, PackagesOrigin, PythonOrigin
from doctor.runner import prepare_for_threads
from doctor.secrets import Token, load_token
from doctor.target import HeadAddress, token_withheld
from doctor.tcp import probe_port

T = TypeVar("T")

# How long the image's own Python may take to list its packages (``docker run --rm``, first time per
# image id; then the answer is cached): a container start, not a pull, which raydoctor never does.
IMAGE_PROBE_LIMIT_S = 30.0


class Lazy(Generic[T]):
    """Compute once, from whichever thread asks first; re-raise the same error to every caller."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._fn()
                except Exception as exc:  # stored and re-raised to every caller
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def start(self) -> None:
        prepare_for_threads()  # the context's facts start the first threads of a check (CPython gh-92452)
        threading.Thread(target=lambda: self._quiet_get(), daemon=True).start()

    def peek(self) -> T | None:
        """The value if it has been gathered without error, else None; never waits, never gathers."""
        if self._lock.acquire(blocking=False):
            try:
                return self._value if self._done and self._error is None else None
            finally:
                self._lock.release()
        return None

    def _quiet_get(self) -> None:
        try:
            self.get()
        except Exception:
            pass


class CheckContext:
    """Everything checks need; the slow facts are computed once and shared."""

    def __init__(
        self,
        options: TargetOptions,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        start_probe: bool = False,
    ) -> None:
        """``start_probe`` (``run_check``): the interpreter probe, a child Python and the slowest fact of a
        check without a cluster, starts here, before the target's files are read, so it runs beside them."""
        self.options = options
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.cwd = cwd or Path.cwd()
        self.interpreter_path, self.interpreter_chosen = choose_interpreter(
            options.python, self.environ, kernel=options.kernel
        )
        python_from = ((options.settings or {}).get("python") or {}).get("from")
        if self.interpreter_chosen.origin is PythonOrigin.FLAG and python_from not in (None, "default", "--python"):
            self.interpreter_chosen = Chosen(PythonOrigin.SETTINGS, str(python_from))  # a trusted settings file
        self._local = Lazy(self._gather_local)
        self._probe_started = start_probe
        if start_probe:
            self._local.start()
        try:
            self.target = resolve_target(options, self.environ, self.cwd)
            # The token raydoctor found on this machine; one from the cluster's side is looked for lazily
            # (``token``). It is sent only where ``doctor.target.token_withheld`` allows.
            self.local_token: Token | None = load_token(self.environ)
            self._token: Lazy[TokenSearch] = Lazy(self._resolve_token)
            self.requirements_path = self._requirements_path()
            self.requirements: Requirements | None = (
                load_requirements(self.requirements_path) if self.requirements_path else None
            )
            # --runtime-env FILE, read once (a bad file is a UsageError): judged by doctor.checks.jobs.
            self.runtime_env: Any = None
            if getattr(options, "runtime_env", None) is not None:
                from doctor.head.runtime_env import load_runtime_env

                self.runtime_env = load_runtime_env(Path(options.runtime_env), self.cwd)  # type: ignore[arg-type]
                self.runtime_env.pip_lines()  # its pip file too: one the user cannot read is a usage error
            # --head-packages FILE, read now for the same reason (a FIFO, a device, not a pins file: exit 2)
            self._pins_file: dict[str, str] | None = self._read_head_packages_file()
        except BaseException:
            if start_probe:  # let it end, so that its temporary folder is gone before the error is told
                self._local._quiet_get()
            raise
        self._dashboard: DashboardClient | None = None
        self._head = Lazy(self._gather_head)
        self._deep: Lazy[DeepProbe] = Lazy(self._run_deep_probe)
        self._nodes: Lazy[list[dict[str, Any]]] = Lazy(self._read_nodes)
        self._docker_engine: Lazy[DockerEngine] = Lazy(lambda: probe_engine(self.environ))
        self._docker_cli: Lazy[DockerCli] = Lazy(lambda: probe_docker_cli(self.environ, engine=self.docker_engine()))
        self._inside: Lazy[Any] = Lazy(self._read_inside)  # doctor.head.containers.InsideView | None
        self._head_packages: Lazy[HeadPackages | None] = Lazy(self._find_head_packages)
        self._resolution: Lazy[Any] = Lazy(self._resolve)  # doctor.facts.resolution.Resolution
        # The round trip, run once: judged by roundtrip.client, and a head-facts source for a ray:// target.
        self._rt_started: Lazy[Started | None] = Lazy(self._start_roundtrip)
        self._rt_run: Lazy[ProbeRun] = Lazy(self._finish_roundtrip)
        self._rt_again: Lazy[ProbeRun] = Lazy(self._second_roundtrip)  # once, after a known transient crash
        self._rt_lock = threading.Lock()
        self._rt_requested = False
        self._rt_cancelled = False
        self._ports: Lazy[LearnedPorts | None] = Lazy(self._learn_ports)

    def _requirements_path(self) -> Path | None:
        if self.options.requirements is not None:
            return Path(self.options.requirements)
        default = self.cwd / "packages.txt"
        return default if default.is_file() else None

    def _resolve_token(self) -> TokenSearch:
        """This machine's token, else the cluster's own (``doctor.head.token_sources``): asked only when the
        token may go to the target and its dashboard says auth mode ``token`` (a public path, read bare)."""
        if self.local_token is not None:
            return TokenSearch(self.local_token)
        address = self.target.address
        if address is None or (self.target.compose is None and self.target.cluster is None):
            return TokenSearch()
        if token_withheld(address, self.target.address_origin, "the cluster", self.target.address_from) is not None:
            return TokenSearch()
        try:
            mode = DashboardClient(address, timeout=self.options.timeout).auth_mode()
        except DashboardError:
            return TokenSearch()
        if mode != "token":
            return TokenSearch()
        return find_cluster_token(
            self.target.compose, self.target.cluster, self.environ, timeout=max(2.0, min(5.0, self.options.timeout * 2))
        )

    def token_search(self) -> TokenSearch:
        """Where the token was looked for and what each place said; never raises."""
        try:
            return self._token.get()
        except Exception:
            return TokenSearch(self.local_token)

    @property
    def token(self) -> Token | None:
        """The token raydoctor found (this machine's first, then the cluster's own), or None."""
        return self.token_search().token

    @property
    def token_withheld(self) -> str | None:
        """Why the token found does not go to this target, or None (see ``doctor.target.token_withheld``)."""
        token = self.token
        return (
            token_withheld(self.target.address, self.target.address_origin, token.source, self.target.address_from)
            if token
            else None
        )

    @property
    def target_token(self) -> Token | None:
        """The token to send to the target: None when there is none or it is withheld (see ``token_withheld``)."""
        return None if self.token_withheld else self.token

    def child_environ(self) -> dict[str, str]:
        """The environment for a child that talks to the target (the round trip): the token only if it may go there.

        A token from the cluster's side (docker exec, kubectl) goes in as ``RAY_AUTH_TOKEN``, for this child
        only. With any token that goes there, ``RAY_AUTH_MODE=token`` unless the user set a mode, since Ray's
        client loads a token only in token mode (``AuthenticationTokenLoader``, ``src/ray/rpc/authentication/``).
        """
        token = self.target_token
        env = proc.child_env(self.environ, with_token=token is not None)
        if token is not None and token.from_cluster:
            env.pop("RAY_AUTH_TOKEN_PATH", None)
            env["RAY_AUTH_TOKEN"] = token.value
        if token is not None:
            # The same for this machine's own token (RAY_AUTH_TOKEN, its file): without token mode a Ray 2.60
            # client never attaches it, and ray:// ends in "ray client connection timeout" (seen here).
            env.setdefault("RAY_AUTH_MODE", "token")
        return env

    def secret_values(self) -> frozenset[str]:
        """Every value of this run that must never be shown: the token, the compose file's, the cluster
        file's and the requirements' secrets (their ``secret_values()`` where they have one)."""
        values: set[str] = set()
        if self.token is not None:
            values.add(self.token.value)
        for source in (self.target.compose, self.target.cluster, self.requirements):
            method = getattr(source, "secret_values", None) if source is not None else None
            if callable(method):
                values.update(str(v) for v in method() if v)
        return frozenset(v for v in values if v)

    def environment_values(self) -> dict[str, str]:
        """Values the target's files took from the user's environment (compose interpolation), by name."""
        compose = self.target.compose
        return dict(getattr(compose, "interpolated", None) or {})

    @property
    def dashboard(self) -> DashboardClient | None:
        if self._dashboard is None and self.target.address is not None:
            self._dashboard = DashboardClient(
                self.target.address, timeout=self.options.timeout, token=self.target_token
            )
        return self._dashboard

    def _gather_head(self) -> HeadFacts:
        address = self.target.address
        client_only = address is not None and (address.given or "").strip().lower().startswith("ray://")
        use_roundtrip = client_only and self.options.roundtrip
        return gather_head_facts(
            self.dashboard,
            self.target.image,
            token_withheld=self.token_withheld,
            roundtrip=self._roundtrip_or_none if use_roundtrip else None,
            client_url=address.client_url if address is not None else None,
        )

    # ---- the round trip (doctor.facts.roundtrip), run once

    def _learn_ports(self) -> LearnedPorts | None:
        if self.dashboard is None or not self.head().live:
            return None
        return read_head_ports(self.dashboard, self.nodes())

    def learned_ports(self) -> LearnedPorts | None:
        """The head's GCS and Ray Client ports as the head says (``doctor.facts.ports``), asked only when the
        user named neither (so a port the user or the compose file gave is never second-guessed); never raises."""
        kind = self.target.kind
        given = (self.target.address.given or "") if self.target.address is not None else ""
        if kind != "address" or given.strip().lower().startswith("ray://"):
            return None
        if self.options.client_port is not None and self.options.gcs_port is not None:
            return None
        try:
            return self._ports.get()
        except Exception:
            return None

    def client_address(self) -> HeadAddress | None:
        """The target's address with the Ray Client port the head reports, where the user named none."""
        address = self.target.address
        if address is None or self.options.client_port is not None:
            return address
        learned = self.learned_ports()
        if learned is None or not learned.client or learned.client == address.client_port:
            return address
        return dataclasses.replace(address, client_port=learned.client)

    def _start_roundtrip(self) -> Started | None:
        """Spawn the probe; None once the round trip was cancelled (then nothing is spawned)."""
        with self._rt_lock:
            if self._rt_cancelled:
                return None
        address = self.client_address()
        assert address is not None, "the round trip needs an address"
        return start_probe(self.interpreter_path, address.client_url, self.child_environ())

    def _finish_roundtrip(self) -> ProbeRun:
        with self._rt_lock:
            self._rt_requested = True
            if self._rt_cancelled:
                return ProbeRun(None, True, 0.0)
        started = self._rt_started.get()
        if started is None:
            return ProbeRun(None, True, 0.0)
        return finish_probe(started, ROUNDTRIP_LIMIT_S)

    def _second_roundtrip(self) -> ProbeRun:
        address = self.client_address()
        assert address is not None, "the round trip needs an address"
        started = start_probe(self.interpreter_path, address.client_url, self.child_environ())
        return finish_probe(started, ROUNDTRIP_LIMIT_S)

    def roundtrip_again(self) -> ProbeRun:
        """A second, fresh round trip (once per run): for a failure Ray's own known bugs call transient
        (the client server's gRPC fork crash on the first client of a fresh head, ``doctor.ray_bugs``).
        Raises ``InterpreterError`` when the interpreter cannot run."""
        return self._rt_again.get()

    def start_roundtrip(self) -> Started | None:
        """Start the round trip now (once); raises ``InterpreterError`` when the interpreter cannot run."""
        return self._rt_started.get()

    def _roundtrip_early(self) -> None:
        """Start the round trip while the checks are still being built, once its port takes connections.

        It is the slowest fact of a live check (a Python that imports Ray, ``ray.init``, one task), so
        every millisecond before it starts is added to the whole check. A port that refuses would only
        make Ray wait its 30 s: then nothing starts here, and ``roundtrip.client`` says why. A port that
        connects but is not Ray's, or a version difference Ray Client refuses, is found by that check,
        which then cancels this probe long before it has imported Ray.
        """
        try:
            address = self.client_address()
            if address is None:
                return
            if probe_port(address.host, address.client_port, min(self.options.timeout, 2.0)).state != "open":
                return
            self._rt_started.get()
        except Exception:  # InterpreterError and the like: stored by the Lazy, told by roundtrip.client
            return

    def roundtrip(self) -> ProbeRun:
        """The round trip's outcome, waited for (once, whoever asks first, under the fact's own limit,
        ``doctor.facts.roundtrip.LIMIT_S``: no asker sets it for the others).
        Raises ``InterpreterError`` when the interpreter cannot run."""
        return self._rt_run.get()

    def _roundtrip_or_none(self) -> ProbeRun | None:
        try:
            return self.roundtrip()
        except InterpreterError:
            return None

    def cancel_roundtrip(self) -> None:
        """Stop a started round trip that nothing waits for yet (a check found it cannot work)."""
        with self._rt_lock:
            if self._rt_requested:
                return
            self._rt_cancelled = True
        try:
            started = self._rt_started.get()  # waits for a start in progress; starts nothing once cancelled
        except InterpreterError:
            return
        if started is not None:
            cancel_probe(started)

    @property
    def interpreter_chosen_by(self) -> str:
        """Why the judged interpreter was chosen, in words (the report's ``chosen_by``)."""
        return str(self.interpreter_chosen)

    def _gather_local(self) -> LocalFacts:
        # --mode jobs: the same probe also asks whether Ray's job client imports (jobs.client reads the
        # answer), so that the judged interpreter is run once per check; importing Ray gets the longer limit.
        jobs = self.options.mode == "jobs"
        return inspect_interpreter(
            self.interpreter_path,
            self.interpreter_chosen,
            environ=self.environ,
            cwd=self.cwd,
            job_client=jobs,
            timeout=JOB_CLIENT_TIMEOUT_S if jobs else PROBE_TIMEOUT_S,
        )

    def head(self) -> HeadFacts:
        return self._head.get()

    def docker_engine(self) -> DockerEngine:
        """This machine's Docker engine (answers?, version, NCPU, runtimes, containers, CLI plugins): the run's
        one Docker probe, started by ``prefetch`` for a target that runs on Docker, else asked when first
        needed. Read by gpu.docker, the compose lint's CPU rule, ``docker_cli`` and ``inside``."""
        return self._docker_engine.get()

    def docker_cli(self) -> DockerCli:
        """What this machine's Docker CLI can do (compose plugin, engine), asked once per run, when first needed."""
        return self._docker_cli.get()

    def inside(self) -> Any:
        """A compose cluster read from inside its containers (``doctor.head.containers.InsideView``), once
        per run, when a finding first needs it; None for other targets or where Docker cannot tell."""
        return self._inside.get()

    def _read_inside(self) -> Any:
        project = self.target.compose
        if project is None or self.target.compose_path is None or not self.target.compose_on_this_engine:
            return None
        engine = self.docker_engine()
        if not engine.answers or engine.containers == 0:
            return None  # no engine, or not one container on it: `docker ps` could find none of this file's
        from doctor.head.containers import inside_view

        return inside_view(Path(self.target.compose_path), project.head.name, self.environ)

    def local(self) -> LocalFacts:
        """Raises ``InterpreterError`` when the interpreter cannot be inspected."""
        return self._local.get()

    def _read_nodes(self) -> list[dict[str, Any]]:
        if self.dashboard is None:
            return []
        return read_nodes(self.dashboard)

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes (``/api/v0/nodes``), read once per run; raises ``DashboardError``."""
        return self._nodes.get()

    def node_counts(self) -> dict[str, int] | None:
        """The counts of the node list ``head.nodes`` judged (None when it was never read): for the report."""
        nodes = self._nodes.peek()
        return node_counts(nodes) if nodes is not None else None

    def _run_deep_probe(self) -> DeepProbe:
        if not self.options.deep:
            return DeepProbe(skipped="the deep probe runs only with --deep")
        dashboard = self.dashboard
        live = dashboard is not None and self.head().live
        return run_deep_probe(dashboard, live)

    def deep_probe(self) -> DeepProbe:
        """``--deep``: the probe job's answer (``doctor.facts.cluster.DeepProbe``), run once; never raises."""
        return self._deep.get()

    def probed_head_packages(self) -> dict[str, str] | None:
        """The head's installed distributions (canonical name -> version) from the ``--deep`` probe, else None."""
        if not self.options.deep:
            return None
        return self.deep_probe().head_packages

    def head_packages(self) -> HeadPackages | None:
        """The head's packages from the best source (``HeadPackages``), None when none has them.

        Raises ``UsageError`` for an unreadable ``--head-packages`` file: the user named it.
        """
        return self._head_packages.get()

    def _find_head_packages(self) -> HeadPackages | None:
        probed = self.probed_head_packages()
        if probed is not None:
            return HeadPackages(probed, PackagesOrigin.DEEP_PROBE)
        from_file = self.head_packages_from_file()
        if from_file is not None:
            return HeadPackages(from_file, PackagesOrigin.FILE, str(self.options.head_packages), complete=False)
        image = self.target.image  # HeadFacts.image is this same name (doctor.head.resolve)
        if image:
            from doctor.head import docker

            found = docker.image_facts(image, timeout=IMAGE_PROBE_LIMIT_S)
            if found is not None and found.packages:
                return HeadPackages(dict(found.packages), PackagesOrigin.IMAGE, f"{image} ({found.image_id[:19]})")
        return None

    def deep_probe_if_done(self) -> DeepProbe | None:
        """The deep probe's answer if it has come, without waiting: for the report."""
        return self._deep.peek()

    def _resolve(self) -> Any:
        from doctor.facts.resolution import Resolution, platform_of, resolve
        from doctor.local.tools import find_uv

        if not self.options.resolve:
            return Resolution("", "", None, skipped="--no-resolve: the requirements were not resolved")
        head = self.head()
        python = head.python_version
        platform, _ = platform_of(head.image or self.target.image)
        if not python:
            return Resolution("", platform, head.ray_version, skipped="the head's Python is unknown (see head.source)")
        return resolve(
            self.requirements,
            python=python,
            platform=platform,
            ray=head.ray_version,
            uv=find_uv(self.environ),
            environ=self.environ,
            client_extras=self.options.mode == "client",
        )

    def resolution(self) -> Any:
        """The project's pins resolved for the head's Python and platform
        (``doctor.facts.resolution.Resolution``), once per run; never raises for an index problem."""
        return self._resolution.get()

    def resolution_if_done(self) -> Any:
        return self._resolution.peek()

    def head_packages_from_file(self) -> dict[str, str] | None:
        """``--head-packages FILE``: the head's versions as a team keeps them (``name==version`` lines)."""
        return self._pins_file

    def _read_head_packages_file(self) -> dict[str, str] | None:
        path = self.options.head_packages
        if path is None:
            return None
        from doctor.package_skew import read_pins

        return read_pins(Path(path))

    def local_or_none(self) -> LocalFacts | None:
        try:
            return self.local()
        except InterpreterError:
            return None

    def prefetch(self) -> None:
        if self.target.image or self.target.compose is not None:
            self._docker_engine.start()  # gpu.docker, the compose lint, remedies and the inside view read it
        if self.target.compose_on_this_engine:
            self._inside.start()  # `docker ps` beside the dashboard's answers: head.nodes reads it after them
        self._head.start()
        if not self._probe_started:
            self._local.start()
        if self.options.deep and self.target.address is not None:
            # packages.head and deep.* all wait for this one job: start it now.
            self._deep.start()
        if self.requirements is not None and self.options.resolve:
            self._resolution.start()  # packages.resolution: uv's resolver runs beside the other checks
        if self.options.roundtrip and self.options.mode != "jobs" and self.target.address is not None:
            threading.Thread(target=self._roundtrip_early, daemon=True, name="roundtrip-early").start()
