"""fix gets the head's exact Python from uv's managed Pythons: offline, through the real uv.

An interpreter of this machine (found like ``tests/ray_cluster.find_python``) is packed in
python-build-standalone's install-only layout (a .tar.gz whose top folder is ``python/``)
and listed in a custom downloads JSON (``UV_PYTHON_DOWNLOADS_JSON_URL``, a file:// ``url``
and its ``sha256``), with ``UV_PYTHON_INSTALL_DIR`` under tmp_path; uv installs it as it
would a download. uv does not check the version inside a download, so the entry names the
interpreter's real version and discovery is kept away from the other copies of it
(``search_dirs=[]``, or a PATH and PYENV_ROOT without them for the CLI).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.errors import FixError
from doctor.fix.execute import Outcome, build
from doctor.fix.plan import Checked, FixOptions, make_plan
from doctor.fix.progress import Steps
from doctor.fix.providers import UvProvider
from doctor.fix.uv_python import UvPython, lookup, one_line_error
from doctor.fix.venv import read_marker, venv_python
from doctor.head.facts import HeadFacts
from doctor.local.interpreter import LocalFacts
from doctor.model import Fact
from doctor.options import TargetOptions
from doctor.versions import VersionSpec
from tests.helpers import FAKE_CONDA, downloads_listing, pack_install_only, version_of
from tests.ray_cluster import RAY_VERSION, find_python

REAL_HOME = Path.home()
PYTHON = find_python("3.12")
pytestmark = pytest.mark.skipif(PYTHON is None, reason="needs a Python 3.12 on this machine to pack")


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(tarball, version, sha256): this machine's 3.12 in install-only layout, packed once per session."""
    assert PYTHON is not None
    return pack_install_only(PYTHON, tmp_path_factory.mktemp("pbs"))


downloads = downloads_listing


def uv_environ(tmp_path: Path, listing: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "RAY_", "VIRTUAL_ENV", "CONDA"))}
    (tmp_path / "home").mkdir(exist_ok=True)
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "UV_PYTHON_INSTALL_DIR": str(tmp_path / "uv-pythons"),
            "UV_PYTHON_DOWNLOADS_JSON_URL": str(listing),
            "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(REAL_HOME / ".cache" / "uv")),  # warm wheels
            "PYENV_ROOT": str(tmp_path / "no-pyenv"),
            "PATH": os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir()),
            "NO_COLOR": "1",
        }
    )
    return env


def checked(version: str) -> Checked:
    """What check would judge against a head running Ray RAY_VERSION on Python ``version`` (no cluster needed)."""
    local = LocalFacts("/usr/bin/python3", "3.11.7", "CPython", "x86_64", "Linux", "/p", "/p", "python3 on PATH", {})
    head = HeadFacts(
        ray=Fact(RAY_VERSION, "running cluster", True),
        python=Fact(version, "running cluster", True),
        sources_tried=("dashboard",),
    )
    return Checked(head, local, interpreter="/usr/bin/python3", chosen_by="python3 on PATH", target={"kind": "address"})


def fix_options(tmp_path: Path, source: str = "uv", **kw) -> FixOptions:
    return FixOptions(
        target=TargetOptions(address="127.0.0.1:1"),
        env_dir=tmp_path / "envs",
        installer="uv",
        use_conda=False,
        search_dirs=[],
        python_source=source,
        yes=True,
        **kw,
    )


def run_build(
    tmp_path: Path, env: dict[str, str], version: str, source: str = "uv"
) -> tuple[Outcome, Exception | None]:
    (tmp_path / "work").mkdir(exist_ok=True)
    options = fix_options(tmp_path, source)
    plan = make_plan(options, checked(version), environ=env, cwd=tmp_path / "work")
    outcome = Outcome(tmp_path / "work")
    try:
        build(plan, options, Steps(), outcome, env)
    except FixError as exc:
        return outcome, exc
    return outcome, None


def managed(env: dict[str, str]) -> list[str]:
    folder = Path(env["UV_PYTHON_INSTALL_DIR"])
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- the plan ------------------------------------------------------------------------


