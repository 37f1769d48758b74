"""The tools raydoctor runs (uv, pip, Python) ignore the folder raydoctor was started from (issue 20, 7-8).

Each test plants what a cloned repository (or another user of a shared temp folder) could plant: a
``uv.toml`` naming its own Python downloads list or package index, a ``pip/__main__.py``. The real uv
and the real pip run; fake indexes on 127.0.0.1 record every request, planted code writes a marker.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from doctor import proc
from doctor.facts.resolution import Inputs, cache_key, resolve
from doctor.fix.export import frozen_packages
from doctor.fix.install import PipInstaller, find_uv
from doctor.fix.uv_python import lookup
from doctor.fix.venv import create_venv, discard_venv
from doctor.local.requirements import load_requirements
from doctor.versions import VersionSpec
from tests.fake_servers import FakeHTTP
from tests.helpers import downloads_listing

UV = find_uv()
pytestmark = [
    pytest.mark.needs(uv=True),
    pytest.mark.skipif(os.name == "nt", reason="POSIX folders and permissions"),
]
UNKNOWN = "3.12.77"  # a CPython uv's own list does not have: only a planted list can offer it


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The user's environment with no uv settings of this machine, and a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "XDG_CONFIG"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons")})
    return env


def plant_downloads_list(folder: Path, version: str = UNKNOWN) -> str:
    """A ``python-downloads-json-url`` listing a "CPython" tarball of the folder's own; returns its URL."""
    tarball = folder / "evil-cpython.tar.gz"
    tarball.write_bytes(b"not a python")
    listing = downloads_listing(folder, version, tarball.as_uri(), "0" * 64)
    return str(listing)


# -- 7: uv never reads a repo's or a shared folder's uv.toml ----------------------------------------


@pytest.mark.parametrize("config", ["uv.toml", "pyproject.toml"])
def test_repo_uv_toml_cannot_offer_its_own_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> None:
    """Item 7: a repo's ``python-downloads-json-url`` made uv offer (and fix install) the repo's tarball."""
    repo = tmp_path / "repo"
    repo.mkdir()
    setting = f"python-downloads-json-url = {json.dumps(plant_downloads_list(repo))}\n"
    header = '[project]\nname = "x"\nversion = "0"\n[tool.uv]\n' if config == "pyproject.toml" else ""
    (repo / config).write_text(header + setting)
    monkeypatch.chdir(repo)
    found = lookup(VersionSpec.parse(UNKNOWN), environ=clean_env(tmp_path), uv=UV, cwd=repo)
    assert found.python is None, f"uv offered {found.python} from the repo's own list"
    assert found.reason == f"uv does not know Python {UNKNOWN}"


