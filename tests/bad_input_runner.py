"""Run ``doctor.cli.main`` on hostile files in a worker process, under a time and memory bound.

Every file option raydoctor has (and every file it finds on its own: a settings file, a compose
``.env``, a requirements ``-r`` include, a runtime_env's pip file, a kernelspec) is handed random
bytes, deep nesting, odd digits, a FIFO, ``/dev/zero`` and a folder. Each input runs in one
long-lived worker (importing raydoctor per input would cost seconds on a small machine); an input
that has not answered in ``timeout`` seconds is a hang: the worker is killed and started again. The
worker runs with an address-space limit, so ``/dev/zero`` read whole is a ``MemoryError`` (a
traceback), not a dead machine.

``python -m tests.bad_input_runner [N]`` prints the counts (inputs, tracebacks, hangs, and those
that did not end in one line with exit 2) for N random inputs per option beside the fixed ones.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = "rayproject/ray:2.49.2-py312-cpu"
# A target that needs no network and no Docker: the image tag alone.
QUIET = ["--image", IMAGE, "--no-roundtrip", "--no-resolve"]
MEMORY_LIMIT = 3 << 30

# Contents every option is given (beside random bytes); "FIFO", "ZERO" and "DIR" are made by type.
NASTY: dict[str, bytes] = {
    "deep-json": b"[" * 100_000,
    "deep-yaml": b"a: " + b"[" * 100_000,
    "deep-toml": b"x = " + b"[" * 2000 + b"]" * 2000 + b"\n",
    "nul": b'address = "127.0.0.1\x00"\nrequirements = "a\\u0000b"\n',
    "superscript": "address = 'h:²'\n--dashboard-port=²\nray==²\n".encode(),
    "not-utf8": b"\xff\xfe\x00\x00\xc3\x28" * 50,
}
KINDS = ("FIFO", "ZERO", "DIR", *NASTY)


OUTPUTS = ("report -o", "lock -o")
# The hostile file's name per option: the one-line error must name it.
HOSTILE_NAME = {
    "--compose": "c.yaml",
    "--cluster-file": "cluster.yaml",
    "compose .env": ".env",
    "--requirements": "req.txt",
    "-r include": "inc.txt",
    "--head-packages": "head.txt",
    "--runtime-env": "re.yaml",
    "runtime_env pip file": "pip.txt",
    "raydoctor.toml": "raydoctor.toml",
    "pyproject.toml": "pyproject.toml",
    "--kernel": "kernel",  # a kernel.json that is no file: "--kernel k: no such Jupyter kernel"
    "report -o": "out.md",
    "lock -o": "lock.txt",
    "fix --export": "environment.yml",
    "fix --constraints": "constraints.txt",
}
SETTINGS_FILES = ("raydoctor.toml", "pyproject.toml")


def expectation(option: str, kind: str) -> str:
    """What must happen: "error" (exit 2, one line), "replaced" (written, the FIFO or symlink at the
    name replaced by a regular file), or "any" (valid bytes may pass: exit 0/1, or 2 in one line)."""
    if option in OUTPUTS:
        return "error" if kind == "DIR" else "replaced" if kind in ("FIFO", "ZERO") else "any"
    if kind == "DIR" and option in SETTINGS_FILES:
        return "any"  # a folder named like a settings file is no settings file: the walk passes it by
    return "error" if kind in ("FIFO", "ZERO", "DIR") else "any"


@dataclass
class Case:
    option: str
    kind: str
    code: int | None = None
    err: str = ""
    traceback: bool = False
    hang: bool = False
    seconds: float = 0.0
    output_is_file: bool | None = None

    @property
    def one_line_exit_2(self) -> bool:
        return self.code == 2 and len(self.err.strip().splitlines()) == 1

    @property
    def clean(self) -> bool:
        """No traceback, no hang, and what ``expectation`` asks for."""
        if self.traceback or self.hang or self.code not in (0, 1, 2):
            return False
        want = expectation(self.option, self.kind)
        if want == "error":
            return self.one_line_exit_2 and HOSTILE_NAME[self.option] in self.err
        if want == "replaced":
            return self.code in (0, 1) and bool(self.output_is_file)
        return self.code != 2 or (self.one_line_exit_2 and HOSTILE_NAME[self.option] in self.err)


@dataclass
class Tally:
    cases: list[Case] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "inputs": len(self.cases),
            "tracebacks": sum(c.traceback for c in self.cases),
            "hangs": sum(c.hang for c in self.cases),
            "other_failures": sum(not c.clean and not c.hang and not c.traceback for c in self.cases),
        }


def _place(folder: Path, name: str, kind: str, data: bytes | None = None) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "ZERO":
        path.symlink_to("/dev/zero")
    elif kind == "DIR":
        path.mkdir()
    else:
        path.write_bytes(NASTY[kind] if data is None else data)
    return path


def _setup(option: str, folder: Path, kind: str, data: bytes | None) -> tuple[list[str], dict[str, str]]:
    """The argv (and extra environment) that makes raydoctor read the hostile file for ``option``."""
    env: dict[str, str] = {}
    empty = folder / "empty.txt"
    empty.write_text("")
    base = ["check", *QUIET, "--requirements", str(empty)]
    if option == "--compose":
        return ["check", "--compose", str(_place(folder, "c.yaml", kind, data)), "--no-roundtrip", "--no-resolve"], env
    if option == "--cluster-file":
        path = _place(folder, "cluster.yaml", kind, data)
        return ["check", "--cluster-file", str(path), "--no-roundtrip", "--no-resolve"], env
    if option == "compose .env":
        (folder / "compose").mkdir()
        (folder / "compose" / "c.yaml").write_text(
            "services:\n  head:\n    image: rayproject/ray:2.49.2-py312-cpu\n"
            "    command: ray start --head --dashboard-host=0.0.0.0 --block\n"
            "    ports: ['127.0.0.1:${DASH_PORT:-8265}:8265']\n"
        )
        _place(folder / "compose", ".env", kind, data)
        return ["check", "--compose", str(folder / "compose" / "c.yaml"), "--no-roundtrip", "--no-resolve"], env
    if option == "--requirements":
        return ["check", *QUIET, "--requirements", str(_place(folder, "req.txt", kind, data))], env
    if option == "-r include":
        _place(folder, "inc.txt", kind, data)
        (folder / "req.txt").write_text("-r inc.txt\n")
        return ["check", *QUIET, "--requirements", str(folder / "req.txt")], env
    if option == "--head-packages":
        return [*base, "--head-packages", str(_place(folder, "head.txt", kind, data))], env
    if option == "--runtime-env":
        path = _place(folder, "re.yaml", kind, data)
        return [*base, "--mode", "jobs", "--runtime-env", str(path)], env
    if option == "runtime_env pip file":
        _place(folder, "pip.txt", kind, data)
        (folder / "re.yaml").write_text("pip: pip.txt\n")
        return [*base, "--mode", "jobs", "--runtime-env", str(folder / "re.yaml")], env
    if option == "raydoctor.toml":
        _place(folder, "raydoctor.toml", kind, data)
        return base, env
    if option == "pyproject.toml":
        _place(folder, "pyproject.toml", kind, data)
        return base, env
    if option == "--kernel":
        _place(folder / "jupyter" / "kernels" / "k", "kernel.json", kind, data)
        env["JUPYTER_PATH"] = str(folder / "jupyter")
        env["JUPYTER_DATA_DIR"] = str(folder / "jupyter")
        return [*base, "--kernel", "k"], env
    if option == "report -o":
        return ["report", *QUIET, "--requirements", str(empty), "-o", str(_place(folder, "out.md", kind, data))], env
    if option == "lock -o":
        heads = folder / "head.txt"
        heads.write_text("numpy==1.26.4\n")
        out = _place(folder, "lock.txt", kind, data)
        return ["lock", "--image", IMAGE, "--head-packages", str(heads), "-o", str(out)], env
    if option == "fix --export":
        out = _place(folder, "environment.yml", kind, data)
        return ["fix", "--dry-run", *QUIET[:2], "--no-resolve", "--requirements", str(empty), "--export", str(out)], env
    if option == "fix --constraints":
        path = _place(folder, "constraints.txt", kind, data)
        return [
            "fix",
            "--dry-run",
            *QUIET[:2],
            "--no-resolve",
            "--requirements",
            str(empty),
            "--constraints",
            str(path),
        ], env
    raise ValueError(option)


OPTIONS = (
    "--compose",
    "--cluster-file",
    "compose .env",
    "--requirements",
    "-r include",
    "--head-packages",
    "--runtime-env",
    "runtime_env pip file",
    "raydoctor.toml",
    "pyproject.toml",
    "--kernel",
    "report -o",
    "lock -o",
    "fix --export",
    "fix --constraints",
)


class Worker:
    """One process that runs ``main(argv)`` per request; killed and replaced on a hang."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        req_r, self.req_w = os.pipe()
        self.res_r, res_w = os.pipe()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bad_input_runner", "--worker", str(req_r), str(res_w)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(req_r, res_w),
            start_new_session=True,
        )
        os.close(req_r)
        os.close(res_w)
        self.results = os.fdopen(self.res_r, "rb")

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict[str, object] | None:
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self._start()
        assert self.proc is not None
        os.write(self.req_w, (json.dumps({"argv": argv, "cwd": str(cwd), "env": env}) + "\n").encode())
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(self.results, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                return None
        line = self.results.readline()
        if not line:
            self.stop()
            return {"code": None, "err": "worker died", "traceback": True}
        answer: dict[str, object] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass
            self.proc.wait()
            os.close(self.req_w)
            self.results.close()
            self.proc = None


def run_cases(cases: list[tuple[str, str, bytes | None]], timeout: float = 20.0, worker: Worker | None = None) -> Tally:
    """Each case in a fresh folder, by ``worker`` (one of its own, stopped at the end, when not given)."""
    tally = Tally()
    own = worker is None
    worker = worker or Worker()
    try:
        for option, kind, data in cases:
            folder = Path(tempfile.mkdtemp(prefix="rd-bad-"))
            try:
                (folder / "home").mkdir()
                argv, env = _setup(option, folder, kind, data)
                env["HOME"] = str(folder / "home")
                case = Case(option, kind)
                started = time.monotonic()
                answer = worker.run(argv, folder, env, timeout)
                case.seconds = time.monotonic() - started
                if answer is None:
                    case.hang = True
                else:
                    code = answer.get("code")
                    case.code = code if isinstance(code, int) else None
                    case.err = str(answer.get("err", ""))
                    case.traceback = bool(answer.get("traceback")) or "Traceback" in case.err
                    case.traceback |= "Exception in thread" in case.err
                if option in OUTPUTS:
                    out = Path(argv[argv.index("-o") + 1])
                    case.output_is_file = out.is_file() and not out.is_symlink()
                tally.cases.append(case)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if own:
            worker.stop()
    return tally


def fixed_cases() -> list[tuple[str, str, bytes | None]]:
    return [(option, kind, None) for option in OPTIONS for kind in KINDS]


def random_cases(per_option: int, seed: int = 20) -> list[tuple[str, str, bytes | None]]:
    rng = random.Random(seed)
    out: list[tuple[str, str, bytes | None]] = []
    for option in OPTIONS:
        for _ in range(per_option):
            out.append((option, "random", rng.randbytes(rng.randint(0, 400))))
    return out


def _worker(req_fd: int, res_fd: int) -> None:
    limit = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = MEMORY_LIMIT if limit == resource.RLIM_INFINITY else min(MEMORY_LIMIT, limit)
    resource.setrlimit(resource.RLIMIT_AS, (cap, limit))
    from doctor.cli import main

    requests = os.fdopen(req_fd, "rb")
    results = os.fdopen(res_fd, "wb", buffering=0)
    base_env = dict(os.environ)
    for key in ("RAY_ADDRESS", "VIRTUAL_ENV", "CONDA_PREFIX", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        base_env.pop(key, None)
    for line in requests:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(base_env)
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        crashed = False
        code: int | None = None
        try:
            code = main(request["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - any escape is what this counts
            crashed = True
            err.write(traceback.format_exc(limit=3)[-2000:])
        finally:
            sys.stdout, sys.stderr = saved
        answer = {"code": code, "err": err.getvalue()[-4000:], "traceback": crashed}
        results.write((json.dumps(answer) + "\n").encode())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(int(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    per_option = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    started = time.monotonic()
    tally = run_cases(fixed_cases() + random_cases(per_option))
    for case in tally.cases:
        if not case.clean:
            first = case.err.strip().splitlines()[-1:] if case.err.strip() else [""]
            print(
                f"{case.option:22} {case.kind:12} code={case.code} hang={case.hang} tb={case.traceback} {first[0][:150]}"
            )
    print(json.dumps({**tally.summary(), "seconds": round(time.monotonic() - started, 1)}))
