"""Rules that judge every kind of cluster file alike: images, `ray start` options, GPUs, the Ray version.

Each reads the common description (``ClusterSpec``: head and worker groups)
and words its advice in the file's own terms (a compose service's
``deploy.resources``, a pod's ``nvidia.com/gpu`` limit), through the small
``_place`` helpers at the bottom.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from doctor.checks.lint.framework import Item, LintContext
from doctor.head.cluster_files import GPU_RESOURCE, ClusterSpec, NodeGroup
from doctor.head.image_tag import ImageInfo, parse_image
from doctor.model import Change, Edit, Op, Status
from doctor.parsers.ray_start import (
    LABELS_PAIRS_SINCE,
    OPTIONS,
    REMOVED,
    TABLE_NEWEST,
    TABLE_OLDEST,
    OptionSpec,
    RayStartLine,
    RayStartOption,
    beyond_table,
    labels_pairs,
    option_at,
    options_at,
)
from doctor.versions import release

__all__ = ["gpu", "ray_start_flags", "ray_version", "same_image"]

# Ray refuses a node whose Ray or Python differs from the head's.
NODE_CHECK_SOURCE = "ray/_private/node.py::Node.check_version_info"
_CLICK_BOOL = {"1", "0", "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off"}
_GPU_TAG = re.compile(r"-(gpu|cu\d{2,3})(?=-|$)")
_SEVERITY = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


# --------------------------------------------------------------------------
# same image


def same_image(ctx: LintContext) -> tuple[list[Item], str]:
    spec, compose = ctx.spec, ctx.family == "compose"
    head = spec.head
    if not spec.workers:
        what = "worker services" if compose else "worker groups"
        return [Item(Status.SKIP, f"no {what} to compare with the head", cause="no_workers")], ""
    if not head.image:
        why = f"{head.name} has no image: (built locally); cannot compare tags"
        if not compose:
            why = "the head names no image (it runs on the host); nothing to compare"
        return [Item(Status.SKIP, why, cause="no_head_image")], ""
    items: list[Item] = []
    head_info = parse_image(head.image)
    rule = f"Ray requires the same Ray and Python on every node, Python to the patch ({NODE_CHECK_SOURCE})."
    for worker in spec.workers:
        if not worker.image:
            if compose:
                items.append(Item(Status.OK, f"{worker.name} builds its own image; not compared"))
                continue
            items.append(
                Item(
                    Status.WARN,
                    f"{worker.name} names no image (runs on the host) but the head runs {head.image}",
                    (rule,),
                    "Give every group the head's image.",
                    (_image_edit(ctx, worker, head.image),),
                    cause="worker_without_image",
                )
            )
            continue
        if _same_image(worker.image, head.image):
            items.append(Item(Status.OK, f"{worker.name} runs {worker.image}"))
            continue
        info = parse_image(worker.image)
        if _same_ray_and_python(info, head_info):
            items.append(
                Item(
                    Status.OK,
                    f"{worker.name} runs {worker.image}, the head {head.image}: same Ray {info.ray} and "
                    f"Python {info.python_minor}, only the platform differs "
                    f"({head_info.platform} head, {info.platform} workers)",
                )
            )
            continue
        versions = _versions_note(head_info, info)
        refused = _join_refused(head_info, info)
        if refused:
            items.append(
                Item(
                    Status.FAIL,
                    f"{worker.name} runs {worker.image} but the head runs {head.image}: {refused}; Ray refuses "
                    "such a worker when it joins, so it never does",
                    (versions, JOIN_REFUSAL),
                    "Run the head's image in every group.",
                    (_image_edit(ctx, worker, head.image),),
                    cause="join_refused",
                )
            )
            continue
        items.append(
            Item(
                Status.WARN,
                f"{worker.name} runs {worker.image} but the head runs {head.image}",
                tuple(v for v in (versions, rule + " A different image risks workers that never join.") if v),
                "Run the head's image in every group.",
                (_image_edit(ctx, worker, head.image),),
                cause="differs",
            )
        )
    return items, f"head and workers run {head.image}"


def _same_image(a: str, b: str) -> bool:
    """Equal references, ignoring Docker Hub's implicit ``docker.io/`` and ``library/`` and ``:latest``."""

    def norm(ref: str) -> str:
        ref = ref.strip()
        for prefix in ("docker.io/", "index.docker.io/", "library/"):
            if ref.startswith(prefix):
                ref = ref[len(prefix) :]
        return ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"

    return norm(a) == norm(b)


