"""The compose loader: interpolation, commands, ports, and every bad input as UsageError."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from doctor.errors import UsageError
from doctor.head.compose import (
    ComposeService,
    PublishedPort,
    interpolate,
    load_compose,
    parse_size,
)
from doctor.parsers.ray_start import parse_ray_start
from doctor.parsers.shell import split_shell
from doctor.parsers.yaml_load import describe

REPO = Path(__file__).resolve().parent.parent

HEAD_CMD = "ray start --head --port=6379 --dashboard-host=0.0.0.0 --block"


def write(tmp_path: Path, text: str, name: str = "docker-compose.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal(extra_head: str = "", extra: str = "") -> str:
    return (
        "services:\n"
        "  ray-head:\n"
        "    image: rayproject/ray:2.49.2-py312-cpu\n"
        f"    command: {HEAD_CMD}\n" + extra_head + extra
    )


# --------------------------------------------------------------------------
# interpolation


@pytest.mark.parametrize(
    "template, expected",
    [
        ("${SET}", "value"),
        ("$SET", "value"),
        ("$SET-x", "value-x"),
        ("${UNSET}", ""),
        ("$UNSET", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${SET:-fallback}", "value"),
        ("${UNSET-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET?boom}", "value"),
        ("${EMPTY?boom}", ""),
        ("${SET:?boom}", "value"),
        ("$$", "$"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost: 5$", "cost: 5$"),
        ("$1 and $ alone", "$1 and $ alone"),
        ("${UNSET:-${SET}-x}", "value-x"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("a${SET}b${SET}c", "avaluebvaluec"),
        ("no variables", "no variables"),
    ],
)
def test_interpolate_forms(template: str, expected: str) -> None:
    variables = {"SET": "value", "EMPTY": ""}
    assert interpolate(template, variables) == expected


@pytest.mark.parametrize(
    "template, fragment",
    [
        ("${UNSET:?set UNSET first}", "set UNSET first"),
        ("${EMPTY:?must not be empty}", "must not be empty"),
        ("${UNSET?needed}", "needed"),
        ("${UNSET:?}", "UNSET"),
    ],
)
def test_interpolate_required_raises(template: str, fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        interpolate(template, {"EMPTY": ""})
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("template", ["${", "${SET", "${}", "${1A}", "${SET:x}", "${SET%%.*}", "${ SET }"])
def test_interpolate_invalid_raises(template: str) -> None:
    with pytest.raises(UsageError):
        interpolate(template, {"SET": "v"})


def test_dotenv_and_environ(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        textwrap.dedent(
            """\
            # a comment
            TAG=2.49.2-py312-cpu
            export DASH=8265
            QUOTED="two words"  # trailing comment
            SINGLE='$NOT_EXPANDED'
            INLINE=plain # comment
            DERIVED=${TAG}-x
            OVERRIDDEN=from-dotenv
            BARE
            """
        ),
        encoding="utf-8",
    )
    path = write(
        tmp_path,
        f"""\
        services:
          ray-head:
            image: rayproject/ray:${{TAG}}
            command: {HEAD_CMD} --dashboard-port=${{DASH}}
            labels:
              quoted: ${{QUOTED}}
              single: ${{SINGLE}}
              inline: ${{INLINE}}
              derived: ${{DERIVED}}
              over: ${{OVERRIDDEN}}
        """,
    )
    project = load_compose(path, {"OVERRIDDEN": "from-env"})
    head = project.head
    assert head.image == "rayproject/ray:2.49.2-py312-cpu"
    assert project.flag(head, "--dashboard-port") == "8265"
    labels = head.raw["labels"]
    assert labels == {
        "quoted": "two words",
        "single": "$NOT_EXPANDED",
        "inline": "plain",
        "derived": "2.49.2-py312-cpu-x",
        "over": "from-env",
    }


def test_environ_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYDOCTOR_TEST_TAG", "from-os")
    path = write(tmp_path, minimal().replace("2.49.2-py312-cpu", "${RAYDOCTOR_TEST_TAG}"))
    assert load_compose(path).head.image == "rayproject/ray:from-os"


def test_interpolation_respects_yaml_quoting(tmp_path: Path) -> None:
    # A value holding YAML syntax stays one string: interpolation happens after parsing.
    path = write(
        tmp_path,
        minimal("    environment:\n      A: ${TRICKY}\n      B: '$$HOME'\n      C: \"${UNSET:-a # not a comment}\"\n"),
    )
    env = load_compose(path, {"TRICKY": "x: y # z, [1]"}).head.raw["environment"]
    assert env == {"A": "x: y # z, [1]", "B": "$HOME", "C": "a # not a comment"}


def test_required_variable_names_file_and_service(tmp_path: Path) -> None:
    path = write(tmp_path, minimal("    shm_size: ${SHM:?set SHM in .env}\n"))
    with pytest.raises(UsageError) as err:
        load_compose(path, {})
    msg = str(err.value)
    assert str(path) in msg and "ray-head" in msg and "set SHM in .env" in msg
    assert "\n" not in msg


def test_bad_dotenv_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("this is not an assignment\n", encoding="utf-8")
    path = write(tmp_path, minimal())
    with pytest.raises(UsageError) as err:
        load_compose(path, {})
    assert ".env:1" in str(err.value)


# --------------------------------------------------------------------------
# commands


@pytest.mark.parametrize(
    "command_yaml",
    [
        f"command: {HEAD_CMD}",
        f'command: "{HEAD_CMD}"',
        f'command: bash -c "{HEAD_CMD}"',
        f'command: ["bash", "-c", "{HEAD_CMD}"]',
        f'command: ["/bin/sh", "-lc", "{HEAD_CMD}"]',
        f"command: {HEAD_CMD.split()}",
        f'command: >\n      bash -c "{HEAD_CMD}"',
        f"command:\n      - /bin/bash\n      - -o\n      - pipefail\n      - -c\n      - |\n        echo starting\n        {HEAD_CMD}\n",
        f"command: bash -c \"exec bash -c '{HEAD_CMD}'\"",
        f'entrypoint: ["/bin/bash", "-c"]\n    command: ["{HEAD_CMD}"]',
        f'command: bash -c "{HEAD_CMD} && echo done"',
        f'command: ["bash", "-c", "ulimit -n 65536; {HEAD_CMD} # keep going"]',
    ],
)
def test_command_forms_find_ray_start(tmp_path: Path, command_yaml: str) -> None:
    path = write(tmp_path, f"services:\n  ray-head:\n    image: x\n    {command_yaml}\n")
    head = load_compose(path, {}).head
    assert head.is_head
    assert head.ray_start_args == [
        "--head",
        "--port=6379",
        "--dashboard-host=0.0.0.0",
        "--block",
    ]


def test_bash_c_keeps_wrapper_and_inner_words(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        minimal().replace(f"command: {HEAD_CMD}", f'command: bash -c "{HEAD_CMD}"'),
    )
    head = load_compose(path, {}).head
    assert head.command[:4] == ["bash", "-c", "ray", "start"]
    assert head.command[-1] == "--block"


def test_command_none_and_non_ray(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        minimal(
            extra="  redis:\n    image: redis\n  prom:\n    image: prom\n    command: [--config.file=/x]\n",
        ),
    )
    project = load_compose(path, {})
    assert project.services["redis"].command == []
    assert project.services["redis"].ray_start_args is None
    assert project.services["prom"].ray_start_args is None
    assert not project.services["prom"].is_head
    assert project.workers == []


def test_workers_and_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        minimal(
            extra=(
                "  w1:\n    image: x\n    command: ray start --address ray-head:6379 --num-cpus 2 --block\n"
                "  w2:\n    image: x\n    command: [ray, start, --address=ray-head:6379]\n"
            )
        ),
    )
    project = load_compose(path, {})
    assert [w.name for w in project.workers] == ["w1", "w2"]
    w1 = project.services["w1"]
    assert project.flag(w1, "--address") == "ray-head:6379"
    assert project.flag(w1, "--num-cpus") == "2"
    assert project.flag(w1, "--block") == ""
    assert project.flag(w1, "--head") is None
    assert project.flag(project.services["w2"], "--address") == "ray-head:6379"
    assert project.gcs_port() == 6379


def test_flag_on_service_without_ray() -> None:
    svc = ComposeService("x", None, ["echo"], [], {}, None, None, False, {}, {})
    assert svc.ray_start_args is None and not svc.is_head


def test_parse_ray_start_valueless_flags_do_not_eat_words() -> None:
    line = parse_ray_start(["--head", "--block", "--port", "6379", "-v", "extra"])
    assert line.value("--port") == "6379"
    assert line.value("--head") == ""
    assert line.positionals == ["extra"]


def test_split_shell() -> None:
    assert split_shell('a \'b c\' "d \\" e" f\\ g') == ["a", "b c", 'd " e', "f g"]
    assert split_shell("a&&b;c|d # note\ne") == [
        "a",
        "&&",
        "b",
        ";",
        "c",
        "|",
        "d",
        "\n",
        "e",
    ]
    assert split_shell("x=a#b") == ["x=a#b"]
    assert split_shell("a && b", operators=False) == ["a", "&&", "b"]
    with pytest.raises(ValueError):
        split_shell("'open")


# --------------------------------------------------------------------------
# ports


@pytest.mark.parametrize(
    "entry, expected",
    [
        ('"8265:8265"', [PublishedPort(None, 8265, 8265)]),
        ('"127.0.0.1:8265:8265"', [PublishedPort("127.0.0.1", 8265, 8265)]),
        ('"127.0.0.1::8265"', [PublishedPort("127.0.0.1", None, 8265)]),
        ('"18265:8265"', [PublishedPort(None, 18265, 8265)]),
        ('"8265"', [PublishedPort(None, None, 8265)]),
        ("8265", [PublishedPort(None, None, 8265)]),
        ('"8265/tcp"', [PublishedPort(None, None, 8265)]),
        ('"127.0.0.1:5353:53/udp"', [PublishedPort("127.0.0.1", 5353, 53, "udp")]),
        ("22:22", [PublishedPort(None, 22, 22)]),  # YAML 1.1 would read base-60 1342
        ('"[::1]:8265:8265"', [PublishedPort("::1", 8265, 8265)]),
        ('"::1:8265:8265"', [PublishedPort("::1", 8265, 8265)]),
        (
            '"10002-10004:10002-10004"',
            [
                PublishedPort(None, 10002, 10002),
                PublishedPort(None, 10003, 10003),
                PublishedPort(None, 10004, 10004),
            ],
        ),
        (
            '"127.0.0.1:9000-9001:8000-8001"',
            [
                PublishedPort("127.0.0.1", 9000, 8000),
                PublishedPort("127.0.0.1", 9001, 8001),
            ],
        ),
        ('"8000-8010:80"', [PublishedPort(None, None, 80)]),
        (
            '"10002-10003"',
            [PublishedPort(None, None, 10002), PublishedPort(None, None, 10003)],
        ),
        (
            "{target: 8265, published: 8265, host_ip: 127.0.0.1, protocol: tcp}",
            [PublishedPort("127.0.0.1", 8265, 8265)],
        ),
        ('{target: 8265, published: "18265"}', [PublishedPort(None, 18265, 8265)]),
        ("{target: 53, protocol: UDP}", [PublishedPort(None, None, 53, "udp")]),
        ('{target: 80, published: "8000-8010"}', [PublishedPort(None, None, 80)]),
    ],
)
def test_port_forms(tmp_path: Path, entry: str, expected: list[PublishedPort]) -> None:
    path = write(tmp_path, minimal(f"    ports:\n      - {entry}\n"))
    assert load_compose(path, {}).head.ports == expected


def test_published_picks_head_tcp(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        minimal('    ports:\n      - "127.0.0.1:8265:8265/udp"\n      - "127.0.0.1:18265:8265"\n'),
    )
    project = load_compose(path, {})
    assert project.published(8265) == PublishedPort("127.0.0.1", 18265, 8265)
    assert project.published(10001) is None


def test_published_host_network_is_none(tmp_path: Path) -> None:
    path = write(tmp_path, minimal('    network_mode: host\n    ports: ["8265:8265"]\n'))
    project = load_compose(path, {})
    assert project.head.network_mode == "host"
    assert project.published(8265) is None


@pytest.mark.parametrize(
    "entry",
    [
        '"abc"',
        '"70000:70000"',
        '"0:8265"',
        '"8265:"',
        '":8265"',
        '"1-3:1-2"',
        '"5-1:5-1"',
        '"8265/icmp"',
        '"[::1:8265:8265"',
        '"localhost:8265:8265"',
        '{target: 8265, host_ip: "nope"}',
        "{published: 8265}",
        "{target: [1]}",
        "{target: 8265, published: {a: 1}}",
        "{target: 8265, host_ip: [1]}",
        "true",
        "null",
        "[8265]",
    ],
)
def test_bad_ports(tmp_path: Path, entry: str) -> None:
    path = write(tmp_path, minimal(f"    ports:\n      - {entry}\n"))
    with pytest.raises(UsageError) as err:
        load_compose(path, {})
    assert str(path) in str(err.value) and "ray-head" in str(err.value)


# --------------------------------------------------------------------------
# services parsed


def test_service_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        networks:
          study_network:
            driver: bridge
            ipam:
              config:
                - subnet: 172.29.0.0/16
        services:
          ray-head:
            image: rayproject/ray:2.49.2.7b0af3-py312-cu128
            command: ray start --head --block
            shm_size: 2gb
            networks:
              study_network:
                ipv4_address: 172.29.0.15
            deploy:
              resources:
                limits: {cpus: 3, memory: 4g}
                reservations:
                  devices:
                    - driver: nvidia
                      count: 1
                      capabilities: [gpu]
          ray-worker:
            image: rayproject/ray:2.49.2.7b0af3-py312-cu128
            command: ray start --address=ray-head:6379 --block
            gpus: all
            networks: [study_network]
          legacy:
            image: x
            runtime: nvidia
            network_mode: host
        """,
    )
    project = load_compose(path, {})
    head = project.head
    assert head.shm_size == "2gb"
    assert head.networks == {"study_network": {"ipv4_address": "172.29.0.15"}}
    assert head.limits == {"cpus": "3", "memory": "4g"}
    assert head.gpu_reservation
    assert project.services["ray-worker"].gpu_reservation
    assert project.services["ray-worker"].networks == {"study_network": {}}
    assert project.services["legacy"].gpu_reservation
    assert project.services["legacy"].network_mode == "host"
    assert project.networks["study_network"]["ipam"]["config"][0]["subnet"] == "172.29.0.0/16"


