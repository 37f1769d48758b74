"""Speed of ``raydoctor check`` (issues 2 and 3), each next to its baseline.

* ``--version`` and a compose check with no cluster, against bare interpreter start-up;
* a live head, HTTP facts only, against a bare HTTP GET of ``cluster_metadata``;
* a full check (network, round trip, GPU) against a bare script that imports Ray,
  calls ``ray.init("ray://…")`` and runs one task;
* a closed port and a port that never answers, against that same bare script
  (which sits through Ray's own ~30 s time-out: one baseline run only).

Run: ``python benchmarks/bench_check.py`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import command, side_by_side  # noqa: E402
from tests.fake_servers import SilentPort, closed_port  # noqa: E402
from tests.ray_cluster import RayNode, ensure_ray_venv  # noqa: E402

RAYDOCTOR = [sys.executable, "-m", "doctor"]
BARE_ROUNDTRIP = (
    "import ray, sys\n"
    "ray.init(sys.argv[1])\n"
    "@ray.remote\n"
    "def where():\n"
    "    import platform\n"
    "    return platform.python_version()\n"
    "print(ray.get(where.remote()))\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX"))}
    env["NO_COLOR"] = "1"
    return env


def offline_rows(repeats: int) -> list[dict]:
    env = _env()
    startup = command([sys.executable, "-c", "pass"], env=env)
    return [
        side_by_side(
            "raydoctor --version",
            command([*RAYDOCTOR, "--version"], env=env, cwd=str(ROOT)),
            "python -c pass",
            startup,
            repeats=repeats,
            target="median < 0.5 s",
        ),
        side_by_side(
            "check, shipped compose file, no cluster",
            command([*RAYDOCTOR, "check", "--json"], env=env, cwd=str(ROOT)),
            "python -c pass",
            startup,
            repeats=repeats,
            target="median < 0.5 s",
        ),
    ]


def live_rows(repeats: int) -> list[dict]:
    env = _env()
    python = ensure_ray_venv()
    head = RayNode(python, num_cpus=2).start()
    try:
        reqs = ROOT / "benchmarks" / "results" / "empty-requirements.txt"
        reqs.parent.mkdir(exist_ok=True)
        reqs.write_text("")
        common = [
            "check",
            "--json",
            "--address",
            head.dashboard_url,
            "--client-port",
            str(head.ports["client"]),
            "--gcs-port",
            str(head.ports["gcs"]),
            "--python",
            str(python),
            "--requirements",
            str(reqs),
        ]
        get_metadata = [
            sys.executable,
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/api/v0/cluster_metadata', timeout=5).read()",
            head.dashboard_url,
        ]
        rows = [
            side_by_side(
                "check, live head, HTTP facts only",
                command([*RAYDOCTOR, *common, "--no-roundtrip"], env=env, cwd=str(ROOT)),
                "python urllib GET cluster_metadata",
                command(get_metadata, env=env),
                repeats=repeats,
                target="median < 1 s",
            ),
            side_by_side(
                "check, live head, full (network, round trip, GPU)",
                command([*RAYDOCTOR, *common], env=env, cwd=str(ROOT)),
                "bare import ray + ray.init(ray://) + one task",
                command([str(python), "-c", BARE_ROUNDTRIP, head.client_url], env=env, ok_codes=(0,)),
                repeats=repeats,
                target="ratio <= 1.25",
            ),
        ]
    finally:
        head.stop()
    closed = closed_port()
    with SilentPort() as silent:
        for label, port in (("closed port", closed), ("port that never answers", silent.port)):
            ours = command(
                [
                    *RAYDOCTOR,
                    "check",
                    "--json",
                    "--address",
                    f"127.0.0.1:{port}",
                    "--client-port",
                    str(port),
                    "--python",
                    str(python),
                ],
                env=env,
                cwd=str(ROOT),
            )
            bare = command(
                [str(python), "-c", BARE_ROUNDTRIP, f"ray://127.0.0.1:{port}"], env=env, timeout=120, ok_codes=(0, 1)
            )
            rows.append(
                side_by_side(
                    f"check, {label}",
                    ours,
                    "bare ray.init(ray://) on the same port",
                    bare,
                    repeats=repeats,
                    baseline_repeats=1,
                    warmup=0,
                    target="median <= 5 s",
                )
            )
    return rows


def main(repeats: int = 5) -> list[dict]:
    return offline_rows(repeats) + live_rows(max(3, repeats // 2))


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(json.dumps(row))
