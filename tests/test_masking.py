"""Secrets masked once, on the report, before any renderer; control characters stripped in the same pass."""

from __future__ import annotations

import dataclasses
import json
from pathlib import PurePosixPath, PureWindowsPath

import pytest

from doctor.cli import main
from doctor.commands.common import emit
from doctor.model import Edit, Fact, Remediation, Report, Result, Status
from doctor.render.mask import mask_report, mask_text, sanitize, secret_env_values

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


@pytest.mark.slow
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


# -- what masking keeps, and the order and bounds it keeps (issue 20: mutation survivors) ---------


def test_a_long_secret_holding_a_shorter_one_is_masked_whole():
    # Shortest first (or by any order but length) would leave "aa-***-bb": both ends of the long secret.
    long, short = "aa-zzzz-bb", "zzzz"
    assert mask_text(f"x {long} y {short}", [short, long]) == "x *** y ***"
    assert mask_text(f"x {long} y {short}", [long, short]) == "x *** y ***"
    report = Report(
        "check", results=[Result("x", "local", "X", Status.OK, f"saw {long}")], secret_values=frozenset({short})
    )
    assert mask_report(report, secrets=[long]).results[0].summary == "saw ***"


def test_which_known_values_are_masked():
    assert mask_text("abcd and abc", ["abcd", "abc"]) == "*** and abc"  # from MIN_SECRET (4) on
    assert mask_text("a *** b", ["***"]) == "a *** b"
    assert mask_text("plain text", ["", "absent-value"]) == "plain text"
    assert mask_text("--token=abc") == "--token=***"  # no known values: the shapes still count


def test_secret_env_values():
    environ = {
        "RAY_AUTH_TOKEN": "  tok-12345  ",  # stripped, as the token is
        "DB_PASSWD": "12345678",  # from MIN_ENV_SECRET (8) on
        "GIT_AUTH_ENABLED": "true",  # too short to mask everywhere
        "SHORT_SECRET": "1234567",
        "my_api_key": "sk-lower-case-name",
        "PRIVATEKEY": "-----BEGIN-KEY-----",
        "HOME": "/home/someone-long",
        "PATH": "/usr/bin:/bin",
    }
    assert secret_env_values(environ) == frozenset(
        {"tok-12345", "12345678", "sk-lower-case-name", "-----BEGIN-KEY-----"}
    )
    assert secret_env_values(None) == frozenset() and secret_env_values({}) == frozenset()
    report = Report("check", results=[Result("x", "local", "X", Status.OK, "12345678 /home/someone-long")])
    assert mask_report(report, environ=environ).results[0].summary == "*** /home/someone-long"


def test_each_shape_is_masked_where_it_is_and_nowhere_else():
    assert mask_text("see http://u:p4ss@h/x and --password=abc and Bearer t0k and REDIS_PASSWORD=zz") == (
        "see http://u:***@h/x and --password=*** and Bearer *** and REDIS_PASSWORD=***"
    )
    assert mask_text("--passwords-file=f --key-file k") == "--passwords-file=*** --key-file ***"
    # the flag and the URL forms apply only where their marker is: a pair without "--" or "://"
    assert mask_text("user:pass@host") == "user:pass@host"
    assert mask_text("-token x") == "-token x"
    assert mask_text("password: s3cr3t") == "password: ***"


def _benign_report() -> Report:
    """A report with a value in every place masking walks, and nothing secret in it."""
    fix = Remediation("Run it.", ("uv pip install ray==2.49.2", "ray status"), (Edit("c.yaml", "line 3", "v", "n"),))
    res = Result(
        "local.python",
        "local",
        "Python",
        Status.WARN,
        "3.12.1 here, 3.12.9 on the head",
        ["one", "two"],
        fix,
        0.25,
        {"versions": ["3.12.1", "3.12.9"], "n": 3, "ok": True, "none": None, "ratio": 0.5},
        "versions.python.patch",
    )
    return Report(
        "check",
        results=[res, Result("net.gcs", "network", "GCS", Status.OK, "reachable")],
        target={"kind": "address", "address": {"dashboard": "http://10.0.0.5:8265"}},
        head={"ray": "2.49.2", "python": "3.12.9"},
        local={"executable": "/usr/bin/python3", "packages": ("numpy", "pandas")},
        error="the dashboard did not answer",
        error_exit_code=2,
        duration_s=1.5,
        extra={"plan": {"steps": ["a", "b"], "tags": {"x"}, "frozen": frozenset({"y"})}},
    )


def test_masking_keeps_everything_that_is_not_secret():
    report = _benign_report()
    masked = mask_report(report, secrets=["not-in-the-report"], environ={"RAY_AUTH_TOKEN": "absent-token-value"})
    assert masked == report
    assert masked.to_dict() == report.to_dict()
    assert masked.exit_code == report.exit_code == 2
    local, plan = masked.local["packages"], masked.extra["plan"]
    assert type(local) is tuple and type(plan["tags"]) is set and type(plan["frozen"]) is frozenset
    assert type(masked.results[0].remediation.commands) is tuple  # type: ignore[union-attr]
    assert masked.results[1].remediation is None
    assert mask_report(Report("check")) == Report("check")