def test_shipped_files_load() -> None:
    for name in ("cpu-ray-cluster.yaml", "gpu-ray-cluster.yaml"):
        project = load_compose(REPO / "compose" / name, {})
        assert project.head.name == "ray-head"
        assert [w.name for w in project.workers] == ["ray-worker"]
        assert project.published(8265) == PublishedPort("127.0.0.1", 8265, 8265)
        assert project.published(10001) == PublishedPort("127.0.0.1", 10001, 10001)
        assert project.flag(project.head, "--dashboard-host") == "0.0.0.0"
        assert project.head.networks["study_network"]["ipv4_address"] == "172.29.0.15"
    gpu = load_compose(REPO / "compose" / "gpu-ray-cluster.yaml", {})
    assert gpu.head.gpu_reservation and gpu.workers[0].gpu_reservation


def _alias_bomb(levels: int = 9) -> str:
    lines = ["x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        prev = f"*a{i - 1}"
        lines.append(f"x-a{i}: &a{i} [{', '.join([prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast_in_one_line(tmp_path: Path) -> None:
    # 9 levels of 9 aliases: ~500 bytes that stand for 9**9 strings. Loading used to
    # succeed and any str() of it in a message ran past 15 s; now the loader counts
    # what the aliases expand to and refuses the file, naming it.
    text = _alias_bomb() + minimal().replace("    image:", "    ports: *a8\n    image:")
    assert len(text) < 800
    path = write(tmp_path, text)
    start = time.perf_counter()
    with pytest.raises(UsageError) as info:
        load_compose(path, {})
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert str(path) in message and "alias" in message and "\n" not in message


def test_a_few_aliases_still_load(tmp_path: Path) -> None:
    text = (
        "x-common: &common\n  image: rayproject/ray:2.49.2-py312-cpu\n  shm_size: 2gb\n"
        "services:\n"
        f"  ray-head:\n    <<: *common\n    command: {HEAD_CMD}\n"
        "  ray-worker:\n    <<: *common\n    command: ray start --address=ray-head:6379 --block\n"
    )
    project = load_compose(write(tmp_path, text), {})
    assert project.head.image == project.workers[0].image == "rayproject/ray:2.49.2-py312-cpu"


def test_bad_aliased_value_is_described_not_printed(tmp_path: Path) -> None:
    # Under the alias bound but big: the message names the kind and a capped preview.
    text = _alias_bomb(4) + minimal().replace("    image:", "    ports: [*a3]\n    image:")
    path = write(tmp_path, text)
    start = time.perf_counter()
    with pytest.raises(UsageError) as info:
        load_compose(path, {})
    assert time.perf_counter() - start < 2.0
    message = str(info.value)
    assert "ray-head" in message and "a list [" in message and len(message) < 400


def test_describe_is_bounded_on_a_huge_shared_structure() -> None:
    leaf: list = ["lol"] * 9
    for _ in range(9):
        leaf = [leaf] * 9  # 9**10 strings when expanded, a few objects in memory
    start = time.perf_counter()
    text = describe(leaf)
    assert time.perf_counter() - start < 0.5
    assert text.startswith("a list [") and len(text) <= 60


def test_recursive_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "services: &s\n  loop: *s\n")
    with pytest.raises(UsageError):
        load_compose(path, {})


# --------------------------------------------------------------------------
# bad input: each a one-line UsageError naming the file


def _bad(tmp_path: Path, text: str | bytes) -> UsageError:
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(UsageError) as err:
        load_compose(path, {})
    msg = str(err.value)
    assert str(path) in msg
    assert "\n" not in msg
    return err.value


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("services: [\n", "invalid YAML"),
        ("a: b\n  c: d\n", "invalid YAML"),
        ("key: @bad\n", "invalid YAML"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        ("", "empty"),
        ("- a\n- b\n", "list"),
        ("just a string\n", "scalar"),
        ("version: '3'\n", "no services"),
        ("services:\n", "no services"),
        ("services: {}\n", "no services"),
        ("services: [ray-head]\n", "not a mapping"),
        ("services: 3\n", "not a mapping"),
        ("services:\n  ray-head: [image, command]\n", "ray-head"),
        ("services:\n  ray-head: oops\n", "ray-head"),
        ("services:\n  ray-head:\n    image: x\n", "ray start --head"),
        (
            "services:\n  a:\n    command: ray start --head\n  b:\n    command: ray start --head\n",
            "several",
        ),
        ("services:\n  h:\n    command: {a: 1}\n", "command"),
        ("services:\n  h:\n    command: [ray, start, [--head]]\n", "command"),
        ("services:\n  h:\n    command: ray start --head 'unclosed\n", "quote"),
        ("services:\n  h:\n    image: [a]\n    command: ray start --head\n", "image"),
        ("services:\n  h:\n    command: ray start --head\n    ports: 8265\n", "ports"),
        (
            "services:\n  h:\n    command: ray start --head\n    networks: 3\n",
            "networks",
        ),
        (
            "services:\n  h:\n    command: ray start --head\n    networks: [[a]]\n",
            "network",
        ),
        (
            "services:\n  h:\n    command: ray start --head\n    networks: {a: 3}\n",
            "network",
        ),
        ("services:\n  h:\n    command: ray start --head\n    deploy: [a]\n", "deploy"),
        (
            "services:\n  h:\n    command: ray start --head\n    deploy: {resources: {limits: [1]}}\n",
            "limits",
        ),
        (
            "services:\n  h:\n    command: ray start --head\n    deploy: {resources: {limits: {cpus: [1]}}}\n",
            "cpus",
        ),
        (
            "services:\n  h:\n    command: ray start --head\n    deploy: {resources: {reservations: {devices: {a: 1}}}}\n",
            "devices",
        ),
        (
            "services:\n  h:\n    command: ray start --head\n    shm_size: {a: 1}\n",
            "shm_size",
        ),
        (
            "services:\n  h:\n    command: ray start --head\n    network_mode: [host]\n",
            "network_mode",
        ),
        ("networks: [a]\nservices:\n  h:\n    command: ray start --head\n", "networks"),
        (
            "services:\n  h:\n    command: ray start --head ${NOPE:?please set NOPE}\n",
            "please set NOPE",
        ),
        ("services:\n  h:\n    command: ray start --head ${BAD\n", "unclosed"),
        pytest.param("[" * 600 + "]" * 600 + "\n", "", id="deep-nesting"),
    ],
)
def test_bad_input(tmp_path: Path, text: str | bytes, fragment: str) -> None:
    err = _bad(tmp_path, text)
    assert fragment in str(err)


