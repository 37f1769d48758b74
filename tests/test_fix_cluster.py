"""``raydoctor fix --cluster``: check's compose edits applied to the file, comments and layout kept.

The edits come from check's own findings (their structured ``Change``); each edit kind is applied to a
real file and the result read back with raydoctor's own compose reader. Refusals leave the file's bytes
as they were. The CLI tests run ``raydoctor`` in a subprocess on files in a temporary folder, with the
cluster down (the engine test, in ``test_compose_real.py``, restarts a running one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from doctor.errors import UsageError
from doctor.fix.cluster_file import Refused, plan_file, write_plan
from doctor.head.compose import load_compose
from doctor.model import Change, Edit, Op
from tests.helpers import raydoctor_cli

BASE = """\
# The tutorial's cluster, a copy.
networks:
  study_network:
    driver: bridge

services:
  ray-head:
    image: rayproject/ray:2.49.2-py312-cpu
    # the head: --block keeps it alive
    command: bash -c "ray start --head --port=6379 --dashboard-port=8265 --block"
    shm_size: '2gb'  # Ray's object store
    ports:
      - "127.0.0.1:8265:8265"    # dashboard
      - "127.0.0.1:10001:10001"  # client
    networks:
      - study_network

  ray-worker:
    image: rayproject/ray:2.49.2-py312-cpu
    command: ["bash", "-c", "ray start --address=ray-head:6379"]
    deploy:
      resources:
        limits:
          cpus: '3'    # three of them
          memory: 4g
    networks:
      - study_network
"""


def write(tmp_path: Path, text: str = BASE, name: str = "compose.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edit(path: Path, change: Change) -> Edit:
    return Edit(str(path), "shown only", "shown only", change=change)


def changed_lines(old: str, new: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added), in order: what a diff of the two shows."""
    import difflib

    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0))
    gone = [d[1:] for d in diff if d.startswith("-") and not d.startswith("---")]
    added = [d[1:] for d in diff if d.startswith("+") and not d.startswith("+++")]
    return gone, added


def comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]


# -- each edit kind ------------------------------------------------------------------------


CPUS = ("services", "ray-worker", "deploy", "resources", "limits", "cpus")


def test_set_keeps_the_quotes_and_the_comment_of_the_line(tmp_path: Path) -> None:
    path = write(tmp_path)
    plan = plan_file(path, [edit(path, Change(Op.SET, CPUS, "2"))])
    assert changed_lines(BASE, plan.new_text) == (
        ["          cpus: '3'    # three of them"],
        ["          cpus: '2'    # three of them"],
    )
    assert plan.services() == ["ray-worker"]
    assert load_compose(path, {}).services["ray-worker"].limits["cpus"] == "3"  # planned, not written
    write_plan(plan)
    assert load_compose(path, {}).services["ray-worker"].limits["cpus"] == "2"


def test_a_new_key_lands_before_the_blank_line_that_ends_its_service(tmp_path: Path) -> None:
    path = write(tmp_path)
    key = ("services", "ray-head", "environment")
    plan = plan_file(path, [edit(path, Change(Op.SET, ("services", "ray-worker", "shm_size"), "2gb"))])
    gone, added = changed_lines(BASE, plan.new_text)
    assert gone == [] and added == ["    shm_size: 2gb"]
    assert plan.new_text.endswith("      - study_network\n    shm_size: 2gb\n")
    # In the head (not the last service), the new key goes before the blank line and the next service.
    plan = plan_file(path, [edit(path, Change(Op.SET, key, {"RAY_X": "1"}))])
    assert "      - study_network\n    environment:\n      RAY_X: '1'\n\n  ray-worker:\n" in plan.new_text
    assert comments(plan.new_text) == comments(BASE)


def test_append_takes_the_quotes_of_its_siblings(tmp_path: Path) -> None:
    path = write(tmp_path)
    plan = plan_file(path, [edit(path, Change(Op.APPEND, ("services", "ray-head", "ports"), "127.0.0.1:6379:6379"))])
    assert changed_lines(BASE, plan.new_text) == ([], ['      - "127.0.0.1:6379:6379"'])
    assert comments(plan.new_text) == comments(BASE)


def test_delete_removes_only_that_key(tmp_path: Path) -> None:
    text = BASE.replace(
        "    shm_size: '2gb'  # Ray's object store\n",
        "    shm_size: '2gb'  # Ray's object store\n    network_mode: none\n",
    )
    path = write(tmp_path, text)
    plan = plan_file(path, [edit(path, Change(Op.DELETE, ("services", "ray-head", "network_mode")))])
    assert plan.new_text == BASE