def _same_ray_and_python(a: ImageInfo, b: ImageInfo) -> bool:
    """Two rayproject images of one release and Python: only CPU/GPU/arch differ."""
    return (
        a.is_ray_image
        and b.is_ray_image
        and a.ray is not None
        and a.ray == b.ray
        and a.python_minor is not None
        and a.python_minor == b.python_minor
        and a.repository == b.repository
    )


# What Ray does with a worker of another Ray or Python (read in Ray 2.49.2): `ray start` on the worker calls
# ray/_private/node.py::Node.check_version_info, which compares its versions with the cluster's metadata in
# ray/_private/utils.py::check_version_info (python_version_match_level="patch" by default) and raises.
JOIN_REFUSAL = (
    "When the worker's `ray start` joins, Ray compares its Ray and Python with the head's "
    "(ray/_private/node.py::Node.check_version_info, then ray/_private/utils.py::check_version_info, "
    'Python to the patch) and raises RuntimeError "Version mismatch: The cluster was started with ...": '
    "`ray start` fails and the container exits or restarts."
)


def _join_refused(head: ImageInfo, worker: ImageInfo) -> str:
    """What the tags say differs that Ray refuses on join (another Ray, another Python), or "" when they
    do not tell (an image that is not rayproject's, a tag without versions): then it stays a warning."""
    parts = []
    if head.ray and worker.ray and head.ray != worker.ray:
        parts.append(f"Ray {worker.ray} ≠ {head.ray}")
    if head.python_minor and worker.python_minor and head.python_minor != worker.python_minor:
        parts.append(f"Python {worker.python_minor} ≠ {head.python_minor}")
    return ", ".join(parts)


def _versions_note(head: ImageInfo, worker: ImageInfo) -> str:
    parts = []
    if head.ray and worker.ray and head.ray != worker.ray:
        parts.append(f"Ray {worker.ray} ≠ {head.ray}")
    if head.python_minor and worker.python_minor and head.python_minor != worker.python_minor:
        parts.append(f"Python {worker.python_minor} ≠ {head.python_minor}")
    return ("By their tags: " + ", ".join(parts) + ".") if parts else ""


# --------------------------------------------------------------------------
# ray start options


def ray_start_flags(ctx: LintContext) -> tuple[list[Item], str]:
    """Every option is one the group's Ray takes (any Ray of the table where the file does not say which),
    with a value of the kind it wants."""
    items: list[Item] = []
    seen: set[str] = set()
    judged: list[str] = []
    releases: set[str] = set()
    for group in ctx.ray_groups():
        if group.ray_start_at in seen:
            continue  # the launcher's worker types share one worker_start_ray_commands
        seen.add(group.ray_start_at)
        line = group.ray_start
        assert line is not None
        who = group.name if ctx.spec.format != "ray-launcher" else group.ray_start_at
        judged.append(who)
        ray = _ray_of(ctx.spec, group)
        releases.add(ray.text if ray else "")
        params = group.ray_start_form == "params"
        group_items: list[Item] = []
        fixed: list[RayStartOption] = []
        names = line.names()
        for index, opt in enumerate(line.options):
            item, replacement = _check_option(who, opt, ray)
            others = names[:index] + names[index + 1 :]
            if replacement and replacement[0].name in others:
                replacement = []  # the corrected option is already given
            if item:
                if params:
                    item.edits = _param_edits(ctx, group, opt, replacement)
                group_items.append(item)
            fixed.extend([opt] if replacement is None else replacement)
        for word in line.shown_positionals():
            group_items.append(
                Item(
                    Status.FAIL,
                    f"{who}: unexpected argument '{word}' after ray start",
                    ("click stops with 'Got unexpected extra argument'.",),
                    f"Remove '{word}' or attach it to its flag with '='.",
                    cause="stray_argument",
                )
            )
        corrected = RayStartLine(fixed, [])
        if group_items and not params and corrected.words() != line.words():
            # Only offer a line we could actually correct; on the worst item, once.
            worst = max(group_items, key=lambda f: _SEVERITY[f.status])
            worst.edits = (
                ctx.edit(
                    group.ray_start_at,
                    corrected.display(),
                    "the `ray start` part of the command, corrected" + _secret_note(corrected),
                ),
            )
        items.extend(group_items)
    if not judged:
        return [], "no `ray start` options in the file"
    if releases == {""}:
        whose = f"a Ray of {TABLE_OLDEST} to {TABLE_NEWEST}"  # the file does not say which
    else:
        whose = f"Ray {releases.pop()}" if len(releases) == 1 else "the group's Ray"
    return items, f"every ray start flag is one {whose} takes ({', '.join(judged)})"


