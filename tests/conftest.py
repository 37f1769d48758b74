"""Shared fixtures: a real Ray head on loopback, built from a cached venv.

The head is started once per test session on free ports and stopped at the
end. Tests that need it are marked ``cluster``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ray_cluster import RayNode, ensure_ray_venv

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def raydoctor_state(tmp_path_factory) -> Path:
    """raydoctor's per-user state (the key that seals env markers) in a temporary folder, not in ~."""
    folder = tmp_path_factory.mktemp("raydoctor-state")
    os.environ["RAYDOCTOR_STATE_DIR"] = str(folder)  # subprocesses (the CLI) inherit it
    # Tests never download a Python from the internet: fix's uv step is tested from a local downloads
    # list (tests/test_uv_python.py, which sets its own UV_* environment).
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
    return folder


@pytest.fixture(scope="session")
def head_python() -> Path:
    """The head env's interpreter: Python 3.12 with ray[default]==2.49.2."""
    try:
        return ensure_ray_venv()
    except RuntimeError as exc:
        pytest.skip(f"cannot build the Ray test venv: {exc}")


@pytest.fixture(scope="session")
def ray_head(head_python: Path):
    """A running Ray head (CPU) on free loopback ports."""
    node = RayNode(head_python, num_cpus=2).start()  # on 127.0.0.2, see RayNode.ip
    yield node
    node.stop()


@pytest.fixture(scope="session")
def local_python311() -> str:
    """The machine's python3 (3.11 here): the 'wrong' interpreter the issue judges."""
    from tests.ray_cluster import find_python

    found = find_python("3.11")
    if found is None:
        pytest.skip("no Python 3.11 on this machine")
    return str(found)


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


# A second head on a busy 2-core machine: the dashboard's modules may need more than
# Ray's default 30 s to report ready, and the dashboard dies when they do not.
SLOW_MACHINE = {"RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "150"}


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
    head = RayNode(head_python, num_cpus=1, num_gpus=1, env=dict(SLOW_MACHINE)).start()
    worker = None
    try:
        worker = RayNode(
            head_python, head=False, gcs_address=head.gcs, num_cpus=1, env={**SLOW_MACHINE, "PYTHONPATH": str(extra)}
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

    It is the head of ``ray_head_worker`` (its worker has no GPU).
    """
    return ray_head_worker[0]


@pytest.fixture
def silent_index():
    """A package index URL whose server accepts connections and never replies; the event fires on the first."""
    from tests.fake_servers import SilentPort

    with SilentPort() as server:
        yield f"http://127.0.0.1:{server.port}/simple/", server.contacted
