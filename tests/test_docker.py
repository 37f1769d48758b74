"""Docker Engine as a source of head facts: used where it answers, skipped quietly where not.

No engine runs on the test machines, so the "engine present" path drives a fake
``docker`` executable on PATH that answers like the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

from doctor.head import docker

FAKE_DOCKER = r"""#!/usr/bin/env python3
import json, os, sys
log = os.environ["FAKE_DOCKER_LOG"]
with open(log, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
if args[:1] == ["version"]:
    print("28.2.2"); sys.exit(0)
if args[:2] == ["image", "inspect"]:
    if args[-1] == "rayproject/ray:2.49.2-py312-cpu":
        print("sha256:" + "ab" * 32); sys.exit(0)
    print("Error: No such image", file=sys.stderr); sys.exit(1)
if args[:1] == ["run"]:
    print(json.dumps({"python": "3.12.9", "ray": "2.49.2"})); sys.exit(0)
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
    assert docker.engine_available() is False
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
