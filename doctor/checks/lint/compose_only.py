"""Rules about Docker Compose alone: how a container runs `ray start`, its network, memory and limits.

KubeRay and the cluster launcher start Ray themselves (``--block``,
``--address``, ``--dashboard-host`` are the operator's business there), and
shared memory, published ports, ``network_mode``, subnets and
``deploy.resources.limits`` are Compose's words; so these rules judge
compose files only (``ctx.project`` is the ``ComposeProject``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re

from doctor.checks.lint.framework import Item, LintContext
from doctor.checks.lint.routes import IPNetwork
from doctor.errors import UsageError
from doctor.head.compose import ComposeService, parse_size
from doctor.model import Change, Edit, Op, Status
from doctor.parsers.ray_start import RayStartLine, first_ray_start

__all__ = [
    "block",
    "dashboard_host",
    "network_mode",
    "published_ports",
    "resource_limits",
    "shm_size",
    "subnet",
    "worker_address",
]

DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_CLIENT_PORT = 10001
MIN_SHM_BYTES = 512 * 1024 * 1024
_ALL_INTERFACES = {None, "", "0.0.0.0", "::", "[::]"}
_KEEPALIVE = re.compile(r"^(sleep (inf|infinity)|tail -f\b.*|wait\b.*)$")
_LIMIT_KEYS = ("cpus", "memory", "pids", "devices")
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]
_FALSE = ("0", "false", "f", "no", "n", "off")


def _services(ctx: LintContext) -> list[ComposeService]:
    project = ctx.project
    return [project.head, *project.workers]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def _line(svc: ComposeService) -> RayStartLine:
    """The service's `ray start` options (an empty line for one that runs none)."""
    return svc.ray_start_line or RayStartLine([])


def _command_place(svc: ComposeService) -> str:
    return f"services.{svc.name}.command"


def _line_edit(
    ctx: LintContext,
    svc: ComposeService,
    line: RayStartLine,
    note: str,
    *,
    remove: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
    first: bool = False,
) -> Edit:
    """The service's `ray start`, corrected: secret values shown as ``***``, and the note says so.

    ``remove``/``add``/``first`` say the same correction as data (``Op.RAY_START``, how ``line``
    was made from the service's line); a `ray start` that ``command:`` does not hold (it comes
    from ``entrypoint:``) gets none, since its key would be another.
    """
    if line.secret_values():
        note += "; keep your own value where it shows ***"
    change = None
    if first_ray_start(svc.command) is not None:
        change = Change(Op.RAY_START, ("services", svc.name, "command"), remove=remove, add=add, first=first)
    return ctx.edit(_command_place(svc), line.display(), note, change)


def _set(*key: str | int, value: object) -> Change:
    return Change(Op.SET, key, value)


def _raw_at(svc: ComposeService, *key: str) -> object:
    """The service's raw value at ``key`` (None where absent): a rule keeps a number a number."""
    node: object = svc.raw
    for part in key:
        node = node.get(part) if isinstance(node, dict) else None
    return node


# --------------------------------------------------------------------------
# how the container runs ray start