@dataclass(frozen=True)
class _Ray:
    """The Ray a group's `ray start` runs: its release, as written, and where the file says it."""

    version: Version
    text: str
    source: str


def _ray_of(spec: ClusterSpec, group: NodeGroup) -> _Ray | None:
    """The Ray a group runs, by its file: the launcher's ``pip install ray==`` in setup_commands (installed
    over the image's), else the image's tag, else the version the file declares (KubeRay's rayVersion)."""
    declared = release(spec.ray_version) if spec.ray_version else None
    if declared is not None and spec.format == "ray-launcher":
        return _Ray(declared, spec.ray_version or "", spec.ray_version_from or "setup_commands")
    tagged = parse_image(group.image).ray if group.image else None
    version = release(tagged)
    if tagged and version is not None:
        return _Ray(version, tagged, f"the image {group.image}")
    if declared is not None:
        return _Ray(declared, spec.ray_version or "", spec.ray_version_from or "the file")
    return None


def _secret_note(line: RayStartLine) -> str:
    return "; keep your own value where it shows ***" if line.secret_values() else ""


def _param_edits(
    ctx: LintContext, group: NodeGroup, opt: RayStartOption, replacement: list[RayStartOption] | None
) -> tuple[Edit, ...]:
    """A fix to KubeRay's rayStartParams: rename or drop the key (the operator adds the dashes)."""
    key = opt.name.lstrip("-")
    at = f"{group.ray_start_at}.{key}"
    if replacement is None:
        return ()
    if not replacement:
        return (ctx.edit(at, "", "remove this key"),)
    new = replacement[0]
    if new.value is None:
        value = "'true'"
    else:
        value = "'***'" if new.secret else _yaml_text(new.value)
    if new.name == opt.name:
        return (ctx.edit(at, value),)
    return (ctx.edit(f"{group.ray_start_at}.{new.name.lstrip('-')}", value, f"instead of {key}"),)


def _yaml_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _renamed(opt: RayStartOption, name: str) -> RayStartOption:
    if opt.value is None:
        return RayStartOption(name, name, None, False)
    word = f"{name}={opt.value}" if opt.inline else name
    return RayStartOption(word, name, opt.value, opt.inline)


def _check_option(who: str, opt: RayStartOption, ray: _Ray | None) -> tuple[Item | None, list[RayStartOption] | None]:
    """Judge one option against the group's Ray (``ray``; None: any Ray of the table); returns what was
    found and the corrected options (None: keep as is)."""
    name, value = opt.name, opt.value
    at = ray.version if ray else None
    spec = option_at(name, at)
    if spec is None:
        return _not_taken(who, opt, ray)
    if spec.valueless:
        if opt.inline:
            return (
                Item(
                    Status.FAIL,
                    f"{who}: {name} takes no value, got '{opt.shown()}'",
                    ("click stops with 'Option does not take a value'.",),
                    f"Write the bare flag {name}.",
                    cause="flag_with_value",
                ),
                [RayStartOption(name, name, None, False)],
            )
    elif value is None:
        return (
            Item(
                Status.FAIL,
                f"{who}: {name} needs a value",
                ("click stops with 'Option requires an argument'.",),
                f"Give {name} a value, e.g. {name}=...",
                cause="missing_value",
            ),
            None,
        )
    elif not _unexpanded(value):
        problem = _bad_value(spec, value, at)
        if problem:
            return (
                Item(
                    Status.FAIL,
                    f"{who}: {opt.shown()} {problem}",
                    ("`ray start` refuses the value and the container stops.",),
                    f"Fix the value of {name}.",
                    cause="bad_value",
                ),
                None,
            )
    if spec.deprecated:
        drop = "drop it" in spec.deprecated
        return (
            Item(
                Status.WARN,
                f"{who}: {name} is deprecated: {spec.deprecated}",
                (),
                f"Remove {name}." if drop else spec.deprecated[0].upper() + spec.deprecated[1:] + ".",
                cause="deprecated",
            ),
            [] if drop else None,
        )
    return None, None


