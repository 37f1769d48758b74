"""Speed of the ``--jobs`` check (issue 10) next to a bare ``JobSubmissionClient.submit_job``.

Both sides submit the same runtime_env (a small project as ``working_dir``), wait for the job to end, and
start from a fresh process; before every run a new file is written into the project, so that its
``gcs://_ray_pkg_<hash>.zip`` is new and both sides really upload it. The raydoctor side is the whole
``raydoctor check --mode jobs --jobs`` (all its checks); the bare side imports Ray, submits and polls
``get_job_status`` every 0.1 s as a user's script would.

Run: ``python benchmarks/bench_jobs.py`` or via ``python benchmarks/run.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import side_by_side  # noqa: E402
from tests.ray_cluster import RayNode, ensure_ray_venv  # noqa: E402

BARE_SUBMIT = (
    "import json, sys, time\n"
    "from ray.job_submission import JobSubmissionClient, JobStatus\n"
    "client = JobSubmissionClient(sys.argv[1])\n"
    "job = client.submit_job(entrypoint=sys.argv[2], runtime_env=json.loads(sys.argv[3]))\n"
    "while client.get_job_status(job) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:\n"
    "    time.sleep(0.1)\n"
    "client.delete_job(job)\n"
)
ENTRYPOINT = "python -c \"import os, sys; print(sys.version, len(os.listdir('.')))\""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_PREFIX"))}
    env["NO_COLOR"] = "1"
    return env


def _runner(args: list[str], project: Path, env: dict[str, str], must_say: str = "") -> Callable[[], None]:
    def run() -> None:
        (project / "nonce.txt").write_text(uuid.uuid4().hex)  # a new package every run: a real upload
        done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=str(project), timeout=300)
        if done.returncode not in (0, 1) or must_say not in done.stdout:
            raise RuntimeError(f"{args[:3]} exited {done.returncode}: {(done.stderr or done.stdout)[-400:]}")

    return run


def main(repeats: int = 5) -> list[dict]:
    env = _env()
    python = ensure_ray_venv()
    head = RayNode(python, num_cpus=2).start()
    try:
        with tempfile.TemporaryDirectory(prefix="raydoctor-bench-jobs-") as tmp:
            project = Path(tmp)
            (project / "main.py").write_text("print('hello from the job')\n")
            (project / "data.bin").write_bytes(os.urandom(1024 * 1024))
            runtime_env = {"working_dir": "."}
            (project / "runtime_env.json").write_text(json.dumps(runtime_env))
            raydoctor = [
                sys.executable,
                "-m",
                "doctor",
                "check",
                "--json",
                "--address",
                head.dashboard_url,
                "--mode",
                "jobs",
                "--jobs",
                "--runtime-env",
                "runtime_env.json",
                "--python",
                str(python),
            ]
            bare = [str(python), "-c", BARE_SUBMIT, head.dashboard_url, ENTRYPOINT, json.dumps(runtime_env)]
            env_here = {**env, "PYTHONPATH": str(ROOT)}
            return [
                side_by_side(
                    "check --mode jobs --jobs (1 MiB working_dir, waited to the end)",
                    _runner(raydoctor, project, env_here, must_say='"jobs.submit.ok"'),
                    "bare JobSubmissionClient.submit_job + poll",
                    _runner(bare, project, env),
                    repeats=repeats,
                    target="ratio <= 1.2",
                )
            ]
    finally:
        head.stop()


if __name__ == "__main__":
    for row in main(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        print(json.dumps(row))
