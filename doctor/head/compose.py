"""Load a Docker Compose file that runs a Ray cluster, without Docker or Ray.

raydoctor reads the compose file the user starts their cluster from to learn
what the head runs (image, ``ray start`` flags, published ports) before any
container exists. Compose's own rules are followed where they change what we
see: variables are interpolated from the environment and a ``.env`` file
beside the file, per string value of the parsed YAML (so YAML quoting is
respected); ``command:`` may be a string or a list; ``bash -c "..."``
wrappers are looked through so that the ``ray start`` inside is found
(``doctor.parsers.shell``), and its options are read by the one `ray start`
parser (``doctor.parsers.ray_start``). The YAML loader refuses alias bombs
(``doctor.parsers.yaml_load``), and bad values are described by kind, never
with ``str()`` of a whole structure.

``ComposeProject.secret_values()`` gives what must never be shown (secret
flag values, secret-named ``environment:`` values) to the run's masking pass.

Every problem with the file becomes a one-line ``UsageError`` naming the file
(and the service, where there is one): nothing else may escape.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from doctor.errors import DoctorError, UsageError
from doctor.parsers.ray_start import (
    RayStartCall,
    RayStartLine,
    find_ray_starts,
    first_ray_start,
    is_secret_name,
)
from doctor.parsers.shell import split_shell
from doctor.parsers.shell import unwrap_shells as _unwrap
from doctor.parsers.yaml_load import BoundedLoader, describe, read_text, yaml_error
from doctor.parsers.yaml_load import kind as yaml_kind
from doctor.text import ascii_int, clip

__all__ = [
    "DEFAULT_GCS_PORT",
    "ComposeProject",
    "ComposeService",
    "MIN_SECRET_LEN",
    "PublishedPort",
    "interpolate",
    "load_compose",
    "load_tree",
    "parse_size",
    "reserved_gpu_count",
]

DEFAULT_GCS_PORT = 6379

MIN_SECRET_LEN = 4
DOTENV_MAX_BYTES = 1024 * 1024  # a .env beside a compose file is a few lines; never read whole past this

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class PublishedPort:
    """One container port published on the host.

    ``host_ip`` None means all interfaces; ``host_port`` None means Docker
    picks one (ephemeral, or one of a host range).
    """

    host_ip: str | None
    host_port: int | None
    container_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class GpuRequest:
    """A service's NVIDIA device request (``deploy.resources.reservations.devices``), as written: the
    driver ("" where the file names none) and the capabilities, for the error Docker gives without it."""

    driver: str
    capabilities: tuple[str, ...]


@dataclass
class ComposeService:
    """One service, interpolated, with the parts raydoctor judges pulled out."""

    name: str
    image: str | None
    command: list[str]  # `bash -c "..."` is kept and the inner words follow it
    ports: list[PublishedPort]
    networks: dict[str, dict]
    network_mode: str | None
    shm_size: str | None
    gpu_reservation: bool
    limits: dict[str, str]
    raw: dict
    entrypoint: list[str] = field(default_factory=list)
    # What the container runs: entrypoint + command, wrappers looked through.
    argv: list[str] = field(default_factory=list)
    # For each of ``ports``, the index of the ``ports:`` entry it comes from (a range gives several).
    port_entries: list[int] = field(default_factory=list)
    gpu_request: GpuRequest | None = None  # the first NVIDIA device request of deploy's reservations

    @property
    def cpus_limit(self) -> float | None:
        """``deploy.resources.limits.cpus`` as a number (None: not set, or not a positive number)."""
        try:
            cpus = float(self.limits.get("cpus", ""))
        except ValueError:
            return None
        return cpus if math.isfinite(cpus) and cpus > 0 else None

    def cpus_refusal(self, engine_cpus: int | None) -> str | None:
        """What Docker answers when it creates this service's container on an engine with ``engine_cpus``
        CPUs and its CPU limit is more (moby ``daemon/daemon_unix.go``, verifyContainerResources), or None."""
        cpus = self.cpus_limit
        if cpus is None or not engine_cpus or cpus <= engine_cpus:
            return None
        return f"Range of CPUs is from 0.01 to {engine_cpus}.00, as there are only {engine_cpus} CPUs available"

    @property
    def ray_start(self) -> RayStartCall | None:
        """The first `ray start` the container runs (doctor.parsers.ray_start), or None."""
        return first_ray_start(self.argv or self.command)

    @property
    def ray_start_args(self) -> list[str] | None:
        """The words after `ray start`, up to the end of that shell command."""
        call = self.ray_start
        return call.args if call is not None else None

    @property
    def ray_start_line(self) -> RayStartLine | None:
        """The `ray start` options, parsed against the one option table."""
        call = self.ray_start
        return call.line if call is not None else None

    @property
    def is_head(self) -> bool:
        """True when the service runs `ray start --head`."""
        line = self.ray_start_line
        return line is not None and line.has("--head")

    def environment(self) -> dict[str, str]:
        """The service's ``environment:`` (a mapping or a list of ``KEY=VALUE``), as strings."""
        raw = self.raw.get("environment")
        out: dict[str, str] = {}
        if isinstance(raw, dict):
            for key, value in raw.items():
                if value is not None and not isinstance(value, (dict, list)):
                    out[str(key)] = str(value)
        elif isinstance(raw, list):
            for item in raw:
                if isinstance(item, str) and "=" in item:
                    key, _, value = item.partition("=")
                    out[key] = value
        return out

    def secret_values(self) -> set[str]:
        """Values of secret-looking `ray start` flags and ``environment:`` keys (see ``ComposeProject``)."""
        values: set[str] = set()
        for call in find_ray_starts(self.argv or self.command):
            values |= call.line.secret_values()
        values |= {v for k, v in self.environment().items() if is_secret_name(k)}
        return {v for v in values if len(v) >= MIN_SECRET_LEN}


