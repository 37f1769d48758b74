"""Speed of ``raydoctor fix`` (issue 4) next to the tutorial's manual steps.

Baseline: what the tutorial has every new developer type, with the same
interpreter fix picks (the head's Python 3.12) and the tutorial's own
``packages.txt``::

    python3.12 -m venv DIR && DIR/bin/pip install -r packages.txt

Measured: ``raydoctor fix --yes`` into a fresh ``--env-dir`` each run, with
``--installer uv`` and with ``--installer pip``, everything included (reading
the head, the plan, the venv, the install with Ray pinned and the client
extras, the final check). The head is named by its image tag
(``rayproject/ray:2.49.2-py312-cpu``) so no cluster is needed; ``--no-conda``
keeps conda out of it, and ``--python-source existing`` has fix build from the
Python 3.12 already here, as the baseline does: the tag's patch (3.12.9) is a
guess that no Python here has, and ``auto`` would first try ``uv python install``
(without a network, uv's retries cost ~6.5 s before the same fallback;
``bench_fix_uv.py`` measures uv's Pythons from a local mirror). Caches are warm: one untimed run of each first.
Runs are interleaved (baseline, uv, pip, baseline, …) so that load on the
machine favours none of them. Targets: the standing one, ratio ≤ 0.1 with uv
(what ``--installer auto`` picks), and ≤ 1.1 with pip. fix resolves the
requirements with uv first (``doctor/facts/resolution.py``): the resolution
cache is a folder of this bench's own, filled by the warm-up runs, so the
timed runs read it.

Run: ``python benchmarks/bench_fix.py [--repeats N]`` (JSON lines) or via
``python benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import bench_env, load, run_ok, summarize, timed_in_fresh_folder  # noqa: E402

IMAGE = "rayproject/ray:2.49.2-py312-cpu"
REQUIREMENTS = ROOT / "packages.txt"
BASELINE = "python -m venv + pip install -r packages.txt"


def _env() -> dict[str, str]:
    """The user's environment minus anything that would change what fix looks at (``bench_env``)."""
    env = bench_env()
    env["RAYDOCTOR_RESOLUTION_CACHE"] = str(ROOT / "benchmarks" / "results" / "resolution-cache")
    return env


def _python312() -> Path:
    """The interpreter fix will build from, found the way fix finds it."""
    from doctor.fix.providers import find_interpreter

    return find_interpreter("3.12", conda=None, allow_conda=False, env_name="unused").path


def runners(env: dict[str, str]) -> dict[str, Callable[[Path], None]]:
    python = _python312()

    def manual(work: Path) -> None:
        run_ok([str(python), "-m", "venv", str(work / "venv")], work, env)
        run_ok([str(work / "venv" / "bin" / "pip"), "install", "-r", str(REQUIREMENTS)], work, env)

    def fix(installer: str) -> Callable[[Path], None]:
        def run(work: Path) -> None:
            run_ok(
                [
                    sys.executable,
                    "-m",
                    "doctor",
                    "fix",
                    "--image",
                    IMAGE,
                    "--yes",
                    "--no-conda",
                    "--python-source",
                    "existing",
                    "--installer",
                    installer,
                    "--env-dir",
                    str(work / "envs"),
                    "--requirements",
                    str(REQUIREMENTS),
                ],
                work,
                env,
            )

        return run

    return {"manual": manual, "uv": fix("uv"), "pip": fix("pip")}


def main(repeats: int = 3) -> list[dict]:
    """Interleaved runs after one warm-up each; one row per installer, sharing the baseline."""
    env = _env()
    before = load()
    run = runners(env)
    for name in ("manual", "uv", "pip"):  # warm pip's and uv's caches
        timed_in_fresh_folder(run[name], "bench-fix-")
    times: dict[str, list[float]] = {"manual": [], "uv": [], "pip": []}
    for _ in range(repeats):
        for name in ("manual", "uv", "pip"):
            times[name].append(timed_in_fresh_folder(run[name], "bench-fix-"))
    rows = [
        summarize(
            "fix --installer uv (fresh env dir, warm caches)", times["uv"], BASELINE, times["manual"], "ratio ≤ 0.1"
        ),
        summarize(
            "fix --installer pip (fresh env dir, warm caches)", times["pip"], BASELINE, times["manual"], "ratio ≤ 1.1"
        ),
    ]
    after = load()
    for row in rows:
        row["load_before"], row["load_after"] = before, after
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    for row in main(parser.parse_args().repeats):
        print(json.dumps(row))
