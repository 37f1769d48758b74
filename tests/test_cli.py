"""The command line: version, module entry, help that documents every option."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from doctor import __version__
from doctor.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"raydoctor {__version__}"


def test_python_dash_m_doctor():
    proc = subprocess.run([sys.executable, "-m", "doctor", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == f"raydoctor {__version__}"


def test_check_help_documents_every_option(capsys):
    try:
        main(["check", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    options = [
        "--address",
        "--client-port",
        "--gcs-port",
        "--compose",
        "--image",
        "--python",
        "--requirements",
        "--mode",
        "--json",
        "--verbose",
        "--timeout",
        "--deep",
        "--no-roundtrip",
    ]
    for option in options:
        # each option appears with a help text after it (not just in the usage line)
        assert re.search(rf"^\s+(-\w, )?{option}\b.*\S", out, re.M), option
    assert "exit codes" in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "check" in capsys.readouterr().out


def test_unknown_command_is_one_line(capsys):
    assert main(["chekc"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "chekc" in err


def test_image_target_offline(capsys, tmp_path, monkeypatch, clean_env):
    """--image judges a tag without any cluster; JSON says where each fact came from."""
    monkeypatch.chdir(tmp_path)
    code = main(["check", "--json", "--image", "rayproject/ray:2.49.2.7b0af3-py312-cu128", "--python", sys.executable])
    doc = json.loads(capsys.readouterr().out)
    assert doc["target"]["kind"] == "image"
    assert doc["head"]["ray"]["value"] == "2.49.2" and doc["head"]["ray"]["source"].startswith("image tag")
    assert doc["head"]["python"] == {
        "value": "3.12.9",
        "source": "table of known builds of 2.49.2.7b0af3-py312-cu128",
        "exact": False,
    }
    assert doc["head"]["cuda"] == "12.8.1"
    assert code == doc["exit_code"]


def test_latest_tag_says_unknown_and_how_to_find_out(capsys, tmp_path, monkeypatch, clean_env):
    monkeypatch.chdir(tmp_path)
    main(["check", "--json", "--image", "rayproject/ray:latest", "--python", sys.executable])
    doc = json.loads(capsys.readouterr().out)
    head = next(r for r in doc["results"] if r["id"] == "head.source")
    assert head["status"] == "warn" and "unknown" in head["summary"]
    assert "--address" in head["remediation"]["text"]
    versions = [r for r in doc["results"] if r["id"].startswith("versions.")]
    assert versions and all(r["status"] == "skip" for r in versions)


def test_default_target_is_the_shipped_compose_file(capsys, tmp_path, monkeypatch, clean_env):
    monkeypatch.chdir(tmp_path)  # no compose/ here: falls back to the one beside the package
    main(["check", "--json", "--no-roundtrip"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["target"]["kind"] == "compose"
    assert doc["target"]["compose"].endswith("compose/cpu-ray-cluster.yaml")
    assert doc["target"]["image_from"] == "compose service ray-head"
    assert doc["target"]["address"]["dashboard"] == "http://127.0.0.1:8265"


def test_compose_interpolation_reaches_the_target(capsys, tmp_path, monkeypatch, clean_env):
    (tmp_path / ".env").write_text("RAY_IMAGE=rayproject/ray:2.40.0-py311-cpu\nDASH=18265\n")
    (tmp_path / "c.yaml").write_text(
        "services:\n"
        "  head:\n"
        "    image: ${RAY_IMAGE:?set RAY_IMAGE}\n"
        "    command: [ray, start, --head, --dashboard-host=0.0.0.0, --block]\n"
        "    ports: ['127.0.0.1:${DASH:-8265}:8265']\n"
    )
    monkeypatch.chdir(tmp_path)
    main(["check", "--json", "--no-roundtrip", "--compose", "c.yaml", "--python", sys.executable])
    doc = json.loads(capsys.readouterr().out)
    assert doc["head"]["ray"]["value"] == "2.40.0" and doc["head"]["python"]["value"] == "3.11"
    assert doc["target"]["address"]["dashboard"] == "http://127.0.0.1:18265"