def dashboard_host(ctx: LintContext) -> tuple[list[Item], str]:
    project = ctx.project
    head = project.head
    line = _line(head)
    include = line.value("--include-dashboard")
    if include is not None and include.lower() in _FALSE:
        fixed = line.without("--include-dashboard")
        return [
            Item(
                Status.WARN,
                f"{head.name}: --include-dashboard={include}: no dashboard, so no Jobs API and no raydoctor checks",
                (),
                "Start the dashboard (drop --include-dashboard=false).",
                (
                    _line_edit(
                        ctx,
                        head,
                        fixed,
                        "the `ray start` part of the command, without it",
                        remove=("--include-dashboard",),
                    ),
                ),
                cause="disabled",
            )
        ], ""
    host = line.value("--dashboard-host")
    shown = host if host else "127.0.0.1 (default)"
    port = _int(line.value("--dashboard-port")) or DEFAULT_DASHBOARD_PORT
    own_ips = {str(v[k]) for v in head.networks.values() for k in ("ipv4_address", "ipv6_address") if v.get(k)}
    if host in ("0.0.0.0", "::", "[::]") or (host and host in own_ips):
        return [], f"{head.name} binds the dashboard to {host}"
    if head.network_mode == "host":
        return [], f"{head.name} uses host networking: the dashboard on {shown} is on the host itself"
    fixed = line.without("--dashboard-host").with_options("--dashboard-host=0.0.0.0", first=True)
    published = project.published(port)
    status = Status.FAIL if published else Status.WARN
    why = (
        f"it publishes {port}, but connections through the published port arrive from outside the container"
        if published
        else "nothing outside the container can reach it"
    )
    note = "the `ray start` part of the command, with --dashboard-host=0.0.0.0"
    return [
        Item(
            status,
            f"{head.name}: the dashboard binds to {shown}: {why}",
            ("Ray binds the dashboard to 127.0.0.1 unless --dashboard-host=0.0.0.0.",),
            "Add --dashboard-host=0.0.0.0 to the head's ray start.",
            (
                _line_edit(
                    ctx,
                    head,
                    fixed,
                    note,
                    remove=("--dashboard-host",),
                    add=("--dashboard-host=0.0.0.0",),
                    first=True,
                ),
            ),
            cause="missing" if host is None else "loopback",
        )
    ], ""


def block(ctx: LintContext) -> tuple[list[Item], str]:
    items: list[Item] = []
    for svc in _services(ctx):
        call = svc.ray_start
        if call is None or call.line.has("--block"):
            continue
        keepalive = [c for c in call.after if _KEEPALIVE.match(c)]
        edit = _line_edit(
            ctx,
            svc,
            call.line.with_options("--block"),
            "the `ray start` part of the command, with --block",
            add=("--block",),
        )
        if keepalive:
            items.append(Item(Status.OK, f"{svc.name}: no --block, but '{keepalive[0]}' keeps the container running"))
        elif call.after:
            items.append(
                Item(
                    Status.WARN,
                    f"{svc.name}: ray start without --block; the container lives only as long as '{call.after[-1]}'",
                    ("When that command ends the container exits and Ray with it.",),
                    "Add --block to ray start.",
                    (edit,),
                    cause="ends_with_command",
                )
            )
        else:
            items.append(
                Item(
                    Status.FAIL,
                    f"{svc.name}: ray start without --block; the container exits as soon as Ray has started",
                    ("`ray start` returns after launching Ray's processes; the container's main process ends.",),
                    "Add --block to ray start.",
                    (edit,),
                    cause="missing",
                )
            )
    return items, "every ray start keeps its container running (--block)"


def _head_names(head: ComposeService) -> set[str]:
    names = {head.name}
    for key in ("hostname", "container_name"):
        if isinstance(head.raw.get(key), str):
            names.add(head.raw[key])
    for settings in head.networks.values():
        for key in ("ipv4_address", "ipv6_address"):
            if settings.get(key):
                names.add(str(settings[key]).strip("[]"))
        aliases = settings.get("aliases")
        if isinstance(aliases, list):
            names.update(str(a) for a in aliases)
    return names


def _networks_of(svc: ComposeService) -> set[str]:
    return set(svc.networks) or {"default"}


