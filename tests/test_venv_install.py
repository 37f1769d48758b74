"""doctor.fix.venv and doctor.fix.install with the real virtualenv, pip and uv.

Needs the pyenv 3.12.1 interpreter, virtualenv and uv installed, and PyPI
(or the uv cache) for ``six``. The Ctrl-C and timeout tests point the
installer at a local "index" that accepts connections and never answers,
so the install is certainly in flight when it is interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from doctor.errors import FixError, UsageError
from doctor.fix.install import (
    InstallError,
    PipInstaller,
    UvInstaller,
    choose_installer,
    describe_failure,
    ray_client_requirement,
    ray_constraint,
)
from doctor.fix.venv import (
    MARKER,
    EnvLock,
    commit_venv,
    create_venv,
    discard_venv,
    env_dir_name,
    env_matches,
    read_marker,
    remove_stale_temps,
    requirements_hash,
    temp_path,
    trusted_marker,
    venv_python,
    write_marker,
)
from tests.helpers import processes_mentioning, python_for, wait_for

PY312 = python_for("3.12.1")
ROOT = Path(__file__).resolve().parent.parent
MISSING = "raydoctor-no-such-package-zz9"
pytestmark = pytest.mark.needs(python="3.12.1", uv=True)


@pytest.fixture
def envs(tmp_path: Path) -> Path:
    folder = tmp_path / "envs"
    folder.mkdir()
    return folder


def reqs(tmp_path: Path, text: str, name: str = "packages.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def build(dest: Path, installer: str, requirements: list[Path], constraints: list[str]) -> None:
    """What fix does around these APIs: lock, build in the sibling, mark, commit; clean up on failure."""
    with EnvLock(dest):
        tmp = create_venv(PY312, dest, installer=installer)
        try:
            choose_installer(installer).install(venv_python(tmp), requirements, constraints, [], verbose=False)
            write_marker(
                tmp, ray_version="2.49.2", python_version="3.12.1", requirements_hash=requirements_hash(requirements)
            )
            commit_venv(tmp, dest)
        except BaseException:
            discard_venv(tmp)
            raise


def check_works_at(dest: Path) -> None:
    """pip (a console script with a shebang) and activate both point at dest after the rename."""
    pip = subprocess.run([str(dest / "bin" / "pip"), "--version"], capture_output=True, text=True, check=True)
    assert f"from {dest}/lib/python3.12/site-packages/pip" in pip.stdout
    script = (
        f'. "{dest}/bin/activate" && echo "$VIRTUAL_ENV" && command -v python'
        ' && python -c "import six; print(six.__file__)"'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(dest) and out[1] == str(dest / "bin" / "python")
    assert out[2].startswith(str(dest / "lib" / "python3.12" / "site-packages"))
    leftovers = subprocess.run(
        ["grep", "-rl", ".tmp-", str(dest / "bin"), str(dest / "pyvenv.cfg")],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert leftovers == ""


# -- real builds -----------------------------------------------------------------


def test_uv_build_commit_and_rerun_match(tmp_path: Path, envs: Path) -> None:
    req = reqs(tmp_path, "six\n")
    dest = envs / env_dir_name("2.49.2", "3.12.1")
    assert dest.name == "ray2.49.2-py3.12.1"
    build(dest, "uv", [req], ["six==1.16.0"])
    assert sorted(p.name for p in envs.iterdir()) == [dest.name]  # no temp folder, no lock file
    check_works_at(dest)
    version = subprocess.run(
        [str(venv_python(dest)), "-c", "import six; print(six.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version == "1.16.0"
    marker = read_marker(dest)
    assert marker is not None and marker["created_by"] == "raydoctor" and marker["ray_version"] == "2.49.2"
    sealed = trusted_marker(dest)  # sealed for the final path after the rename, not for the temporary one
    assert sealed is not None and sealed.data["env"]["path"] == str(dest)
    assert env_matches(dest, ray_version="2.49.2", python_version="3.12.1", requirements_hash=requirements_hash([req]))
    req.write_text("six\nidna\n")
    assert not env_matches(
        dest, ray_version="2.49.2", python_version="3.12.1", requirements_hash=requirements_hash([req])
    )


def test_virtualenv_and_pip_with_an_overridden_pin(tmp_path: Path, envs: Path) -> None:
    """pip is the point here: a file pinning another version is overridden, and not edited."""
    req = reqs(tmp_path, "six==1.16.0  # pinned by the tutorial\n")
    before = req.read_bytes()
    dest = envs / "pip-env"
    build(dest, "pip", [req], ["six==1.17.0"])
    check_works_at(dest)
    version = subprocess.run(
        [str(venv_python(dest)), "-c", "import six; print(six.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version == "1.17.0" and req.read_bytes() == before
    # virtualenv writes the temporary path into pyvenv.cfg ("command = ..."): rewritten, then sealed again
    assert trusted_marker(dest) is not None and ".tmp-" not in (dest / "pyvenv.cfg").read_text()


def test_uv_overrides_a_conflicting_pin_keeping_extras(tmp_path: Path, envs: Path) -> None:
    req = reqs(tmp_path, "six==1.16.0\n")
    tmp = create_venv(PY312, envs / "o", installer="uv")
    try:
        UvInstaller().install(venv_python(tmp), [req], ["six==1.17.0"], [], verbose=False)
        out = subprocess.run(
            [str(venv_python(tmp)), "-c", "import six; print(six.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "1.17.0"
    finally:
        discard_venv(tmp)
    assert list(envs.iterdir()) == []


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_missing_package_fails_naming_it_and_leaves_nothing(tmp_path: Path, envs: Path, installer: str) -> None:
    req = reqs(tmp_path, f"six\n{MISSING}\n")
    dest = envs / "broken"
    with pytest.raises(InstallError) as info:
        build(dest, installer, [req], [])
    err = info.value
    assert err.package == MISSING and MISSING in err.message and "\n" not in err.message
    assert err.message.startswith(f"{installer} could not install {MISSING}")
    assert err.details and any(MISSING in line for line in err.details)
    assert err.exit_code == 1
    assert list(envs.iterdir()) == []


def test_ctrl_c_during_install_leaves_nothing(
    tmp_path: Path, envs: Path, silent_index: tuple[str, threading.Event]
) -> None:
    url, contacted = silent_index
    req = reqs(tmp_path, "six\n")
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from doctor.fix.install import UvInstaller
        from doctor.fix.venv import EnvLock, create_venv, discard_venv, venv_python
        dest = Path({str(envs / "interrupted")!r})
        with EnvLock(dest):
            tmp = create_venv(Path({str(PY312)!r}), dest, installer="uv")
            os.environ["UV_DEFAULT_INDEX"] = os.environ["UV_INDEX_URL"] = {url!r}
            print("INSTALLING", tmp, flush=True)
            try:
                UvInstaller().install(venv_python(tmp), [Path({str(req)!r})], [], [], verbose=True)
            except BaseException as exc:
                discard_venv(tmp)
                print("CLEANED", type(exc).__name__, flush=True)
                raise
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    proc = subprocess.Popen(
        [sys.executable, str(driver)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("INSTALLING"), first + proc.stderr.read()  # type: ignore[union-attr]
        tmp = first.split()[1]
        assert contacted.wait(30), "the installer never reached the index"
        assert Path(tmp).is_dir()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "CLEANED KeyboardInterrupt" in out, err
    assert proc.returncode != 0
    assert list(envs.iterdir()) == []  # no venv, no temp folder, no lock file

    wait_for(
        lambda: processes_mentioning(tmp) == [],
        timeout=10,
        what="the installer's processes to exit (it outlived the interrupt)",
    )


def test_install_timeout(
    tmp_path: Path, envs: Path, silent_index: tuple[str, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = silent_index
    tmp = create_venv(PY312, envs / "slow", installer="uv")
    monkeypatch.setenv("UV_DEFAULT_INDEX", url)
    monkeypatch.setenv("UV_INDEX_URL", url)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    try:
        with pytest.raises(InstallError, match="uv install timed out after 1.5 s"):
            UvInstaller().install(venv_python(tmp), [], [], ["six"], verbose=False, timeout=1.5)
    finally:
        discard_venv(tmp)


def test_output_is_streamed(tmp_path: Path, envs: Path) -> None:
    lines: list[str] = []
    tmp = create_venv(PY312, envs / "s", installer="uv")
    try:
        UvInstaller().install(venv_python(tmp), [], [], ["six"], verbose=True, on_output=lines.append)
    finally:
        discard_venv(tmp)
    assert any("six" in line for line in lines)


# -- commit --------------------------------------------------------------------------


def fake_venv(path: Path, marker: bool = False) -> Path:
    path.mkdir()
    (path / "pyvenv.cfg").write_text("home = /x\n")
    if marker:
        write_marker(path, ray_version="1", python_version="3.12.1", requirements_hash="h")
    return path


def test_commit_refuses_when_dest_appeared(envs: Path) -> None:
    dest = envs / "e"
    tmp = fake_venv(temp_path(dest))
    dest.mkdir()
    (dest / "user.txt").write_text("x")
    with pytest.raises(FixError, match="appeared while this env was being built"):
        commit_venv(tmp, dest)
    with pytest.raises(FixError, match="raydoctor did not create it"):
        commit_venv(tmp, dest, replace=True)
    assert (dest / "user.txt").exists() and tmp.exists()


def test_commit_replaces_an_old_raydoctor_env(envs: Path) -> None:
    dest = fake_venv(envs / "e", marker=True)
    (dest / "old.txt").write_text("old")
    tmp = fake_venv(temp_path(dest))
    (tmp / "new.txt").write_text("new")
    commit_venv(tmp, dest, replace=True)
    assert (dest / "new.txt").exists() and not (dest / "old.txt").exists()
    assert [p.name for p in envs.iterdir()] == ["e"]


def test_discard_refuses_other_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        discard_venv(tmp_path)


def test_stale_temps_of_dead_fixes_are_removed(envs: Path) -> None:
    dest = envs / "e"
    dead = envs / ".e.tmp-999999999"
    dead.mkdir()
    alive = envs / f".e.tmp-{os.getpid()}"
    alive.mkdir()
    other = envs / ".f.tmp-999999999"
    other.mkdir()
    assert remove_stale_temps(dest) == [dead]
    assert alive.exists() and other.exists()


# -- the lock ------------------------------------------------------------------------


def test_second_lock_waits_then_refuses(envs: Path) -> None:
    dest = envs / "ray2.49.2-py3.12.9"
    with EnvLock(dest) as lock:
        assert lock.path == envs / ".ray2.49.2-py3.12.9.lock"
        start = time.monotonic()
        with pytest.raises(FixError) as info:
            EnvLock(dest, timeout=0.5).acquire()
        assert time.monotonic() - start >= 0.5
        assert f"another raydoctor fix is building {dest} (pid {os.getpid()})" in str(info.value)
    assert not lock.path.exists()
    with EnvLock(dest, timeout=0):
        pass


def test_lock_held_by_another_process(envs: Path) -> None:
    dest = envs / "e"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from doctor.fix.venv import EnvLock\n"
                f"with EnvLock(Path({str(dest)!r})):\n    print('held', flush=True); time.sleep(30)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(FixError, match=rf"pid {holder.pid}\)"):
            EnvLock(dest, timeout=0.3).acquire()
        holder.kill()  # the kernel drops a dead holder's lock: no stale lock
        holder.wait()
        with EnvLock(dest, timeout=2):
            pass
    finally:
        holder.kill()
        holder.wait()


# -- install helpers -------------------------------------------------------------------


def test_ray_constraint_warns_about_other_pins_and_edits_nothing(tmp_path: Path) -> None:
    base = reqs(tmp_path, "ray[default]==2.40.0 ; python_version >= '3.9'\n", "base.txt")
    req = reqs(tmp_path, "-r base.txt\nnumpy==1.26.4\nray>=2.0\n")
    before = (req.read_bytes(), base.read_bytes())
    constraints, warnings = ray_constraint([req], "2.49.2")
    assert constraints == ["ray==2.49.2"]
    assert warnings == [
        (
            f"{base} pins ray[default]==2.40.0 ; python_version >= '3.9'; the cluster runs 2.49.2: "
            "overriding with a constraint (the file is not edited)"
        )
    ]
    assert ray_constraint([reqs(tmp_path, "ray==2.49.2\n", "ok.txt")], "2.49.2") == (["ray==2.49.2"], [])
    assert (req.read_bytes(), base.read_bytes()) == before
    with pytest.raises(UsageError):
        ray_constraint([tmp_path / "missing.txt"], "2.49.2")


def test_pip_command_uses_a_copy_only_where_a_pin_conflicts(tmp_path: Path) -> None:
    reqs(tmp_path, "ray[default]==2.40.0\n", "base.txt")
    plain = reqs(tmp_path, "numpy\n", "plain.txt")
    req = reqs(tmp_path, "-r base.txt\n-r plain.txt\nmatplotlib\n")
    work = tmp_path / "work"
    work.mkdir()
    from doctor.fix.install import _Job, _pins  # the parsing the command line is built from

    pins = _pins(["ray==2.49.2"])
    args = PipInstaller()._command(
        _Job(Path("python"), (req, plain), None, (ray_client_requirement("2.49.2"),), pins, work, False)
    )
    copy = Path(args[args.index("-r") + 1])
    assert copy.parent == work
    text = copy.read_text()
    assert f"-r {plain.absolute()}" in text
    nested = Path(text.split("\n")[0].split(" ", 1)[1])
    assert "ray[default]==2.49.2" in nested.read_text()
    assert args[-1] == "ray[client]==2.49.2" and str(plain) in args
    overrides = UvInstaller()._command(_Job(Path("python"), (req,), None, ("ray[client]==2.49.2",), pins, work, False))
    assert (work / "overrides.txt").read_text() == "ray[client,default]==2.49.2\n"
    assert "--override" in overrides


def test_describe_failure_names_the_package() -> None:
    pip = [
        "ERROR: Could not find a version that satisfies the requirement nopkg==1.0 (from versions: none)",
        "ERROR: No matching distribution found for nopkg==1.0",
    ]
    err = describe_failure("pip", 1, pip)
    assert err.package == "nopkg" and err.message == "pip could not install nopkg==1.0: no matching distribution found"
    uv = [
        "error: No solution found when resolving dependencies",
        (
            "  cause: Because there is no version of six==99.0 and you require six==99.0, we can conclude that "
            "your requirements are unsatisfiable."
        ),
    ]
    assert describe_failure("uv", 1, uv).package == "six"
    uv_old = [
        "  × No solution found when resolving dependencies:",
        ("  ╰─▶ Because you require numpy>=9 and numpy<9, we can conclude that your requirements are unsatisfiable."),
    ]
    assert describe_failure("uv", 1, uv_old).package == "numpy"
    net = [
        "error: Failed to fetch: `https://pypi.org/simple/six/`",
        "  Caused by: error sending request for url (https://pypi.org/simple/six/)",
    ]
    neterr = describe_failure("uv", 2, net)
    assert neterr.package == "six" and "(network error) for six" in neterr.message
    other = describe_failure("pip", 1, ["something", "ERROR: disk full"])
    assert other.package is None and other.message == "pip install failed (exit 1): ERROR: disk full"


def test_choose_installer() -> None:
    assert choose_installer("auto").name == "uv"
    assert choose_installer("uv").name == "uv"
    assert isinstance(choose_installer("pip"), PipInstaller)
    with pytest.raises(UsageError):
        choose_installer("conda")


def test_marker_is_written_atomically(envs: Path) -> None:
    path = fake_venv(envs / "m")
    data = write_marker(
        path, ray_version="2.49.2", python_version="3.12.9", requirements_hash="sha256:x", installer="uv"
    )
    assert read_marker(path) == data and data["installer"] == "uv"
    assert sorted(p.name for p in path.iterdir()) == ["pyvenv.cfg", MARKER]
