"""Speed of ``raydoctor fix`` where no interpreter of the head's minor exists: uv installs it (issue 9).

Measured: ``raydoctor fix --address HEAD --python-source uv --yes`` with every other
Python 3.12 hidden from discovery (``PYENV_ROOT`` elsewhere, PATH without one), a fresh
``UV_PYTHON_INSTALL_DIR`` and ``--env-dir`` each run, the head's Python served from a
local mirror (this machine's 3.12 packed in python-build-standalone's install-only
layout, listed in ``UV_PYTHON_DOWNLOADS_JSON_URL`` with a file:// url): end to end,
reading the head, the plan, ``uv python install``, the venv, the install of packages.txt
with Ray pinned and the client extras, and the final check **with the ray.init round
trip** against a live head (``tests.ray_cluster.RayNode`` on loopback, started once,
untimed).

Baseline: the tutorial's manual flow with an interpreter that already exists (which
this machine would not have): ``python3.12 -m venv DIR && DIR/bin/pip install -r
packages.txt``. Caches (uv's, pip's) are warm: one untimed run of each first; runs are
interleaved. Target: ratio ≤ 0.5 (fetching the Python included).

Run: ``python benchmarks/bench_fix_uv.py [--repeats N]`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import run_ok, summarize, timed_in_fresh_folder  # noqa: E402

REQUIREMENTS = ROOT / "packages.txt"
BASELINE = "python -m venv + pip install -r packages.txt (an interpreter already here)"


def _pack(python: Path, folder: Path) -> tuple[Path, str]:
    """(downloads JSON, version): ``python``'s prefix as an install-only tarball, listed for uv."""
    from tests.helpers import downloads_listing, pack_install_only

    tarball, version, sha256 = pack_install_only(python, folder)
    return downloads_listing(folder, version, tarball.as_uri(), sha256), version


def main(repeats: int = 3) -> list[dict]:
    from tests.ray_cluster import RayNode, ensure_ray_venv, find_python

    python = find_python("3.12")
    if python is None:
        raise RuntimeError("no Python 3.12 on this machine to pack")
    mirror = Path(tempfile.mkdtemp(prefix="bench-uv-mirror-"))
    head = RayNode(ensure_ray_venv(), num_cpus=2).start()
    try:
        listing, _version = _pack(python, mirror)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA", "UV_PYTHON"))}
        base["NO_COLOR"] = "1"

        def manual(work: Path) -> None:
            run_ok([str(python), "-m", "venv", str(work / "venv")], work, base)
            run_ok([str(work / "venv" / "bin" / "pip"), "install", "-r", str(REQUIREMENTS)], work, base)

        def fix(work: Path) -> None:
            env = dict(base)
            env.update(
                {
                    "UV_PYTHON_INSTALL_DIR": str(work / "uv-pythons"),
                    "UV_PYTHON_DOWNLOADS_JSON_URL": str(listing),
                    "PYENV_ROOT": str(work / "no-pyenv"),
                    "PATH": os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir()),
                }
            )
            target = ["--address", head.dashboard_url, "--client-port", str(head.ports["client"])]
            target += ["--gcs-port", str(head.ports["gcs"])]
            args = [sys.executable, "-m", "doctor", "fix", *target, "--python-source", "uv", "--yes"]
            run_ok([*args, "--env-dir", str(work / "envs"), "--requirements", str(REQUIREMENTS)], work, env)

        run = {"manual": manual, "uv": fix}
        for name in run:  # warm caches
            timed_in_fresh_folder(run[name], "bench-fix-uv-")
        times: dict[str, list[float]] = {name: [] for name in run}
        for _ in range(repeats):
            for name in run:
                times[name].append(timed_in_fresh_folder(run[name], "bench-fix-uv-"))
    finally:
        head.stop()
        shutil.rmtree(mirror, ignore_errors=True)
    return [
        summarize(
            "fix --python-source uv, no local 3.12 (uv installs it from a local mirror; round trip included)",
            times["uv"],
            BASELINE,
            times["manual"],
            "ratio ≤ 0.5",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    for row in main(parser.parse_args().repeats):
        print(json.dumps(row))
