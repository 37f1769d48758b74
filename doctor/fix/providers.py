"""What gives fix its interpreter: an existing one, or conda creating one; each knows how to undo itself.

``doctor.fix.discover`` looks (read-only); a provider here acts, and only the executor
(``doctor.fix.execute``) calls ``provide``. The plan holds discovery results and a
provider *description* (``doctor.fix.plan.InterpreterPlan``), never a provider, so a
``--dry-run`` cannot reach a creating call.

The order, and why:

1. An interpreter already on this machine with the exact patch: instant, and exactly
   as correct as a fresh conda env, so it wins over creating one (``Existing``).
2. conda (or mamba/micromamba) creating ``python=X.Y.Z``; when its channels lack that
   patch, ``python=X.Y`` with a warning. An env of the same name is reused only if
   raydoctor made it; a user's env is never touched (``CondaProvider``; ``undo``
   removes the env only if this run created it).
3. An interpreter already here with the same major.minor, with a warning.
4. Nothing: a FixError that says how to install one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from doctor.errors import UsageError
from doctor.fix.conda import Conda, CondaEnv, CondaError, CondaPackagesNotFound
from doctor.fix.discover import (
    CondaLocation,
    Interpreter,
    closest_warning,
    default_search_dirs,
    discover,
    no_interpreter,
    patch_rule,
    probe,
)
from doctor.versions import VersionSpec

__all__ = [
    "CondaProvider",
    "Existing",
    "Interpreter",
    "Provider",
    "closest_warning",
    "default_search_dirs",
    "find_interpreter",
    "no_interpreter",
    "patch_rule",
    "probe",
]


class Provider(ABC):
    """Gives an interpreter; ``undo`` removes whatever ``provide`` created (and only that)."""

    kind: str = ""
    step: str = "interpreter"  # the name of the executor's step

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def provide(self) -> Interpreter: ...

    def undo(self) -> list[str]:
        """Remove what ``provide`` created; returns what was removed, one phrase each."""
        return []


class Existing(Provider):
    """An interpreter already on this machine: providing it creates nothing."""

    kind = "existing"

    def __init__(self, interpreter: Interpreter) -> None:
        self.interpreter = interpreter

    def describe(self) -> str:
        return f"Python {self.interpreter.version} from {self.interpreter.source}"

    def provide(self) -> Interpreter:
        return self.interpreter


class CondaProvider(Provider):
    """conda creates (or reuses its own earlier) env ``env_name`` with ``python=want``.

    ``fallback`` (the nearest patch already here) is used, with a warning, when conda
    cannot help; without one a conda failure is raised.
    """

    kind = "conda"
    step = "conda"

    def __init__(self, conda: Conda, env_name: str, want: VersionSpec, fallback: Interpreter | None = None) -> None:
        self.conda = conda
        self.env_name = env_name
        self.want = want
        self.fallback = fallback
        self.created: CondaEnv | None = None

    @classmethod
    def at(
        cls,
        location: CondaLocation,
        env_name: str,
        want: VersionSpec,
        fallback: Interpreter | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> CondaProvider:
        return cls(Conda.at(location, environ=environ), env_name, want, fallback)

    def describe(self) -> str:
        return f"conda env {self.env_name} with python={self.want}"

    def provide(self) -> Interpreter:
        warnings: list[str] = []
        try:
            interp = self._from_conda(warnings)
        except CondaError as exc:
            if self.fallback is None:
                raise
            warnings.append(f"conda could not provide Python {self.want}: {exc}")
            interp = None
        if interp is not None:
            return interp
        if self.fallback is not None:
            return self.fallback.with_warnings(*warnings, closest_warning(self.want, self.fallback))
        raise no_interpreter(self.want, self.env_name, warnings)

    def undo(self) -> list[str]:
        """Remove the env this run created; a CondaError when conda cannot."""
        env, self.created = self.created, None
        if env is None:
            return []
        self.conda.remove(env)
        return [f"conda env {env.name} ({env.prefix}), created by this run"]

    def _from_conda(self, warnings: list[str]) -> Interpreter | None:
        """Reuse raydoctor's own env of that name, or create it; None when conda cannot help."""
        conda, name, want = self.conda, self.env_name, self.want
        source = f"conda env {name}"
        existing = conda.get_env(name)
        if existing is not None:
            if not conda.created_by_raydoctor(existing):
                warnings.append(
                    f"conda env {name!r} already exists and raydoctor did not create it: "
                    "leaving it alone and not using conda"
                )
                return None
            version = probe(existing.python)
            if version is None or not want.same_minor(version):
                warnings.append(
                    f"conda env {name!r} (made by an earlier raydoctor run) holds "
                    f"Python {version or 'that does not run'}, not {want}: not using it"
                )
                return None
            if not want.satisfies(version):
                warnings.append(f"reusing conda env {name!r} with Python {version}. {patch_rule(want)}")
            return Interpreter(existing.python, version, source, want.satisfies(version), None, tuple(warnings), name)

        try:
            env = conda.create(name, str(want))
        except CondaPackagesNotFound:
            if not want.exact:
                warnings.append(f"conda's channels have no python={want}")
                return None
            try:
                env = conda.create(name, want.minor)
            except CondaPackagesNotFound:
                warnings.append(f"conda's channels have neither python={want} nor python={want.minor}")
                return None
            warnings.append(
                f"conda's channels have no python={want} (conda-forge keeps only some patches); "
                f"created {name!r} with python={want.minor} instead. {patch_rule(want)}"
            )
        self.created = env
        version = probe(env.python)
        if version is None:
            self.undo()
            raise CondaError(f"conda env {name!r} was created but its Python does not run ({env.python})")
        if not want.satisfies(version) and not any(patch_rule(want) in w for w in warnings):
            warnings.append(f"conda gave Python {version}, not {want}. {patch_rule(want)}")
        return Interpreter(env.python, version, source, want.satisfies(version), env, tuple(warnings), name)


def parse_want(want: str) -> VersionSpec:
    try:
        return VersionSpec.parse(want)
    except ValueError:
        raise UsageError(f"not a Python version: {want!r} (expected X.Y.Z or X.Y)") from None


def find_interpreter(
    want: str | VersionSpec,
    *,
    conda: Conda | None,
    env_name: str,
    allow_conda: bool = True,
    search_dirs: Sequence[Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Interpreter:
    """An interpreter for Python ``want`` ("3.12.9", or "3.12" for any patch), created if need be.

    Discovery, then the providers in order: an exact interpreter already here, then
    conda (``env_name`` is the env it may create; ``Interpreter.created`` is set when it
    did), then the same minor already here, each with a warning that explains the
    patch rule. A conda failure (network, timeout) is raised only when no fallback
    exists; otherwise it becomes a warning. This may create: the plan never calls it.
    """
    spec = want if isinstance(want, VersionSpec) else parse_want(want)
    found = discover(spec, use_conda=False, search_dirs=search_dirs, environ=environ)
    if found.exact is not None:
        return found.exact
    if allow_conda and conda is not None:
        return CondaProvider(conda, env_name, spec, found.closest).provide()
    if found.closest is not None:
        return found.closest.with_warnings(closest_warning(spec, found.closest))
    raise no_interpreter(spec, env_name)
