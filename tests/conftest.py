"""Shared fixtures: a real Ray head on loopback, built from a cached venv, and the parts tests share.

The head is started once per test session on free ports and stopped at the
end. Tests that need it are marked ``cluster``. A part a test needs that this
machine lacks (the Ray venv, a Python minor, uv) skips the test with what is
missing, or fails it when ``CI`` is set (``tests.helpers.missing``). Plain
helpers (``by_id``, ``wait_for``, ``fix_cli``) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import functools
import glob
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import FAKE_CONDA, missing, on_ci, pyenv_python, python_for, tool_env, why_no_python
from tests.ray_cluster import HEAD_PYTHON, RAY_VERSION, RayNode, ensure_ray_venv

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def raydoctor_state(tmp_path_factory) -> Path:
    """raydoctor's per-user state (the key that seals env markers) in a temporary folder, not in ~."""
    folder = tmp_path_factory.mktemp("raydoctor-state")
    os.environ["RAYDOCTOR_STATE_DIR"] = str(folder)  # subprocesses (the CLI) inherit it
    # The uv resolution's cache too (doctor.facts.resolution), unless a test points it elsewhere.
    os.environ.setdefault("RAYDOCTOR_RESOLUTION_CACHE", str(tmp_path_factory.mktemp("resolution-cache")))
    # Tests never download a Python from the internet: fix's uv step is tested from a local downloads
    # list (tests/test_uv_python.py, which sets its own UV_* environment).
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    return folder


# -- parts a test needs: ``@pytest.mark.needs(python="3.12", pyenv="3.12.1", uv=True)`` -------
# python: that version from pyenv or PATH; pyenv: that version in pyenv's folder (for tests that
# judge pyenv's layout, or give the fake conda its interpreters); uv: uv installed.


@functools.cache
def _uv() -> str | None:
    from doctor.fix.install import find_uv

    found = find_uv()
    return str(found) if found else None


# -- the fast tier: ``pytest -m "not live"`` runs what needs no Ray head, no Docker and no built venv ----
# A test is live when it says so (cluster, slow, needs) or asks for a fixture that starts a head or
# builds a Ray venv; marked here once, so no test module has to remember to.
LIVE_FIXTURES = frozenset(
    {"head_python", "ray_head", "ray_head_worker", "ray_gpu_head", "token_python", "token_head", "fix_env"}
)
LIVE_MARKERS = ("cluster", "slow", "needs", "engine", "matrix", "live")


def _mark_live(items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if uses & LIVE_FIXTURES or any(item.get_closest_marker(m) for m in LIVE_MARKERS):
            item.add_marker(pytest.mark.live)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        version = mark.kwargs.get("python")
        if version and python_for(version) is None:
            missing(why_no_python(version))
        version = mark.kwargs.get("pyenv")
        if version and pyenv_python(version) is None:
            missing(why_no_python(version, pyenv_only=True))
        if mark.kwargs.get("uv") and _uv() is None:
            missing("needs uv (the `uv` package in this venv or `uv` on PATH): pip install uv")


# -- the version matrix (tests/test_ray_matrix.py): every row with -m matrix, else the ci rows --------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _mark_live(items)
    if "matrix" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("matrix_only") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


# -- multiprocessing's pymp-* folders must not outlive the run (issue 12) -----------------------


def _pymp_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "pymp-*")))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_PYMP_KEY] = _pymp_dirs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_PYMP_KEY, None)
    if before is None:
        return
    left = sorted(_pymp_dirs() - before)
    session.config.stash[_PYMP_LEFT] = left
    # Under CI nothing else runs beside the suite: a new folder is ours, and fails the run. Elsewhere
    # another program may make one meanwhile, so it is only reported.
    if left and on_ci() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    left = config.stash.get(_PYMP_LEFT, [])
    if left:
        terminalreporter.write_line(
            f"{'ERROR' if on_ci() else 'WARNING'}: multiprocessing temp folders appeared in "
            f"{tempfile.gettempdir()} during the run and are still there: {', '.join(left)}",
            red=True,
        )


_PYMP_KEY = pytest.StashKey[set]()
_PYMP_LEFT = pytest.StashKey[list]()


# -- interpreters and the Ray head ---------------------------------------------------------------


def ray_venv_python() -> Path:
    """The Ray test venv's interpreter; skips (fails under CI) saying why it cannot be built."""
    try:
        return ensure_ray_venv()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        missing(f"cannot build the Ray test venv (Ray {RAY_VERSION} on Python {HEAD_PYTHON}): {exc}")


def interpreter(version: str) -> str:
    """A local interpreter of ``version``; skips (fails under CI) saying what is missing."""
    found = python_for(version)
    if found is None:
        missing(why_no_python(version))
    return str(found)


@pytest.fixture(scope="session")
def head_python() -> Path:
    """The head env's interpreter: Python 3.12 with ray[default]==2.49.2."""
    return ray_venv_python()


