"""The one `ray start` parser: both option forms, every place a `ray start` hides, secrets masked."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from doctor.parsers.ray_start import (
    MASK,
    OPTIONS,
    REMOVED,
    TABLE_NEWEST,
    TABLE_OLDEST,
    VALUELESS,
    beyond_table,
    find_ray_starts,
    first_ray_start,
    from_params,
    is_secret_name,
    labels_pairs,
    option_at,
    options_at,
    parse_ray_start,
)


@pytest.mark.parametrize(
    "args",
    [
        ["--address=ray-head:6379", "--num-cpus=2", "--block"],
        ["--address", "ray-head:6379", "--num-cpus", "2", "--block"],
        ["--address", "ray-head:6379", "--num-cpus=2", "--block"],
    ],
    ids=["equals", "space", "mixed"],
)
def test_one_parser_reads_both_forms(args: list[str]) -> None:
    line = parse_ray_start(args)
    assert line.names() == ["--address", "--num-cpus", "--block"]
    assert line.value("--address") == "ray-head:6379"
    assert line.value("--num-cpus") == "2"
    assert line.value("--block") == ""
    assert line.value("--head") is None
    assert line.positionals == []


def test_valueless_flags_never_take_the_next_word() -> None:
    line = parse_ray_start(["--head", "--block", "--port", "6379", "-vv", "extra"])
    assert line.value("--port") == "6379" and line.value("--head") == ""
    assert line.positionals == ["extra"]
    assert VALUELESS == {name for name, spec in OPTIONS.items() if spec.kind in ("flag", "count")}


def test_click_keeps_the_last_value() -> None:
    assert parse_ray_start(["--port=1", "--port", "2"]).value("--port") == "2"


@pytest.mark.parametrize(
    "command, found",
    [
        ("ray start --head --port=6379 --block", [["--head", "--port=6379", "--block"]]),
        ("ulimit -n 65536; ray start --head --port 6379", [["--head", "--port", "6379"]]),
        ('bash -c "ray stop && ray start --address=$RAY_HEAD_IP:6379"', [["--address=$RAY_HEAD_IP:6379"]]),
        ("/usr/bin/ray start --head && sleep infinity", [["--head"]]),
        ("ray start --head; ray start --address=x:1", [["--head"], ["--address=x:1"]]),
        ("ray status", []),
        ("echo 'unclosed", []),
    ],
)
def test_find_ray_starts_in_shell_text(command: str, found: list[list[str]]) -> None:
    assert [call.args for call in find_ray_starts(command)] == found


def test_commands_after_ray_start() -> None:
    call = first_ray_start("ray start --head --port=6379 && python train.py; sleep infinity")
    assert call is not None
    assert call.after == ["python train.py", "sleep infinity"]


def test_argv_lists_are_read_as_given() -> None:
    call = first_ray_start(["bash", "-c", "ray", "start", "--head", "&&", "sleep", "infinity"])
    assert call is not None and call.args == ["--head"] and call.after == ["sleep infinity"]


def test_kuberay_params_become_flags_as_the_operator_writes_them() -> None:
    # ray-operator/controllers/ray/common/pod.go::convertParamMap
    line = from_params(
        {"dashboard-host": "0.0.0.0", "block": "true", "disable-usage-stats": "false", "include-dashboard": "false"}
    )
    assert line.words() == ["--dashboard-host=0.0.0.0", "--block", "--include-dashboard=false"]
    assert from_params({"num-gpus": 1}).value("--num-gpus") == "1"


@pytest.mark.parametrize(
    "args, shown",
    [
        (["--head", "--redis-password=hunter22hunter"], "ray start --head --redis-password=***"),
        (["--head", "--redis-password", "hunter22hunter"], "ray start --head --redis-password ***"),
        (["--my-token", "hunter22hunter", "--port=1"], "ray start --my-token *** --port=1"),
        (["--api-key=hunter22hunter"], "ray start --api-key=***"),
    ],
)
def test_display_masks_secret_values_in_both_forms(args: list[str], shown: str) -> None:
    line = parse_ray_start(args)
    assert line.display() == shown
    assert line.secret_values() == {"hunter22hunter"}
    assert all(MASK not in word for word in line.words())  # unmasked on request, for Ray itself


def test_secret_names() -> None:
    for name in ("--redis-password", "--auth-token", "--client-secret", "--api-key", "DB_PASSWD", "AWS_SECRET_KEY"):
        assert is_secret_name(name), name
    for name in ("--address", "--port", "--num-gpus", "RAY_ADDRESS"):
        assert not is_secret_name(name), name


secret_words = st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=6, max_size=12)
other_words = st.sampled_from(["--head", "--block", "--port", "6379", "--port=1", "-v", "x", "&&", "--num-gpus"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(other_words, st.tuples(st.sampled_from(["eq", "space"]), secret_words)), max_size=10))
def test_display_never_shows_a_secret_flag_value(parts: list) -> None:
    words: list[str] = []
    secrets: set[str] = set()
    for part in parts:
        if isinstance(part, tuple):
            form, value = part
            value = "S" + value  # never an option word itself
            secrets.add(value)
            words += [f"--redis-password={value}"] if form == "eq" else ["--redis-password", value]
        else:
            words.append(part)
    line = parse_ray_start(words)
    shown = line.display()
    for value in secrets:
        assert value not in shown
    assert line.secret_values() <= secrets


def test_a_value_that_looks_like_an_option_is_still_the_value() -> None:
    # As click reads it: `--redis-password -x9` gives the password "-x9" (never an unknown flag
    # "-x9" named in a message), and `--num-cpus --block` gives --num-cpus the value "--block".
    line = parse_ray_start(["--redis-password", "-x9secret", "--block"])
    assert line.value("--redis-password") == "-x9secret" and line.has("--block")
    assert "-x9secret" not in line.display()
    assert parse_ray_start(["--num-cpus", "--block"]).value("--num-cpus") == "--block"
    assert parse_ray_start(["--frobnicate", "--block"]).value("--frobnicate") == ""


# -- the table by release: each change sits between two adjacent releases whose scripts.py was read -------


@pytest.mark.parametrize(
    "option, last_without, first_with",
    [
        ("--include-log-monitor", "2.40.0", "2.41.0"),
        ("--redis-username", "2.40.0", "2.41.0"),
        ("--labels-file", "2.44.1", "2.45.0"),
        ("--object-spilling-directory", "2.44.1", "2.45.0"),
        ("--enable-resource-isolation", "2.44.1", "2.45.0"),
        ("--system-reserved-cpu", "2.44.1", "2.45.0"),
        ("--proxy-server-url", "2.54.0", "2.55.0"),
    ],
)
def test_an_option_is_taken_from_the_release_it_came_in(option: str, last_without: str, first_with: str) -> None:
    assert option_at(option, Version(last_without)) is None
    assert option_at(option, Version(first_with)) is OPTIONS[option]
    assert option_at(option, Version(TABLE_NEWEST)) is OPTIONS[option]
    assert option_at(option, Version(first_with + "rc1")) is OPTIONS[option]  # a candidate of that release
    assert option_at(option, None) is OPTIONS[option]  # no release known: some release takes it


@pytest.mark.parametrize(
    "option, last_with, first_without",
    [
        ("--redis-max-memory", "2.43.0", "2.44.0"),
        ("--gcs-server-port", "2.47.1", "2.48.0"),
        ("--storage", "2.47.1", "2.48.0"),
        ("--dashboard-grpc-port", "2.47.1", "2.48.0"),
        ("--plasma-store-socket-name", "2.47.1", "2.48.0"),
        ("--raylet-socket-name", "2.47.1", "2.48.0"),
    ],
)
def test_an_option_is_refused_from_the_release_that_dropped_it(option: str, last_with: str, first_without: str) -> None:
    assert option_at(option, Version("2.9.3")) is OPTIONS[option]
    assert option_at(option, Version(last_with)) is OPTIONS[option]
    assert option_at(option, Version(first_without)) is None and REMOVED[option].since == first_without[:4]
    assert option_at(option, Version("2.61.0")) is None
    assert option_at(option, None) is OPTIONS[option]  # never refused when the release is unknown


def test_removed_and_options_agree() -> None:
    # An option dropped inside the table keeps its spec (releases before take it); one dropped before
    # the table has none. Every release named is inside the table.
    for name, gone in REMOVED.items():
        assert (name in OPTIONS) == (gone.since is not None), name
        if gone.since:
            assert Version(TABLE_OLDEST) < Version(gone.since) <= Version(TABLE_NEWEST)
            assert OPTIONS[name].since is None or Version(OPTIONS[name].since) < Version(gone.since)
        assert gone.instead is None or gone.instead in OPTIONS
    for name, spec in OPTIONS.items():
        assert spec.since is None or Version(TABLE_OLDEST) < Version(spec.since) <= Version(TABLE_NEWEST), name
    assert set(options_at(None)) == set(OPTIONS)
    assert "--proxy-server-url" in options_at(Version("2.60.0")) and "--storage" not in options_at(Version("2.60.0"))
    assert "--proxy-server-url" not in options_at(Version("2.9.3")) and "--storage" in options_at(Version("2.9.3"))


@pytest.mark.parametrize(
    "ray, edge",
    [("2.61.0", "2.60"), ("3.0.0", "2.60"), ("2.60.3", None), ("2.9.0", None), ("2.8.1", "2.9"), (None, None)],
)
def test_beyond_the_table(ray: str | None, edge: str | None) -> None:
    assert beyond_table(Version(ray) if ray else None) == edge


def test_labels_take_key_value_pairs_from_2_45() -> None:
    assert not labels_pairs(Version("2.44.1")) and labels_pairs(Version("2.45.0")) and labels_pairs(None)
