"""Bad input never gets a traceback: one clear line, bounded time, an exit code that says so."""

from __future__ import annotations

import json
import time

import pytest

from doctor.cli import main
from tests.fake_servers import BROKEN_JSON, HTML, NOT_FOUND, FakeHTTP, SilentPort, closed_port, fake_ray


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def check_json(capsys, tmp_path, *args: str) -> tuple[int, dict]:
    empty = tmp_path / "empty-requirements.txt"
    empty.write_text("")
    code, out, _ = run_cli(capsys, "check", "--json", "--no-roundtrip", "--requirements", str(empty), *args)
    return code, json.loads(out)


def result(doc: dict, check_id: str) -> dict:
    return next(r for r in doc["results"] if r["id"] == check_id)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--compose", "missing.yaml"], "missing.yaml"),
        (["--address", "host:notaport"], "port"),
        (["--address", "ftp://h"], "scheme"),
        (["--timeout", "-1"], "seconds"),
        (["--mode", "bogus"], "invalid choice"),
        (["--python", "/no/such/python"], "/no/such/python"),
        (["--requirements", "nope.txt", "--image", "rayproject/ray:2.49.2-py312-cpu"], "nope.txt"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, tmp_path, monkeypatch, clean_env, args, words):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "check", *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err


def test_usage_error_with_json_is_still_one_document(capsys, tmp_path, monkeypatch, clean_env):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "check", "--json", "--compose", "missing.yaml")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2
    assert "missing.yaml" in doc["error"] and doc["schema"].startswith("raydoctor.report/")


@pytest.mark.parametrize(
    "text, words",
    [
        ("services: [unclosed", "YAML at line 1"),
        ("just a string", "mapping"),
        ("services:\n  web:\n    image: nginx\n", "ray start --head"),
    ],
)
def test_malformed_compose(capsys, tmp_path, monkeypatch, clean_env, text, words):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text(text)
    code, out, err = run_cli(capsys, "check", "--compose", str(path))
    assert code == 2 and str(path) in err and words in err
    assert len(err.strip().splitlines()) == 1


def test_missing_default_target(capsys, tmp_path, monkeypatch, clean_env):
    # No flags, no RAY_ADDRESS, no compose/ here and none beside the package: explained, exit 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("doctor.facts.target.REPO_ROOT", tmp_path)
    monkeypatch.setattr("doctor.resources.data_prefixes", lambda: [])  # nor an installed copy
    code, _, err = run_cli(capsys, "check")
    assert code == 2 and "no target" in err


@pytest.mark.parametrize(
    "answer, words",
    [
        (HTML, "HTML"),
        (NOT_FOUND, "not as a Ray dashboard"),
        (BROKEN_JSON, "not Ray's JSON"),
    ],
)
def test_http_but_not_ray_is_a_finding(capsys, tmp_path, clean_env, answer, words):
    with FakeHTTP(default=answer) as server:
        port = server.port
        code, doc = check_json(capsys, tmp_path, "--address", f"127.0.0.1:{port}")
    head = result(doc, "head.source")
    assert code == 1 and head["status"] == "fail"
    assert words in head["summary"] and f"127.0.0.1:{port}" in head["summary"]
    assert head["remediation"]["text"]


def test_closed_port_is_a_finding_fast(capsys, tmp_path, clean_env):
    port = closed_port()
    start = time.perf_counter()
    code, doc = check_json(capsys, tmp_path, "--address", f"127.0.0.1:{port}")
    assert time.perf_counter() - start < 10  # generous bound; the benchmark measures the real figure
    head = result(doc, "head.source")
    assert code == 1 and head["status"] == "fail" and "refused" in head["summary"]


def test_silent_dashboard_is_bounded(capsys, tmp_path, clean_env):
    with SilentPort() as silent:
        port = silent.port
        code, doc = check_json(capsys, tmp_path, "--address", f"127.0.0.1:{port}", "--timeout", "1")
    head = result(doc, "head.source")
    assert code == 1 and head["status"] == "fail"
    assert "no answer" in head["summary"] and head["data"]["kind"] == "timeout"


def test_unresolvable_name(capsys, tmp_path, clean_env):
    code, doc = check_json(capsys, tmp_path, "--address", "no-such-host.invalid:8265")
    head = result(doc, "head.source")
    assert code == 1 and head["data"]["kind"] == "unresolvable"
    assert "no-such-host.invalid" in head["summary"]


def test_ray_address_env_is_used(capsys, tmp_path, monkeypatch, clean_env):
    with fake_ray(python="3.12.9") as server:
        monkeypatch.setenv("RAY_ADDRESS", server.url)
        code, doc = check_json(capsys, tmp_path)
    assert doc["target"]["address_from"] == "RAY_ADDRESS"
    assert result(doc, "head.source")["status"] == "ok"
    assert doc["head"]["python"]["value"] == "3.12.9"


def test_token_is_sent_and_never_printed(capsys, tmp_path, monkeypatch, clean_env):
    secret = "s3cr3t-token-value-42"
    with fake_ray(token=secret) as server:
        port = server.port
        monkeypatch.setenv("RAY_AUTH_TOKEN", secret)
        code, out, err = run_cli(capsys, "check", "--json", "--no-roundtrip", "-v", "--address", f"127.0.0.1:{port}")
        assert secret not in out + err
        doc = json.loads(out)
        assert result(doc, "head.source")["status"] == "ok"
        code, out, err = run_cli(capsys, "check", "-v", "--no-roundtrip", "--address", f"127.0.0.1:{port}")
        assert secret not in out + err


def test_missing_token_says_where_to_put_it(capsys, tmp_path, clean_env):
    with fake_ray(token="abcd-efgh") as server:
        port = server.port
        code, doc = check_json(capsys, tmp_path, "--address", f"127.0.0.1:{port}")
    head = result(doc, "head.source")
    assert code == 1 and head["data"]["kind"] == "unauthorized"
    assert "RAY_AUTH_TOKEN" in head["summary"] and "~/.ray/auth_token" in head["summary"]


def test_wrong_token_names_its_source(capsys, tmp_path, clean_env):
    token_file = tmp_path / "tok"
    token_file.write_text("wrong-token-123\n")
    with fake_ray(token="right-token-456") as server:
        code, out, err = run_cli(capsys, "check", "--json", "--no-roundtrip", "--address", server.url)
    # RAY_AUTH_TOKEN_PATH was not set in this test: no token found → unauthorized
    assert json.loads(out)["exit_code"] == 1
    import os

    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    try:
        with fake_ray(token="right-token-456") as server:
            code, out, err = run_cli(capsys, "check", "--json", "--no-roundtrip", "--address", server.url)
    finally:
        del os.environ["RAY_AUTH_TOKEN_PATH"]
    head = result(json.loads(out), "head.source")
    assert head["data"]["kind"] == "forbidden" and "RAY_AUTH_TOKEN_PATH" in head["summary"]
    assert "wrong-token-123" not in out + err