def worker_address(ctx: LintContext) -> tuple[list[Item], str]:
    project = ctx.project
    head = project.head
    if not project.workers:
        return [Item(Status.SKIP, "no worker services", cause="no_workers")], ""
    gcs = project.gcs_port()
    want = f"{head.name}:{gcs}"
    names = _head_names(head)
    items: list[Item] = []
    for w in project.workers:
        line = _line(w)
        address = line.value("--address")
        fixed = line.without("--address").with_options(f"--address={want}", first=True)
        edit = (
            _line_edit(
                ctx,
                w,
                fixed,
                "the `ray start` part of the command, pointed at the head",
                remove=("--address",),
                add=(f"--address={want}",),
                first=True,
            ),
        )
        if not address:
            items.append(
                Item(
                    Status.FAIL,
                    f"{w.name}: ray start has neither --head nor --address",
                    ("`ray start` needs --address to join a cluster.",),
                    f"Point the worker at the head: --address={want}.",
                    edit,
                    cause="missing",
                )
            )
            continue
        if "$" in address or "`" in address:
            items.append(
                Item(
                    Status.WARN,
                    f"{w.name}: --address={address} is set by the container's shell; not checked",
                    (),
                    f"Use --address={want}.",
                    edit,
                    cause="from_shell",
                )
            )
            continue
        host, sep, port_s = address.rpartition(":")
        if not sep or (host.endswith(":") and not host.startswith("[")):  # bare IPv6
            host, port_s = address, ""
        host = host.strip("[]")
        known = (
            names | {host}
            if host in ("127.0.0.1", "localhost") and head.network_mode == w.network_mode == "host"
            else names
        )
        if host not in known:
            items.append(
                Item(
                    Status.FAIL,
                    f"{w.name}: --address={address} does not point at the head service {head.name}",
                    (f"The head is reachable from the compose network as {', '.join(sorted(known))}.",),
                    f"Use --address={want}.",
                    edit,
                    cause="wrong_host",
                )
            )
            continue
        if not port_s:
            items.append(
                Item(
                    Status.WARN,
                    f"{w.name}: --address={address} has no port; the head's GCS listens on {gcs}",
                    (),
                    f"Use --address={want}.",
                    edit,
                    cause="no_port",
                )
            )
            continue
        if _int(port_s) != gcs:
            items.append(
                Item(
                    Status.FAIL,
                    f"{w.name}: --address={address} uses port {port_s}, but {head.name}'s GCS listens on {gcs} (--port)",
                    (),
                    f"Use --address={want}.",
                    edit,
                    cause="wrong_port",
                )
            )
            continue
        if w.network_mode is None and head.network_mode is None and not (_networks_of(w) & _networks_of(head)):
            mine, theirs = ", ".join(sorted(_networks_of(w))), ", ".join(sorted(_networks_of(head)))
            items.append(
                Item(
                    Status.FAIL,
                    f"{w.name} and {head.name} share no network ({mine} vs {theirs})",
                    (f"{w.name} cannot resolve or reach {host}.",),
                    f"Put {w.name} on one of the head's networks.",
                    (
                        ctx.edit(
                            f"services.{w.name}.networks",
                            f"[{min(_networks_of(head))}]",
                            change=_set("services", w.name, "networks", value=[min(_networks_of(head))]),
                        ),
                    ),
                    cause="no_shared_network",
                )
            )
            continue
        items.append(Item(Status.OK, f"{w.name} joins {address}"))
    return items, f"every worker joins {want}"


# --------------------------------------------------------------------------
# memory, ports, GPUs' neighbours, limits


def _has_own_shm(svc: ComposeService) -> bool:
    if svc.raw.get("ipc") in ("host", "shareable") or str(svc.raw.get("ipc", "")).startswith("service:"):
        return True
    for key in ("volumes", "tmpfs"):
        items = svc.raw.get(key)
        items = items if isinstance(items, list) else [items]
        for item in items:
            if isinstance(item, str) and (item == "/dev/shm" or ":/dev/shm" in item or item.startswith("/dev/shm:")):
                return True
            if isinstance(item, dict) and item.get("target") == "/dev/shm":
                return True
    return False