@pytest.fixture(scope="session")
def ray_head(head_python: Path):
    """A running Ray head (CPU) on free loopback ports."""
    node = RayNode(head_python, num_cpus=2).start()  # on 127.0.0.2, see RayNode.ip
    yield node
    node.stop()


@pytest.fixture(scope="session")
def local_python311() -> str:
    """The machine's python3 (3.11 here): the 'wrong' interpreter the issue judges."""
    return interpreter("3.11")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """An environment without Ray/venv variables that would change what check looks at."""
    for var in (
        "RAY_ADDRESS",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "RAY_AUTH_TOKEN",
        "RAY_AUTH_TOKEN_PATH",
        "RAY_IGNORE_VERSION_MISMATCH",
        "NO_COLOR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return dict(os.environ)


@pytest.fixture(scope="session")
def ray_head_worker(head_python: Path, tmp_path_factory):
    """A head (``--num-gpus=1``) plus one CPU worker node (``ray start --address``), both alive.

    The worker's PYTHONPATH carries one extra distribution, ``raydoctor-node-marker``
    1.0, so that the nodes differ by exactly one known package. The head claims a GPU
    this machine does not have (see ``ray_gpu_head``): one cluster serves both, as a
    third head is slow to start on a small machine.
    """
    extra = tmp_path_factory.mktemp("worker-site")
    dist = extra / "raydoctor_node_marker-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: raydoctor-node-marker\nVersion: 1.0\n")
    head = RayNode(head_python, num_cpus=1, num_gpus=1).start()
    worker = None
    try:
        worker = RayNode(
            head_python, head=False, gcs_address=head.gcs, num_cpus=1, env={"PYTHONPATH": str(extra)}
        ).start()
        head.wait_nodes(2, timeout=120)
        yield head, worker
    finally:
        if worker is not None:
            worker.stop()
        head.stop()


@pytest.fixture(scope="session")
def ray_gpu_head(ray_head_worker):
    """A head started with ``--num-gpus=1`` on a machine without a GPU: Ray advertises a GPU that no task can see.

    It is the head of ``ray_head_worker`` (its worker has no GPU). On a host with a real
    NVIDIA device the task would see it, so there the tests that need this head skip.
    """
    devices = glob.glob("/dev/nvidia[0-9]*")
    if devices:
        pytest.skip(f"this host has a GPU ({', '.join(devices)}): a task here sees it, which these tests rule out")
    return ray_head_worker[0]


@pytest.fixture
def fix_env(tmp_path: Path, clean_env: dict[str, str]) -> dict[str, str]:
    """For ``raydoctor fix`` in a subprocess: warm caches, plain output, and the fake conda with an empty root."""
    out = tool_env(clean_env)
    out.update(
        {
            "NO_COLOR": "1",
            "CONDA_EXE": str(FAKE_CONDA),
            "FAKE_CONDA_ROOT": str(tmp_path / "conda"),
            "FAKE_CONDA_LOG": str(tmp_path / "conda.log"),
        }
    )
    for var in ("FAKE_CONDA_FAULT", "FAKE_CONDA_FAULT_ON", "FAKE_CONDA_ENV_LIST", "FAKE_CONDA_PYTHONS"):
        out.pop(var, None)
    return out


@pytest.fixture
def silent_index():
    """A package index URL whose server accepts connections and never replies; the event fires on the first."""
    from tests.fake_servers import SilentPort

    with SilentPort() as server:
        yield f"http://127.0.0.1:{server.port}/simple/", server.contacted


# -- a head of a Ray with token authentication (Ray >= 2.52), shared by the token tests ----------


@pytest.fixture(scope="session")
def token_python() -> Path:
    """A venv with the token-capable Ray: on TOKEN_PYTHON, else the newest other Python here that its wheels support."""
    from tests.helpers import TOKEN_PYTHON, TOKEN_RAY

    errors = []
    for minor in dict.fromkeys((TOKEN_PYTHON, "3.13", "3.12", "3.11", "3.10")):
        try:
            return ensure_ray_venv(ray=TOKEN_RAY, minor=minor)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
            errors.append(f"Python {minor}: {exc}")
    missing(f"cannot build a Ray {TOKEN_RAY} venv for the token tests: {'; '.join(errors)}")


@pytest.fixture(scope="session")
def token_head(token_python: Path):
    """A head with RAY_AUTH_MODE=token and the token tests.helpers.TOKEN."""
    from tests.helpers import TOKEN, TOKEN_RAY

    node = RayNode(token_python, num_cpus=1, auth_token=TOKEN, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN})
    try:
        node.start()
    except RuntimeError as exc:
        missing(f"Ray {TOKEN_RAY} with RAY_AUTH_MODE=token did not start here: {exc}")
    yield node
    node.stop()
