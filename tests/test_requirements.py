"""packages.txt and environment.yml: what check judges the local env against."""

from __future__ import annotations

from pathlib import Path

import pytest

from doctor.errors import UsageError
from doctor.local.requirements import load_requirements

REPO = Path(__file__).resolve().parent.parent


def test_shipped_files_agree():
    pip = load_requirements(REPO / "packages.txt")
    conda = load_requirements(REPO / "environment.yml")
    assert [str(r) for r in pip.requirements] == [str(r) for r in conda.requirements]
    assert str(pip.find("ray")) == "ray[default]==2.49.2"
    assert conda.python == "3.12.9"


def test_includes_comments_options_and_markers(tmp_path):
    (tmp_path / "base.txt").write_text("requests>=2  # http\n")
    (tmp_path / "constraints.txt").write_text("numpy<2\n")  # pip reads it (a missing one is an error)
    (tmp_path / "reqs.txt").write_text(
        "# comment\n"
        "--index-url https://example.invalid/simple\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "numpy==1.26.4 ; python_version >= '3.9'\n"
        "ray[default,client]==2.49.2\n"
        "-r base.txt\n"  # included twice: read once
    )
    reqs = load_requirements(tmp_path / "reqs.txt")
    assert [r.name for r in reqs.requirements] == ["requests", "numpy", "ray"]
    assert reqs.find("RAY").extras == {"default", "client"}
    assert any("--index-url" in n for n in reqs.notes) and any("constraints" in n for n in reqs.notes)


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("bad.txt", "ray[default==2.49.2\n", "bad.txt:1"),
        ("bad.yml", "dependencies: [python=3.12, {pip: [ok]}, 42]\n", "neither a string"),
        ("bad.yml", "dependencies: {python: 3}\n", "dependencies"),
        ("bad.yml", "dependencies: [\n", "invalid YAML"),
        ("missing.txt", None, "does not exist"),
        ("nested.txt", "-r missing-include.txt\n", "missing-include.txt"),
    ],
)
def test_bad_files_are_one_line_usage_errors(tmp_path, name, text, words):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_requirements(path)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_binary_file(tmp_path):
    path = tmp_path / "reqs.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UsageError, match="cannot be read"):
        load_requirements(path)
