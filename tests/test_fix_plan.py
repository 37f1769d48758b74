"""fix's plan: from check's facts to what will be built, and the CLI up to the point of acting.

Nothing here builds an env: plans are made from hand-written typed facts (the
``Checked`` that ``doctor.fix.plan.gather`` makes of a check run: ``HeadFacts``,
``LocalFacts`` and findings read by code) and from ``--image`` targets, which need
no cluster.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from doctor.errors import FixError, UsageError
from doctor.fix.export import HEADER, check_export_target, environment_yml, write_export
from doctor.fix.plan import (
    ABSENT,
    BUILD,
    FOREIGN,
    NOTHING,
    REBUILD,
    REFUSE,
    UP_TO_DATE,
    Checked,
    FixOptions,
    activation_commands,
    conda_env_name,
    head_target,
    judge_local,
    make_plan,
    plan_install,
)
from doctor.fix.venv import MARKER, env_dir_name, venv_python, write_marker
from doctor.head.facts import HeadFacts
from doctor.local.interpreter import LocalFacts
from doctor.model import Fact, Report, Result, Status
from doctor.options import TargetOptions
from doctor.remedies import env_name
from tests.helpers import pyenv_versions

PYENV = pyenv_versions()
PY312 = PYENV / "3.12.1" / "bin" / "python"
IMAGE = "rayproject/ray:2.49.2-py312-cpu"
needs_pyenv = pytest.mark.needs(pyenv="3.12.1")


def fact(value: str, source: str = "running cluster (http://h:8265/api/v0/cluster_metadata)", exact: bool = True):
    return Fact(value, source, exact)


def local_facts(executable: str, python: str, ray: str | None = None, chosen_by: str = "python3 on PATH") -> LocalFacts:
    dists = {"ray": ray} if ray else {}
    return LocalFacts(executable, python, "CPython", "x86_64", "Linux", "/p", "/p", chosen_by, dists)


LOCAL311 = local_facts("/usr/bin/python3", "3.11.7")
UNSET = object()


def report(head_python=fact("3.12.1"), head_ray=fact("2.49.2"), local=UNSET, results=(), problems=()) -> Checked:
    """What check judged, typed (named ``report`` for history: it is a ``Checked``)."""
    return Checked(
        HeadFacts(ray=head_ray, python=head_python, sources_tried=("dashboard",), problems=tuple(problems)),
        LOCAL311 if local is UNSET else local,
        interpreter="/usr/bin/python3",
        chosen_by="python3 on PATH",
        findings=tuple(results),
        target={"kind": "address"},
    )


def res(check_id: str, status: Status, summary: str = "", code: str = "") -> Result:
    return Result(
        check_id, check_id.split(".")[0], check_id, status, summary, code=code or f"{check_id}.{status.value}"
    )


def options(tmp_path: Path, **kw) -> FixOptions:
    target = kw.pop("target", TargetOptions(address="127.0.0.1:8265"))
    kw.setdefault("search_dirs", [PYENV])
    kw.setdefault("use_conda", False)
    return FixOptions(target=target, env_dir=tmp_path / "envs", **kw)


# -- the head's versions --------------------------------------------------------------


def test_head_python_basis_is_exact_guess_or_minor() -> None:
    assert head_target(report().head).basis == "exact"
    guess = head_target(report(head_python=fact("3.12.9", "table of known builds of 2.49.2-py312-cpu", False)).head)
    assert guess.basis == "guess" and guess.python == "3.12.9"
    assert "a guess" in guess.describe() and "--address" in guess.describe()
    minor = head_target(report(head_python=fact("3.12", "image tag 2.49.2-py312", False)).head)
    assert minor.basis == "minor" and "minor only" in minor.describe()


@pytest.mark.parametrize("missing", ["ray", "python", "both"])
def test_unknown_head_version_refuses_with_how_to_learn_it(missing: str) -> None:
    rep = report(
        head_ray=None if missing in ("ray", "both") else fact("2.49.2"),
        head_python=None if missing in ("python", "both") else fact("3.12.1"),
        problems=["the tag latest names no version"],
    )
    with pytest.raises(UsageError) as info:
        head_target(rep.head)
    text = str(info.value)
    assert info.value.exit_code == 2
    assert "unknown" in text and "the tag latest names no version" in text and "--address" in text
    assert ("Ray" in text) == (missing in ("ray", "both"))


def test_env_names_are_one_rule() -> None:
    assert env_dir_name("2.49.2", "3.12.9") == env_name("2.49.2", "3.12.9") == "ray2.49.2-py3.12.9"
    assert conda_env_name("2.49.2", "3.12.9") == "raydoctor-ray2.49.2-py3.12.9"


# -- the judged interpreter ---------------------------------------------------------------


def test_judged_interpreter_matches_only_when_everything_does() -> None:
    head = head_target(report().head)
    good = local_facts("/e/bin/python", "3.12.1", "2.49.2", "active venv")
    ok = [res("packages.client_extras", Status.OK), res("packages.requirements", Status.OK)]
    assert judge_local(report(local=good, results=ok), head, "client").matches
    patch = judge_local(report(local=local_facts("/e/bin/python", "3.12.0", "2.49.2"), results=ok), head, "client")
    assert not patch.matches and patch.reasons == ["Python 3.12.0 ≠ 3.12.1"]
    ray = judge_local(report(local=local_facts("/e/bin/python", "3.12.1", "2.40.0"), results=ok), head, "client")
    assert ray.reasons == ["Ray 2.40.0 ≠ 2.49.2"]
    bad = [
        res("packages.client_extras", Status.FAIL, code="packages.client_extras.missing"),
        res("packages.requirements", Status.FAIL, "x"),
    ]
    both = judge_local(report(local=good, results=bad), head, "client")
    assert len(both.reasons) == 2 and "ray[client]" in both.reasons[0]
    unusable = judge_local(report(local=None), head, "client")
    assert not unusable.matches and unusable.executable == "/usr/bin/python3"
    assert unusable.reasons == ["it could not be inspected"]


def test_nothing_to_do_when_the_judged_interpreter_matches(tmp_path: Path) -> None:
    local = local_facts("/e/bin/python", "3.12.1", "2.49.2", "active venv")
    plan = make_plan(options(tmp_path), report(local=local), environ={}, cwd=tmp_path)
    assert plan.action == NOTHING and not plan.acts
    assert "/e/bin/python already has Ray 2.49.2 and Python 3.12.1" in plan.reason
    assert plan.install is None and not (tmp_path / "envs").exists()


# -- the plan -----------------------------------------------------------------------------


@needs_pyenv
def test_plan_for_a_wrong_interpreter(tmp_path: Path) -> None:
    (tmp_path / "packages.txt").write_text("requests\nnumpy==1.26.4\n")
    plan = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    assert plan.action == BUILD and plan.acts
    assert plan.env_path == tmp_path / "envs" / "ray2.49.2-py3.12.1"
    assert plan.interpreter is not None and plan.interpreter.how == "existing"
    assert plan.interpreter.path == PY312 and plan.interpreter.version == "3.12.1"
    install = plan.install
    assert install is not None and install.requirements == tmp_path / "packages.txt" and install.count == 2
    assert install.constraints == ["ray==2.49.2"] and install.extra == ["ray[client]==2.49.2"]
    assert install.installer in ("uv", "pip") and install.hash.startswith("sha256:")
    assert "Python 3.11.7 ≠ 3.12.1" in plan.reason and not plan.warnings
    doc = json.loads(json.dumps(plan.to_dict()))
    assert doc["action"] == "build" and doc["head"]["python_basis"] == "exact"
    assert doc["env"]["name"] == "ray2.49.2-py3.12.1" and doc["interpreter"]["how"] == "existing"
    assert not (tmp_path / "envs").exists()  # planning creates nothing


@needs_pyenv
def test_closest_patch_without_conda_is_warned(tmp_path: Path) -> None:
    rep = report(head_python=fact("3.12.9", "table of known builds of 2.49.2-py312-cpu", False))
    plan = make_plan(
        options(tmp_path), rep, environ={"UV_PYTHON_DOWNLOADS": "never"}, cwd=tmp_path
    )  # uv may not download
    assert plan.interpreter is not None and plan.interpreter.how == "closest"
    assert plan.interpreter.version == "3.12.1" and plan.env_name == "ray2.49.2-py3.12.1"  # what it really has
    assert any("a guess" in w for w in plan.warnings)
    assert any("no conda here" in w and "ray://" in w for w in plan.warnings)


@needs_pyenv
def test_conda_is_planned_when_the_exact_patch_is_missing(tmp_path: Path) -> None:
    fake = Path(__file__).parent / "fake_conda" / "conda"
    rep = report(head_python=fact("3.12.9"))
    plan = make_plan(
        options(tmp_path, use_conda=True),
        rep,
        environ={"CONDA_EXE": str(fake), "PATH": "", "UV_PYTHON_DOWNLOADS": "never"},
        cwd=tmp_path,
    )
    assert plan.interpreter is not None and plan.interpreter.how == "conda"
    assert plan.interpreter.conda_env == "raydoctor-ray2.49.2-py3.12.9"
    assert "3.12.1" in (plan.interpreter.fallback or "")
    assert "conda env raydoctor-ray2.49.2-py3.12.9" in plan.interpreter.describe()


@needs_pyenv
def test_the_plan_settles_where_each_fallback_builds(tmp_path: Path) -> None:
    """conda planned for 3.12.9: conda's exact patch, a patch its channels choose (the minor's folder) and the
    nearest patch here each have their env, judged now; execute only looks them up (``Plan.target_for``)."""
    fake = Path(__file__).parent / "fake_conda" / "conda"
    theirs = tmp_path / "envs" / "ray2.49.2-py3.12.1"  # the nearest patch's folder: not raydoctor's
    theirs.mkdir(parents=True)
    plan = make_plan(
        options(tmp_path, use_conda=True),
        report(head_python=fact("3.12.9")),
        environ={"CONDA_EXE": str(fake), "PATH": "", "UV_PYTHON_DOWNLOADS": "never"},
        cwd=tmp_path,
    )
    assert plan.action == BUILD and plan.env_name == "ray2.49.2-py3.12.9" and plan.env.state == ABSENT
    assert [(t.name, t.state, t.action, t.any_patch) for t in plan.fallbacks] == [
        ("ray2.49.2-py3.12", ABSENT, BUILD, True),
        ("ray2.49.2-py3.12.1", FOREIGN, REFUSE, False),
    ]
    assert plan.target_for("3.12.9") == plan.env
    assert plan.target_for("3.12.1") == plan.fallbacks[1]  # the nearest patch: refused, as the plan recorded
    assert plan.target_for("3.12.5") == plan.fallbacks[0]  # a patch no entry names: the minor's folder
    assert plan.target_for("3.11.4") is None  # another minor: fix stops
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.action = NOTHING  # type: ignore[misc]
    assert sorted(p.name for p in (tmp_path / "envs").iterdir()) == ["ray2.49.2-py3.12.1"]  # planning made nothing


@needs_pyenv
def test_the_plans_document_reads_no_disk(tmp_path: Path, monkeypatch) -> None:
    """``Plan.to_dict`` shows what make_plan settled: the kernel's Python comes from the marker read then."""
    first = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    assert first.install is not None
    _fake_env(first.env_path, ray="2.49.2", python="3.12.1", reqs_hash=first.install.hash, interpreter_version="3.12.1")
    opts = options(tmp_path, kernel="", kernel_prefix=tmp_path / "jupyter")
    plan = make_plan(opts, report(), environ={"JUPYTER_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert plan.action == UP_TO_DATE and plan.kernel_python == "3.12.1"

    def no_disk(*args, **kwargs):
        raise AssertionError("Plan.to_dict read the disk")

    monkeypatch.setattr("doctor.fix.plan.read_marker", no_disk)
    monkeypatch.setattr("doctor.fix.venv.read_marker", no_disk)
    monkeypatch.setattr("doctor.fix.venv.trusted_marker", no_disk)
    doc = plan.to_dict()
    assert doc["action"] == "up-to-date" and "Python 3.12.1" in doc["kernel"]["display_name"]


def test_no_interpreter_at_all_is_a_fix_error(tmp_path: Path) -> None:
    with pytest.raises(FixError) as info:
        make_plan(
            options(tmp_path, search_dirs=[]),
            report(head_python=fact("3.12.1")),
            environ={"PATH": "", "UV_PYTHON_DOWNLOADS": "never"},
            cwd=tmp_path,
        )
    assert "no Python 3.12 found" in str(info.value) and "uv python install 3.12.1" in str(info.value)


@needs_pyenv
def test_ray_pinned_elsewhere_is_warned_not_edited(tmp_path: Path) -> None:
    reqs = tmp_path / "packages.txt"
    reqs.write_text("ray[default]==2.40.0\nrequests\n")
    before = reqs.read_bytes()
    plan = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    (warning,) = plan.warnings
    assert "pins ray[default]==2.40.0" in warning and "the file is not edited" in warning
    assert reqs.read_bytes() == before


def test_environment_yml_becomes_pip_requirements(tmp_path: Path) -> None:
    yml = tmp_path / "environment.yml"
    yml.write_text(
        "name: x\ndependencies:\n  - python=3.12.9\n  - pip\n  - numpy=1.26.4\n"
        "  - pip:\n      - ray[default]==2.40.0\n      - requests\n"
    )
    install, warnings = plan_install(yml, "2.49.2", "auto")
    assert install.count == 3 and install.converted is not None
    with install.files() as files:
        text = files[0].read_text()
    assert "numpy==1.26.4" in text and "ray[default]==2.40.0" in text and "requests" in text
    assert any("environment.yml pins ray[default]==2.40.0" in w for w in warnings)
    assert any("python=3.12.9" in w for w in warnings)
    again, _ = plan_install(yml, "2.49.2", "auto")
    assert again.hash == install.hash  # the temporary copy's path does not change the hash


def _fake_env(dest: Path, *, ray: str, python: str, reqs_hash: str, interpreter_version: str) -> None:
    venv_python(dest).parent.mkdir(parents=True)
    venv_python(dest).write_text("")
    write_marker(
        dest,
        ray_version=ray,
        python_version=python,
        requirements_hash=reqs_hash,
        interpreter_version=interpreter_version,
    )


@needs_pyenv
def test_existing_env_up_to_date_rebuild_or_foreign(tmp_path: Path) -> None:
    first = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    assert first.install is not None
    dest = first.env_path
    _fake_env(dest, ray="2.49.2", python="3.12.1", reqs_hash=first.install.hash, interpreter_version="3.12.1")
    plan = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    assert plan.action == UP_TO_DATE and "already holds Ray 2.49.2 on Python 3.12.1" in plan.reason
    assert make_plan(options(tmp_path, rebuild=True), report(), environ={}, cwd=tmp_path).action == REBUILD
    (tmp_path / "packages.txt").write_text("requests\n")  # the requirements changed: rebuild
    changed = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    assert changed.action == REBUILD and "for something else" in changed.reason
    (dest / MARKER).unlink()  # no marker: not ours
    with pytest.raises(FixError, match="raydoctor did not create it"):
        make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)


@needs_pyenv
def test_env_from_a_nearby_patch_is_rebuilt_once_the_exact_one_is_here(tmp_path: Path) -> None:
    first = make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path)
    assert first.install is not None
    _fake_env(first.env_path, ray="2.49.2", python="3.12.1", reqs_hash=first.install.hash, interpreter_version="3.12.0")
    assert make_plan(options(tmp_path), report(), environ={}, cwd=tmp_path).action == REBUILD


