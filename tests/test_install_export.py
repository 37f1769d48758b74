"""The installer and --export sides, with fake pip/uv executables: no network, no real venv.

Each fake is a tiny shell script that reports what it was given (its environment, its
arguments) so the tests see what the real tool would have seen.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from doctor.errors import FixError
from doctor.fix.export import environment_yml, export_env, freeze_lines, frozen_packages, write_export
from doctor.fix.install import InstallError, PipInstaller, UvInstaller, ray_constraint

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fakes are POSIX shell scripts")

TOKEN = "tok-do-not-leak-5f3a"


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "auth_token"
    token_file.write_text(TOKEN)
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))


def test_uv_and_pip_do_not_see_the_ray_token(tmp_path: Path, token_env: None) -> None:
    """Issue 13 item 8: the installers ran with a copy of os.environ, token included."""
    printenv = 'echo "ARGS $*"; env\n'
    uv = script(tmp_path / "uv", printenv)
    python = script(tmp_path / "python", printenv)
    req = tmp_path / "requirements.txt"
    req.write_text("six\n")
    for installer, exe in ((UvInstaller(uv=uv), tmp_path / "venv-python"), (PipInstaller(), python)):
        lines: list[str] = []
        installer.install(exe, [req], ["ray==2.49.2"], ["ray[client]==2.49.2"], verbose=True, on_output=lines.append)
        text = "\n".join(lines)
        assert "ARGS" in text and "PIP_NO_INPUT=1" in text  # the fake ran with raydoctor's tool env ...
        assert TOKEN not in text and "RAY_AUTH_TOKEN" not in text  # ... less the token


def test_install_timeout_interrupts_first_then_reports(tmp_path: Path) -> None:
    """SIGINT first so pip and uv remove their temp files (the old timeout path sent SIGTERM first)."""
    cleaned = tmp_path / "cleaned"
    uv = script(
        tmp_path / "uv",
        f"trap 'echo int > {cleaned}; exit 130' INT\ntrap 'echo term > {cleaned}; exit 143' TERM\n"
        "echo started\nwhile :; do sleep 0.1; done\n",
    )
    started = time.monotonic()
    with pytest.raises(InstallError, match="uv install timed out after 1 s") as info:
        UvInstaller(uv=uv).install(tmp_path / "python", [], [], ["six"], verbose=False, timeout=1)
    assert time.monotonic() - started < 10
    assert cleaned.read_text().strip() == "int"
    assert "\n" not in info.value.message


def test_install_failure_names_the_package_without_credentials(tmp_path: Path) -> None:
    uv = script(
        tmp_path / "uv",
        "echo 'error: Failed to fetch: https://u:leaky-pw@idx.invalid/simple/nopkg/'\n"
        "echo '  Caused by: error sending request for url (https://u:leaky-pw@idx.invalid/simple/nopkg/)'\n"
        "exit 2\n",
    )
    with pytest.raises(InstallError) as info:
        UvInstaller(uv=uv).install(tmp_path / "python", [], [], ["nopkg"], verbose=False)
    err = info.value
    assert err.package == "nopkg" and "network error" in err.message
    assert "leaky-pw" not in err.message + "".join(err.details)


def test_installers_get_hash_pinned_files_and_ray_is_overridden(tmp_path: Path) -> None:
    """The second parser is gone: fix reads the hash-pinned file with check's parser, nested files too."""
    (tmp_path / "base.txt").write_text("ray[default]==2.40.0 \\\n    --hash=sha256:aaa\n")
    req = tmp_path / "requirements.txt"
    req.write_text("-r base.txt\nsix==1.16.0 \\\n    --hash=sha256:bbb\n    # via x\n--find-links ./wheels\n")
    (tmp_path / "wheels").mkdir()
    constraints, warnings = ray_constraint([req], "2.49.2")
    assert constraints == ["ray==2.49.2"]
    assert warnings == [
        f"{tmp_path / 'base.txt'} pins ray[default]==2.40.0 (its --hash values are for that version); "
        "the cluster runs 2.49.2: overriding with a constraint (the file is not edited)"
    ]
    # the fake pip prints its arguments and the files it gets with -r (they are gone once install returns)
    python = script(
        tmp_path / "python",
        'prev=""; for a in "$@"; do echo "ARG $a"; if [ "$prev" = "-r" ]; then cat "$a"; fi; prev="$a"; done\n',
    )
    lines: list[str] = []
    PipInstaller().install(python, [req], constraints, [], verbose=True, on_output=lines.append)
    args = [ln[4:] for ln in lines if ln.startswith("ARG ")]
    copy = Path(args[args.index("-r") + 1])
    assert copy.parent != req.parent  # a copy: the file itself is never edited
    assert ["six==1.16.0", "--hash=sha256:bbb"] in [ln.split() for ln in lines]  # hashes kept with their pin
    assert f"--find-links {(tmp_path / 'wheels').absolute()}" in lines  # relative to the file, as pip reads it
    nested = [ln for ln in lines if ln.startswith("-r ")]
    assert len(nested) == 1 and "base.txt" in nested[0] and str(tmp_path / "base.txt") not in nested[0]
    uv = script(
        tmp_path / "uv", 'for a in "$@"; do echo "ARG $a"; done\ncat "$(echo "$@" | sed "s/.*--override //")"\n'
    )
    lines = []
    UvInstaller(uv=uv).install(tmp_path / "py", [req], constraints, [], verbose=True, on_output=lines.append)
    assert "ray[default]==2.49.2" in lines and f"ARG {req}" in lines


