"""Which cluster a run looks at, and why: the target, resolved once from the options.

Flags first, then ``RAY_ADDRESS``, then the shipped compose file. Who chose the address and the image
is kept as a type (``doctor.origin.Origin``): the token rule reads it, never a label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from doctor import remedies
from doctor.errors import UsageError
from doctor.options import DEFAULT_CLIENT_PORT, DEFAULT_DASHBOARD_PORT, DEFAULT_GCS_PORT, TargetOptions
from doctor.origin import Origin
from doctor.target import HeadAddress, is_loopback, named_by_user, parse_address
from doctor.text import ascii_int

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_COMPOSE = Path("compose") / "cpu-ray-cluster.yaml"


@dataclass
class Target:
    """What ``check`` looks at, why that was chosen, and where its head runs.

    ``kind``: ``address`` (``--address``/``RAY_ADDRESS``), ``compose`` (a compose cluster on this
    machine's Docker), ``cluster_file`` (a remote head described by a ray up YAML, a KubeRay
    resource or Helm values), ``image`` (``--image``, run here) or ``none``.
    """

    address: HeadAddress | None
    address_from: str | None  # in words, for messages and the report
    compose_path: Path | None
    compose: Any  # doctor.head.compose.ComposeProject | None
    image: str | None
    image_from: str | None
    cluster: Any = None  # doctor.head.cluster_files.ClusterSpec from --cluster-file
    address_origin: Origin | None = None  # who chose the address, as a type: the token rule reads this
    image_origin: Origin | None = None  # who chose the image (a flag, a compose file, a cluster file)

    @property
    def kind(self) -> str:
        if named_by_user(self.address_origin):
            return "address"
        if self.compose is not None:
            return "compose"
        if self.cluster is not None:
            return "cluster_file"
        return "image" if self.image else "none"

    @property
    def named_by_user(self) -> bool:
        """The address came from the user (a flag, ``RAY_ADDRESS``, a trusted settings file), not a cluster file."""
        return named_by_user(self.address_origin)

    @property
    def head_is_here(self) -> bool:
        """The head runs on this machine: checks about "this host" (its GPU driver, its Docker) apply.

        A compose cluster runs on this machine's Docker and an ``--image`` is run here; an address
        is here when it is a loopback one. A cluster file's head runs elsewhere (a cloud, Kubernetes).
        """
        kind = self.kind
        if kind in {"compose", "image"}:
            return True
        if kind == "address" and self.address is not None:
            return is_loopback(self.address.host)
        return False

    @property
    def compose_on_this_engine(self) -> bool:
        """A compose target reached on loopback: its published ports are this machine's, so its containers
        are this machine's Docker's, and can be read from inside (``doctor.head.containers``)."""
        return self.kind == "compose" and self.address is not None and is_loopback(self.address.host)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "head_is_here": self.head_is_here,
            "address": self.address.to_dict() if self.address else None,
            "address_from": self.address_from,
            "address_origin": self.address_origin.value if self.address_origin else None,
            "compose": str(self.compose_path) if self.compose_path else None,
            "image": self.image,
            "image_from": self.image_from,
            "image_origin": self.image_origin.value if self.image_origin else None,
            # The compose file's head service, by name: what fix's kernel is labelled with (doctor.fix.kernel).
            "head_service": self.compose.head.name if self.compose is not None else None,
        }
        if self.cluster is not None:
            out["cluster_file"] = self.cluster.to_dict()
        return out


def editable_compose(path: Path | str, named: bool, cwd: Path) -> bool:
    """Whether ``fix --cluster`` may edit this compose file: one the user named (``--compose``, a trusted
    settings file's key), or this folder's ``compose/cpu-ray-cluster.yaml``; never raydoctor's own copy."""
    return named or os.path.abspath(path) == os.path.abspath(cwd / DEFAULT_COMPOSE)


def default_compose(cwd: Path) -> Path | None:
    """The tutorial's compose file: ``compose/`` in the current folder first, then the source checkout
    this package runs from, then the copy an install ships (``doctor.resources.shipped``)."""
    from doctor.resources import shipped

    for base in (cwd, REPO_ROOT):
        if (base / DEFAULT_COMPOSE).is_file():
            return base / DEFAULT_COMPOSE
    return shipped(DEFAULT_COMPOSE)


def _compose_address(project: Any, options: TargetOptions) -> HeadAddress | None:
    """The address a laptop reaches the compose head at: its published ports on loopback."""
    head = project.head

    def container_port(flag: str, default: int) -> int:
        value = project.flag(head, flag)
        number = ascii_int(value, digits=5)  # '--dashboard-port=²' is no port
        return number if number is not None and 0 < number < 65536 else default

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
    origin: Origin | None = None
    if options.address:
        address, address_from = (
            parse_address(options.address, client_port=options.client_port, gcs_port=options.gcs_port),
            options.address_from or "--address",
        )
        origin = options.address_origin or Origin.FLAG
    compose_path = options.compose
    cluster_file = options.cluster_file
    if cluster_file is not None and compose_path is not None:
        raise UsageError("give --compose or --cluster-file, not both", hint="--cluster-file reads compose files too")
    if compose_path is None and cluster_file is None and address is None and not options.image:
        if environ.get("RAY_ADDRESS"):
            address = parse_address(environ["RAY_ADDRESS"], client_port=options.client_port, gcs_port=options.gcs_port)
            address_from, origin = "RAY_ADDRESS", Origin.ENVIRONMENT
        else:
            compose_path = default_compose(cwd)
            if compose_path is None:
                raise UsageError(
                    "no target: no --address, --compose or --image, no RAY_ADDRESS, and no compose/cpu-ray-cluster.yaml here",
                    hint=f"e.g. {remedies.raydoctor_check('127.0.0.1:8265', environ)}",
                )
    project = None
    image, image_from = options.image, "--image" if options.image else None
    image_origin = Origin.FLAG if options.image else None
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
            image_origin = Origin.CLUSTER_FILE
    if compose_path is not None:
        from doctor.head.compose import load_compose

        project = project or load_compose(Path(compose_path), environ)
        if image is None and project.head.image:
            image, image_from = project.head.image, f"compose service {project.head.name}"
            image_origin = Origin.COMPOSE
        if address is None:
            address = _compose_address(project, options)
            address_from = "compose published ports" if address else None
            origin = Origin.COMPOSE if address else None
    return Target(
        address,
        address_from,
        Path(compose_path) if compose_path else None,
        project,
        image,
        image_from,
        cluster,
        origin,
        image_origin,
    )