def test_ray_start_in_a_string_command_keeps_the_rest_of_it(tmp_path: Path) -> None:
    path = write(tmp_path)
    change = Change(
        Op.RAY_START,
        ("services", "ray-head", "command"),
        remove=("--dashboard-host",),
        add=("--dashboard-host=0.0.0.0",),
        first=True,
    )
    plan = plan_file(path, [edit(path, change)])
    assert changed_lines(BASE, plan.new_text)[1] == [
        '    command: bash -c "ray start --head --dashboard-host=0.0.0.0 --port=6379 --dashboard-port=8265 --block"'
    ]
    head = load_compose(path, {}).services["ray-head"]
    write_plan(plan)
    assert load_compose(path, {}).services["ray-head"].ray_start_line.value("--dashboard-host") == "0.0.0.0"
    assert head.ray_start_line.value("--dashboard-host") is None


def test_ray_start_in_a_list_command_replaces_the_option(tmp_path: Path) -> None:
    path = write(tmp_path)
    key = ("services", "ray-worker", "command")
    plan = plan_file(
        path,
        [
            edit(path, Change(Op.RAY_START, key, remove=("--address",), add=("--address=ray-head:6380",), first=True)),
            edit(path, Change(Op.RAY_START, key, add=("--block",))),
        ],
    )
    assert changed_lines(BASE, plan.new_text)[1] == [
        '    command: ["bash", "-c", "ray start --address=ray-head:6380 --block"]'
    ]


@pytest.mark.parametrize(
    "shell",
    [
        'bash -o pipefail -c "ray start --address=ray-head:6379"',
        '["bash", "-o", "pipefail", "-c", "ray start --address=ray-head:6379"]',
    ],
)
def test_a_shell_with_options_before_c_is_edited_where_the_reader_finds_its_script(tmp_path: Path, shell: str) -> None:
    """The editor finds a shell's -c script as the reader does (doctor.parsers.shell.shell_script_at)."""
    text = BASE.replace('["bash", "-c", "ray start --address=ray-head:6379"]', shell)
    path = write(tmp_path, text)
    assert load_compose(path, {}).services["ray-worker"].ray_start_line.value("--address") == "ray-head:6379"
    plan = plan_file(path, [edit(path, Change(Op.RAY_START, ("services", "ray-worker", "command"), add=("--block",)))])
    assert changed_lines(text, plan.new_text)[1] == [f"    command: {shell.replace('6379', '6379 --block')}"]


def test_ray_start_as_list_items(tmp_path: Path) -> None:
    text = BASE.replace(
        '["bash", "-c", "ray start --address=ray-head:6379"]', "[ray, start, --address, 'ray-head:6379']"
    )
    path = write(tmp_path, text)
    key = ("services", "ray-worker", "command")
    plan = plan_file(path, [edit(path, Change(Op.RAY_START, key, add=("--block",)))])
    assert changed_lines(text, plan.new_text)[1] == ["    command: [ray, start, --address, 'ray-head:6379', --block]"]


def test_check_edits_applied_make_the_findings_pass_and_a_second_run_has_nothing_to_do(tmp_path: Path) -> None:
    """The edits come from the lint's own findings; applying them satisfies the rules (idempotence)."""
    from doctor.checks.lint import lint_spec
    from doctor.head.cluster_files import spec_from_compose

    text = BASE.replace(" --block", "").replace("    shm_size: '2gb'  # Ray's object store\n", "")
    text = text.replace('      - "127.0.0.1:10001:10001"  # client\n', "")
    path = write(tmp_path, text)

    def findings() -> dict[str, object]:
        spec = spec_from_compose(load_compose(path, {}))
        return {r.id: r for r in lint_spec(spec, routes=lambda: [], cpu_count=2)}

    first = findings()
    edits = [e for r in first.values() for e in (r.remediation.edits if r.remediation else ())]  # type: ignore[attr-defined]
    assert {e.change.op for e in edits if e.change} >= {Op.SET, Op.RAY_START, Op.APPEND}
    plan = plan_file(path, edits)
    write_plan(plan)
    after = findings()
    rules = (
        "compose.block",
        "compose.shm_size",
        "compose.resource_limits",
        "compose.dashboard_host",
        "compose.published_ports",
    )
    for rule in rules:
        assert after[rule].status.value == "ok", (rule, after[rule].summary)  # type: ignore[attr-defined]
    again = [e for r in after.values() for e in (r.remediation.edits if r.remediation else ())]  # type: ignore[attr-defined]
    second = plan_file(path, again)
    assert not second.changed and second.applied == []
    assert comments(plan.new_text) == comments(text)


# -- refusals: the file's bytes stay as they were ------------------------------------------


