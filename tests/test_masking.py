"""Secrets masked once, on the report, before any renderer; control characters stripped in the same pass."""

from __future__ import annotations

import json

import pytest

from doctor.cli import main
from doctor.commands.common import emit
from doctor.model import Edit, Fact, Remediation, Report, Result, Status
from doctor.render.mask import mask_report, mask_text, sanitize

PASSWORD = "LetMeInRay-8c1f"
TOKEN = "rdt-6d0f4e2a9b7c5e3d1f0a"
ESC = "\x1b[2J\x1b]0;owned\x07\x9b31m"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ray start --head --redis-password=hunter2", "ray start --head --redis-password=***"),
        (
            "ray start --address=h:6379 --redis-password hunter2 --block",
            "ray start --address=h:6379 --redis-password *** --block",
        ),
        ("--auth-token 'a b c' next", "--auth-token *** next"),
        ('--client-secret="x y"', "--client-secret=***"),
        ("--api-key sk-1234 --secret-key=zzz", "--api-key *** --secret-key=***"),
        (
            "pip install --index-url https://alice:s3cr3t@pypi.corp/simple x",
            "pip install --index-url https://alice:***@pypi.corp/simple x",
        ),
        ("pkg @ git+https://bob:ghp_abc123@github.com/o/r.git", "pkg @ git+https://bob:***@github.com/o/r.git"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("REDIS_PASSWORD=abc123 and token: zz9", "REDIS_PASSWORD=*** and token: ***"),
        # not secrets: left as they are
        ("--redis-password --block", "--redis-password --block"),
        ("--dashboard-host 0.0.0.0 --port 6379", "--dashboard-host 0.0.0.0 --port 6379"),
        (
            "ssh://git@github.com/o/r and http://127.0.0.1:8265/api",
            "ssh://git@github.com/o/r and http://127.0.0.1:8265/api",
        ),
        ("already --redis-password=*** masked", "already --redis-password=*** masked"),
        ("the token is wrong (from RAY_AUTH_TOKEN)", "the token is wrong (from RAY_AUTH_TOKEN)"),
    ],
)
def test_each_pattern(text, expected):
    assert mask_text(text) == expected


def test_known_values_masked_longest_first():
    assert mask_text("abcd1234 and abcd12345678", ["abcd1234", "abcd12345678"]) == "*** and ***"
    assert mask_text("the word ray stays", ["ray"]) == "the word ray stays"  # too short to mask


def test_control_characters_are_stripped():
    assert sanitize(f"Ray {ESC}2.49.2\r\x00", multiline=True) == "Ray 2.49.2"
    assert sanitize("two\nlines\tand a tab", multiline=True) == "two\nlines\tand a tab"
    assert sanitize("\x1b[31mred\x1b[0m") == "red"


def leaky_report() -> Report:
    """A secret (and a terminal escape) in every place a report has strings."""
    fix = Remediation(
        f"Restart with --redis-password={PASSWORD}.",
        (f"docker run -e RAY_AUTH_TOKEN={TOKEN} img", f"ray start --head --redis-password {PASSWORD}"),
        (Edit("compose.yaml", "services.ray-head.command", f"ray start --head --redis-password={PASSWORD}", TOKEN),),
    )
    res = Result(
        "compose.dashboard_host",
        "compose",
        "Dashboard host",
        Status.FAIL,
        f"head runs ray start --redis-password {PASSWORD}{ESC}",
        [f"sent Authorization: Bearer {TOKEN}", f"url https://u:{PASSWORD}@registry.example/v2/"],
        fix,
        0.1,
        {"command": f"ray start --redis-password={PASSWORD}", "nested": [{"token": TOKEN}], TOKEN: 1},
        "compose.dashboard_host.missing",
    )
    return Report(
        "check",
        results=[res],
        target={"kind": "address", "address": {"dashboard": f"http://admin:{PASSWORD}@10.0.0.5:8265"}},
        head={"ray": Fact(f"2.49.2{ESC}", "dashboard").to_dict(), "note": TOKEN},
        local={"executable": "/usr/bin/python3", "env": {"X": TOKEN}},
        extra={"plan": {"step": f"uv pip install --index-url https://me:{PASSWORD}@idx/simple"}},
        secret_values=frozenset({TOKEN}),
    )


