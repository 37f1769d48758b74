"""Options every subcommand shares, and turning them into ``TargetOptions``."""

from __future__ import annotations

import argparse
from pathlib import Path

from doctor.options import DEFAULT_TIMEOUT_S, MODES, TargetOptions

EPILOG = """\
exit codes: 0 no failures (warnings allowed) · 1 at least one failure · 2 the command could not run
target: --address, else --compose/--cluster-file/--image, else $RAY_ADDRESS, else compose/cpu-ray-cluster.yaml"""


def port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 600")
    return value


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The options check, fix and report share."""
    g = parser.add_argument_group("target (the Ray head)")
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="a running cluster: host, host:port (dashboard), http(s)://host:port, or ray://host:port "
        "(client port; dashboard then 8265). Default: $RAY_ADDRESS",
    )
    g.add_argument("--client-port", type=port, metavar="PORT", help="Ray Client server port (default 10001)")
    g.add_argument("--gcs-port", type=port, metavar="PORT", help="GCS port (default 6379)")
    g.add_argument(
        "--compose",
        type=Path,
        metavar="FILE",
        help="a Docker Compose file with a `ray start --head` service (default: compose/cpu-ray-cluster.yaml)",
    )
    g.add_argument(
        "--cluster-file",
        type=Path,
        metavar="FILE",
        help="the file the cluster is started from, recognised by content: a Docker Compose file, "
        "a Ray cluster launcher YAML (ray up), a KubeRay RayCluster/RayJob/RayService, "
        "or values for KubeRay's ray-cluster Helm chart",
    )
    g.add_argument(
        "--image", metavar="IMAGE", help="judge a rayproject/ray image directly, e.g. rayproject/ray:2.49.2-py312-cpu"
    )
    g = parser.add_argument_group("local side")
    g.add_argument(
        "--python",
        metavar="PATH_OR_NAME",
        help="interpreter to judge (default: the active venv or conda env, else python3 on PATH)",
    )
    g.add_argument(
        "--requirements",
        type=Path,
        metavar="FILE",
        help="the project's pins: a requirements file or environment.yml (default: ./packages.txt if present)",
    )
    g.add_argument(
        "--mode",
        choices=MODES,
        default="client",
        help="how you connect: client = Ray Client (ray://, Python major.minor must match); "
        "driver = joining the cluster (Python patch must match too). Default: client",
    )
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON document (schema in the README) instead of text")
    g.add_argument("-v", "--verbose", action="store_true", help="show details and per-check timings")
    g.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"per-connection network timeout (default {DEFAULT_TIMEOUT_S:g})",
    )


def add_check_options(parser: argparse.ArgumentParser) -> None:
    """What to run beyond the basic checks (check and report)."""
    parser.add_argument(
        "--deep", action="store_true", help="also submit probe jobs that list the head's and every node's packages"
    )
    parser.add_argument("--no-roundtrip", dest="roundtrip", action="store_false", help="skip the ray.init round trip")


def options_from(args: argparse.Namespace) -> TargetOptions:
    return TargetOptions(
        address=args.address,
        client_port=args.client_port,
        gcs_port=args.gcs_port,
        compose=args.compose,
        image=args.image,
        python=args.python,
        requirements=args.requirements,
        mode=args.mode,
        timeout=args.timeout,
        deep=getattr(args, "deep", False),
        roundtrip=getattr(args, "roundtrip", True),
        cluster_file=getattr(args, "cluster_file", None),
    )