def shm_size(ctx: LintContext) -> tuple[list[Item], str]:
    items: list[Item] = []
    fix_text = "Give every Ray container a larger /dev/shm (Ray suggests 30% of RAM; 2gb suits a laptop)."
    for svc in _services(ctx):
        edit = (
            ctx.edit(
                f"services.{svc.name}.shm_size", "'2gb'", change=_set("services", svc.name, "shm_size", value="2gb")
            ),
        )
        if svc.shm_size is None:
            if _has_own_shm(svc):
                items.append(Item(Status.OK, f"{svc.name} mounts its own /dev/shm"))
                continue
            items.append(
                Item(
                    Status.WARN,
                    f"{svc.name}: no shm_size: Docker's 64 MB /dev/shm makes Ray's object store fall back to /tmp",
                    ("Ray warns 'The object store is using /tmp instead of /dev/shm' and runs slowly.",),
                    fix_text,
                    edit,
                    cause="missing",
                )
            )
            continue
        try:
            size = parse_size(svc.shm_size)
        except UsageError:
            items.append(
                Item(
                    Status.FAIL,
                    f"{svc.name}: shm_size '{svc.shm_size}' is not a size",
                    (),
                    "Write a size such as '2gb'.",
                    edit,
                    cause="not_a_size",
                )
            )
            continue
        if size < MIN_SHM_BYTES:
            items.append(
                Item(
                    Status.WARN,
                    f"{svc.name}: shm_size '{svc.shm_size}' is under 512 MB; Ray's object store will be cramped",
                    (),
                    fix_text,
                    edit,
                    cause="small",
                )
            )
            continue
        memory = svc.limits.get("memory")
        try:
            mem_bytes = parse_size(memory) if memory else None
        except UsageError:
            mem_bytes = None  # reported by compose.resource_limits
        if mem_bytes and size > mem_bytes:
            items.append(
                Item(
                    Status.WARN,
                    f"{svc.name}: shm_size '{svc.shm_size}' exceeds its memory limit '{memory}'",
                    ("/dev/shm is counted against the container's memory; filling it gets the container killed.",),
                    "Keep shm_size below the memory limit.",
                    cause="over_memory_limit",
                )
            )
            continue
        items.append(Item(Status.OK, f"{svc.name}: shm_size {svc.shm_size}"))
    return items, "every Ray container has at least 512 MB of /dev/shm"


def published_ports(ctx: LintContext) -> tuple[list[Item], str]:
    project = ctx.project
    head = project.head
    items: list[Item] = []
    for svc in project.services.values():
        if svc.network_mode == "host":
            continue
        for index, port in enumerate(svc.ports):
            if port.host_ip in _ALL_INTERFACES:
                host = port.host_port if port.host_port is not None else ""
                entry = svc.port_entries[index] if index < len(svc.port_entries) else None
                change = None
                if entry is not None and svc.port_entries.count(entry) == 1:  # a range: edited by hand
                    proto = "" if port.protocol == "tcp" else f"/{port.protocol}"
                    change = _set(
                        "services", svc.name, "ports", entry, value=f"127.0.0.1:{host}:{port.container_port}{proto}"
                    )
                items.append(
                    Item(
                        Status.WARN,
                        f"{svc.name}: publishes {port.container_port} on all interfaces",
                        ("A Ray cluster has no authentication: anyone on the network can run code on it.",),
                        "Publish on 127.0.0.1 only.",
                        (
                            ctx.edit(
                                f"services.{svc.name}.ports",
                                f'"127.0.0.1:{host}:{port.container_port}"',
                                f"instead of the entry publishing {port.container_port}",
                                change,
                            ),
                        ),
                        cause="all_interfaces",
                    )
                )
    if head.network_mode != "host":
        line = _line(head)
        dash = _int(line.value("--dashboard-port")) or DEFAULT_DASHBOARD_PORT
        client = _int(line.value("--ray-client-server-port")) or DEFAULT_CLIENT_PORT
        for label, number in (("dashboard", dash), ("Ray Client", client)):
            published = project.published(number)
            if published is None or published.protocol != "tcp":
                items.append(
                    Item(
                        Status.WARN,
                        f"{head.name}: the {label} port {number} is not published; this machine cannot reach it",
                        (),
                        f"Publish the {label} port on 127.0.0.1.",
                        (
                            ctx.edit(
                                f"services.{head.name}.ports",
                                f'"127.0.0.1:{number}:{number}"',
                                "add this entry",
                                Change(Op.APPEND, ("services", head.name, "ports"), f"127.0.0.1:{number}:{number}"),
                            ),
                        ),
                        cause="not_published",
                    )
                )
    return items, f"{head.name} publishes the dashboard and client ports on 127.0.0.1 only"