@dataclass
class ComposeProject:
    """A compose file seen as a Ray cluster: one head and its workers."""

    path: Path
    services: dict[str, ComposeService]
    networks: dict[str, dict]
    head: ComposeService
    workers: list[ComposeService]
    # Variables interpolated into the file from the environment or the .env beside it: name -> value.
    interpolated: dict[str, str] = field(default_factory=dict)

    def published(self, container_port: int) -> PublishedPort | None:
        """The head's publication of ``container_port`` (TCP first), if any.

        ``network_mode: host`` publishes nothing here: there the container's
        ports are the host's and ``ports:`` is ignored by Docker.
        """
        if self.head.network_mode == "host":
            return None
        found = [p for p in self.head.ports if p.container_port == container_port]
        found.sort(key=lambda p: p.protocol != "tcp")
        return found[0] if found else None

    def flag(self, service: ComposeService, name: str) -> str | None:
        """Value of a `ray start` flag (``--x=v`` or ``--x v``); "" for a bare flag."""
        line = service.ray_start_line
        return None if line is None else line.value(name)

    def secret_values(self) -> set[str]:
        """What must never be shown: values of `ray start` flags named like a password, token, secret
        or key (``--redis-password=…``, in either form, interpolated or not) and of ``environment:``
        keys named so, in every service. Values shorter than ``MIN_SECRET_LEN`` are left out: masking
        ``1`` or ``on`` everywhere would garble the output and protect nothing.
        """
        values: set[str] = set()
        for svc in self.services.values():
            values |= svc.secret_values()
        return values

    def gcs_port(self) -> int:
        """The head's GCS port (`--port`, default 6379)."""
        value = self.flag(self.head, "--port")
        try:
            return int(value) if value else DEFAULT_GCS_PORT
        except ValueError:
            return DEFAULT_GCS_PORT


# --------------------------------------------------------------------------
# interpolation


