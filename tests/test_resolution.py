"""packages.resolution: the project's pins resolved by the real uv for the head's Python.

Index: uv here reaches PyPI directly (pip's configured extra indexes are local folders that uv does
not read), so these tests ask the real PyPI through the real uv, with uv's own cache in its usual
place (a warm resolution takes about a second). The one offline case points uv at a closed port and
at a port that never answers. raydoctor's resolution cache goes to tmp_path (``RAYDOCTOR_RESOLUTION_CACHE``).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest

from doctor.errors import FixError
from doctor.facts.resolution import (
    CACHE_ENV,
    NO_WHEEL,
    REQUIRES_PYTHON,
    Resolution,
    Unmet,
    platform_of,
    read_cache,
    resolve,
)
from doctor.fix.install import find_uv
from doctor.local.requirements import load_requirements
from tests.fake_servers import closed_port

UV = find_uv()
pytestmark = pytest.mark.needs(uv=True)  # raydoctor depends on uv: missing, CI fails


def _reqs(tmp_path: Path, text: str, name: str = "packages.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_requirements(path)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_INDEX")}
    env[CACHE_ENV] = str(tmp_path / "cache")
    env.update(extra)
    return env


def counting_uv(tmp_path: Path) -> tuple[Path, Path]:
    """A uv that counts its starts in a file, then is the real uv."""
    counter = tmp_path / "uv-calls"
    script = tmp_path / "uv"
    script.write_text(f'#!/bin/sh\necho x >> "{counter}"\nexec "{UV}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, counter


def calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_numpy_1_24_for_python_3_12_is_unmet_with_the_nearest_release_named(tmp_path):
    reqs = _reqs(tmp_path, "numpy==1.24.4\nrequests\n")
    res = resolve(reqs, python="3.12.9", ray="2.49.2", uv=UV, environ=_env(tmp_path))
    assert res.skipped is None, res.skipped
    [unmet] = res.failing
    assert unmet.requirement == "numpy==1.24.4" and unmet.reason == NO_WHEEL
    assert "no wheel for Python 3.12.9" in unmet.why
    # the lowest numpy at or above the pin with a cp312 manylinux wheel
    assert unmet.nearest == "1.26.0"
    assert unmet.change() == "numpy==1.26.0"


def test_two_unmet_pins_are_both_named(tmp_path):
    reqs = _reqs(tmp_path, "numpy==1.24.4\npandas==1.3.5\n")
    res = resolve(reqs, python="3.12", ray=None, uv=UV, environ=_env(tmp_path))
    assert {u.name for u in res.failing} == {"numpy", "pandas"}
    assert all(u.nearest for u in res.failing)


def test_requires_python_that_excludes_the_head(tmp_path):
    reqs = _reqs(tmp_path, "numpy==2.3.0\n")  # Requires-Python >=3.11
    res = resolve(reqs, python="3.10", ray=None, uv=UV, environ=_env(tmp_path))
    [unmet] = res.failing
    assert unmet.reason == REQUIRES_PYTHON
    assert ">=3.11" in unmet.why and "3.10" in unmet.why


def test_a_fine_file_resolves_with_ray_pinned_to_the_head(tmp_path):
    reqs = _reqs(tmp_path, "numpy>=1.26\nrequests\n-e ./local-package\n")
    res = resolve(reqs, python="3.12.9", ray="2.49.2", uv=UV, environ=_env(tmp_path))
    assert res.skipped is None and not res.unmet
    assert "ray==2.49.2" in res.resolved and any(p.startswith("numpy==") for p in res.resolved)
    assert any("local-package" in item for item in res.left_out)  # never built from the checkout


def test_second_run_is_served_from_the_cache_without_starting_uv(tmp_path):
    uv, counter = counting_uv(tmp_path)
    reqs = _reqs(tmp_path, "requests\n")
    env = _env(tmp_path)
    first = resolve(reqs, python="3.12.9", ray=None, uv=uv, environ=env)
    assert first.skipped is None and not first.cached
    started = calls(counter)
    assert started == first.uv_calls >= 1
    second = resolve(reqs, python="3.12.9", ray=None, uv=uv, environ=env)
    assert second.cached and second.uv_calls == 0
    assert calls(counter) == started  # no uv process at all
    assert second.resolved == first.resolved
    # another Python is another entry
    resolve(reqs, python="3.11", ray=None, uv=uv, environ=env)
    assert calls(counter) > started


def test_cache_entries_expire_and_a_corrupt_entry_is_ignored(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "k.json").write_text("{not json")
    assert read_cache(folder, "k") is None
    (folder / "k.json").write_text('{"python": "3.12", "platform": "x86_64", "ray": null}')
    assert read_cache(folder, "k") == Resolution("3.12", "x86_64", None)
    assert read_cache(folder, "k", now=time.time() + 2 * 86400) is None


def test_closed_index_is_skipped_with_the_reason(tmp_path):
    reqs = _reqs(tmp_path, "numpy==1.24.4\n")
    env = _env(tmp_path, UV_INDEX_URL=f"http://127.0.0.1:{closed_port()}/simple/", UV_NO_CACHE="1")
    started = time.monotonic()
    res = resolve(reqs, python="3.12.9", ray=None, uv=UV, environ=env, budget_s=15)
    assert time.monotonic() - started < 15
    assert res.skipped and "no package index answered" in res.skipped
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.json"))  # never cached


def test_silent_index_is_skipped_within_the_budget(tmp_path, silent_index):
    url, contacted = silent_index
    reqs = _reqs(tmp_path, "numpy\n")
    env = _env(tmp_path, UV_INDEX_URL=url, UV_NO_CACHE="1", UV_HTTP_TIMEOUT="60")
    started = time.monotonic()
    res = resolve(reqs, python="3.12.9", ray=None, uv=UV, environ=env, budget_s=4)
    elapsed = time.monotonic() - started
    assert elapsed < 12, elapsed
    assert res.skipped and "did not answer" in res.skipped
    assert contacted.is_set()  # uv really asked that index


def test_no_uv_is_a_skip(tmp_path):
    res = resolve(_reqs(tmp_path, "numpy\n"), python="3.12", ray=None, uv=None, environ=_env(tmp_path))
    assert res.skipped and "uv" in res.skipped


def test_platform_from_the_image_tag():
    assert platform_of("rayproject/ray:2.49.2-py312-aarch64")[0] == "aarch64"
    assert platform_of("rayproject/ray:2.49.2-py312-cpu")[0] == "x86_64"
    assert platform_of(None)[0] == "x86_64"


def test_check_reports_the_unmet_pin_for_the_images_python(tmp_path):
    from doctor.app import run_check
    from doctor.options import TargetOptions

    (tmp_path / "packages.txt").write_text("numpy==1.24.4\n")
    options = TargetOptions(
        image="rayproject/ray:2.49.2-py312-cpu", requirements=tmp_path / "packages.txt", roundtrip=False
    )
    report = run_check(options, environ=_env(tmp_path, PATH="/usr/bin:/bin"), cwd=tmp_path)
    [res] = [r for r in report.results if r.id == "packages.resolution"]
    assert res.code == "packages.resolution.unsatisfiable", res.summary
    assert "numpy==1.24.4" in res.summary and "1.26.0" in res.summary
    assert res.remediation is not None and "numpy==1.24.4 → numpy==1.26.0" in res.remediation.text


def _sdist_only(folder: Path, name: str = "raydoctor-sdist-only-demo", version: str = "1.0") -> Path:
    """A package with one release and no wheel at all: an sdist (static PKG-INFO) in a find-links folder."""
    folder.mkdir()
    base = f"{name.replace('-', '_')}-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\nRequires-Python: >=3.8\n",
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
        ),
    }
    with tarfile.open(folder / f"{base}.tar.gz", "w:gz") as tar:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder


def test_a_pin_with_only_a_source_release_is_a_warning_that_says_it_builds(tmp_path):
    """uv's own find-links setting (the user's, so trusted) adds a package with no wheel at any release."""
    from doctor.app import run_check
    from doctor.facts.resolution import SOURCE_ONLY
    from doctor.model import Status
    from doctor.options import TargetOptions

    links = _sdist_only(tmp_path / "links")
    (tmp_path / "packages.txt").write_text("raydoctor-sdist-only-demo==1.0\nsix\n")
    options = TargetOptions(
        image="rayproject/ray:2.49.2-py312-cpu", requirements=tmp_path / "packages.txt", roundtrip=False
    )
    env = _env(tmp_path, PATH="/usr/bin:/bin", UV_FIND_LINKS=str(links))
    report = run_check(options, environ=env, cwd=tmp_path)
    [res] = [r for r in report.results if r.id == "packages.resolution"]
    assert res.status is Status.WARN and res.code == "packages.resolution.source_only", res.summary
    assert "raydoctor-sdist-only-demo==1.0" in res.summary and "building from source" in res.summary
    assert "six" not in res.summary  # six has wheels: only the source-only pin is named
    [unmet] = read_cache(tmp_path / "cache", next(p.stem for p in (tmp_path / "cache").iterdir())).unmet
    assert unmet.reason == SOURCE_ONLY and unmet.nearest is None


def test_fix_refuses_a_build_the_resolution_says_will_fail(tmp_path):
    from doctor.fix.plan import Checked, FixOptions, make_plan
    from doctor.head.facts import HeadFacts
    from doctor.model import Fact, Status, finding
    from doctor.options import TargetOptions

    (tmp_path / "packages.txt").write_text("numpy==1.24.4\n")
    unmet = Unmet("numpy==1.24.4", "numpy", NO_WHEEL, "no wheel for Python 3.12.9", "1.26.0")
    res = Resolution("3.12.9", "x86_64", "2.49.2", unmet=(unmet,))
    found = finding(Status.FAIL, "…", code="packages.resolution.unsatisfiable")
    found.id = "packages.resolution"
    checked = Checked(
        HeadFacts(ray=Fact("2.49.2", "dashboard"), python=Fact("3.12.9", "dashboard")),
        findings=(found,),
        resolution=res,
    )
    options = FixOptions(TargetOptions(requirements=Path("packages.txt")), search_dirs=[tmp_path / "none"])
    with pytest.raises(FixError) as err:
        make_plan(options, checked, environ={}, cwd=tmp_path)
    assert "packages.txt cannot be installed for Python 3.12.9: change numpy==1.24.4 → numpy==1.26.0" in str(err.value)
    assert not (tmp_path / "envs").exists()


def test_a_package_uvs_index_does_not_know_is_a_warning_and_the_files_index_is_not_followed(tmp_path):
    from doctor.facts.resolution import NOT_FOUND

    port = closed_port()
    reqs = _reqs(tmp_path, f"--index-url http://127.0.0.1:{port}/simple/\nraydoctor-no-such-package-zz9\nsix\n")
    res = resolve(reqs, python="3.12.9", ray=None, uv=UV, environ=_env(tmp_path))
    assert res.skipped is None  # the closed index named by the file was never asked
    assert any(f"127.0.0.1:{port}" in item for item in res.left_out)
    [unmet] = res.unmet
    assert unmet.reason == NOT_FOUND and not unmet.fails and "UV_INDEX_URL" in unmet.why
