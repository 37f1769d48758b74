"""Lint a Ray cluster's compose file: the mistakes seen in public Ray compose files.

Each rule reads only the parsed file (``doctor.head.compose``) and this
machine's routes, so it runs before any container exists and explains a
cluster that will not start, or starts but cannot be reached, in terms of
the line to change. ``lint_compose`` returns exactly one ``Result`` per rule,
so a report always shows every rule that was applied.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from doctor.errors import UsageError
from doctor.head.compose import (
    SHELL_OPERATORS,
    ComposeProject,
    ComposeService,
    parse_ray_start,
    parse_size,
    reserved_gpu_count,
)
from doctor.model import Remediation, Result, Status, result

__all__ = [
    "RAY_START_OPTIONS",
    "RULES",
    "HostRoute",
    "host_routes",
    "lint_compose",
]

CATEGORY = "compose"
DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_CLIENT_PORT = 10001
MIN_SHM_BYTES = 512 * 1024 * 1024
_ALL_INTERFACES = {None, "", "0.0.0.0", "::", "[::]"}
_SEVERITY = {
    Status.OK: 0,
    Status.SKIP: 1,
    Status.WARN: 2,
    Status.FAIL: 3,
    Status.ERROR: 4,
}

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 - runtime alias, Python 3.9


@dataclass(frozen=True)
class _Opt:
    """How `ray start` takes one option: ``kind`` is the value it wants."""

    kind: str  # flag | count | int | port | float | bool | json | str | choice
    choices: tuple[str, ...] = ()
    deprecated: str | None = None  # why, and what to use instead


# The options of `ray start` in Ray 2.49 (python/ray/scripts/scripts.py,
# `start`, plus the logging options every Ray CLI command takes), hidden
# ones included since they are accepted. Written from that source, not
# copied: a value kind per option is all the lint needs.
RAY_START_OPTIONS: dict[str, _Opt] = {
    "--node-ip-address": _Opt("str"),
    "--address": _Opt("str"),
    "--port": _Opt("port"),
    "--node-name": _Opt("str"),
    "--redis-username": _Opt("str", deprecated="Redis is gone from Ray (GCS replaced it); drop it"),
    "--redis-password": _Opt("str", deprecated="Redis is gone from Ray (GCS replaced it); drop it"),
    "--redis-shard-ports": _Opt("str"),
    "--object-manager-port": _Opt("port"),
    "--node-manager-port": _Opt("port"),
    "--gcs-server-port": _Opt("port", deprecated="Ray ignores it; set the GCS port with --port"),
    "--min-worker-port": _Opt("port"),
    "--max-worker-port": _Opt("port"),
    "--worker-port-list": _Opt("str"),
    "--ray-client-server-port": _Opt("port"),
    "--memory": _Opt("int"),
    "--object-store-memory": _Opt("int"),
    "--redis-max-memory": _Opt("int"),
    "--num-cpus": _Opt("int"),
    "--num-gpus": _Opt("int"),
    "--resources": _Opt("json"),
    "--head": _Opt("flag"),
    "--include-dashboard": _Opt("bool"),
    "--dashboard-host": _Opt("str"),
    "--dashboard-port": _Opt("port"),
    "--dashboard-agent-listen-port": _Opt("port"),
    "--dashboard-agent-grpc-port": _Opt("port"),
    "--dashboard-grpc-port": _Opt("port"),
    "--runtime-env-agent-port": _Opt("port"),
    "--block": _Opt("flag"),
    "--plasma-directory": _Opt("str"),
    "--object-spilling-directory": _Opt("str"),
    "--autoscaling-config": _Opt("str"),
    "--no-redirect-output": _Opt("flag"),
    "--plasma-store-socket-name": _Opt("str", deprecated="internal to Ray and going away; drop it"),
    "--raylet-socket-name": _Opt("str", deprecated="internal to Ray and going away; drop it"),
    "--temp-dir": _Opt("str"),
    "--storage": _Opt("str"),
    "--system-config": _Opt("json"),
    "--enable-object-reconstruction": _Opt("flag"),
    "--metrics-export-port": _Opt("port"),
    "--no-monitor": _Opt("flag"),
    "--tracing-startup-hook": _Opt("str"),
    "--ray-debugger-external": _Opt("flag"),
    "--disable-usage-stats": _Opt("flag"),
    "--labels": _Opt("json"),
    "--labels-file": _Opt("str"),
    "--include-log-monitor": _Opt("bool"),
    "--enable-resource-isolation": _Opt("flag"),
    "--cgroup-path": _Opt("str"),
    "--system-reserved-cpu": _Opt("float"),
    "--system-reserved-memory": _Opt("int"),
    "--log-style": _Opt("choice", ("auto", "record", "pretty")),
    "--log-color": _Opt("choice", ("auto", "false", "true")),
    "--verbose": _Opt("count"),
    "-v": _Opt("count"),
}

# Options older Ray accepted that 2.49 rejects, with what replaced them.
_REMOVED = {
    "--redis-address": "--address",
    "--redis-port": "--port",
    "--include-webui": "--include-dashboard",
    "--webui-host": "--dashboard-host",
    "--internal-config": "--system-config",
    "--num-redis-shards": None,
    "--redis-max-clients": None,
    "--huge-pages": None,
    "--load-code-from-local": None,
    "--java-worker-options": None,
    "--code-search-path": None,
    "--lru-evict": None,
    "--no-redirect-worker-output": None,
    "--include-java": None,
}
_CLICK_BOOL = {"1", "0", "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off"}
_KEEPALIVE = re.compile(r"^(sleep (inf|infinity)|tail -f\b.*|wait\b.*)$")
_GPU_TAG = re.compile(r"-(gpu|cu\d{2,3})(?=-|$)")
_LIMIT_KEYS = ("cpus", "memory", "pids", "devices")
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


@dataclass(frozen=True)
class HostRoute:
    """A network this machine reaches directly: a route or an interface's subnet."""

    network: IPNetwork
    interface: str
    source: str  # "/proc/net/route" or "ip -j addr"


