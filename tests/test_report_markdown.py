"""``raydoctor report``: the Markdown summary, its secret masking and its redaction."""

from __future__ import annotations

import subprocess
import sys

import pytest

from doctor.model import Remediation, Report, Result, Status
from doctor.render.markdown import Redactor
from doctor.render.markdown import render_markdown as render_masked_markdown
from doctor.render.mask import mask_report, mask_text

SECRET = "tok-3f9a1c2b7d8e4f60a1b2"
HOME = "/home/alice"


def synthetic_report() -> Report:
    results = [
        Result(
            "head.source",
            "head",
            "Ray head",
            Status.OK,
            "Ray 2.49.2, Python 3.12.9 from the running cluster at http://ray-head.corp.example.com:8265, auth token",
            ["ray: 2.49.2 (from running cluster (http://10.20.30.40:8265/api/v0/cluster_metadata))"],
            None,
            0.012,
        ),
        Result(
            "versions.python",
            "versions",
            "Python version (client mode)",
            Status.FAIL,
            "Python 3.11.7 locally ≠ Python 3.12.9 on the head (major.minor must match)",
            ["Ray enforces it in ray/util/client/__init__.py::_check_versions"],
            Remediation(
                "Use Python 3.12.9 locally: raydoctor fix builds a matching env.",
                (
                    "raydoctor fix --address 10.20.30.40:8265",
                    f"{HOME}/.venvs/x/bin/python -m pip install 'ray[default]==2.49.2'",
                ),
            ),
            0.31,
        ),
        Result(
            "network.ports",
            "network",
            "Ports | reachable",
            Status.WARN,
            "10.20.30.40:10001 refused; 127.0.0.1:8265 open; fe80::1ff:fe23:4567:890a silent",
            [
                f"token sent: Bearer {SECRET}",
                "started 14:34:22, image 2.49.2.7b0af3-py312, worker ray::IDLE",
                "compose: --redis-password=LetMeInRay and https://bob:hunter22@registry.example.com/v2/",
            ],
            Remediation("Open the port.", ()),
            1.5,
        ),
        Result("gpu.driver", "gpu", "GPU driver", Status.SKIP, "no GPU here", [], None, 0.0),
        Result("deep.probe", "deep", "Probe job", Status.ERROR, "timed out after 30 s", [], None, 30.0),
    ]
    return Report(
        "check",
        results=results,
        target={
            "kind": "address",
            "address": {
                "host": "ray-head.corp.example.com",
                "dashboard": "http://ray-head.corp.example.com:8265",
                "client": "ray://ray-head.corp.example.com:10001",
                "gcs_port": 6379,
            },
            "address_from": "--address",
            "compose": None,
            "image": None,
            "image_from": None,
        },
        head={
            "ray": {
                "value": "2.49.2",
                "source": "running cluster (http://ray-head.corp.example.com:8265/api/v0/cluster_metadata)",
                "exact": True,
            },
            "python": {
                "value": "3.12.9",
                "source": "running cluster (http://ray-head.corp.example.com:8265/api/v0/cluster_metadata)",
                "exact": True,
            },
            "auth_mode": "token",
            "problems": [],
        },
        local={
            "executable": f"{HOME}/.pyenv/versions/3.11.7/bin/python",
            "python": "3.11.7",
            "implementation": "CPython",
            "machine": "x86_64",
            "system": "Linux",
            "chosen_by": "python3 on PATH",
            "ray": "2.49.2",
        },
        duration_s=31.8,
        secret_values=frozenset({SECRET}),
    )


def render_markdown(report: Report, *, environ, **kwargs) -> str:
    """What `raydoctor report` does: the one masking pass, then the Markdown of the masked report."""
    return render_masked_markdown(mask_report(report, environ=environ), environ=environ, **kwargs)


@pytest.fixture
def environ():
    return {"HOME": HOME, "MY_SERVICE_API_KEY": "sk-live-abcdef123456", "PATH": "/usr/bin"}


def test_markdown_layout(environ):
    text = render_markdown(synthetic_report(), environ=environ)
    assert text.startswith("## raydoctor check report\n")
    assert "**1 failure, 1 error, 1 warning · 1 ok, 1 skipped (31.80 s)**" in text and "exit code 1" in text
    assert "| head | 2.49.2 | 3.12.9 | running cluster" in text
    assert "| local | 2.49.2 | 3.11.7 |" in text
    # every result is a row, with its time; a pipe in a title does not break the table
    assert "| ✗ fail | Python version (client mode) |" in text
    assert "| ! warn | Ports \\| reachable |" in text
    assert "| - skip | GPU driver |" in text and "| ✗ error | Probe job |" in text
    assert "| 310 ms |" in text and "| 30.0 s |" in text
    # every finding with its fix; ok and skip results only in the table
    assert "**✗ fail: Python version (client mode)** (`versions.python`)" in text
    assert "Fix: Use Python 3.12.9 locally" in text
    assert "```\nraydoctor fix --address 10.20.30.40:8265\n" in text
    assert "**✓ ok: Ray head**" not in text
    assert "### Timings" in text and "slowest: Probe job 30.0 s, Ports | reachable 1500 ms" in text
    assert "- head authentication: token" in text


