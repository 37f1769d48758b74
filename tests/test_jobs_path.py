"""The Jobs API path: packing as Ray packs (checked against Ray's own packaging.py in the Ray test venv),
the runtime_env judged before upload, and real jobs on real heads (``cluster``)."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.checks.jobs import name_cause
from doctor.errors import UsageError
from doctor.head.runtime_env import (
    FILE_SIZE_WARNING,
    load_runtime_env,
    pack,
    package_limit,
    write_zip,
)
from doctor.model import Status
from doctor.options import TargetOptions

RAY_SIDE = """
import json, sys, tempfile, zipfile
from pathlib import Path
from ray._private.runtime_env.packaging import get_uri_for_directory, _zip_files
d, ex = sys.argv[1], json.loads(sys.argv[2])
out = Path(tempfile.mkdtemp()) / "p.zip"
_zip_files(d, ex, str(out))
print(json.dumps({"uri": get_uri_for_directory(d, ex), "size": out.stat().st_size,
                  "names": sorted(zipfile.ZipFile(out).namelist())}))
"""


def make_project(root: Path) -> Path:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "build").mkdir()
    (root / "data").mkdir()
    (root / "emptyd").mkdir()
    (root / "main.py").write_text("print('hi')\n")
    (root / "sub" / "b.py").write_text("x = 1\n")
    (root / "sub" / "deep" / "c.log").write_text("log\n")
    (root / "sub" / "k.tmp").write_text("k\n")
    (root / "build" / "out.o").write_bytes(b"\0" * 100)
    (root / "data" / "big.bin").write_bytes(os.urandom(3000))
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "sub" / ".gitignore").write_text("*.tmp\n")
    return root


def names(package) -> list[str]:
    return sorted(m.name for m in package.members)


# -- packing rules, no head ----------------------------------------------------------------


def test_gitignore_files_at_every_level_and_excludes_apply(tmp_path):
    pkg = pack(make_project(tmp_path / "p"), ["data/"], {})
    assert names(pkg) == [".gitignore", "emptyd/", "main.py", "sub/.gitignore", "sub/b.py"]
    assert pkg.gitignore


def test_ignore_gitignore_env_keeps_ignored_files(tmp_path):
    pkg = pack(make_project(tmp_path / "p"), [], {"RAY_RUNTIME_ENV_IGNORE_GITIGNORE": "1"})
    assert {"build/out.o", "sub/deep/c.log", "sub/k.tmp", "data/big.bin"} <= set(names(pkg))
    assert not pkg.gitignore


def test_negated_and_anchored_excludes_match_as_gitwildmatch(tmp_path):
    root = make_project(tmp_path / "p")
    pkg = pack(root, ["/main.py", "*.py", "!sub/b.py"], {})
    assert "main.py" not in names(pkg)
    assert "sub/b.py" in names(pkg)


def test_stored_zip_size_is_the_real_zip_size(tmp_path):
    root = make_project(tmp_path / "p")
    (root / "ünïcode name.txt").write_text("u")
    pkg = pack(root, [], {})
    real = write_zip(pkg, tmp_path / "out.zip")
    assert pkg.zip_size == real
    with zipfile.ZipFile(tmp_path / "out.zip") as z:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())  # as Ray writes it


def test_largest_files_and_the_per_file_warning(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "model.bin").write_bytes(b"\0" * (FILE_SIZE_WARNING + 1))
    (root / "small.py").write_text("x")
    pkg = pack(root, [], {})
    assert [m.name for m in pkg.over_warning()] == ["model.bin"]
    assert pkg.largest(1)[0].name == "model.bin"


def test_secret_like_names_are_left_out_named_never_read(tmp_path):
    root = tmp_path / "p"
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".git" / "objects" / "ab").write_text("x")
    (root / ".env").write_text("TOKEN=hunter2\n")
    (root / "keys").mkdir()
    (root / "keys" / "server.pem").write_text("-----BEGIN-----")
    (root / "id_rsa.pub").write_text("ssh-rsa")
    (root / "aws_credentials.json").write_text("{}")
    (root / "ok.py").write_text("")
    package = pack(root, [], {})
    found = [str(item) for item in package.left_out]
    assert {item.name for item in package.left_out} == {
        ".env",
        "keys/server.pem",
        "id_rsa.pub",
        "aws_credentials.json",
        ".git/",
    }
    assert names(package) == ["ok.py"]
    assert "ok.py" not in found and not any("hunter2" in f for f in found)


def test_symlink_loop_is_refused_not_recursed(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "loop").symlink_to(root)
    from doctor.head.runtime_env import PackError

    with pytest.raises(PackError, match="links back"):
        pack(root, [], {})


def test_limit_from_env_or_ray_default():
    assert package_limit({}) == (512 * 1024 * 1024, package_limit({})[1])
    assert "default" in package_limit({})[1]
    limit, where = package_limit({"RAY_max_grpc_message_size": "1048576"})
    assert limit == 1048576 and "RAY_max_grpc_message_size=1048576" in where


def test_runtime_env_file_yaml_json_and_bad_input(tmp_path):
    (tmp_path / "re.yaml").write_text("working_dir: src\nexcludes: ['*.bin']\npip: [requests]\n")
    env = load_runtime_env(tmp_path / "re.yaml", tmp_path)
    assert env.working_dir == tmp_path / "src" and env.excludes == ["*.bin"] and env.pip_lines() == ["requests"]
    (tmp_path / "re.json").write_text(json.dumps({"pip": {"packages": ["six"]}}))
    assert load_runtime_env(tmp_path / "re.json", tmp_path).pip_lines() == ["six"]
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(UsageError, match="mapping"):
        load_runtime_env(tmp_path / "bad.yaml", tmp_path)
    (tmp_path / "bad2.yaml").write_text("working_dir: [1]\n")
    with pytest.raises(UsageError, match="working_dir must be"):
        load_runtime_env(tmp_path / "bad2.yaml", tmp_path)


def test_bad_runtime_env_is_one_line_exit_2(tmp_path, clean_env):
    (tmp_path / "re.yaml").write_text("pip: [unclosed\n")
    done = subprocess.run(
        [
            "raydoctor",
            "check",
            "--address",
            "127.0.0.1:9",
            "--mode",
            "jobs",
            "--runtime-env",
            str(tmp_path / "re.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**clean_env, "PATH": f"{Path(os.sys.executable).parent}{os.pathsep}{clean_env.get('PATH', '')}"},
        timeout=60,
    )
    assert done.returncode == 2
    assert "not valid YAML" in done.stderr and "Traceback" not in done.stderr


def test_ray_pin_in_pip_fails_before_upload(tmp_path, clean_env):
    (tmp_path / "main.py").write_text("")
    (tmp_path / "re.yaml").write_text("working_dir: .\npip: ['ray[default]==2.40.0', requests]\n")
    options = TargetOptions(address="127.0.0.1:9", mode="jobs", runtime_env=tmp_path / "re.yaml", timeout=0.5)
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    res = {r.id: r for r in report.results}
    assert res["jobs.runtime_env"].status is Status.FAIL
    assert res["jobs.runtime_env"].code == "jobs.runtime_env.pins_ray"
    assert "ray[default]==2.40.0" in res["jobs.runtime_env"].summary
    assert "jobs.submit" not in res  # only with --jobs / --deep
    assert res["versions.python"].code == "versions.python.jobs_mode"
    assert res["versions.ray"].status is Status.SKIP


def test_causes_named_from_pip_and_network_lines():
    assert name_cause("ERROR: No matching distribution found for nopkg==1.0")[0] == "pip_package"  # type: ignore[index]
    assert "nopkg" in name_cause("ERROR: No matching distribution found for nopkg==1.0")[1]  # type: ignore[index]
    assert name_cause("Failed to establish a new connection: [Errno 111]")[0] == "index_unreachable"  # type: ignore[index]
    assert name_cause("all good") is None


def test_pack_matches_rays_own_packaging(tmp_path, head_python):
    """The same files, the same zip size and the same gcs:// URI as ray/_private/runtime_env/packaging.py."""
    root = make_project(tmp_path / "p")
    excludes = ["data/"]
    done = subprocess.run(
        [str(head_python), "-c", RAY_SIDE, str(root), json.dumps(excludes)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-500:]
    ray = json.loads(done.stdout.strip().splitlines()[-1])
    pkg = pack(root, excludes, {})
    assert names(pkg) == ray["names"]
    assert pkg.zip_size == ray["size"]
    assert pkg.uri() == ray["uri"]


# -- real heads ------------------------------------------------------------------------------


def jobs_check(head, tmp_path, clean_env, head_python, **extra):
    options = TargetOptions(
        address=head.dashboard_url, mode="jobs", python=str(head_python), timeout=5.0, roundtrip=False, **extra
    )
    report = run_check(options, environ=clean_env, cwd=tmp_path)
    return {r.id: r for r in report.results}


@pytest.mark.cluster
def test_project_packs_and_runs_with_times(ray_head, tmp_path, clean_env, head_python):
    (tmp_path / "main.py").write_text("print('hi')\n")
    (tmp_path / ".env").write_text("API_KEY=not-for-the-cluster\n")
    res = jobs_check(ray_head, tmp_path, clean_env, head_python, jobs=True)
    assert res["jobs.client"].status is Status.OK and "needs no env matching" in res["jobs.client"].summary
    assert res["jobs.api"].code == "jobs.api.ok"
    env = res["jobs.runtime_env"]
    assert env.status is Status.OK and env.code == "jobs.runtime_env.ok"  # .env is left out, not uploaded
    assert ".env (looks like a secret)" in env.summary and "not-for-the-cluster" not in json.dumps(env.to_dict())
    sub = res["jobs.submit"]
    assert sub.status is Status.OK, (sub.summary, sub.details)
    for key in ("upload_s", "env_setup_s", "run_s"):
        assert sub.data[key] >= 0
    assert sub.data["deleted"] is True
    assert "upload" in sub.summary and "env setup" in sub.summary


@pytest.mark.cluster
def test_missing_pip_package_named_from_the_setup_log(ray_head, tmp_path, clean_env, head_python):
    (tmp_path / "re.yaml").write_text("pip: ['raydoctor-no-such-package-xyz==1.0']\n")
    res = jobs_check(ray_head, tmp_path, clean_env, head_python, jobs=True, runtime_env=tmp_path / "re.yaml")
    sub = res["jobs.submit"]
    assert sub.status is Status.FAIL and sub.code == "jobs.submit.pip_package"
    assert "raydoctor-no-such-package-xyz" in sub.summary
    assert any(d.startswith("the head's setup log, runtime_env_setup-") for d in sub.details), sub.details


@pytest.mark.cluster
def test_working_dir_over_the_heads_lowered_limit(head_python, tmp_path, clean_env):
    from tests.ray_cluster import RayNode

    node = RayNode(head_python, num_cpus=1, env={"RAY_max_grpc_message_size": str(1024 * 1024)}).start()
    try:
        (tmp_path / "main.py").write_text("print('hi')\n")
        (tmp_path / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024))
        res = jobs_check(node, tmp_path, clean_env, head_python, jobs=True)
        assert res["jobs.runtime_env"].status is Status.OK  # under Ray's default, as far as this machine knows
        sub = res["jobs.submit"]
        assert sub.code == "jobs.submit.too_large", (sub.summary, sub.details)
        assert "1.00 MiB" in sub.summary
        # the same limit given here is judged before anything is sent
        clean = {**clean_env, "RAY_max_grpc_message_size": str(1024 * 1024)}
        options = TargetOptions(address=node.dashboard_url, mode="jobs", python=str(head_python), roundtrip=False)
        report = run_check(options, environ=clean, cwd=tmp_path)
        env = next(r for r in report.results if r.id == "jobs.runtime_env")
        assert env.code == "jobs.runtime_env.too_large"
    finally:
        node.stop()