@dataclass
class Finding:
    """One problem a lint rule found: status, one line, and how to fix it."""

    status: Status
    summary: str
    details: tuple[str, ...] = ()
    fix: str = ""
    commands: tuple[str, ...] = ()


@dataclass
class _Ctx:
    project: ComposeProject
    routes: Callable[[], Iterable[HostRoute]]
    cpu_count: int | None


# --------------------------------------------------------------------------
# entry point


def lint_compose(
    project: ComposeProject,
    *,
    routes: Callable[[], Iterable[HostRoute]] | None = None,
    cpu_count: int | None = None,
) -> list[Result]:
    """Apply every rule to ``project``: one Result each, in a fixed order.

    ``routes`` gives this machine's networks (default: ``host_routes``, read
    from ``/proc/net/route`` and ``ip -j addr``); ``cpu_count`` the CPUs
    Docker can hand out (default ``os.cpu_count()``). Tests inject both.
    """
    ctx = _Ctx(
        project,
        routes or host_routes,
        cpu_count if cpu_count is not None else os.cpu_count(),
    )
    results: list[Result] = []
    for rule_id, title, rule in RULES:
        try:
            findings, ok_summary = rule(ctx)
        except (
            UsageError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            OverflowError,
        ) as exc:
            results.append(
                result(
                    rule_id,
                    CATEGORY,
                    title,
                    Status.ERROR,
                    f"could not apply the rule: {' '.join(str(exc).split())}",
                )
            )
            continue
        results.append(_combine(rule_id, title, findings, ok_summary))
    return results


def _combine(rule_id: str, title: str, findings: list[Finding], ok_summary: str) -> Result:
    bad = [f for f in findings if f.status != Status.OK]
    if not bad:
        notes = [d for f in findings for d in (f.summary, *f.details)]
        return result(rule_id, CATEGORY, title, Status.OK, ok_summary, details=notes)
    worst = max(bad, key=lambda f: _SEVERITY[f.status])
    if all(f.status == Status.SKIP for f in bad):
        return result(rule_id, CATEGORY, title, Status.SKIP, "; ".join(f.summary for f in bad))
    bad = [f for f in bad if f.status != Status.SKIP]
    bad.sort(key=lambda f: -_SEVERITY[f.status])
    details: list[str] = []
    for f in bad:
        details.append(f"{f.status.value}: {f.summary}")
        details.extend(f"  {d}" for d in f.details)
    texts: list[str] = []
    commands: list[str] = []
    for f in bad:
        if f.fix and f.fix not in texts:
            texts.append(f.fix)
        commands.extend(c for c in f.commands if c not in commands)
    fix = Remediation(" ".join(texts), tuple(commands)) if texts or commands else None
    return result(
        rule_id,
        CATEGORY,
        title,
        worst.status,
        "; ".join(f.summary for f in bad),
        details=details,
        fix=fix,
        data={"findings": len(bad)},
    )


# --------------------------------------------------------------------------
# helpers


def _ray_services(project: ComposeProject) -> list[ComposeService]:
    return [project.head, *project.workers]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def _unexpanded(value: str) -> bool:
    """A shell variable Compose left for the container's shell (``$$VAR``)."""
    return "$" in value or "`" in value


def _without(args: Sequence[str], *names: str) -> list[str]:
    """``args`` with every ``--name=v``/``--name v`` of ``names`` removed."""
    line = parse_ray_start(args)
    out: list[str] = []
    for opt in line.options:
        if opt.name in names:
            continue
        out.extend([opt.word] if opt.inline or opt.value is None else [opt.word, opt.value])
    return out + line.positionals