def test_the_plan_names_uv_its_download_and_why_without_installing(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    plan = make_plan(fix_options(tmp_path, "auto"), checked(version), environ=env, cwd=tmp_path)
    ip = plan.interpreter
    assert ip is not None and ip.how == "uv" and ip.exact
    assert ip.downloads == tarball.as_uri()
    assert f"no Python {version} on this machine" in ip.why and f"cpython-{version}-linux-x86_64-gnu" in ip.why
    text = ip.describe()
    assert f"uv python install cpython-{version}-linux-x86_64-gnu --no-bin" in text and tarball.as_uri() in text
    doc = plan.to_dict()["interpreter"]
    assert doc["uv"]["key"] == f"cpython-{version}-linux-x86_64-gnu" and doc["uv"]["installed"] is False
    assert doc["uv"]["install_dir"] == env["UV_PYTHON_INSTALL_DIR"]
    assert plan.env_name == f"ray{RAY_VERSION}-py{version}"
    assert not Path(env["UV_PYTHON_INSTALL_DIR"]).exists()  # planning lists; it installs nothing


def test_downloads_refused_by_uvs_own_setting_is_said_in_one_line(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    env["UV_PYTHON_DOWNLOADS"] = "never"
    with pytest.raises(FixError) as info:
        make_plan(fix_options(tmp_path, "uv"), checked(version), environ=env, cwd=tmp_path)
    assert str(info.value) == "--python-source uv: UV_PYTHON_DOWNLOADS=never forbids uv to install a Python"


def test_a_version_uv_does_not_know_is_one_line_and_leaves_nothing(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    with pytest.raises(FixError) as info:
        make_plan(fix_options(tmp_path, "uv"), checked("3.12.77"), environ=env, cwd=tmp_path)
    assert str(info.value) == "--python-source uv: uv does not know Python 3.12.77"
    assert managed(env) == [] and not (tmp_path / "envs").exists()


# -- installing, for real ------------------------------------------------------------------


def test_fix_installs_the_exact_python_through_uv_and_builds_the_env(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    outcome, error = run_build(tmp_path, env, version)
    assert error is None
    key = f"cpython-{version}-linux-x86_64-gnu"
    assert key in managed(env)
    dest = tmp_path / "envs" / f"ray{RAY_VERSION}-py{version}"
    assert outcome.env == dest and venv_python(dest).exists()
    marker = read_marker(dest) or {}
    assert marker["interpreter_version"] == version and marker["interpreter_source"] == "uv (installed by this run)"
    assert marker["interpreter"].startswith(env["UV_PYTHON_INSTALL_DIR"] + f"/{key}/")  # the key, not the minor link
    ran = subprocess.run(
        [str(venv_python(dest)), "-c", "import platform, ray; print(platform.python_version(), ray.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.stdout.split() == [version, RAY_VERSION], ran.stderr
    assert outcome.uv_python is not None and outcome.uv_python["created"] is True
    assert not (tmp_path / "home" / ".local" / "bin").exists()  # --no-bin: nothing in ~/.local/bin
    # A second fix finds the managed Python installed: used as is, reported so in the plan.
    plan = make_plan(fix_options(tmp_path, "uv", rebuild=True), checked(version), environ=env, cwd=tmp_path)
    assert plan.interpreter is not None and plan.interpreter.downloads is None
    assert "already installed" in plan.interpreter.describe()


@pytest.mark.parametrize("fault", ["checksum", "missing file", "refused port"])
def test_a_failed_download_is_one_line_and_leaves_nothing(tmp_path: Path, packed, fault: str) -> None:
    tarball, version, sha = packed
    url, digest = tarball.as_uri(), sha
    if fault == "checksum":
        digest = "0" * 64
    elif fault == "missing file":
        url = (tmp_path / "gone.tar.gz").as_uri()
    else:
        with socket.socket() as s:  # a loopback port nobody listens on: connection refused
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/python.tar.gz"
    env = uv_environ(tmp_path, downloads(tmp_path, version, url, digest))
    env["UV_HTTP_RETRIES"] = "0"  # uv's own setting: the refused port fails at once
    outcome, error = run_build(tmp_path, env, version)
    assert error is not None
    message = str(error)
    assert "\n" not in message and message.startswith(f"uv could not install Python {version}: ")
    expected = {"checksum": "Hash mismatch", "missing file": "No such file", "refused port": "Connection refused"}
    assert expected[fault] in message
    assert managed(env) == []  # uv's fresh folder, its .lock and .gitignore went too
    assert not (tmp_path / "envs").exists() and outcome.env is None


def test_a_failure_after_the_install_uninstalls_exactly_that_key(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "packages.txt").write_text("raydoctor-no-such-package-3141==1\n")
    options = fix_options(tmp_path, "uv")
    plan = make_plan(options, checked(version), environ=env, cwd=tmp_path / "work")
    outcome = Outcome(tmp_path / "work")
    with pytest.raises(FixError) as info:
        build(plan, options, Steps(), outcome, env)
    assert "raydoctor-no-such-package-3141" in str(info.value)
    assert managed(env) == []
    assert any(f"uv's managed Python cpython-{version}-linux-x86_64-gnu" in r for r in outcome.removed)
    assert not (tmp_path / "work" / "envs").exists() and not (tmp_path / "envs").exists()


def test_a_python_already_in_the_uv_folder_is_never_removed(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    uv = lookup(VersionSpec.parse(version), environ=env)
    assert uv.uv is not None and uv.python is not None
    first = UvProvider(uv.uv, VersionSpec.parse(version), uv.python, environ=env, cwd=tmp_path)
    first.provide()  # there before the fix below
    before = managed(env)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "packages.txt").write_text("raydoctor-no-such-package-3141==1\n")
    options = fix_options(tmp_path, "uv")
    plan = make_plan(options, checked(version), environ=env, cwd=tmp_path / "work")
    assert plan.interpreter is not None and "already installed" in plan.interpreter.describe()
    outcome = Outcome(tmp_path / "work")
    with pytest.raises(FixError):
        build(plan, options, Steps(), outcome, env)
    assert managed(env) == before and f"cpython-{version}-linux-x86_64-gnu" in before
    assert not any("managed Python" in r for r in outcome.removed)


def test_a_download_holding_another_patch_is_refused_and_removed(tmp_path: Path, packed) -> None:
    """uv does not look inside: an entry that says 3.12.99 for a file holding another patch is caught here."""
    tarball, version, sha = packed
    listing = downloads(tmp_path, version, tarball.as_uri(), sha)
    data = json.loads(listing.read_text())
    (entry,) = data.values()
    entry["patch"] = 99
    listing.write_text(json.dumps({"cpython-3.12.99-linux-x86_64-gnu": entry}))
    env = uv_environ(tmp_path, listing)
    outcome, error = run_build(tmp_path, env, "3.12.99")
    assert error is not None and f"holds Python {version}, not 3.12.99" in str(error)
    assert managed(env) == [] and not (tmp_path / "envs").exists()


def test_auto_falls_back_to_the_closest_patch_with_the_warning_when_uv_fails(tmp_path: Path, packed) -> None:
    assert PYTHON is not None
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, "3.12.99", (tmp_path / "gone.tgz").as_uri(), sha))
    options = fix_options(tmp_path, "auto")
    options.search_dirs = [PYTHON.parent.parent.parent]  # the local 3.12 is here, but not 3.12.99
    plan = make_plan(options, checked("3.12.99"), environ=env, cwd=tmp_path)
    assert plan.interpreter is not None and plan.interpreter.how == "uv" and plan.interpreter.fallback
    outcome = Outcome(tmp_path)
    build(plan, options, Steps(), outcome, env)
    assert outcome.env == tmp_path / "envs" / f"ray{RAY_VERSION}-py{version}"  # named after what it really has
    assert any("uv could not provide Python 3.12.99" in w for w in outcome.warnings)
    assert any("needs exactly Python 3.12.99" in w for w in outcome.warnings)  # the patch rule
    assert managed(env) == []


def refused_url() -> str:
    with socket.socket() as s:  # a loopback port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/python.tar.gz"


def with_fake_conda(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The fake conda (tests/fake_conda), whose channel holds this machine's PYTHON."""
    assert PYTHON is not None
    return {
        **env,
        "CONDA_EXE": str(FAKE_CONDA),
        "FAKE_CONDA_ROOT": str(tmp_path / "conda"),
        "FAKE_CONDA_PYTHONS": str(PYTHON),
    }


def test_uv_failing_to_download_goes_on_to_conda_and_the_plan_says_so(tmp_path: Path, packed) -> None:
    """Issue 18: uv's download unreachable (a refused port, as offline), conda here: fix used to stop at
    "uv could not install Python"; the plan names conda as what follows, and the env is built from it."""
    tarball, version, sha = packed
    env = with_fake_conda(uv_environ(tmp_path, downloads(tmp_path, version, refused_url(), sha)), tmp_path)
    env["UV_HTTP_RETRIES"] = "0"
    (tmp_path / "work").mkdir()
    options = fix_options(tmp_path, "auto")
    options.use_conda = True
    plan = make_plan(options, checked(version), environ=env, cwd=tmp_path / "work")
    ip = plan.interpreter
    assert ip is not None and ip.how == "uv" and ip.conda_env == f"raydoctor-ray{RAY_VERSION}-py{version}"
    assert f"if uv fails: conda env raydoctor-ray{RAY_VERSION}-py{version} with python={version}" in ip.describe()
    outcome = Outcome(tmp_path / "work")
    build(plan, options, Steps(), outcome, env)
    assert outcome.env is not None and outcome.env.exists()
    marker = read_marker(outcome.env)
    assert marker is not None and str(tmp_path / "conda" / "envs") in marker["interpreter"], marker
    assert any(f"uv could not provide Python {version}" in w and "Connection refused" in w for w in outcome.warnings)
    assert managed(env) == []  # uv's fresh folder went with its failed install


def test_uv_failing_with_nothing_left_names_the_way_out(tmp_path: Path, packed) -> None:
    tarball, version, sha = packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, refused_url(), sha))
    env["UV_HTTP_RETRIES"] = "0"
    # --python-source uv with conda here: the one line names --python-source conda.
    outcome, error = run_build(tmp_path, with_fake_conda(env, tmp_path), version, "uv")
    assert error is not None and "\n" not in str(error)
    assert str(error).startswith(f"uv could not install Python {version}: ") and "Connection refused" in str(error)
    assert "--python-source conda" in str(error), str(error)
    # auto, no conda, no other patch: what is left (installing the Python, conda, a mirror).
    outcome, error = run_build(tmp_path, env, version, "auto")
    assert error is not None and "--python-source conda" in str(error) and "UV_PYTHON_INSTALL_MIRROR" in str(error)
    assert not (tmp_path / "envs").exists() and outcome.env is None


def test_uv_errors_become_one_line() -> None:
    lines = [
        "error: Failed to install cpython-3.12.1-linux-x86_64-gnu",
        "  cause: Request failed after 3 retries",
        "  cause: Connection refused (os error 111)",
    ]
    assert (
        one_line_error(lines, "x")
        == "Failed to install cpython-3.12.1-linux-x86_64-gnu: Connection refused (os error 111)"
    )
    assert one_line_error([], "exit 2") == "exit 2"
    # uv wraps at COLUMNS (as a terminal or pytest-xdist exports it): the cause is read whole, not cut.
    wrapped = [
        "error: Failed to install cpython-3.12.1-linux-x86_64-gnu",
        "  cause: failed to query metadata of file",
        "         `/tmp/a/gone.tar.gz`:",
        "         No such file or directory (os error 2)",
    ]
    assert one_line_error(wrapped, "x") == (
        "Failed to install cpython-3.12.1-linux-x86_64-gnu: failed to query metadata of file "
        "`/tmp/a/gone.tar.gz`: No such file or directory (os error 2)"
    )
    assert not UvPython("k", "3.12.1", None, "file:///x").installed


# -- the command ---------------------------------------------------------------------------


@pytest.mark.cluster
def test_cli_fix_python_source_uv_against_a_live_head(tmp_path: Path, packed, ray_head) -> None:
    """raydoctor fix --python-source uv --yes: uv installs the head's Python offline, the round trip proves it."""
    tarball, version, sha = packed
    head_version = version_of(ray_head.python)
    assert head_version == version  # the head runs the interpreter that was packed
    env = uv_environ(tmp_path, downloads(tmp_path, version, tarball.as_uri(), sha))
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "fix", "--address", ray_head.dashboard_url]
        + [
            "--client-port",
            str(ray_head.ports["client"]),
            "--gcs-port",
            str(ray_head.ports["gcs"]),
            "--python-source",
            "uv",
            "--yes",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, (doc.get("error"), proc.stderr[-2000:])
    assert doc["plan"]["interpreter"]["how"] == "uv"
    assert [s["name"] for s in doc["steps"]][:1] == ["uv-python"]
    assert doc["outcome"]["env"]["uv_python"]["created"] is True
    assert f"cpython-{version}-linux-x86_64-gnu" in managed(env)
