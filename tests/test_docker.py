"""Docker Engine as a source of head facts: used where it answers, skipped quietly where not.

These drive a fake ``docker`` executable on PATH that answers like the real CLI, so that each
answer (no engine, no plugin, an odd image) is chosen by the test; the real engine is met in
tests/test_compose_real.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.errors import UsageError
from doctor.head import docker
from doctor.local import docker_cli
from tests.helpers import path_without

REPO = Path(__file__).resolve().parent.parent

FAKE_DOCKER = r"""#!/usr/bin/env python3
import json, os, sys
log = os.environ["FAKE_DOCKER_LOG"]
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
if os.environ.get("FAKE_DOCKER_ENV_LOG"):
    with open(os.environ["FAKE_DOCKER_ENV_LOG"], "a") as f:
        f.write(json.dumps(sorted(k for k in os.environ if k.startswith("RAY_AUTH"))) + "\n")
args = sys.argv[1:]
if args[:1] == ["version"]:
    print("28.2.2"); sys.exit(0)
if args[:2] == ["image", "inspect"]:
    if args[-1] == "rayproject/ray:2.49.2-py312-cpu":
        print("sha256:" + "ab" * 32); sys.exit(0)
    print("Error: No such image", file=sys.stderr); sys.exit(1)
if args[:1] == ["run"]:
    print(os.environ.get("FAKE_DOCKER_ANSWER") or json.dumps(
        {"python": "3.12.9", "ray": "2.49.2", "packages": {"ray": "2.49.2", "numpy": "1.26.4"}})); sys.exit(0)
