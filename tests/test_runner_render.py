"""The engine: concurrency, timeouts, crashes as results, fixed order; rendering from data."""

from __future__ import annotations

import io
import json
import sysconfig
import threading
import time

import pytest

from doctor.errors import UsageError
from doctor.model import Remediation, Report, Result, Status, finding
from doctor.render import render_json, render_text, summary_line
from doctor.render.mask import mask_report
from doctor.runner import Check, run_checks


def ok(check_id: str, category: str):
    return lambda ctx: finding(Status.OK, "fine")


def test_checks_run_concurrently_and_in_fixed_order():
    barrier = threading.Barrier(3, timeout=5)  # only passes if all three run at the same time

    def waiting(check_id: str, category: str):
        def run(ctx):
            barrier.wait()
            return finding(Status.OK, "met the others")

        return run

    checks = [
        Check("n", "network", "n", waiting("n", "network")),
        Check("v", "versions", "v", waiting("v", "versions")),
        Check("h", "head", "h", waiting("h", "head")),
    ]
    results = run_checks(checks, None)
    assert [r.id for r in results] == ["h", "v", "n"]  # category order, not completion order
    assert all(r.status is Status.OK for r in results)


def test_timeout_and_crash_become_error_results():
    def slow(ctx):
        time.sleep(5)

    def crash(ctx):
        raise KeyError("boom")

    def usage(ctx):
        raise UsageError("bad file x.yaml")

    start = time.perf_counter()
    results = run_checks(
        [
            Check("slow", "head", "Slow", slow, timeout=0.3),
            Check("crash", "head", "Crash", crash),
            Check("usage", "head", "Usage", usage),
            Check("fine", "head", "Fine", ok("fine", "head")),
        ],
        None,
    )
    assert time.perf_counter() - start < 3
    by_id = {r.id: r for r in results}
    assert by_id["slow"].status is Status.ERROR and "timed out after 0.3 s" in by_id["slow"].summary
    assert by_id["crash"].status is Status.ERROR and "KeyError" in by_id["crash"].summary
    assert by_id["usage"].status is Status.ERROR and "x.yaml" in by_id["usage"].summary
    assert by_id["fine"].status is Status.OK


def test_a_check_may_return_several_results():
    def many(ctx):
        return [finding(Status.OK, "x", check_id="a", title="A"), finding(Status.WARN, "y", check_id="b", title="B")]

    results = run_checks([Check("m", "compose", "M", many)], None)
    assert [r.id for r in results] == ["a", "b"]
    assert [(r.category, r.title, r.code) for r in results] == [("compose", "A", "a.ok"), ("compose", "B", "b.warn")]