def test_masking_reaches_every_field_of_a_result():
    leak = "leaky-value-42"
    fix = Remediation(f"t {leak}", (f"c {leak}",), (Edit(f"p {leak}", f"l {leak}", f"v {leak}", f"n {leak}"),))
    res = Result(
        f"i {leak}", f"c {leak}", f"t {leak}", Status.OK, f"s {leak}", [f"d {leak}"], fix, 0, {leak: leak}, f"k {leak}"
    )
    report = Report(f"check {leak}", [res], {"t": leak}, {"h": leak}, {"l": leak}, f"e {leak}", extra={"x": leak})
    masked = mask_report(report, secrets=[leak])
    assert leak not in json.dumps(masked.to_dict())
    got = masked.results[0]
    assert (got.id, got.category, got.title, got.summary, got.details, got.code) == (
        "i ***",
        "c ***",
        "t ***",
        "s ***",
        ["d ***"],
        "k ***",
    )
    assert got.remediation == Remediation("t ***", ("c ***",), (Edit("p ***", "l ***", "v ***", "n ***"),))
    assert got.data == {"***": "***"}
    assert (masked.command, masked.target, masked.head, masked.local, masked.error, masked.extra) == (
        "check ***",
        {"t": "***"},
        {"h": "***"},
        {"l": "***"},
        "e ***",
        {"x": "***"},
    )


@dataclasses.dataclass(frozen=True)
class _Probe:
    """A dataclass of the caller's own: rebuilt with its strings masked, its derived field left alone."""

    name: str
    path: PurePosixPath
    level: Status
    derived: str = dataclasses.field(init=False, default="kept")


class _Shown:
    def __str__(self) -> str:
        return "object with leaky-value-42"


def test_the_walker_rebuilds_each_kind_of_value():
    leak = "leaky-value-42"
    inner = Result("r", "c", "T", Status.FAIL, f"inner {leak}", remediation=Remediation(f"fix {leak}"))
    extra = {
        "probe": _Probe(f"n {leak}", PurePosixPath(f"/x/{leak}/y"), Status.OK),
        "path": PureWindowsPath(f"C:\\{leak}"),
        "result": inner,
        "fix": Remediation(f"again {leak}"),
        "object": _Shown(),
        "status": Status.WARN,
        "numbers": [1, 2.5, True, None],
    }
    masked = mask_report(Report("check", extra=extra), secrets=[leak]).extra
    assert masked["probe"] == _Probe("n ***", PurePosixPath("/x/***/y"), Status.OK)
    assert masked["probe"].derived == "kept"
    assert masked["path"] == PureWindowsPath("C:\\***") and type(masked["path"]) is PureWindowsPath
    assert masked["result"].summary == "inner ***" and masked["result"].remediation == Remediation("fix ***")
    assert masked["fix"] == Remediation("again ***")
    assert masked["object"] == "object with ***"
    assert masked["status"] == "warn" and masked["numbers"] == [1, 2.5, True, None]  # a str enum is a str


def _nest(levels: int, leaf: str = "leaf") -> object:
    value: object = leaf
    for _ in range(levels):
        value = [value]
    return value


def test_nesting_is_bounded_at_fifty_levels():
    # extra is level 0; its value's lists are levels 1.. : the 50th is still walked, the 51st is not
    assert mask_report(Report("check", extra={"k": _nest(50)})).extra["k"] == _nest(50)
    assert mask_report(Report("check", extra={"k": _nest(51)})).extra["k"] == _nest(50, "***")


def test_masking_keeps_the_lines_and_tabs_of_a_log():
    log = "line 1\tcol\nline 2 --token=abc\r\nline 3"
    assert mask_text(log) == "line 1\tcol\nline 2 --token=***\nline 3"
    masked = mask_report(Report("check", results=[Result("x", "local", "X", Status.OK, "s", [log])]))
    assert masked.results[0].details == ["line 1\tcol\nline 2 --token=***\nline 3"]


def _tuple_nest(levels: int, leaf: str = "leaf") -> object:
    value: object = leaf
    for _ in range(levels):
        value = (value,)
    return value


def test_keys_are_walked_within_the_same_bound():
    # a dict's keys are masked like its values, at the next level
    masked = mask_report(Report("check", extra={"k": {("leaky-value-42", 1): "v"}}), secrets=["leaky-value-42"])
    assert masked.extra["k"] == {("***", 1): "v"}
    # extra is level 0, the inner dict 1, its key's tuples 2.. : the 50th level is walked, the 51st is not
    deep = mask_report(Report("check", extra={"k": {_tuple_nest(49): 1}})).extra["k"]
    assert deep == {_tuple_nest(49): 1}
    deeper = mask_report(Report("check", extra={"k": {_tuple_nest(50): 1}})).extra["k"]
    assert deeper == {_tuple_nest(49, "***"): 1}


@dataclasses.dataclass(frozen=True)
class _Box:
    value: object


def test_a_dataclass_field_is_the_next_level():
    # extra is level 0, the box 1, its field's lists 2.. : the 50th level is walked, the 51st is not
    assert mask_report(Report("check", extra={"k": _Box(_nest(49))})).extra["k"] == _Box(_nest(49))
    assert mask_report(Report("check", extra={"k": _Box(_nest(50))})).extra["k"] == _Box(_nest(49, "***"))
