"""Install the user's requirements, with Ray pinned to the head's version, into a venv.

Two installers with one interface: uv (fast: seconds where pip takes most
of a minute, REFERENCE §7) and pip. Both run as subprocesses in their own
process group, so a Ctrl-C stops the whole installer tree and not just its
leader; output is streamed line by line (for ``-v``) and the tail is kept
so a failure can be told in one line that names the package.

The user's requirements files are never edited. Ray's version goes in a
temporary constraints file (``-c`` / ``--constraint``). A constraint only
narrows what a requirement allows, so a file that pins *another* Ray needs
more: uv gets a temporary ``--override`` file, pip a temporary copy of that
file with the one Ray line replaced (nested ``-r``/``-c`` files are
referenced by absolute path, or copied too if they pin Ray). Either way
``ray_constraint`` returns a warning that says so.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from doctor.errors import FixError, UsageError

INSTALLERS = ("auto", "uv", "pip")
DETAIL_LINES = 8
_TAIL_LINES = 400
_INTERRUPT_GRACE_S = 3.0


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


# -- running a tool in its own process group -------------------------------


def _stop_group(proc: subprocess.Popen[str], first: int = signal.SIGINT) -> None:
    """SIGINT first (pip and uv clean their temp files), SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    if os.name == "nt":
        proc.kill()
        proc.wait()
        return
    for sig, wait in ((first, _INTERRUPT_GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # whatever else is left in the group (a build backend the leader left behind)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_streaming(
    args: Sequence[str],
    *,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
    tail: int = _TAIL_LINES,
) -> tuple[int, list[str]]:
    """Run ``args`` with stdout and stderr merged; return (exit code, last ``tail`` lines).

    Raises TimeoutError after ``timeout`` seconds and re-raises
    KeyboardInterrupt, in both cases after stopping the process group.
    """
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    else:
        kwargs["start_new_session"] = True
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=dict(env) if env is not None else None,
        **kwargs,
    )
    lines: deque[str] = deque(maxlen=tail)
    pipe: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            pipe.put(line.rstrip("\r\n"))
        pipe.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _stop_group(proc, signal.SIGTERM)
                raise TimeoutError(f"`{Path(str(args[0])).name}` ran past {timeout:g} s")
            try:
                line = pipe.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if line is None:
                break
            lines.append(line)
            if on_line is not None:
                on_line(line)
        proc.wait()
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        if proc.stdout is not None and proc.poll() is not None:
            reader.join(timeout=1.0)
            proc.stdout.close()
    return proc.returncode, list(lines)


