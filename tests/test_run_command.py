"""``raydoctor run -- CMD``: a real venv (``uv venv``) sealed the way fix seals it, the command run inside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.commands.run import env_for_child, find_env
from doctor.fix.install import find_uv
from doctor.fix.plan import head_target
from doctor.fix.venv import env_dir_name, venv_python, write_marker
from doctor.head.resolve import gather_head_facts

IMAGE = "rayproject/ray:2.49.2-py312-cpu"
pytestmark = pytest.mark.skipif(find_uv() is None, reason="needs uv")


def head_versions() -> tuple[str, str]:
    """The Ray and Python fix would build for IMAGE (the same facts raydoctor run reads)."""
    head = head_target(gather_head_facts(None, IMAGE, use_docker=False))
    return head.ray, head.python


def build_env(env_dir: Path, *, seal: bool = True) -> Path:
    """A venv at fix's path for IMAGE, made by the real uv, with fix's own sealed marker."""
    ray, python = head_versions()
    env = env_dir / env_dir_name(ray, python)
    uv = find_uv()
    assert uv is not None
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(env)], check=True, timeout=120)
    if seal:
        write_marker(
            env, ray_version=ray, python_version=python, requirements_hash="sha256:x", interpreter=sys.executable
        )
    return env


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's seal key folder, for the marker written here and the raydoctor run that checks it."""
    monkeypatch.setenv("RAYDOCTOR_STATE_DIR", str(tmp_path / "state"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX"))}
    env["HOME"] = str(tmp_path)
    env["NO_COLOR"] = "1"
    return env


def raydoctor_run(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doctor", "run", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_runs_in_the_env_with_its_bin_first(tmp_path: Path, state: dict[str, str]) -> None:
    env = build_env(tmp_path / "envs")
    script = (
        "import os, sys, shutil; print(sys.prefix); print(os.environ['VIRTUAL_ENV']); print(shutil.which('python'))"
    )
    done = raydoctor_run(tmp_path, state, "--image", IMAGE, "--", "python", "-c", script)
    assert done.returncode == 0, done.stderr
    prefix, virtual_env, which = done.stdout.splitlines()
    assert Path(prefix) == env and Path(virtual_env) == env
    assert Path(which) == venv_python(env)


def test_exit_code_and_process_are_the_commands(tmp_path: Path, state: dict[str, str]) -> None:
    build_env(tmp_path / "envs")
    done = raydoctor_run(tmp_path, state, "--image", IMAGE, "--", "python", "-c", "import sys; sys.exit(7)")
    assert done.returncode == 7
    # exec, not a child: the command has raydoctor's pid, so signals reach it directly
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "doctor",
            "run",
            "--image",
            IMAGE,
            "--",
            "python",
            "-c",
            "import os; print(os.getpid())",
        ],
        cwd=tmp_path,
        env=state,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=120)
    assert int(out.strip()) == proc.pid


def test_no_env_yet_says_how_to_build_it(tmp_path: Path, state: dict[str, str]) -> None:
    done = raydoctor_run(tmp_path, state, "--image", IMAGE, "--", "python", "-c", "pass")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no env built by raydoctor fix" in lines[0]
    assert lines[0].endswith(f"build it with: raydoctor fix --image {IMAGE}")


def test_an_unsealed_env_is_never_run(tmp_path: Path, state: dict[str, str]) -> None:
    """An env folder a cloned repo ships (a marker without this user's seal) is not fix's."""
    env = build_env(tmp_path / "envs", seal=False)
    (env / "raydoctor-env.json").write_text('{"created_by": "raydoctor", "ray_version": "2.49.2"}')
    done = raydoctor_run(tmp_path, state, "--image", IMAGE, "--", "python", "-c", "print('ran')")
    assert done.returncode == 2 and "ran" not in done.stdout


def test_a_marker_sealed_by_another_key_is_not_trusted(tmp_path: Path, state: dict[str, str]) -> None:
    build_env(tmp_path / "envs")
    other = dict(state, RAYDOCTOR_STATE_DIR=str(tmp_path / "other-state"))
    done = raydoctor_run(tmp_path, other, "--image", IMAGE, "--", "python", "-c", "print('ran')")
    assert done.returncode == 2 and "ran" not in done.stdout


def test_the_settings_file_names_target_and_env_dir(tmp_path: Path, state: dict[str, str]) -> None:
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    env = build_env(repo / ".envs")
    (repo / "raydoctor.toml").write_text(f'image = "{IMAGE}"\nenv-dir = ".envs"\n')
    done = raydoctor_run(repo / "notebooks", state, "--", "python", "-c", "import sys; print(sys.prefix)")
    assert done.returncode != 0 and "sys.prefix" not in done.stdout  # untrusted: image and env-dir set aside
    trust = [sys.executable, "-m", "doctor", "trust"]
    assert subprocess.run(trust, cwd=repo / "notebooks", env=state, capture_output=True, timeout=60).returncode == 0
    done = raydoctor_run(repo / "notebooks", state, "--", "python", "-c", "import sys; print(sys.prefix)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == env


def test_unknown_command_is_127_and_no_command_is_2(tmp_path: Path, state: dict[str, str]) -> None:
    build_env(tmp_path / "envs")
    done = raydoctor_run(tmp_path, state, "--image", IMAGE, "--", "no-such-command-raydoctor")
    assert done.returncode == 127 and "command not found" in done.stderr
    done = raydoctor_run(tmp_path, state, "--image", IMAGE, "--")
    assert done.returncode == 2 and "no command to run" in done.stderr and "Traceback" not in done.stderr


def test_child_environment_is_activated(tmp_path: Path) -> None:
    env = tmp_path / "envs" / "e"
    child = env_for_child(env, {"PATH": f"/usr/bin{os.pathsep}{env / 'bin'}", "PYTHONHOME": "/x", "KEEP": "1"})
    assert child["PATH"].split(os.pathsep) == [str(env / "bin"), "/usr/bin"]
    assert child["VIRTUAL_ENV"] == str(env) and "PYTHONHOME" not in child and child["KEEP"] == "1"


def test_find_env_takes_a_sibling_with_the_same_versions(tmp_path: Path, state: dict[str, str]) -> None:
    """Another naming of the folder (e.g. after the Python it really has) is found by its trusted marker."""
    ray, python = head_versions()
    env = tmp_path / "envs" / "ray-team-env"
    uv = find_uv()
    assert uv is not None
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(env)], check=True, timeout=120)
    write_marker(env, ray_version=ray, python_version=python, requirements_hash="sha256:x")
    assert find_env(tmp_path / "envs", ray, python) == env
    assert find_env(tmp_path / "envs", ray, "3.11.0") is None
