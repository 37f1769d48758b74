"""Can the project's pins exist for the head's Python? uv's resolver answers before anything is built.

``resolve`` runs ``uv pip compile`` (the uv binary raydoctor depends on, ``uv.find_uv_bin()``)
for the head's Python version and platform (``--python-version X.Y.Z --python-platform
x86_64-manylinux_2_28``), with Ray pinned to the head's, wheels only (``--only-binary :all:``)
first. Each pin uv names as unmet is then asked about alone, concurrently and bounded:

- without ``--only-binary``: an answer means the release has only a source distribution for this
  Python; uv's "depends on Python>=X" means its ``Requires-Python`` excludes the head's Python;
- ``name>=V`` with ``--resolution lowest-direct``: the nearest release at or above the pin that has a
  wheel for this Python (else the newest below it, from ``name`` alone).

A package that ships wheels for this Python at other releases but not at the pinned one is a
compiled package whose pinned release predates this Python (numpy 1.24.4 on 3.12): unmet. A
package with no wheel for this Python at any release builds from source only: a warning. Then the
pin is relaxed (an ``--override`` of the bare name) and the file resolved again, so every unmet pin
is named, not only the first (at most ``MAX_ROUNDS`` rounds).

Only named requirements are resolved: editables, local paths and URLs would have uv build code from
the checkout, so they are left out and noted. Offline, or with no index answering, the result is
skipped with the reason, never a hang: every call has its own deadline inside one budget. Results
are cached per (requirements, Python, platform, Ray, uv, uv's configuration: every ``UV_*`` variable
and its config file's content, ``doctor.uv_config.fingerprint``) under the user's cache
folder (``$RAYDOCTOR_RESOLUTION_CACHE``, else ``$XDG_CACHE_HOME/raydoctor/resolution``), for a day,
at most ``CACHE_ENTRIES`` files, so a second check costs no uv call at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from doctor import proc, uv_config
from doctor.local.requirements import Requirements, mask_credentials

CACHE_ENV = "RAYDOCTOR_RESOLUTION_CACHE"
CACHE_TTL_S = 24 * 3600.0
CACHE_ENTRIES = 128
CACHE_FILE_MAX = 1024 * 1024
BUDGET_S = 40.0  # all uv calls of one resolution together
CALL_LIMIT_S = 25.0  # one uv call
MAX_ROUNDS = 4  # whole-file resolutions (each names at most one more unmet pin)
MAX_ASKED = 6  # unmet pins asked about alone
PLATFORMS = {"x86_64": "x86_64-manylinux_2_28", "aarch64": "aarch64-manylinux_2_28"}
# Settings of uv that change what an index answers: part of the cache key.
_INDEX_ENV = ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_DEFAULT_INDEX", "UV_FIND_LINKS", "UV_OFFLINE")
# File options that name where packages come from are not followed: a cloned checkout's file must
# not pick the hosts check talks to (uv would send them credentials from ~/.netrc or a keyring).
_INDEX_OPTIONS = {"--index-url", "--extra-index-url", "--no-index", "--find-links"}

# uv's wording (crates/uv-resolver/src/pubgrub/report.rs): "Because numpy==1.24.4 has no usable wheels",
# "there is no version of numpy==9.9.9", "nosuch was not found in the package registry",
# "numpy==2.3.0 depends on Python>=3.11".
# Patterns, compiled (and cached by ``re``) on the first uv error that needs them: compiling all five at
# import cost ~5 ms of every check, and most checks never see uv fail.
_REQ = r"([A-Za-z0-9][A-Za-z0-9._\-]*(?:\[[^\]]*\])?(?:[<>=!~]=?[^\s,;`']+)?)"
_NO_WHEEL = rf"{_REQ} has no usable wheels"
_NO_VERSION = rf"there is no version of {_REQ}"
_NOT_FOUND = rf"{_REQ} was not found in the package registry"
_REQUIRES_PYTHON = rf"{_REQ} depends on Python\s*([<>=!~][^\s,]+)"
_NETWORK = (
    r"(?i)error sending request|Failed to fetch|dns error|Connection refused|client error \(Connect\)|"
    r"operation timed out|Network connectivity is disabled|Network is unreachable|tcp connect error"
)

NO_WHEEL = "no_wheel"
REQUIRES_PYTHON = "requires_python"
NO_SUCH_VERSION = "no_such_version"
NOT_FOUND = "not_found"
SOURCE_ONLY = "source_only"
CONFLICT = "conflict"
# NOT_FOUND is not among them: uv does not read pip's configuration, so a package from a private
# index that pip is configured for looks unknown to uv (a warning, and fix still builds).
FAILING = (NO_WHEEL, REQUIRES_PYTHON, NO_SUCH_VERSION, CONFLICT)


@dataclass(frozen=True)
class Unmet:
    """One pin the head's Python cannot have, or can have only by building it."""

    requirement: str  # as uv named it (``numpy==1.24.4``), credentials masked
    name: str  # canonical
    reason: str  # NO_WHEEL | REQUIRES_PYTHON | NO_SUCH_VERSION | NOT_FOUND | SOURCE_ONLY | CONFLICT
    why: str  # one sentence
    nearest: str | None = None  # the nearest version that has a wheel for this Python

    @property
    def fails(self) -> bool:
        return self.reason in FAILING

    def change(self) -> str:
        """What to write instead: ``numpy==1.26.0``, or the package left unpinned."""
        return f"{self.name}=={self.nearest}" if self.nearest else f"{self.name} (no release fits: remove it)"


