"""Install the user's requirements, with Ray pinned to the head's version, into a venv.

Two installers with one interface: uv (fast: seconds where pip takes most of a minute;
uv's own benchmarks, ``BENCHMARKS.md`` in astral-sh/uv) and pip. Both run through
``doctor.proc.stream`` in their own process group, so a Ctrl-C stops the whole installer
tree and not just its leader (SIGINT first, so pip and uv remove their temp files); output
is streamed line by line (for ``-v``) and the tail is kept so a failure can be told in one
line that names the package. Neither sees the Ray auth token (``doctor.proc.child_env``).

The user's requirements files are read by the one parser, ``doctor.local.requirements``,
and never edited. Ray's version goes in a temporary constraints file (``-c`` /
``--constraint``). A constraint only narrows what a requirement allows, so a file that pins
*another* Ray needs more: uv gets a temporary ``--override`` file, pip a temporary copy of
that file with the one Ray line replaced (nested ``-r``/``-c`` files are referenced by
absolute path, or copied too if they pin Ray). Either way ``ray_constraint`` returns a
warning that says so.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from doctor import proc, uv_config
from doctor.errors import FixError, UsageError
from doctor.local.requirements import Entry, load_requirements, mask_credentials, parse_file, portable
from doctor.local.tools import find_uv as find_uv  # re-exported: the tests name it here too
from doctor.pins import Pin

INSTALLERS = ("auto", "uv", "pip")
DETAIL_LINES = 8
_TAIL_LINES = 400


class InstallError(FixError):
    """The installer failed; ``package`` names the culprit when the output says it."""

    def __init__(
        self,
        message: str,
        *,
        package: str | None = None,
        details: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.package = package
        self.details: list[str] = list(details)


# -- running a tool ------------------------------------------------------------


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment installers run with: plain output, never downloading a Python, no Ray token,
    and no uv configuration found in folders (``doctor.uv_config.isolated_env``)."""
    env = proc.child_env(os.environ)
    env.update(
        {
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
            "PIP_NO_INPUT": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
        }
    )
    env.pop("VIRTUAL_ENV", None)  # the target is always named explicitly
    if extra:
        env.update(extra)
    return uv_config.isolated_env(env)


# -- requirements files ------------------------------------------------------


def _parse(line: str) -> Requirement | None:
    if line.startswith("-"):
        return None
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def _entries(requirements: Sequence[Path]) -> list[Entry]:
    """Every requirement and constraint of the files (nested ones included), each file once."""
    out: list[Entry] = []
    seen: set[tuple[Path, int]] = set()
    for path in requirements:
        for entry in load_requirements(Path(path)).entries:
            key = (entry.path.resolve(), entry.line)
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def _pins(constraints: Sequence[str]) -> dict[str, tuple[Requirement, Version]]:
    """Constraints of the form ``name==V``, by canonical name."""
    pins: dict[str, tuple[Requirement, Version]] = {}
    for text in constraints:
        req = _parse(text)
        if req is None:
            continue
        exact = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(exact) == 1:
            try:
                pins[canonicalize_name(req.name)] = (req, Version(exact[0].version))
            except InvalidVersion:
                continue
    return pins


def _conflicts(req: Requirement, pins: Mapping[str, tuple[Requirement, Version]]) -> Version | None:
    """The pinned version ``req`` contradicts, if any (a URL requirement always does)."""
    pin = pins.get(canonicalize_name(req.name))
    if pin is None:
        return None
    if req.url or not req.specifier.contains(pin[1], prereleases=True):
        return pin[1]
    return None


def _replacement(req: Requirement, version: Version, keep_marker: bool = True) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if keep_marker and req.marker else ""
    return f"{req.name}{extras}=={version}{marker}"