def test_checks_asking_for_install_paths_at_once_never_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Python 3.12, sysconfig's first use races between threads (CPython gh-92452): CI once
    saw versions.python crash with AttributeError('userbase'). Without the runner's warm-up this
    loop errs a few times in 640 checks on this machine; with it, never."""

    def user_scripts(ctx: object) -> Result:
        return finding(Status.OK, sysconfig.get_path("scripts", "posix_user"), code="paths.ok")

    for _ in range(20):
        monkeypatch.setattr(sysconfig, "_CONFIG_VARS", None)  # as in a fresh process
        if hasattr(sysconfig, "_CONFIG_VARS_INITIALIZED"):
            monkeypatch.setattr(sysconfig, "_CONFIG_VARS_INITIALIZED", False)
        results = run_checks([Check(f"p{i}", "local", "P", user_scripts) for i in range(32)], None)
        assert [r.summary for r in results if r.status is not Status.OK] == []


def sample_report() -> Report:
    fail = Result(
        "versions.python",
        "versions",
        "Python version",
        Status.FAIL,
        "3.11.7 ≠ 3.12.9",
        details=["Ray enforces it"],
        remediation=Remediation("Use 3.12.9.", ("raydoctor fix",)),
    )
    warn = Result(
        "head.source",
        "head",
        "Ray head",
        Status.WARN,
        "not running",
        remediation=Remediation("Start it.", ("docker compose up -d",)),
    )
    skip = Result("packages.head", "packages", "Head packages", Status.SKIP, "needs --deep")
    return Report("check", results=[warn, fail, skip], duration_s=0.42)


def test_plain_text_has_markers_groups_fixes_and_one_summary_line():
    out = io.StringIO()
    render_text(sample_report(), out)
    text = out.getvalue()
    assert "\x1b[" not in text  # not a terminal: no colour codes
    assert "[!] Ray head: not running" in text and "[✗] Python version: 3.11.7 ≠ 3.12.9" in text
    assert "[-] Head packages: needs --deep" in text
    assert "$ raydoctor fix" in text and "Ray enforces it" in text
    assert text.index("Head") < text.index("Versions") < text.index("Packages")
    assert text.strip().splitlines()[-1] == summary_line(sample_report())
    assert "1 warning" in summary_line(sample_report()) and "1 failure" in summary_line(sample_report())


def test_verbose_adds_details_and_timings():
    report = sample_report()
    report.results[0].details = ["a detail only -v shows"]
    quiet, loud = io.StringIO(), io.StringIO()
    render_text(report, quiet)
    render_text(report, loud, verbose=True)
    assert "a detail only -v shows" not in quiet.getvalue() and "a detail only -v shows" in loud.getvalue()
    assert " ms)" in loud.getvalue() and " ms)" not in quiet.getvalue()


def test_json_is_the_same_data():
    doc = json.loads(render_json(sample_report()))
    assert doc["schema"] == "raydoctor.report/1" and doc["exit_code"] == 1
    assert doc["summary"] == {"ok": 0, "warn": 1, "fail": 1, "skip": 1, "error": 0}
    assert doc["results"][1]["remediation"] == {"text": "Use 3.12.9.", "commands": ["raydoctor fix"], "edits": []}


def test_the_reports_secrets_never_render():
    report = sample_report()
    report.secret_values = frozenset({"hunter2-very-secret"})
    report.results[0].details = ["token hunter2-very-secret leaked into a message"]
    masked = mask_report(report)
    out = io.StringIO()
    render_text(masked, out, verbose=True)
    assert "hunter2-very-secret" not in out.getvalue() + render_json(masked)
    assert "***" in out.getvalue()
    assert report.results[0].details == ["token hunter2-very-secret leaked into a message"]  # a copy was masked


def test_the_runner_stamps_identity_and_a_default_code():
    from doctor.model import finding
    from doctor.runner import Check, run_checks

    def judge(ctx):
        return [finding(Status.WARN, "one"), finding(Status.FAIL, "two", code="demo.two_broken")]

    results = run_checks([Check("demo.check", "local", "Demo", judge, timeout=5)], None)
    assert [(r.id, r.category, r.title) for r in results] == [("demo.check", "local", "Demo")] * 2
    assert [r.code for r in results] == ["demo.check.warn", "demo.two_broken"]
    assert results[0].to_dict()["code"] == "demo.check.warn"


def test_edits_are_shown_as_edits_never_as_commands():
    from doctor.model import Edit
    from doctor.render.markdown import render_markdown

    edit = Edit(
        "compose/cpu-ray-cluster.yaml", "services.ray-worker.deploy.resources.limits.cpus", "'2'", "this host has 2"
    )
    res = Result(
        "compose.limits",
        "compose",
        "Resource limits fit this machine",
        Status.WARN,
        "cpus 8 > 2 here",
        remediation=Remediation("Lower the limit.", (), (edit,)),
    )
    report = Report("check", results=[res])
    out = io.StringIO()
    render_text(report, out)
    text = out.getvalue()
    assert (
        "      edit compose/cpu-ray-cluster.yaml, services.ray-worker.deploy.resources.limits.cpus: '2' (this host has 2)"
        in text
    )
    assert "$" not in text
    doc = json.loads(render_json(report))
    assert (
        doc["results"][0]["remediation"]["edits"] == [edit.to_dict()]
        and doc["results"][0]["remediation"]["commands"] == []
    )
    markdown = render_markdown(report, environ={})
    assert (
        "Edit `compose/cpu-ray-cluster.yaml` at `services.ray-worker.deploy.resources.limits.cpus`: `'2'`" in markdown
    )
    assert "```" not in markdown
