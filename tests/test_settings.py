"""The team's settings in its repo (doctor/settings.py): discovery, precedence, paths, sources, errors, the token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doctor.cli import main
from doctor.errors import UsageError
from doctor.origin import Origin
from doctor.settings import KEYS, find_settings
from doctor.target import parse_address, token_withheld
from doctor.trust import TRUST_ENV
from tests.fake_servers import RecordingDashboard
from tests.helpers import parse_cli

IMAGE = "rayproject/ray:2.49.2-py312-cpu"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    return path


# -- discovery -------------------------------------------------------------------------


def test_walks_up_past_a_pyproject_without_the_table(home: Path) -> None:
    top = home / "repo"
    (top / "pkg" / "deep").mkdir(parents=True)
    (top / "pyproject.toml").write_text('[tool.raydoctor]\nmode = "driver"\n')
    (top / "pkg" / "pyproject.toml").write_text('[project]\nname = "pkg"\n[tool.ruff]\nline-length = 100\n')
    found = find_settings(top / "pkg" / "deep", {"HOME": str(home)})
    assert found is not None and found.path == top / "pyproject.toml"
    assert found.values == {"mode": "driver"} and found.table == "tool.raydoctor"


def test_the_closest_file_wins_and_files_are_not_merged(home: Path) -> None:
    top = home / "repo"
    (top / "sub").mkdir(parents=True)
    (top / "raydoctor.toml").write_text('mode = "driver"\ntimeout = 9\n')
    (top / "sub" / "raydoctor.toml").write_text("timeout = 4\n")
    found = find_settings(top / "sub", {"HOME": str(home)})
    assert found is not None and found.values == {"timeout": 4}  # no mode from the file above


def test_raydoctor_toml_wins_over_pyproject_in_the_same_folder(home: Path) -> None:
    """As ruff.toml wins over pyproject.toml's [tool.ruff] (ruff_workspace/src/pyproject.rs::settings_toml)."""
    repo = home / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text('[tool.raydoctor]\nmode = "driver"\n')
    (repo / "raydoctor.toml").write_text('mode = "client"\n')
    found = find_settings(repo, {"HOME": str(home)})
    assert found is not None and found.path == repo / "raydoctor.toml" and found.values == {"mode": "client"}
    assert found.shadows == repo / "pyproject.toml"


def test_the_walk_stops_at_home(tmp_path: Path, home: Path) -> None:
    (tmp_path / "raydoctor.toml").write_text('mode = "driver"\n')  # above home: never read
    (home / "proj").mkdir()
    assert find_settings(home / "proj", {"HOME": str(home)}) is None
    (home / "raydoctor.toml").write_text('mode = "driver"\n')  # home itself is the last folder looked at
    found = find_settings(home / "proj", {"HOME": str(home)})
    assert found is not None and found.path == home / "raydoctor.toml"


def test_someone_elses_broken_pyproject_is_not_ours(home: Path) -> None:
    (home / "pyproject.toml").write_text("[project\nname = \n")
    assert find_settings(home, {"HOME": str(home)}) is None


# -- precedence ------------------------------------------------------------------------

# (file, flags, environment) -> (key, value, where it came from); "FILE" stands for the file's path.
PRECEDENCE = [
    ('mode = "driver"', [], {}, "mode", "driver", "FILE"),
    ('mode = "driver"', ["--mode", "client"], {}, "mode", "client", "--mode"),  # a flag equal to the default
    ("", [], {}, "mode", "client", "default"),
    ("timeout = 5", ["--timeout", "3"], {}, "timeout", 3.0, "--timeout"),
    ("timeout = 5", [], {}, "timeout", 5.0, "FILE"),
    ('address = "10.0.0.5:8265"', [], {}, "address", "10.0.0.5:8265", "FILE"),
    ('address = "10.0.0.5:8265"', [], {"RAY_ADDRESS": "10.0.0.6:8265"}, "address", "10.0.0.6:8265", "RAY_ADDRESS"),
    ('address = "10.0.0.5:8265"', ["--address", "10.0.0.7"], {"RAY_ADDRESS": "x"}, "address", "10.0.0.7", "--address"),
    ('address = "10.0.0.5:8265"', ["--image", IMAGE], {}, "address", None, "default"),  # a flag names the target
    (f'image = "{IMAGE}"', [], {"RAY_ADDRESS": "10.0.0.6"}, "image", None, "default"),  # so does RAY_ADDRESS
    ("client-port = 10002", [], {}, "client-port", 10002, "FILE"),
]


