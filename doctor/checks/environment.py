"""The machine around the connection: environment variables and the platform (category ``local``).

Each finding reads only ``ctx.environ``, the target and the judged interpreter's facts, and says
its cause and its fix:

* ``local.proxy``: a proxy variable that would carry traffic to the head because the head is not
  in ``no_proxy``. The Jobs SDK and ``ray job submit`` talk to the dashboard through ``requests``,
  which reads ``http_proxy``/``https_proxy``/``all_proxy`` and ``no_proxy`` (either case) from the
  environment; raydoctor's own HTTP client does not (``trust_env = False`` in
  ``doctor/head/dashboard.py``), so its checks can pass while the user's tools go to the proxy.
  Ray Client (``ray://``) is gRPC: Ray turns gRPC's proxy support off unless
  ``RAY_grpc_enable_http_proxy=1`` (``ray/_private/ray_constants.py::GRPC_ENABLE_HTTP_PROXY``,
  Ray PR #40490); with it on, gRPC takes ``grpc_proxy``, else ``https_proxy``, else ``http_proxy``,
  and skips the hosts of ``no_grpc_proxy``, else ``no_proxy`` (gRPC's
  ``doc/environment_variables.md``).
* ``local.ignore_version_mismatch``: ``RAY_IGNORE_VERSION_MISMATCH`` set to anything (Ray Client
  tests only that the name is present, ``ray/util/client/worker.py::Worker._check_versions``): it
  turns the very mismatch raydoctor looks for into a log line.
* ``local.ray_address``: a ``RAY_ADDRESS`` that points somewhere other than the target checked:
  ``ray.init()`` and the ``ray`` CLI in this shell would go there.
* ``local.platform``: this machine's OS and architecture against the head's (known from a
  ``rayproject/ray`` image tag: Linux, ``-aarch64`` or x86_64), where it matters: packages with
  compiled code whose objects pass between the two, or a driver joining the cluster.
* ``local.python_on_path``: an active venv or conda env whose interpreter is not the ``python3``
  first on ``PATH`` (a shell that re-ordered PATH after activating, a stale ``hash``).
"""

from __future__ import annotations

import ipaddress
import os
import platform
import shlex
import shutil
from pathlib import Path
from typing import Any, Mapping

from doctor import remedies
from doctor.codes import SETTINGS_REFUSED, SETTINGS_UNTRUSTED
from doctor.model import Remediation, Result, Status, finding
from doctor.origin import Origin
from doctor.runner import Check
from doctor.trust import TrustState

HTTP_PROXIES = ("http_proxy", "https_proxy", "all_proxy")
GRPC_PROXIES = ("grpc_proxy", "https_proxy", "http_proxy")  # gRPC's order: the first one set is used
# Packages with compiled code whose objects commonly travel between a client and the cluster.
COMPILED_EXCHANGE = (
    "numpy",
    "pandas",
    "pyarrow",
    "torch",
    "tensorflow",
    "jax",
    "jaxlib",
    "scipy",
    "scikit-learn",
    "polars",
    "xgboost",
    "lightgbm",
)


