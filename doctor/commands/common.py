"""What every subcommand shares: its options, turning them into ``TargetOptions``, and the one emit path.

``emit(report, ...)`` is how a command's ``Report`` leaves the process: masked once
(``doctor.render.mask.mask_report``), rendered once (text, JSON or Markdown), written once. A
closed pipe on stdout never raises out of it (see ``write_stdout``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import IO, Callable, Mapping

from doctor.errors import UsageError
from doctor.model import Report
from doctor.options import DEFAULT_TIMEOUT_S, MODES, TargetOptions
from doctor.text import ascii_int

FORMS = ("text", "json", "markdown")

EPILOG = """\
exit codes: 0 no failures (warnings allowed) · 1 at least one failure · 2 the command could not run
target: --address, else --compose/--cluster-file/--image, else $RAY_ADDRESS, else compose/cpu-ray-cluster.yaml
settings: [tool.raydoctor] in pyproject.toml or raydoctor.toml (found walking up from here) fills in
          what no flag gives; keys are the long option names, e.g. address = '10.0.0.5:8265'"""


def port(text: str) -> int:
    number = ascii_int(text, digits=5) if text == text.strip() else None
    if number is None or not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return number


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
    g.add_argument(
        "--trust-settings",
        action="store_true",
        help="apply every key of the settings file found here for this run, as if trusted (CI); "
        "`raydoctor trust` records trust instead (see $RAYDOCTOR_TRUSTED_SETTINGS too)",
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
        "--head-packages",
        type=Path,
        metavar="FILE",
        help="the cluster's package versions as name==version lines (what `raydoctor lock` writes), "
        "for packages.skew when --deep is not given",
    )
    g.add_argument(
        "--no-resolve",
        dest="resolve",
        action="store_false",
        help="do not resolve the requirements for the head's Python through uv (packages.resolution is "
        "skipped): offline, or to time a check without it",
    )
    g.add_argument(
        "--mode",
        choices=MODES,
        default="client",
        help="how you connect: client = Ray Client (ray://, Python major.minor must match); "
        "driver = joining the cluster (Python patch must match too); "
        "jobs = the Jobs API (ray job submit: no env matching, only a job client). Default: client",
    )
    g.add_argument(
        "--runtime-env",
        type=Path,
        metavar="FILE",
        help="the project's runtime_env (YAML/JSON, as `ray job submit --runtime-env` takes it), judged "
        "before upload (default in --mode jobs: working_dir . and the requirements as its pip list)",
    )
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print one JSON document (schema: docs/json.md) instead of text")
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
    parser.add_argument(
        "--kernel",
        dest="check_kernel",
        metavar="NAME",
        help="judge the Python a Jupyter kernel runs (its kernel.json), not the shell's (see jupyter kernelspec list)",
    )
    parser.add_argument(
        "--jobs",
        action="store_true",
        help="also submit one real job with the project's runtime_env through the Jobs API (part of --deep)",
    )


def options_from(
    args: argparse.Namespace, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> TargetOptions:
    """The target options of a parsed command line, with the settings file (``doctor.settings``) filling in
    what no flag gave: flags, then the environment, then the file, then defaults."""
    from doctor.settings import apply_settings

    applied = apply_settings(args, environ=environ, cwd=cwd)
    options = TargetOptions(
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
        kernel=getattr(args, "check_kernel", None),
        runtime_env=getattr(args, "runtime_env", None),
        jobs=getattr(args, "jobs", False),
        address_from=applied.address_from,
        address_origin=applied.address_origin,
        untrusted_settings=applied.untrusted(),
        settings=dict(applied.sources),
        head_packages=getattr(args, "head_packages", None),
        resolve=getattr(args, "resolve", True),
    )
    return options


# -- the one way out -------------------------------------------------------------------


def run_secrets(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """What this run must never show, as far as the command layer knows: the token raydoctor would
    send and the values of secret-looking environment variables (the report adds its own)."""
    from doctor.render.mask import secret_env_values
    from doctor.secrets import load_token

    env = os.environ if environ is None else environ
    token = load_token(env)
    return secret_env_values(env) | ({token.value} if token else set())


def mask_line(text: str, environ: Mapping[str, str] | None = None) -> str:
    """One line of output that is not a Report yet (fix's live plan lines), masked with this run's secrets."""
    from doctor.render.mask import mask_text

    return mask_text(text, run_secrets(environ))


def emit(
    report: Report,
    *,
    form: str = "text",
    verbose: bool = False,
    environ: Mapping[str, str] | None = None,
    redact: bool = False,
    output: Path | None = None,
    lines: Callable[[Report, bool], list[tuple[str, str]]] | None = None,
) -> int:
    """Mask the report once, render it once in ``form``, write it once; return its exit code.

    ``text``: the findings on stdout, or the error as one line on stderr; a command with its own
    text view (fix's plan and steps) passes ``lines(masked_report, verbose) -> [(style, text)]``,
    which only ever sees the masked report. ``json``: one document on stdout, error or not.
    ``markdown``: the report's Markdown. ``redact`` (json and markdown) also hides hosts and the
    home folder; ``output`` writes to that file instead of stdout.
    """
    from doctor.render.mask import mask_report

    if form not in FORMS:
        raise ValueError(f"unknown output form {form!r}")
    env = os.environ if environ is None else environ
    masked = mask_report(report, secrets=run_secrets(env), environ=env)
    if form == "text" and output is None:
        from doctor.render.text import render_text, text_lines, write_lines

        if lines is not None:
            try:
                write_lines(lines(masked, verbose), sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:
                silence(sys.stdout)
            return masked.exit_code
        if masked.error:
            write_stream(sys.stderr, "\n".join(text for _, text in text_lines(masked, verbose)) + "\n")
            return masked.exit_code
        try:
            render_text(masked, sys.stdout, verbose=verbose)
            sys.stdout.flush()
        except BrokenPipeError:
            silence(sys.stdout)
        return masked.exit_code
    text = render(masked, form, verbose=verbose, environ=env, redact=redact)
    if output is not None:
        from doctor.files import write_atomic

        try:
            write_atomic(output, text)  # a symlink or FIFO planted at the name is replaced, never followed
        except OSError as exc:
            raise UsageError(f"{output}: cannot write the report: {exc.strerror or exc}") from None
        write_stream(sys.stderr, f"raydoctor: report written to {output}\n")
    else:
        write_stdout(text)
    return masked.exit_code


def render(
    masked: Report,
    form: str,
    *,
    verbose: bool = False,
    environ: Mapping[str, str] | None = None,
    redact: bool = False,
) -> str:
    """An already masked report as text in ``form`` (a whole document, ending in a newline)."""
    if form == "json":
        from doctor.render.json import render_json
        from doctor.render.markdown import Redactor

        text = render_json(masked) + "\n"
        return Redactor.for_report(masked, environ).apply(text) if redact else text
    if form == "markdown":
        from doctor.render.markdown import render_markdown

        return render_markdown(masked, redact=redact, environ=environ, verbose=verbose)
    from doctor.render.text import text_lines

    return "\n".join(text for _, text in text_lines(masked, verbose)) + "\n"


def write_stdout(text: str) -> None:
    """Write to stdout; a reader that went away (``| head -1``) is not an error."""
    write_stream(sys.stdout, text)


def write_stream(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        if stream is sys.stdout:
            silence(stream)


def silence(stream: IO[str] | StdoutGuard) -> None:
    """Point the stream's file descriptor at /dev/null, so that nothing (not even the interpreter's
    flush at exit) writes to the closed pipe again: Python's advice in the library documentation of
    ``signal`` ("Note on SIGPIPE")."""
    if isinstance(stream, StdoutGuard):
        stream.closed_pipe = True
        stream = stream.stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's StringIO): nothing to point elsewhere
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class StdoutGuard:
    """Stands in for ``sys.stdout`` while a command runs (``doctor.cli.main``): a closed pipe ends the
    output, never the command, so the exit code stays the command's own and no traceback is printed."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                silence(self)
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self.stream.flush()
            except BrokenPipeError:
                silence(self)

    def isatty(self) -> bool:
        return not self.closed_pipe and self.stream.isatty()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


class guarded_stdout:
    """``with guarded_stdout(): ...``: ``sys.stdout`` is a ``StdoutGuard`` inside and flushed on the way
    out; the old stream is back afterwards."""

    def __enter__(self) -> StdoutGuard:
        self._saved = sys.stdout
        self._guard = StdoutGuard(sys.stdout)
        sys.stdout = self._guard  # type: ignore[assignment]
        return self._guard

    def __exit__(self, *exc: object) -> None:
        self._guard.flush()
        sys.stdout = self._saved
