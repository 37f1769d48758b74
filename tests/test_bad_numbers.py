"""Malformed numbers, nesting and bytes from flags, files and servers: one line, never a traceback.

``'²'.isdigit()`` is true and ``int('²')`` raises; ``json`` and ``tomllib`` parse nesting recursively,
so thousands of ``[`` end in ``RecursionError``; a NUL byte in a path is a ``ValueError`` from ``os``.
Each test here failed with a traceback before raydoctor judged numbers by ASCII digits and caught
the nesting.
"""

from __future__ import annotations

import socket
import stat
import threading

import pytest

from doctor.cli import main
from tests.fake_servers import RawHTTP

IMAGE = ["--image", "rayproject/ray:2.49.2-py312-cpu", "--no-roundtrip", "--no-resolve"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_usage_error(code: int, err: str, *words: str) -> None:
    assert "Traceback" not in err and "Exception in thread" not in err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert all(w in lines[0] for w in words), lines[0]


@pytest.fixture
def here(tmp_path, monkeypatch, clean_env):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    return tmp_path


@pytest.mark.parametrize("port", ["²", "٣", "9" * 5000, " 80"])
def test_address_port_in_other_digits(capsys, here, port):
    code, _, err = run_cli(capsys, "check", "--address", f"h:{port}", "--no-roundtrip")
    one_line_usage_error(code, err, "is not a number from 1 to 65535")


def test_address_port_from_ray_address(capsys, here, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "h:²")
    code, _, err = run_cli(capsys, "check", "--no-roundtrip")
    one_line_usage_error(code, err, "'²'")


def test_address_port_from_settings_file(capsys, here):
    (here / "raydoctor.toml").write_text("address = 'h:²'\n")
    code, _, err = run_cli(capsys, "check", "--no-roundtrip", "--trust-settings")  # address applies once trusted
    assert "Traceback" not in err
    one_line_usage_error(code, err, "'²'")


def test_client_port_flag_in_other_digits(capsys, here):
    code, _, err = run_cli(capsys, "check", "--address", "127.0.0.1", "--client-port", "²")
    one_line_usage_error(code, err, "'²' is not a port number")


def test_compose_dashboard_port_in_other_digits(capsys, here):
    compose = here / "c.yaml"
    compose.write_text(
        "services:\n  ray-head:\n    image: rayproject/ray:2.49.2-py312-cpu\n"
        "    command: ray start --head --dashboard-host=0.0.0.0 --dashboard-port=² --block\n"
        "    ports: ['127.0.0.1:1:8265']\n"
    )
    code, _, err = run_cli(capsys, "check", "--compose", str(compose), "--no-roundtrip", "--timeout", "0.5")
    assert "Traceback" not in err and code in (1, 2), err


def test_compose_port_mapping_in_other_digits(capsys, here):
    compose = here / "c.yaml"
    compose.write_text(
        "services:\n  ray-head:\n    image: rayproject/ray:2.49.2-py312-cpu\n"
        "    command: ray start --head --dashboard-host=0.0.0.0 --block\n"
        "    ports: ['127.0.0.1:²:8265']\n"
    )
    code, _, err = run_cli(capsys, "check", "--compose", str(compose), "--no-roundtrip")
    one_line_usage_error(code, err, "is not a port number")


def test_deep_toml_settings_file(capsys, here):
    (here / "raydoctor.toml").write_text("timeout = " + "[" * 2000 + "]" * 2000 + "\n")
    code, _, err = run_cli(capsys, "check", *IMAGE, "--requirements", "empty.txt")
    one_line_usage_error(code, err, "raydoctor.toml", "nested too deeply")


def test_nul_in_a_settings_path(capsys, here):
    (here / "raydoctor.toml").write_text('runtime-env = "re\\u0000.yaml"\n')
    code, _, err = run_cli(capsys, "check", *IMAGE, "--requirements", "empty.txt")
    one_line_usage_error(code, err, "NUL")
    assert "\0" not in err  # the path is shown without the byte itself


def test_control_characters_in_an_error_stay_out_of_the_terminal(capsys, here):
    (here / "raydoctor.toml").write_text('runtime-env = "r\\u001b]52;c;aGk=\\u0007\\nx.yaml"\n')
    code, _, err = run_cli(capsys, "check", *IMAGE, "--requirements", "empty.txt", "--trust-settings")
    one_line_usage_error(code, err, "x.yaml")
    assert "\x1b" not in err and "\x07" not in err


@pytest.mark.parametrize("name", ["re.json", "re.yaml"])
def test_deep_runtime_env(capsys, here, name):
    (here / name).write_text("[" * 100_000)
    code, _, err = run_cli(capsys, "check", *IMAGE, "--requirements", "empty.txt", "--runtime-env", name)
    one_line_usage_error(code, err, name, "nested too deeply")


def test_deep_json_from_the_interpreter_probe(capsys, here):
    fake = here / "python"
    fake.write_text("#!/bin/sh\nprintf '%100000s' '' | tr ' ' '['\necho\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    code, out, err = run_cli(capsys, "check", *IMAGE, "--requirements", "empty.txt", "--python", str(fake))
    # an interpreter that cannot be inspected is a failed check, as for any other broken interpreter
    assert code == 1 and "Traceback" not in err + out, err
    assert f"{fake} printed something that is not the probe's JSON" in out


def _superscript_length(conn: socket.socket, request: bytes) -> None:
    # b"\xb2" is '²' in Latin-1, the charset http.client decodes header values with
    body = b'{"result": true, "data": {"rayVersion": "2.49.2", "pythonVersion": "3.12.9"}}'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \xb2\r\n\r\n" + body)


@pytest.mark.parametrize("command", ["check", "run"])
def test_dashboard_content_length_in_other_digits(capsys, here, monkeypatch, command):
    escaped: list[BaseException | None] = []  # what "Exception in thread" would have printed
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    with RawHTTP(_superscript_length) as server:
        extra = ["--", "python", "-c", "pass"] if command == "run" else []
        code, out, err = run_cli(
            capsys,
            command,
            "--address",
            server.url,
            "--no-roundtrip",
            "--timeout",
            "1",
            "--requirements",
            "empty.txt",
            *extra,
        )
    assert "Traceback" not in err and "Exception in thread" not in err, err
    assert escaped == [] and code in (1, 2)
