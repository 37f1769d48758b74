"""packages.skew, its table, fix --match-head / --constraints, and raydoctor lock.

The table's judgement is tested with made-up versions; the check with the real interpreter of the
cached Ray venv (attrs 26.1, msgpack 1.2 and pydantic 2 are installed there) against a head file.
What the rows of pyarrow, pandas, attrs and pydantic say is checked against real pickles in
tests/test_package_skew_real.py. The numpy row is tested here, through Ray itself: two more cached
Ray venvs, one with numpy 2 and one with numpy 1, a head from one and a Ray Client from the other,
an array each way, and check --deep on that pair.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from doctor.errors import UsageError
from doctor.package_skew import RULES, TABLE, judge, matched_pins, read_pins, same_at, spans
from doctor.pins import Pin
from tests.helpers import missing, raydoctor_cli
from tests.ray_cluster import HEAD_PYTHON, RAY_VERSION, RayNode, ensure_ray_venv


def by_name(skews):
    return {s.name: s for s in skews}


def test_numpy_major_breaks_with_its_symptom_and_minor_does_not():
    got = by_name(judge({"numpy": "1.26.4"}, {"numpy": "2.1.3"}))
    assert got["numpy"].breaks
    assert "numpy._core.numeric" in got["numpy"].describe()
    assert not by_name(judge({"numpy": "2.0.1"}, {"numpy": "2.1.3"}))["numpy"].breaks


@pytest.mark.parametrize(
    "name,local,head,breaks",
    [
        # pyarrow: a warning row (tables of common types load across majors; test_package_skew_real)
        ("pyarrow", "17.0.0", "18.1.0", False),
        ("pyarrow", "18.0.0", "18.1.0", False),
        # pandas: majors break, minors load (seen in test_package_skew_real)
        ("pandas", "1.5.3", "2.2.3", True),
        ("pandas", "2.1.4", "2.2.3", False),
        ("pandas", "2.2.2", "2.2.3", False),
        # attrs: only a difference across 22.2.0, where slotted classes' pickles changed, breaks
        ("attrs", "22.1.0", "22.2.0", True),
        ("attrs", "22.1.0", "26.1.0", True),
        ("attrs", "23.2.0", "24.2.0", False),
        ("attrs", "22.2.0", "26.1.0", False),
        ("pydantic", "1.10.13", "2.9.2", True),
        ("pydantic", "2.8.0", "2.9.2", False),
        ("torch", "2.4.1", "2.5.1", False),  # a warning: ordinary tensors load (seen 2.1.2 to 2.13.0)
        ("torch", "2.1.2", "2.13.0", False),
        ("msgpack", "1.0.0", "1.1.0", False),
        ("cloudpickle", "2.2.1", "3.1.0", False),
    ],
)
def test_table_levels(name, local, head, breaks):
    [skew] = judge({name: local}, {name: head})
    assert skew.breaks is breaks
    assert skew.rule is RULES[name]
    [back] = judge({name: head}, {name: local})  # which side is newer does not matter: objects go both ways
    assert back.breaks is breaks


def test_a_warning_row_shows_its_symptom_without_failing():
    [skew] = judge({"pyarrow": "14.0.2"}, {"pyarrow": "18.1.0"})
    assert skew.differs and not skew.breaks and "No type alias for string_view" in skew.describe()
    [skew] = judge({"pyarrow": "18.0.0"}, {"pyarrow": "18.1.0"})
    assert not skew.differs and skew.describe() == "pyarrow 18.0.0 here, 18.1.0 on the cluster"


def test_spans():
    assert spans("22.1.0", "26.1.0", ("22.2.0",)) and spans("22.2.0", "22.1.0", ("22.2.0",))
    assert not spans("22.2.0", "26.1.0", ("22.2.0",)) and not spans("21.4.0", "22.1.0", ("22.2.0",))
    assert spans("1.0", "2.0", ()) and spans("weird", "26.1.0", ("22.2.0",))


def test_unknown_packages_and_ray_are_not_judged_here():
    skews = judge(
        {"ray": "2.48.0", "leftpad": "1.0", "numpy": "2.0.0"}, {"ray": "2.49.2", "leftpad": "2.0", "numpy": "2.0.0"}
    )
    assert [s.name for s in skews] == ["leftpad"] and skews[0].rule is None and not skews[0].breaks


def test_every_row_says_why_and_what_the_user_sees():
    for rule in TABLE:
        assert rule.why and rule.symptom and rule.level in {"major", "minor", "exact", "none"}
        assert not (rule.breaks and rule.level == "none")  # a row with a level and no break is a warning (pyarrow)
    assert "msgpack" in RULES and "Variation is ok" in RULES["msgpack"].why


def test_same_at():
    assert same_at("2.1.0", "2.9.9", "major") and not same_at("1.9", "2.0", "major")
    assert same_at("2.2.1", "2.2.3", "minor") and not same_at("2.1.0", "2.2.0", "minor")
    assert same_at("weird", "weird", "exact") and not same_at("weird", "other", "minor")


def test_read_pins_and_matched_pins(tmp_path):
    (tmp_path / "head.txt").write_text("# a lock\nnumpy==2.1.3\nPyArrow==18.1.0\nrequests>=2\nmsgpack==1.1.0\n")
    pins = read_pins(tmp_path / "head.txt")
    assert pins == {"numpy": "2.1.3", "pyarrow": "18.1.0", "msgpack": "1.1.0"}
    assert matched_pins(pins) == [Pin("numpy", "2.1.3")]  # msgpack's variation is harmless, pyarrow's a warning
    with pytest.raises(UsageError):
        read_pins(tmp_path / "missing.txt")


def test_check_fails_on_a_breaking_difference_with_the_real_local_interpreter(tmp_path, head_python):
    from doctor.app import run_check
    from doctor.options import TargetOptions

    head = tmp_path / "head.txt"
    head.write_text("attrs==22.1.0\nmsgpack==1.0.0\n")  # the Ray venv has attrs 26.1.0, msgpack 1.2.4
    options = TargetOptions(
        image="rayproject/ray:2.49.2-py312-cpu", python=str(head_python), head_packages=head, roundtrip=False
    )
    report = run_check(options, environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)
    [res] = [r for r in report.results if r.id == "packages.skew"]
    assert res.code == "packages.skew.breaks", res.summary
    assert "attrs 26.1.0 here, 22.1.0 on the cluster" in res.summary and "field names as values" in res.summary
    assert any("msgpack" in d and "harmless" in d for d in res.details)
    assert res.remediation is not None and any("attrs==22.1.0" in c for c in res.remediation.commands)


def test_check_skips_without_the_clusters_packages(tmp_path):
    from doctor.app import run_check
    from doctor.options import TargetOptions

    report = run_check(
        TargetOptions(image="rayproject/ray:2.49.2-py312-cpu", roundtrip=False),
        environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    [res] = [r for r in report.results if r.id == "packages.skew"]
    assert res.code == "packages.skew.unknown" and "--deep" in res.summary


def test_match_head_and_constraints_become_constraints_of_the_install(tmp_path):
    from doctor.fix.plan import Checked, FixOptions, HeadTarget, extra_pins, plan_install
    from doctor.head.facts import HeadFacts
    from doctor.options import TargetOptions
    from doctor.versions import VersionSpec

    (tmp_path / "packages.txt").write_text("numpy==1.26.4\nrequests\n")
    (tmp_path / "team.txt").write_text("requests==2.32.3\nray==2.40.0\n")
    head = HeadTarget("2.49.2", VersionSpec.read("3.12.9"), "exact", "t", "t")
    checked = Checked(HeadFacts(), head_packages={"numpy": "2.1.3", "msgpack": "1.1.0", "ray": "2.49.2"})
    options = FixOptions(TargetOptions(), match_head=True, constraints=Path("team.txt"))
    pins = extra_pins(options, checked, head, tmp_path)
    assert (Pin("numpy", "2.1.3"), "the cluster") in pins and (Pin("requests", "2.32.3"), "team.txt") in pins
    assert not any(p.name.startswith(("ray", "msgpack")) for p, _ in pins)  # Ray follows the head; msgpack harmless
    plan, warnings = plan_install(tmp_path / "packages.txt", "2.49.2", "pip", extra_pins=pins)
    assert plan.constraints == ["ray==2.49.2", "requests==2.32.3", "numpy==2.1.3"]
    assert any("numpy==1.26.4" in w and "the cluster has 2.1.3" in w and "not edited" in w for w in warnings)
    assert (tmp_path / "packages.txt").read_text() == "numpy==1.26.4\nrequests\n"
    bare, _ = plan_install(tmp_path / "packages.txt", "2.49.2", "pip")
    assert bare.hash != plan.hash  # an env built with other pins is not up to date


def test_match_head_without_the_clusters_packages_is_a_usage_error(tmp_path):
    from doctor.fix.plan import Checked, FixOptions, HeadTarget, extra_pins
    from doctor.head.facts import HeadFacts
    from doctor.options import TargetOptions
    from doctor.versions import VersionSpec

    head = HeadTarget("2.49.2", VersionSpec.read("3.12.9"), "exact", "t", "t")
    with pytest.raises(UsageError, match="cluster's packages are unknown"):
        extra_pins(FixOptions(TargetOptions(), match_head=True), Checked(HeadFacts()), head, tmp_path)


def test_lock_lines():
    from doctor.commands.lock import lock_lines

    lines, missing = lock_lines(
        {"ray": "2.49.2", "numpy": "2.1.3", "requests": "2.32.3", "msgpack": "1.1.0"},
        ["Requests", "leftpad"],
        ray="2.49.2",
        python="3.12.9",
        where="http://h:8265",
    )
    assert [ln for ln in lines if not ln.startswith("#")] == ["numpy==2.1.3", "ray==2.49.2", "requests==2.32.3"]
    assert missing == ["leftpad"]
    assert read_pins_text(lines) == {"numpy": "2.1.3", "ray": "2.49.2", "requests": "2.32.3"}


def read_pins_text(lines):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lock.txt"
        path.write_text("\n".join(lines) + "\n")
        return read_pins(path)


def test_lock_against_a_dead_address_is_one_line_and_exit_2(tmp_path):
    from tests.fake_servers import closed_port

    done = subprocess.run(
        [sys.executable, "-m", "doctor", "lock", "--address", f"127.0.0.1:{closed_port()}", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    doc = json.loads(done.stdout)
    assert doc["command"] == "lock" and "packages are unknown" in doc["error"]
    assert "Traceback" not in done.stderr


@pytest.mark.cluster
def test_lock_writes_the_heads_versions_and_check_reads_them_back(tmp_path, ray_head, head_python):
    (tmp_path / "packages.txt").write_text("msgpack\npydantic>=2\n")
    out = tmp_path / "ray-lock.txt"
    done = subprocess.run(
        [sys.executable, "-m", "doctor", "lock", "--address", ray_head.dashboard_url, "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    pins = read_pins(out)
    assert pins["ray"] == "2.49.2" and pins["msgpack"] == "1.2.4" and pins["pydantic"].startswith("2.")
    assert pins.get("attrs") == "26.1.0"  # a breaking row the head has, though the project does not name it
    # the file is what packages.skew judges against: the head's own interpreter matches it
    from doctor.app import run_check
    from doctor.options import TargetOptions

    report = run_check(
        TargetOptions(
            image="rayproject/ray:2.49.2-py312-cpu", python=str(head_python), head_packages=out, roundtrip=False
        ),
        environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    [res] = [r for r in report.results if r.id == "packages.skew"]
    assert res.code == "packages.skew.same", res.summary


# -- the numpy row for real: a numpy-2 head, a numpy-1 Ray Client, and the other way round --------

NUMPY_2 = "numpy==2.2.6"
NUMPY_1 = "numpy==1.26.4"
PAIR_IP = "127.0.0.17"  # a loopback address no other test's node uses
# What a numpy-1 interpreter raises on a numpy-2 array's pickle (protocol 5: numpy._core.numeric._frombuffer).
NO_NUMERIC = "No module named 'numpy._core.numeric'"

# Runs in the client's interpreter: ray.init("ray://..."), then the exchanges named on its command line, in
# that order; one EXCHANGE line of JSON each, with the value's repr or the error as a traceback's last line.
EXCHANGE = """
import json, sys
import numpy, ray