def _not_taken(who: str, opt: RayStartOption, ray: _Ray | None) -> tuple[Item, list[RayStartOption] | None]:
    """An option `ray start` of the group's Ray does not take: a typo, one of another release, or one
    raydoctor's table cannot know (a Ray newer or older than it)."""
    name = opt.name
    at = ray.version if ray else None
    runs = f"{who} runs Ray {ray.text} ({ray.source})" if ray else ""
    no_such = f"`ray start` exits with 'No such option: {name}' and the container stops."
    if not name.startswith("--") and option_at("-" + name, at) is not None:
        good = "-" + name
        return (
            Item(
                Status.FAIL,
                f"{who}: '{opt.shown()}' has one dash; ray start wants '{_renamed(opt, good).shown()}'",
                (f"click reads '{name}' as short options and `ray start` exits with 'No such option'.",),
                f"Write long options with two dashes: {good}.",
                cause="single_dash",
            ),
            [_renamed(opt, good)],
        )
    spec = OPTIONS.get(name)
    since = spec.arrived_after(ray.version) if spec is not None and ray is not None else None
    if since is not None:
        # An option of a later release: the user's Ray is the one to change, or the option dropped.
        return (
            Item(
                Status.FAIL,
                f"{who}: {name} came in Ray {since}; {runs}, whose `ray start` does not take it",
                (no_such,),
                f"Run Ray {since} or later, or remove {name}.",
                cause="too_new",
            ),
            None,
        )
    if name in REMOVED:
        gone = REMOVED[name]
        instead = f"use {gone.instead}" if gone.instead else "drop it"
        when = f"removed in Ray {gone.since}" if gone.since else f"removed before Ray {TABLE_OLDEST}"
        of = f"ray start {ray.text}" if ray else "ray start"
        return (
            Item(
                Status.FAIL,
                f"{who}: {name} is not an option of {of} ({when}); {instead}",
                (no_such,) + ((runs + ".",) if ray else ()),
                f"Replace {name}: {instead}.",
                cause="removed",
            ),
            [_renamed(opt, gone.instead)] if gone.instead else [],
        )
    close = difflib.get_close_matches(name, options_at(at), n=1, cutoff=0.6)
    edge = beyond_table(at)
    if ray is not None and edge is not None:
        # Unknown to every release raydoctor read, on a Ray it did not read: Ray's own `ray start`
        # may take it, so it is neither failed nor corrected.
        side = "stops at" if edge == TABLE_NEWEST else "starts at"
        hint = f" (close to {close[0]})" if close else ""
        return (
            Item(
                Status.WARN,
                f"{who}: {name} is not a ray start option raydoctor knows{hint}; its table {side} Ray {edge} "
                f"and {runs}",
                (
                    f"raydoctor's table of `ray start` options covers Ray {TABLE_OLDEST} to {TABLE_NEWEST}; "
                    f"a Ray outside it may take {name}, so it is left as written.",
                ),
                f"Check that `ray start --help` of Ray {ray.text} lists {name}.",
                cause="beyond_table",
            ),
            None,
        )
    hint = f"; did you mean {close[0]}?" if close else ""
    return (
        Item(
            Status.FAIL,
            f"{who}: unknown ray start flag {name}{hint}",
            (no_such,),
            f"Use {close[0]} instead of {name}." if close else f"Remove {name}; see `ray start --help`.",
            cause="unknown",
        ),
        [_renamed(opt, close[0])] if close else None,
    )


def _unexpanded(value: str) -> bool:
    """A shell variable left for the container's shell (``$$VAR`` in compose, ``$RAY_HEAD_IP``)."""
    return "$" in value or "`" in value


def _bad_value(spec: OptionSpec, value: str, ray: Version | None = None) -> str | None:
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
        except (ValueError, RecursionError):
            return "is not valid JSON (quote it: --resources='{\"name\": 1}')"
        if not isinstance(parsed, dict):
            return "is not a JSON object"
    elif spec.kind == "labels":
        return _bad_labels(value, ray)
    return None


def _bad_labels(value: str, ray: Version | None) -> str | None:
    """`ray start --labels`: a JSON object in every release; from 2.45 also ``key1=val1,key2=val2``
    (ray/_private/label_utils.py::parse_node_labels_string, tried first, then the JSON)."""
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        return None
    if not labels_pairs(ray):
        return (
            f'is not a JSON object (Ray before {LABELS_PAIRS_SINCE} takes only JSON: --labels=\'{{"key": "value"}}\')'
        )
    text = value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
    if text and any(len(pair.split("=")) != 2 for pair in text.split(",")):
        return "is neither key=value pairs (--labels=key1=val1,key2=val2) nor a JSON object"
    return None


