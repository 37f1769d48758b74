"""Speed of ``packages.resolution`` (issue 11 Speed): a check with the resolution, warm cache, against
the same check with ``--no-resolve``, interleaved; target: the resolution adds at most 0.2 s.

The resolution runs beside the other checks (``CheckContext.prefetch`` starts it with the head's facts)
and a warm cache (``$RAYDOCTOR_RESOLUTION_CACHE``, here a fresh folder filled by the warm-up run) costs
no uv call, so the difference should be the cache read. A full check, round trip included, against a
live head on loopback.

Run: ``python benchmarks/bench_resolution.py [REPEATS]`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import command, live_check_args, side_by_side  # noqa: E402
from tests.ray_cluster import RayNode, ensure_ray_venv  # noqa: E402

RAYDOCTOR = [sys.executable, "-m", "doctor"]
REQUIREMENTS = "ray[default]==2.49.2\nnumpy==1.26.4\npandas==2.2.3\n"


def main(repeats: int = 5) -> list[dict]:
    python = ensure_ray_venv()
    work = Path(tempfile.mkdtemp(prefix="rdt-bench-res-"))
    reqs = work / "requirements.txt"
    reqs.write_text(REQUIREMENTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX"))}
    env.update(NO_COLOR="1", RAYDOCTOR_RESOLUTION_CACHE=str(work / "cache"))
    head = RayNode(python, num_cpus=2, ip="127.0.0.16").start()
    try:
        common = [*RAYDOCTOR, *live_check_args(head, python, reqs)]
        with_res = command(common, env=env, cwd=str(work))
        with_res()  # fills the cache: every later run is warm
        entries = list((work / "cache").glob("*"))
        if not entries:
            raise RuntimeError("the warm-up run wrote no resolution cache entry (no index reachable?)")
        row = side_by_side(
            "check with resolution (warm cache), live head, full",
            with_res,
            "same check with --no-resolve",
            command([*common, "--no-resolve"], env=env, cwd=str(work)),
            repeats=repeats,
            target="median difference <= 0.2 s",
        )
        row["difference_s"] = round(row["median_s"] - row["baseline_median_s"], 3)
        return [row]
    finally:
        head.stop()


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(json.dumps(row))
