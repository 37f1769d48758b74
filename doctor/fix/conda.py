"""conda, mamba and micromamba, driven as a subprocess with ``--json``.

The contract followed is conda's own: errors as JSON on stdout with exit code 1
(``conda/exceptions.py``, ``conda/cli/main.py::main`` printing ``CondaError.dump_map``),
argparse errors with exit code 2, and name rules from
``conda/base/context.py::validate_prefix_name``. raydoctor never imports conda: it runs the executable with ``--json`` and
reads what comes back. Three things make that less simple than it sounds,
and this module exists to get them right once:

* stdout may carry NUL-separated progress records before the real answer,
  and ``--json`` does not guarantee JSON on every error (micromamba);
* errors arrive as JSON on stdout with exit code 1, argument errors as
  argparse text with exit code 2;
* ``create --yes`` silently deletes and recreates an existing env, so
  ``create`` here refuses any name that already exists: raydoctor never
  clobbers an env it did not create.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor import proc
from doctor.errors import FixError
from doctor.local.tools import FLAVORS, CondaLocation, locate_conda

__all__ = ["FLAVORS", "Conda", "CondaEnv", "CondaError", "CondaNetworkError", "CondaPackagesNotFound"]
# conda's own rule (conda.base.context.validate_prefix_name): these may not appear in a name.
BAD_NAME_CHARS = ("/", " ", ":", "#")
# Written into the prefix of every env raydoctor creates, so a later run can
# tell its own env (reusable) from a user's env of the same name (never touched).
CREATED_MARKER = ".raydoctor-created"

_QUERY_TIMEOUT_S = 120.0  # --version, info, env list: no solving, no downloads
_NETWORK_EXCEPTIONS = {
    "CondaHTTPError",
    "CondaSSLError",
    "ProxyError",
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
}
# PackagesNotFoundError and its subclasses (PackagesNotFoundInChannelsError, ...), older spellings
_NOT_FOUND_EXCEPTIONS = ("PackagesNotFound", "PackageNotFound", "ResolvePackageNotFound", "NoPackagesFound")
_NETWORK_TEXT = re.compile(
    r"CONNECTION FAILED|Download error|Could(?: not|n't) resolve host|Connection refused"
    r"|Network is unreachable|Failed to connect|timed? ?out|SSL(?:Error| certificate)",
    re.IGNORECASE,
)


class CondaError(FixError):
    """conda failed; ``exception_name`` is conda's own error class when it said one."""

    def __init__(self, message: str, *, exception_name: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exception_name = exception_name


class CondaPackagesNotFound(CondaError):
    """The channels have no such package: for ``python=X.Y.Z``, no such patch."""


class CondaNetworkError(CondaError):
    """conda could not reach its channels: not a problem with the spec."""


@dataclass(frozen=True)
class CondaEnv:
    """A conda env: its name, its prefix and its interpreter."""

    name: str
    prefix: Path
    python: Path  # PREFIX/bin/python, or PREFIX\\python.exe on Windows


def env_python(prefix: Path) -> Path:
    """Where a conda env keeps its interpreter on this OS."""
    return prefix / "python.exe" if os.name == "nt" else prefix / "bin" / "python"


def validate_env_name(name: str) -> None:
    """Refuse names conda would reject, before any subprocess runs."""
    bad = [c for c in BAD_NAME_CHARS if c in name]
    if not name or bad:
        shown = ", ".join(repr(c) for c in bad) if bad else "an empty name"
        raise CondaError(
            f"invalid conda env name {name!r}: it may not contain {shown}",
            exception_name="CondaValueError",
        )


def parse_json_output(stdout: str) -> dict[str, Any] | None:
    """The last complete JSON object in conda's stdout, or None.

    Records are separated by NUL bytes (progress first, the answer last); a
    stray line printed before the object (a plugin, a banner) is skipped by
    also trying from the first ``{`` of a record.
    """
    for record in reversed(stdout.split("\0")):
        record = record.strip()
        if not record:
            continue
        for text in (record, record[record.find("{") :] if "{" in record else ""):
            if not text:
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: thousands of nested '[' in garbage output
                continue
            if isinstance(value, dict):
                return value
    return None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


class Conda:
    """One conda-like executable.

    ``flavor`` only changes details: micromamba's ``--version`` prints a
    bare version, its ``info`` keys contain spaces, and it needs a channel
    named on the command line when none is configured.
    """

    def __init__(
        self, exe: Path, flavor: str, timeout: float = 600.0, *, environ: Mapping[str, str] | None = None
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        self.exe = Path(exe)
        self.flavor = flavor
        self.timeout = timeout
        self._environ = environ  # None: os.environ at the time of each run
        self._envs_dirs: list[Path] | None = None

    def __repr__(self) -> str:
        return f"Conda({str(self.exe)!r}, {self.flavor!r})"

    # -- finding one -------------------------------------------------------

    @classmethod
    def locate(cls, environ: Mapping[str, str] | None = None) -> Conda | None:
        """The conda ``doctor.fix.discover.locate_conda`` finds, or None: conda is optional."""
        found = locate_conda(environ)
        return cls.at(found) if found is not None else None

    @classmethod
    def at(cls, location: CondaLocation, *, environ: Mapping[str, str] | None = None) -> Conda:
        """The conda a discovery found, ready to run."""
        return cls(location.exe, location.flavor, environ=environ)

    # -- running -----------------------------------------------------------

    def _command(self, args: Sequence[str]) -> list[str]:
        return [str(self.exe), *args]

    def _run(self, args: Sequence[str], timeout: float) -> tuple[int, str, str]:
        """Run conda with a deadline (``doctor.proc.run``: on timeout or Ctrl-C its process group dies too).

        conda never needs the cluster's token, so it does not inherit it (``proc.child_env``).
        """
        cmd = self._command(args)
        try:
            done = proc.run(cmd, timeout=timeout, env=proc.child_env(self._environ))
        except proc.ProcTimeout:
            raise CondaError(
                f"`{' '.join(cmd)}` timed out after {timeout:g} s and was stopped",
                hint="is the network slow, or is conda waiting on a lock held by another conda?",
            ) from None
        except OSError as exc:
            raise CondaError(f"could not run {self.exe}: {exc.strerror or exc}") from exc
        return done.returncode, done.stdout, done.stderr

    def _json(self, args: Sequence[str], *, timeout: float, what: str, spec: str | None = None) -> dict[str, Any]:
        """Run a ``--json`` command and return its answer, or raise a typed CondaError."""
        rc, out, err = self._run(args, timeout)
        data = parse_json_output(out)
        failed = data is None or data.get("success") is False or bool(data.get("exception_name"))
        if rc == 0 and data is not None and not failed:
            return data
        raise self._error(args, rc, out, err, data, what=what, spec=spec)

    def _error(
        self,
        args: Sequence[str],
        rc: int,
        out: str,
        err: str,
        data: dict[str, Any] | None,
        *,
        what: str,
        spec: str | None,
    ) -> CondaError:
        """Turn a failed run into one line that says what failed and why."""
        if data is not None and (data.get("exception_name") or data.get("error")):
            name = str(data.get("exception_name") or "") or None
            message = str(data.get("message") or data.get("error") or "")
            line = _first_line(message)
            if name and line.startswith(f"{name}: "):
                line = line[len(name) + 2 :]
            if name and name.startswith(_NOT_FOUND_EXCEPTIONS):
                missing = [str(p) for p in data.get("packages") or []] or _listed_specs(message)
                if line.endswith(":") and missing:
                    line = f"{line} {', '.join(missing)}"
                elif spec and spec not in line:
                    line = f"{line} ({spec})"
                return CondaPackagesNotFound(f"{what} failed: {name}: {line}", exception_name=name)
            if name in _NETWORK_EXCEPTIONS:
                return CondaNetworkError(
                    f"{what} failed with a network error: {name}: {line}",
                    exception_name=name,
                    hint="check the network or proxy, then run fix again",
                )
            label = f"{name}: {line}" if name else line
            return CondaError(f"{what} failed: {label}", exception_name=name)
        if data is not None and data.get("success") is False:
            problems = [str(p) for p in data.get("solver_problems") or []]
            if problems:  # micromamba/mamba 2: the solver found nothing that fits
                return CondaPackagesNotFound(
                    f"{what} failed: {_first_line(problems[0])}"
                    + (f" ({spec})" if spec and spec.split("=")[-1] not in problems[0] else ""),
                    exception_name="SolverProblems",
                )
            return CondaError(f"{what} failed: {self.flavor} reported success: false")
        text = err if err.strip() else out
        if rc == 2:
            bad = next((ln.strip() for ln in text.splitlines() if "error:" in ln), _first_line(text))
            return CondaError(f"{self.flavor} rejected the command line `{' '.join(self._command(args))}`: {bad}")
        if _NETWORK_TEXT.search(text):
            return CondaNetworkError(
                f"{what} failed with a network error: {_first_line(_network_line(text))}",
                hint="check the network or proxy, then run fix again",
            )
        first = _first_line(text) or "no output"
        return CondaError(f"{what} failed (exit {rc}) without a JSON answer: {first}")

    # -- queries -----------------------------------------------------------

    def version(self) -> str:
        """The bare version: ``conda 25.7.0`` and micromamba's ``2.3.2`` both give the number."""
        rc, out, err = self._run(["--version"], min(self.timeout, _QUERY_TIMEOUT_S))
        match = re.search(r"(\d+\.\d+(?:\.\d+)?\S*)", out)
        if rc != 0 or not match:
            text = _first_line(err) or _first_line(out) or "no output"
            raise CondaError(f"`{self.exe} --version` failed (exit {rc}): {text}")
        return match.group(1)

    def info(self) -> dict[str, Any]:
        """``info --json`` as a dict (keys differ between conda and micromamba)."""
        return self._json(["info", "--json"], timeout=min(self.timeout, _QUERY_TIMEOUT_S), what=f"{self.flavor} info")

    def envs_dirs(self) -> list[Path]:
        """Where ``create -n NAME`` puts envs (``envs_dirs``, or micromamba's ``envs directories``)."""
        if self._envs_dirs is None:
            info = self.info()
            dirs = info.get("envs_dirs") or info.get("envs directories") or []
            if isinstance(dirs, str):
                dirs = [dirs]
            if not dirs:
                root = info.get("root_prefix") or info.get("base environment")
                dirs = [str(Path(root) / "envs")] if root else []
            self._envs_dirs = [Path(d) for d in dirs]
        return list(self._envs_dirs)

    def env_prefixes(self) -> list[Path]:
        """Every env conda knows of, the base env included.

        ``env list --json`` has had three shapes: ``{"envs": [...]}``; since
        25.11 also ``envs_details`` (prefix -> details); in 24.7-25.9 the
        whole ``info`` dict, which includes ``envs``. When the answer holds
        no list at all (micromamba-style ``info``), the envs directories are
        scanned instead, with micromamba's keys (``"envs directories"``,
        ``"base environment"``) understood.
        """
        data = self._json(
            ["env", "list", "--json"],
            timeout=min(self.timeout, _QUERY_TIMEOUT_S),
            what=f"{self.flavor} env list",
        )
        found: list[str] = []
        envs = data.get("envs")
        if isinstance(envs, (list, dict)):  # a dict: prefix -> details
            found += [str(e) for e in envs]
        details = data.get("envs_details")
        if isinstance(details, dict):
            found += [str(e) for e in details]
        elif isinstance(details, list):
            found += [str(d.get("prefix")) for d in details if isinstance(d, dict) and d.get("prefix")]
        if not found:
            for key in ("root_prefix", "base environment"):
                if data.get(key):
                    found.append(str(data[key]))
            dirs = data.get("envs_dirs") or data.get("envs directories") or []
            if isinstance(dirs, str):
                dirs = [dirs]
            for d in dirs:
                if Path(d).is_dir():
                    found += [str(p) for p in Path(d).iterdir() if (p / "conda-meta").is_dir()]
        result: list[Path] = []
        for item in found:
            path = Path(item)
            if path not in result:
                result.append(path)
        return result

    def env_exists(self, name: str) -> bool:
        """Whether ``create -n name`` would touch something that already exists.

        Besides the registered envs, a directory of that name in an envs
        directory counts: conda would overwrite it all the same.
        """
        validate_env_name(name)
        if name in ("base", "root"):
            return True
        if any(p.name == name for p in self.env_prefixes()):
            return True
        return any((d / name).exists() for d in self.envs_dirs())

    def get_env(self, name: str) -> CondaEnv | None:
        """The env called ``name``, or None."""
        validate_env_name(name)
        for prefix in self.env_prefixes():
            if prefix.name == name:
                return CondaEnv(name, prefix, env_python(prefix))
        return None

    @staticmethod
    def created_by_raydoctor(env: CondaEnv) -> bool:
        """Whether raydoctor created this env (it leaves a marker in the prefix)."""
        return (env.prefix / CREATED_MARKER).is_file()

    # -- changes -----------------------------------------------------------

    def create(self, name: str, python_spec: str) -> CondaEnv:
        """Create env ``name`` holding ``python=python_spec`` (``"3.12.9"`` or ``"python=3.12"``).

        Refuses (CondaError) when the name exists: with ``--yes`` conda would
        delete that env and build a new one in its place. On a timeout or
        Ctrl-C, whatever the interrupted create left behind is removed (the
        name did not exist before, so it is ours). A marker file in the new
        prefix records that raydoctor made it.
        """
        validate_env_name(name)
        spec = python_spec if python_spec.startswith("python") else f"python={python_spec}"
        if self.env_exists(name):
            raise CondaError(
                f"conda env {name!r} already exists and this run did not create it: "
                "raydoctor will not reuse or overwrite it",
                hint=f"remove it yourself (`{self.flavor} env remove -n {name}`) or choose another name",
            )
        args = ["create", "-n", name, spec, "--json", "--quiet", "--yes"]
        if self.flavor == "micromamba":
            args += ["-c", "conda-forge"]  # micromamba has no default channel
        what = f"`{self.flavor} create -n {name} {spec}`"
        try:
            data = self._json(args, timeout=self.timeout, what=what, spec=spec)
        except BaseException as exc:
            if not isinstance(exc, (CondaPackagesNotFound, CondaNetworkError)):
                self._remove_leftover(name)
            raise
        prefix_text = data.get("prefix") or (data.get("actions") or {}).get("PREFIX")
        prefix = Path(prefix_text) if prefix_text else None
        if prefix is None:
            env = self.get_env(name)
            prefix = env.prefix if env else None
        if prefix is None or not env_python(prefix).exists():
            if prefix is not None:
                self._remove_prefix(CondaEnv(name, prefix, env_python(prefix)))
            raise CondaError(f"{what} reported success but left no interpreter in the env")
        try:
            (prefix / CREATED_MARKER).write_text(
                json.dumps({"created_by": "raydoctor", "created_at": time.time(), "spec": spec}) + "\n",
                encoding="utf-8",
            )
        except OSError:
            pass  # only costs reuse on a later run
        return CondaEnv(name, prefix, env_python(prefix))

    def remove(self, env: CondaEnv) -> None:
        """Remove an env that this run created (never call it on any other).

        Uses ``remove -p PREFIX --all`` (exactly that prefix). If conda fails
        and the prefix carries raydoctor's marker, the folder is deleted
        directly; otherwise a CondaError says what is left.
        """
        self._remove_prefix(env)

    def _remove_prefix(self, env: CondaEnv) -> None:
        if self.flavor == "conda":
            args = ["remove", "-p", str(env.prefix), "--all", "--json", "--quiet", "--yes"]
        else:
            args = ["env", "remove", "-p", str(env.prefix), "--json", "--yes"]
        failure: CondaError | None = None
        try:
            self._json(args, timeout=min(self.timeout, _QUERY_TIMEOUT_S), what=f"removing {env.prefix}")
        except CondaError as exc:
            failure = exc
        if (
            env.prefix.exists()
            and env.prefix.name == env.name
            and ((env.prefix / CREATED_MARKER).is_file() or failure is None)
        ):
            shutil.rmtree(env.prefix, ignore_errors=True)
        if env.prefix.exists():
            raise CondaError(
                f"could not remove conda env {env.name!r} at {env.prefix}" + (f": {failure.message}" if failure else "")
            )

    def _remove_leftover(self, name: str) -> None:
        """After an interrupted create: remove ``name`` if the create left it behind."""
        try:
            env = self.get_env(name)
            if env is None:
                for d in self.envs_dirs():
                    if (d / name).exists():
                        env = CondaEnv(name, d / name, env_python(d / name))
                        break
            if env is not None:
                try:
                    self._remove_prefix(env)
                except CondaError:
                    if env.prefix.name == name:
                        shutil.rmtree(env.prefix, ignore_errors=True)
        except (CondaError, OSError):
            pass  # best effort: the original error matters more


def _listed_specs(message: str) -> list[str]:
    """The ``  - python=3.12.9`` lines of a PackagesNotFoundError message."""
    specs = []
    for line in message.splitlines():
        match = re.match(r"\s+-\s+(\S+)\s*$", line)
        if match and "://" not in match.group(1):
            specs.append(match.group(1))
        elif specs:
            break
    return specs


def _network_line(text: str) -> str:
    for line in text.splitlines():
        if _NETWORK_TEXT.search(line):
            return line
    return text