def _cmd(args: Sequence[str]) -> str:
    return "ray start " + " ".join(shlex.quote(a) for a in args)


def _same_image(a: str, b: str) -> bool:
    """Equal image references, ignoring Docker Hub's implicit prefixes."""

    def norm(ref: str) -> str:
        for prefix in ("docker.io/", "index.docker.io/", "library/"):
            ref = ref.removeprefix(prefix)
        return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"

    return norm(a) == norm(b)


def _tag(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def _is_gpu_image(image: str | None) -> bool:
    return bool(image) and bool(_GPU_TAG.search(_tag(image or "")))


def _commands_after_ray_start(argv: list[str]) -> list[str]:
    """The shell commands that follow `ray start ...` in the same script."""
    for i in range(len(argv) - 1):
        if argv[i + 1] == "start" and argv[i].rsplit("/", 1)[-1] == "ray":
            rest = argv[i + 2 :]
            break
    else:
        return []
    commands: list[str] = []
    current: list[str] = []
    seen_op = False
    for word in rest:
        if word in SHELL_OPERATORS:
            seen_op = True
            if current:
                commands.append(" ".join(current))
            current = []
            continue
        if seen_op:
            current.append(word)
    if current:
        commands.append(" ".join(current))
    return commands


# --------------------------------------------------------------------------
# rules: each returns (findings, summary when all is well)


def _rule_same_image(ctx: _Ctx) -> tuple[list[Finding], str]:
    head = ctx.project.head
    if not ctx.project.workers:
        return [Finding(Status.SKIP, "no worker services to compare with the head")], ""
    if not head.image:
        return [
            Finding(
                Status.SKIP,
                f"{head.name} has no image: (built locally); cannot compare tags",
            )
        ], ""
    findings: list[Finding] = []
    for worker in ctx.project.workers:
        if not worker.image:
            findings.append(Finding(Status.OK, f"{worker.name} builds its own image; not compared"))
        elif not _same_image(worker.image, head.image):
            findings.append(
                Finding(
                    Status.WARN,
                    f"{worker.name} runs {worker.image} but {head.name} runs {head.image}",
                    ("Ray requires head and workers to run the same Ray and Python, to the patch.",),
                    "Run the head's image on every worker.",
                    (f"{worker.name}: image: {head.image}",),
                )
            )
        else:
            findings.append(Finding(Status.OK, f"{worker.name} runs {worker.image}"))
    return findings, f"head and workers run {head.image}"


def _check_option(
    svc: ComposeService, opt_word: str, name: str, value: str | None, inline: bool
) -> tuple[Finding | None, list[str] | None]:
    """Judge one option; returns a finding and the corrected words (None: keep)."""
    where = svc.name
    if name not in RAY_START_OPTIONS:
        if not name.startswith("--") and ("-" + name) in RAY_START_OPTIONS:
            good = "-" + opt_word
            return (
                Finding(
                    Status.FAIL,
                    f"{where}: '{opt_word}' has one dash; ray start wants '{good}'",
                    (f"click reads '{name}' as short options and `ray start` exits with 'No such option'.",),
                    f"Write long options with two dashes: {good}.",
                ),
                [good] if inline or value is None else [good, value],
            )
        if name in _REMOVED:
            new = _REMOVED[name]
            instead = f"use {new}" if new else "drop it"
            fixed = None
            if new:
                fixed = [f"{new}={value}"] if inline else ([new] if value is None else [new, value])
            return (
                Finding(
                    Status.FAIL,
                    f"{where}: {name} is not an option of ray start 2.49 (removed); {instead}",
                    (f"`ray start` exits with 'No such option: {name}' and the container stops.",),
                    f"Replace {name}: {instead}.",
                ),
                fixed if fixed is not None else [],
            )
        close = difflib.get_close_matches(name, list(RAY_START_OPTIONS), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        fixed = None
        if close:
            fixed = [f"{close[0]}={value}"] if inline else ([close[0]] if value is None else [close[0], value])
        return (
            Finding(
                Status.FAIL,
                f"{where}: unknown ray start flag {name}{hint}",
                (f"`ray start` exits with 'No such option: {name}' and the container stops.",),
                f"Use {close[0]} instead of {name}." if close else f"Remove {name}; see `ray start --help`.",
            ),
            fixed,
        )
    spec = RAY_START_OPTIONS[name]
    if spec.kind in ("flag", "count"):
        if inline:
            return (
                Finding(
                    Status.FAIL,
                    f"{where}: {name} takes no value, got '{opt_word}'",
                    ("click stops with 'Option does not take a value'.",),
                    f"Write the bare flag {name}.",
                ),
                [name],
            )
    elif value is None:
        return (
            Finding(
                Status.FAIL,
                f"{where}: {name} needs a value",
                ("click stops with 'Option requires an argument'.",),
                f"Give {name} a value, e.g. {name}=...",
            ),
            None,
        )
    elif not _unexpanded(value):
        problem = _bad_value(spec, value)
        if problem:
            return (
                Finding(
                    Status.FAIL,
                    f"{where}: {name}={value} {problem}",
                    ("`ray start` refuses the value and the container stops.",),
                    f"Fix the value of {name}.",
                ),
                None,
            )
    if spec.deprecated:
        return (
            Finding(
                Status.WARN,
                f"{where}: {name} is deprecated: {spec.deprecated}",
                (),
                f"Remove {name}."
                if "drop it" in spec.deprecated
                else spec.deprecated[0].upper() + spec.deprecated[1:] + ".",
            ),
            [] if "drop it" in spec.deprecated else None,
        )
    return None, None


def _bad_value(spec: _Opt, value: str) -> str | None:
    if spec.kind in ("int", "port"):
        try:
            number = int(value)
        except ValueError:
            return "is not a whole number"
        if number < 0:
            return "is negative"
        if spec.kind == "port" and number > 65535:
            return "is not a port (0-65535)"
    elif spec.kind == "float":
        try:
            float(value)
        except ValueError:
            return "is not a number"
    elif spec.kind == "bool":
        if value.lower() not in _CLICK_BOOL:
            return "is not true/false"
    elif spec.kind == "choice":
        if value.lower() not in spec.choices:
            return f"is not one of {', '.join(spec.choices)}"
    elif spec.kind == "json":
        try:
            parsed = json.loads(value)
        except ValueError:
            return "is not valid JSON (quote it: --resources='{\"name\": 1}')"
        if not isinstance(parsed, dict):
            return "is not a JSON object"
    return None


def _rule_ray_start_flags(ctx: _Ctx) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    for svc in _ray_services(ctx.project):
        args = svc.ray_start_args or []
        line = parse_ray_start(args)
        fixed: list[str] = []
        svc_findings: list[Finding] = []
        names = line.names()
        for index, opt in enumerate(line.options):
            finding, replacement = _check_option(svc, opt.word, opt.name, opt.value, opt.inline)
            if finding:
                svc_findings.append(finding)
            others = names[:index] + names[index + 1 :]
            if replacement and replacement[0].split("=", 1)[0] in others:
                replacement = []  # the corrected option is already given
            if replacement is not None:
                fixed.extend(replacement)
            elif opt.inline or opt.value is None:
                fixed.append(opt.word)
            else:
                fixed.extend([opt.word, opt.value])
        for word in line.positionals:
            svc_findings.append(
                Finding(
                    Status.FAIL,
                    f"{svc.name}: unexpected argument '{word}' after ray start",
                    ("click stops with 'Got unexpected extra argument'.",),
                    f"Remove '{word}' or attach it to its flag with '='.",
                )
            )
        if svc_findings:
            if fixed != list(args):  # only offer a line we could actually correct
                worst = max(svc_findings, key=lambda f: _SEVERITY[f.status])
                worst.commands = (_cmd(fixed),)
            findings.extend(svc_findings)
    services = ", ".join(s.name for s in _ray_services(ctx.project))
    return findings, f"every ray start flag is one Ray 2.49 knows ({services})"


def _rule_dashboard_host(ctx: _Ctx) -> tuple[list[Finding], str]:
    project, head = ctx.project, ctx.project.head
    include = project.flag(head, "--include-dashboard")
    if include is not None and include.lower() in ("0", "false", "f", "no", "n", "off"):
        return [
            Finding(
                Status.WARN,
                f"{head.name}: --include-dashboard={include}: no dashboard, so no Jobs API and no raydoctor checks",
                (),
                "Start the dashboard (drop --include-dashboard=false).",
                (_cmd(_without(head.ray_start_args or [], "--include-dashboard")),),
            )
        ], ""
    host = project.flag(head, "--dashboard-host")
    shown = host if host else "127.0.0.1 (default)"
    port = _int(project.flag(head, "--dashboard-port")) or DEFAULT_DASHBOARD_PORT
    own_ips = {str(v[k]) for v in head.networks.values() for k in ("ipv4_address", "ipv6_address") if v.get(k)}
    if host in ("0.0.0.0", "::", "[::]") or (host and host in own_ips):
        return [], f"{head.name} binds the dashboard to {host}"
    if head.network_mode == "host":
        return (
            [],
            f"{head.name} uses host networking: the dashboard on {shown} is on the host itself",
        )
    fixed = _without(head.ray_start_args or [], "--dashboard-host")
    fixed.insert(1 if fixed[:1] == ["--head"] else 0, "--dashboard-host=0.0.0.0")
    published = project.published(port)
    status = Status.FAIL if published else Status.WARN
    why = (
        f"it publishes {port}, but connections through the published port arrive from outside the container"
        if published
        else "nothing outside the container can reach it"
    )
    return [
        Finding(
            status,
            f"{head.name}: the dashboard binds to {shown}: {why}",
            ("Ray binds the dashboard to 127.0.0.1 unless --dashboard-host=0.0.0.0.",),
            "Add --dashboard-host=0.0.0.0 to the head's ray start.",
            (_cmd(fixed),),
        )
    ], ""


def _rule_block(ctx: _Ctx) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    for svc in _ray_services(ctx.project):
        args = svc.ray_start_args or []
        if "--block" in parse_ray_start(args).names():
            continue
        after = _commands_after_ray_start(svc.argv or svc.command)
        keepalive = [c for c in after if _KEEPALIVE.match(c)]
        fix_cmd = (_cmd([*args, "--block"]),)
        if keepalive:
            findings.append(
                Finding(
                    Status.OK,
                    f"{svc.name}: no --block, but '{keepalive[0]}' keeps the container running",
                )
            )
        elif after:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{svc.name}: ray start without --block; the container lives only as long as '{after[-1]}'",
                    ("When that command ends the container exits and Ray with it.",),
                    "Add --block to ray start.",
                    fix_cmd,
                )
            )
        else:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{svc.name}: ray start without --block; the container exits as soon as Ray has started",
                    ("`ray start` returns after launching Ray's processes; the container's main process ends.",),
                    "Add --block to ray start.",
                    fix_cmd,
                )
            )
    return findings, "every ray start keeps its container running (--block)"


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


