"""What the real-engine tests share (``test_compose_real``, ``test_compose_token_real``,
``test_compose_gpu_real``): the docker CLI, a check's JSON read back, and a compose project started from
a copy of a compose file, with what it leaves behind."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def report(done: subprocess.CompletedProcess[str]) -> dict:
    """``raydoctor … --json``'s document; the exit code and both streams when it is not JSON."""
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(
            f"exit {done.returncode}, not JSON:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        ) from None


def result_in(doc: dict, check_id: str) -> dict:
    """The JSON result with ``check_id``, failing with the ids that are there."""
    for result in doc["results"]:
        if result["id"] == check_id:
            return result
    raise AssertionError(f"no {check_id} in {[r['id'] for r in doc['results']]}")


def leftovers(project: str) -> list[str]:
    """The containers, networks and volumes compose made for ``project`` that still exist."""
    label = f"label=com.docker.compose.project={project}"
    left = []
    for kind in (["ps", "-a", "-q"], ["network", "ls", "-q"], ["volume", "ls", "-q"]):
        left += [f"{kind[0]} {x}" for x in docker(*kind, "--filter", label).stdout.split()]
    return left


@dataclass
class ComposeCluster:
    """A compose file copied into ``folder`` and run as ``project`` with the standalone docker-compose."""

    folder: Path
    file: Path
    project: str
    ports: dict[str, int]  # role -> host port on 127.0.0.1

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-f", str(self.file), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def leftovers(self) -> list[str]:
        return leftovers(self.project)
