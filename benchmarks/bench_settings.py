"""What a settings file costs ``raydoctor check`` (issue 9: at most 20 ms).

* ``check --json`` on the shipped compose file, the target named by a ``pyproject.toml``'s
  ``[tool.raydoctor]`` found three folders up, against the same check with the target given as
  ``--compose`` in a folder with no settings file (the walk still runs, finding nothing);
* the settings step alone (find, parse, check the keys), timed inside a fresh interpreter so that
  importing ``tomllib`` is counted, next to the walk that finds no file.

The difference of the medians is the figure to report (``extra_ms``).
Run: ``python benchmarks/bench_settings.py [REPEATS]`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import command, side_by_side, summarize  # noqa: E402

RAYDOCTOR = [sys.executable, "-m", "doctor"]
COMPOSE = ROOT / "compose" / "cpu-ray-cluster.yaml"
PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "team-project"
version = "0.1.0"
dependencies = ["ray[client]==2.49.2", "numpy", "pandas"]

[tool.ruff]
line-length = 110

[tool.raydoctor]
compose = "{compose}"
mode = "client"
timeout = 2
env-dir = "envs"
installer = "auto"
"""
# The settings step inside a fresh interpreter, timed from after the modules check loads anyway (argparse,
# dataclasses, re, doctor.errors, doctor.target) to the end: tomllib's import, the walk, the parse, the apply.
STEP = (
    "import argparse, dataclasses, re, sys, time, pathlib\n"
    "import doctor.errors, doctor.target\n"
    "t = time.perf_counter()\n"
    "from doctor.settings import apply_settings\n"
    "ns = argparse.Namespace(address=None, compose=None, mode='client', timeout=2.0, env_dir=None)\n"
    "apply_settings(ns, cwd=pathlib.Path(sys.argv[1]))\n"
    "print(time.perf_counter() - t)\n"
)


def _step_times(folder: Path, env: dict[str, str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", STEP, str(folder)], env=env, capture_output=True, text=True, check=True
        )
        out.append(float(done.stdout.strip()))
    return out


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX"))}
    env["NO_COLOR"] = "1"
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


def main(repeats: int = 15) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        repo = home / "team-project"
        deep = repo / "src" / "team" / "notebooks"
        deep.mkdir(parents=True)
        (repo / "pyproject.toml").write_text(PYPROJECT.format(compose=COMPOSE))
        plain = home / "elsewhere" / "a" / "b"
        plain.mkdir(parents=True)
        env = _env(home)
        with_file = command([*RAYDOCTOR, "check", "--json", "--no-roundtrip"], env=env, cwd=str(deep))
        without = command(
            [*RAYDOCTOR, "check", "--json", "--no-roundtrip", "--compose", str(COMPOSE), "--timeout", "2"],
            env=env,
            cwd=str(plain),
        )
        row = side_by_side(
            "check, shipped compose file named in pyproject.toml three folders up",
            with_file,
            "check --compose FILE, no settings file",
            without,
            repeats=repeats,
            target="extra_ms <= 20",
        )
        row["extra_ms"] = round((row["median_s"] - row["baseline_median_s"]) * 1000, 1)
        step = summarize(
            "settings step alone, in process (tomllib import, walk, parse, apply)",
            _step_times(deep, env, repeats),
            "the walk alone, no settings file found",
            _step_times(plain, env, repeats),
            target="median_s <= 0.020",
        )
        step["extra_ms"] = round(step["median_s"] * 1000, 1)
        return [row, step]


if __name__ == "__main__":
    for r in main(int(sys.argv[1]) if len(sys.argv) > 1 else 15):
        print(json.dumps(r))