ray.init(sys.argv[1], logging_level="ERROR", log_to_driver=False)


@ray.remote(num_cpus=0)
def numpy_version():
    import numpy

    return numpy.__version__


@ray.remote(num_cpus=0)
def total(array):
    return int(array.sum())


@ray.remote(num_cpus=0)
def arange():
    import numpy

    return numpy.arange(3)


EXCHANGES = {
    "head_numpy": lambda: ray.get(numpy_version.remote(), timeout=120),
    "from_head": lambda: ray.get(arange.remote(), timeout=120),
    "to_head": lambda: ray.get(total.remote(numpy.arange(3)), timeout=120),
}
for name in ["head_numpy"] + sys.argv[2:]:
    try:
        line = {"value": repr(EXCHANGES[name]())}
    except Exception as exc:
        line = {"error": type(exc).__name__ + ": " + str(exc)}
    print("EXCHANGE " + json.dumps({"name": name, "client_numpy": numpy.__version__, **line}), flush=True)
ray.shutdown()
"""


def numpy_venv(pin: str) -> Path:
    """The Ray test venv with ``pin`` added (built once, cached beside the plain one)."""
    try:
        return ensure_ray_venv(extra=(pin,))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        missing(f"cannot build a Ray {RAY_VERSION} venv with {pin} on Python {HEAD_PYTHON}: {exc}")


@pytest.fixture(scope="module")
def numpy2_python() -> Path:
    return numpy_venv(NUMPY_2)


@pytest.fixture(scope="module")
def numpy1_python() -> Path:
    return numpy_venv(NUMPY_1)


@contextlib.contextmanager
def head_of(python: Path) -> Iterator[RayNode]:
    """A head from ``python``'s venv on PAIR_IP, stopped (exactly its own processes) on the way out."""
    node = RayNode(python, num_cpus=1, ip=PAIR_IP)
    try:
        yield node.start()
    finally:
        node.stop()


