"""The shared state of one check run: the target, and facts gathered once.

Facts are computed lazily and at most once, even when several checks ask at
the same moment from their threads; ``prefetch`` starts the slow ones (the
dashboard, the interpreter probe) before the checks are even created.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

from doctor.errors import UsageError
from doctor.head.dashboard import DashboardClient
from doctor.head.facts import HeadFacts
from doctor.head.resolve import gather_head_facts
from doctor.local.interpreter import InterpreterError, LocalFacts, choose_interpreter, inspect_interpreter
from doctor.local.requirements import Requirements, load_requirements
from doctor.options import DEFAULT_CLIENT_PORT, DEFAULT_DASHBOARD_PORT, DEFAULT_GCS_PORT, TargetOptions
from doctor.secrets import Token, load_token
from doctor.target import HeadAddress, parse_address

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMPOSE = Path("compose") / "cpu-ray-cluster.yaml"


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
        threading.Thread(target=lambda: self._quiet_get(), daemon=True).start()

    def _quiet_get(self) -> None:
        try:
            self.get()
        except Exception:
            pass


@dataclass
class Target:
    """What ``check`` looks at and why that was chosen."""

    address: HeadAddress | None
    address_from: str | None
    compose_path: Path | None
    compose: Any  # doctor.head.compose.ComposeProject | None
    image: str | None
    image_from: str | None
    cluster: Any = None  # doctor.head.cluster_files.ClusterSpec from --cluster-file

    @property
    def kind(self) -> str:
        if self.address_from in {"--address", "RAY_ADDRESS"}:
            return "address"
        if self.compose is not None:
            return "compose"
        return "image" if self.image else "none"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "address": self.address.to_dict() if self.address else None,
            "address_from": self.address_from,
            "compose": str(self.compose_path) if self.compose_path else None,
            "image": self.image,
            "image_from": self.image_from,
        }
        if self.cluster is not None:
            out["cluster_file"] = self.cluster.to_dict()
        return out


def default_compose(cwd: Path) -> Path | None:
    for base in (cwd, REPO_ROOT):
        if (base / DEFAULT_COMPOSE).is_file():
            return base / DEFAULT_COMPOSE
    return None


def _compose_address(project: Any, options: TargetOptions) -> HeadAddress | None:
    """The address a laptop reaches the compose head at: its published ports on loopback."""
    head = project.head

    def container_port(flag: str, default: int) -> int:
        value = project.flag(head, flag)
        return int(value) if value and str(value).isdigit() else default

    def host_port(port: int) -> int | None:
        pub = project.published(port)
        return pub.host_port if pub and pub.host_port else None

    dash = host_port(container_port("--dashboard-port", DEFAULT_DASHBOARD_PORT))
    if dash is None and not getattr(head, "network_mode", None) == "host":
        return None
    if dash is None:
        dash = container_port("--dashboard-port", DEFAULT_DASHBOARD_PORT)
    client = (
        options.client_port
        or host_port(container_port("--ray-client-server-port", DEFAULT_CLIENT_PORT))
        or DEFAULT_CLIENT_PORT
    )
    gcs = options.gcs_port or host_port(container_port("--port", DEFAULT_GCS_PORT)) or DEFAULT_GCS_PORT
    pub = project.published(container_port("--dashboard-port", DEFAULT_DASHBOARD_PORT))
    host = pub.host_ip if pub and pub.host_ip and pub.host_ip not in {"0.0.0.0", "::"} else "127.0.0.1"
    return HeadAddress(host, dash, client, gcs, "http", f"compose {project.path.name}")


def resolve_target(options: TargetOptions, environ: Mapping[str, str], cwd: Path) -> Target:
    """Pick the target: flags first, then ``RAY_ADDRESS``, then the shipped compose file."""
    address = None
    address_from = None
    if options.address:
        address, address_from = (
            parse_address(options.address, client_port=options.client_port, gcs_port=options.gcs_port),
            "--address",
        )
    compose_path = options.compose
    cluster_file = options.cluster_file
    if cluster_file is not None and compose_path is not None:
        raise UsageError("give --compose or --cluster-file, not both", hint="--cluster-file reads compose files too")
    if compose_path is None and cluster_file is None and address is None and not options.image:
        if environ.get("RAY_ADDRESS"):
            address = parse_address(environ["RAY_ADDRESS"], client_port=options.client_port, gcs_port=options.gcs_port)
            address_from = "RAY_ADDRESS"
        else:
            compose_path = default_compose(cwd)
            if compose_path is None:
                raise UsageError(
                    "no target: no --address, --compose or --image, no RAY_ADDRESS, and no compose/cpu-ray-cluster.yaml here",
                    hint="e.g. raydoctor check --address 127.0.0.1:8265",
                )
    project = None
    image, image_from = options.image, "--image" if options.image else None
    if image is not None:
        from doctor.head.docker import validate_image  # a name Docker would read as an option is a usage error

        validate_image(image, "--image")
    cluster = None
    if cluster_file is not None:
        from doctor.head.cluster_files import load_cluster_file

        cluster = load_cluster_file(Path(cluster_file), environ)
        if cluster.compose is not None:
            compose_path, project = Path(cluster_file), cluster.compose
        elif image is None and cluster.head_image:
            image, image_from = cluster.head_image, f"{cluster.title}, {cluster.head.where}"
    if compose_path is not None:
        from doctor.head.compose import load_compose

        project = project or load_compose(Path(compose_path), environ)
        if image is None and project.head.image:
            image, image_from = project.head.image, f"compose service {project.head.name}"
        if address is None:
            address = _compose_address(project, options)
            address_from = "compose published ports" if address else None
    return Target(
        address, address_from, Path(compose_path) if compose_path else None, project, image, image_from, cluster
    )


class CheckContext:
    """Everything checks need; the slow facts are computed once and shared."""

    def __init__(
        self, options: TargetOptions, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.options = options
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.cwd = cwd or Path.cwd()
        self.target = resolve_target(options, self.environ, self.cwd)
        self.token: Token | None = load_token(self.environ)
        self.interpreter_path, self.interpreter_chosen_by = choose_interpreter(options.python, self.environ)
        self.requirements_path = self._requirements_path()
        self.requirements: Requirements | None = (
            load_requirements(self.requirements_path) if self.requirements_path else None
        )
        self._dashboard: DashboardClient | None = None
        self._head = Lazy(self._gather_head)
        self._local = Lazy(self._gather_local)
        self._deep = Lazy(self._run_deep_probe)
        self._nodes = Lazy(self._read_nodes)

    def _requirements_path(self) -> Path | None:
        if self.options.requirements is not None:
            return Path(self.options.requirements)
        default = self.cwd / "packages.txt"
        return default if default.is_file() else None

    @property
    def dashboard(self) -> DashboardClient | None:
        if self._dashboard is None and self.target.address is not None:
            self._dashboard = DashboardClient(self.target.address, timeout=self.options.timeout, token=self.token)
        return self._dashboard

    def _gather_head(self) -> HeadFacts:
        return gather_head_facts(self.dashboard, self.target.image)

    def _gather_local(self) -> LocalFacts:
        return inspect_interpreter(self.interpreter_path, self.interpreter_chosen_by)

    def head(self) -> HeadFacts:
        return self._head.get()

    def local(self) -> LocalFacts:
        """Raises ``InterpreterError`` when the interpreter cannot be inspected."""
        return self._local.get()

    def _read_nodes(self) -> list[dict[str, Any]]:
        from doctor.checks.nodes import read_nodes

        if self.dashboard is None:
            return []
        return read_nodes(self.dashboard)

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes (``/api/v0/nodes``), read once per run; raises ``DashboardError``."""
        return self._nodes.get()

    def _run_deep_probe(self) -> Any:
        from doctor.checks.deep import run_deep_probe

        return run_deep_probe(self)

    def deep_probe(self) -> Any:
        """``--deep``: the probe job's answer (doctor.checks.deep.DeepProbe), run once; fills ``head().packages``."""
        return self._deep.get()

    def local_or_none(self) -> LocalFacts | None:
        try:
            return self.local()
        except InterpreterError:
            return None

    def prefetch(self) -> None:
        self._head.start()
        self._local.start()