def _rule_worker_address(ctx: _Ctx) -> tuple[list[Finding], str]:
    project, head = ctx.project, ctx.project.head
    if not project.workers:
        return [Finding(Status.SKIP, "no worker services")], ""
    gcs = project.gcs_port()
    want = f"{head.name}:{gcs}"
    names = _head_names(head)
    findings: list[Finding] = []
    for w in project.workers:
        args = w.ray_start_args or []
        address = project.flag(w, "--address")
        fixed = _without(args, "--address")
        fix = (_cmd([f"--address={want}", *fixed]),)
        if not address:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{w.name}: ray start has neither --head nor --address",
                    ("`ray start` needs --address to join a cluster.",),
                    f"Point the worker at the head: --address={want}.",
                    fix,
                )
            )
            continue
        if _unexpanded(address):
            findings.append(
                Finding(
                    Status.WARN,
                    f"{w.name}: --address={address} is set by the container's shell; not checked",
                    (),
                    f"Use --address={want}.",
                    fix,
                )
            )
            continue
        host, sep, port_s = address.rpartition(":")
        if not sep or (host.endswith(":") and not host.startswith("[")):  # bare IPv6
            host, port_s = address, ""
        host = host.strip("[]")
        if host in ("127.0.0.1", "localhost") and head.network_mode == w.network_mode == "host":
            names = names | {host}
        if host not in names:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{w.name}: --address={address} does not point at the head service {head.name}",
                    (f"The head is reachable from the compose network as {', '.join(sorted(names))}.",),
                    f"Use --address={want}.",
                    fix,
                )
            )
            continue
        if not port_s:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{w.name}: --address={address} has no port; the head's GCS listens on {gcs}",
                    (),
                    f"Use --address={want}.",
                    fix,
                )
            )
            continue
        if _int(port_s) != gcs:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{w.name}: --address={address} uses port {port_s}, but {head.name}'s GCS listens on {gcs} (--port)",
                    (),
                    f"Use --address={want}.",
                    fix,
                )
            )
            continue
        if w.network_mode is None and head.network_mode is None and not (_networks_of(w) & _networks_of(head)):
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{w.name} and {head.name} share no network ({', '.join(sorted(_networks_of(w)))} vs {', '.join(sorted(_networks_of(head)))})",
                    (f"{w.name} cannot resolve or reach {host}.",),
                    f"Put {w.name} on one of the head's networks.",
                    (f"{w.name}: networks: [{min(_networks_of(head))}]",),
                )
            )
            continue
        findings.append(Finding(Status.OK, f"{w.name} joins {address}"))
    return findings, f"every worker joins {want}"


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


