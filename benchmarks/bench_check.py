"""Speed of ``raydoctor check`` (issues 2 and 3), each next to its baseline.

* ``--version`` and a compose check with no cluster, against bare interpreter start-up;
* a live head, HTTP facts only, against a bare HTTP GET of ``cluster_metadata``;
* a full check (network, round trip, GPU) against a bare script that imports Ray,
  calls ``ray.init("ray://…")`` and runs one task;
* a closed port and a port that never answers, against that same bare script
  (which sits through Ray's own ~30 s time-out: one baseline run only).

Standing targets: the compose-only check ≤ 0.25 s, a full check ≤ 1.05× the bare round trip, a port
that never answers ≤ 2.5 s (one ``--timeout`` of 2 s plus start-up).

``check`` also resolves the project's requirements with uv (``doctor/facts/resolution.py``), cached per
requirements hash: the benches give it a cache folder of their own (``RAYDOCTOR_RESOLUTION_CACHE``
under ``benchmarks/results/``), warmed by one untimed run and checked before timing, so every timed run
reads the cache and none runs uv. Each row's ``note`` says what the resolution did.

Run: ``python benchmarks/bench_check.py`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import bench_env, command, live_check_args, side_by_side  # noqa: E402
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


RESOLUTION_CACHE = ROOT / "benchmarks" / "results" / "resolution-cache"


def _env() -> dict[str, str]:
    env = bench_env()
    env["RAYDOCTOR_RESOLUTION_CACHE"] = str(RESOLUTION_CACHE)
    return env


def _resolution(args: list[str], env: dict[str, str]) -> dict | None:
    """``packages.resolution``'s data from one untimed ``check --json`` run (None when it did not run)."""
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=300, check=False)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"check printed no JSON (exit {proc.returncode}): {proc.stderr[-300:]}") from None
    for res in report.get("results", []):
        if res.get("id") == "packages.resolution":
            return {"status": res.get("status"), "summary": res.get("summary", ""), **(res.get("data") or {})}
    return None


def warm_resolution(args: list[str], env: dict[str, str]) -> str:
    """Run ``args`` (a ``check --json``) until its resolution comes from the cache; say what it does.

    A resolution that ran uv is cached by that run, so the second run must read it: if it does not
    (uv skipped, or the cache unwritable), the rows would time uv, and the note says so.
    """
    data: dict | None = None
    for _ in range(2):
        data = _resolution(args, env)
        if data is None:
            return "resolution: not run (no requirements)"
        if data.get("cached"):
            return "resolution: warm cache (0 uv calls)"
        if data.get("skipped"):
            return f"resolution skipped (no uv call): {data['skipped']}"
    assert data is not None
    return f"resolution NOT cached: {data.get('uv_calls')} uv call(s) per run ({data.get('summary', '')[:80]})"


def offline_rows(repeats: int) -> list[dict]:
    env = _env()
    startup = command([sys.executable, "-c", "pass"], env=env)
    rows = [
        side_by_side(
            "raydoctor --version",
            command([*RAYDOCTOR, "--version"], env=env, cwd=str(ROOT)),
            "python -c pass",
            startup,
            repeats=repeats,
            target="median < 0.5 s",
        ),
    ]
    compose = [*RAYDOCTOR, "check", "--json"]  # in the checkout: its compose/ file and its packages.txt
    note = warm_resolution(compose, env)
    rows.append(
        side_by_side(
            "check, shipped compose file, no cluster",
            command(compose, env=env, cwd=str(ROOT)),
            "python -c pass",
            startup,
            repeats=repeats,
            target="median ≤ 0.25 s",
        )
    )
    rows[-1]["note"] = f"run in the checkout (its packages.txt); {note}"
    return rows


def live_rows(repeats: int) -> list[dict]:
    env = _env()
    python = ensure_ray_venv()
    head = RayNode(python, num_cpus=2).start()
    try:
        reqs = ROOT / "benchmarks" / "results" / "empty-requirements.txt"
        reqs.parent.mkdir(exist_ok=True)
        reqs.write_text("")
        common = live_check_args(head, python, reqs)
        get_metadata = [
            sys.executable,
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/api/v0/cluster_metadata', timeout=5).read()",
            head.dashboard_url,
        ]
        note = warm_resolution([*RAYDOCTOR, *common, "--no-roundtrip"], env)
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
                target="ratio ≤ 1.05",
            ),
        ]
        for row in rows:
            row["note"] = f"--requirements (empty file); {note}"
    finally:
        head.stop()
    closed = closed_port()
    with SilentPort() as silent:
        for label, port in (("closed port", closed), ("port that never answers", silent.port)):
            args = [
                *RAYDOCTOR,
                "check",
                "--json",
                "--address",
                f"127.0.0.1:{port}",
                "--client-port",
                str(port),
                "--python",
                str(python),
            ]
            note_here = f"run in the checkout (its packages.txt); {warm_resolution(args, env)}"
            ours = command(args, env=env, cwd=str(ROOT))
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
                    target="median ≤ 2.5 s" if label == "port that never answers" else "median ≤ 5 s",
                )
            )
            rows[-1]["note"] = note_here
    return rows


def main(repeats: int = 5) -> list[dict]:
    return offline_rows(repeats) + live_rows(max(3, repeats // 2))


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(json.dumps(row))