@pytest.mark.parametrize("form", ["text", "json", "markdown"])
def test_every_form_of_output_is_masked(capsys, form):
    code = emit(leaky_report(), form=form, verbose=True, environ={})
    out, err = capsys.readouterr()
    assert code == 1
    shown = out + err
    assert PASSWORD not in shown and TOKEN not in shown
    assert "***" in shown
    for char in ("\x1b", "\x07", "\x9b"):
        assert char not in shown
    assert "\\u001b" not in shown  # nor escaped in JSON
    if form == "json":
        doc = json.loads(out)
        res = doc["results"][0]
        assert res["remediation"]["edits"][0]["value"] == "ray start --head --redis-password=***"
        assert res["remediation"]["commands"][1] == "ray start --head --redis-password ***"
        assert doc["head"]["ray"] == {"value": "2.49.2", "source": "dashboard", "exact": True}
        assert doc["target"]["address"]["dashboard"] == "http://admin:***@10.0.0.5:8265"
        assert "secret_values" not in doc


def test_error_documents_are_masked(capsys):
    report = Report("check", error=f"cannot read https://u:{PASSWORD}@h/x", error_exit_code=2)
    assert emit(report, form="json", environ={}) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] == "cannot read https://u:***@h/x" and doc["exit_code"] == 2
    assert emit(report, form="text", environ={}) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "raydoctor: error: cannot read https://u:***@h/x\n"


def test_the_original_report_is_left_alone_and_secrets_are_not_serialised():
    report = leaky_report()
    masked = mask_report(report)
    assert PASSWORD in report.results[0].summary and PASSWORD not in masked.results[0].summary
    quiet = Report("check", secret_values=frozenset({TOKEN}))
    assert "secret_values" not in quiet.to_dict() and TOKEN not in repr(quiet) + json.dumps(quiet.to_dict())


def test_two_runs_do_not_share_secrets():
    first = Report("check", results=[], secret_values=frozenset({"alpha-secret-1"}))
    mask_report(first)
    second = Report(
        "check",
        results=[Result("x", "local", "X", Status.OK, "alpha-secret-1 is not a secret in this run")],
        secret_values=frozenset({"beta-secret-2"}),
    )
    masked = mask_report(second)
    # a process-global registry would have masked the first run's value here
    assert masked.results[0].summary == "alpha-secret-1 is not a secret in this run"
    third = Report("check", results=[Result("x", "local", "X", Status.OK, "beta-secret-2 here")])
    assert mask_report(third).results[0].summary == "beta-secret-2 here"


def test_the_runs_token_and_secret_env_values_are_masked(capsys):
    report = Report("check", results=[Result("x", "local", "X", Status.WARN, f"saw {TOKEN} and sk-live-0123456789")])
    emit(
        report,
        form="text",
        environ={"RAY_AUTH_TOKEN": TOKEN, "MY_API_KEY": "sk-live-0123456789", "HOME": "/nonexistent"},
    )
    out = capsys.readouterr().out
    assert TOKEN not in out and "sk-live-0123456789" not in out and "saw *** and ***" in out


COMPOSE_WITH_PASSWORD = f"""\
services:
  ray-head:
    image: rayproject/ray:2.49.2-py312-cpu
    command: ray start --head --redis-password={PASSWORD} --block
    ports: ["127.0.0.1:8265:8265", "127.0.0.1:10001:10001"]
  ray-worker:
    image: rayproject/ray:2.49.2-py312-cpu
    command: ray start --address=ray-head:6379 --redis-password {PASSWORD} --block
"""


@pytest.mark.parametrize("json_flag", [True, False])
def test_check_never_prints_a_compose_password(capsys, tmp_path, monkeypatch, clean_env, json_flag):
    """Issue 8's bug: check's text and JSON printed the corrected `ray start` line, password included."""
    (tmp_path / "c.yaml").write_text(COMPOSE_WITH_PASSWORD)
    monkeypatch.chdir(tmp_path)
    argv = ["check", "--no-roundtrip", "-v", "--compose", "c.yaml", "--timeout", "1"]
    code = main(argv + (["--json"] if json_flag else []))
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert PASSWORD not in out + err
    if json_flag:
        json.loads(out)