# -- export ------------------------------------------------------------------------------------


def test_export_partial_file_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    """Issue 13 item 6: the partial file had a predictable name (.NAME.raydoctor-PID) and was opened by name."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    target = tmp_path / "out" / "environment.yml"
    target.parent.mkdir()
    planted = target.parent / f".{target.name}.raydoctor-{os.getpid()}"
    planted.symlink_to(victim)
    assert write_export(target, "name: x\n", force=False) == "written"
    assert victim.read_text() == "precious\n" and target.read_text() == "name: x\n"
    assert not target.is_symlink()
    leftovers = sorted(p.name for p in target.parent.iterdir())
    assert leftovers == [planted.name, target.name]  # no partial of ours left behind
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_export_failure_leaves_no_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "environment.yml"

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(FixError, match="could not write .*No space left on device"):
        write_export(target, "name: x\n", force=False)
    assert list(tmp_path.iterdir()) == []


FREEZE = """\
# Editable install with no version control (mine==0.1)
-e /src/mine
six==1.16.0
private-pkg @ https://erin:frz-pw@files.example.invalid/private_pkg-1.0-py3-none-any.whl
local-pkg @ file:///tmp/local_pkg-1.0-py3-none-any.whl
"""


def test_freeze_is_read_by_the_parser_and_credentials_are_not_written(tmp_path: Path, token_env: None) -> None:
    python = script(
        tmp_path / "python",
        f'if [ -n "$RAY_AUTH_TOKEN$RAY_AUTH_TOKEN_PATH" ]; then echo "leaked==1"; fi\ncat <<"EOF"\n{FREEZE}EOF\n',
    )
    packages = frozen_packages(python)
    assert packages == [
        "six==1.16.0",
        "private-pkg @ https://erin:***@files.example.invalid/private_pkg-1.0-py3-none-any.whl",
        "local-pkg @ file:///tmp/local_pkg-1.0-py3-none-any.whl",
    ]
    state, listed = export_env(python, tmp_path / "environment.yml", name="e", python_version="3.12.9", force=False)
    text = (tmp_path / "environment.yml").read_text()
    assert state == "written" and listed == packages
    assert "frz-pw" not in text and "credentials are written as ***" in text


def test_freeze_lines_keep_what_pip_can_read() -> None:
    assert freeze_lines("six==1.16.0\nweird line ((\n# comment\n--pre\n") == ["six==1.16.0", "weird line (("]
    assert "python=3.12.9" in environment_yml("e", "3.12.9", ["six==1.16.0"])


def test_freeze_failure_is_a_fix_error(tmp_path: Path) -> None:
    python = script(tmp_path / "python", "echo 'no pip here' >&2\nexit 1\n")
    with pytest.raises(FixError, match="pip freeze in .* failed \\(exit 1\\): no pip here"):
        frozen_packages(python)
    with pytest.raises(FixError, match="could not list the env's packages"):
        frozen_packages(tmp_path / "missing-python")