def _limits_key(svc: ComposeService, key: str) -> tuple[str, ...]:
    return ("services", svc.name, "deploy", "resources", "limits", key)


def _limit(svc: ComposeService, key: str, number: int) -> Change:
    """A CPU limit of ``number``, written as the file wrote it: a number stays a number, a string a string."""
    raw = _raw_at(svc, *_limits_key(svc, key)[2:])
    written = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    return _set(*_limits_key(svc, key), value=number if written else str(number))


def resource_limits(ctx: LintContext) -> tuple[list[Item], str]:
    items: list[Item] = []
    seen = False
    for svc in ctx.project.services.values():
        for key, value in svc.limits.items():
            seen = True
            place = f"services.{svc.name}.deploy.resources.limits.{key}"
            if key not in _LIMIT_KEYS:
                close = difflib.get_close_matches(key, _LIMIT_KEYS, n=1)
                items.append(
                    Item(
                        Status.FAIL,
                        f"{svc.name}: unknown limit '{key}'" + (f"; did you mean '{close[0]}'?" if close else ""),
                        ("docker compose rejects the file.",),
                        "Use cpus, memory or pids under deploy.resources.limits.",
                        (
                            ctx.edit(
                                f"services.{svc.name}.deploy.resources.limits.{close[0]}",
                                f"'{value}'",
                                f"instead of {key}",
                            ),
                        )
                        if close
                        else (),
                        cause="unknown_key",
                    )
                )
                continue
            if key == "cpus":
                if svc.cpus_limit is None:  # set, and not a positive number (doctor.head.compose)
                    items.append(
                        Item(
                            Status.FAIL,
                            f"{svc.name}: limits.cpus '{value}' is not a positive number",
                            ("docker compose refuses the file.",),
                            "Write cpus as a number such as '3' or '0.5'.",
                            (ctx.edit(place, "'1'", change=_limit(svc, key, 1)),),
                            cause="cpus_not_a_number",
                        )
                    )
                    continue
                refusal = svc.cpus_refusal(ctx.cpu_count)  # Docker's own words (doctor.head.compose)
                if ctx.cpu_count and refusal is not None:
                    # A failure: Docker refuses to create the container.
                    items.append(
                        Item(
                            Status.FAIL,
                            f"{svc.name}: limits.cpus '{value}' is more than {ctx.cpu_source} {ctx.cpu_count} CPUs",
                            (f"Docker refuses to create the container: '{refusal}'.",),
                            f"Lower cpus to at most {ctx.cpu_count}.",
                            (ctx.edit(place, f"'{ctx.cpu_count}'", change=_limit(svc, key, ctx.cpu_count)),),
                            cause="cpus_over_machine",
                        )
                    )
                    continue
            elif key == "memory":
                try:
                    size = parse_size(value)
                    if size <= 0:
                        raise UsageError("zero")
                except UsageError:
                    items.append(
                        Item(
                            Status.FAIL,
                            f"{svc.name}: limits.memory '{value}' is not a size",
                            ("docker compose refuses the file.",),
                            "Write memory as a size such as '4g'.",
                            (ctx.edit(place, "'4g'", change=_set(*_limits_key(svc, key), value="4g")),),
                            cause="memory_not_a_size",
                        )
                    )
                    continue
                if size < 1 << 30 and svc.ray_start_args is not None:
                    items.append(
                        Item(
                            Status.WARN,
                            f"{svc.name}: limits.memory '{value}' is under 1 GiB; "
                            "Ray's processes alone use several hundred MB",
                            ("Ray's OOM killer or the kernel's ends its workers first.",),
                            "Give a Ray container at least 2g.",
                            (ctx.edit(place, "'2g'", change=_set(*_limits_key(svc, key), value="2g")),),
                            cause="memory_small",
                        )
                    )
                    continue
            elif key == "pids" and _int(value) is None:
                items.append(
                    Item(
                        Status.FAIL,
                        f"{svc.name}: limits.pids '{value}' is not a whole number",
                        ("docker compose refuses the file.",),
                        "Write pids as a whole number.",
                        cause="pids_not_a_number",
                    )
                )
                continue
            items.append(Item(Status.OK, f"{svc.name}: {key}={value}"))
    if not seen:
        return [], "no resource limits set"
    return items, "every resource limit parses and fits this machine"