def _materialize(
    path: Path, pins: Mapping[str, tuple[Requirement, Version]], workdir: Path, memo: dict[Path, Path]
) -> Path:
    """``path`` itself, or a copy in ``workdir`` whose conflicting pins are replaced (for pip)."""
    key = path.resolve()
    if key in memo:
        return memo[key]
    memo[key] = path  # a cycle of -r files ends here
    changed = False
    out_lines: list[str] = []
    for line in parse_file(path):
        if line.include is not None:
            if line.include.path is None:  # a URL: pip fetches it
                out_lines.append(line.text)
                continue
            target = _materialize(line.include.path, pins, workdir, memo)
            changed |= target != line.include.path
            out_lines.append(f"{line.include.flag} {shlex.quote(str(target.absolute()))}")
            continue
        entry = line.entry
        req = entry.requirement if entry is not None else None
        version = _conflicts(req, pins) if req is not None else None
        if entry is not None and req is not None and version is not None:
            # the line's --hash values are for the pinned version: they go with it
            out_lines.append(f"# raydoctor: replaced {entry.display!r} ({path.name}:{entry.line})")
            out_lines.append(_replacement(req, version))
            changed = True
        elif entry is None and line.options:
            copied = portable(line)  # --find-links DIR, relative to the file, made absolute
            changed |= copied != line.text
            out_lines.append(copied)
        else:
            out_lines.append(line.text)
    if not changed:
        return path
    copy = workdir / f"{len(memo)}-{path.name}"
    copy.write_text("\n".join(out_lines) + "\n", encoding="utf-8")
    memo[key] = copy
    return copy


def _overrides(
    requirements: Sequence[Path], extra: Sequence[str], pins: Mapping[str, tuple[Requirement, Version]]
) -> list[str]:
    """uv ``--override`` lines for pinned packages that some requirement contradicts.

    An override replaces every requirement of that package, so it carries the
    union of their extras (``ray[default]`` in the file, ``ray[client]`` from
    ``extra``) to lose none of them.
    """
    conflicting: set[str] = set()
    extras: dict[str, set[str]] = {}
    reqs = [e.requirement for e in _entries(requirements) if e.requirement is not None]
    for req in [*reqs, *(r for r in map(_parse, extra) if r is not None)]:
        name = canonicalize_name(req.name)
        if name in pins:
            extras.setdefault(name, set()).update(req.extras)
            if _conflicts(req, pins) is not None:
                conflicting.add(name)
    out = []
    for key in sorted(conflicting):
        req, version = pins[key]
        merged = sorted(extras.get(key, set()) | set(req.extras))
        out.append(_replacement(Requirement(f"{req.name}[{','.join(merged)}]"), version, keep_marker=False))
    return out


def ray_client_requirement(ray_version: str) -> str:
    """What Ray Client needs besides plain Ray: ``ray[client]`` (grpcio) at the head's version."""
    return f"ray[client]=={ray_version}"


def ray_constraint(requirements: Sequence[Path], ray_version: str) -> tuple[list[str], list[str]]:
    """(constraint lines, warnings) that pin Ray to the cluster's version.

    A requirement (in any of the files, nested ones included) that does not
    allow ``ray_version`` gets a warning; the installer then overrides it
    (see the module docstring) and the file itself is never edited.
    Warnings are display strings: URL credentials masked.
    """
    try:
        version = Version(ray_version)
    except InvalidVersion:
        raise UsageError(f"not a Ray version: {ray_version!r}") from None
    pins = {"ray": (Requirement(f"ray=={version}"), version)}
    warnings: list[str] = []
    for entry in _entries(requirements):
        if entry.requirement is not None and _conflicts(entry.requirement, pins) is not None:
            hashes = " (its --hash values are for that version)" if entry.hashes else ""
            warnings.append(
                f"{entry.path} pins {entry.display}{hashes}; the cluster runs {ray_version}: "
                "overriding with a constraint (the file is not edited)"
            )
    return [f"ray=={version}"], warnings


def pin_constraints(requirements: Sequence[Path], pins: Sequence[Pin], why: str) -> tuple[list[str], list[str]]:
    """(constraint lines, warnings) for more exact pins (``fix --match-head``, ``fix --constraints``).

    They travel with Ray's in the one temporary constraints file; a requirement that contradicts one
    is overridden as Ray's is (uv ``--override``, pip a patched copy), with a warning, and the user's
    file is never edited.
    """
    parsed = _pins([str(p) for p in pins])  # one parser for these and Ray's constraint lines
    warnings = []
    for entry in _entries(requirements):
        if entry.requirement is not None and _conflicts(entry.requirement, parsed) is not None:
            name = canonicalize_name(entry.requirement.name)
            warnings.append(
                f"{entry.path} pins {entry.display}; {why} has {parsed[name][1]}: "
                "overriding with a constraint (the file is not edited)"
            )
    return [f"{req.name}=={version}" for req, version in parsed.values()], warnings