def _rule_shm_size(ctx: _Ctx) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    fix_text = "Give every Ray container a larger /dev/shm (Ray suggests 30% of RAM; 2gb suits a laptop)."
    for svc in _ray_services(ctx.project):
        if svc.shm_size is None:
            if _has_own_shm(svc):
                findings.append(Finding(Status.OK, f"{svc.name} mounts its own /dev/shm"))
                continue
            findings.append(
                Finding(
                    Status.WARN,
                    f"{svc.name}: no shm_size: Docker's 64 MB /dev/shm makes Ray's object store fall back to /tmp",
                    ("Ray warns 'The object store is using /tmp instead of /dev/shm' and runs slowly.",),
                    fix_text,
                    (f"{svc.name}: shm_size: '2gb'",),
                )
            )
            continue
        try:
            size = parse_size(svc.shm_size)
        except UsageError:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{svc.name}: shm_size '{svc.shm_size}' is not a size",
                    (),
                    "Write a size such as '2gb'.",
                    (f"{svc.name}: shm_size: '2gb'",),
                )
            )
            continue
        if size < MIN_SHM_BYTES:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{svc.name}: shm_size '{svc.shm_size}' is under 512 MB; Ray's object store will be cramped",
                    (),
                    fix_text,
                    (f"{svc.name}: shm_size: '2gb'",),
                )
            )
            continue
        memory = svc.limits.get("memory")
        try:
            mem_bytes = parse_size(memory) if memory else None
        except UsageError:
            mem_bytes = None  # reported by compose.resource_limits
        if mem_bytes and size > mem_bytes:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{svc.name}: shm_size '{svc.shm_size}' exceeds its memory limit '{memory}'",
                    ("/dev/shm is counted against the container's memory; filling it gets the container killed.",),
                    "Keep shm_size below the memory limit.",
                )
            )
            continue
        findings.append(Finding(Status.OK, f"{svc.name}: shm_size {svc.shm_size}"))
    return findings, "every Ray container has at least 512 MB of /dev/shm"