def _get(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(the variable's name as set, its value): the lower-case name first, as ``urllib`` prefers."""
    for variant in (name.lower(), name.upper()):
        value = environ.get(variant)
        if value and value.strip():
            return variant, value.strip()
    return None


def bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``host`` is exempt by a ``no_proxy`` list: ``*``, a name or domain suffix (``.corp``,
    ``corp``), ``host:port``, an IP or a CIDR block, as ``requests.utils.should_bypass_proxies`` and
    gRPC read it."""
    host = host.lower().strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port is not None and entry_port != str(port):
            continue
        name = name.lstrip("*").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _no_proxy(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    for name in names:
        got = _get(environ, name)
        if got is not None:
            return got
    return names[-1], ""


def judge_proxy(ctx: Any) -> Result:
    environ: Mapping[str, str] = ctx.environ
    set_vars = {n: got for n in (*HTTP_PROXIES, "grpc_proxy") if (got := _get(environ, n)) is not None}
    address = ctx.target.address
    if not set_vars:
        return finding(Status.OK, "no proxy variables are set", code="local.proxy.none")
    if address is None:
        return finding(
            Status.SKIP,
            f"{', '.join(v[0] for v in set_vars.values())} set; no head address to judge them against",
            code="local.proxy.no_address",
        )
    host = address.host
    problems: list[str] = []
    details: list[str] = []
    # The dashboard, as requests reaches it (ray job submit, JobSubmissionClient): scheme's proxy, else all_proxy.
    http_var = _get(environ, f"{address.scheme}_proxy") or _get(environ, "all_proxy")
    no_name, no_value = _no_proxy(environ, ("no_proxy",))
    if http_var is not None and not bypassed(host, address.dashboard_port, no_value):
        problems.append(
            f"{http_var[0]} would carry dashboard traffic ({address.dashboard_url}: ray job submit, the Jobs SDK)"
        )
    # Ray Client (gRPC), only when Ray lets gRPC use a proxy at all.
    grpc_on = environ.get("RAY_grpc_enable_http_proxy", "0").lower() in ("1", "true")
    grpc_var = next((got for n in GRPC_PROXIES if (got := _get(environ, n)) is not None), None)
    grpc_no_name, grpc_no = _no_proxy(environ, ("no_grpc_proxy", "no_proxy"))
    if grpc_var is not None:
        if not grpc_on:
            details.append(
                f"{grpc_var[0]} does not reach Ray Client: Ray turns gRPC's proxy off unless RAY_grpc_enable_http_proxy=1"
            )
        elif not bypassed(host, address.client_port, grpc_no):
            problems.append(
                f"{grpc_var[0]} would carry Ray Client traffic ({address.client_url}; RAY_grpc_enable_http_proxy=1)"
            )
    details.append("raydoctor's own HTTP requests never use a proxy, so its checks can pass where your tools fail")
    shown_no = f"{no_name}={no_value!r}" if no_value else "no no_proxy is set"
    if not problems:
        return finding(
            Status.OK,
            f"proxy variables set, but none carries traffic to {host} ({shown_no})",
            code="local.proxy.bypassed",
            details=details,
        )
    names = sorted({"no_proxy", "NO_PROXY"} | ({grpc_no_name} if grpc_on and grpc_no_name != "no_proxy" else set()))
    commands = tuple(f"export {n}={shlex.quote(_joined(host, environ.get(n, '')))}" for n in names)
    return finding(
        Status.WARN,
        f"{'; '.join(problems)}: {host} is not in no_proxy ({shown_no})",
        code="local.proxy.would_proxy",
        details=details,
        fix=Remediation(
            f"Exempt the head from the proxy (or unset the proxy variables when the head is reachable directly): "
            f"add {host} to no_proxy and NO_PROXY in your shell profile.",
            commands,
        ),
        data={"variables": {n: v[0] for n, v in set_vars.items()}, "host": host},
    )


def _joined(host: str, current: str) -> str:
    entries = [e for e in (s.strip() for s in current.split(",")) if e]
    return ",".join([host, *[e for e in entries if e.lower() != host.lower()]])


def judge_ignore_mismatch(ctx: Any) -> Result:
    value = ctx.environ.get("RAY_IGNORE_VERSION_MISMATCH")
    if value is None:
        return finding(Status.OK, "RAY_IGNORE_VERSION_MISMATCH is not set", code="local.ignore_version_mismatch.unset")
    return finding(
        Status.WARN,
        f"RAY_IGNORE_VERSION_MISMATCH={value!r} is set: Ray Client turns a Python or Ray version mismatch "
        "into a log line (any value counts, even 0)",
        code="local.ignore_version_mismatch.set",
        details=["a mismatch it hides shows up later as pickling errors or crashes inside tasks"],
        fix=Remediation(
            "Remove it from this shell and from your shell profile; fix the mismatch instead (raydoctor fix).",
            ("unset RAY_IGNORE_VERSION_MISMATCH",),
        ),
    )


def _same_place(a: Any, b: Any) -> bool:
    from doctor.target import is_loopback

    same_host = a.host.lower() == b.host.lower() or (is_loopback(a.host) and is_loopback(b.host))
    return same_host and (a.dashboard_port == b.dashboard_port or a.client_port == b.client_port)


def judge_settings_trust(ctx: Any) -> Result:
    """A settings file the user has not trusted steers nothing sensitive; say what it would change."""
    untrusted = ctx.options.untrusted_settings  # only asked when there is one (checks_for)
    details = [f"refused: {why}" for why in untrusted.refused]
    if untrusted.path is None:
        return finding(
            Status.WARN,
            "a settings file here was not read: " + untrusted.refused[0],
            code=SETTINGS_REFUSED,
            details=details,
            fix=Remediation(
                "A settings file another user owns, or one any user can write, is never read (git's safe.directory "
                "rule). Make it yours (chown) and not writable by all (chmod o-w), or pass the options as flags.",
                (),
            ),
        )
    keys = sorted(untrusted.withheld)
    path = str(untrusted.path)
    why = "changed since you trusted it" if untrusted.trust is TrustState.CHANGED else "not trusted yet"
    details += [f"would set {key} = {untrusted.withheld[key]!r}" for key in keys]
    return finding(
        Status.WARN,
        f"{path} is {why}: its {', '.join(keys)} {'was' if len(keys) == 1 else 'were'} not applied",
        code=SETTINGS_UNTRUSTED,
        details=details,
        data={"file": path, "withheld": keys, "trust": untrusted.trust.value if untrusted.trust else None},
        fix=Remediation(
            "A settings file in a repository you cloned chooses what runs and where your token goes only once you "
            "trust it. Read it, then trust it (a later edit needs trusting again):",
            (remedies.raydoctor(["trust", path], ctx.environ),),
        ),
    )


def judge_ray_address(ctx: Any) -> Result:
    from doctor.errors import UsageError
    from doctor.target import parse_address

    raw = ctx.environ.get("RAY_ADDRESS", "")
    if not raw.strip():
        return finding(Status.OK, "RAY_ADDRESS is not set", code="local.ray_address.unset")
    target = ctx.target
    if target.address_origin is Origin.ENVIRONMENT:
        return finding(Status.OK, f"the target checked is RAY_ADDRESS={raw}", code="local.ray_address.is_target")
    checked = target.address.dashboard_url if target.address is not None else (target.image or str(target.compose_path))
    fix = Remediation(
        "ray.init() and the ray CLI in this shell use RAY_ADDRESS: unset it, or point it at the cluster checked.",
        ("unset RAY_ADDRESS",)
        + ((f"export RAY_ADDRESS={shlex.quote(target.address.client_url)}",) if target.address is not None else ()),
    )
    try:
        env_address = parse_address(raw)
    except UsageError as exc:
        return finding(
            Status.WARN,
            f"RAY_ADDRESS={raw!r} is not the target checked ({checked}): {exc.message}",
            code="local.ray_address.other",
            fix=fix,
        )
    if target.address is not None and _same_place(env_address, target.address):
        return finding(Status.OK, f"RAY_ADDRESS={raw} names the target checked", code="local.ray_address.same")
    return finding(
        Status.WARN,
        f"RAY_ADDRESS={raw} points elsewhere than the target checked ({checked}): "
        f"ray.init() and `ray job submit` here would go to {env_address.host}",
        code="local.ray_address.other",
        fix=fix,
    )


def _arch(machine: str) -> str:
    m = machine.lower()
    return {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}.get(m, m)


def head_platform(ctx: Any) -> tuple[str, str, str] | None:
    """(OS, arch, where known from) of the head, when a rayproject/ray image tag says it."""
    image = ctx.target.image
    if not image:
        return None
    from doctor.head.image_tag import parse_image

    info = parse_image(image)
    if not info.is_ray_image:
        return None
    return "linux", _arch(info.arch), f"the image tag {image}"


def judge_platform(ctx: Any) -> Result:
    local = ctx.local_or_none()
    system = (local.system if local else platform.system()).lower()
    machine = _arch(local.machine if local else platform.machine())
    head = head_platform(ctx)
    here = f"{system}/{machine}"
    if head is None:
        return finding(
            Status.SKIP, f"this machine is {here}; the head's platform is not known", code="local.platform.unknown"
        )
    there = f"{head[0]}/{head[1]}"
    data = {"local": here, "head": there, "head_from": head[2]}
    if (system, machine) == head[:2]:
        return finding(Status.OK, f"{here}, as the head ({head[2]})", code="local.platform.same", data=data)
    if ctx.options.mode == "driver":
        return finding(
            Status.WARN,
            f"this machine is {here}, the head {there} ({head[2]}): a driver joins the cluster as a node, "
            "and Ray does not support clusters that mix platforms",
            code="local.platform.driver_mixed",
            fix=Remediation(
                "Connect with Ray Client (ray://HOST:10001, --mode client), or run the driver on the cluster."
            ),
            data=data,
        )
    names = set(local.distributions) if local else set()
    if ctx.requirements is not None:
        names |= {str(req.name).lower() for req in ctx.requirements.requirements}
    compiled = sorted(n for n in COMPILED_EXCHANGE if n in names)
    if not compiled:
        return finding(
            Status.OK,
            f"this machine is {here}, the head {there}: fine for Ray Client while only pure-Python objects "
            "pass between them",
            code="local.platform.differs_pure",
            data=data,
        )
    return finding(
        Status.WARN,
        f"this machine is {here}, the head {there} ({head[2]}), and objects of packages with compiled code "
        f"({', '.join(compiled)}) pass between them",
        code="local.platform.differs_compiled",
        details=[
            "each side runs its own build of these packages: they must be the same versions, with wheels "
            f"for {there} installable on the cluster",
        ],
        fix=Remediation(
            "Pin these packages to exact versions in the requirements file and install the same file on the "
            "cluster (runtime_env pip, or the image); or develop on a machine of the head's platform."
        ),
        data={**data, "compiled": compiled},
    )


def judge_python_on_path(ctx: Any) -> Result:
    environ: Mapping[str, str] = ctx.environ
    active = None
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if environ.get(var):
            active = (var, Path(environ[var]))
            break
    if active is None:
        return finding(Status.SKIP, "no venv or conda env is active", code="local.python_on_path.no_env")
    var, prefix = active
    bin_dir = prefix / ("Scripts" if os.name == "nt" else "bin")
    found = shutil.which("python3", path=environ.get("PATH", os.defpath))
    if found is None:
        return finding(
            Status.WARN,
            f"{var}={prefix} is active, but there is no python3 on PATH",
            code="local.python_on_path.missing",
            fix=Remediation("Activate the env again, which puts its bin/ first on PATH.", (_activate(var, prefix),)),
        )
    found_dir = Path(found).parent
    if _same_dir(found_dir, bin_dir):
        return finding(Status.OK, f"python3 on PATH is the active env's ({found})", code="local.python_on_path.same")
    return finding(
        Status.WARN,
        f"{var}={prefix} is active, but the python3 first on PATH is {found}: `python3` here runs another interpreter",
        code="local.python_on_path.other",
        details=[f"{bin_dir} should come first on PATH (an edit of PATH after activating, or a stale shell hash)"],
        fix=Remediation(
            "Activate the env again (and `hash -r` in bash/zsh), or call its interpreter by path.",
            (_activate(var, prefix), "hash -r"),
        ),
        data={"active": str(prefix), "python3": found},
    )


def _activate(var: str, prefix: Path) -> str:
    if var == "CONDA_PREFIX":
        return f"conda activate {shlex.quote(str(prefix))}"
    return f"source {shlex.quote(str(prefix / 'bin' / 'activate'))}"


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


# Only when a settings file's sensitive keys were set aside (checks_for): not one of the checks every run has.
SETTINGS_TRUST_TITLE = "Settings file trusted"
TITLES = {
    "local.proxy": "Proxy variables",
    "local.ignore_version_mismatch": "RAY_IGNORE_VERSION_MISMATCH",
    "local.ray_address": "RAY_ADDRESS",
    "local.platform": "Platform (OS/architecture)",
    "local.python_on_path": "python3 on PATH",
}


def checks_for(ctx: Any) -> list[Check]:
    trust = [Check("local.settings_trust", "local", SETTINGS_TRUST_TITLE, judge_settings_trust, timeout=5)]
    return [
        *(trust if ctx.options.untrusted_settings is not None else []),
        Check("local.proxy", "local", TITLES["local.proxy"], judge_proxy, timeout=5),
        Check("local.ignore_version_mismatch", "local", TITLES["local.ignore_version_mismatch"], judge_ignore_mismatch),
        Check("local.ray_address", "local", TITLES["local.ray_address"], judge_ray_address, timeout=5),
        Check("local.platform", "local", TITLES["local.platform"], judge_platform, timeout=25),
        Check("local.python_on_path", "local", TITLES["local.python_on_path"], judge_python_on_path, timeout=5),
    ]