# -- fix --mode jobs ---------------------------------------------------------------------------


def _checked(local_python: str, version: str, codes: tuple[str, ...] = ()):
    from doctor.fix.plan import Checked
    from doctor.head.facts import HeadFacts
    from doctor.local.interpreter import LocalFacts
    from doctor.model import Fact, Result

    src = "running cluster (http://h:8265/api/v0/cluster_metadata)"
    local = LocalFacts(local_python, version, "CPython", "x86_64", "Linux", "/p", "/p", "--python", {})
    results = tuple(Result(c.rsplit(".", 1)[0], "jobs", "t", Status.OK, "", code=c) for c in codes)
    return Checked(
        HeadFacts(ray=Fact("2.49.2", src, True), python=Fact("3.12.1", src, True), sources_tried=("dashboard",)),
        local,
        interpreter=local_python,
        chosen_by="--python",
        findings=results,
        target={"kind": "address"},
    )


def test_fix_jobs_mode_builds_ray_default_on_the_python_here(tmp_path):
    from doctor.fix.plan import BUILD, NOTHING, FixOptions, make_plan
    from tests.ray_cluster import find_python

    found = find_python("3.11")
    if found is None:
        pytest.skip("no Python 3.11 here")
    version = subprocess.run(
        [str(found), "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / "packages.txt").write_text("requests\n")  # goes to the cluster, not into the local env
    target = TargetOptions(address="127.0.0.1:8265", mode="jobs")
    opts = FixOptions(
        target=target, env_dir=tmp_path / "envs", use_conda=False, search_dirs=[found.parent.parent.parent]
    )
    plan = make_plan(opts, _checked(str(found), version), environ={}, cwd=tmp_path)
    assert plan.action == BUILD
    assert plan.env_name.endswith("-jobs") and f"py{version}" in plan.env_name  # the head's 3.12 is not required
    assert plan.install is not None and plan.install.extra == ["ray[default]==2.49.2"]
    assert plan.install.requirements is None
    assert "job client" in plan.reason
    ok = make_plan(opts, _checked(str(found), version, ("jobs.client.ok",)), environ={}, cwd=tmp_path)
    assert ok.action == NOTHING and "no env matching" in ok.reason