def _rule_published_ports(ctx: _Ctx) -> tuple[list[Finding], str]:
    project, head = ctx.project, ctx.project.head
    findings: list[Finding] = []
    for svc in project.services.values():
        if svc.network_mode == "host":
            continue
        for port in svc.ports:
            if port.host_ip in _ALL_INTERFACES:
                host = port.host_port if port.host_port is not None else ""
                findings.append(
                    Finding(
                        Status.WARN,
                        f"{svc.name}: publishes {port.container_port} on all interfaces",
                        ("A Ray cluster has no authentication: anyone on the network can run code on it.",),
                        "Publish on 127.0.0.1 only.",
                        (f'{svc.name}: ports: - "127.0.0.1:{host}:{port.container_port}"',),
                    )
                )
    if head.network_mode != "host":
        dash = _int(project.flag(head, "--dashboard-port")) or DEFAULT_DASHBOARD_PORT
        client = _int(project.flag(head, "--ray-client-server-port")) or DEFAULT_CLIENT_PORT
        for label, number in (("dashboard", dash), ("Ray Client", client)):
            published = project.published(number)
            if published is None or published.protocol != "tcp":
                findings.append(
                    Finding(
                        Status.WARN,
                        f"{head.name}: the {label} port {number} is not published; this machine cannot reach it",
                        (),
                        f"Publish the {label} port on 127.0.0.1.",
                        (f'{head.name}: ports: - "127.0.0.1:{number}:{number}"',),
                    )
                )
    return (
        findings,
        f"{head.name} publishes the dashboard and client ports on 127.0.0.1 only",
    )


def _rule_gpu_reservation(ctx: _Ctx) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    snippet = "deploy: {resources: {reservations: {devices: [{driver: nvidia, count: 1, capabilities: [gpu]}]}}}"
    any_gpu = False
    for svc in ctx.project.services.values():
        num = _int(ctx.project.flag(svc, "--num-gpus")) if svc.ray_start_args is not None else None
        gpu_image = _is_gpu_image(svc.image)
        if not gpu_image and not num:
            continue
        any_gpu = True
        if not svc.gpu_reservation:
            why = f"runs the GPU image {svc.image}" if gpu_image else f"passes --num-gpus={num}"
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{svc.name}: {why} but reserves no NVIDIA GPU",
                    (
                        (
                            "Without a device reservation the container has no /dev/nvidia*; with --num-gpus "
                            "Ray still advertises the GPU, so GPU tasks are scheduled and then find no device."
                        ),
                    ),
                    "Reserve the GPU for the service.",
                    (f"{svc.name}: {snippet}",),
                )
            )
            continue
        reserved = reserved_gpu_count(svc.raw)
        if num and reserved is not None and reserved < num:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{svc.name}: --num-gpus={num} but only {reserved} GPU(s) reserved",
                    ("Ray will schedule tasks on GPUs the container cannot see.",),
                    f"Reserve {num} GPUs or pass --num-gpus={reserved}.",
                )
            )
            continue
        findings.append(Finding(Status.OK, f"{svc.name} reserves an NVIDIA GPU"))
    if not any_gpu:
        return [], "no service uses a GPU image or --num-gpus"
    return findings, "every GPU service has an NVIDIA device reservation"