@dataclass(frozen=True)
class Resolution:
    """What uv's resolver said about the project's pins for one Python and platform."""

    python: str
    platform: str  # x86_64 | aarch64
    ray: str | None
    unmet: tuple[Unmet, ...] = ()
    resolved: tuple[str, ...] = ()  # name==version, when everything resolved (wheels or source)
    skipped: str | None = None  # why nothing could be said (offline, no uv, ...)
    left_out: tuple[str, ...] = ()  # editables, paths, URLs: not resolved
    conflict: tuple[str, ...] = ()  # uv's own cause lines when pins contradict each other
    cached: bool = False
    uv_calls: int = 0
    duration_s: float = 0.0

    @property
    def failing(self) -> list[Unmet]:
        return [u for u in self.unmet if u.fails]

    @property
    def source_only(self) -> list[Unmet]:
        return [u for u in self.unmet if not u.fails]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Resolution:
        data = dict(raw)
        data["unmet"] = tuple(Unmet(**u) for u in data.get("unmet") or ())
        for key in ("resolved", "left_out", "conflict"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)


# -- the input --------------------------------------------------------------------


@dataclass
class Inputs:
    """The files uv reads: requirements, constraints, overrides (all plain text, made here)."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def inputs_for(reqs: Requirements | None, ray: str | None, *, client_extras: bool = True) -> Inputs:
    """The project's named requirements and the file options uv honours, Ray pinned to the head's.

    As fix installs (``doctor.fix.install``): ``ray==HEAD`` as a constraint, ``ray[client]==HEAD``
    besides, and an override when the file pins another Ray.
    """
    out = Inputs()
    if reqs is not None:
        for opt in reqs.options:
            if opt.name == "--pre":
                out.requirements.append("--pre")
            elif opt.name in _INDEX_OPTIONS:
                out.left_out.append(f"{opt.display} (resolved against uv's own index settings: UV_INDEX_URL)")
        for entry in reqs.entries:
            req = entry.requirement
            if req is None or req.url:
                out.left_out.append(f"{entry.display} ({entry.where})" if entry.line else entry.display)
                continue
            (out.constraints if entry.constraint else out.requirements).append(str(req))
    if ray:
        out.constraints.append(f"ray=={ray}")
        if client_extras:
            out.requirements.append(f"ray[client]=={ray}")
        for text in out.requirements:
            req = _parse(text)
            if req is not None and canonicalize_name(req.name) == "ray" and not req.specifier.contains(ray, True):
                extras = sorted(req.extras | ({"client"} if client_extras else set()))
                out.overrides.append(f"ray[{','.join(extras)}]=={ray}" if extras else f"ray=={ray}")
                break
    return out


def _parse(text: str) -> Requirement | None:
    if text.startswith("-"):
        return None
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


# -- running uv -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str  # stdout + stderr, credentials masked
    stdout: str = ""
    timed_out: bool = False


class UvRunner:
    """``uv pip compile`` for one Python and platform, every call inside one deadline."""

    def __init__(
        self, uv: Path, python: str, platform: str, environ: Mapping[str, str], *, budget_s: float = BUDGET_S
    ) -> None:
        self.uv = uv
        self.python = python
        self.platform = platform
        env = proc.child_env(environ)  # never the Ray token
        env.update({"NO_COLOR": "1", "UV_NO_PROGRESS": "1", "UV_PYTHON_DOWNLOADS": "never"})
        env.setdefault("UV_HTTP_RETRIES", "1")
        env.setdefault("UV_HTTP_TIMEOUT", str(int(min(CALL_LIMIT_S, budget_s))))
        env.pop("VIRTUAL_ENV", None)
        self.env = uv_config.isolated_env(env)  # no uv.toml of any folder: see doctor/uv_config.py
        self.deadline = time.monotonic() + budget_s
        self.calls = 0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def compile(self, inputs: Inputs, *, binary_only: bool = True, lowest: bool = False) -> Answer:
        limit = min(CALL_LIMIT_S, self.left())
        if limit <= 0.5:
            return Answer(False, "the resolution's time budget is spent", timed_out=True)
        with proc.private_cwd() as folder:  # uv's working folder too: never the checkout, never /tmp itself
            args = [str(self.uv), "pip", "compile", "--python-version", self.python]
            args += ["--python-platform", PLATFORMS.get(self.platform, self.platform)]
            args += ["--no-header", "--no-annotate", "--color", "never", "--quiet"]
            if binary_only:
                args += ["--only-binary", ":all:"]
            if lowest:
                args += ["--resolution", "lowest-direct"]
            for flag, lines, name in (
                ("--constraint", inputs.constraints, "constraints.txt"),
                ("--override", inputs.overrides, "overrides.txt"),
            ):
                if lines:
                    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
                    args += [flag, str(folder / name)]
            (folder / "requirements.in").write_text("\n".join(inputs.requirements) + "\n", encoding="utf-8")
            args.append(str(folder / "requirements.in"))
            self.calls += 1
            try:
                done = proc.run(args, timeout=limit, env=self.env, cwd=folder)
            except proc.ProcTimeout:
                return Answer(False, f"uv did not answer within {limit:.0f} s", timed_out=True)
            except OSError as exc:
                return Answer(False, f"could not run uv: {exc.strerror or exc}")
        text = mask_credentials(done.stdout + "\n" + done.stderr)
        return Answer(done.returncode == 0, text, mask_credentials(done.stdout))


def _pins_of(stdout: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and not name.startswith(("#", "-")):
            out[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return out


def _cause_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("cause:", "error:", "And because"))][:6]


def network_problem(text: str) -> str | None:
    match = re.search(_NETWORK, text)
    if not match:
        return None
    line = next((ln.strip() for ln in text.splitlines() if re.search(_NETWORK, ln)), match.group(0))
    return line[:200]


def _culprit(text: str) -> tuple[str, str] | None:
    """(requirement, reason) of the first unmet pin uv names."""
    for pattern, reason in (
        (_REQUIRES_PYTHON, REQUIRES_PYTHON),
        (_NO_WHEEL, NO_WHEEL),
        (_NO_VERSION, NO_SUCH_VERSION),
        (_NOT_FOUND, NOT_FOUND),
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(1), reason
    return None


def _name(requirement: str) -> str:
    req = _parse(requirement)
    return canonicalize_name(req.name if req else re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0])


def _floor(requirement: str) -> str | None:
    """``1.24.4`` from ``numpy==1.24.4`` (or ``>=``, ``~=``): where "nearest" starts looking."""
    req = _parse(requirement)
    if req is None:
        return None
    for spec in req.specifier:
        if spec.operator in ("==", "===", ">=", "~=") and "*" not in spec.version:
            return spec.version
    return None


def _alone(runner: UvRunner, requirement: str, base: Inputs) -> Unmet:
    """Ask about one unmet pin alone: does a source build resolve, and which release has a wheel."""
    name = _name(requirement)
    floor = _floor(requirement)
    alone = Inputs(requirements=[requirement], constraints=[c for c in base.constraints if _name(c) != name])
    source = runner.compile(alone, binary_only=False)
    nearest = None
    if floor:
        up = runner.compile(Inputs(requirements=[f"{name}>={floor}"]), lowest=True)
        nearest = _pins_of(up.stdout).get(name) if up.ok else None
    if nearest is None:
        any_release = runner.compile(Inputs(requirements=[name]))
        nearest = _pins_of(any_release.stdout).get(name) if any_release.ok else None
    py = runner.python
    plat = runner.platform
    requires = re.search(_REQUIRES_PYTHON, source.text)
    if requires:
        return Unmet(
            requirement,
            name,
            REQUIRES_PYTHON,
            f"its Requires-Python {requires.group(2)} excludes Python {py}",
            nearest,
        )
    if re.search(_NO_VERSION, source.text):
        return Unmet(requirement, name, NO_SUCH_VERSION, "no such release on the index", nearest)
    if re.search(_NOT_FOUND, source.text):
        return Unmet(
            requirement,
            name,
            NOT_FOUND,
            "uv's index has no package of that name (from a private index? give uv it too: UV_INDEX_URL)",
        )
    if source.ok and nearest is None:
        return Unmet(
            requirement,
            name,
            SOURCE_ONLY,
            f"no release has a wheel for Python {py} on Linux {plat}: it installs only by building from source "
            "(a compiler and the package's build dependencies on the machine that installs it)",
        )
    if source.ok:
        return Unmet(
            requirement,
            name,
            NO_WHEEL,
            f"no wheel for Python {py} on Linux {plat} (only its source, which predates this Python; "
            f"releases from {nearest} have wheels)",
            nearest,
        )
    return Unmet(requirement, name, NO_WHEEL, f"no wheel for Python {py} on Linux {plat}", nearest)


def resolve(
    reqs: Requirements | None,
    *,
    python: str,
    platform: str = "x86_64",
    ray: str | None,
    uv: Path | None,
    environ: Mapping[str, str],
    client_extras: bool = True,
    cache_dir: Path | None = None,
    budget_s: float = BUDGET_S,
) -> Resolution:
    """Resolve the project's pins for the head's Python and platform; never raises, never hangs."""
    started = time.monotonic()
    inputs = inputs_for(reqs, ray, client_extras=client_extras)
    base = Resolution(python, platform, ray, left_out=tuple(inputs.left_out))
    if uv is None:
        return _with(base, skipped="uv is not installed (raydoctor's dependency `uv` provides it)")
    folder = cache_dir if cache_dir is not None else default_cache_dir(environ)
    key = cache_key(inputs, python, platform, uv, environ)
    hit = read_cache(folder, key)
    if hit is not None:
        return _with(hit, cached=True, uv_calls=0, duration_s=time.monotonic() - started)
    runner = UvRunner(uv, python, platform, environ, budget_s=budget_s)
    found = _resolve_rounds(runner, inputs, base)
    found = _with(found, uv_calls=runner.calls, duration_s=time.monotonic() - started)
    if found.skipped is None:
        write_cache(folder, key, found)
    return found


def _resolve_rounds(runner: UvRunner, inputs: Inputs, base: Resolution) -> Resolution:
    relaxed: list[str] = []
    culprits: list[str] = []
    conflict: list[str] = []
    answer = Answer(False, "")
    for _ in range(MAX_ROUNDS):
        # a relaxed pin: out of the direct requirements, and any version wherever else it is required
        direct = [r for r in inputs.requirements if r.startswith("-") or _name(r) not in relaxed]
        trial = Inputs(direct, inputs.constraints, [*inputs.overrides, *relaxed])
        answer = runner.compile(trial)
        if answer.ok:
            break
        if answer.timed_out:
            return _with(base, skipped=f"{answer.text} (a slow or unreachable package index)")
        offline = network_problem(answer.text)
        if offline:
            return _with(base, skipped=f"no package index answered: {offline}")
        culprit = _culprit(answer.text)
        if culprit is None or _name(culprit[0]) in {_name(c) for c in culprits}:
            conflict = _cause_lines(answer.text) or [answer.text.strip()[:300]]
            break
        culprits.append(culprit[0])
        relaxed.append(_name(culprit[0]))
    asked = culprits[:MAX_ASKED]
    with ThreadPoolExecutor(max_workers=max(1, min(3, len(asked)))) as pool:
        unmet = list(pool.map(lambda c: _alone(runner, c, inputs), asked))
    if conflict:
        unmet.append(Unmet("; ".join(conflict)[:300], "", CONFLICT, "the pins contradict each other (uv's words)"))
    clean = answer.ok and not culprits  # with a pin relaxed, uv's answer is not the project's
    resolved = tuple(f"{k}=={v}" for k, v in sorted(_pins_of(answer.stdout).items())) if clean else ()
    return _with(base, unmet=tuple(unmet), resolved=resolved, conflict=tuple(conflict))


def _with(res: Resolution, **changes: Any) -> Resolution:
    from dataclasses import replace

    return replace(res, **changes)


# -- the cache --------------------------------------------------------------------


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV])
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "raydoctor" / "resolution"


def cache_key(inputs: Inputs, python: str, platform: str, uv: Path, environ: Mapping[str, str]) -> str:
    try:
        st = uv.stat()
        uv_id = f"{uv}:{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        uv_id = str(uv)
    parts: dict[str, Any] = {
        "v": 2,
        "python": python,
        "platform": platform,
        "uv": uv_id,
        "inputs": [inputs.requirements, inputs.constraints, inputs.overrides],
        "index": {k: environ.get(k) for k in _INDEX_ENV},
        # everything uv is configured with: its UV_* variables and its config file's content
        "uv_config": uv_config.fingerprint(proc.child_env(environ)),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def read_cache(folder: Path, key: str, *, now: float | None = None) -> Resolution | None:
    path = folder / f"{key}.json"
    from doctor import files

    try:
        if path.is_symlink() or not path.is_file():
            return None
        st = path.stat()
        if st.st_size > CACHE_FILE_MAX or (now or time.time()) - st.st_mtime > CACHE_TTL_S:
            return None
        return Resolution.from_dict(json.loads(files.read_bytes(path, CACHE_FILE_MAX, follow_symlinks=False)))
    except (OSError, files.Unreadable, ValueError, TypeError, RecursionError):
        return None


def write_cache(folder: Path, key: str, res: Resolution) -> None:
    """Write atomically (mkstemp, then rename); keep at most ``CACHE_ENTRIES`` files. Never raises."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".json", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_with(res, cached=False).to_dict(), fh)
        os.replace(tmp, folder / f"{key}.json")
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[: max(0, len(entries) - CACHE_ENTRIES)]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def platform_of(image: str | None, hint: str | None = None) -> tuple[str, str]:
    """(platform, where it came from): an image tag's ``-aarch64``, else x86_64 (Ray's default images)."""
    if hint in PLATFORMS:
        return hint, "given"
    if image:
        from doctor.head.image_tag import parse_image

        info = parse_image(image)
        if info.arch == "aarch64":
            return "aarch64", f"image tag {info.tag}"
        return "x86_64", f"image tag {info.tag}"
    return "x86_64", "default (Ray's images are x86_64 unless tagged -aarch64)"


def changes(unmet: Sequence[Unmet]) -> list[str]:
    return [f"{u.requirement} → {u.change()}" for u in unmet if u.name]