def test_users_own_uv_toml_still_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's ``~/.config/uv/uv.toml`` is the user's choice: kept while folder discovery is off."""
    env = clean_env(tmp_path)
    config = Path(env["HOME"]) / ".config" / "uv"
    config.mkdir(parents=True)
    url = plant_downloads_list(config)  # the user's own list this time
    (config / "uv.toml").write_text(f"python-downloads-json-url = {json.dumps(url)}\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    found = lookup(VersionSpec.parse(UNKNOWN), environ=env, uv=UV, cwd=repo)
    assert found.python is not None and found.python.url == (config / "evil-cpython.tar.gz").as_uri()


def test_repo_index_url_is_not_asked_by_uv_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 7: a repo's ``index-url`` sent ``uv venv --seed`` (and the install) to the repo's index."""
    with FakeHTTP() as index:
        repo = tmp_path / "repo"
        repo.mkdir()
        (repo / "uv.toml").write_text(f'index-url = "{index.url}/simple"\n')
        (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\nrequires-python = ">=3.99"\n')
        monkeypatch.chdir(repo)
        monkeypatch.delenv("UV_INDEX_URL", raising=False)
        monkeypatch.delenv("UV_DEFAULT_INDEX", raising=False)
        made = create_venv(Path(sys.executable), tmp_path / "envs" / "e", installer="uv")
        try:
            assert index.requests == [], f"uv asked the repo's index: {index.requests[:3]}"
            assert (made / "bin" / "python").exists() and list(made.glob("lib/python*/site-packages/pip"))
        finally:
            discard_venv(made)


def test_shared_uv_toml_above_the_folder_does_not_reach_the_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 7: a ``uv.toml`` in a shared temp folder above uv's working folder steered the resolution.

    The shared folder is ``TMPDIR`` here and raydoctor's own state folder lies under it too, so only
    uv's configuration discovery being off keeps the planted file out.
    """
    shared = tmp_path / "shared"
    shared.mkdir()
    with FakeHTTP() as user_index, FakeHTTP() as planted_index:
        (shared / "uv.toml").write_text(f'extra-index-url = ["{planted_index.url}/simple"]\n')
        monkeypatch.setattr(tempfile, "tempdir", str(shared))
        monkeypatch.setenv("RAYDOCTOR_STATE_DIR", str(shared / "state"))
        reqs_file = tmp_path / "packages.txt"
        reqs_file.write_text("six==1.16.0\n")
        env = clean_env(tmp_path)
        env.update({"UV_INDEX_URL": f"{user_index.url}/simple", "UV_NO_CACHE": "1"})
        res = resolve(
            load_requirements(reqs_file), python="3.12.9", ray=None, uv=UV, environ=env, cache_dir=tmp_path / "c"
        )
        assert planted_index.requests == [], f"uv asked the planted index: {planted_index.requests[:3]}"
        assert any("/simple/six" in path for _, path in user_index.requests)  # the user's index was asked
        assert res.skipped is None and [u.name for u in res.unmet] == ["six"]  # the user's index has no six


def test_what_uv_is_configured_with_is_part_of_the_cache_key(tmp_path: Path) -> None:
    """Item 7: the resolution's answer was cached for a day whatever uv was configured with."""
    env = clean_env(tmp_path)
    inputs = Inputs(requirements=["six"])

    def key(e: dict[str, str]) -> str:
        return cache_key(inputs, "3.12.9", "x86_64", Path(str(UV)), e)

    plain = key(env)
    config = Path(env["HOME"]) / ".config" / "uv"
    config.mkdir(parents=True)
    (config / "uv.toml").write_text('exclude-newer = "2001-01-01T00:00:00Z"\n')
    with_file = key(env)
    (config / "uv.toml").write_text('exclude-newer = "2002-01-01T00:00:00Z"\n')
    edited = key(env)
    with_var = key({**env, "UV_EXCLUDE_NEWER": "2003-01-01T00:00:00Z"})
    assert len({plain, with_file, edited, with_var}) == 4
    assert key(env) == edited  # the same configuration, the same key


# -- 8: python -m pip never imports the repo's pip ------------------------------------------------


def plant_pip(repo: Path, marker: Path) -> None:
    (repo / "pip").mkdir(parents=True)
    (repo / "pip" / "__init__.py").write_text("")
    (repo / "pip" / "__main__.py").write_text(f"open({str(marker)!r}, 'a').write('planted pip ran\\n')\n")


def test_export_freeze_runs_the_envs_pip_not_the_repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 8: ``fix --export`` ran ``python -m pip freeze`` with the repo as cwd: the repo's pip ran."""
    marker = tmp_path / "planted-code-ran"
    repo = tmp_path / "repo"
    plant_pip(repo, marker)
    monkeypatch.chdir(repo)
    packages = frozen_packages(Path(sys.executable))
    assert not marker.exists(), marker.read_text()
    assert any(line.lower().startswith("pytest==") for line in packages)  # the real pip's freeze


def test_pip_installer_runs_the_envs_pip_not_the_repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 8: ``fix`` with ``installer = "pip"`` ran the repo's ``pip/__main__.py`` (and showed ✓)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    marker = tmp_path / "planted-code-ran"
    repo = tmp_path / "repo"
    plant_pip(repo, marker)
    monkeypatch.chdir(repo)
    lines: list[str] = []
    PipInstaller().install(venv / "bin" / "python", [], [], ["pip"], verbose=True, on_output=lines.append)
    assert not marker.exists(), marker.read_text()
    assert any("Requirement already satisfied: pip" in line for line in lines), lines[-5:]


# -- where children start -------------------------------------------------------------------------


def test_children_start_in_a_private_empty_folder_never_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "planted").write_text("x")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("RAYDOCTOR_STATE_DIR", str(tmp_path / "state"))
    show = "import os, stat; s = os.stat('.'); print(os.getcwd(), oct(stat.S_IMODE(os.stat('..').st_mode)), os.listdir('.'))"
    done = proc.run(proc.isolated_python(sys.executable, "-c", show), timeout=30)
    cwd, parent_mode, listing = done.stdout.split(maxsplit=2)
    assert Path(cwd).parent == (tmp_path / "state" / "run").resolve() and parent_mode == "0o700"
    assert listing.strip() == "[]" and not Path(cwd).exists()  # empty, and removed afterwards
    rc, lines = proc.stream([sys.executable, "-I", "-c", "import os; print(os.getcwd())"], timeout=30)
    assert rc == 0 and Path(lines[-1]).parent == (tmp_path / "state" / "run").resolve()


def test_virtualenv_and_the_pythons_it_starts_run_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``installer = "pip"`` builds with virtualenv, which starts the chosen Python itself: from the checkout."""
    log = tmp_path / "cwds"
    wrapper = tmp_path / "bin" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\npwd >> "{log}"\nexec "{os.path.realpath(sys.executable)}" "$@"\n')
    wrapper.chmod(0o755)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    made = create_venv(wrapper, tmp_path / "envs" / "e", installer="pip")
    try:
        assert (made / "bin" / "python").exists()
        cwds = log.read_text().split()
        assert cwds and str(repo) not in cwds and all("/run/cwd-" in c for c in cwds), cwds
    finally:
        discard_venv(made)


def test_a_state_folder_others_can_write_above_is_not_used_for_childrens_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by anyone, no sticky bit: another user could swap what is below
    monkeypatch.setenv("RAYDOCTOR_STATE_DIR", str(shared / "state"))
    root = proc.private_root()
    assert shared not in root.parents and stat.S_IMODE(root.stat().st_mode) == 0o700
    with proc.private_cwd() as folder:
        assert folder.parent == root and list(folder.iterdir()) == []