# --------------------------------------------------------------------------
# the declared Ray version (KubeRay, Helm, the launcher's setup commands)


def ray_version(ctx: LintContext) -> tuple[list[Item], str]:
    spec = ctx.spec
    declared = spec.ray_version
    if not declared:
        what = {"kuberay": "spec.rayVersion", "helm": "head.rayVersion"}.get(spec.format, "a Ray version")
        return [Item(Status.SKIP, f"the file declares no Ray version ({what} not set)", cause="undeclared")], ""
    launcher = spec.format == "ray-launcher"
    items: list[Item] = []
    unknown: list[str] = []
    for group in spec.groups:
        if not group.image:
            continue
        info = parse_image(group.image)
        if info.ray is None:
            unknown.append(group.name)
            continue
        if _version_equal(info.ray, declared):
            items.append(Item(Status.OK, f"{group.name} runs Ray {info.ray}"))
            continue
        if launcher:
            items.append(
                Item(
                    Status.WARN,
                    f"{spec.ray_version_from} install Ray {declared} over Ray {info.ray} of {group.image} "
                    f"({group.name})",
                    (
                        "Every node reinstalls Ray when it starts; "
                        "the image's other packages were built for its own Ray.",
                    ),
                    f"Use the image of Ray {declared}, or drop the ray pin from the setup commands.",
                    cause="setup_reinstalls",
                )
            )
            continue
        items.append(
            Item(
                Status.FAIL,
                f"{spec.ray_version_from} is {declared} but {group.name} runs {group.image} (Ray {info.ray})",
                (
                    "KubeRay chooses how to start and manage the cluster by the declared version; "
                    "the image decides what really runs.",
                ),
                f"Set {spec.ray_version_from} to {info.ray}, the Ray of the image, or run an image of Ray {declared}.",
                (ctx.edit(spec.ray_version_from or "rayVersion", f"'{info.ray}'"),),
                cause="mismatch",
            )
        )
    if not items:
        return [
            Item(
                Status.SKIP,
                f"declares Ray {declared}; no image tag names a Ray version to compare "
                f"({', '.join(unknown) or 'no images'})",
                cause="no_image_version",
            )
        ], ""
    return items, f"{spec.ray_version_from} {declared} matches every image's Ray"


