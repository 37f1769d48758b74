"""raydoctor run inside a repository it just cloned: nothing from that folder runs, whatever it plants.

Each planted module or executable writes a marker file when it runs; every test proves the marker
is absent afterwards (and that what raydoctor reports is the real thing).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from doctor.checks import roundtrip
from doctor.errors import UsageError
from doctor.local import interpreter
from doctor.local.interpreter import choose_interpreter, inspect_interpreter, resolve_pyenv_shim
from tests.ray_cluster import find_python

REAL = ".".join(map(str, sys.version_info[:3]))


def plant(repo: Path, marker: Path) -> Path:
    """A cloned repo whose modules shadow the stdlib and Ray; each one, imported, writes ``marker``."""
    evil = (
        f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
        'def dumps(*a, **k):\n    return \'{"python": "9.9.9", "distributions": {"ray": "6.6.6"}}\'\n'
        "def python_version():\n    return '9.9.9'\n"
        "__version__ = '6.6.6'\n"
    )
    repo.mkdir(parents=True, exist_ok=True)
    for name in ("json.py", "platform.py", "os.py", "time.py", "ray.py"):
        (repo / name).write_text(evil)
    (repo / "ray").mkdir(exist_ok=True)
    (repo / "ray" / "__init__.py").write_text(evil)
    (repo / "ray-6.6.6.dist-info").mkdir(exist_ok=True)
    return repo


def make_exe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def pythons() -> list:
    """This one, and the oldest Pythons the probe serves (2.7 has no -I, 3.6-3.10 no -P) where present."""
    found = [(minor, find_python(minor)) for minor in ("2.7", "3.6")]
    return [pytest.param(sys.executable, id="this"), *(pytest.param(str(p), id=m) for m, p in found if p)]


# ---------------------------------------------------------------- the interpreter probe


@pytest.mark.parametrize("python", pythons())
def test_interpreter_probe_ignores_modules_in_the_current_folder(tmp_path, monkeypatch, python):
    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    monkeypatch.chdir(repo)
    facts = inspect_interpreter(python, "test")
    assert not marker.exists(), marker.read_text()
    assert facts.python != "9.9.9" and "ray" not in facts.distributions
    if python == sys.executable:
        assert facts.python == REAL


@pytest.mark.parametrize("python", pythons())
def test_probe_script_drops_the_current_folder_itself(tmp_path, python):
    """The script's own defence, for an interpreter started in the repo anyway (PYTHONSAFEPATH unset)."""
    from doctor import proc

    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    done = proc.run([python, "-c", interpreter.PROBE_SCRIPT], timeout=30, env=env, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert not marker.exists(), marker.read_text()
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert data["python"] != "9.9.9" and "ray" not in data["distributions"]


def test_interpreter_probe_runs_in_an_empty_folder_without_the_token(tmp_path, monkeypatch):
    seen = tmp_path / "seen"
    fake = make_exe(
        tmp_path / "bin" / "python",
        f'#!/bin/sh\npwd > {seen}.cwd\nls -A > {seen}.ls\nenv > {seen}.env\necho \'{{"python": "3.12.1"}}\'\n',
    )
    repo = plant(tmp_path / "repo", tmp_path / "unused")
    monkeypatch.chdir(repo)
    environ = {"PATH": os.environ.get("PATH", ""), "RAY_AUTH_TOKEN": "s3cret", "RAY_AUTH_TOKEN_PATH": "/t"}
    facts = inspect_interpreter(str(fake), "test", environ=environ)
    assert facts.python == "3.12.1"
    env = Path(f"{seen}.env").read_text()
    assert "RAY_AUTH_TOKEN" not in env and "s3cret" not in env
    assert f"PYENV_DIR={repo}" in env  # a pyenv shim still picks the version of the user's folder
    assert Path(f"{seen}.cwd").read_text().strip() != str(repo)
    assert Path(f"{seen}.ls").read_text() == ""  # an empty folder
    assert not Path(Path(f"{seen}.cwd").read_text().strip()).exists()  # and it is gone


def test_relative_python_still_works_from_the_temporary_folder(tmp_path, monkeypatch):
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    monkeypatch.chdir(tmp_path)
    path, why = choose_interpreter("venv/bin/python", {"PATH": ""})
    assert Path(path).is_absolute() and str(why) == "--python"
    assert inspect_interpreter("venv/bin/python", "test").python == REAL


def test_bare_python_name_is_a_command_on_path_not_a_file_here(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    make_exe(tmp_path / "repo" / "python3", f"#!/bin/sh\ntouch {marker}\n")
    monkeypatch.chdir(tmp_path / "repo")
    with pytest.raises(UsageError, match=r"--python ./python3"):
        choose_interpreter("python3", {"PATH": str(tmp_path / "empty")})
    assert choose_interpreter("./python3", {"PATH": ""})[0] == str(tmp_path / "repo" / "python3")
    assert not marker.exists()


# ---------------------------------------------------------------- the round-trip probe


def test_roundtrip_probe_ignores_ray_in_the_current_folder(tmp_path, monkeypatch):
    """The test venv has no Ray: the probe must fail to import it rather than take the repo's."""
    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    monkeypatch.chdir(repo)
    run = roundtrip.run_probe(sys.executable, "ray://127.0.0.1:1", dict(os.environ), limit_s=20)
    assert not marker.exists(), marker.read_text()
    assert run.error is not None and run.error["phase"] == "import", (run.error, run.stderr_tail)
    assert "ray" in run.error["message"]


def test_roundtrip_script_drops_the_current_folder_itself(tmp_path):
    from doctor import proc

    marker = tmp_path / "planted-code-ran"
    repo = plant(tmp_path / "repo", marker)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    done = proc.run([sys.executable, "-c", roundtrip.PROBE_SCRIPT, "ray://127.0.0.1:1"], timeout=30, env=env, cwd=repo)
    assert not marker.exists(), marker.read_text()
    assert done.returncode == 3 and "RAYDOCTOR_ERROR" in done.stdout


def test_roundtrip_probe_gets_the_token_but_not_ray_address(tmp_path, monkeypatch):
    seen = tmp_path / "seen"
    fake = make_exe(tmp_path / "bin" / "python", f"#!/bin/sh\npwd > {seen}.cwd\nenv > {seen}.env\n")
    monkeypatch.chdir(tmp_path)
    environ = {"PATH": os.environ.get("PATH", ""), "RAY_AUTH_TOKEN": "s3cret", "RAY_ADDRESS": "10.0.0.1:6379"}
    roundtrip.run_probe(str(fake), "ray://127.0.0.1:1", environ, limit_s=10)
    env = Path(f"{seen}.env").read_text().splitlines()
    assert "RAY_AUTH_TOKEN=s3cret" in env and not any(line.startswith("RAY_ADDRESS=") for line in env)
    assert Path(f"{seen}.cwd").read_text().strip() != str(tmp_path)


def test_roundtrip_probe_that_cannot_start_is_one_line(tmp_path):
    with pytest.raises(interpreter.InterpreterError, match="cannot run"):
        roundtrip.run_probe(str(tmp_path / "no-such-python"), "ray://127.0.0.1:1", {}, limit_s=5)


# ---------------------------------------------------------------- probe modules are data


@pytest.mark.parametrize("module", ["doctor.checks.roundtrip_probe", "doctor.local.probe_interpreter"])
def test_importing_a_probe_module_runs_nothing(module, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])  # roundtrip_probe's main() would read argv[1] and raise
    path_before = list(sys.path)
    sys.modules.pop(module, None)
    out = io.StringIO()
    with redirect_stdout(out):
        mod = importlib.import_module(module)
    assert out.getvalue() == ""
    assert sys.path == path_before
    assert callable(mod.main)


def test_probe_scripts_are_the_module_files():
    assert roundtrip.PROBE_SCRIPT == Path(roundtrip.__file__).with_name("roundtrip_probe.py").read_text()
    assert interpreter.PROBE_SCRIPT == Path(interpreter.__file__).with_name("probe_interpreter.py").read_text()


# ---------------------------------------------------------------- pyenv version names


EVIL_NAMES = ["../../repo/evil", "..", ".", "3.12.1/../../../repo/evil", "/abs/evil", "x\\..\\evil", "a:b"]


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_version_names_that_leave_pyenv_versions_are_not_names(name):
    assert not interpreter.safe_version_name(name)


@pytest.fixture
def pyenv(tmp_path):
    """A pyenv root whose shim and 3.12.1 run the real interpreter, and a repo with an evil executable."""
    root = tmp_path / "pyenv"
    shim = make_exe(root / "shims" / "python3", f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    real = make_exe(root / "versions" / "3.12.1" / "bin" / "python3", f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (root / "version").write_text("3.12.1\n")
    marker = tmp_path / "evil-ran"
    repo = tmp_path / "repo"
    make_exe(repo / "evil" / "bin" / "python3", f'#!/bin/sh\ntouch {marker}\necho \'{{"python": "9.9.9"}}\'\n')
    return root, shim, real, repo, marker


@pytest.mark.parametrize("name", ["../../repo/evil", "3.12.1/../../../repo/evil", "{repo}/evil"])
def test_python_version_file_cannot_walk_out_of_pyenv(pyenv, monkeypatch, name):
    root, shim, real, repo, marker = pyenv
    (repo / ".python-version").write_text(name.format(repo=repo) + "\n")
    env = {"PYENV_ROOT": str(root), "PATH": str(root / "shims")}
    assert resolve_pyenv_shim(str(shim), env, repo) == str(shim)  # pyenv itself decides, never the repo
    assert resolve_pyenv_shim(str(shim), {**env, "PYENV_VERSION": name.format(repo=repo)}, repo) == str(shim)
    monkeypatch.chdir(repo)
    path, _ = choose_interpreter(None, env)
    assert path == str(shim)
    assert inspect_interpreter(path, "python3 on PATH", environ=env).python == REAL
    assert not marker.exists()


def test_version_file_is_read_as_pyenv_reads_it(pyenv):
    root, shim, real, repo, marker = pyenv
    env = {"PYENV_ROOT": str(root)}
    (repo / ".python-version").write_text("# a comment\n\n../../repo/evil\n3.9.9 extra words\n3.12.1\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(real)  # comments, bad and missing names skipped
    (repo / ".python-version").write_text("../../repo/evil\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(shim)  # nothing valid: pyenv says "system"
    (repo / ".python-version").write_text("system\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(shim)
    (repo / ".python-version").write_text("3.12.1" + " " * (1 << 20) + "\n")
    assert resolve_pyenv_shim(str(shim), env, repo) == str(real)  # a huge file is never read whole
    assert not marker.exists()


# ---------------------------------------------------------------- the env lock and partial files


def test_a_planted_lock_symlink_is_not_followed(tmp_path):
    from doctor.errors import DoctorError, FixError
    from doctor.fix.venv import EnvLock

    envs = tmp_path / "envs"
    envs.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (envs / ".ray2.49.2-py3.12.9.lock").symlink_to(victim)
    with pytest.raises(DoctorError) as info:
        EnvLock(envs / "ray2.49.2-py3.12.9", timeout=0).acquire()
    assert victim.read_text() == "precious\n"
    assert "is a symbolic link" in str(info.value) and ".ray2.49.2-py3.12.9.lock" in str(info.value)
    assert not isinstance(info.value, FixError) and info.value.exit_code == 1  # not "held": fix must not wait
    assert "\n" not in str(info.value)
    assert (envs / ".ray2.49.2-py3.12.9.lock").is_symlink()  # not removed either: the user decides


@pytest.mark.parametrize("kind", ["hardlink", "directory", "fifo"])
def test_a_lock_that_is_not_a_plain_file_of_ours_is_refused(tmp_path, kind):
    from doctor.errors import DoctorError
    from doctor.fix.venv import EnvLock

    envs = tmp_path / "envs"
    envs.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = envs / ".e.lock"
    if kind == "hardlink":
        os.link(victim, lock)
    elif kind == "directory":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    with pytest.raises(DoctorError, match="lock file"):
        EnvLock(envs / "e", timeout=0).acquire()
    assert victim.read_text() == "precious\n"


def test_the_marker_partial_file_is_never_a_planted_name(tmp_path):
    from doctor.fix.venv import MARKER, write_marker

    env = tmp_path / "env"
    env.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (env / (MARKER + ".partial")).symlink_to(victim)  # the old fixed name of the partial file
    write_marker(env, ray_version="2.49.2", python_version="3.12.1", requirements_hash="sha256:x")
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in env.iterdir()) == [MARKER, MARKER + ".partial"]


def test_stale_temps_report_only_what_was_removed(tmp_path, monkeypatch):
    from doctor.fix import venv

    envs = tmp_path / "envs"
    envs.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    link = envs / ".e.tmp-999999999"
    link.symlink_to(target, target_is_directory=True)
    stuck = envs / ".e.old-999999998"
    stuck.mkdir()
    real_rmtree = shutil.rmtree

    def failing_rmtree(path, *args, **kwargs):
        if Path(path) == stuck:
            raise PermissionError(13, "Permission denied", str(path))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(venv.shutil, "rmtree", failing_rmtree)
    assert venv.remove_stale_temps(envs / "e") == [link]
    assert (target / "keep.txt").exists() and stuck.exists() and not os.path.lexists(link)


# ---------------------------------------------------------------- the env marker cannot be forged


def fake_env(path: Path, *, python: Path | None = None, cfg: str = "home = /usr/bin\n") -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "pyvenv.cfg").write_text(cfg)
    (path / "bin" / "python").symlink_to(python or sys.executable)
    return path


def seal_with_another_key(data: dict) -> str:
    import hashlib
    import hmac

    body = {k: v for k, v in data.items() if k != "seal"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return "hmac-sha256:" + hmac.new(b"k" * 32, text.encode(), hashlib.sha256).hexdigest()


def test_a_genuine_marker_is_trusted_after_the_rename(tmp_path):
    from doctor.fix.venv import commit_venv, env_matches, read_marker, temp_path, trusted_marker, write_marker

    dest = tmp_path / "envs" / "e"
    tmp = temp_path(dest)
    fake_env(tmp, cfg=f"home = /usr/bin\ncommand = python -m virtualenv {tmp}\n")
    write_marker(tmp, ray_version="2.49.2", python_version="3.12.1", requirements_hash="h", interpreter="/py")
    commit_venv(tmp, dest)
    marker = trusted_marker(dest)
    assert marker is not None and marker.interpreter == "/py" and marker.ray_version == "2.49.2"
    assert marker.data["env"]["path"] == str(dest)
    assert read_marker(dest) == marker.data
    assert env_matches(dest, ray_version="2.49.2", python_version="3.12.1", requirements_hash="h")


def forge(env: Path, how: str, tmp_path: Path) -> None:
    from doctor.fix.venv import MARKER, write_marker

    wanted = {"ray_version": "2.49.2", "python_version": "3.12.1", "requirements_hash": "h"}
    if how == "unsealed":  # what raydoctor wrote before markers were sealed
        data = {"schema": "raydoctor.env/1", "created_by": "raydoctor", **wanted}
    elif how == "another key":  # sealed, but not with this user's key
        data = {"schema": "raydoctor.env/2", "created_by": "raydoctor", **wanted, "env": {"path": str(env)}}
        data["seal"] = seal_with_another_key(data)
    elif how == "copied":  # a genuine marker of another env of this user
        other = fake_env(tmp_path / "other")
        data = write_marker(other, **wanted)
    elif how in ("pyvenv.cfg changed", "bin/python changed"):
        write_marker(env, **wanted)
        if how == "pyvenv.cfg changed":
            (env / "pyvenv.cfg").write_text("home = /somewhere/else\n")
        else:
            (env / "bin" / "python").unlink()
            make_exe(env / "bin" / "python", "#!/bin/sh\n")
        return
    (env / MARKER).write_text(json.dumps(data))


@pytest.mark.parametrize("how", ["unsealed", "another key", "copied", "pyvenv.cfg changed", "bin/python changed"])
def test_a_forged_or_changed_marker_is_not_trusted(tmp_path, how):
    from doctor.errors import FixError
    from doctor.fix.venv import commit_venv, env_matches, marker_problem, read_marker, temp_path, trusted_marker

    env = fake_env(tmp_path / "envs" / "e")
    forge(env, how, tmp_path)
    assert trusted_marker(env) is None and read_marker(env) is None
    assert not env_matches(env, ray_version="2.49.2", python_version="3.12.1", requirements_hash="h")
    problem = marker_problem(env)
    assert problem and "\n" not in problem
    tmp = fake_env(temp_path(env))
    with pytest.raises(FixError, match="raydoctor did not create it"):
        commit_venv(tmp, env, replace=True)  # never replaced, so never deleted
    assert (env / "pyvenv.cfg").exists() and tmp.exists()


def test_the_seal_key_is_private_and_outside_the_checkout(tmp_path, monkeypatch):
    from doctor.errors import FixError
    from doctor.fix.venv import SEAL_KEY, state_dir, trusted_marker, write_marker

    monkeypatch.setenv("RAYDOCTOR_STATE_DIR", str(tmp_path / "state"))
    env = fake_env(tmp_path / "env")
    write_marker(env, ray_version="2.49.2", python_version="3.12.1", requirements_hash="h")
    key = state_dir() / SEAL_KEY
    assert key.stat().st_mode & 0o777 == 0o600 and key.stat().st_size == 32
    assert trusted_marker(env) is not None
    key.chmod(0o644)  # readable by others: a seal anyone could make proves nothing
    assert trusted_marker(env) is None
    with pytest.raises(FixError, match="seal key"):
        write_marker(env, ray_version="2.49.2", python_version="3.12.1", requirements_hash="h")


PY312 = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions" / "3.12.1" / "bin" / "python"


@pytest.mark.skipif(not PY312.exists(), reason="needs pyenv's 3.12.1 (the plan looks for an interpreter)")
@pytest.mark.parametrize("flags", [{}, {"rebuild": True}, {"export": "req.txt"}])
def test_a_forged_env_folder_is_not_up_to_date_not_run_not_deleted(tmp_path, flags):
    from doctor.errors import FixError
    from doctor.fix.plan import Checked, FixOptions, make_plan
    from doctor.fix.venv import MARKER
    from doctor.head.facts import HeadFacts
    from doctor.local.interpreter import LocalFacts
    from doctor.model import Fact
    from doctor.options import TargetOptions

    source = "running cluster (http://h:8265/api/v0/cluster_metadata)"
    report = Checked(
        HeadFacts(ray=Fact("2.49.2", source), python=Fact("3.12.1", source), sources_tried=("dashboard",)),
        LocalFacts("/usr/bin/python3", "3.11.7", "CPython", "x86_64", "Linux", "/p", "/p", "python3 on PATH", {}),
        interpreter="/usr/bin/python3",
        chosen_by="python3 on PATH",
        target={"kind": "address"},
    )
    extra = {k: (tmp_path / v if k == "export" else v) for k, v in flags.items()}
    opts = FixOptions(
        target=TargetOptions(address="127.0.0.1:8265"),
        env_dir=tmp_path / "envs",
        search_dirs=[PY312.parent.parent.parent],
        use_conda=False,
        **extra,
    )
    first = make_plan(opts, report, environ={}, cwd=tmp_path)
    assert first.install is not None
    ran = tmp_path / "evil-python-ran"
    env = first.env_path
    make_exe(env / "bin" / "python", f"#!/bin/sh\ntouch {ran}\n")
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    forged = {
        "schema": "raydoctor.env/2",
        "created_by": "raydoctor",
        "ray_version": "2.49.2",
        "python_version": "3.12.1",
        "interpreter_version": "3.12.1",
        "requirements_hash": first.install.hash,
        "env": {"path": str(env)},
    }
    forged["seal"] = seal_with_another_key(forged)
    (env / MARKER).write_text(json.dumps(forged))
    with pytest.raises(FixError, match="raydoctor did not create it"):
        make_plan(opts, report, environ={}, cwd=tmp_path)
    assert not ran.exists() and (env / "bin" / "python").exists() and (env / MARKER).exists()


@pytest.mark.skipif(not PY312.exists(), reason="needs pyenv's 3.12.1 (the plan looks for an interpreter)")
def test_fix_says_one_line_about_a_planted_lock_and_a_forged_env(tmp_path):
    """The CLI end to end: `raydoctor fix` in a checkout that planted both (no cluster: an image target)."""
    import subprocess

    (tmp_path / "packages.txt").write_text("six\n")
    envs = tmp_path / "envs"
    envs.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") and k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update({"NO_COLOR": "1", "PYENV_ROOT": str(PY312.parent.parent.parent.parent)})
    argv = [sys.executable, "-m", "doctor", "fix", "--image", "rayproject/ray:2.49.2-py312-cpu", "--no-conda", "--yes"]

    def fix(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*argv, *extra],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    # The env is named after the Python it will hold (the closest 3.12 here): ask the plan.
    name = json.loads(fix("--dry-run", "--json").stdout)["plan"]["env"]["name"]
    assert name.startswith("ray2.49.2-py3.12.")
    (envs / f".{name}.lock").symlink_to(victim)
    locked = fix()
    assert locked.returncode == 1, locked.stderr
    assert f"the lock file envs/.{name}.lock is a symbolic link" in locked.stderr
    assert "waiting" not in locked.stderr and "Traceback" not in locked.stderr
    assert victim.read_text() == "precious\n"

    (envs / f".{name}.lock").unlink()
    ran = tmp_path / "evil-python-ran"
    make_exe(envs / name / "bin" / "python", f"#!/bin/sh\ntouch {ran}\n")
    forged = {"created_by": "raydoctor", "ray_version": "2.49.2", "python_version": "3.12.9"}
    (envs / name / "raydoctor-env.json").write_text(json.dumps(forged))
    refused = fix("--rebuild", "--export", "out.txt")
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if "raydoctor did not create it" in line]
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert not ran.exists() and (envs / name / "bin" / "python").exists()
    assert not (tmp_path / "out.txt").exists()


def test_a_marker_that_is_a_fifo_does_not_hang_fix(tmp_path):
    import threading

    from doctor.fix.venv import MARKER, check_marker

    env = fake_env(tmp_path / "envs" / "e")
    os.mkfifo(env / MARKER)
    answer: list = []
    reader = threading.Thread(target=lambda: answer.append(check_marker(env)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a FIFO marker blocked"
    assert answer[0][0] is None and "cannot be read" in answer[0][1]