# -- export and activation ---------------------------------------------------------------


def test_export_never_overwrites_a_file_raydoctor_did_not_write(tmp_path: Path) -> None:
    theirs = tmp_path / "environment.yml"
    theirs.write_text("name: study_p3129\n")
    with pytest.raises(UsageError, match="--force"):
        check_export_target(theirs, force=False)
    check_export_target(theirs, force=True)
    text = environment_yml("ray2.49.2-py3.12.1", "3.12.1", ["ray==2.49.2", "requests==2.32.3"])
    with pytest.raises(UsageError):
        write_export(theirs, text, force=False)
    assert theirs.read_text() == "name: study_p3129\n"
    ours = tmp_path / "out.yml"
    assert write_export(ours, text, force=False) == "written"
    assert write_export(ours, text, force=False) == "unchanged"
    assert write_export(ours, text.replace("3.12.1", "3.12.2"), force=False) == "updated"
    doc = yaml.safe_load(ours.read_text())
    assert ours.read_text().startswith(HEADER)
    assert doc["dependencies"][:2] == ["python=3.12.2", "pip"]
    assert doc["dependencies"][2]["pip"] == ["ray==2.49.2", "requests==2.32.3"]
    assert doc["channels"] == ["conda-forge"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX layout")
def test_activation_commands(tmp_path: Path) -> None:
    env = tmp_path / "envs" / "ray2.49.2-py3.12.1"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "activate.ps1").write_text("")
    cmds = activation_commands(env, tmp_path)
    assert cmds == {
        "bash/zsh": "source envs/ray2.49.2-py3.12.1/bin/activate",
        "fish": "source envs/ray2.49.2-py3.12.1/bin/activate.fish",
        "PowerShell": "& './envs/ray2.49.2-py3.12.1/bin/activate.ps1'",
    }
    elsewhere = activation_commands(env, Path("/somewhere/else"))
    assert elsewhere["bash/zsh"] == f"source {env}/bin/activate"