def test_secrets_are_masked_even_without_redact(environ):
    text = render_markdown(synthetic_report(), environ=environ)
    assert SECRET not in text and "Bearer ***" in text
    assert "LetMeInRay" not in text and "--redis-password=***" in text
    assert "hunter22" not in text and "https://bob:***@registry.example.com" in text
    # without --redact the hosts stay: the reader may need them
    assert "10.20.30.40" in text and "ray-head.corp.example.com" in text and HOME in text


def test_secret_looking_env_values_never_appear(environ):
    report = synthetic_report()
    report.results[0].details.append("configured with sk-live-abcdef123456")
    text = render_markdown(report, environ=environ)
    assert "sk-live-abcdef123456" not in text


def test_redact_removes_hosts_addresses_and_home(environ):
    text = render_markdown(synthetic_report(), redact=True, environ=environ)
    for private in (
        "10.20.30.40",
        "ray-head.corp.example.com",
        "registry.example.com",
        "fe80::1ff:fe23:4567:890a",
        HOME,
    ):
        assert private not in text, private
    # the same host keeps one placeholder everywhere, so the reader can still follow it
    assert "http://<host-1>:8265" in text and "ray://<host-1>:10001" not in text  # client URL is not in the markdown
    assert "<ip-1>:10001 refused" in text and "raydoctor fix --address <ip-1>:8265" in text
    assert "~/.pyenv/versions/3.11.7/bin/python" in text and "~/.venvs/x/bin/python" in text
    # meaningful, non-identifying addresses and look-alikes stay
    assert "127.0.0.1:8265 open" in text
    assert "14:34:22" in text and "2.49.2.7b0af3-py312" in text and "ray::IDLE" in text
    assert "Python 3.11.7" in text and "3.12.9" in text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("see http://10.0.0.5:8265/api and 10.0.0.5", "see http://<ip-1>:8265/api and <ip-1>"),
        ("http://[2001:db8::7]:8265", "http://<ip-1>:8265"),
        ("subnet 172.29.0.0/16 on br-1", "subnet <ip-1>/16 on br-1"),
        ("bind 0.0.0.0:8265 and localhost:8265", "bind 0.0.0.0:8265 and localhost:8265"),
        ("numpy 1.26.4, CUDA 12.8.1, 1.2.3.4.5", "numpy 1.26.4, CUDA 12.8.1, 1.2.3.4.5"),
        ("sha256:abcdef0123 at 10:20:30", "sha256:abcdef0123 at 10:20:30"),
        ("/home/alice/x and /home/alicebob/y", "~/x and /home/alicebob/y"),
        ("head gpu-box-7 at gpu-box-7.lan", "head <host-1> at <host-2>"),
    ],
)
def test_redactor_table(text, expected):
    assert Redactor(["gpu-box-7", "gpu-box-7.lan"], home="/home/alice").apply(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("RAY_AUTH_TOKEN=abc123xyz", "RAY_AUTH_TOKEN=***"),
        ("password: hunter2", "password: ***"),
        ('"redis_password": "s3cret"', '"redis_password": "***"'),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("requires a Ray auth token and none was sent", "requires a Ray auth token and none was sent"),
        (
            "the token is wrong (from RAY_AUTH_TOKEN): get the current one",
            "the token is wrong (from RAY_AUTH_TOKEN): get the current one",
        ),
    ],
)
def test_mask_secrets_table(text, expected):
    assert mask_text(text) == expected


def test_error_report():
    report = Report("check", error="no target: no --address", error_exit_code=2)
    text = render_markdown(report, environ={})
    assert "**The check could not run:** `no target: no --address`" in text and "exit code 2" in text


# --------------------------------------------------------------------------
# end to end, against a real head