# --------------------------------------------------------------------------
# networks


def network_mode(ctx: LintContext) -> tuple[list[Item], str]:
    items: list[Item] = []
    for svc in ctx.project.services.values():
        mode = svc.network_mode
        if mode == "host":
            items.append(
                Item(
                    Status.WARN,
                    f"{svc.name}: network_mode: host; its ports: and networks: are ignored",
                    ("Fine on Linux; on Docker Desktop (macOS, Windows) the host is a VM and nothing is reachable.",),
                    "Use a bridge network and publish ports on 127.0.0.1 unless you need host networking.",
                    cause="host",
                )
            )
        elif mode == "none" and svc.ray_start_args is not None:
            items.append(
                Item(
                    Status.FAIL,
                    f"{svc.name}: network_mode: none; this Ray node cannot talk to anything",
                    ("Without a network the node reaches neither the head nor its own workers.",),
                    "Remove network_mode: none.",
                    (
                        ctx.edit(
                            f"services.{svc.name}.network_mode",
                            "",
                            "remove this key",
                            Change(Op.DELETE, ("services", svc.name, "network_mode")),
                        ),
                    ),
                    cause="none",
                )
            )
    return items, "no service uses host networking"


def subnet(ctx: LintContext) -> tuple[list[Item], str]:
    project = ctx.project
    items: list[Item] = []
    subnets: list[tuple[str, IPNetwork, int]] = []
    for net_name, settings in project.networks.items():
        if settings.get("external"):
            continue
        ipam = settings.get("ipam")
        configs = ipam.get("config") if isinstance(ipam, dict) else None
        for index, cfg in enumerate(configs if isinstance(configs, list) else []):
            if not isinstance(cfg, dict) or cfg.get("subnet") is None:
                continue
            place = f"networks.{net_name}.ipam.config[{index}].subnet"
            text = str(cfg["subnet"])
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                items.append(
                    Item(
                        Status.FAIL,
                        f"network {net_name}: subnet '{text}' is not a network",
                        ("docker compose refuses the file.",),
                        "Write a CIDR such as 172.29.0.0/16.",
                        (ctx.edit(place, "172.29.0.0/16", change=_subnet(net_name, index, "172.29.0.0/16")),),
                        cause="not_a_network",
                    )
                )
                continue
            if not any(net.version == p.version and net.subnet_of(p) for p in _PRIVATE):  # type: ignore[arg-type]
                kind = "public address space" if net.is_global else "a special-purpose range"
                items.append(
                    Item(
                        Status.FAIL,
                        f"network {net_name}: subnet {net} is {kind}, not private",
                        (
                            "Containers would shadow real hosts with those addresses; private ranges "
                            "are 10.0.0.0/8, 172.16.0.0/12 (172.16-172.31), 192.168.0.0/16.",
                        ),
                        "Use a private subnet.",
                        (ctx.edit(place, "172.29.0.0/16", change=_subnet(net_name, index, "172.29.0.0/16")),),
                        cause="not_private",
                    )
                )
                continue
            subnets.append((net_name, net, index))
    # Fixed addresses must lie inside their network's subnet.
    by_name: dict[str, list[IPNetwork]] = {}
    for net_name, net, _ in subnets:
        by_name.setdefault(net_name, []).append(net)
    for svc in project.services.values():
        for net_name, settings in svc.networks.items():
            for key in ("ipv4_address", "ipv6_address"):
                addr_text = settings.get(key)
                if not addr_text or net_name not in by_name:
                    continue
                try:
                    addr = ipaddress.ip_address(str(addr_text).strip("[]"))
                except ValueError:
                    items.append(
                        Item(
                            Status.FAIL,
                            f"{svc.name}: {key} '{addr_text}' is not an address",
                            ("docker compose refuses the file.",),
                            f"Fix {key}.",
                            cause="bad_address",
                        )
                    )
                    continue
                nets = [n for n in by_name[net_name] if n.version == addr.version]
                if nets and not any(addr in n for n in nets):
                    items.append(
                        Item(
                            Status.FAIL,
                            f"{svc.name}: {key} {addr} is outside network {net_name}'s subnet {nets[0]}",
                            ("Docker refuses to start the container.",),
                            f"Pick an address inside {nets[0]}.",
                            cause="address_outside",
                        )
                    )
    if subnets:
        items.extend(_overlaps(ctx, subnets))
    if not subnets and not items:
        return [], "no fixed subnets: Docker picks free ones"
    shown = ", ".join(str(n) for _, n, _ in subnets)
    return items, f"subnets {shown} are private and clear of this machine's routes"