# -- failures ------------------------------------------------------------------

_NAME = r"`?([A-Za-z0-9][A-Za-z0-9._\-]*(?:\[[^\]]*\])?(?:[<>=!~]=?[^\s,;`']+)?)`?"
_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"No matching distribution found for {_NAME}"), "no matching distribution found"),
    (
        re.compile(rf"Could not find a version that satisfies the requirement {_NAME}"),
        "no version satisfies the requirement",
    ),
    (re.compile(rf"Because {_NAME} was not found in the package registry"), "not found in the package registry"),
    (re.compile(rf"Because there is no version of {_NAME}"), "there is no such version"),
    (re.compile(rf"Cannot install {_NAME}"), "conflicting dependencies"),
    (re.compile(rf"Failed (?:to build|building wheel for) {_NAME}"), "failed to build"),
    (
        re.compile(rf"Failed to (?:download|fetch|prepare distributions?)(?: for)?:? (?!`?https?:){_NAME}"),
        "failed to download",
    ),
    (
        re.compile(rf"Because (?:only |all versions of |you require )?{_NAME}"),
        "no solution found when resolving dependencies",
    ),
)
_NETWORK = re.compile(
    r"error sending request|Max retries exceeded|Failed to establish a new connection|"
    r"Temporary failure in name resolution|dns error|Could not fetch URL|Connection refused|"
    r"Network is unreachable|ConnectTimeout|ReadTimeout",
    re.IGNORECASE,
)


def _package_name(text: str) -> str:
    try:
        return Requirement(text).name
    except InvalidRequirement:
        return re.split(r"[\[<>=!~ ]", text, maxsplit=1)[0]


def describe_failure(tool: str, rc: int, lines: Sequence[str]) -> InstallError:
    """One line naming the failing package, with the installer's last lines as details.

    A network failure is called one even when the installer goes on to say
    "no matching distribution" (pip does, once it could not fetch the index).
    """
    shown = [mask_credentials(ln) for ln in lines if ln.strip()]
    details = shown[-DETAIL_LINES:]
    text = "\n".join(shown)
    requirement = reason = None
    for pattern, why in _FAILURES:
        for match in pattern.finditer(text):
            if match.group(1).lower() not in ("you", "there", "the", "only", "all"):
                requirement, reason = match.group(1), why
                break
        if requirement:
            break
    network = _NETWORK.search(text)
    if network:
        if requirement is None:
            page = re.search(r"/simple/([A-Za-z0-9._\-]+)/", text)
            requirement = page.group(1) if page else None
        line = next(ln for ln in shown if _NETWORK.search(ln)).strip()
        return InstallError(
            f"{tool} could not reach the package index (network error)"
            + (f" for {requirement}" if requirement else "")
            + f": {line[:200]}",
            package=_package_name(requirement) if requirement else None,
            details=details,
            hint="check the network, proxy or index URL, then run fix again",
        )
    if requirement is not None:
        return InstallError(
            f"{tool} could not install {requirement}: {reason}",
            package=_package_name(requirement),
            details=details,
        )
    errors = [ln.strip() for ln in shown if re.match(r"\s*(error|ERROR|×|fatal)", ln)]
    last = (errors or [ln.strip() for ln in shown] or ["no output"])[-1]
    return InstallError(f"{tool} install failed (exit {rc}): {last[:200]}", details=details)


# -- installers --------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One install, as both installers' command lines need it."""

    python: Path  # the venv's interpreter
    requirements: tuple[Path, ...]
    constraint_file: Path | None
    extra: tuple[str, ...]  # requirement strings besides the files
    pins: Mapping[str, tuple[Requirement, Version]]  # the exact constraints, by canonical name
    workdir: Path  # a temporary folder for patched copies and override files
    verbose: bool


