"""A full check on the tutorial's compose cluster, live on the real engine (issue 19), against a bare
Ray Client round trip through the same published port; and ``fix`` for that cluster (its proof, a round
trip through the published port, included) against the tutorial's manual venv + pip.

The cluster is the shipped ``compose/cpu-ray-cluster.yaml`` with free host ports (still on 127.0.0.1)
and the worker's CPUs fitted to the engine, as ``tests/test_compose_real.py`` runs it; it needs
``tests/engine/setup.sh up``. Both sides use the cached test venv (Python 3.12, ``ray[default]==2.49.2``),
which matches the stand-in image. Targets: ratio ≤ 1.05 (check), ratio ≤ 0.1 (fix, uv, warm caches).

Run: ``python benchmarks/bench_compose.py`` or ``python benchmarks/run.py --only compose``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_check import BARE_ROUNDTRIP, RAYDOCTOR, _env  # noqa: E402
from benchmarks.bench_fix import BASELINE, REQUIREMENTS, _python312  # noqa: E402
from benchmarks.timing import command, run_ok, side_by_side, summarize, timed_in_fresh_folder  # noqa: E402
from tests.ray_cluster import ensure_ray_venv, free_ports  # noqa: E402

SHIPPED = ROOT / "compose" / "cpu-ray-cluster.yaml"
CONTAINER_PORTS = (8265, 10001, 6379, 8500)


def _engine_cpus() -> int:
    done = subprocess.run(["docker", "info", "--format", "{{.NCPU}}"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError("no Docker engine answers: run tests/engine/setup.sh up")
    return int(done.stdout.strip())


def _fitted(folder: Path) -> tuple[Path, dict[int, int]]:
    text = SHIPPED.read_text()
    ports = dict(zip(CONTAINER_PORTS, free_ports(len(CONTAINER_PORTS))))
    for inside, outside in ports.items():
        text = text.replace(f'"127.0.0.1:{inside}:{inside}"', f'"127.0.0.1:{outside}:{inside}"')
    cpus = _engine_cpus()
    if cpus < 3:
        text = re.sub(r"cpus: '3'", f"cpus: '{cpus}'", text)
    path = folder / "cpu-ray-cluster.yaml"
    path.write_text(text)
    return path, ports


def _wait_two_nodes(dashboard: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/nodes?view=summary", timeout=5) as answer:
                summary = json.load(answer)["data"]["summary"]
            if sum(1 for n in summary if n.get("raylet", {}).get("state") == "ALIVE") >= 2:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(2)
    raise RuntimeError("the compose cluster did not come up")


def _fix_row(path: Path, env: dict[str, str], repeats: int) -> dict:
    """``fix --compose`` (uv, its proof through the published port) against the manual venv + pip, interleaved."""
    python = _python312()

    def manual(work: Path) -> None:
        run_ok([str(python), "-m", "venv", str(work / "venv")], work, env)
        run_ok([str(work / "venv" / "bin" / "pip"), "install", "-r", str(REQUIREMENTS)], work, env)

    def fix(work: Path) -> None:
        args = [*RAYDOCTOR, "fix", "--compose", str(path), "--yes", "--no-conda", "--installer", "uv"]
        run_ok([*args, "--env-dir", str(work / "envs"), "--requirements", str(REQUIREMENTS)], work, env)

    for make in (manual, fix):  # warm pip's and uv's caches
        timed_in_fresh_folder(make, "bench-compose-fix-")
    times: dict[str, list[float]] = {"manual": [], "fix": []}
    for _ in range(repeats):
        times["manual"].append(timed_in_fresh_folder(manual, "bench-compose-fix-"))
        times["fix"].append(timed_in_fresh_folder(fix, "bench-compose-fix-"))
    return summarize(
        "fix --compose, live cluster (uv, proof through the published port)",
        times["fix"],
        BASELINE,
        times["manual"],
        "ratio ≤ 0.1",
    )


def main(repeats: int = 5) -> list[dict]:
    python = ensure_ray_venv()
    env = _env()
    with tempfile.TemporaryDirectory(prefix="raydoctor-bench-compose-") as tmp:
        folder = Path(tmp)
        path, ports = _fitted(folder)
        compose = ["docker-compose", "-f", str(path)]
        up = subprocess.run([*compose, "up", "-d"], cwd=folder, capture_output=True, text=True, timeout=300)
        if up.returncode != 0:
            raise RuntimeError(f"docker-compose up failed: {up.stderr[-500:]}")
        try:
            _wait_two_nodes(ports[8265])
            check = [*RAYDOCTOR, "check", "--json", "--compose", str(path), "--python", str(python)]
            bare = [str(python), "-c", BARE_ROUNDTRIP, f"ray://127.0.0.1:{ports[10001]}"]
            rows = [
                side_by_side(
                    "check, live compose cluster (full, with round trip)",
                    command(check, env=env, cwd=str(folder)),
                    "bare ray.init + one task through the published client port",
                    command(bare, env=env, cwd=str(folder), ok_codes=(0,)),
                    repeats=repeats,
                    target="ratio ≤ 1.05",
                )
            ]
            rows.append(_fix_row(path, env, repeats=max(2, repeats // 2)))
            return rows
        finally:
            subprocess.run([*compose, "down", "-v", "--remove-orphans"], cwd=folder, capture_output=True, timeout=300)


if __name__ == "__main__":
    for row in main():
        print(row)
