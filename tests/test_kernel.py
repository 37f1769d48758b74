"""Jupyter kernels: ``check --kernel NAME`` judges the Python a kernel runs; ``fix --kernel`` registers one.

Real parts: kernelspec folders written by hand for the lookup and check; jupyter_client's own
``KernelSpecManager`` (in the test venv) as the oracle of the search order; ``fix`` through the CLI
with the real uv, virtualenv and the env's own ipykernel (from PyPI); and, against the live head,
nbclient running a two-cell notebook on the kernel fix registered (``ray.init("ray://…")`` and a
remote task whose answer comes back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doctor.fix.kernel import cluster_label, default_kernel_name, display_name
from doctor.local.kernels import find_kernels, jupyter_data_dir, kernel_dirs
from tests.helpers import raydoctor_cli, tool_env

IMAGE = "rayproject/ray:2.49.2-py312-cpu"
ENV_NAME = "ray2.49.2-py3.12.9"  # the image's Python is 3.12.9 (table of known builds)
DEFAULT_KERNEL = f"raydoctor-{ENV_NAME}"
needs_build = pytest.mark.needs(pyenv="3.12.1", uv=True)


def write_kernel(folder: Path, argv: list[str], display: str = "by hand", **extra: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": display, "language": "python", **extra})
    )
    return folder


def launcher(python: str) -> list[str]:
    return [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return raydoctor_cli(args, cwd, env, timeout)


@pytest.fixture
def jenv(tmp_path: Path, clean_env: dict[str, str]) -> dict[str, str]:
    """Jupyter's folders in tmp_path; the test venv (with jupyter on PATH) first on PATH."""
    env = dict(clean_env)
    for var in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_PLATFORM_DIRS", "XDG_DATA_HOME", "IPYTHONDIR"):
        env.pop(var, None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["NO_COLOR"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


# -- the lookup, as Jupyter does it ------------------------------------------------------------


def test_data_dir_as_jupyter_core_computes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert jupyter_data_dir({"JUPYTER_DATA_DIR": "/x/y", "HOME": str(home)}) == Path("/x/y")
    assert jupyter_data_dir({"XDG_DATA_HOME": "/xdg", "HOME": str(home)}, "linux") == Path("/xdg/jupyter")
    assert jupyter_data_dir({"HOME": str(home)}, "linux") == home.resolve() / ".local" / "share" / "jupyter"
    assert jupyter_data_dir({"HOME": str(home)}, "darwin") == home.resolve() / "Library" / "Jupyter"
    assert jupyter_data_dir({"HOME": str(home), "APPDATA": "C:/AppData"}, "win32") == Path("C:/AppData/jupyter")


def test_search_order_and_first_match_equal_jupyter_clients(tmp_path: Path, jenv: dict[str, str]) -> None:
    """The folders and the kernel each name resolves to are those of jupyter_client's KernelSpecManager."""
    first, data = tmp_path / "jp-first", Path(jenv["JUPYTER_DATA_DIR"])
    jenv["JUPYTER_PATH"] = str(first)
    write_kernel(first / "kernels" / "shared", launcher("/first/python"))
    write_kernel(data / "kernels" / "shared", launcher("/second/python"))  # shadowed by JUPYTER_PATH
    write_kernel(data / "kernels" / "Mixed.Case-1", launcher("/m/python"))  # Jupyter lower-cases names
    (data / "kernels" / "no-json").mkdir()  # not a kernel folder: no kernel.json
    oracle = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from jupyter_client.kernelspec import KernelSpecManager as M; "
            "m = M(ensure_native_kernel=False); print(json.dumps([m.kernel_dirs, m.find_kernel_specs()]))",
        ],
        env=jenv,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    dirs, specs = json.loads(oracle.stdout)
    assert [str(p) for p in kernel_dirs(jenv)] == dirs
    ours = {name: str(path) for name, path in find_kernels(jenv).items()}
    assert ours == specs
    assert ours["shared"] == str(first / "kernels" / "shared") and "mixed.case-1" in ours and "no-json" not in ours


def test_names_and_labels() -> None:
    assert default_kernel_name(ENV_NAME) == "raydoctor-ray2.49.2-py3.12.9"
    assert default_kernel_name("ray 2/x") == "raydoctor-ray-2-x"
    assert display_name("2.49.2", "3.12.9", "ray-head") == "Ray 2.49.2 · Python 3.12.9 (ray-head)"
    assert cluster_label({"kind": "compose", "head_service": "ray-head"}) == "ray-head"
    assert cluster_label({"kind": "compose", "image_from": "compose service evil", "compose": "/c.yaml"}) == "c.yaml"
    assert cluster_label({"kind": "address", "address": {"host": "10.0.0.5"}}) == "10.0.0.5"
    assert cluster_label({"kind": "image", "image": IMAGE}) == IMAGE


# -- check --kernel ----------------------------------------------------------------------------


def test_check_judges_the_kernels_python_not_the_shells(
    tmp_path: Path, jenv: dict[str, str], local_python311: str
) -> None:
    data = Path(jenv["JUPYTER_DATA_DIR"])
    spec = write_kernel(data / "kernels" / "old311", launcher(local_python311))
    proc = cli(["check", "--image", IMAGE, "--kernel", "old311", "--no-roundtrip", "--json"], tmp_path, jenv)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    assert doc["local"]["executable"] == local_python311  # not the shell's python3 (the test venv first on PATH)
    assert doc["local"]["chosen_by"] == f"kernel old311 ({spec / 'kernel.json'})"
    py = next(r for r in doc["results"] if r["id"] == "versions.python")
    assert py["status"] == "fail" and py["code"].startswith("versions.python."), py["summary"]
    assert "Jupyter kernel old311" in py["summary"] and "3.11" in py["summary"] and "3.12.9" in py["summary"]


def test_a_bare_python_in_argv_is_the_one_on_path(tmp_path: Path, jenv: dict[str, str], local_python311: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(local_python311)
    jenv["PATH"] = os.pathsep.join([str(bindir), jenv["PATH"]])
    write_kernel(Path(jenv["JUPYTER_DATA_DIR"]) / "kernels" / "bare", launcher("python3"))
    proc = cli(["check", "--image", IMAGE, "--kernel", "BARE", "--no-roundtrip", "--json"], tmp_path, jenv)
    doc = json.loads(proc.stdout)
    assert doc["local"]["executable"] in (str(bindir / "python3"), local_python311)
    assert doc["local"]["python"].startswith("3.11.") and doc["local"]["chosen_by"].startswith("kernel bare (")


def test_unknown_kernel_is_one_line_listing_the_kernels_exit_2(tmp_path: Path, jenv: dict[str, str]) -> None:
    data = Path(jenv["JUPYTER_DATA_DIR"])
    write_kernel(data / "kernels" / "alpha", launcher("/a/python"))
    write_kernel(data / "kernels" / "beta", launcher("/b/python"))
    proc = cli(["check", "--image", IMAGE, "--kernel", "gamma"], tmp_path, jenv)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "--kernel gamma: no such Jupyter kernel" in lines[0] and "alpha" in lines[0] and "beta" in lines[0]
    both = cli(["check", "--image", IMAGE, "--kernel", "alpha", "--python", sys.executable], tmp_path, jenv)
    assert both.returncode == 2 and "not both" in both.stderr and "Traceback" not in both.stderr
    bad = cli(["check", "--image", IMAGE, "--kernel", "../etc"], tmp_path, jenv)
    assert bad.returncode == 2 and "not a kernel name" in bad.stderr


def test_a_broken_kernel_json_is_one_line(tmp_path: Path, jenv: dict[str, str]) -> None:
    folder = Path(jenv["JUPYTER_DATA_DIR"]) / "kernels" / "broken"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text('{"argv": "python"}')
    proc = cli(["check", "--image", IMAGE, "--kernel", "broken", "--json"], tmp_path, jenv)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and "no argv list" in doc["error"]


# -- fix --kernel, no cluster: an image target, a real build -------------------------------------


def kernel_json(folder: Path) -> dict:
    return json.loads((folder / "kernel.json").read_text())


@needs_build
def test_fix_registers_updates_and_undoes_only_its_own(tmp_path: Path, jenv: dict[str, str]) -> None:
    env = tool_env(jenv)
    env.pop("CONDA_EXE", None)
    kernels = Path(env["JUPYTER_DATA_DIR"]) / "kernels"
    mine = write_kernel(kernels / "mine", launcher("/usr/bin/python3"), "My own")
    mine_bytes = (mine / "kernel.json").read_bytes()
    base = ["fix", "--image", IMAGE, "--yes", "--no-conda", "--installer", "uv", "--no-roundtrip"]

    dry = cli([*base, "--kernel", "--json", "--dry-run"], tmp_path, env)
    plan = json.loads(dry.stdout)["plan"]
    planned = plan["kernel"]
    # The env is named after the Python it will really hold (the closest 3.12 here: no exact 3.12.9).
    env_name = plan["env"]["name"]
    real = env_name.rsplit("-py", 1)[1]
    assert env_name == f"ray2.49.2-py{real}" and real.startswith("3.12.")
    default_kernel = f"raydoctor-{env_name}"
    assert dry.returncode == 0 and planned["name"] == default_kernel and not planned["exists"]
    assert planned["display_name"] == f"Ray 2.49.2 · Python {real} ({IMAGE})"  # the env's Python, not the head's
    assert not (kernels / default_kernel).exists() and not (tmp_path / "envs").exists()

    first = cli([*base, "--kernel", "--json"], tmp_path, env)
    doc = json.loads(first.stdout)
    assert first.returncode == 0, (doc["error"], doc["steps"])
    assert [s["name"] for s in doc["steps"]] == ["interpreter", "venv", "install", "kernel", "verify"]
    folder = kernels / default_kernel
    spec = kernel_json(folder)
    python = tmp_path / "envs" / env_name / "bin" / "python"
    assert spec["argv"][0] == str(python) and "{connection_file}" in spec["argv"]
    assert spec["display_name"] == f"Ray 2.49.2 · Python {real} ({IMAGE})"
    assert spec["metadata"]["raydoctor"]["env"] == str(tmp_path / "envs" / env_name)
    assert doc["outcome"]["kernel"]["name"] == default_kernel and doc["outcome"]["kernel"]["ipykernel_installed"]
    # check --kernel judges that env
    judged = cli(["check", "--image", IMAGE, "--kernel", default_kernel, "--no-roundtrip", "--json"], tmp_path, env)
    assert json.loads(judged.stdout)["local"]["executable"] == str(python)

    # run again (an earlier run's name shown): it updates the kernelspec, nothing else is rebuilt
    spec["display_name"] = "stale name"
    (folder / "kernel.json").write_text(json.dumps(spec))
    again = cli([*base, "--kernel", default_kernel, "--json"], tmp_path, env)
    doc = json.loads(again.stdout)
    assert again.returncode == 0 and doc["plan"]["action"] == "up-to-date" and doc["plan"]["kernel"]["exists"]
    assert kernel_json(folder)["display_name"] == f"Ray 2.49.2 · Python {real} ({IMAGE})"
    assert doc["outcome"]["kernel"]["updated"] and not doc["outcome"]["kernel"]["ipykernel_installed"]
    ours_bytes = (folder / "kernel.json").read_bytes()

    # a failed fix (the export after the kernel step cannot be written): the new kernel goes, the rest stays
    (tmp_path / "afile").write_text("x")
    failing = ["--export", str(tmp_path / "afile" / "environment.yml"), "--json"]
    broken = cli([*base, "--kernel", "second", *failing], tmp_path, env)
    doc = json.loads(broken.stdout)
    assert broken.returncode == 1 and doc["steps"][-1]["name"] == "export", doc["steps"]
    assert not (kernels / "second").exists()
    assert any("Jupyter kernel second" in r for r in doc["outcome"]["removed"])
    assert (folder / "kernel.json").read_bytes() == ours_bytes and (mine / "kernel.json").read_bytes() == mine_bytes

    # the same failure updating a kernelspec that existed before: it is put back exactly, not removed
    spec_changed = dict(kernel_json(folder), display_name="from before")
    (folder / "kernel.json").write_text(json.dumps(spec_changed))
    before = (folder / "kernel.json").read_bytes()
    broken = cli([*base, "--kernel", default_kernel, *failing], tmp_path, env)
    doc = json.loads(broken.stdout)
    assert broken.returncode == 1 and any("put back" in r for r in doc["outcome"]["removed"])
    assert (folder / "kernel.json").read_bytes() == before
    assert sorted(p.name for p in kernels.iterdir()) == sorted([default_kernel, "mine"])  # no backup left

    # a kernelspec raydoctor did not write is never replaced
    refused = cli([*base, "--kernel", "mine"], tmp_path, env)
    assert refused.returncode == 2 and "raydoctor did not write it" in refused.stderr
    assert (mine / "kernel.json").read_bytes() == mine_bytes

    # --kernel-prefix: the kernelspec goes to PREFIX/share/jupyter/kernels
    prefix = tmp_path / "prefix"
    placed = cli([*base, "--kernel", "in-prefix", "--kernel-prefix", str(prefix)], tmp_path, env)
    assert placed.returncode == 0, placed.stderr
    assert kernel_json(prefix / "share" / "jupyter" / "kernels" / "in-prefix")["argv"][0] == str(python)
    assert not (kernels / "in-prefix").exists()


# -- against the live head: the notebook's round trip --------------------------------------------


@needs_build
@pytest.mark.cluster
def test_a_notebook_on_the_kernel_fix_registered_reaches_the_cluster(
    ray_head, tmp_path: Path, jenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    env = tool_env(jenv)
    env.pop("CONDA_EXE", None)
    target = [
        "--address",
        ray_head.dashboard_url,
        "--client-port",
        str(ray_head.ports["client"]),
        "--gcs-port",
        str(ray_head.ports["gcs"]),
    ]
    proc = cli(
        ["fix", *target, "--yes", "--no-conda", "--installer", "uv", "--kernel", "ray-nb", "--json"], tmp_path, env
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, (doc["error"], doc["steps"])
    head_py = doc["plan"]["head"]["python"]
    spec = kernel_json(Path(env["JUPYTER_DATA_DIR"]) / "kernels" / "ray-nb")
    assert spec["display_name"] == f"Ray 2.49.2 · Python {head_py} ({ray_head.ip})"

    for var in ("JUPYTER_DATA_DIR", "HOME", "PATH"):  # nbclient finds the kernel as Jupyter would
        monkeypatch.setenv(var, env[var])
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    client_url = ray_head.client_url
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import ray\nray.init({client_url!r})"),
        nbformat.v4.new_code_cell(
            "import sys\n@ray.remote\ndef double(x):\n    return 2 * x\n"
            "print(ray.get(double.remote(21)), sys.executable)"
        ),
    ]
    NotebookClient(
        nb, kernel_name="ray-nb", timeout=180, startup_timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    out = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.get("output_type") == "stream")
    answer, executable = out.split()
    assert answer == "42" and executable == spec["argv"][0]