def refused(path: Path, change: Change, needle: str) -> None:
    before = path.read_bytes()
    with pytest.raises(Refused) as caught:
        write_plan(plan_file(path, [edit(path, change)]))
    assert str(path) in str(caught.value) and needle in str(caught.value), str(caught.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "text, needle",
    [
        (BASE.replace("  ray-worker:\n", "  ray-worker: &w\n") + "  other: *w\n", "anchors or aliases"),
        ("x-common: &c\n  image: a\n" + BASE.replace("  ray-worker:\n", "  ray-worker:\n    <<: *c\n"), "anchors"),
        (
            BASE.replace("    shm_size: '2gb'  # Ray's object store\n", "    shm_size: '2gb'\n    shm_size: '1gb'\n"),
            "round-trip",
        ),
        (
            BASE.replace("    image: rayproject/ray:2.49.2-py312-cpu\n", "    image: a\n    tty: yes\n", 1),
            "ray-head.tty",
        ),
        (BASE + "---\nservices: {}\n", "2 YAML documents"),
    ],
    ids=["alias", "merge_key", "duplicate_key", "yaml11_word", "two_documents"],
)
def test_files_that_do_not_round_trip_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    refused(write(tmp_path, text), Change(Op.SET, CPUS, "2"), needle)


def test_a_value_holding_a_variable_is_not_replaced(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("cpus: '3'", "cpus: ${CPUS:-3}"))
    refused(path, Change(Op.SET, CPUS, "2"), "variable")


def test_a_script_written_with_escapes_is_refused(tmp_path: Path) -> None:
    text = BASE.replace(
        '["bash", "-c", "ray start --address=ray-head:6379"]', 'bash -c "ray start --address=\\\\"ray-head:6379\\\\""'
    )
    path = write(tmp_path, text)
    assert load_compose(path, {}).services["ray-worker"].ray_start_line is not None
    refused(path, Change(Op.RAY_START, ("services", "ray-worker", "command"), add=("--block",)), "escapes")


def test_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    real = write(tmp_path, name="real.yaml")
    link = tmp_path / "compose.yaml"
    link.symlink_to(real)
    with pytest.raises(Refused, match="symbolic link"):
        plan_file(link, [edit(link, Change(Op.SET, CPUS, "2"))])
    assert link.is_symlink() and real.read_text() == BASE


def test_a_file_changed_between_plan_and_write_is_not_written(tmp_path: Path) -> None:
    path = write(tmp_path)
    plan = plan_file(path, [edit(path, Change(Op.SET, CPUS, "2"))])
    path.write_text(BASE.replace("memory: 4g", "memory: 8g"))
    with pytest.raises(Refused, match="changed since raydoctor read it"):
        write_plan(plan)
    assert "memory: 8g" in path.read_text() and "cpus: '3'" in path.read_text()


