"""What ``check --jobs`` / ``--deep`` upload as the working_dir: never secrets, never what lies outside it,
never a device or a FIFO (issue 20, item 9).

The zip ``write_zip`` makes is the exact body ``jobs.submit`` PUTs to ``/api/packages/gcs/…``, so each
test reads that zip back; secrets are planted with a value that must appear in no byte of it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.head.runtime_env import pack, write_zip
from doctor.model import Status
from doctor.options import TargetOptions

pytestmark = pytest.mark.skipif(os.name == "nt", reason="symlinks, FIFOs and devices as POSIX has them")
SECRET = "ghp_plantedTOKEN0123456789abcdef"


def zipped(root: Path, tmp_path: Path) -> tuple[list[str], bytes]:
    """(names, bytes) of the zip raydoctor would upload for ``root``."""
    package = pack(root, [], {})
    dest = tmp_path / "upload.zip"
    write_zip(package, dest)
    with zipfile.ZipFile(dest) as z:
        return sorted(z.namelist()), dest.read_bytes()


def write(path: Path, text: str = f"value={SECRET}\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_secret_looking_files_git_and_credentials_folders_are_never_uploaded(tmp_path: Path) -> None:
    """Item 9: ``.env`` and ``.git/config`` with a token in a remote URL were uploaded (a warning only)."""
    root = tmp_path / "project"
    write(root / "main.py", "print('hi')\n")
    write(root / "pkg" / "mod.py", "x = 1\n")
    write(root / ".git" / "config", f'[remote "origin"]\n\turl = https://x:{SECRET}@github.com/o/r.git\n')
    planted = [
        ".env",
        ".env.production",
        ".envrc",
        "id_rsa",
        "id_ed25519.pub",
        "deploy/id_ecdsa",
        "certs/server.pem",
        "certs/tls.key",
        "certs/client.p12",
        ".netrc",
        ".pypirc",
        ".npmrc",
        ".aws/credentials",
        ".ssh/config",
        ".docker/config.json",
        "credentials.json",
        ".kube/config",
        "pkg/.env",
    ]
    for name in planted:
        write(root / name)
    names, data = zipped(root, tmp_path)
    assert names == ["main.py", "pkg/mod.py"]
    assert SECRET.encode() not in data
    left = {item.name: item.why for item in pack(root, [], {}).left_out}
    assert left[".git/"] == "the repository's history and config" and left[".aws/"] == "a credentials folder"
    assert left[".env"] == "looks like a secret" and left[".docker/config.json"] == "a credentials file"
    assert set(left) == {".git/", ".aws/", ".ssh/", ".docker/config.json", ".kube/config"} | {
        n for n in planted if not n.startswith((".aws/", ".ssh/", ".docker/", ".kube/"))
    }


def test_symlinks_that_leave_the_working_dir_are_not_followed(tmp_path: Path) -> None:
    """Item 9: ``cfg -> ../home/.aws`` uploaded the user's AWS keys (Ray follows symlinks)."""
    write(tmp_path / "home" / "aws" / "config", f"aws_secret_access_key = {SECRET}\n")
    write(tmp_path / "home" / "notes.txt")
    root = tmp_path / "project"
    write(root / "main.py", "print('hi')\n")
    write(root / "data" / "table.csv", "a,b\n")
    (root / "cfg").symlink_to("../home/aws")
    (root / "notes").symlink_to(tmp_path / "home" / "notes.txt")
    (root / "tables").symlink_to("data")  # inside the working_dir: followed, as Ray does
    names, data = zipped(root, tmp_path)
    assert names == ["data/table.csv", "main.py", "tables/table.csv"]
    assert SECRET.encode() not in data
    left = {item.name: item.why for item in pack(root, [], {}).left_out}
    assert left == {
        "cfg": "a symlink that leads out of the working_dir",
        "notes": "a symlink that leads out of the working_dir",
    }


