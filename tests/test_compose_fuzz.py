"""Property tests: whatever the input, the compose loader raises only DoctorError.

A crash (KeyError, TypeError, a yaml error...) would reach the user as a
traceback instead of a one-line message, so arbitrary text and arbitrary
YAML-ish trees must either load or fail as UsageError/DoctorError. What
loads must also lint without a rule erroring.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doctor.checks.lint import lint_compose
from doctor.errors import DoctorError
from doctor.head.compose import (
    ComposeProject,
    interpolate,
    load_compose,
    parse_size,
)
from doctor.model import Status
from doctor.parsers.shell import split_shell

# RAYDOCTOR_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("RAYDOCTOR_FUZZ_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
variables = st.dictionaries(names, st.text(max_size=12), max_size=4)

# Text dense in the characters interpolation and shells care about.
tricky_text = st.text(alphabet=st.sampled_from(list("${}:-?+AB_1 \"'\\#;&|\n=x")), max_size=40)
any_text = st.one_of(st.text(max_size=60), tricky_text)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)

command_words = st.sampled_from(
    [
        "ray",
        "start",
        "--head",
        "--block",
        "--port=6379",
        "--port",
        "6379",
        "--address=ray-head:6379",
        "--address",
        "ray-head",
        "--dashboard-host=0.0.0.0",
        "--num-gpus=1",
        "-num-cpus=1",
        "--num-cpu=2",
        "--redis-password=x",
        "--redis-password=Pw-1234",
        "--resources={bad}",
        "--include-dashboard=false",
        "--num-gpus=two",
        "bash",
        "-c",
        "sh",
        "-lc",
        "&&",
        ";",
        "sleep",
        "infinity",
        "'",
        '"',
        "\\",
        "${X:-y}",
        "$$A",
        "${NOPE:?no}",
        "#",
        "|",
    ]
)
commands = st.one_of(
    st.lists(command_words, max_size=12).map(" ".join),
    st.lists(
        st.one_of(command_words, st.lists(command_words, max_size=6).map(" ".join)),
        max_size=6,
    ),
    trees,
)
port_specs = st.one_of(
    st.text(alphabet=st.sampled_from(list("0123456789:.-/[]udptc")), max_size=20),
    st.integers(min_value=-5, max_value=70000),
    st.fixed_dictionaries(
        {},
        optional={
            "target": st.one_of(st.integers(-5, 70000), st.text(max_size=6), trees),
            "published": st.one_of(st.integers(-5, 70000), st.text(max_size=12), trees),
            "host_ip": st.one_of(st.just("127.0.0.1"), st.just("0.0.0.0"), trees),
            "protocol": st.one_of(st.just("udp"), trees),
        },
    ),
    trees,
)
devices = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "driver": st.one_of(st.just("nvidia"), trees),
                "count": st.one_of(st.integers(-1, 4), st.just("all"), trees),
                "capabilities": st.one_of(st.just(["gpu"]), trees),
                "device_ids": trees,
            },
        ),
        trees,
    ),
    max_size=2,
)
size_values = st.one_of(st.sampled_from(["2gb", "64m", "1.5g", "lots", "0", "-1g"]), trees)
service = st.fixed_dictionaries(
    {},
    optional={
        "image": st.one_of(
            st.sampled_from(
                [
                    "rayproject/ray:2.49.2-py312-cpu",
                    "rayproject/ray:2.49.2-py312-cu128",
                    "x:latest-gpu",
                ]
            ),
            trees,
        ),
        "command": commands,
        "entrypoint": commands,
        "ports": st.one_of(st.lists(port_specs, max_size=4), trees),
        "networks": st.one_of(
            st.lists(st.sampled_from(["study_network", "default", "other"]), max_size=2),
            st.dictionaries(
                st.sampled_from(["study_network", "other"]),
                st.one_of(
                    st.none(),
                    st.fixed_dictionaries({"ipv4_address": st.one_of(st.just("172.29.0.15"), trees)}),
                    trees,
                ),
                max_size=2,
            ),
            trees,
        ),
        "network_mode": st.one_of(st.sampled_from(["host", "none", "bridge"]), trees),
        "shm_size": size_values,
        "hostname": trees,
        "ipc": trees,
        "volumes": trees,
        "gpus": trees,
        "deploy": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "resources": st.one_of(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "limits": st.one_of(
                                    st.dictionaries(
                                        st.sampled_from(["cpus", "memory", "pids", "cpu"]),
                                        size_values,
                                        max_size=3,
                                    ),
                                    trees,
                                ),
                                "reservations": st.one_of(st.fixed_dictionaries({"devices": devices}), trees),
                            },
                        ),
                        trees,
                    )
                },
            ),
            trees,
        ),
    },
)
networks = st.one_of(
    st.dictionaries(
        st.sampled_from(["study_network", "other"]),
        st.one_of(
            st.fixed_dictionaries(
                {
                    "ipam": st.fixed_dictionaries(
                        {
                            "config": st.lists(
                                st.fixed_dictionaries(
                                    {
                                        "subnet": st.one_of(
                                            st.sampled_from(
                                                [
                                                    "172.29.0.0/16",
                                                    "172.63.0.0/16",
                                                    "10.0.0.0/8",
                                                    "bad",
                                                    "::/0",
                                                ]
                                            ),
                                            trees,
                                        )
                                    }
                                ),
                                max_size=2,
                            )
                        }
                    )
                }
            ),
            trees,
        ),
        max_size=2,
    ),
    trees,
)
compose_trees = st.one_of(
    trees,
    st.fixed_dictionaries(
        {
            "services": st.one_of(
                st.dictionaries(
                    st.sampled_from(["ray-head", "ray-worker", "w2", "other"]),
                    st.one_of(service, trees),
                    max_size=4,
                ),
                trees,
            )
        },
        optional={"networks": networks},
    ),
)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _check_loaded(project: ComposeProject) -> None:
    results = lint_compose(project, routes=list, cpu_count=4)
    assert len(results) == 11
    errors = [r.to_dict() for r in results if r.status == Status.ERROR]
    assert not errors
    # The password appears in the file only as a flag's value: no finding may repeat it.
    assert "Pw-1234" not in json.dumps([r.to_dict() for r in results], default=str)


def _load(path: Path, env: dict[str, str]) -> None:
    try:
        project = load_compose(path, env)
    except DoctorError as exc:
        assert "\n" not in str(exc)
        assert str(path.parent) in str(exc)  # the file, or the .env beside it
        return
    _check_loaded(project)


@SETTINGS
@given(text=any_text, env=variables)
def test_interpolate_raises_only_doctor_errors(text: str, env: dict[str, str]) -> None:
    try:
        out = interpolate(text, env)
    except DoctorError:
        return
    assert isinstance(out, str)


@SETTINGS
@given(value=st.one_of(any_text, st.sampled_from(["2gb", "1.5 g", "10KiB", "007m"]), scalars, trees))
def test_parse_size_raises_only_doctor_errors(value: Any) -> None:
    try:
        size = parse_size(value)
    except DoctorError:
        return
    assert isinstance(size, int) and size >= 0


@SETTINGS
@given(text=any_text)
def test_split_shell_only_value_error(text: str) -> None:
    try:
        words = split_shell(text)
    except ValueError:
        return
    assert all(isinstance(w, str) for w in words)


@settings(
    SETTINGS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=st.one_of(st.binary(max_size=200), st.text(max_size=200), tricky_text),
    env=variables,
)
def test_load_arbitrary_text(workdir: Path, data: bytes | str, env: dict[str, str]) -> None:
    path = workdir / "compose.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", errors="replace"))
    _load(path, env)


@settings(
    SETTINGS,
    max_examples=EXAMPLES * 3 // 2,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(tree=compose_trees, env=variables, dotenv=st.one_of(st.none(), tricky_text))
def test_load_arbitrary_trees(workdir: Path, tree: Any, env: dict[str, str], dotenv: str | None) -> None:
    path = workdir / "compose.yaml"
    try:
        path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not representable as a file: nothing to load
    dotenv_path = workdir / ".env"
    if dotenv is None:
        dotenv_path.unlink(missing_ok=True)
    else:
        dotenv_path.write_bytes(dotenv.encode("utf-8", errors="replace"))
    _load(path, env)


def test_a_generated_cluster_can_load(workdir: Path) -> None:
    # Guard that the tree strategy reaches the interesting code, not only errors.
    path = workdir / "ok.yaml"
    path.write_text(
        yaml.safe_dump({"services": {"ray-head": {"command": "ray start --head --block", "ports": [8265]}}}),
        encoding="utf-8",
    )
    (workdir / ".env").unlink(missing_ok=True)
    _check_loaded(load_compose(path, {}))