class Installer(ABC):
    """Installs requirements into the venv whose interpreter is ``python``."""

    name: str = ""

    def install(
        self,
        python: Path,
        requirements: Sequence[Path],
        constraints: Sequence[str],
        extra: Sequence[str],
        *,
        verbose: bool,
        on_output: Callable[[str], None] | None = None,
        timeout: float = 1800,
    ) -> None:
        """Install ``requirements`` files plus ``extra`` requirement strings under ``constraints``.

        Raises InstallError on failure (one line naming the package,
        ``.details`` with the last lines), on a timeout, and re-raises
        KeyboardInterrupt once the installer's process group is stopped.
        """
        if not requirements and not extra:
            return
        pins = _pins(constraints)
        with tempfile.TemporaryDirectory(prefix="raydoctor-install-") as tmp:
            workdir = Path(tmp)
            constraint_file = None
            if constraints:
                constraint_file = workdir / "constraints.txt"
                constraint_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            # absolute: the installer starts in a private empty folder, not in the user's (proc.stream)
            files = tuple(Path(r).absolute() for r in requirements)
            job = _Job(Path(python).absolute(), files, constraint_file, tuple(extra), pins, workdir, verbose)
            args = self._command(job)
            try:
                rc, lines = proc.stream(
                    args,
                    timeout=timeout,
                    on_line=on_output,
                    env=tool_env(),
                    tail=_TAIL_LINES,
                    first_signal=signal.SIGINT,  # pip and uv remove their temp files on SIGINT
                )
            except proc.ProcTimeout:
                raise InstallError(
                    f"{self.name} install timed out after {timeout:g} s and was stopped",
                    hint="a slow index or a long source build; try again with -v to see where it stalls",
                ) from None
            except OSError as exc:
                raise InstallError(f"could not run {self.name}: {exc.strerror or exc}") from None
        if rc != 0:
            raise describe_failure(self.name, rc, lines)

    @abstractmethod
    def _command(self, job: _Job) -> list[str]:
        """The installer's command line."""


class PipInstaller(Installer):
    """``python -m pip install`` inside the venv: needs pip in the venv, nothing else."""

    name = "pip"

    def _command(self, job: _Job) -> list[str]:
        # -I: the venv's pip, never a ``pip/`` package in a folder; -u: -I drops PYTHONUNBUFFERED
        args = proc.isolated_python(job.python, "-u", "-m", "pip", "install", "--disable-pip-version-check")
        args.append("--no-input")
        if not job.verbose:
            args.append("-q")
        memo: dict[Path, Path] = {}
        for req in job.requirements:
            args += ["-r", str(_materialize(Path(req), job.pins, job.workdir, memo))]
        if job.constraint_file is not None:
            args += ["-c", str(job.constraint_file)]
        return args + [_replacement_if_conflicting(e, job.pins) for e in job.extra]


class UvInstaller(Installer):
    """``uv pip install --python VENV_PYTHON``: the same result as pip, many times faster."""

    name = "uv"

    def __init__(self, uv: Path | None = None) -> None:
        found = uv or find_uv()
        if found is None:
            raise FixError("uv is not installed", hint="`pip install uv`, or use --installer pip")
        self.uv = Path(found)

    def _command(self, job: _Job) -> list[str]:
        args = [str(self.uv), "pip", "install", "--python", str(job.python), "--color", "never"]
        for req in job.requirements:
            args += ["-r", str(req)]
        if job.constraint_file is not None:
            args += ["--constraint", str(job.constraint_file)]
        overrides = _overrides(job.requirements, job.extra, job.pins)
        if overrides:
            override_file = job.workdir / "overrides.txt"
            override_file.write_text("\n".join(overrides) + "\n", encoding="utf-8")
            args += ["--override", str(override_file)]
        return args + list(job.extra)


def _replacement_if_conflicting(text: str, pins: Mapping[str, tuple[Requirement, Version]]) -> str:
    req = _parse(text)
    version = _conflicts(req, pins) if req else None
    return _replacement(req, version) if req is not None and version is not None else text


def choose_installer(name: str) -> Installer:
    """``auto`` (uv where available, else pip), ``uv`` or ``pip``."""
    if name not in INSTALLERS:
        raise UsageError(f"unknown installer {name!r}: choose one of {', '.join(INSTALLERS)}")
    if name == "pip":
        return PipInstaller()
    uv = find_uv()
    if uv is not None:
        return UvInstaller(uv)
    if name == "uv":
        raise FixError("--installer uv: uv is not installed", hint="`pip install uv`, or use --installer pip")
    return PipInstaller()
