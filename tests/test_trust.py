"""A repo you just cloned cannot steer raydoctor (issue 20, findings 1-6): its settings file's sensitive
keys wait for `raydoctor trust`, its paths stay inside it, the walk stops at the repository root and
at files other users own, and kernel names cannot reach outside the kernels folder.

Each test plays the hostile repo in a temporary folder, against a recording dashboard on loopback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from doctor.cli import main
from doctor.settings import find_settings, find_settings_noting
from doctor.trust import TRUST_ENV, TrustState, trust_state
from tests.fake_servers import RecordingDashboard
from tests.helpers import parse_cli

TOKEN = "rdt-trust-0123456789abcdef"
IMAGE = "rayproject/ray:2.49.2-py312-cpu"


@pytest.fixture
def repo(tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A freshly cloned repository (a .git folder), the current folder, under the test's home."""
    path = tmp_path / "home" / "clone"
    (path / ".git").mkdir(parents=True)
    monkeypatch.chdir(path)
    return path


def check_json(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(["check", "--json", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out), out


def trust_finding(doc: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in doc["results"] if r["id"] == "local.settings_trust"), None)


# -- 1. the address in a cloned settings file does not get the token ------------------------------


def test_an_untrusted_address_gets_no_token_and_is_named_in_one_finding(repo, capsys, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    rec = RecordingDashboard("token")
    try:
        (repo / "raydoctor.toml").write_text(f'address = "127.0.0.2:{rec.port}"\ntimeout = 2\n')
        code, doc, out = check_json("--no-roundtrip", capsys=capsys)
        assert doc["target"]["kind"] != "address"  # the file's address was set aside: the shipped compose file
        assert rec.auth == []  # nothing was sent to the file's host at all
        assert doc["settings"]["timeout"] == {"value": 2.0, "from": str(repo / "raydoctor.toml")}  # harmless: applied
        found = trust_finding(doc)
        assert found is not None and found["status"] == "warn"
        assert found["data"]["withheld"] == ["address"] and found["data"]["trust"] == TrustState.UNTRUSTED.value
        assert " trust " in " ".join(found["remediation"]["commands"]) and str(repo / "raydoctor.toml") in out
        assert f"would set address = '127.0.0.2:{rec.port}'" in found["details"]

        # trusted: the address applies and the token goes; an edit needs trusting again
        assert main(["trust"]) == 0
        capsys.readouterr()
        code, doc, out = check_json("--no-roundtrip", capsys=capsys)
        assert doc["target"]["kind"] == "address" and trust_finding(doc) is None
        assert f"Bearer {TOKEN}" in rec.auth and TOKEN not in out
        sent = len(rec.auth)
        (repo / "raydoctor.toml").write_text(f'address = "127.0.0.2:{rec.port}"\ntimeout = 3\n')
        code, doc, out = check_json("--no-roundtrip", capsys=capsys)
        assert len(rec.auth) == sent and doc["target"]["kind"] != "address"
        found = trust_finding(doc)
        assert found is not None and found["data"]["trust"] == TrustState.CHANGED.value
        assert "changed since you trusted it" in found["summary"]
    finally:
        rec.close()


def test_nothing_in_the_file_can_trust_it(repo: Path, clean_env: dict[str, str]) -> None:
    """mise's GHSA-436v-8fw5-4mj8: a project file that trusts itself. No key of ours does; an unknown key is an error."""
    (repo / "raydoctor.toml").write_text('trusted = true\naddress = "10.0.0.5"\n')
    with pytest.raises(Exception, match="unknown key 'trusted'"):
        find_settings(repo, clean_env)
    (repo / "raydoctor.toml").write_text('address = "10.0.0.5"\n')
    found = find_settings(repo, clean_env)
    assert found is not None
    assert trust_state(found.path, found.sha256, clean_env) is TrustState.UNTRUSTED
    assert trust_state(found.path, found.sha256, {**clean_env, TRUST_ENV: str(repo)}) is TrustState.TRUSTED_FOR_RUN
    options, _ = parse_cli(["check", "--trust-settings"], repo, clean_env)
    assert options.address == "10.0.0.5"


# -- 2. the repo's own script is not run as "the interpreter" -------------------------------------


def test_an_untrusted_python_is_never_run(repo: Path, capsys, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    script = repo / "tools" / "python"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    script.chmod(0o755)
    (repo / "raydoctor.toml").write_text('python = "tools/python"\n')
    code, doc, _ = check_json("--no-roundtrip", "--image", IMAGE, capsys=capsys)
    assert not ran.exists()
    assert doc["local"]["executable"] != str(script)
    assert trust_finding(doc)["data"]["withheld"] == ["python"]


def test_a_trusted_python_is_said_to_come_from_the_file(repo: Path, capsys) -> None:
    (repo / "raydoctor.toml").write_text('python = "python3"\n')
    assert main(["trust"]) == 0
    capsys.readouterr()
    _, doc, _ = check_json("--no-roundtrip", "--image", IMAGE, capsys=capsys)
    assert doc["local"]["chosen_by"] == f"python = in {repo / 'raydoctor.toml'}"


# -- 3. the walk stops at the repository root and at other users' files ---------------------------


def test_the_walk_stops_at_the_repository_root(tmp_path: Path, clean_env: dict[str, str]) -> None:
    shared = tmp_path / "shared"
    (shared / "clone" / ".git").mkdir(parents=True)
    (shared / "clone" / "src").mkdir()
    (shared / "raydoctor.toml").write_text('address = "10.0.0.5"\n')  # above the clone: never read
    assert find_settings(shared / "clone" / "src", clean_env) is None
    (shared / "clone" / ".git").rmdir()  # no repository: the walk goes on up, as before
    found = find_settings(shared / "clone" / "src", clean_env)
    assert found is not None and found.path == shared / "raydoctor.toml"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")  # CI and these machines are root
def test_a_file_another_user_owns_or_can_write_is_never_read(tmp_path: Path, clean_env, capsys, monkeypatch) -> None:
    shared = tmp_path / "tmp"
    (shared / "proj").mkdir(parents=True)
    planted = shared / "raydoctor.toml"
    planted.write_text('address = "10.0.0.5"\n')
    os.chown(planted, 65534, 65534)  # nobody
    found, refused = find_settings_noting(shared / "proj", clean_env)
    assert found is None and "owned by another user (uid 65534)" in refused[0]
    monkeypatch.chdir(shared / "proj")
    _, doc, _ = check_json("--no-roundtrip", "--image", IMAGE, capsys=capsys)
    finding = trust_finding(doc)
    assert finding is not None and finding["code"] == "local.settings_trust.refused"
    assert doc["target"]["kind"] == "image"
    os.chown(planted, os.getuid(), os.getgid())
    planted.chmod(0o666)
    found, refused = find_settings_noting(shared / "proj", clean_env)
    assert found is None and "can be written by any user" in refused[0]
    planted.chmod(0o664)  # group-writable: a user's own file under umask 002
    assert find_settings_noting(shared / "proj", clean_env)[0] is not None
    planted.chmod(0o644)
    assert find_settings_noting(shared / "proj", clean_env)[0] is not None


# -- 4 and 5. paths a settings file names stay inside its folder ----------------------------------


@pytest.mark.parametrize(
    "line",
    [
        'requirements = "~/.ssh/id_ed25519"',
        'requirements = "/etc/passwd"',
        'requirements = "../outside.txt"',
        'runtime-env = "../re.yaml"',
        'env-dir = "~/.venvs"',
        'kernel-prefix = ".."',
        'python = "../bin/python"',
        'requirements = "link/secret"',  # a symlink that leaves the folder
    ],
)
def test_a_path_that_leaves_the_folder_is_refused_trusted_or_not(repo, capsys, line, tmp_path) -> None:
    outside = tmp_path / "home" / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (repo / "link").symlink_to(outside)
    (repo / "raydoctor.toml").write_text(line + "\n")
    for argv in (["check", "--no-roundtrip"], ["check", "--no-roundtrip", "--trust-settings"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and "leaves the folder that holds the file" in err
        assert "BEGIN OPENSSH" not in err


def test_an_untrusted_runtime_env_is_not_read_or_uploaded(repo, capsys) -> None:
    (repo / "re.yaml").write_text('working_dir: "."\n')
    (repo / "raydoctor.toml").write_text('mode = "jobs"\nruntime-env = "re.yaml"\n')
    _, doc, _ = check_json("--no-roundtrip", "--image", IMAGE, capsys=capsys)
    assert doc["settings"]["mode"]["value"] == "jobs"  # harmless: applied
    assert doc["settings"]["runtime-env"] == {"value": None, "from": "default"}
    assert trust_finding(doc)["data"]["withheld"] == ["runtime-env"]


# -- 6. kernel names cannot reach outside the kernels folder --------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "...", "a/b"])
def test_a_kernel_name_made_of_dots_is_refused_before_anything(repo, capsys, clean_env, name) -> None:
    data = Path(clean_env["HOME"]) / ".local" / "share" / "jupyter"
    (data / "kernels" / "keep").mkdir(parents=True)
    (data / "kernels" / "keep" / "kernel.json").write_text('{"argv": ["python"], "display_name": "keep"}')
    code = main(["fix", "--image", IMAGE, "--kernel", name, "--dry-run"])
    _, err = capsys.readouterr()
    assert code == 2 and "kernel name" in err
    assert (data / "kernels" / "keep" / "kernel.json").is_file()


def test_another_envs_kernelspec_under_the_default_name_is_not_taken_over(tmp_path: Path, clean_env) -> None:
    from doctor.errors import UsageError
    from doctor.fix.kernel import plan_kernel

    data = tmp_path / "jupyter"
    env = {**clean_env, "JUPYTER_DATA_DIR": str(data)}
    theirs = data / "kernels" / "raydoctor-ray2.49.2-py3.12.9"
    theirs.mkdir(parents=True)
    spec = {"argv": ["/other/bin/python"], "display_name": "x", "metadata": {"raydoctor": {"env": "/other/envs/e"}}}
    (theirs / "kernel.json").write_text(json.dumps(spec))
    mine = tmp_path / "proj" / "envs" / "ray2.49.2-py3.12.9"
    common = dict(prefix=None, ray="2.49.2", python="3.12.9", target={}, environ=env, cwd=tmp_path, envs=[mine])
    plan = plan_kernel(None, env_name="ray2.49.2-py3.12.9", **common)
    assert plan.folder != theirs and plan.name.startswith("raydoctor-ray2.49.2-py3.12.9-") and not plan.exists
    with pytest.raises(UsageError, match="runs another env"):
        plan_kernel("raydoctor-ray2.49.2-py3.12.9", env_name="ray2.49.2-py3.12.9", **common)
    spec["metadata"]["raydoctor"]["env"] = str(mine)  # our own env's: updated in place, as before
    (theirs / "kernel.json").write_text(json.dumps(spec))
    again = plan_kernel(None, env_name="ray2.49.2-py3.12.9", **common)
    assert again.folder == theirs and again.exists
