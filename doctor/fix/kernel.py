"""``fix --kernel [NAME]``: the env as a Jupyter kernel, registered the way ipykernel documents.

The kernelspec is written by the env's own ipykernel (``<env python> -m ipykernel install --user
--name NAME --display-name ...``, or ``--prefix DIR`` with ``--kernel-prefix``), so ``argv`` is
exactly what ipykernel writes for that interpreter (``ipykernel/kernelspec.py::make_ipkernel_cmd``:
``[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]``). ``--user`` lands in
Jupyter's user data folder (``doctor.local.kernels.jupyter_data_dir``: ``JUPYTER_DATA_DIR``, else
the platform's); raydoctor passes the folder it computed as ``JUPYTER_DATA_DIR`` to the child, so
the plan names the very folder ipykernel writes to.

raydoctor then adds ``metadata.raydoctor`` to the ``kernel.json`` (the kernelspec format leaves
``metadata`` free for tools): a later ``fix`` updates a kernelspec it wrote (a new display name, a
new env) and refuses to replace one it did not write.

Undo: a kernelspec this run created is removed; one that existed before (an earlier run's) is put
back as it was, from a copy taken before ipykernel replaced it (``KernelSpecManager.install_kernel_spec``
removes the old folder first). Another kernelspec is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doctor import files, proc
from doctor.errors import FixError, UsageError
from doctor.local.kernels import (
    KERNEL_JSON_CAP,
    KernelSpec,
    KernelSpecError,
    jupyter_data_dir,
    prefix_kernel_dir,
    read_kernelspec,
    valid_kernel_name,
)
from doctor.text import sanitize

KERNEL_PREFIX = "raydoctor-"
INSTALL_TIMEOUT_S = 120.0
IPYKERNEL = "ipykernel"


def default_kernel_name(env_name: str) -> str:
    """``raydoctor-<env name>``, e.g. ``raydoctor-ray2.49.2-py3.12.9``: only [a-zA-Z0-9._-]."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", KERNEL_PREFIX + env_name)


def cluster_label(target: Mapping[str, Any]) -> str:
    """What names the cluster in the display name: the compose head service, the host, the file, the image."""
    kind = target.get("kind")
    if kind == "compose" and target.get("head_service"):
        return str(target["head_service"])
    if kind == "compose" and target.get("compose"):
        return Path(str(target["compose"])).name
    address = target.get("address") or {}
    if kind == "address" and isinstance(address, dict) and address.get("host"):
        return str(address["host"])
    cluster = target.get("cluster_file") or {}
    if kind == "cluster_file" and isinstance(cluster, dict):
        return str(cluster.get("name") or cluster.get("path") or "cluster file")
    if target.get("image"):
        return str(target["image"])
    return "Ray cluster"


def display_name(ray: str, python: str, cluster: str) -> str:
    """``Ray 2.49.2 · Python 3.12.9 (ray-head)``: what JupyterLab's launcher shows."""
    return sanitize(f"Ray {ray} · Python {python} ({cluster})")


@dataclass(frozen=True)
class KernelPlan:
    """Where the kernelspec goes and what is there now; decided before anything is written."""

    name: str
    folder: Path  # .../kernels/NAME
    prefix: Path | None  # --kernel-prefix; None: the user's data folder
    data_dir: Path | None  # the user data folder (JUPYTER_DATA_DIR for the child), without --kernel-prefix
    cluster: str
    ray: str
    python: str  # the head's, for the plan; the env's real one is used when registering
    exists: bool  # a kernelspec of that name is there (an earlier raydoctor run's)

    @property
    def display_name(self) -> str:
        return display_name(self.ray, self.python, self.cluster)

    def describe(self, python: str | None = None) -> str:
        """``python``: the env's own version when the plan knows it (``Plan.kernel_python``)."""
        verb = "update" if self.exists else "register"
        shown = display_name(self.ray, python or self.python, self.cluster)
        return f"{verb} the Jupyter kernel {self.name} ({shown!r}) in {self.folder}, with ipykernel"

    def to_dict(self, python: str | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": str(self.folder),
            "prefix": str(self.prefix) if self.prefix else None,
            "display_name": display_name(self.ray, python or self.python, self.cluster),
            "exists": self.exists,
        }


def _same_path(a: object, b: Path) -> bool:
    try:
        return Path(os.path.realpath(str(a))) == Path(os.path.realpath(b))
    except (OSError, ValueError):
        return False


