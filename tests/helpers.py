"""Plain helpers the test modules share (fixtures live in conftest.py).

Import them as ``from tests.helpers import by_id, wait_for``; never import
from another ``test_*`` module.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")


def by_id(found: Any, check_id: str) -> Any:
    """The one result with ``check_id``, from a report (``.results``) or a list of results.

    Fails naming the ids that are there, rather than a bare ``StopIteration``.
    """
    results: Iterable[Any] = getattr(found, "results", found)
    results = list(results)
    for result in results:
        if result.id == check_id:
            return result
    raise AssertionError(f"no {check_id} in {[r.id for r in results]}")


def wait_for(predicate: Callable[[], T], timeout: float, *, interval: float = 0.05, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; return that.

    For waiting on a condition instead of sleeping a guessed time. Fails after
    ``timeout`` seconds naming ``what`` was awaited (and the last value seen).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or 'the condition'} did not hold within {timeout} s (last: {value!r})")
        time.sleep(interval)


def on_ci() -> bool:
    """True where CI says so (``CI=true``, as GitHub Actions, GitLab and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def missing(reason: str) -> NoReturn:
    """A part the test needs is missing: fail under CI (it must be there), skip with the reason elsewhere."""
    if on_ci():
        pytest.fail(f"{reason} (CI is set: a missing part fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def python_for(version: str) -> Path | None:
    """An interpreter of Python ``version`` ("3.12" or "3.12.1"): pyenv's folder, then ``pythonX.Y`` on PATH."""
    from tests.ray_cluster import find_python

    return find_python(version)


@functools.cache
def pyenv_python(version: str) -> Path | None:
    """pyenv's interpreter of ``version`` ("3.12" or "3.12.1"), for tests that judge pyenv's layout itself."""
    from tests.ray_cluster import find_pyenv_python

    return find_pyenv_python(version)


def pyenv_versions() -> Path:
    """pyenv's versions folder (``$PYENV_ROOT/versions``, else ``~/.pyenv/versions``), whether or not it exists."""
    from tests.ray_cluster import pyenv_versions as versions

    return versions()


def why_no_python(version: str, *, pyenv_only: bool = False) -> str:
    """What is missing, for a skip reason: where it was looked for and how to get one."""
    minor = ".".join(version.split(".")[:2])
    folder = pyenv_versions() / (version if version.count(".") == 2 else f"{version}.*")
    where = f"none in {folder}" + ("" if pyenv_only else f", no python{minor} of that version on PATH")
    how = f"`pyenv install {version}`" + ("" if pyenv_only else f", or `uv python install {version}` put on PATH")
    whose = "pyenv's" if pyenv_only else "a"
    return f"needs {whose} Python {version}: {where} (install it: {how})"


def version_of(python: Path) -> str:
    """The full version (``3.12.1``) an interpreter reports of itself."""
    out = subprocess.run(
        [str(python), "-I", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


# -- raydoctor fix in a subprocess, with the fake conda ------------------------------------------

FAKE_CONDA = Path(__file__).parent / "fake_conda" / "conda"
FIX_IMAGE = "rayproject/ray:2.49.2-py312-cpu"  # asks for Python 3.12.9 (doctor/head/image_tag.py::KNOWN_PATCHES)
FIX_ENV_NAME = "ray2.49.2-py3.12.9"
REAL_HOME = Path(os.environ.get("HOME") or Path.home())  # before clean_env points HOME elsewhere


def tool_env(clean_env: dict[str, str]) -> dict[str, str]:
    """clean_env with the real caches (warm) and pyenv's folder, so installs take seconds."""
    env = dict(clean_env)
    env.setdefault("PYENV_ROOT", os.environ.get("PYENV_ROOT") or str(REAL_HOME / ".pyenv"))
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR", str(REAL_HOME / ".cache" / "uv"))
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR", str(REAL_HOME / ".cache" / "pip"))
    env["VIRTUALENV_OVERRIDE_APP_DATA"] = str(REAL_HOME / ".local" / "share" / "virtualenv")
    env.pop("CONDA_EXE", None)
    env.pop("MAMBA_EXE", None)
    return env


def raydoctor_cli(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``raydoctor ARGS`` in a subprocess (this interpreter's ``-m doctor``), no stdin, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "doctor", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fix_cli(
    args: list[str], cwd: Path, env: dict[str, str], *, image: str | None = FIX_IMAGE, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``raydoctor fix [--image IMAGE] --yes ARGS`` in a subprocess, output captured."""
    target = ["--image", image] if image else []
    return raydoctor_cli(["fix", *target, "--yes", *args], cwd, env, timeout)


def conda_envs(tmp_path: Path) -> list[str]:
    """The envs the fake conda (rooted at ``tmp_path/conda``) holds."""
    folder = tmp_path / "conda" / "envs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def envs_listing(tmp_path: Path) -> list[str]:
    """What is in ``tmp_path/envs``, fix's default env folder there."""
    folder = tmp_path / "envs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# -- the token-auth head (fixtures token_python / token_head in conftest.py) ---------------------
# The newest Ray on PyPI when this was written (2.52 introduced token auth); its wheels need Python >= 3.10.
TOKEN_RAY = os.environ.get("RAYDOCTOR_TEST_TOKEN_RAY", "2.60.0")
TOKEN_PYTHON = os.environ.get("RAYDOCTOR_TEST_TOKEN_PYTHON", "3.13")
TOKEN = "rdt-" + secrets.token_hex(20)  # the token the shared token head runs with


# -- a Python in python-build-standalone's install-only layout, for uv (tests and benchmarks) ------


def _skip_in_pack(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = info.name.split("/")
    if "__pycache__" in parts or parts[2:4] == ["python3.12", "test"]:  # python/lib/python3.12/test: 130 MB of tests
        return None
    return info


def pack_install_only(python: Path, folder: Path) -> tuple[Path, str, str]:
    """(tarball, version, sha256): ``python``'s prefix packed as an install-only tarball (top folder ``python/``)."""
    version = version_of(python)
    prefix = python.parent.parent
    tarball = folder / f"cpython-{version}-x86_64-unknown-linux-gnu-install_only.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        for name in ("bin", "lib", "include"):
            if (prefix / name).exists():
                tar.add(prefix / name, arcname=f"python/{name}", filter=_skip_in_pack)
    return tarball, version, hashlib.sha256(tarball.read_bytes()).hexdigest()


def downloads_listing(folder: Path, version: str, url: str, sha256: str) -> Path:
    """uv's custom downloads list (``UV_PYTHON_DOWNLOADS_JSON_URL``) with one CPython for linux-x86_64-gnu."""
    major, minor, patch = (int(x) for x in version.split("."))
    entry = {
        "name": "cpython",
        "arch": {"family": "x86_64", "variant": None},
        "os": "linux",
        "libc": "gnu",
        "major": major,
        "minor": minor,
        "patch": patch,
        "prerelease": "",
        "url": url,
        "sha256": sha256,
        "variant": None,
        "build": "20240107",
    }
    path = folder / "downloads.json"
    path.write_text(json.dumps({f"cpython-{version}-linux-x86_64-gnu": entry}))
    return path


def lint_cluster_file_results(folder: Path, text: str) -> list[Any]:
    """The lint findings of a cluster file (compose or Kubernetes) written to ``folder``: one framework for both."""
    from doctor.checks.lint import lint_cluster, lint_compose
    from doctor.head.cluster_files import load_cluster_file

    folder.mkdir()
    path = folder / "cluster.yaml"
    path.write_text(text)
    spec = load_cluster_file(path, environ={})
    if spec.compose is not None:
        return lint_compose(spec.compose, routes=list, cpu_count=8)
    return lint_cluster(spec)


def parse_cli(argv: list[str], cwd: Path, environ: dict[str, str]) -> tuple[Any, Any]:
    """What the CLI does with argv: parse, note the given flags, then options_from with the settings file."""
    import importlib

    from doctor.cli import COMMANDS, build_parser, hoist_options
    from doctor.commands.common import options_from
    from doctor.settings import record_given

    parser = build_parser({n: importlib.import_module(f"doctor.commands.{n}") for n in COMMANDS})
    argv = hoist_options(argv, parser)
    args = parser.parse_args(argv)
    record_given(args, parser, argv)
    return options_from(args, environ=environ, cwd=cwd), args


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes, this one aside, whose command line contains ``text`` (a zombie's is empty)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def path_without(path: str, tools: Iterable[str], folder: Path) -> str:
    """``path`` with ``tools`` made absent: each folder on it that holds one of them is replaced by a
    folder of links to everything else it holds. For tests that mean "no such tool here", whatever
    this machine has installed (a real ``docker-compose`` in /usr/bin, say)."""
    names = set(tools)
    out: list[str] = []
    for i, entry in enumerate(path.split(os.pathsep)):
        try:
            held = set(os.listdir(entry)) if entry else set()
        except OSError:
            out.append(entry)
            continue
        if not held & names:
            out.append(entry)
            continue
        copy = folder / f"path-{i}"
        copy.mkdir(parents=True, exist_ok=True)
        for name in held - names:
            link = copy / name
            if not link.exists() and not link.is_symlink():
                link.symlink_to(os.path.join(entry, name))
        out.append(str(copy))
    return os.pathsep.join(out)