def exchange(client: Path, head: RayNode, names: list[str], cwd: Path, env: dict[str, str]) -> dict[str, dict]:
    """Run EXCHANGE in ``client`` against ``head``'s client port; its EXCHANGE lines by name."""
    # No auto-connect: a ray.get after a broken client connection would start a local Ray
    # (ray/_private/auto_init_hook.py), on 127.0.0.1:8265, instead of failing.
    done = subprocess.run(
        [str(client), "-I", "-c", EXCHANGE, head.client_url, *names],
        cwd=cwd,
        env={**env, "RAY_ENABLE_AUTO_CONNECT": "0"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(ln.split(" ", 1)[1]) for ln in done.stdout.splitlines() if ln.startswith("EXCHANGE ")]
    got = {line["name"]: line for line in lines}
    assert done.returncode == 0 and len(got) == len(names) + 1, (done.returncode, done.stdout, done.stderr[-3000:])
    return got


@pytest.mark.cluster
def test_a_numpy_2_head_and_a_numpy_1_client_fail_on_arrays_and_check_says_so(
    numpy2_python, numpy1_python, clean_env, tmp_path
):
    with head_of(numpy2_python) as head:
        got = exchange(numpy1_python, head, ["to_head", "from_head"], tmp_path, clean_env)
        # The array comes back pickled by numpy 2; numpy 1.26's numpy._core stub has no numeric module.
        # Seen (Ray 2.49.2): ray.get raises it from ray/util/client/client_pickler.py::loads_from_server.
        assert got["head_numpy"] == {"name": "head_numpy", "client_numpy": "1.26.4", "value": "'2.2.6'"}
        assert got["from_head"].get("error") == f"ModuleNotFoundError: {NO_NUMERIC}", got["from_head"]
        assert got["to_head"].get("value") == "3", got["to_head"]  # a numpy-1 array loads under numpy 2

        # raydoctor, judging the numpy-1 interpreter against that head, names the difference and that error.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "doctor",
                "check",
                *head.target_args,
                "--python",
                str(numpy1_python),
                "--deep",
                "--no-roundtrip",
                "--json",
            ],
            cwd=tmp_path,
            env=clean_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.stdout.startswith("{"), (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    doc = json.loads(done.stdout)
    assert done.returncode == 1 and doc["exit_code"] == 1, done.stderr[-3000:]
    results = {r["id"]: r for r in doc["results"]}
    assert results["deep.probe"]["status"] == "ok", results["deep.probe"]
    skew = results["packages.skew"]
    assert skew["status"] == "fail" and skew["code"] == "packages.skew.breaks", skew
    assert skew["summary"].startswith("numpy 1.26.4 here, 2.2.6 on the cluster: "), skew["summary"]
    assert RULES["numpy"].symptom in skew["summary"] and f"ModuleNotFoundError: {NO_NUMERIC}" in skew["summary"]
    assert skew["data"]["differences"] == [
        {"name": "numpy", "local": "1.26.4", "head": "2.2.6", "breaks": True, "in_table": True}
    ]
    assert any(c.endswith(" -m pip install numpy==2.2.6") for c in skew["remediation"]["commands"])


@pytest.mark.cluster
def test_a_numpy_2_client_breaks_the_connection_to_a_numpy_1_head_with_an_array(
    numpy2_python, numpy1_python, clean_env, tmp_path
):
    with head_of(numpy1_python) as head:
        got = exchange(numpy2_python, head, ["from_head", "to_head"], tmp_path, clean_env)
    assert got["head_numpy"]["value"] == "'1.26.4'" and got["head_numpy"]["client_numpy"] == "2.2.6"
    assert got["from_head"].get("value") == "array([0, 1, 2])", got["from_head"]  # numpy 2 loads numpy 1's
    # The head's side fails to load the client's array: Ray Client reports it as a broken connection.
    error = got["to_head"].get("error", "")
    assert error.startswith("ConnectionError: Failed during this or a previous request."), got["to_head"]
    assert f'details = "{NO_NUMERIC}"' in error, error
    assert "ConnectionError: Failed during this or a previous request" in RULES["numpy"].symptom
    assert f'details = "{NO_NUMERIC}"' in RULES["numpy"].symptom


FAKE_DOCKER = Path(__file__).resolve().parent / "fake_docker"


@pytest.mark.cluster
def test_the_images_packages_through_docker_judge_a_numpy_1_laptop(numpy2_python, numpy1_python, clean_env, tmp_path):
    """No cluster running: the head's packages come from its image, whose Python (the numpy-2 Ray venv,
    standing in for the image's interpreter in the fake docker's local image) lists them."""
    image, image_id = "rayproject/ray:2.49.2-py312-cpu", "sha256:" + "5e" * 32
    images = tmp_path / "images.json"
    images.write_text(json.dumps({image: {"id": image_id, "python": str(numpy2_python)}}))
    env = {
        **clean_env,
        "PATH": f"{FAKE_DOCKER}:{clean_env.get('PATH', '/usr/bin:/bin')}",
        "FAKE_DOCKER_IMAGES": str(images),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    args = [sys.executable, "-m", "doctor", "check", "--image", image, "--python", str(numpy1_python), "--json"]
    done = subprocess.run(
        args, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )
    doc = json.loads(done.stdout)
    results = {r["id"]: r for r in doc["results"]}
    skew = results["packages.skew"]
    assert skew["status"] == "fail" and skew["code"] == "packages.skew.breaks", skew
    assert skew["data"]["source"] == f"docker image {image} ({image_id[:19]})"
    assert skew["summary"].startswith("numpy 1.26.4 here, 2.2.6 on the cluster: ")
    assert done.returncode == 1
    cached = json.loads((tmp_path / "cache" / "raydoctor" / "docker-images.json").read_text())
    assert cached[image_id]["packages"]["numpy"] == "2.2.6" and cached[image_id]["packages"]["ray"] == RAY_VERSION

    # raydoctor lock, with no cluster running, writes the image's versions (from the cache: no second run).
    out = tmp_path / "cluster-constraints.txt"
    lock = subprocess.run(
        [sys.executable, "-m", "doctor", "lock", "--image", image, "-o", str(out)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lock.returncode == 0, lock.stdout + lock.stderr
    pins = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert f"ray=={RAY_VERSION}" in pins and "numpy==2.2.6" in pins, pins
    assert f"docker image {image}" in out.read_text().splitlines()[0]


@pytest.mark.cluster
def test_fix_match_head_asks_the_running_head_and_builds_for_its_numpy(numpy2_python, numpy1_python, fix_env, tmp_path):
    """Issue 18: `fix --match-head` with only --address used to answer "already has Ray 2.49.2 and Python
    3.12.1 ... the requirements are met" for a numpy-2 interpreter and a numpy-1 head. It asks the head
    (the --deep probe job), says so, and plans the build that pins numpy to the head's."""
    with head_of(numpy1_python) as head:
        done = raydoctor_cli(
            ["fix", *head.target_args, "--python", str(numpy2_python), "--match-head", "--dry-run", "--json"]
            + ["--no-roundtrip"],
            tmp_path,
            fix_env,
        )
    assert done.stdout.startswith("{"), (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    plan = json.loads(done.stdout)["plan"]
    assert plan["head_packages_from"] == "the --deep probe", plan
    assert plan["action"] == "build", (plan["action"], plan["reason"])
    assert "--match-head: numpy 2.2.6 here, 1.26.4 on the cluster" in plan["judged"]["reasons"], plan["judged"]
    assert "numpy==1.26.4" in plan["install"]["constraints"], plan["install"]


def test_judge_local_with_match_head_pins_wants_the_heads_versions():
    from doctor.fix.plan import Checked, HeadTarget, judge_local
    from doctor.head.facts import HeadFacts
    from doctor.local.interpreter import LocalFacts
    from doctor.versions import VersionSpec

    local = LocalFacts("/v/bin/python", "3.12.1", "CPython", "x86_64", "Linux", "/v", "/b", "--python")
    local.distributions.update({"ray": "2.49.2", "numpy": "2.2.6", "attrs": "26.1.0"})
    head = HeadTarget("2.49.2", VersionSpec.read("3.12.1"), "exact", "t", "t")
    checked = Checked(HeadFacts(), local, head_packages={"numpy": "1.26.4"}, head_packages_from="the --deep probe")
    assert judge_local(checked, head, "client").matches  # without --match-head, numpy is packages.skew's business
    judged = judge_local(
        checked, head, "client", [Pin("numpy", "1.26.4"), Pin("attrs", "26.1.0"), Pin("pandas", "2.2.3")]
    )
    assert not judged.matches and judged.reasons == ["--match-head: numpy 2.2.6 here, 1.26.4 on the cluster"]