def _kernel_folder(name: str, prefix: Path | None, environ: Mapping[str, str], cwd: Path) -> tuple[Path, Path | None]:
    """``(folder, data_dir)`` for kernel ``name``: under ``--kernel-prefix``, else the user's data folder."""
    if prefix is not None:
        return prefix_kernel_dir(prefix) / name, None
    data_dir = jupyter_data_dir(environ)
    data_dir = data_dir if data_dir.is_absolute() else cwd / data_dir
    return data_dir / "kernels" / name, data_dir


def _owner_env(folder: Path, name: str) -> str | None:
    """The env a raydoctor kernelspec at ``folder`` runs; UsageError when raydoctor did not write it."""
    if folder.is_symlink() or not folder.is_dir():
        raise UsageError(f"--kernel {name}: {folder} is not a kernelspec folder; leaving it alone")
    try:
        spec = read_kernelspec(folder, name)
    except KernelSpecError:
        spec = None
    if spec is None or not spec.made_by_raydoctor:
        raise UsageError(
            f"--kernel {name}: the kernelspec {folder} exists and raydoctor did not write it; not replacing it",
            hint="choose another name with --kernel NAME (or remove it: jupyter kernelspec remove NAME)",
        )
    return str(spec.metadata["raydoctor"].get("env") or "")


def plan_kernel(
    name: str | None,
    *,
    env_name: str,
    prefix: Path | None,
    ray: str,
    python: str,
    target: Mapping[str, Any],
    environ: Mapping[str, str],
    cwd: Path,
    envs: Sequence[Path] = (),
) -> KernelPlan:
    """The kernel step of a plan; UsageError for a bad name or a kernelspec raydoctor did not write.

    ``envs``: the envs this run may register (the one it builds, the judged one). A raydoctor
    kernelspec of the same name that runs another env (another project's: every project's default
    name for the same head is the same) is not replaced: a named one is refused, the default name
    gets a suffix from this env's path instead.
    """
    default = name is None
    name = name or default_kernel_name(env_name)
    if not valid_kernel_name(name):
        raise UsageError(
            f"--kernel {name!r}: a kernel name has only letters, digits, '.', '_' and '-', and not only dots"
        )
    name = name.lower()  # Jupyter lower-cases kernel folder names (jupyter_client/kernelspec.py::_list_kernels_in)
    if prefix is not None:
        prefix = prefix if prefix.is_absolute() else cwd / prefix
    folder, data_dir = _kernel_folder(name, prefix, environ, cwd)
    exists = folder.exists() or folder.is_symlink()
    if exists:
        owner = _owner_env(folder, name)
        if envs and not any(_same_path(owner, env) for env in envs):
            if not default:
                raise UsageError(
                    f"--kernel {name}: the kernelspec {folder} runs another env ({owner}); not replacing it",
                    hint="choose another name with --kernel NAME",
                )
            suffix = hashlib.sha256(str(Path(os.path.realpath(envs[0]))).encode()).hexdigest()[:8]
            name = f"{name}-{suffix}"
            folder, data_dir = _kernel_folder(name, prefix, environ, cwd)
            exists = folder.exists() or folder.is_symlink()
            if exists:
                owner = _owner_env(folder, name)
                if not any(_same_path(owner, env) for env in envs):
                    raise UsageError(f"--kernel {name}: the kernelspec {folder} runs another env; not replacing it")
    return KernelPlan(name, folder, prefix, data_dir, cluster_label(target), ray, python, exists)


def _inside_kernels(folder: Path, name: str) -> bool:
    """``folder`` is ``<some kernels folder>/<name>`` for a valid ``name``, not a link: safe to remove."""
    return (
        valid_kernel_name(name)
        and folder.name == name
        and not folder.is_symlink()
        and folder.parent.name == "kernels"
        and Path(os.path.realpath(folder)).parent == Path(os.path.realpath(folder.parent))
    )