@pytest.mark.cluster
def test_report_redacted_against_live_head(ray_head, head_python, clean_env, tmp_path):
    token = "rdt-report-" + "9c1e5a7b3d2f4e6a8b0c"
    env = {**clean_env, "RAY_AUTH_TOKEN": token}
    base = [
        sys.executable,
        "-m",
        "doctor",
        "report",
        "--no-roundtrip",
        "--address",
        ray_head.dashboard_url,
        "--client-port",
        str(ray_head.ports["client"]),
        "--python",
        str(head_python),
    ]
    plain = subprocess.run(base, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert plain.returncode in (0, 1), plain.stderr
    assert ray_head.ip in plain.stdout  # sanity: unredacted, the address is there
    assert "| head | 2.49.2 |" in plain.stdout

    out_file = tmp_path / "report.md"
    proc = subprocess.run(
        [*base, "--redact", "-o", str(out_file)], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path
    )
    assert proc.returncode in (0, 1), proc.stderr
    text = out_file.read_text()
    assert text.startswith("## raydoctor check report") and "| head | 2.49.2 |" in text
    assert ray_head.ip not in text and ray_head.ip not in proc.stderr
    for port in (ray_head.ports["dashboard"], ray_head.ports["client"]):
        assert f"{ray_head.ip}:{port}" not in text
    assert token not in text and token not in plain.stdout + plain.stderr + proc.stderr
    assert str(head_python.parent.parent) not in text or not str(head_python).startswith(clean_env["HOME"])
    assert "http://<ip-1>:" in text


# -------------------------------------------------------------- remote text is shown, never interpreted

HOSTILE = (
    "job failed: <img src=x onerror=alert(1)> <a href='http://evil.example/x'>docs</a> "
    "![pixel](http://evil.example/p.png) [click](javascript:alert(1)) see www.evil.example or "
    "http://evil.example/login `code` *bold* | cell <!-- c --> &lt;script&gt;"
)


def _outside_code(text: str) -> str:
    """The Markdown without its code spans, fences and backslash-escaped characters: what GitHub interprets."""
    import re

    text = re.sub(r"(?ms)^(`{3,})\n.*?^\1$", "", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.sub(r"\\[!-/:-@\[-`{-~]", "", text)


def test_remote_text_is_escaped(environ):
    report = synthetic_report()
    report.results[1].summary = HOSTILE
    report.results[1].details.append(HOSTILE)
    report.results[1].remediation = Remediation(HOSTILE, ("echo ```", "```\n# a heading"))
    report.head["problems"] = [HOSTILE]
    report.results[2].summary = "# not a heading " + HOSTILE
    text = render_markdown(report, environ=environ, verbose=True)
    bare = _outside_code(text)
    for raw in ("<img", "<a ", "<!--", "](", "![", "[click]", "&lt;", "http://evil", "www.evil"):
        assert raw not in bare, raw
    assert "\\<img src=x onerror=alert(1)\\>" in text and "\\!\\[pixel\\]" in text  # shown, as text
    assert "`http://evil.example/login`" in text and "`www.evil.example`" in text
    assert "\n# not a heading" not in text and "\n\\# not a heading" in text  # a paragraph's start, escaped
    # the fence is longer than any backtick run inside it, so no command line can close it
    assert "````\necho ```\n``` # a heading\n````" in text
    # table rows keep their four cells: every | of the remote text is escaped
    row = next(ln for ln in text.splitlines() if ln.startswith("| ✗ fail | Python version"))
    assert len([c for c in row.replace("\\|", "").split("|")]) == 6


def test_redact_masks_values_from_the_environment(tmp_path, monkeypatch, clean_env):
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n  ray-head:\n    image: rayproject/ray:2.49.2-py312-cpu\n"
        "    command: ray start --head --dashboard-host=0.0.0.0 --block\n"
        "    ports: ['127.0.0.1:8265:8265']\n"
        "    environment:\n      KAGGLE: ${KAGGLE_KEY}\n      HOOK: ${SLACK_WEBHOOK_URL}\n"
        "      WHO: ${DEPLOYER:-nobody}\n"
    )
    (tmp_path / ".env").write_text("DEPLOYER=carol-from-dotenv\n")
    monkeypatch.setenv("KAGGLE_KEY", "kg-5e1d0c0ffee")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.example/T0/B0/xyz")
    from doctor.head.compose import load_compose

    project = load_compose(compose, dict(__import__("os").environ))
    assert project.interpolated == {
        "KAGGLE_KEY": "kg-5e1d0c0ffee",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.example/T0/B0/xyz",
        "DEPLOYER": "carol-from-dotenv",
    }
    report = synthetic_report()
    report.environment_values = project.interpolated
    report.results[2].details += [f"{k}={v}" for k, v in project.interpolated.items()]
    environ = {"HOME": HOME, "USER": "alice"}
    plain = render_markdown(report, environ=environ)
    assert "kg-5e1d0c0ffee" in plain  # not secret-named: shown without --redact
    text = render_markdown(report, environ=environ, redact=True)
    for value in project.interpolated.values():
        assert value not in text
    assert "KAGGLE_KEY=<env-KAGGLE_KEY>" in text and "DEPLOYER=<env-DEPLOYER>" in text
    # the rest of the report survives the redaction
    assert "Python 3.11.7 locally" in text and "| ✗ fail | Python version (client mode) |" in text


def test_redact_masks_the_user_name_in_paths():
    text = Redactor(home="/home/alice", user="alice").apply(
        "/home/alice/x, /Users/alice/y, /mnt/c/Users/alice, alice@box, alicent, malice"
    )
    assert text == "~/x, /Users/<user>/y, /mnt/c/Users/<user>, <user>@box, alicent, malice"