class _Recording(Mapping[str, str]):
    """The variables, remembering which were read (for ``--redact``: values from the user's environment)."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.used: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        value = self._values[key]
        self.used[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def interpolate(text: str, variables: Mapping[str, str], *, where: str = "") -> str:
    """Expand Compose's ``$VAR``/``${VAR...}``/``$$`` forms in one string.

    Supports ``:-``/``-`` (default), ``:?``/``?`` (required, UsageError),
    ``:+``/``+`` (replacement) and nesting inside defaults. A ``$`` not
    followed by a name, ``{`` or ``$`` stays literal, as in Compose.
    ``where`` prefixes error messages (file and service).
    """
    if not isinstance(text, str):
        raise UsageError(f"{where}cannot interpolate a {type(text).__name__}")
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                raise UsageError(
                    f"{where}unclosed '${{' in {clip(text)!r}",
                    hint="close it with '}' or write '$$' for a literal '$'",
                )
            out.append(_expand(text[i + 2 : end], variables, where, text))
            i = end + 1
        else:
            match = _NAME.match(text, i + 1)
            if match:
                out.append(variables.get(match.group(), ""))
                i = match.end()
            else:
                out.append("$")
                i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _expand(body: str, variables: Mapping[str, str], where: str, text: str) -> str:
    match = _NAME.match(body)
    if not match:
        raise UsageError(
            f"{where}invalid interpolation '${{{clip(body)}}}' in {clip(text)!r}",
            hint="use ${NAME}, ${NAME:-default} or '$$' for a literal '$'",
        )
    name, rest = match.group(), body[match.end() :]
    value = variables.get(name)
    if rest == "":
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op) :]
            break
    else:
        raise UsageError(
            f"{where}invalid interpolation '${{{clip(body)}}}' in {clip(text)!r}",
            hint="use ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}",
        )
    is_set = value is not None
    non_empty = bool(value)
    present = non_empty if op.startswith(":") else is_set
    kind = op[-1]
    if kind == "-":
        return value if present else interpolate(arg, variables, where=where)  # type: ignore[return-value]
    if kind == "+":
        return interpolate(arg, variables, where=where) if present else ""
    if present:
        return value  # type: ignore[return-value]
    msg = _one_line(interpolate(arg, variables, where=where)) or "required variable is not set"
    raise UsageError(
        f"{where}${{{name}}} is {'empty' if is_set else 'unset'}: {msg}",
        hint=f"set {name} in the environment or in the .env file beside the compose file",
    )


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _read_dotenv(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Read ``KEY=VALUE`` lines; later lines and the environment see earlier keys."""
    from doctor import files

    try:
        text = files.read_text(path, DOTENV_MAX_BYTES)
    except files.Unreadable as exc:
        if exc.missing:
            return {}
        raise UsageError(
            f"{path}: cannot read: {_one_line(exc.reason)}",
            hint="fix or remove the .env file beside the compose file",
        ) from None
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not _NAME.fullmatch(key):
            raise UsageError(
                f"{path}:{lineno}: not a KEY=VALUE line: {clip(line)!r}",
                hint="write one NAME=value per line, or '#' for a comment",
            )
        if not sep:
            continue  # a bare name: Compose takes it from the environment
        values[key] = _dotenv_value(value.strip(), {**values, **environ}, f"{path}:{lineno}: ")
    return values


def _dotenv_value(value: str, known: Mapping[str, str], where: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        if end < 0:
            raise UsageError(f"{where}unclosed {quote} quote", hint=f"close the value with {quote}")
        inner = value[1:end]
        if quote == "'":
            return inner
        inner = inner.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        return interpolate(inner, known, where=where)
    value = re.split(r"\s#", value, maxsplit=1)[0].rstrip()
    return interpolate(value, known, where=where)


def _interpolate_tree(tree: Any, variables: Mapping[str, str], where: str) -> Any:
    """Interpolate every string value (not keys), keeping YAML aliases shared.

    Memoising by identity keeps an alias bomb linear and a recursive
    structure finite.
    """
    memo: dict[int, Any] = {}

    def walk(node: Any, ctx: str) -> Any:
        if isinstance(node, str):
            return interpolate(node, variables, where=ctx)
        if isinstance(node, (dict, list)):
            if id(node) in memo:
                return memo[id(node)]
            if isinstance(node, dict):
                new_d: dict[Any, Any] = {}
                memo[id(node)] = new_d
                for key, value in node.items():
                    new_d[key] = walk(value, ctx)
                return new_d
            new_l: list[Any] = []
            memo[id(node)] = new_l
            for item in node:
                new_l.append(walk(item, ctx))
            return new_l
        return node

    if not isinstance(tree, dict):
        return walk(tree, where)
    out: dict[Any, Any] = {}
    for key, value in tree.items():
        if key == "services" and isinstance(value, dict):
            services: dict[Any, Any] = {}
            for name, svc in value.items():
                services[name] = walk(svc, f"{where}service {name}: ")
            out[key] = services
        else:
            out[key] = walk(value, where)
    return out


# --------------------------------------------------------------------------
# sizes


_SIZE = re.compile(r"([0-9]{1,20}(?:\.[0-9]{1,20})?)\s*([kmgtp]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str | int) -> int:
    """Bytes in a Docker size (``'2gb'``, ``'64m'``, ``'1.5g'``, ``1024``).

    Units are binary, as in Docker's ``RAMInBytes``: ``1k`` is 1024.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise UsageError(f"not a size: {text!r}", hint="write a size such as '2gb' or '512m'")
    if isinstance(text, (int, float)):
        if not math.isfinite(text) or text < 0:
            raise UsageError(f"not a size: {text!r}", hint="write a size such as '2gb' or '512m'")
        return int(text)
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"not a size: {clip(text)!r}", hint="write a size such as '2gb' or '512m'")
    number = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
    return int(number * _UNITS[match.group(2).lower()])


# --------------------------------------------------------------------------
# loading


def load_compose(path: Path, environ: Mapping[str, str] | None = None) -> ComposeProject:
    """Read, interpolate and interpret a compose file as a Ray cluster.

    Variables come from ``.env`` beside the file, overridden by ``environ``
    (default ``os.environ``). Raises UsageError for anything wrong with it.
    """
    try:
        return _load(Path(path), environ)
    except DoctorError:
        raise
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply to read", hint="simplify the compose file") from None
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        OverflowError,
    ) as exc:
        # Defence in depth: a shape the checks below missed is still the
        # user's file's fault, not a crash.
        raise UsageError(
            f"{path}: unexpected structure: {clip(str(exc) or type(exc).__name__)}",
            hint="check it with `docker compose -f FILE config`",
        ) from None


class _ComposeLoader(BoundedLoader):
    """A bounded SafeLoader (aliases capped, see doctor.parsers.yaml_load) reading ints as YAML 1.2 does,
    as Compose's Go parser does.

    PyYAML's YAML 1.1 reads an unquoted ``22:22`` as the base-60 int 1342,
    which would turn a short port mapping into garbage.
    """


_ComposeLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ComposeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def load_tree(text: str, path: Path) -> Any:
    """The file's YAML as this module reads it, before interpolation (what an editor of the file,
    ``doctor.fix.cluster_file``, must see the same); a one-line ``UsageError`` for bad YAML."""
    try:
        return yaml.load(text, Loader=_ComposeLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc, "fix the YAML; `docker compose -f FILE config` shows the same error") from None


def _load(path: Path, environ: Mapping[str, str] | None) -> ComposeProject:
    text = read_text(path, "compose file", "pass the compose file with --compose PATH")
    try:
        tree = yaml.load(text, Loader=_ComposeLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc, "fix the YAML; `docker compose -f FILE config` shows the same error") from None
    if not isinstance(tree, dict):
        kind = "empty" if tree is None else f"a {yaml_kind(tree)}"
        raise UsageError(
            f"{path}: is {kind}, not a compose mapping",
            hint="a compose file is a mapping with a 'services:' key",
        )

    env = dict(os.environ if environ is None else environ)
    variables = _Recording({**_read_dotenv(path.parent / ".env", env), **env})
    tree = _interpolate_tree(tree, variables, f"{path}: ")

    services_raw = tree.get("services")
    if services_raw is None or services_raw == {} or services_raw == []:
        raise UsageError(f"{path}: has no services", hint="define the Ray head under 'services:'")
    if not isinstance(services_raw, dict):
        raise UsageError(
            f"{path}: 'services' is a {yaml_kind(services_raw)}, not a mapping",
            hint="write 'services:' as a mapping of name to service",
        )

    networks_raw = tree.get("networks") or {}
    if not isinstance(networks_raw, dict):
        raise UsageError(
            f"{path}: top-level 'networks' is a {yaml_kind(networks_raw)}, not a mapping",
            hint="write 'networks:' as a mapping of name to settings",
        )
    networks = {str(k): (v if isinstance(v, dict) else {}) for k, v in networks_raw.items()}

    services: dict[str, ComposeService] = {}
    for name, raw in services_raw.items():
        services[str(name)] = _service(path, str(name), raw)

    heads = [s for s in services.values() if s.is_head]
    if not heads:
        raise UsageError(
            f"{path}: no service runs `ray start --head`",
            hint="point --compose at the file that starts the Ray head",
        )
    if len(heads) > 1:
        raise UsageError(
            f"{path}: several services run `ray start --head`: {', '.join(s.name for s in heads)}",
            hint="keep one head per compose file",
        )
    head = heads[0]
    workers = [s for s in services.values() if s is not head and s.ray_start_args is not None]
    return ComposeProject(path, services, networks, head, workers, interpolated=dict(variables.used))


def _service(path: Path, name: str, raw: Any) -> ComposeService:
    where = f"{path}: service {name}"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UsageError(
            f"{where}: is a {yaml_kind(raw)}, not a mapping",
            hint="write the service as 'image: ...', 'command: ...' keys",
        )
    image = raw.get("image")
    if image is not None:
        if isinstance(image, (dict, list)):
            raise UsageError(
                f"{where}: 'image' is a {yaml_kind(image)}",
                hint="write image: NAME:TAG",
            )
        image = str(image)
    raw_cmd = _argv(where, "command", raw.get("command"))
    raw_entry = _argv(where, "entrypoint", raw.get("entrypoint"))
    command, entrypoint = _unwrap(raw_cmd), _unwrap(raw_entry)
    # `entrypoint: [bash, -c]` + `command: ["ray start ..."]` only makes
    # sense joined, so the argv is unwrapped as one.
    argv = _unwrap(raw_entry + raw_cmd) if raw_entry else command

    ports_raw = raw.get("ports") or []
    if not isinstance(ports_raw, list):
        raise UsageError(
            f"{where}: 'ports' is a {yaml_kind(ports_raw)}, not a list",
            hint="write ports as a list",
        )
    ports: list[PublishedPort] = []
    port_entries: list[int] = []
    for index, item in enumerate(ports_raw):
        entry = _ports(where, item)
        ports.extend(entry)
        port_entries.extend([index] * len(entry))

    nets_raw = raw.get("networks")
    networks: dict[str, dict] = {}
    if isinstance(nets_raw, list):
        for item in nets_raw:
            if isinstance(item, (dict, list)):
                raise UsageError(
                    f"{where}: network entry {describe(item)} is not a name",
                    hint="list network names",
                )
            networks[str(item)] = {}
    elif isinstance(nets_raw, dict):
        for key, value in nets_raw.items():
            if value is not None and not isinstance(value, dict):
                raise UsageError(
                    f"{where}: settings of network {key} are a {yaml_kind(value)}",
                    hint="write e.g. 'ipv4_address: 172.29.0.15' under the network",
                )
            networks[str(key)] = dict(value or {})
    elif nets_raw is not None:
        raise UsageError(
            f"{where}: 'networks' is a {yaml_kind(nets_raw)}",
            hint="list network names",
        )

    network_mode = raw.get("network_mode")
    network_mode = None if network_mode is None else _scalar(where, "network_mode", network_mode)
    shm = raw.get("shm_size")
    shm_size = None if shm is None else _scalar(where, "shm_size", shm)

    deploy = _mapping(where, "deploy", raw.get("deploy"))
    resources = _mapping(where, "deploy.resources", deploy.get("resources"))
    limits_raw = _mapping(where, "deploy.resources.limits", resources.get("limits"))
    limits = {
        str(k): ("" if v is None else _scalar(where, f"deploy.resources.limits.{k}", v)) for k, v in limits_raw.items()
    }
    reservations = _mapping(where, "deploy.resources.reservations", resources.get("reservations"))
    devices = reservations.get("devices") or []
    if not isinstance(devices, list):
        raise UsageError(
            f"{where}: 'deploy.resources.reservations.devices' is not a list",
            hint="write devices as a list",
        )
    requests = [_gpu_request(d) for d in devices if _is_gpu_device(d)]
    gpu = bool(requests) or bool(raw.get("gpus")) or raw.get("runtime") == "nvidia"

    return ComposeService(
        name=name,
        image=image,
        command=command,
        ports=ports,
        networks=networks,
        network_mode=network_mode,
        shm_size=shm_size,
        gpu_reservation=gpu,
        limits=limits,
        raw=raw,
        entrypoint=entrypoint,
        argv=argv,
        port_entries=port_entries,
        gpu_request=requests[0] if requests else None,
    )


def _gpu_request(device: dict) -> GpuRequest:
    caps = device.get("capabilities")
    caps_list = caps if isinstance(caps, list) else [caps]
    return GpuRequest(str(device.get("driver") or ""), tuple(str(c) for c in caps_list if c is not None))


def _is_gpu_device(device: Any) -> bool:
    """A device request that gives the container NVIDIA GPUs."""
    if not isinstance(device, dict):
        return False
    caps = device.get("capabilities")
    caps_list = caps if isinstance(caps, list) else [caps]
    has_gpu_cap = any(str(c).lower() == "gpu" for c in caps_list if c is not None)
    driver = device.get("driver")
    return has_gpu_cap and (driver is None or str(driver).lower() == "nvidia")


def _mapping(where: str, key: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(
            f"{where}: '{key}' is a {yaml_kind(value)}, not a mapping",
            hint=f"write '{key}' as a mapping",
        )
    return value


def _scalar(where: str, key: str, value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise UsageError(
            f"{where}: '{key}' is a {yaml_kind(value)}, not a value",
            hint=f"write '{key}' as a single value",
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _argv(where: str, key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            words = split_shell(value, operators=False)
        except ValueError:
            raise UsageError(
                f"{where}: '{key}' has an unclosed quote: {clip(value)!r}",
                hint="close the quote",
            ) from None
    elif isinstance(value, list):
        words = []
        for item in value:
            if isinstance(item, (dict, list)):
                raise UsageError(
                    f"{where}: '{key}' holds a {yaml_kind(item)}",
                    hint=f"write '{key}' as a list of strings",
                )
            words.append(_scalar(where, key, item) if item is not None else "")
    else:
        raise UsageError(
            f"{where}: '{key}' is a {yaml_kind(value)}",
            hint=f"write '{key}' as a string or a list",
        )
    return words


def _port_number(where: str, text: str, spec: Any) -> int:
    text = text.strip()
    number = ascii_int(text, digits=5)
    if number is None or not 0 < number <= 65535:
        raise UsageError(
            f"{where}: port {describe(spec)}: {text!r} is not a port number",
            hint="ports are 1-65535",
        )
    return number


def _port_range(where: str, text: str, spec: Any) -> list[int]:
    if "-" in text:
        lo_s, _, hi_s = text.partition("-")
        lo, hi = _port_number(where, lo_s, spec), _port_number(where, hi_s, spec)
        if hi < lo:
            raise UsageError(
                f"{where}: port range {describe(spec)} runs backwards",
                hint="write LOW-HIGH",
            )
        return list(range(lo, hi + 1))
    return [_port_number(where, text, spec)]


def _ports(where: str, spec: Any) -> list[PublishedPort]:
    """One ``ports:`` entry; a range becomes one PublishedPort per port.

    ``host-range:single`` (Docker picks a host port from the range) gives
    ``host_port`` None.
    """
    if isinstance(spec, bool) or spec is None:
        raise UsageError(
            f"{where}: port entry {spec!r} is not a port",
            hint="write e.g. '127.0.0.1:8265:8265'",
        )
    if isinstance(spec, int):
        return [PublishedPort(None, None, _port_number(where, str(spec), spec))]
    if isinstance(spec, dict):
        return _long_port(where, spec)
    if not isinstance(spec, str):
        raise UsageError(
            f"{where}: port entry {describe(spec)} is not a port",
            hint="write e.g. '127.0.0.1:8265:8265'",
        )
    text, protocol = spec.strip(), "tcp"
    if "/" in text:
        text, _, protocol = text.rpartition("/")
        protocol = protocol.lower()
        if protocol not in ("tcp", "udp", "sctp"):
            raise UsageError(
                f"{where}: port {spec!r}: unknown protocol {protocol!r}",
                hint="use /tcp or /udp",
            )
    host_ip: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise UsageError(
                f"{where}: port {spec!r}: bad IPv6 address",
                hint="write '[::1]:8265:8265'",
            )
        host_ip, text = text[1:end], text[end + 2 :]
        parts = text.split(":")
        if len(parts) != 2:
            raise UsageError(
                f"{where}: port {spec!r} is not IP:HOST:CONTAINER",
                hint="write '[::1]:8265:8265'",
            )
        host_part, container_part = parts
    else:
        parts = text.rsplit(":", 2)
        if len(parts) == 1:
            host_part, container_part = "", parts[0]
        elif len(parts) == 2:
            host_part, container_part = parts
            if host_part == "":
                raise UsageError(
                    f"{where}: port {spec!r} has an empty host port",
                    hint="write 'HOST:CONTAINER'",
                )
        else:
            host_ip, host_part, container_part = parts
    if host_ip is not None:
        _check_ip(where, host_ip, spec)
    containers = _port_range(where, container_part, spec)
    hosts: list[int | None]
    if host_part == "":
        hosts = [None] * len(containers)
    else:
        host_ports = _port_range(where, host_part, spec)
        if len(containers) == 1 and len(host_ports) > 1:
            hosts = [None]
        elif len(host_ports) != len(containers):
            raise UsageError(
                f"{where}: port {spec!r}: host and container ranges differ in length",
                hint="publish ranges of equal length",
            )
        else:
            hosts = list(host_ports)
    return [PublishedPort(host_ip, h, c, protocol) for h, c in zip(hosts, containers)]


def _check_ip(where: str, host_ip: str, spec: Any) -> None:
    try:
        ipaddress.ip_address(host_ip)
    except ValueError:
        raise UsageError(
            f"{where}: port {describe(spec)}: {host_ip!r} is not an IP address",
            hint="write '127.0.0.1:8265:8265'",
        ) from None


def _long_port(where: str, spec: dict) -> list[PublishedPort]:
    target = spec.get("target")
    if target is None:
        raise UsageError(
            f"{where}: port {describe(spec)} has no 'target'",
            hint="add target: CONTAINER_PORT",
        )
    if isinstance(target, (bool, dict, list)):
        raise UsageError(
            f"{where}: port target {describe(target)} is not a port number",
            hint="ports are 1-65535",
        )
    container = _port_number(where, str(target), spec)
    published = spec.get("published")
    protocol = str(spec.get("protocol") or "tcp").lower()
    host_ip = spec.get("host_ip")
    if isinstance(host_ip, (dict, list)):
        raise UsageError(
            f"{where}: port host_ip {describe(host_ip)} is not an address",
            hint="write host_ip: 127.0.0.1",
        )
    host_ip = None if host_ip in (None, "") else str(host_ip)
    if host_ip is not None:
        _check_ip(where, host_ip, spec)
    if published is None or published == "":
        return [PublishedPort(host_ip, None, container, protocol)]
    if isinstance(published, (bool, dict, list)):
        raise UsageError(
            f"{where}: port published {describe(published)} is not a port",
            hint="ports are 1-65535",
        )
    hosts = _port_range(where, str(published), spec)
    return [PublishedPort(host_ip, hosts[0] if len(hosts) == 1 else None, container, protocol)]


def reserved_gpu_count(raw: Any) -> int | None:
    """How many GPUs a service (its raw mapping) reserves, when a number says so; None for "all"."""
    try:
        devices = raw["deploy"]["resources"]["reservations"]["devices"]
    except (KeyError, TypeError):
        return None
    total = 0
    for dev in devices if isinstance(devices, list) else []:
        if not isinstance(dev, dict):
            continue
        count = dev.get("count")
        if isinstance(dev.get("device_ids"), list):
            total += len(dev["device_ids"])
        elif isinstance(count, int) and not isinstance(count, bool):
            total += count
        else:
            return None  # "all", or unspecified (Docker reads it as all)
    return total