@pytest.mark.parametrize(("text", "flags", "env", "key", "value", "source"), PRECEDENCE)
def test_precedence(home: Path, text: str, flags: list[str], env: dict[str, str], key: str, value: Any, source: str):
    (home / "raydoctor.toml").write_text(text + "\n")
    # Precedence among places; trust is its own test (tests/test_trust.py): the file is trusted here.
    options, _ = parse_cli(["check", *flags], home, {"HOME": str(home), TRUST_ENV: str(home), **env})
    assert options.settings is not None
    expected_from = str(home / "raydoctor.toml") if source == "FILE" else source
    assert options.settings[key] == {"value": value, "from": expected_from}
    if key != "address" or source != "RAY_ADDRESS":  # RAY_ADDRESS itself is read later, by resolve_target
        assert getattr(options, KEYS[key].dest) == value


def test_a_settings_address_is_the_target_and_named_by_the_user(home: Path) -> None:
    (home / "raydoctor.toml").write_text('address = "10.0.0.5:8265"\n')
    options, _ = parse_cli(["check"], home, {"HOME": str(home), TRUST_ENV: str(home / "raydoctor.toml")})
    assert options.address == "10.0.0.5:8265"
    assert options.address_from == f"settings file {home / 'raydoctor.toml'}"
    assert options.address_origin is Origin.SETTINGS
    from doctor.context import resolve_target

    target = resolve_target(options, {}, home)
    assert target.kind == "address" and target.named_by_user
    assert token_withheld(target.address, target.address_origin, "RAY_AUTH_TOKEN") is None
    # The same host from a compose file's published ports keeps the token back.
    assert token_withheld(parse_address("10.0.0.5:8265"), Origin.COMPOSE, "RAY_AUTH_TOKEN")


def test_paths_are_relative_to_the_file(home: Path) -> None:
    repo = home / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "pyproject.toml").write_text(
        "[tool.raydoctor]\n"
        'requirements = "deploy/packages.txt"\n'
        'compose = "deploy/ray.yaml"\n'
        'env-dir = ".envs"\n'
        'python = "tools/py"\n'
        'installer = "pip"\n'
    )
    trusted = {"HOME": str(home), TRUST_ENV: str(repo)}
    options, args = parse_cli(["check"], repo / "src" / "pkg", trusted)
    assert options.requirements == repo / "deploy" / "packages.txt"
    assert options.compose == repo / "deploy" / "ray.yaml"
    assert options.python == str(repo / "tools" / "py")
    assert "env-dir" not in options.settings  # check has no --env-dir: the key is for fix

    from doctor.commands.fix import fix_options

    _, fix_args = parse_cli(["fix"], repo / "src" / "pkg", trusted)
    fix = fix_options(fix_args)  # fix_options reads what options_from already filled in
    assert fix.env_dir == repo / ".envs" and fix.installer == "pip"
    assert fix.target.settings["env-dir"] == {"value": str(repo / ".envs"), "from": str(repo / "pyproject.toml")}


def test_a_python_name_stays_a_name(home: Path) -> None:
    (home / "raydoctor.toml").write_text('python = "python3.12"\n')
    options, _ = parse_cli(["check"], home, {"HOME": str(home), TRUST_ENV: str(home)})
    assert options.python == "python3.12"


# -- what the user sees ----------------------------------------------------------------