sys.exit(2)
"""


def install_fake(tmp_path: Path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker"
    exe.write_text(FAKE_DOCKER)
    exe.chmod(0o755)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_no_docker_cli_is_skipped_quietly(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = docker_cli.probe_engine()
    assert engine.docker is None and engine.answers is False
    assert docker.image_facts("rayproject/ray:2.49.2-py312-cpu", cache=tmp_path) is None


def test_engine_facts_are_read_and_cached_per_image_id(monkeypatch, tmp_path):
    log = install_fake(tmp_path, monkeypatch)
    facts = docker.image_facts("rayproject/ray:2.49.2-py312-cpu", cache=tmp_path / "cache")
    assert facts is not None and (facts.python, facts.ray) == ("3.12.9", "2.49.2")
    run = [c for c in calls(log) if c[0] == "run"]
    assert len(run) == 1 and "--rm" in run[0] and "--network" in run[0] and "none" in run[0]
    again = docker.image_facts("rayproject/ray:2.49.2-py312-cpu", cache=tmp_path / "cache")
    assert again == facts
    assert len([c for c in calls(log) if c[0] == "run"]) == 1  # the second answer came from the cache


def test_never_pulls_an_image_that_is_not_local(monkeypatch, tmp_path):
    log = install_fake(tmp_path, monkeypatch)
    assert docker.image_facts("rayproject/ray:2.40.0-py311-cpu", cache=tmp_path / "cache") is None
    assert not any(c[0] in {"run", "pull"} for c in calls(log))


# ---------------------------------------------------------------- image names that are not image names

BAD_IMAGES = [
    "-v=/:/host",  # an option to docker
    "--privileged",
    "rayproject/ray:2.49.2 --privileged",  # whitespace
    "rayproject/ray\x1b[2J",  # a control character
    "RayProject/ray:2.49.2",  # uppercase path component
    "rayproject/ray:-tag",
    "",
]


@pytest.mark.parametrize("image", BAD_IMAGES)
def test_a_bad_image_name_never_reaches_docker(image, monkeypatch, tmp_path):
    log = install_fake(tmp_path, monkeypatch)
    assert docker.image_problem(image)
    assert docker.image_facts(image, cache=tmp_path / "cache") is None
    assert not [c for c in calls(log) if image in c]
    with pytest.raises(UsageError) as info:
        docker.validate_image(image, "--image")
    assert "--image" in info.value.message and repr(image)[1:-1][:20] in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "image",
    [
        "rayproject/ray:2.49.2-py312-cpu",
        "ray",
        "docker.io/rayproject/ray:2.49.2",
        "localhost:5000/team/ray:dev",
        "[::1]:5000/ray",
        "registry.Example.com/ray/ray",  # the registry may have capitals
        "rayproject/ray@sha256:" + "ab" * 32,
        "rayproject/ray:2.49.2-py312-cpu@sha256:" + "ab" * 32,
        "my_org/ray__x.y-z:1.0_rc1",
    ],
)
def test_real_image_references_are_accepted(image):
    assert docker.image_problem(image) is None
    assert docker.validate_image(image) == image


def test_check_refuses_an_option_as_image_in_one_line(monkeypatch, tmp_path, clean_env):
    """Before: `--image=-v=/:/host` went into `docker run ... -v=/:/host -c ...` as a bind mount of /."""
    log = install_fake(tmp_path, monkeypatch)
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", "check", "--image=-v=/:/host", "--no-roundtrip"],
        capture_output=True,
        text=True,
        env={
            **clean_env,
            "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
            "FAKE_DOCKER_LOG": str(log),
            "PYTHONPATH": str(REPO),
        },
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "-v=/:/host" in lines[0] and "Traceback" not in proc.stderr
    assert not any("-v=/:/host" in arg for c in calls(log) for arg in c)


def test_docker_runs_through_proc_without_the_token(monkeypatch, tmp_path):
    log = install_fake(tmp_path, monkeypatch)
    env_log = tmp_path / "env.log"
    monkeypatch.setenv("FAKE_DOCKER_ENV_LOG", str(env_log))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "rdt-secret")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "token"))
    facts = docker.image_facts("rayproject/ray:2.49.2-py312-cpu", cache=tmp_path / "cache")
    assert facts is not None
    seen = [json.loads(line) for line in env_log.read_text().splitlines()]
    assert seen and all(names == [] for names in seen)  # docker never sees the cluster's token
    run = next(c for c in calls(log) if c[0] == "run")
    image_at = run.index("rayproject/ray:2.49.2-py312-cpu")
    assert all(arg.startswith("-") or run[i - 1].startswith("--") for i, arg in enumerate(run[1:image_at], 1))
    assert run[image_at + 1 :][:1] == ["-c"]  # every option before the image, the command after it


def test_a_damaged_answer_from_docker_is_no_facts(monkeypatch, tmp_path):
    log = install_fake(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_DOCKER_ANSWER", "[" * 100000)
    assert docker.image_facts("rayproject/ray:2.49.2-py312-cpu", cache=tmp_path / "cache") is None
    assert [c for c in calls(log) if c[0] == "run"]


# ---------------------------------------------------------------- the image's packages (packages.skew's third source)

SHARED_FAKE = Path(__file__).resolve().parent / "fake_docker"
IMAGE = "rayproject/ray:2.49.2-py312-cpu"
IMAGE_ID = "sha256:" + "cd" * 32


def local_image(tmp_path: Path, monkeypatch, python: str) -> Path:
    """The shared fake docker with one local image whose Python is ``python`` (a real interpreter)."""
    images = tmp_path / "images.json"
    images.write_text(json.dumps({IMAGE: {"id": IMAGE_ID, "python": python}}))
    log = tmp_path / "docker.log"
    monkeypatch.setenv("PATH", f"{SHARED_FAKE}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", str(images))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


def test_the_images_python_lists_its_packages_once_per_image_id(monkeypatch, tmp_path):
    import platform
    from importlib import metadata

    log = local_image(tmp_path, monkeypatch, sys.executable)
    facts = docker.image_facts(IMAGE, cache=tmp_path / "cache")
    assert facts is not None and facts.image_id == IMAGE_ID and facts.python == platform.python_version()
    # The interpreter's own distributions, names canonical: what `pip list` would say in that image.
    assert facts.packages["packaging"] == metadata.version("packaging")
    assert facts.packages["typing-extensions"] == metadata.version("typing_extensions")
    assert len(facts.packages) == len({d.metadata["Name"].lower() for d in metadata.distributions()})
    cached = json.loads((tmp_path / "cache" / "docker-images.json").read_text())
    assert cached[IMAGE_ID]["packages"] == dict(facts.packages)
    assert docker.image_facts(IMAGE, cache=tmp_path / "cache") == facts
    assert len([c for c in calls(log) if c[0] == "run"]) == 1


def test_a_cache_entry_without_packages_is_asked_again(monkeypatch, tmp_path):
    log = local_image(tmp_path, monkeypatch, sys.executable)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "docker-images.json").write_text(json.dumps({IMAGE_ID: {"python": "3.12.9", "ray": "2.49.2"}}))
    facts = docker.image_facts(IMAGE, cache=cache)
    assert facts is not None and facts.packages  # an older raydoctor's entry: the image was asked again
    assert len([c for c in calls(log) if c[0] == "run"]) == 1


def test_names_and_versions_an_image_makes_up_are_left_out(monkeypatch, tmp_path):
    install_fake(tmp_path, monkeypatch)
    answer = {
        "python": "3.12.9",
        "ray": "2.49.2",
        "packages": {"Ray": "2.49.2", "evil\x1b[2J": "1.0", "numpy": "1.26.4\x1b]0;owned\x07", "-rf": "1", "ok": 3},
    }
    monkeypatch.setenv("FAKE_DOCKER_ANSWER", json.dumps(answer))
    facts = docker.image_facts(IMAGE, cache=tmp_path / "cache")
    assert facts is not None and dict(facts.packages) == {"ray": "2.49.2"}


# -- the standalone docker-compose: asked only where a suggestion could name it, remembered per binary --

FAKE_LEGACY = """#!/bin/sh
echo "$@" >> "$FAKE_LEGACY_LOG"
echo "docker-compose version 1.29.2, build unknown"
"""


def _legacy_setup(tmp_path: Path, *, plugin: bool) -> dict[str, str]:
    bin_dir = tmp_path / "legacy-bin"
    bin_dir.mkdir()
    legacy = bin_dir / "docker-compose"
    legacy.write_text(FAKE_LEGACY)
    legacy.chmod(0o755)
    fake = REPO / "tests" / "fake_docker"
    rest = path_without(os.environ.get("PATH", ""), ["docker", "docker-compose"], tmp_path / "bare")
    return {
        "PATH": os.pathsep.join([str(fake), str(bin_dir), rest]),
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "FAKE_DOCKER_COMPOSE": "1" if plugin else "0",
        "FAKE_LEGACY_LOG": str(tmp_path / "legacy.log"),
    }


def _legacy_calls(tmp_path: Path) -> int:
    log = tmp_path / "legacy.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_standalone_compose_is_not_asked_where_the_plugin_answers(tmp_path):
    cli = docker_cli.probe(_legacy_setup(tmp_path, plugin=True))
    assert cli.compose and cli.legacy_compose is None
    assert _legacy_calls(tmp_path) == 0


def test_standalone_compose_answer_is_remembered_per_binary(tmp_path):
    env = _legacy_setup(tmp_path, plugin=False)
    first = docker_cli.probe(env)
    second = docker_cli.probe(env)
    assert first.legacy_compose == second.legacy_compose == "docker-compose"
    assert _legacy_calls(tmp_path) == 1  # the second check read the remembered answer
    # A reinstalled binary (another mtime) is asked again.
    legacy = tmp_path / "legacy-bin" / "docker-compose"
    os.utime(legacy, ns=(1_000_000_000, 1_000_000_000))
    assert docker_cli.probe(env).legacy_compose == "docker-compose"
    assert _legacy_calls(tmp_path) == 2


def test_a_failing_standalone_compose_is_not_remembered(tmp_path):
    env = _legacy_setup(tmp_path, plugin=False)
    legacy = tmp_path / "legacy-bin" / "docker-compose"
    legacy.write_text('#!/bin/sh\necho "$@" >> "$FAKE_LEGACY_LOG"\nexit 1\n')
    assert docker_cli.probe(env).legacy_compose is None
    assert docker_cli.probe(env).legacy_compose is None
    assert _legacy_calls(tmp_path) == 2  # asked each time: a failure may be the moment's


# -- one Docker probe per run: `docker info --format '{{json .}}'`, read by every check from the context --


def _shared_fake(tmp_path: Path, environ: dict[str, str], **extra: str) -> dict[str, str]:
    """The shared fake docker first on PATH (it prints the real CLI's JSON), no standalone docker-compose."""
    rest = path_without(environ.get("PATH", ""), ["docker", "docker-compose"], tmp_path / "bare")
    return {
        **environ,
        "PATH": os.pathsep.join([str(SHARED_FAKE), rest]),
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        **extra,
    }


def test_the_engine_probe_reads_its_facts_from_one_docker_info(tmp_path, clean_env):
    env = _shared_fake(tmp_path, clean_env, FAKE_DOCKER_NCPU="6", FAKE_DOCKER_RUNTIMES="nvidia,runc")
    engine = docker_cli.probe_engine(env)
    assert engine.answers and engine.server_version == "27.3.1" and engine.ncpu == 6
    assert engine.runtimes == ("nvidia", "runc") and engine.default_runtime == "runc"
    assert engine.containers == 0 and engine.has_plugin("compose") is True and engine.error is None
    # CLI and engine 27.x: CDISpecDirs empty (CDI off without features.cdi), no DiscoveredDevices (from 28.2)
    assert engine.cdi_spec_dirs == () and engine.discovered_devices is None and engine.version == (27, 3, 1)
    assert engine.operating_system == "Debian GNU/Linux 12 (bookworm)"
    assert calls(tmp_path / "docker.log") == [["info", "--format", "{{json .}}"]]


def test_the_engine_probe_reads_cdi_folders_devices_and_the_os_bounded_and_clean():
    """gpu.docker's new facts from `docker info`: CDISpecDirs (Docker 25+), DiscoveredDevices (28.2+, moby
    api/types/system/info.go DeviceInfo {Source, ID}), OperatingSystem; each string sanitized and bounded,
    the lists cut, what is not a string dropped."""
    info = {
        "ServerVersion": "29.2.0-rc.1",
        "OperatingSystem": "Docker Desktop\x1b[2J",
        "CDISpecDirs": ["/etc/cdi", 7, "/var/run/\x07cdi"] + [f"/d{i}" for i in range(100)],
        "DiscoveredDevices": [{"Source": "cdi", "ID": "nvidia.com/gpu=0"}, "x", {"ID": None}]
        + [{"Source": "cdi", "ID": "x" * 500}] * 300,
    }
    engine = docker_cli.engine_from_info("docker", proc_completed(0, json.dumps(info), ""))
    assert engine.operating_system == "Docker Desktop" and engine.version == (29, 2, 0)
    assert engine.cdi_spec_dirs is not None and engine.cdi_spec_dirs[:2] == ("/etc/cdi", "/var/run/cdi")
    assert len(engine.cdi_spec_dirs) == 63  # the first 64 entries, the number dropped
    assert engine.discovered_devices is not None and engine.discovered_devices[0] == "nvidia.com/gpu=0"
    assert len(engine.discovered_devices) <= 256 and all(len(d) <= 200 for d in engine.discovered_devices)
    bare = docker_cli.engine_from_info("docker", proc_completed(0, json.dumps({"ServerVersion": "20.10.24+dfsg1"}), ""))
    assert bare.cdi_spec_dirs is None and bare.discovered_devices is None and bare.version == (20, 10, 24)


def test_an_engine_that_does_not_answer_still_lists_the_clis_plugins(tmp_path, clean_env):
    env = _shared_fake(tmp_path, clean_env, FAKE_DOCKER_ENGINE="0")
    engine = docker_cli.probe_engine(env)
    assert not engine.answers and engine.ncpu is None and engine.runtimes is None and engine.containers is None
    assert engine.error is not None and engine.error.startswith("Cannot connect to the Docker daemon")
    assert engine.has_plugin("compose") is True
    cli = docker_cli.probe(env, engine=engine)
    assert cli.compose and not cli.engine
    assert calls(tmp_path / "docker.log") == [["info", "--format", "{{json .}}"]]  # the plugin was not asked again


def test_a_cli_that_does_not_list_its_plugins_is_asked_for_compose(tmp_path, clean_env):
    """Older CLIs print no ClientInfo: then `docker compose version` says whether the plugin answers."""
    env = _shared_fake(tmp_path, clean_env)
    done = proc_completed(0, json.dumps({"ServerVersion": "19.03.15", "NCPU": 4, "Containers": 1}), "")
    engine = docker_cli.engine_from_info("docker", done)
    assert engine.answers and engine.plugins is None and engine.has_plugin("compose") is None
    assert engine.ncpu == 4 and engine.containers == 1 and engine.runtimes is None
    cli = docker_cli.probe(env, engine=docker_cli.DockerEngine(str(SHARED_FAKE / "docker"), answers=True))
    assert cli.compose and ["compose", "version"] in calls(tmp_path / "docker.log")


@pytest.mark.parametrize("stdout", ["", "[" * 100000, '{"ServerVersion": 7}', '{"ServerVersion": "1\x1b[2J"}'])
def test_a_damaged_docker_info_is_no_engine_or_clean_text(stdout):
    engine = docker_cli.engine_from_info("docker", proc_completed(0, stdout, ""))
    assert engine.server_version is None or "\x1b" not in engine.server_version
    if not engine.answers:
        assert engine.error and engine.ncpu is None


def proc_completed(code: int, stdout: str, stderr: str):
    from doctor.proc import Completed

    return Completed(code, stdout, stderr)


def test_a_compose_only_check_runs_one_docker_info_and_no_docker_ps_without_containers(tmp_path, clean_env):
    """Before: `docker version`, `docker info` twice (NCPU, Runtimes), `docker compose version` and `docker ps`
    per compose-only check. Now one `docker info` answers the engine, NCPU, Runtimes and the plugin, and
    `docker ps` is asked only where the engine holds a container that could be this file's."""
    from doctor.app import run_check
    from doctor.options import TargetOptions
    from tests.helpers import by_id

    shipped = REPO / "compose" / "cpu-ray-cluster.yaml"
    env = _shared_fake(tmp_path, clean_env, FAKE_DOCKER_NCPU="2")
    report = run_check(TargetOptions(compose=str(shipped), roundtrip=False), environ=env, cwd=tmp_path)
    asked = [" ".join(c[:2]) for c in calls(tmp_path / "docker.log")]
    assert asked.count("info --format") == 1 and not {"version --format", "compose version", "ps -a"} & set(asked)
    assert "the Docker engine's 2 CPUs" in by_id(report, "compose.resource_limits").summary  # NCPU, from the probe
    assert by_id(report, "gpu.docker").code == "gpu.docker.cpu_target"  # Runtimes, from the same probe
    # NCPU, from the probe, also tells head.source that Docker would refuse the file as it is: no start command
    # that fails where pasted, but the fix of the file (named with --compose, so fix --cluster edits it).
    start = by_id(report, "head.source").remediation
    assert "Range of CPUs is from 0.01 to 2.00" in start.text, start.text
    assert start.commands[-1].endswith(f"fix --cluster --compose {shipped}"), start.commands
    # One container on the engine (another project's): now `docker ps` is asked, once.
    (tmp_path / "docker.log").unlink()
    listed = tmp_path / "containers.json"
    listed.write_text(json.dumps({"other-head-1": {"labels": {"com.docker.compose.service": "x"}, "running": False}}))
    run_check(
        TargetOptions(compose=str(shipped), roundtrip=False),
        environ={**env, "FAKE_DOCKER_CONTAINERS": str(listed)},
        cwd=tmp_path,
    )
    asked = [" ".join(c[:2]) for c in calls(tmp_path / "docker.log")]
    assert asked.count("info --format") == 1 and asked.count("ps -a") == 1
