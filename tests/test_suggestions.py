"""Issue 12: every command raydoctor suggests works when pasted on the machine it was printed on.

The walk runs the scenarios the suite already uses without a cluster (and one against the
live ``ray_head``, marked ``cluster``) and, for every finding's remediation command, proves:
``shlex.split`` reads it; it does not start with ``$``; it is not a file edit (``key: value``);
its program resolves here (``shutil.which`` or an existing absolute path); raydoctor's own
suggestions parse with raydoctor's own parser (``doctor.cli.build_parser``) and, for ``fix``,
run with ``--dry-run --json`` without a traceback and without refusing for unknown versions.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from doctor import remedies
from doctor.app import run_check
from doctor.cli import _command_modules, build_parser, hoist_options
from doctor.errors import DoctorError
from doctor.model import Report
from doctor.options import TargetOptions
from tests.fake_servers import HTML, FakeHTTP
from tests.helpers import path_without
from tests.ray_cluster import free_port
from tests.samples import BASE, KUBERAY_GPU

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "compose" / "cpu-ray-cluster.yaml"
IMAGE = "rayproject/ray:2.49.2-py312-cpu"
# A YAML edit shown as a command: `ray-worker: cpus: '2'`, `services.x.image: y`.
EDIT_SHAPE = re.compile(r"^[\w.\[\]-]+:(\s|$)")


@dataclass
class Walk:
    """What the walk saw: every command, and each problem found with one of them."""

    commands: list[tuple[str, str, str]] = field(default_factory=list)  # (scenario, finding id, command)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"walked {len(self.commands)} suggested commands, {len(self.problems)} problems"


def own_prefix(argv: list[str]) -> int:
    """How many words name raydoctor itself (``raydoctor``, a path to it, ``python -m doctor``); 0: not raydoctor."""
    if argv and Path(argv[0]).name in {"raydoctor", "raydoctor.exe"}:
        return 1
    if len(argv) >= 3 and argv[1:3] == ["-m", "doctor"]:
        return 3
    return 0


def resolves(program: str, environ: dict[str, str]) -> bool:
    if os.path.isabs(program):
        return os.path.isfile(program) and os.access(program, os.X_OK)
    return shutil.which(program, path=environ.get("PATH", os.defpath)) is not None


def judge_command(walk: Walk, where: str, command: str, environ: dict[str, str], cwd: Path, tried: set[str]) -> None:
    def bad(why: str) -> None:
        walk.problems.append(f"{where}: {command!r}: {why}")

    if command.lstrip().startswith("$"):
        bad("starts with $")
    if EDIT_SHAPE.match(command.strip()):
        bad("an edit shown as a command")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        bad(f"shlex cannot split it ({exc})")
        return
    if not argv:
        bad("empty")
        return
    if not resolves(argv[0], environ):
        bad(f"{argv[0]} does not resolve here")
        return
    if argv[:2] == ["docker", "compose"] or (os.path.isabs(argv[0]) and argv[1:2] == ["compose"]):
        program = shutil.which(argv[0], path=environ.get("PATH", os.defpath)) or argv[0]
        answered = subprocess.run([program, "compose", "version"], capture_output=True, env=environ, timeout=30)
        if answered.returncode != 0:
            bad("the docker compose plugin does not answer here")
    n = own_prefix(argv)
    if not n:
        return
    args = argv[n:]
    parser = build_parser(_command_modules())
    try:
        parsed = parser.parse_args(hoist_options(list(args), parser))
    except (DoctorError, SystemExit) as exc:
        bad(f"raydoctor's parser refuses it ({exc})")
        return
    if parsed.command != "fix" or command in tried:
        return
    tried.add(command)
    done = subprocess.run(
        [*argv, "--dry-run", "--json"], capture_output=True, text=True, env=environ, cwd=cwd, timeout=240
    )
    if "Traceback" in done.stderr or "Traceback" in done.stdout:
        bad(f"--dry-run printed a traceback: {done.stderr[-400:]}")
    if done.returncode not in (0, 1, 2):
        bad(f"--dry-run exited {done.returncode}")
    if done.returncode == 2:
        try:
            error = json.loads(done.stdout).get("error") or ""
        except ValueError:
            error = done.stdout[-300:]
        bad(f"--dry-run refused (exit 2): {error}")


def walk_report(walk: Walk, scenario: str, report: Report, environ: dict[str, str], cwd: Path) -> None:
    assert report.error is None, f"{scenario}: {report.error}"
    assert report.results, scenario
    tried: set[str] = set()
    titles = [r.title for r in report.results]
    for title in {t for t in titles if titles.count(t) > 1}:
        walk.problems.append(f"{scenario}: the title {title!r} names two findings")
    for result in report.results:
        lines = [result.summary, *result.details]
        twice = {line for line in lines if lines.count(line) > 1}
        if twice:
            walk.problems.append(f"{scenario} {result.id}: listed twice: {sorted(twice)}")
        head = report.head.get("python") if report.head else None
        if (
            head
            and not head.get("exact")
            and str(head.get("value")) in result.summary
            and "guess" not in result.summary
        ):
            walk.problems.append(f"{scenario} {result.id}: the guessed Python {head['value']} is not labelled a guess")
        fix = result.remediation
        if fix is None:
            continue
        for command in fix.commands:
            walk.commands.append((scenario, result.id, command))
            judge_command(walk, f"{scenario} {result.id}", command, environ, cwd, tried)


# ----------------------------------------------------------------------------- scenarios


def lint_problems(folder: Path) -> Path:
    """A compose file the lint faults: workers on another image, no --block, the dashboard on all interfaces."""
    doc = copy.deepcopy(BASE)
    head = doc["services"]["ray-head"]
    head["command"] = head["command"].replace(" --block", "").replace("--dashboard-host=0.0.0.0 ", "")
    head["ports"] = ["8265:8265", "10001:10001"]
    head["shm_size"] = "64m"
    worker = doc["services"]["ray-worker"]
    worker["image"] = "rayproject/ray:2.40.0-py311-cpu"
    worker["deploy"]["resources"]["limits"]["cpus"] = "64"
    path = folder / "bad-compose.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wrong_pins(folder: Path) -> Path:
    path = folder / "packages.txt"
    path.write_text("ray[default]==2.40.0\nrequests==0.0.1\nsix\n")
    return path


Scenario = Callable[[Path], Iterator[TargetOptions]]


def scenarios(folder: Path) -> Iterator[tuple[str, TargetOptions]]:
    yield "shipped compose", TargetOptions(compose=SHIPPED)
    yield "compose with lint problems", TargetOptions(compose=lint_problems(folder))
    yield "dead --address", TargetOptions(address=f"127.0.0.1:{free_port()}")
    yield "--image", TargetOptions(image=IMAGE)
    yield "wrong pins", TargetOptions(image=IMAGE, requirements=wrong_pins(folder))
    kuberay = folder / "kuberay.yaml"
    kuberay.write_text(KUBERAY_GPU)
    yield "KubeRay file", TargetOptions(cluster_file=kuberay)


def test_walk_every_suggestion_without_a_cluster(tmp_path: Path, clean_env: dict[str, str]) -> None:
    walk = Walk()
    for name, options in scenarios(tmp_path):
        report = run_check(options, environ=clean_env, cwd=tmp_path)
        walk_report(walk, name, report, clean_env, tmp_path)
    with FakeHTTP(default=HTML) as server:  # a server that is not Ray
        report = run_check(TargetOptions(address=f"127.0.0.1:{server.port}"), environ=clean_env, cwd=tmp_path)
        walk_report(walk, "not Ray", report, clean_env, tmp_path)
    print(walk.summary())
    print("\n".join(" | ".join(c) for c in walk.commands))
    assert len(walk.commands) >= 8, walk.summary()  # the scenarios do suggest commands: the walk is not empty
    assert not walk.problems, walk.summary() + "\n" + "\n".join(walk.problems)


@pytest.mark.cluster
def test_walk_every_suggestion_against_a_live_head(ray_head: Any, tmp_path: Path, clean_env: dict[str, str]) -> None:
    walk = Walk()
    options = TargetOptions(
        address=ray_head.dashboard_url, client_port=ray_head.ports["client"], requirements=wrong_pins(tmp_path)
    )
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    walk_report(walk, "live head", report, clean_env, tmp_path)
    print(walk.summary())
    assert walk.commands, walk.summary()
    assert not walk.problems, walk.summary() + "\n" + "\n".join(walk.problems)


# ----------------------------------------------------------------------------- how raydoctor names itself

VENV_SCRIPT = Path(sys.executable).parent / "raydoctor"  # the console script of the interpreter running the tests


def without(environ: dict[str, str], folder: Path) -> dict[str, str]:
    """``environ`` with ``folder`` taken off PATH (the README's install never puts .venv/bin there)."""
    keep = [p for p in environ.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != folder.resolve()]
    return {**environ, "PATH": os.pathsep.join(keep)}


def test_self_command_in_process_is_this_interpreter() -> None:
    """Under pytest raydoctor was not started as a console script: ``<sys.executable> -m doctor``, which runs."""
    argv = remedies.self_command({"PATH": ""})
    assert argv == [sys.executable, "-m", "doctor"]
    done = subprocess.run([*argv, "--version"], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("raydoctor ")


def test_self_command_bare_only_for_this_install(tmp_path: Path) -> None:
    if not VENV_SCRIPT.is_file():
        pytest.skip("this interpreter has no raydoctor console script (not an installed venv)")
    assert remedies.self_command({"PATH": str(VENV_SCRIPT.parent)}) == ["raydoctor"]
    link = tmp_path / "links"
    link.mkdir()
    (link / "raydoctor").symlink_to(VENV_SCRIPT)  # pipx's ~/.local/bin/raydoctor is such a link
    assert remedies.self_command({"PATH": str(link)}) == ["raydoctor"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "raydoctor").write_text("#!/usr/bin/python3\nprint('another raydoctor')\n")
    (other / "raydoctor").chmod(0o755)
    # Another install first on PATH: never the bare name.
    assert remedies.self_command({"PATH": os.pathsep.join([str(other), str(VENV_SCRIPT.parent)])})[0] != "raydoctor"


def cli_suggestions(environ: dict[str, str], cwd: Path, *args: str) -> list[str]:
    done = subprocess.run(
        [str(VENV_SCRIPT), "check", "--json", *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=240
    )
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads(done.stdout)
    return [c for r in doc["results"] if r.get("remediation") for c in r["remediation"]["commands"]]


def test_the_cli_names_itself_as_it_was_started(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """The console script off PATH: its absolute path; on PATH (this same install): bare ``raydoctor``."""
    if not VENV_SCRIPT.is_file():
        pytest.skip("this interpreter has no raydoctor console script (not an installed venv)")
    off = without(clean_env, VENV_SCRIPT.parent)
    fixes = [c for c in cli_suggestions(off, tmp_path, "--image", IMAGE) if " fix " in f" {c} "]
    assert fixes and all(shlex.split(c)[:2] == [str(VENV_SCRIPT), "fix"] for c in fixes), fixes
    walk = Walk()
    for command in fixes:
        judge_command(walk, "cli off PATH", command, off, tmp_path, set())
    assert not walk.problems, walk.problems
    on = {**off, "PATH": os.pathsep.join([str(VENV_SCRIPT.parent), off["PATH"]])}
    fixes = [c for c in cli_suggestions(on, tmp_path, "--image", IMAGE) if " fix " in f" {c} "]
    assert fixes and all(shlex.split(c)[:2] == ["raydoctor", "fix"] for c in fixes), fixes


# ----------------------------------------------------------------------------- docker compose only where it answers

FAKE_DOCKER = Path(__file__).resolve().parent / "fake_docker"


def docker_env(environ: dict[str, str], tmp_path: Path, *, compose: bool, engine: bool) -> dict[str, str]:
    """The fake docker first on PATH, and no standalone docker-compose: whatever this machine has installed,
    "the plugin does not answer" must mean no compose at all here. The engine has 4 CPUs, so the tutorial's
    worker (cpus: '3') fits (``test_a_file_docker_would_refuse_gets_its_fix_not_a_start`` has 2)."""
    rest = path_without(environ.get("PATH", ""), ["docker-compose"], tmp_path / "no-docker-compose")
    return {
        **environ,
        "PATH": os.pathsep.join([str(FAKE_DOCKER), rest]),
        "FAKE_DOCKER_COMPOSE": "1" if compose else "0",
        "FAKE_DOCKER_ENGINE": "1" if engine else "0",
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "FAKE_DOCKER_NCPU": "4",
    }


def start_fixes(report: Report) -> dict[str, Any]:
    return {r.id: r.remediation for r in report.results if r.code.endswith(("cluster_down", "compose_not_running"))}


def test_compose_up_is_suggested_once_where_plugin_and_engine_answer(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = docker_env(clean_env, tmp_path, compose=True, engine=True)
    report = run_check(TargetOptions(compose=SHIPPED, roundtrip=False), environ=env, cwd=tmp_path)
    fixes = start_fixes(report)
    assert fixes["head.source"].commands == (f"docker compose -f {SHIPPED} up -d",)
    # The stopped cluster's network findings point to head.source instead of repeating it.
    assert {"network.ports", "network.dashboard"} <= set(fixes)
    assert all(not fixes[i].commands and "head.source" in fixes[i].text for i in ("network.ports", "network.dashboard"))
    calls = [" ".join(json.loads(line)) for line in (tmp_path / "docker.log").read_text().splitlines()]
    # The engine and the plugin come from the run's one Docker probe (ClientInfo.Plugins), asked once.
    assert calls.count("info --format {{json .}}") == 1 and "compose version" not in calls
    walk = Walk()
    walk_report(walk, "compose, plugin answers", report, env, tmp_path)
    assert walk.commands and not walk.problems, walk.problems


@pytest.mark.parametrize("named", [True, False])
def test_a_file_docker_would_refuse_gets_its_fix_not_a_start(
    tmp_path: Path, clean_env: dict[str, str], named: bool
) -> None:
    """The tutorial's worker asks for 3 CPUs of a 2-CPU engine: `up -d` would fail where pasted (Docker:
    "Range of CPUs…"), so head.source offers the file's fix instead; raydoctor's own copy (not named) is
    copied here first, since fix --cluster edits only a file the user named or this folder's."""
    env = {**docker_env(clean_env, tmp_path, compose=True, engine=True), "FAKE_DOCKER_NCPU": "2"}
    options = TargetOptions(compose=SHIPPED if named else None, roundtrip=False)
    report = run_check(options, environ=env, cwd=tmp_path)
    start = start_fixes(report)["head.source"]
    assert "Range of CPUs is from 0.01 to 2.00" in start.text and not any("up -d" in c for c in start.commands)
    if named:
        assert len(start.commands) == 1 and start.commands[0].endswith(f"fix --cluster --compose {SHIPPED}")
    else:
        copy = tmp_path / "compose" / "cpu-ray-cluster.yaml"
        assert start.commands[:2] == (f"mkdir -p {tmp_path / 'compose'}", f"cp {report.target['compose']} {copy}")
        assert start.commands[-1].endswith("fix --cluster"), start.commands


@pytest.mark.parametrize(
    "compose, engine, words",
    [
        (False, True, "docker compose plugin does not answer"),
        (True, False, "No Docker engine answers here"),
        (False, False, "No Docker engine answers here"),
    ],
)
def test_no_compose_up_where_it_cannot_run(
    tmp_path: Path, clean_env: dict[str, str], compose: bool, engine: bool, words: str
) -> None:
    env = docker_env(clean_env, tmp_path, compose=compose, engine=engine)
    report = run_check(TargetOptions(compose=SHIPPED, roundtrip=False), environ=env, cwd=tmp_path)
    fixes = start_fixes(report)
    assert not fixes["head.source"].commands and words in fixes["head.source"].text
    said = [r.id for r in report.results if r.remediation and words in r.remediation.text]
    assert said == ["head.source"]  # said once


def test_a_guessed_patch_says_so_in_summary_and_remedy(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """``--image …-py312-cpu``: 3.12.9 comes from the table of known builds, and every place showing it says so."""
    report = run_check(TargetOptions(image=IMAGE, roundtrip=False), environ=clean_env, cwd=tmp_path)
    assert report.head["python"]["exact"] is False
    python = next(r for r in report.results if r.id == "versions.python")
    assert python.status.value == "fail" and "3.12.9 is a guess" in python.summary
    assert python.remediation is not None and "3.12.9 is a guess" in python.remediation.text
    source = next(r for r in report.results if r.id == "head.source")
    assert "a guess" in source.summary


def test_no_docker_at_all_says_what_to_install(tmp_path: Path) -> None:
    from doctor.local.docker_cli import DockerCli

    fix = remedies.start_compose(SHIPPED, DockerCli(None))
    assert not fix.commands and "install Docker with its compose plugin" in fix.text


# -- issue 19, case 5: suggested commands run where they are pasted ---------------------------------


def test_root_commands_have_no_sudo_for_root_and_sudo_only_where_installed(tmp_path: Path, monkeypatch) -> None:
    bare = path_without(os.environ.get("PATH", ""), ["sudo"], tmp_path / "bare")
    with_sudo = tmp_path / "sudo-bin"
    with_sudo.mkdir()
    (with_sudo / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (with_sudo / "sudo").chmod(0o755)
    argv = ["systemctl", "restart", "docker"]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert remedies.as_root(argv, {"PATH": f"{with_sudo}:{bare}"}) == "systemctl restart docker"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert remedies.as_root(argv, {"PATH": f"{with_sudo}:{bare}"}) == "sudo systemctl restart docker"
    assert remedies.as_root(argv, {"PATH": bare}) == "systemctl restart docker"


def test_gpu_remedies_name_no_program_that_is_not_installed(tmp_path: Path) -> None:
    bare = path_without(os.environ.get("PATH", ""), ["nvidia-smi", "nvidia-ctk"], tmp_path / "bare")
    toolkit = remedies.nvidia_toolkit({"PATH": bare})
    assert toolkit.commands == () and "Install the NVIDIA Container Toolkit" in toolkit.text
    assert remedies.nvidia_smi({"PATH": bare}) == ()
    tools = tmp_path / "nvidia-bin"
    tools.mkdir()
    for name in ("nvidia-smi", "nvidia-ctk"):
        (tools / name).write_text("#!/bin/sh\nexit 0\n")
        (tools / name).chmod(0o755)
    env = {"PATH": f"{tools}:{bare}"}
    assert remedies.nvidia_smi(env) == ("nvidia-smi",)
    # A GPU request needs the hook, which only installing the package brings: no command, whatever is installed.
    hook = remedies.nvidia_toolkit(env)
    assert hook.commands == () and "nvidia-container-runtime-hook" in hook.text
    configure = remedies.nvidia_toolkit(env, runtime=True).commands[0]  # `runtime: nvidia` needs the runtime
    assert configure.endswith("nvidia-ctk runtime configure --runtime=docker")
    assert configure.startswith("sudo ") == (os.geteuid() != 0 and shutil.which("sudo", path=bare) is not None)


def test_jobs_client_fix_names_raydoctor_as_it_runs_here(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """``--mode jobs`` with an interpreter without Ray: the fix command reaches this raydoctor even where
    PATH has no ``raydoctor`` (never a bare name that would not run)."""
    import venv as venv_module

    from doctor.checks.jobs import job_client
    from doctor.context import CheckContext

    env_dir = tmp_path / "no-ray"
    venv_module.create(env_dir, with_pip=False)
    bare = path_without(clean_env["PATH"], ["raydoctor"], tmp_path / "bare")
    environ = {**clean_env, "PATH": bare}
    ctx = CheckContext(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", mode="jobs", python=str(env_dir / "bin" / "python")),
        environ=environ,
        cwd=tmp_path,
    )
    res = job_client(ctx)
    assert res.code == "jobs.client.missing", res.summary
    fix = res.remediation.commands[-1]
    assert fix.endswith("fix --image rayproject/ray:2.49.2-py312-cpu --mode jobs"), fix
    assert not fix.startswith("raydoctor "), fix
    program = shlex.split(fix)[0]
    assert os.path.isabs(program) and os.access(program, os.X_OK), fix