def test_json_and_verbose_say_where_each_setting_came_from(tmp_path, monkeypatch, capsys, clean_env) -> None:
    repo = tmp_path / "home" / "repo"
    repo.mkdir()
    (repo / "raydoctor.toml").write_text(f'image = "{IMAGE}"\ntimeout = 3\n')
    monkeypatch.chdir(repo)
    assert main(["trust"]) == 0  # image = chooses what runs here: applied once trusted
    capsys.readouterr()
    code = main(["check", "--json", "--no-roundtrip", "--mode", "client"])
    doc = json.loads(capsys.readouterr().out)
    assert code == doc["exit_code"]
    assert doc["target"]["kind"] == "image" and doc["target"]["image"] == IMAGE
    settings = doc["settings"]
    assert settings["image"] == {"value": IMAGE, "from": str(repo / "raydoctor.toml")}
    assert settings["timeout"] == {"value": 3.0, "from": str(repo / "raydoctor.toml")}
    assert settings["mode"] == {"value": "client", "from": "--mode"}
    assert settings["gcs-port"] == {"value": None, "from": "default"}
    main(["check", "-v", "--no-roundtrip"])
    lines = capsys.readouterr().out.splitlines()
    line = next(ln for ln in lines if ln.startswith("settings:"))
    assert f"from {repo / 'raydoctor.toml'}" in line and f"image={IMAGE}" in line and "timeout=3.0" in line
    main(["check", "--no-roundtrip"])
    assert not any(ln.startswith("settings:") for ln in capsys.readouterr().out.splitlines())


BAD = [
    ("raydoctor.toml", "mode = \n", "not valid TOML"),
    ("raydoctor.toml", 'adress = "10.0.0.5"\n', "unknown key 'adress'"),
    ("raydoctor.toml", "client_port = 10001\n", "did you mean 'client-port'"),
    ("raydoctor.toml", 'client-port = "10001"\n', "key 'client-port' must be an integer, not a string"),
    ("raydoctor.toml", "client-port = 70000\n", "key 'client-port'"),
    ("raydoctor.toml", 'mode = "sideways"\n', "key 'mode' is 'sideways', not one of"),
    ("raydoctor.toml", "timeout = true\n", "key 'timeout' must be a number, not a boolean"),
    ("pyproject.toml", "[tool.raydoctor]\nmode = \n", "not valid TOML"),
    ("pyproject.toml", '[tool]\nraydoctor = "x"\n', "[tool.raydoctor] must be a table"),
]


@pytest.mark.parametrize(("name", "text", "says"), BAD)
@pytest.mark.parametrize("command", ["check", "fix"])
def test_a_bad_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, clean_env, name, text, says, command):
    repo = tmp_path / "home" / "repo"
    repo.mkdir()
    (repo / name).write_text(text)
    monkeypatch.chdir(repo)
    code = main([command, "--dry-run"] if command == "fix" else [command])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(repo / name) in lines[0] and says in lines[0]
    assert "Traceback" not in err


def test_a_bad_file_in_json_is_one_document(tmp_path, monkeypatch, capsys, clean_env) -> None:
    repo = tmp_path / "home" / "repo"
    repo.mkdir()
    (repo / "raydoctor.toml").write_text("gcs-port = [1]\n")
    monkeypatch.chdir(repo)
    assert main(["check", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and "gcs-port" in doc["error"] and "raydoctor.toml" in doc["error"]


def test_load_error_names_the_file() -> None:
    from doctor.settings import load_settings

    with pytest.raises(UsageError, match="no such settings file"):
        load_settings(Path("/nonexistent/raydoctor.toml"))


# -- the token goes to a settings address ------------------------------------------------


def test_a_settings_address_gets_the_token(tmp_path, monkeypatch, capsys, clean_env) -> None:
    token = "rdt-settings-0123456789abcdef"
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    repo = tmp_path / "home" / "repo"
    repo.mkdir()
    rec = RecordingDashboard()
    try:
        (repo / "raydoctor.toml").write_text(f'address = "127.0.0.2:{rec.port}"\ntimeout = 2\n')
        monkeypatch.chdir(repo)
        main(["trust"])
        capsys.readouterr()
        main(["check", "--json", "--no-roundtrip"])
        out = capsys.readouterr().out
    finally:
        rec.close()
    doc = json.loads(out)
    assert doc["target"]["kind"] == "address"
    assert doc["target"]["token"]["sent"] is True and doc["target"]["token"]["why_not"] is None
    assert f"Bearer {token}" in rec.auth
    assert token not in out  # sent, never shown