class KernelRegistration:
    """Registers the kernelspec of one plan and can undo exactly that (``undo``), once."""

    def __init__(self, plan: KernelPlan, environ: Mapping[str, str]) -> None:
        self.plan = plan
        self.environ = environ
        self._backup: Path | None = None  # a copy of the kernelspec that was there before
        self._touched = False  # ipykernel (or raydoctor) may have written the folder
        self.installed_ipykernel = False
        self.spec: KernelSpec | None = None

    def child_env(self) -> dict[str, str]:
        env = proc.child_env(self.environ, with_token=False)
        if self.plan.data_dir is not None:
            env["JUPYTER_DATA_DIR"] = str(self.plan.data_dir)
        env["PYTHONIOENCODING"] = "utf-8"
        return env

    def has_ipykernel(self, python: Path) -> bool:
        with tempfile.TemporaryDirectory(prefix="raydoctor-kernel-") as empty:
            try:
                done = proc.run(
                    [str(python), "-I", "-c", "import ipykernel"], timeout=60, env=self.child_env(), cwd=empty
                )
            except (OSError, proc.ProcTimeout):
                return False
        return done.returncode == 0

    def register(
        self,
        python: Path,
        python_version: str,
        *,
        install: Callable[[Path, Sequence[str]], None],
    ) -> KernelSpec:
        """ipykernel into ``python``'s env if missing (``install(python, ["ipykernel"])``), then the kernelspec."""
        plan = self.plan
        if not self.has_ipykernel(python):
            install(python, [IPYKERNEL])
            self.installed_ipykernel = True
        if plan.folder.is_dir() and self._backup is None:
            holder = Path(tempfile.mkdtemp(prefix=".raydoctor-kernel-backup-", dir=plan.folder.parent))
            self._backup = holder / plan.name
            shutil.copytree(plan.folder, self._backup, symlinks=True)
        where = ["--prefix", str(plan.prefix)] if plan.prefix is not None else ["--user"]
        shown = display_name(plan.ray, python_version, plan.cluster)
        argv = [str(python), "-m", "ipykernel", "install", *where, "--name", plan.name, "--display-name", shown]
        self._touched = True
        with tempfile.TemporaryDirectory(prefix="raydoctor-kernel-") as empty:
            try:
                done = proc.run(argv, timeout=INSTALL_TIMEOUT_S, env=self.child_env(), cwd=empty)
            except proc.ProcTimeout:
                raise FixError(f"ipykernel install did not finish within {INSTALL_TIMEOUT_S:g} s") from None
            except OSError as exc:
                raise FixError(f"could not run {python}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
            raise FixError(f"ipykernel install failed (exit {done.returncode}): {sanitize(last)}")
        if not (plan.folder / "kernel.json").is_file():
            raise FixError(f"ipykernel install reported success but wrote no {plan.folder / 'kernel.json'}")
        self._mark(python, python_version)
        self.spec = read_kernelspec(plan.folder, plan.name)
        return self.spec

    def _mark(self, python: Path, python_version: str) -> None:
        """Add ``metadata.raydoctor`` to kernel.json (written to a partial file, then renamed)."""
        path = self.plan.folder / "kernel.json"
        try:
            data: Any = json.loads(files.read_bytes(path, KERNEL_JSON_CAP, follow_symlinks=False))
        except (files.Unreadable, ValueError, RecursionError) as exc:
            raise FixError(f"ipykernel install wrote a {path} raydoctor cannot read: {exc}") from None
        if not isinstance(data, dict):
            raise FixError(f"ipykernel install wrote a {path} that is not a JSON object")
        meta: Any = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        meta["raydoctor"] = {
            "env": str(Path(python).parent.parent),
            "ray": self.plan.ray,
            "python": python_version,
            "cluster": self.plan.cluster,
        }
        data["metadata"] = meta
        fd, partial = tempfile.mkstemp(prefix=".kernel.json.", dir=self.plan.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
                fh.write("\n")
            os.replace(partial, path)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise

    def commit(self) -> None:
        """The fix succeeded: drop the copy of the old kernelspec."""
        if self._backup is not None:
            shutil.rmtree(self._backup.parent, ignore_errors=True)
            self._backup = None

    def undo(self) -> list[str]:
        """Remove the kernelspec this run created, or put back the one that was there; what was done."""
        folder = self.plan.folder
        done: list[str] = []
        if not _inside_kernels(folder, self.plan.name):  # planned as such; checked again before any removal
            self._touched = False
            return done
        if self._backup is not None:
            if folder.exists() or folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
            os.replace(self._backup, folder)
            shutil.rmtree(self._backup.parent, ignore_errors=True)
            self._backup = None
            done.append(f"the Jupyter kernel {self.plan.name} put back as it was ({folder})")
        elif self._touched and not self.plan.exists and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"the Jupyter kernel {self.plan.name} ({folder})")
        self._touched = False
        return done