def _rule_resource_limits(ctx: _Ctx) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    seen = False
    for svc in ctx.project.services.values():
        for key, value in svc.limits.items():
            seen = True
            if key not in _LIMIT_KEYS:
                close = difflib.get_close_matches(key, _LIMIT_KEYS, n=1)
                findings.append(
                    Finding(
                        Status.FAIL,
                        f"{svc.name}: unknown limit '{key}'" + (f"; did you mean '{close[0]}'?" if close else ""),
                        ("docker compose rejects the file.",),
                        "Use cpus, memory or pids under deploy.resources.limits.",
                    )
                )
                continue
            if key == "cpus":
                try:
                    cpus = float(value)
                    if not (math.isfinite(cpus) and cpus > 0):
                        raise ValueError
                except ValueError:
                    findings.append(
                        Finding(
                            Status.FAIL,
                            f"{svc.name}: limits.cpus '{value}' is not a positive number",
                            (),
                            "Write cpus as a number such as '3' or '0.5'.",
                            (f"{svc.name}: cpus: '1'",),
                        )
                    )
                    continue
                if ctx.cpu_count and cpus > ctx.cpu_count:
                    findings.append(
                        Finding(
                            Status.WARN,
                            f"{svc.name}: limits.cpus '{value}' is more than this machine's {ctx.cpu_count} CPUs",
                            (f"Docker refuses to start it: 'Range of CPUs is from 0.01 to {ctx.cpu_count}.00'.",),
                            f"Lower cpus to at most {ctx.cpu_count}.",
                            (f"{svc.name}: cpus: '{ctx.cpu_count}'",),
                        )
                    )
                    continue
            elif key == "memory":
                try:
                    size = parse_size(value)
                    if size <= 0:
                        raise UsageError("zero")
                except UsageError:
                    findings.append(
                        Finding(
                            Status.FAIL,
                            f"{svc.name}: limits.memory '{value}' is not a size",
                            (),
                            "Write memory as a size such as '4g'.",
                            (f"{svc.name}: memory: '4g'",),
                        )
                    )
                    continue
                if size < 1 << 30 and svc.ray_start_args is not None:
                    findings.append(
                        Finding(
                            Status.WARN,
                            f"{svc.name}: limits.memory '{value}' is under 1 GiB; Ray's processes alone use several hundred MB",
                            (),
                            "Give a Ray container at least 2g.",
                        )
                    )
                    continue
            elif key == "pids" and _int(value) is None:
                findings.append(
                    Finding(
                        Status.FAIL,
                        f"{svc.name}: limits.pids '{value}' is not a whole number",
                        (),
                        "Write pids as a whole number.",
                    )
                )
                continue
            findings.append(Finding(Status.OK, f"{svc.name}: {key}={value}"))
    if not seen:
        return [], "no resource limits set"
    return findings, "every resource limit parses"


def _rule_network_mode(ctx: _Ctx) -> tuple[list[Finding], str]:
    findings: list[Finding] = []
    for svc in ctx.project.services.values():
        mode = svc.network_mode
        if mode == "host":
            findings.append(
                Finding(
                    Status.WARN,
                    f"{svc.name}: network_mode: host; its ports: and networks: are ignored",
                    ("Fine on Linux; on Docker Desktop (macOS, Windows) the host is a VM and nothing is reachable.",),
                    "Use a bridge network and publish ports on 127.0.0.1 unless you need host networking.",
                )
            )
        elif mode == "none" and svc.ray_start_args is not None:
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{svc.name}: network_mode: none; this Ray node cannot talk to anything",
                    (),
                    "Remove network_mode: none.",
                )
            )
    return findings, "no service uses host networking"


def _rule_subnet(ctx: _Ctx) -> tuple[list[Finding], str]:
    project = ctx.project
    findings: list[Finding] = []
    subnets: list[tuple[str, IPNetwork]] = []
    for net_name, settings in project.networks.items():
        if settings.get("external"):
            continue
        ipam = settings.get("ipam")
        configs = ipam.get("config") if isinstance(ipam, dict) else None
        for cfg in configs if isinstance(configs, list) else []:
            if not isinstance(cfg, dict) or cfg.get("subnet") is None:
                continue
            text = str(cfg["subnet"])
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                findings.append(
                    Finding(
                        Status.FAIL,
                        f"network {net_name}: subnet '{text}' is not a network",
                        (),
                        "Write a CIDR such as 172.29.0.0/16.",
                        (f"{net_name}: subnet: 172.29.0.0/16",),
                    )
                )
                continue
            if not any(net.version == p.version and net.subnet_of(p) for p in _PRIVATE):  # type: ignore[arg-type]
                kind = "public address space" if net.is_global else "a special-purpose range"
                findings.append(
                    Finding(
                        Status.FAIL,
                        f"network {net_name}: subnet {net} is {kind}, not private",
                        (
                            (
                                "Containers would shadow real hosts with those addresses; private ranges "
                                "are 10.0.0.0/8, 172.16.0.0/12 (172.16-172.31), 192.168.0.0/16."
                            ),
                        ),
                        "Use a private subnet.",
                        (f"{net_name}: subnet: 172.29.0.0/16",),
                    )
                )
                continue
            subnets.append((net_name, net))
    # Fixed addresses must lie inside their network's subnet.
    by_name: dict[str, list[IPNetwork]] = {}
    for net_name, net in subnets:
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
                    findings.append(
                        Finding(
                            Status.FAIL,
                            f"{svc.name}: {key} '{addr_text}' is not an address",
                            (),
                            f"Fix {key}.",
                        )
                    )
                    continue
                nets = [n for n in by_name[net_name] if n.version == addr.version]
                if nets and not any(addr in n for n in nets):
                    findings.append(
                        Finding(
                            Status.FAIL,
                            f"{svc.name}: {key} {addr} is outside network {net_name}'s subnet {nets[0]}",
                            ("Docker refuses to start the container.",),
                            f"Pick an address inside {nets[0]}.",
                        )
                    )
    if subnets:
        findings.extend(_overlaps(ctx, subnets))
    if not subnets and not findings:
        return [], "no fixed subnets: Docker picks free ones"
    return findings, "subnets " + ", ".join(
        str(n) for _, n in subnets
    ) + " are private and clear of this machine's routes"


