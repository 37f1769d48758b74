"""What the user asked ``check``/``fix`` to look at, parsed once by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor.origin import Origin

DEFAULT_DASHBOARD_PORT = 8265
DEFAULT_CLIENT_PORT = 10001
DEFAULT_GCS_PORT = 6379
DEFAULT_METRICS_PORT = 8500
DEFAULT_TIMEOUT_S = 2.0

MODES = ("client", "driver", "jobs")


@dataclass
class TargetOptions:
    """Where the head is and which local interpreter to judge.

    At most one of ``address``/``compose``/``cluster_file``/``image`` usually comes
    from the user; when none does, ``RAY_ADDRESS`` and then the shipped compose file
    are used (see ``doctor.context.resolve_target``). Only an address named here or in
    ``RAY_ADDRESS`` receives the auth token (see ``doctor.target.token_withheld``).
    """

    address: str | None = None
    client_port: int | None = None
    gcs_port: int | None = None
    compose: Path | None = None
    image: str | None = None
    python: str | None = None
    requirements: Path | None = None
    mode: str = "client"
    timeout: float = DEFAULT_TIMEOUT_S
    deep: bool = False
    roundtrip: bool = True
    # --cluster-file: a compose file, Ray cluster launcher YAML, KubeRay resource or
    # Helm values (doctor.head.cluster_files); --compose reads compose files only.
    cluster_file: Path | None = None
    # Set by fix's final check: fix installed this Ray with a constraint over any Ray pin in the
    # requirements file, so packages.requirements judges such a pin as overridden (a warning).
    ray_override: str | None = None
    # --kernel NAME (check): judge the interpreter that Jupyter kernel runs (doctor.local.kernels).
    kernel: str | None = None
    # --runtime-env FILE (doctor.head.runtime_env, judged by jobs.runtime_env); --jobs submits one real
    # job with it (jobs.submit, also part of --deep).
    runtime_env: Path | None = None
    jobs: bool = False
    # Where ``address`` came from when not ``--address``: a settings file (doctor.settings), in words for
    # messages; ``address_origin`` is the same as a type, which the token rule reads
    # (doctor.target.named_by_user). None with an address means the command line.
    address_from: str | None = None
    address_origin: Origin | None = None
    # A settings file whose sensitive keys were set aside because the user has not trusted it
    # (doctor.settings.UntrustedSettings), for the local.settings_trust finding.
    untrusted_settings: Any = None
    # Where each option came from ({key: {"value", "from"}}, doctor.settings.apply_settings): the report's
    # ``settings`` section. None when the options were not made by the CLI.
    settings: dict[str, Any] | None = None
    # --head-packages: a constraints file (name==version lines) with the head's versions, as
    # `raydoctor lock` writes it; packages.skew judges against it when --deep is not given.
    head_packages: Path | None = None
    # --no-resolve: skip packages.resolution (uv's resolver for the head's Python): offline, or as the
    # baseline of benchmarks/bench_resolution.py.
    resolve: bool = True