def find_uv(environ: Mapping[str, str] | None = None) -> Path | None:
    """uv's binary: the ``uv`` wheel's own (``uv.find_uv_bin()``), then PATH."""
    try:
        import uv  # the PyPI wheel that carries the binary; not imported for anything else

        found = Path(uv.find_uv_bin())
        if found.is_file():
            return found
    except (ImportError, FileNotFoundError, AttributeError):
        pass
    env = os.environ if environ is None else environ
    which = shutil.which("uv", path=env.get("PATH", os.defpath))
    return Path(which) if which else None


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment installers run with: plain output, never downloading a Python."""
    env = dict(os.environ)
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
    return env


# -- requirements files ------------------------------------------------------

_NESTED = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-[rc]))(\S+)\s*$")


def _logical_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(first line number, text) with continuations joined and comments removed (pip's rules)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"requirements file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read requirements file {path}: {exc}") from None
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = number
        if raw.endswith("\\"):
            buf += raw[:-1]
            continue
        line = re.sub(r"(^|\s)#.*$", "", buf + raw).strip()
        buf = ""
        if line:
            yield start, line


def _nested(path: Path, line: str) -> tuple[str, Path] | None:
    """For ``-r X`` / ``-c X``: (flag, X resolved against the file's folder as pip does)."""
    match = _NESTED.match(line)
    if not match or "://" in match.group(2):
        return None
    return match.group(1), (path.parent / match.group(2))


def _parse(line: str) -> Requirement | None:
    if line.startswith("-"):
        return None
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def requirement_files(requirements: Sequence[Path]) -> list[Path]:
    """The given files and every file they include with ``-r``/``-c``, each once."""
    out: list[Path] = []

    def walk(path: Path) -> None:
        if path.resolve() in (p.resolve() for p in out):
            return
        out.append(path)
        for _, line in _logical_lines(path):
            nested = _nested(path, line)
            if nested:
                walk(nested[1])

    for req in requirements:
        walk(Path(req))
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
    for _, line in _logical_lines(path):
        nested = _nested(path, line)
        if nested:
            target = _materialize(nested[1], pins, workdir, memo)
            changed |= target != nested[1]
            out_lines.append(f"{nested[0]} {target.absolute()}")
            continue
        if line.startswith(("-f ", "--find-links")):
            value = line.split(None, 1)[1] if " " in line else line.split("=", 1)[-1]
            value = value.lstrip("=").strip()
            local = path.parent / value
            if "://" not in value and local.exists():
                line = f"--find-links {local.absolute()}"
        req = _parse(line)
        version = _conflicts(req, pins) if req else None
        if req is not None and version is not None:
            out_lines.append(f"# raydoctor: replaced {line!r} ({path})")
            out_lines.append(_replacement(req, version))
            changed = True
        else:
            out_lines.append(line)
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
    lines = [line for f in requirement_files(requirements) for _, line in _logical_lines(f)]
    for line in [*lines, *extra]:
        req = _parse(line)
        if req is None:
            continue
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
    """
    try:
        version = Version(ray_version)
    except InvalidVersion:
        raise UsageError(f"not a Ray version: {ray_version!r}") from None
    pins = {"ray": (Requirement(f"ray=={version}"), version)}
    warnings: list[str] = []
    for path in requirement_files(requirements):
        for _, line in _logical_lines(path):
            req = _parse(line)
            if req is not None and _conflicts(req, pins) is not None:
                warnings.append(
                    f"{path} pins {line}; the cluster runs {ray_version}: "
                    "overriding with a constraint (the file is not edited)"
                )
    return [f"ray=={version}"], warnings


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
    shown = [ln for ln in lines if ln.strip()]
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
            args = self._command(Path(python), requirements, constraint_file, extra, pins, workdir, verbose)
            try:
                rc, lines = run_streaming(args, timeout=timeout, on_line=on_output, env=tool_env())
            except TimeoutError:
                raise InstallError(
                    f"{self.name} install timed out after {timeout:g} s and was stopped",
                    hint="a slow index or a long source build; try again with -v to see where it stalls",
                ) from None
            except OSError as exc:
                raise InstallError(f"could not run {self.name}: {exc.strerror or exc}") from None
        if rc != 0:
            raise describe_failure(self.name, rc, lines)

    @abstractmethod
    def _command(
        self,
        python: Path,
        requirements: Sequence[Path],
        constraint_file: Path | None,
        extra: Sequence[str],
        pins: Mapping[str, tuple[Requirement, Version]],
        workdir: Path,
        verbose: bool,
    ) -> list[str]:
        """The installer's command line."""


class PipInstaller(Installer):
    """``python -m pip install`` inside the venv: needs pip in the venv, nothing else."""

    name = "pip"

    def _command(
        self,
        python: Path,
        requirements: Sequence[Path],
        constraint_file: Path | None,
        extra: Sequence[str],
        pins: Mapping[str, tuple[Requirement, Version]],
        workdir: Path,
        verbose: bool,
    ) -> list[str]:
        args = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        if not verbose:
            args.append("-q")
        memo: dict[Path, Path] = {}
        for req in requirements:
            args += ["-r", str(_materialize(Path(req), pins, workdir, memo))]
        if constraint_file is not None:
            args += ["-c", str(constraint_file)]
        return args + [_replacement_if_conflicting(e, pins) for e in extra]


class UvInstaller(Installer):
    """``uv pip install --python VENV_PYTHON``: the same result as pip, many times faster."""

    name = "uv"

    def __init__(self, uv: Path | None = None) -> None:
        found = uv or find_uv()
        if found is None:
            raise FixError("uv is not installed", hint="`pip install uv`, or use --installer pip")
        self.uv = Path(found)

    def _command(
        self,
        python: Path,
        requirements: Sequence[Path],
        constraint_file: Path | None,
        extra: Sequence[str],
        pins: Mapping[str, tuple[Requirement, Version]],
        workdir: Path,
        verbose: bool,
    ) -> list[str]:
        args = [str(self.uv), "pip", "install", "--python", str(python), "--color", "never"]
        for req in requirements:
            args += ["-r", str(req)]
        if constraint_file is not None:
            args += ["--constraint", str(constraint_file)]
        overrides = _overrides(requirements, extra, pins)
        if overrides:
            override_file = workdir / "overrides.txt"
            override_file.write_text("\n".join(overrides) + "\n", encoding="utf-8")
            args += ["--override", str(override_file)]
        return args + list(extra)


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
