"""``raydoctor lock [-o FILE]``: the cluster's versions of the project's packages, as a constraints file.

A team commits the file; ``raydoctor fix --constraints FILE`` builds envs pinned to it and
``raydoctor check --head-packages FILE`` judges against it without a probe job. The versions come
from the running cluster (the ``--deep`` probe job, ``doctor.facts.cluster``), else from the head's
image on a local Docker engine (``doctor.head.docker``, never pulled): Ray, every package the
requirements file names, and the packages whose difference breaks object exchange
(``doctor.package_skew``), where the head has them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from packaging.utils import canonicalize_name

from doctor.commands.common import EPILOG, add_target_options, emit, options_from
from doctor.errors import DoctorError, UsageError
from doctor.model import Report


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lock",
        help="write the cluster's versions of your packages as a constraints file (for fix --constraints)",
        description="Ask the running cluster (a probe job), or else its image on a local Docker engine, "
        "which versions of the project's packages it has, and write them as name==version lines: Ray, "
        "the requirements file's packages, and those whose difference breaks object exchange "
        "(numpy, pandas, attrs, pydantic).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_options(parser)
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE (default: standard output)")


LEFT_OUT = "# left out, the cluster's version is not a PEP 440 version: "


def lock_lines(
    head: dict[str, str], names: list[str], *, ray: str | None, python: str | None, where: str
) -> tuple[list[str], list[str]]:
    """(file lines, names the head lacks): comments first, then ``name==version`` sorted.

    Every line comes from what the cluster said, so each pin is checked (``Pin.of``: a PEP 508
    name, a PEP 440 version) and one that fails is left out and named in a comment; the comments hold
    no text from the cluster but versions that pass the same check.
    """
    from doctor.package_skew import TABLE
    from doctor.pins import Pin
    from doctor.text import sanitize

    wanted: dict[str, None] = dict.fromkeys(str(canonicalize_name(n)) for n in ["ray", *names])
    wanted.update(dict.fromkeys(r.name for r in TABLE if r.breaks and r.name in head))
    missing = [n for n in wanted if n not in head]
    pins = sorted(str(p) for n in wanted if n in head and (p := Pin.of(n, head[n])) is not None)  # the file's lines
    refused = [n for n in wanted if n in head and Pin.of(n, head[n]) is None]
    ray_shown = ray if Pin.of("ray", ray) else "?"
    python_shown = python if Pin.of("python", python) else "?"
    header = [
        f"# raydoctor lock: the versions on the cluster ({sanitize(where)}), Ray {ray_shown}, Python {python_shown}",
        f"# written {time.strftime('%Y-%m-%d')}; use: raydoctor fix --constraints FILE, raydoctor check --head-packages FILE",
    ]
    if refused:
        header.append(LEFT_OUT + ", ".join(refused))
    return header + pins, missing


def build(args: argparse.Namespace) -> tuple[Report, list[str]]:
    from doctor.context import CheckContext
    from doctor.origin import PackagesOrigin

    started = time.perf_counter()
    options = replace(options_from(args), deep=True, roundtrip=False)
    ctx = CheckContext(options)
    probe = ctx.deep_probe()
    known = ctx.head_packages()  # the probe of the running head, else the image through a local Docker engine
    if known is None:
        raise UsageError(
            f"the cluster's packages are unknown: {probe.skipped or probe.error or 'the probe listed none'}",
            hint="lock asks the running cluster (pass --address HOST:8265 of a live head), "
            "or the head's image on a local Docker engine (--image IMAGE)",
        )
    names = [r.name for r in ctx.requirements.requirements] if ctx.requirements else []
    from doctor.local.requirements import mask_credentials

    node = probe.head if known.origin is PackagesOrigin.DEEP_PROBE else None
    if node is not None:
        ray, python = node.ray, node.python
        where = mask_credentials(ctx.target.address.dashboard_url) if ctx.target.address else ctx.target.kind
    else:
        head = ctx.head()
        ray, python, where = head.ray_version, head.python_version, known.source
    lines, missing = lock_lines(dict(known.packages), names, ray=ray, python=python, where=str(where))
    report = Report(
        "lock",
        duration_s=time.perf_counter() - started,
        extra={
            "lock": {
                "output": str(args.output) if args.output else None,
                "pins": [ln for ln in lines if not ln.startswith("#")],
                "lines": lines,
                "not_on_cluster": missing,
                "left_out": next((ln[len(LEFT_OUT) :].split(", ") for ln in lines if ln.startswith(LEFT_OUT)), []),
            }
        },
    )
    report.secret_values = ctx.secret_values()
    return report, lines


def write_atomically(path: Path, text: str) -> None:
    from doctor.files import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    try:
        report, lines = build(args)
    except DoctorError as exc:
        report = Report("lock", error=str(exc), error_exit_code=exc.exit_code)
        return emit(report, form="json" if args.json else "text")
    text = "\n".join(lines) + "\n"
    if args.output is not None:
        write_atomically(args.output, text)
    if args.json:
        return emit(report, form="json")
    missing = report.extra["lock"]["not_on_cluster"]

    def view(masked: Report, verbose: bool) -> list[tuple[str, str]]:
        pins = masked.extra["lock"]["pins"]
        out = [("", ln) for ln in masked.extra["lock"]["lines"]] if args.output is None else []
        if args.output is not None:
            out.append(("green", f"wrote {args.output}: {len(pins)} pin(s) from the cluster"))
        if missing:
            out.append(("yellow", "# not on the cluster: " + ", ".join(missing)))
        left_out = masked.extra["lock"]["left_out"]
        if left_out and args.output is not None:
            out.append(("yellow", LEFT_OUT + ", ".join(left_out)))
        return out

    code = emit(report, form="text", lines=view)
    sys.stdout.flush()
    return code