def _overlaps(ctx: _Ctx, subnets: list[tuple[str, IPNetwork]]) -> list[Finding]:
    try:
        routes = list(ctx.routes())
    except Exception as exc:  # noqa: BLE001 - an injected or OS source must not break the lint
        return [
            Finding(
                Status.OK,
                f"host routes unreadable ({type(exc).__name__}); overlap not checked",
            )
        ]
    if not routes:
        return [Finding(Status.OK, "no host routes readable here; overlap not checked")]
    findings: list[Finding] = []
    for net_name, net in subnets:
        for route in routes:
            other = route.network
            if other.version != net.version or other.prefixlen == 0:
                continue  # default routes overlap everything
            if other == net and route.interface.startswith(("br-", "docker")):
                continue  # this compose network itself, already up
            if net.overlaps(other):  # type: ignore[arg-type]
                findings.append(
                    Finding(
                        Status.WARN,
                        f"network {net_name}: subnet {net} overlaps {other} on {route.interface} (from {route.source})",
                        ("Traffic to those addresses goes to the containers instead (VPN, LAN or another bridge).",),
                        "Pick a private subnet that no route on this machine uses.",
                        (f"{net_name}: subnet: <a free /16, e.g. 172.29.0.0/16>",),
                    )
                )
    return findings


RULES: list[tuple[str, str, Callable[[_Ctx], tuple[list[Finding], str]]]] = [
    ("compose.same_image", "Head and workers run the same image", _rule_same_image),
    ("compose.ray_start_flags", "ray start flags are valid", _rule_ray_start_flags),
    (
        "compose.dashboard_host",
        "Dashboard reachable from outside the container",
        _rule_dashboard_host,
    ),
    ("compose.block", "ray start keeps the container running", _rule_block),
    ("compose.worker_address", "Workers join the head", _rule_worker_address),
    ("compose.shm_size", "Shared memory for the object store", _rule_shm_size),
    (
        "compose.published_ports",
        "Ports published safely and reachably",
        _rule_published_ports,
    ),
    ("compose.gpu_reservation", "GPU services reserve a GPU", _rule_gpu_reservation),
    ("compose.resource_limits", "Resource limits parse", _rule_resource_limits),
    ("compose.network_mode", "Network mode", _rule_network_mode),
    ("compose.subnet", "Compose subnets", _rule_subnet),
]


# --------------------------------------------------------------------------
# host routes


def host_routes(
    proc_route: Path = Path("/proc/net/route"),
    ip_command: Sequence[str] | None = None,
    timeout: float = 2.0,
) -> list[HostRoute]:
    """This machine's routes and interface subnets; empty where neither is readable.

    Linux gives ``/proc/net/route``; ``ip -j addr`` (iproute2) adds the
    interfaces' subnets, IPv6 included. Elsewhere both are absent and the
    overlap check is skipped rather than failed.
    """
    routes: list[HostRoute] = []
    try:
        lines = proc_route.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            flags = int(fields[3], 16)
            dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
            network = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        except (ValueError, struct.error, OSError):
            continue
        if flags & 0x1:  # RTF_UP
            routes.append(HostRoute(network, fields[0], "/proc/net/route"))
    cmd = list(ip_command) if ip_command is not None else None
    if cmd is None:
        ip = shutil.which("ip")
        cmd = [ip, "-j", "addr"] if ip else None
    if cmd:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            data = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else []
        except (OSError, subprocess.SubprocessError, ValueError):
            data = []
        for iface in data if isinstance(data, list) else []:
            if not isinstance(iface, dict) or iface.get("ifname") == "lo":
                continue
            for info in iface.get("addr_info") or []:
                try:
                    net = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
                except (KeyError, TypeError, ValueError):
                    continue
                if net.is_loopback or net.is_link_local:
                    continue
                routes.append(HostRoute(net, str(iface.get("ifname", "?")), "ip -j addr"))
    return routes