def _version_equal(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except (InvalidVersion, ValueError):  # ValueError: a number past int()'s 4300 digits
        return a.strip() == b.strip()


# --------------------------------------------------------------------------
# GPUs


def gpu(ctx: LintContext) -> tuple[list[Item], str]:
    """A group meant for GPUs gets one from its platform, and a GPU goes to an image with CUDA."""
    spec, compose = ctx.spec, ctx.family == "compose"
    items: list[Item] = []
    for group in spec.groups:
        info = parse_image(group.image) if group.image else None
        gpu_image = _is_gpu_image(group.image, info)
        cpu_image = info is not None and info.is_ray_image and info.platform == "cpu" and info.unknown_reason is None
        num = group.num_gpus
        got = group.gpus or 0
        if spec.explicit_gpus:
            wants_by_num = bool(num)
            # A compose head runs tasks like any worker; a KubeRay head is usually kept free of them.
            wants_by_image = gpu_image and num is None and (compose or group.role == "worker")
            if (wants_by_num or wants_by_image) and not got:
                items.append(_no_gpu(ctx, group, num, wants_by_num))
                continue
            if num and got and num > got and group.gpus_exact:
                if compose:
                    summary = f"{group.name}: --num-gpus={num:g} but only {got:g} GPU(s) reserved"
                    fix = f"Reserve {num:g} GPUs or pass --num-gpus={got:g}."
                else:
                    summary = f"{group.name}: num-gpus {num:g} but only {got:g} GPU in its {GPU_RESOURCE} limit"
                    fix = f"Set num-gpus to {got:g}, or raise the limit to {num:g}."
                items.append(
                    Item(
                        Status.WARN,
                        summary,
                        ("Ray schedules tasks on GPUs the container cannot see.",),
                        fix,
                        cause="fewer_than_num_gpus",
                    )
                )
                continue
        if (got or num) and cpu_image:
            amount = got or num or 0
            asked = f"{GPU_RESOURCE}: {amount:g}" if spec.explicit_gpus and got and not compose else f"{amount:g} GPU"
            items.append(
                Item(
                    Status.WARN,
                    f"{group.name}: {asked} on the CPU image {group.image}",
                    ("The CPU images have no CUDA: the GPU is reserved but frameworks inside cannot use it.",),
                    "Use the GPU variant of the image (-gpu or -cuXYZ).",
                    (_image_edit(ctx, group, _gpu_variant(group.image or "")),),
                    cause="cpu_image",
                )
            )
            continue
        if got or num:
            what = "reserves an NVIDIA GPU" if compose and got else f"{got or num:g} GPU"
            items.append(Item(Status.OK, f"{group.name}: {what}"))
    if not items:
        return [], "no service uses a GPU image or --num-gpus" if compose else "no group asks for GPUs"
    if compose:
        return items, "every GPU service has an NVIDIA device reservation"
    return items, "every GPU group gets a GPU and a CUDA image"


def _no_gpu(ctx: LintContext, group: NodeGroup, num: float | None, by_num: bool) -> Item:
    compose = ctx.family == "compose"
    want = int(num) if num and num == int(num) else (num or 1)
    if compose:
        why = f"passes --num-gpus={num:g}" if by_num and num else f"runs the GPU image {group.image}"
        return Item(
            Status.FAIL,
            f"{group.name}: {why} but reserves no NVIDIA GPU",
            (
                "Without a device reservation the container has no /dev/nvidia*; with --num-gpus "
                "Ray still advertises the GPU, so GPU tasks are scheduled and then find no device.",
            ),
            "Reserve the GPU for the service.",
            (
                ctx.edit(
                    f"{group.where}.deploy.resources.reservations.devices",
                    f"[{{driver: nvidia, count: {want}, capabilities: [gpu]}}]",
                ),
            ),
            cause="no_reservation",
        )
    why = f"rayStartParams num-gpus is {num:g}" if by_num and num else f"it runs the GPU image {group.image}"
    details = [f"Kubernetes gives a pod GPUs only through resources.limits[{GPU_RESOURCE}]."]
    if by_num:
        details.append(
            "Ray advertises GPUs that do not exist: a num_gpus=1 task is scheduled, "
            "sees CUDA_VISIBLE_DEVICES=0 and finds no device."
        )
    details += group.gpu_notes
    return Item(
        Status.FAIL,
        f"{group.name}: {why} but the pod has no {GPU_RESOURCE} limit: it gets no GPU",
        tuple(details),
        f"Give the Ray container of {group.name} a GPU limit.",
        (ctx.edit(f'{_resources_place(ctx.spec, group)}.limits["{GPU_RESOURCE}"]', str(want)),),
        cause="no_limit",
    )


def _is_gpu_image(image: str | None, info: ImageInfo | None) -> bool:
    if not image:
        return False
    if info is not None and info.is_ray_image and info.platform == "gpu":
        return True
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return bool(_GPU_TAG.search(tag))


def _gpu_variant(image: str) -> str:
    """``…:2.49.2-py312-cpu`` → ``…:2.49.2-py312-gpu``; a tag without a platform gets ``-gpu``."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        return image + ":latest-gpu"
    parts = tag.split("-")
    if "cpu" in parts:
        parts[parts.index("cpu")] = "gpu"
    elif "aarch64" in parts:
        parts.insert(parts.index("aarch64"), "gpu")
    else:
        parts.append("gpu")
    return f"{name}:{'-'.join(parts)}"


# --------------------------------------------------------------------------
# where things are written, per format


def _image_edit(ctx: LintContext, group: NodeGroup, image: str) -> Edit:
    spec = ctx.spec
    if spec.format == "helm":
        repo, sep, tag = image.rpartition(":")
        if not sep or "/" in tag:
            repo, tag = image, "latest"
        place = f"{group.where}.image" if group.role == "worker" else "image"
        return ctx.edit(place, f"{{repository: {repo}, tag: '{tag}'}}")
    change = Change(Op.SET, ("services", group.name, "image"), image) if spec.format == "compose" else None
    return ctx.edit(_image_place(spec, group), image, change=change)


def _image_place(spec: ClusterSpec, group: NodeGroup) -> str:
    if spec.format == "kuberay":
        return f"{group.where}.template.spec.containers[0].image"
    if spec.format == "ray-launcher":
        key = "head_image" if group.role == "head" else "worker_image"
        return f"docker.{key}" if group.where == "docker" else f"{group.where}.docker.{key}"
    return f"{group.where}.image"


def _resources_place(spec: ClusterSpec, group: NodeGroup) -> str:
    if spec.format == "kuberay":
        return f"{group.where}.template.spec.containers[0].resources"
    return f"{group.where}.resources"