def test_the_mode_and_line_endings_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_bytes(BASE.replace("\n", "\r\n").encode())
    path.chmod(0o600)
    write_plan(plan_file(path, [edit(path, Change(Op.SET, CPUS, "2"))]))
    data = path.read_bytes()
    assert b"cpus: '2'" in data and data.count(b"\r\n") == BASE.count("\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert path.stat().st_mode & 0o777 == 0o600


def test_refusal_is_a_usage_error() -> None:
    assert issubclass(Refused, UsageError) and Refused("x").exit_code == 2


# -- the command --------------------------------------------------------------------------


FIXABLE = BASE.replace(" --block", "").replace("cpus: '3'", "cpus: '1'")


@pytest.fixture
def env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV", "CONDA_"))}
    environ["HOME"] = str(home)
    return environ


def test_dry_run_shows_the_diff_and_writes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, FIXABLE)
    stat = path.stat()
    done = raydoctor_cli(["fix", "--cluster", "--compose", str(path), "--dry-run", "--no-roundtrip"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "--- " in done.stdout and '+    command: bash -c "ray start --head' in done.stdout, done.stdout
    assert "--dry-run: nothing was written." in done.stdout
    assert path.read_text() == FIXABLE and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_without_a_terminal_and_without_yes_it_refuses(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, FIXABLE)
    done = raydoctor_cli(["fix", "--cluster", "--compose", str(path), "--no-roundtrip"], tmp_path, env)
    assert done.returncode == 2 and "stdin is not a terminal" in done.stderr, done.stderr
    assert path.read_text() == FIXABLE


def test_yes_json_lists_the_edits_then_nothing_to_do(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, FIXABLE)
    args = ["fix", "--cluster", "--compose", str(path), "--yes", "--no-roundtrip", "--json"]
    doc = json.loads(raydoctor_cli(args, tmp_path, env).stdout)
    cluster = doc["outcome"]["cluster_file"]
    assert doc["command"] == "fix" and cluster["written"] is True, doc["error"]
    places = {(e["change"]["op"], tuple(e["change"]["key"])) for e in cluster["edits"]}
    assert ("ray_start", ("services", "ray-head", "command")) in places
    assert ("ray_start", ("services", "ray-worker", "command")) in places
    assert all({"path", "place", "value", "note", "change"} <= set(e) for e in cluster["edits"])
    assert cluster["restart"]["state"] == "not_running"
    assert cluster["diff"].startswith("--- ")
    block = next(r for r in doc["results"] if r["id"] == "compose.block")
    assert block["status"] == "ok", block  # the final check
    assert yaml.safe_load(path.read_text())["services"]["ray-worker"]["deploy"]["resources"]["limits"]["cpus"] == "1"
    assert comments(path.read_text()) == comments(FIXABLE)
    again = json.loads(raydoctor_cli(args, tmp_path, env).stdout)
    assert again["outcome"]["nothing_to_do"] is True and again["exit_code"] == 0, again["outcome"]
    assert again["outcome"]["cluster_file"]["written"] is False


def test_an_option_past_the_table_is_left_as_written(tmp_path: Path, env: dict[str, str]) -> None:
    """On a Ray newer than raydoctor's `ray start` table (2.61), an option no release of the table knows is a
    warning left to the user: fix --cluster edits the same command line for --block and keeps it as written
    (the table of one release read it as a typo of --labels-file)."""
    text = FIXABLE.replace("rayproject/ray:2.49.2-py312-cpu", "rayproject/ray:2.61.0-py312-cpu").replace(
        "--dashboard-port=8265", "--dashboard-port=8265 --node-labels-file=/etc/l.yaml"
    )
    path = write(tmp_path, text)
    args = ["fix", "--cluster", "--compose", str(path), "--yes", "--no-roundtrip", "--json"]
    doc = json.loads(raydoctor_cli(args, tmp_path, env).stdout)
    cluster = doc["outcome"]["cluster_file"]
    assert cluster["written"] is True, doc["error"]
    assert "compose.ray_start_flags.beyond_table" in cluster["by_hand"], cluster["by_hand"]
    assert all("--labels-file" not in e["value"] for e in cluster["edits"])
    command = yaml.safe_load(path.read_text())["services"]["ray-head"]["command"]
    assert "--node-labels-file=/etc/l.yaml" in command and "--block" in command and "--labels-file" not in command
    flags = next(r for r in doc["results"] if r["id"] == "compose.ray_start_flags")
    assert (flags["status"], flags["code"]) == ("warn", "compose.ray_start_flags.beyond_table"), flags
    assert flags["remediation"]["edits"] == []


def test_an_untrusted_settings_files_compose_path_is_not_edited(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, FIXABLE, name="theirs.yaml")
    (tmp_path / ".git").mkdir()
    (tmp_path / "raydoctor.toml").write_text('compose = "theirs.yaml"\n')
    done = raydoctor_cli(["fix", "--cluster", "--yes", "--no-roundtrip"], tmp_path, env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert path.read_text() == FIXABLE


def test_an_address_target_has_no_file_to_fix(tmp_path: Path, env: dict[str, str]) -> None:
    done = raydoctor_cli(["fix", "--cluster", "--address", "127.0.0.1:9", "--yes", "--no-roundtrip"], tmp_path, env)
    assert done.returncode == 2 and "compose file" in done.stderr, done.stderr


def test_check_never_imports_ruamel(tmp_path: Path, env: dict[str, str]) -> None:
    """Only fix --cluster pays for the round-trip library: a compose check runs without importing it."""
    import subprocess
    import sys

    path = write(tmp_path, FIXABLE)
    code = (
        "import sys; from doctor.cli import main; rc = main(sys.argv[1:]); "
        "print('ruamel' in ' '.join(sys.modules), file=sys.stderr)"
    )
    args = ["check", "--compose", str(path), "--no-roundtrip", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert json.loads(done.stdout)["command"] == "check"
    assert done.stderr.strip().splitlines()[-1] == "False", done.stderr


@pytest.mark.parametrize("answer, written", [("n\n", False), ("y\n", True)])
def test_at_a_terminal_it_asks_before_writing(tmp_path: Path, env: dict[str, str], answer: str, written: bool) -> None:
    """fix's own question, on a real terminal (a pty): no writes nothing (exit 1), yes writes."""
    import pty
    import subprocess
    import sys

    path = write(tmp_path, FIXABLE)
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        done = subprocess.run(
            [sys.executable, "-m", "doctor", "fix", "--cluster", "--compose", str(path), "--no-roundtrip"],
            cwd=tmp_path,
            env=env,
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert f"Write {path} now? [y/N]" in done.stdout, done.stdout + done.stderr
    assert (path.read_text() != FIXABLE) is written
    if written:
        assert f"Wrote {path} (" in done.stdout and "The cluster is not running: nothing restarted." in done.stdout
    else:
        assert done.returncode == 1 and "Nothing written." in done.stdout
