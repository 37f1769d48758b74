"""Token authentication against a real head of a Ray that has it (Ray ≥ 2.52).

The head is started with ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN``:
``ray start`` does not make a token up for an existing cluster (it calls
``ensure_token_if_auth_enabled(create_token_if_missing=False)`` in
scripts/scripts.py) and refuses to start without one. Its dashboard then
answers 401 without a token and 403 with a wrong one on every path except
the public ones (``/api/authentication_mode``, ``/api/gcs_healthz``...; see
dashboard/http_server_head.py and _private/authentication/http_token_authentication.py).

The token must never appear in anything raydoctor prints.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from doctor.app import run_check
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.model import Status
from doctor.options import TargetOptions
from doctor.secrets import TOKEN_PLACES, Token
from doctor.target import parse_address
from tests.helpers import TOKEN, TOKEN_RAY
from tests.ray_cluster import RayNode

pytestmark = pytest.mark.cluster

WRONG = "rdt-wrong-" + secrets.token_hex(8)


@pytest.fixture
def env(clean_env):
    """The test's environment: no token anywhere (HOME is a fresh folder)."""
    return {k: v for k, v in clean_env.items() if not k.startswith("RAY_")}


def _check(node: RayNode, environ: dict[str, str], python: Path, cwd: Path):
    options = TargetOptions(
        address=node.dashboard_url, client_port=node.ports["client"], python=str(python), roundtrip=False
    )
    return run_check(options, environ=environ, cwd=cwd)


def _head_source(report):
    return next(r for r in report.results if r.id == "head.source")


# --------------------------------------------------------------------------
# the dashboard itself, as ray/dashboard/http_server_head.py answers


def _get(url: str, token: str | None) -> tuple[int, str]:
    headers = {"User-Agent": "raydoctor-test"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_dashboard_answers_401_403_and_public_paths(token_head):
    base = token_head.dashboard_url
    for path in ("/api/v0/cluster_metadata", "/api/version"):
        assert _get(base + path, None)[0] == 401
        assert _get(base + path, WRONG)[0] == 403
        assert _get(base + path, TOKEN)[0] == 200
    for path in ("/api/authentication_mode", "/api/gcs_healthz"):
        assert _get(base + path, None)[0] == 200
    assert json.loads(_get(base + "/api/authentication_mode", None)[1]) == {"authentication_mode": "token"}


def test_dashboard_client_classifies_401_and_403(token_head):
    address = parse_address(token_head.dashboard_url)
    bare = DashboardClient(address, timeout=5)
    with pytest.raises(DashboardError) as info:
        bare.cluster_versions()
    assert info.value.kind == "unauthorized" and info.value.status == 401
    assert TOKEN_PLACES in info.value.message
    assert bare.auth_mode() == "token" and bare.healthz() == "success"  # public paths need no token
    wrong = DashboardClient(address, timeout=5, token=Token(WRONG, "RAY_AUTH_TOKEN"))
    with pytest.raises(DashboardError) as info:
        wrong.cluster_versions()
    assert info.value.kind == "forbidden" and info.value.status == 403
    assert "RAY_AUTH_TOKEN" in info.value.message and WRONG not in info.value.message
    good = DashboardClient(address, timeout=5, token=Token(TOKEN, "RAY_AUTH_TOKEN"))
    versions = good.cluster_versions()
    assert versions.ray == TOKEN_RAY and versions.endpoint == "/api/v0/cluster_metadata"
    assert versions.python and versions.python.count(".") == 2


# --------------------------------------------------------------------------
# check


def test_with_the_token_check_reads_the_head(token_head, token_python, env, tmp_path):
    report = _check(token_head, {**env, "RAY_AUTH_TOKEN": TOKEN}, token_python, tmp_path)
    source = _head_source(report)
    assert source.status is Status.OK, source
    assert report.head["ray"]["value"] == TOKEN_RAY
    assert report.head["python"]["source"].startswith("running cluster")
    assert report.head["auth_mode"] == "token" and "auth token" in source.summary


def test_token_from_the_default_file(token_head, token_python, env, tmp_path):
    home = Path(env["HOME"])
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(TOKEN + "\n")
    assert _head_source(_check(token_head, env, token_python, tmp_path)).status is Status.OK


def test_without_a_token_the_finding_says_where_to_put_one(token_head, token_python, env, tmp_path):
    report = _check(token_head, env, token_python, tmp_path)
    source = _head_source(report)
    assert source.status is Status.FAIL and source.data["kind"] == "unauthorized"
    assert "requires a Ray auth token" in source.summary and TOKEN_PLACES in source.summary
    assert "RAY_AUTH_TOKEN" in source.remediation.text
    assert report.exit_code == 1


def test_with_a_wrong_token_the_finding_says_forbidden(token_head, token_python, env, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(WRONG)
    report = _check(token_head, {**env, "RAY_AUTH_TOKEN_PATH": str(token_file)}, token_python, tmp_path)
    source = _head_source(report)
    assert source.status is Status.FAIL and source.data["kind"] == "forbidden"
    assert "rejected the auth token (from RAY_AUTH_TOKEN_PATH)" in source.summary
    assert WRONG not in json.dumps(report.to_dict())


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--no-roundtrip"],
        ["check", "--no-roundtrip", "--json"],
        ["check", "--no-roundtrip", "-v"],
        ["report", "--no-roundtrip"],
        ["report", "--no-roundtrip", "-v", "--redact"],
        ["report", "--no-roundtrip", "--json"],
    ],
    ids=["text", "json", "verbose", "report", "report-verbose-redact", "report-json"],
)
@pytest.mark.parametrize("token", [TOKEN, WRONG], ids=["right", "wrong"])
def test_the_token_never_appears_in_any_output(token_head, token_python, env, tmp_path, args, token):
    proc = subprocess.run(
        [sys.executable, "-m", "doctor", *args, "--address", token_head.dashboard_url, "--python", str(token_python)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**env, "RAY_AUTH_TOKEN": token},
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.stdout.strip(), proc.stderr
    assert token not in out
    assert token[4:] not in out  # not even without its prefix
    if "--json" in args:
        doc = json.loads(proc.stdout)
        head = next(r for r in doc["results"] if r["id"] == "head.source")
        assert head["status"] == ("ok" if token == TOKEN else "fail")
