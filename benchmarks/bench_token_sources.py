"""What finding the token on the cluster's side costs (issue 10, part 2).

A compose check against a token-mode dashboard (tests/fake_servers.fake_ray) where the token is only
in the head container (tests/fake_docker: `docker ps` + `docker exec … ray get-auth-token`), next to
the same check with the token already in RAY_AUTH_TOKEN: the ratio is the search's share. In process
(``run_check``), so interpreter start-up does not hide it; no round trip.

Run: ``python benchmarks/bench_token_sources.py`` or ``python benchmarks/run.py --only token_sources``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import side_by_side  # noqa: E402
from doctor.app import run_check  # noqa: E402
from doctor.options import TargetOptions  # noqa: E402
from tests.fake_servers import fake_ray  # noqa: E402

COMPOSE = """\
services:
  ray-head:
    image: rayproject/ray:2.60.0-py313-cpu
    command: bash -c "ray start --head --port=6379 --dashboard-host=0.0.0.0 --block"
    ports:
      - "127.0.0.1:{port}:8265"
"""


def main(repeats: int = 5) -> list[dict]:
    token = "rdt-" + secrets.token_hex(20)
    with tempfile.TemporaryDirectory(prefix="rdt-bench-") as tmp, fake_ray("2.60.0", "3.13.0", token=token) as dash:
        folder = Path(tmp) / "bench"
        folder.mkdir()
        compose = folder / "ray.yaml"
        compose.write_text(COMPOSE.format(port=dash.port))
        containers = Path(tmp) / "containers.json"
        labels = {"com.docker.compose.project": "bench", "com.docker.compose.service": "ray-head"}
        containers.write_text(json.dumps({"bench-ray-head-1": {"labels": labels, "auth_token": token}}))
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        base["HOME"] = tmp
        base["PATH"] = os.pathsep.join([str(ROOT / "tests" / "fake_docker"), base.get("PATH", "")])
        base["FAKE_DOCKER_CONTAINERS"] = str(containers)
        options = TargetOptions(compose=compose, roundtrip=False)

        def searched() -> None:
            report = run_check(options, environ=base, cwd=Path(tmp))
            assert report.target["token"]["from"].startswith("docker exec"), report.target

        def given() -> None:
            report = run_check(options, environ={**base, "RAY_AUTH_TOKEN": token}, cwd=Path(tmp))
            assert report.target["token"]["from"] == "RAY_AUTH_TOKEN", report.target

        return [
            side_by_side(
                "check, compose, token from docker exec",
                searched,
                "check, compose, token in RAY_AUTH_TOKEN",
                given,
                repeats=repeats,
                target="report: two docker calls (the fake is a Python script, ~0.2 s a start) and one public HTTP read",
            )
        ]


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(json.dumps(row))