def _subnet(net_name: str, index: int, value: str) -> Change:
    return _set("networks", net_name, "ipam", "config", index, "subnet", value=value)


def _overlaps(ctx: LintContext, subnets: list[tuple[str, IPNetwork, int]]) -> list[Item]:
    try:
        routes = list(ctx.routes())
    except Exception as exc:  # noqa: BLE001 - an injected or OS source must not break the lint
        return [Item(Status.OK, f"host routes unreadable ({type(exc).__name__}); overlap not checked")]
    if not routes:
        return [Item(Status.OK, "no host routes readable here; overlap not checked")]
    taken = [r.network for r in routes if r.network.prefixlen > 0] + [n for _, n, _ in subnets]
    items: list[Item] = []
    for net_name, net, index in subnets:
        for route in routes:
            other = route.network
            if other.version != net.version or other.prefixlen == 0:
                continue  # default routes overlap everything
            if other == net and route.interface.startswith(("br-", "docker")):
                continue  # this compose network itself, already up
            if net.overlaps(other):  # type: ignore[arg-type]
                free = _free_subnet(taken)
                items.append(
                    Item(
                        Status.WARN,
                        f"network {net_name}: subnet {net} overlaps {other} on {route.interface} (from {route.source})",
                        ("Traffic to those addresses goes to the containers instead (VPN, LAN or another bridge).",),
                        "Pick a private subnet that no route on this machine uses"
                        + (f", such as {free}." if free else "."),
                        (
                            (
                                ctx.edit(
                                    f"networks.{net_name}.ipam.config[{index}].subnet",
                                    free,
                                    change=_subnet(net_name, index, free),
                                ),
                            )
                            if free
                            else ()
                        ),
                        cause="overlaps_route",
                    )
                )
    return items


def _free_subnet(taken: list[IPNetwork]) -> str:
    """A private /16 (172.16-31, then 10.x) that overlaps none of ``taken``; "" if none is free."""
    candidates = [f"172.{n}.0.0/16" for n in range(29, 32)] + [f"172.{n}.0.0/16" for n in range(20, 29)]
    candidates += [f"10.{n}.0.0/16" for n in range(100, 110)]
    for text in candidates:
        net = ipaddress.ip_network(text)
        if not any(net.version == t.version and net.overlaps(t) for t in taken):  # type: ignore[arg-type]
            return text
    return ""