# -- the CLI, short of building -----------------------------------------------------------


def fix_cli(args: list[str], cwd: Path, env: dict[str, str], stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "doctor", "fix", *args],
        cwd=cwd,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_pyenv
def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path: Path, clean_env) -> None:
    (tmp_path / "packages.txt").write_text("requests\n")
    proc = fix_cli(["--image", IMAGE, "--dry-run", "--no-conda"], tmp_path, clean_env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Plan (raydoctor fix)" in out and "Python 3.12.9 (a guess" in out
    # named after the Python it will hold: 3.12.9 where uv or this machine has it, else the closest 3.12
    assert re.search(r"create envs/ray2\.49\.2-py3\.12\.\d+", out) and "ray[client]==2.49.2" in out
    assert "--dry-run: nothing was created" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "packages.txt"]
    doc = json.loads(fix_cli(["--image", IMAGE, "--dry-run", "--json", "--no-conda"], tmp_path, clean_env).stdout)
    # one document type: fix's is a Report (command "fix") with the plan, the steps and the outcome
    assert doc["schema"] == "raydoctor.report/1" and doc["command"] == "fix" and doc["exit_code"] == 0
    assert doc["error"] is None and doc["results"] == [] and doc["outcome"]["dry_run"] is True
    assert doc["plan"]["action"] == "build" and doc["steps"] == [] and doc["outcome"]["env"] is None
    assert doc["outcome"]["action"] == "build" and doc["head"]["python"]["value"] == "3.12.9"


@needs_pyenv
def test_no_terminal_and_no_yes_refuses(tmp_path: Path, clean_env) -> None:
    proc = fix_cli(["--image", IMAGE, "--no-conda"], tmp_path, clean_env)
    assert proc.returncode == 2
    assert "stdin is not a terminal" in proc.stderr and "--yes" in proc.stderr
    assert not (tmp_path / "envs").exists()


@needs_pyenv
def test_answering_no_at_the_prompt_does_nothing(tmp_path: Path, clean_env) -> None:
    primary, secondary = pty.openpty()
    try:
        os.write(primary, b"n\n")
        proc = fix_cli(["--image", IMAGE, "--no-conda"], tmp_path, {**clean_env, "NO_COLOR": "1"}, stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == 1, proc.stderr
    assert (
        re.search(r"Build envs/ray2\.49\.2-py3\.12\.\d+ now\? \[y/N\]", proc.stdout) and "Nothing done." in proc.stdout
    )
    assert not (tmp_path / "envs").exists()


def test_unknown_head_version_exits_2_with_one_json_document(tmp_path: Path, clean_env) -> None:
    proc = fix_cli(["--image", "rayproject/ray:latest", "--json", "--yes"], tmp_path, clean_env)
    assert proc.returncode == 2, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "raydoctor.report/1" and doc["command"] == "fix"
    assert doc["exit_code"] == 2 and doc["plan"] is None and doc["outcome"]["action"] is None
    assert "unknown" in doc["error"] and "--address" in doc["error"]
    text = fix_cli(["--image", "rayproject/ray:latest", "--yes"], tmp_path, clean_env)
    assert text.returncode == 2 and text.stderr.count("\n") == 1 and "raydoctor: error:" in text.stderr


@needs_pyenv
def test_export_refuses_a_foreign_environment_yml_before_building(tmp_path: Path, clean_env) -> None:
    theirs = tmp_path / "environment.yml"
    theirs.write_text("name: study_p3129\n")
    proc = fix_cli(["--image", IMAGE, "--no-conda", "--yes", "--export"], tmp_path, clean_env)
    assert proc.returncode == 2 and "raydoctor did not write it" in proc.stderr
    assert theirs.read_text() == "name: study_p3129\n" and not (tmp_path / "envs").exists()


def test_bad_options_are_usage_errors(tmp_path: Path, clean_env) -> None:
    proc = fix_cli(["--image", IMAGE, "--installer", "conda"], tmp_path, clean_env)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = fix_cli(["--image", IMAGE, "--lock-timeout", "-1"], tmp_path, clean_env)
    assert proc.returncode == 2
    proc = fix_cli(["--image", IMAGE, "--requirements", "nope.txt", "--dry-run"], tmp_path, clean_env)
    assert proc.returncode == 2 and "nope.txt" in proc.stderr


# -- fix as a library call, and dry runs that cannot create --------------------------------


def test_dry_run_with_conda_on_path_never_runs_conda_create(tmp_path: Path, clean_env) -> None:
    """The plan holds discovery results and a provider's description: a dry run cannot reach `conda create`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "conda").symlink_to(Path(__file__).parent / "fake_conda" / "conda")
    log = tmp_path / "conda.log"
    env = {
        **clean_env,
        "PATH": f"{bindir}{os.pathsep}{clean_env.get('PATH', '')}",
        "FAKE_CONDA_ROOT": str(tmp_path / "conda"),
        "FAKE_CONDA_LOG": str(log),
        "UV_PYTHON_DOWNLOADS": "never",  # uv's setting: auto skips uv's managed Pythons
    }
    env.pop("CONDA_EXE", None)
    env.pop("MAMBA_EXE", None)
    proc = fix_cli(["--image", IMAGE, "--dry-run", "--json"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["plan"]["interpreter"]["how"] == "conda"  # conda would be asked: but not in a dry run
    assert doc["plan"]["interpreter"]["conda_env"] == "raydoctor-ray2.49.2-py3.12.9"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert not [c for c in calls if c[:1] == ["create"]] and calls == []  # not even a query
    assert not (tmp_path / "conda").exists() and not (tmp_path / "envs").exists()


def test_planning_cannot_import_anything_that_creates() -> None:
    """By construction: plan and discovery import no provider, no conda driver, no executor."""
    code = (
        "import sys, doctor.fix.plan, doctor.fix.discover, doctor.commands.fix; "
        "print(sorted(m for m in sys.modules if m in "
        "('doctor.fix.conda', 'doctor.fix.providers', 'doctor.fix.execute')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@needs_pyenv
def test_fix_returns_one_report(tmp_path: Path, clean_env) -> None:
    """fix is a Report (command "fix"): plan, steps and outcome in extra, one error, one exit-code rule."""
    from doctor.fix.execute import run_fix
    from doctor.fix.progress import Steps

    asked: list[str] = []
    target = TargetOptions(image=IMAGE)
    dry = run_fix(
        options(tmp_path, target=target, dry_run=True),
        Steps(),
        confirm=lambda plan: asked.append(plan.action) or True,
        environ=clean_env,
        cwd=tmp_path,
    )
    assert isinstance(dry, Report) and dry.command == "fix" and dry.exit_code == 0 and dry.error is None
    assert set(dry.extra) == {"plan", "steps", "outcome"} and dry.extra["plan"]["action"] == BUILD
    assert asked == [] and not (tmp_path / "envs").exists()  # a dry run never asks, never builds
    no = run_fix(options(tmp_path, target=target), Steps(), confirm=lambda plan: False, environ=clean_env, cwd=tmp_path)
    assert no.exit_code == 1 and no.extra["outcome"]["declined"] and "no" in (no.error or "")
    assert no.to_dict()["exit_code"] == 1 and not (tmp_path / "envs").exists()
    unknown = run_fix(
        options(tmp_path, target=TargetOptions(image="rayproject/ray:latest")),
        Steps(),
        confirm=lambda plan: True,
        environ=clean_env,
        cwd=tmp_path,
    )
    assert unknown.exit_code == 2 and unknown.extra["plan"] is None and "unknown" in (unknown.error or "")
    assert "FixOutcome" not in vars(__import__("doctor.fix.execute", fromlist=["x"]))