def test_devices_fifos_and_sockets_are_judged_by_type_never_read(tmp_path: Path) -> None:
    """Item 9: a symlink to ``/dev/zero`` kept a core busy (the package's hash read it) until the limit;
    a FIFO blocked the upload forever."""
    root = tmp_path / "project"
    write(root / "main.py", "print('hi')\n")
    (root / "zero").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "s"))  # a path well under AF_UNIX's 108 bytes
    try:
        result: dict[str, object] = {}

        def upload() -> None:
            package = pack(root, [], {})
            result["uri"] = package.uri()  # the content hash: the step that read /dev/zero forever
            result["zip"] = zipped(root, tmp_path)[0]
            result["left"] = {item.name: item.why for item in package.left_out}

        worker = threading.Thread(target=upload, daemon=True)
        worker.start()
        worker.join(timeout=60)  # a bound for a hang, not a timing: this takes milliseconds
        assert not worker.is_alive(), "packing the working_dir did not finish: it read a device or a FIFO"
        assert result["zip"] == ["main.py"]
        assert result["left"] == {
            "zero": "a symlink that leads out of the working_dir",
            "pipe": "a FIFO, never read",
            "s": "a socket, never read",
        }
    finally:
        sock.close()


def test_a_fifo_inside_reached_through_a_symlink_inside_is_a_fifo(tmp_path: Path) -> None:
    root = tmp_path / "project"
    write(root / "main.py", "print('hi')\n")
    os.mkfifo(root / "pipe")
    (root / "alias").symlink_to("pipe")
    package = pack(root, [], {})
    assert {m.name for m in package.members} == {"main.py"}
    assert {item.name for item in package.left_out} == {"pipe", "alias"}


# -- the check: a working_dir outside the project is refused, what was left out is said ------------------


def runtime_env_result(tmp_path: Path, cwd: Path, env_file: Path) -> dict:
    options = TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", mode="jobs", runtime_env=env_file, roundtrip=False)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    report = run_check(options, environ=environ, cwd=cwd)
    found = next(r for r in report.results if r.id == "jobs.runtime_env")
    return found.to_dict()


@pytest.mark.parametrize("working_dir", ["../home/.ssh", "~/.ssh", "HOME"])
def test_a_working_dir_outside_the_project_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, working_dir: str
) -> None:
    """Item 9 (and item 5's runtime_env): ``working_dir: ~/.ssh`` was zipped and uploaded."""
    home = tmp_path / "home"
    write(home / ".ssh" / "id_ed25519")
    monkeypatch.setenv("HOME", str(home))
    repo = home / "repo" if working_dir == "HOME" else tmp_path / "repo"
    write(repo / "main.py", "print('hi')\n")
    value = str(home) if working_dir == "HOME" else working_dir
    write(repo / "re.yaml", f"working_dir: {json.dumps(value)}\n")
    res = runtime_env_result(tmp_path, repo, repo / "re.yaml")
    assert res["status"] == Status.FAIL.value and res["code"] == "jobs.runtime_env.outside_project"
    assert "\n" not in res["summary"] and "lies outside the project" in res["summary"]
    assert str(Path(value).expanduser() if value.startswith("~") else value) in res["summary"]
    assert SECRET not in json.dumps(res)


def test_a_credentials_folder_inside_the_project_is_refused_as_working_dir(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo / ".aws" / "credentials")
    write(repo / "re.yaml", "working_dir: .aws\n")
    res = runtime_env_result(tmp_path, repo, repo / "re.yaml")
    assert res["code"] == "jobs.runtime_env.outside_project" and ".aws" in res["summary"]
    assert "a credentials folder" in res["summary"]


def test_what_was_left_out_is_said_in_the_finding_never_its_content(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo / "main.py", "print('hi')\n")
    write(repo / ".env")
    write(repo / ".git" / "config")
    (repo / "cfg").symlink_to(tmp_path)
    write(repo / "conf" / "re.yaml", "working_dir: .\n")  # a file in a subfolder may name the project's root
    res = runtime_env_result(tmp_path, repo, repo / "conf" / "re.yaml")
    assert res["status"] == Status.OK.value, res
    assert "3 left out of the upload: " in res["summary"]
    for name in (".env (looks like a secret)", ".git/ (the repository's history and config)", "cfg (a symlink"):
        assert name in res["summary"]
    assert sorted(res["data"]["left_out"])[0].startswith(".env") and len(res["data"]["left_out"]) == 3
    assert res["data"]["files"] == 2  # main.py and conf/re.yaml
    assert SECRET not in json.dumps(res)