def test_service_errors_name_the_service(tmp_path: Path) -> None:
    err = _bad(
        tmp_path,
        "services:\n  my-head:\n    command: ray start --head\n    ports: ['x:y']\n",
    )
    assert "my-head" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(UsageError) as err:
        load_compose(path, {})
    assert str(path) in str(err.value) and "no such" in str(err.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        load_compose(tmp_path, {})
    assert str(tmp_path) in str(err.value)


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, minimal())

    def deny(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    # every local read goes through doctor.files, which opens with os.open (root may read a 0o000 file)
    monkeypatch.setattr("doctor.files.os.open", deny)
    with pytest.raises(UsageError) as err:
        load_compose(path, {})
    assert str(path) in str(err.value) and "Permission denied" in str(err.value)


# --------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2gb", 2 << 30),
        ("2GB", 2 << 30),
        ("2g", 2 << 30),
        ("64m", 64 << 20),
        ("64mb", 64 << 20),
        ("512MiB", 512 << 20),
        ("4g", 4 << 30),
        ("1024", 1024),
        ("1024b", 1024),
        ("10k", 10240),
        ("1.5g", 3 << 29),
        ("1 t", 1 << 40),
        (1024, 1024),
        (0, 0),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "lots",
        "2 gigs",
        "-1g",
        "g",
        "1.2.3m",
        "2xb",
        True,
        None,
        -5,
        [1],
        float("nan"),
    ],
)
def test_parse_size_garbage(text: object) -> None:
    with pytest.raises(UsageError):
        parse_size(text)  # type: ignore[arg-type]
