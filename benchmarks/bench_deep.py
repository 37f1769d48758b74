"""Speed of ``raydoctor check --deep`` per added node (issue 11, "At any cluster size").

A head on loopback, then one, two and three workers joining it (``tests/ray_cluster.py::RayNode``);
at each size the same ``check --deep --no-roundtrip --no-resolve`` runs a few times. Each row is
that size against the head alone (ratio of medians), with the probe job's own duration and the
slowest node's answer inside the round (``deep.probe``'s ``duration_s`` and ``answered_s``).

What grows with N: one task per node (submitted at once, ``IN_FLIGHT`` at a time), one node record
in the probe's answer (~120 bytes; identical envs are sent once), and the node list (~0.6 KB a row).
The job's start (its supervisor actor, ``ray.init`` in the driver) does not grow with N.

Run: ``python benchmarks/bench_deep.py [REPEATS]`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import summarize  # noqa: E402
from tests.ray_cluster import RayNode, ensure_ray_venv  # noqa: E402

# As tests/conftest.py::SLOW_MACHINE: the dashboard's modules get time to start on a loaded machine.
SLOW_MACHINE = {"RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "150"}

RAYDOCTOR = [sys.executable, "-m", "doctor"]
WORKERS = 3
IPS = ("127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15")  # head, then the workers


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX"))}
    env["NO_COLOR"] = "1"
    return env


def _deep_once(head: RayNode, python: Path, env: dict[str, str]) -> tuple[float, dict]:
    args = [
        *RAYDOCTOR,
        "check",
        "--json",
        "--deep",
        "--no-roundtrip",
        "--no-resolve",
        *head.target_args,
        "--python",
        str(python),
    ]
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300, check=False)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"check --deep exited {proc.returncode}: {(proc.stderr or proc.stdout)[-500:]}")
    doc = json.loads(proc.stdout)
    probe = next(r for r in doc["results"] if r["id"] == "deep.probe")
    return wall, probe


def _node_row_bytes(head: RayNode) -> int:
    """The size of one row of ``/api/v0/nodes`` as this Ray answers it (for the extrapolation)."""
    import urllib.request

    with urllib.request.urlopen(f"{head.dashboard_url}/api/v0/nodes?limit=10000", timeout=10) as resp:
        body = resp.read()
    rows = json.loads(body)["data"]["result"]["result"]
    return len(body) // max(1, len(rows))


def main(repeats: int = 3) -> list[dict]:
    env = _env()
    python = ensure_ray_venv()
    head = RayNode(python, num_cpus=1, ip=IPS[0], env=dict(SLOW_MACHINE)).start()
    workers: list[RayNode] = []
    rows: list[dict] = []
    base: list[float] = []
    try:
        for size in range(WORKERS + 1):
            if size:
                worker = RayNode(
                    python, head=False, gcs_address=head.gcs, num_cpus=1, ip=IPS[size], env=dict(SLOW_MACHINE)
                )
                workers.append(worker)
                worker.start()
                head.wait_nodes(size + 1, timeout=180)
            _deep_once(head, python, env)  # warm-up: the workers' first Ray worker processes
            walls: list[float] = []
            probes: list[float] = []
            slowest: list[float] = []
            for _ in range(repeats):
                wall, probe = _deep_once(head, python, env)
                nodes = probe["data"]["nodes"]
                if probe["status"] != "ok" or len(nodes) != size + 1:
                    raise RuntimeError(f"deep.probe at {size + 1} nodes: {probe['summary']}")
                walls.append(wall)
                probes.append(probe["data"]["duration_s"])
                slowest.append(max(n["answered_s"] or 0.0 for n in nodes))
            if not size:
                base = walls
            label = "head alone" if not size else f"head + {size} worker{'s' if size > 1 else ''}"
            row = summarize(f"check --deep, {label}", walls, "check --deep, head alone", base, target="")
            row["probe_job_median_s"] = round(statistics.median(probes), 3)
            row["slowest_node_answer_median_s"] = round(statistics.median(slowest), 3)
            row["nodes"] = size + 1
            if size == WORKERS:
                row["target"] = "ratio reported (issue 11 Speed)"
                row["node_list_bytes_per_row"] = _node_row_bytes(head)
            rows.append(row)
    finally:
        for worker in reversed(workers):
            worker.stop()
        head.stop()
    return rows


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(json.dumps(row))
