"""What gives fix its interpreter: an existing one, uv or conda creating one; each knows how to undo itself.

``doctor.fix.discover`` looks (read-only); a provider here acts, and only the executor
(``doctor.fix.execute``) calls ``provide``. The plan holds discovery results and a
provider *description* (``doctor.fix.plan.InterpreterPlan``), never a provider, so a
``--dry-run`` cannot reach a creating call.

The order, and why:

1. An interpreter already on this machine with the exact patch: instant, and exactly
   as correct as a fresh conda env, so it wins over creating one (``Existing``).
2. uv's managed Pythons (``UvProvider``): ``uv python install KEY --no-bin``, the
   exact patch in seconds on any machine, with the user's uv settings (install dir,
   mirror, downloads list, offline); ``undo`` runs ``uv python uninstall KEY`` only
   for a key this run installed (``doctor.fix.uv_python`` says why uninstall and not
   removing the folder). A managed Python that was already there is used, never touched.
3. conda (or mamba/micromamba) creating ``python=X.Y.Z``; when its channels lack that
   patch, ``python=X.Y`` with a warning. An env of the same name is reused only if
   raydoctor made it; a user's env is never touched (``CondaProvider``; ``undo``
   removes the env only if this run created it).
4. An interpreter already here with the same major.minor, with a warning.
5. Nothing: a FixError that says how to install one.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

from doctor import proc
from doctor.errors import FixError, UsageError
from doctor.fix.conda import Conda, CondaEnv, CondaError, CondaPackagesNotFound
from doctor.fix.discover import (
    Interpreter,
    closest_warning,
    default_search_dirs,
    discover,
    no_interpreter,
    patch_rule,
    probe,
)
from doctor.fix.uv_python import (
    BOOKKEEPING,
    INSTALL_TIMEOUT_S,
    TMPDIR,
    UNINSTALL_TIMEOUT_S,
    UvPython,
    downloads_refused,
    exe_in,
    one_line_error,
    uv_env,
    uv_run,
)
from doctor.fix.uv_python import install_dir as uv_install_dir
from doctor.local.tools import CondaLocation
from doctor.versions import VersionSpec

__all__ = [
    "CondaProvider",
    "Existing",
    "Interpreter",
    "Provider",
    "UvProvider",
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


class UvProvider(Provider):
    """Installs (or reuses) uv's managed Python ``python.key``; ``undo`` uninstalls only what it installed.

    When uv cannot install (a download refused, offline, a network that blocks it), ``then`` (conda,
    where the plan found it) is asked next, then ``fallback`` (the nearest patch here) is used with a
    warning; without either the failure is raised, with ``way_out`` as its hint.
    """

    kind = "uv"
    step = "uv-python"

    def __init__(
        self,
        uv: Path,
        want: VersionSpec,
        python: UvPython,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        fallback: Interpreter | None = None,
        fallback_warning: str | None = None,
        then: Provider | None = None,
        way_out: str = "",
    ) -> None:
        self.uv = uv
        self.want = want
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)
        self.cwd = (cwd or Path.cwd()).absolute()
        self.fallback = fallback
        self.fallback_warning = fallback_warning
        self.then = then
        self.then_used = False
        self.managed = False  # provide() handed uv's managed Python itself (not conda's, not the fallback)
        self.way_out = way_out
        self.installed_key: str | None = None  # set once this run started installing a key that was not there
        self.install_dir: Path | None = None
        self.dir_existed = True

    def describe(self) -> str:
        if self.python.installed:
            return f"uv's managed Python {self.python.key} (already installed)"
        return f"uv python install {self.python.key} --no-bin"

    def provide(self) -> Interpreter:
        try:
            interp = self._provide()
            self.managed = True
            return interp
        except FixError as exc:
            self.undo()
            warning = f"uv could not provide Python {self.want}: {exc.message}"
            if self.then is not None:
                self.then_used = True
                try:
                    return self.then.provide().with_warnings(warning)
                except (FixError, CondaError) as then_exc:
                    if self.fallback is None:
                        raise FixError(f"{warning}; then {then_exc}", hint=self.way_out or None) from None
                    warning += f"; then {then_exc}"
            if self.fallback is None:
                raise FixError(exc.message, hint=self.way_out or exc.hint) from None
            extra = (self.fallback_warning,) if self.fallback_warning else ()
            return self.fallback.with_warnings(warning, *extra)

    def _provide(self) -> Interpreter:
        refused = downloads_refused(self.environ)
        folder = uv_install_dir(self.uv, self.environ, self.cwd)
        if folder is None:
            raise FixError("`uv python dir` did not name uv's managed-Python folder")
        self.install_dir = folder
        prefix = folder / self.python.key
        if prefix.is_dir():  # there before this run: used, never removed
            return self._checked(exe_in(prefix, self.want), created=False)
        if refused:
            raise FixError(f"uv cannot install Python {self.want}: {refused}")
        self.dir_existed = folder.exists()
        self.installed_key = self.python.key  # from here on, undo() may have something to remove
        args = [str(self.uv), "python", "install", self.python.key, "--no-bin", "--color", "never"]
        try:
            rc, lines = proc.stream(  # in a private empty folder (proc's default), never the checkout
                args, timeout=INSTALL_TIMEOUT_S, env=uv_env(self.environ, self.cwd), first_signal=signal.SIGINT
            )
        except proc.ProcTimeout:
            raise FixError(f"`uv python install {self.python.key}` ran past {INSTALL_TIMEOUT_S:g} s") from None
        if rc != 0:
            raise FixError(f"uv could not install Python {self.want}: {one_line_error(lines, f'exit {rc}')}")
        if not prefix.is_dir():
            raise FixError(f"`uv python install {self.python.key}` succeeded but {prefix} is not there")
        return self._checked(exe_in(prefix, self.want), created=True)

    def _checked(self, exe: Path, *, created: bool) -> Interpreter:
        version = probe(exe, environ=self.environ)
        if version is None:
            raise FixError(f"uv's Python {self.python.key} does not run ({exe})")
        if not self.want.satisfies(version):
            raise FixError(
                f"uv's download {self.python.key} holds Python {version}, not {self.want} "
                "(its downloads list names the wrong file)"
            )
        source = "uv (installed by this run)" if created else "uv"
        return Interpreter(exe, version, source, True)

    def undo(self) -> list[str]:
        """``uv python uninstall KEY`` for the key this run installed, and what ``then`` created; a FixError
        (or CondaError) when uv (or conda) cannot."""
        removed = self.then.undo() if self.then is not None and self.then_used else []
        return removed + self._undo_uv()

    def _undo_uv(self) -> list[str]:
        key, self.installed_key = self.installed_key, None
        folder = self.install_dir
        if key is None or folder is None:
            return []
        removed: list[str] = []
        if (folder / key).exists() or (folder / key).is_symlink():
            args = ["python", "uninstall", key]
            try:
                done = uv_run(self.uv, args, self.environ, UNINSTALL_TIMEOUT_S, self.cwd)
            except (OSError, proc.ProcTimeout) as exc:
                raise FixError(f"`uv python uninstall {key}` did not finish: {exc}") from None
            if done.returncode != 0 or (folder / key).exists():
                why = one_line_error(done.stderr.splitlines(), f"exit {done.returncode}")
                raise FixError(f"`uv python uninstall {key}` failed: {why}")
            removed.append(f"uv's managed Python {key} ({folder / key}), installed by this run")
        if not self.dir_existed:
            removed += _remove_fresh_folder(folder)
        return removed


def _remove_fresh_folder(folder: Path) -> list[str]:
    """uv's bookkeeping in an install folder this run made, then the folder if nothing else is in it."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return []
    if not names <= {*BOOKKEEPING, TMPDIR}:
        return []  # something else arrived meanwhile (another uv run): leave the folder
    try:
        if TMPDIR in names:
            (folder / TMPDIR).rmdir()  # only when empty
        for name in BOOKKEEPING:
            if name in names:
                (folder / name).unlink()
        folder.rmdir()
    except OSError:
        return []
    return [f"the folder {folder}, made by this run"]


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
