"""Ray's version rules (doctor/rules.py, after ray/util/client/__init__.py::_check_versions and
ray/_private/node.py::Node.check_version_info), the one version type, judged without Ray; and the
basics checks' stable codes and remedies, judged on hand-made facts."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from doctor import remedies
from doctor.checks import basics
from doctor.head.facts import HeadFacts
from doctor.local.interpreter import InterpreterError, LocalFacts
from doctor.local.requirements import Requirements
from doctor.model import Fact, Status
from doctor.options import TargetOptions
from doctor.rules import judge_python, judge_ray, python_level
from doctor.target import HeadAddress
from doctor.versions import VersionSpec, release_equal
from doctor.versions import parts as python_parts

FAKE_CONDA = Path(__file__).parent / "fake_conda" / "conda"


@pytest.mark.parametrize(
    "head, head_exact, local, mode, env, status",
    [
        ("3.12.9", True, "3.12.9", "client", {}, Status.OK),
        ("3.12.9", True, "3.12.1", "client", {}, Status.WARN),  # client: patch only warns
        ("3.12.9", True, "3.12.1", "driver", {}, Status.FAIL),  # driver: patch must match
        ("3.12.9", True, "3.11.7", "client", {}, Status.FAIL),
        ("3.12.9", True, "3.11.7", "client", {"RAY_IGNORE_VERSION_MISMATCH": ""}, Status.WARN),
        ("3.12.9", True, "3.11.7", "driver", {"RAY_IGNORE_VERSION_MISMATCH": "1"}, Status.FAIL),
        ("3.12", False, "3.12.1", "client", {}, Status.OK),  # patch unknown: fine for the client
        ("3.12", False, "3.12.1", "driver", {}, Status.WARN),  # ...but cannot be confirmed for a driver
        ("3.12.9", False, "3.12.9", "driver", {}, Status.OK),
    ],
)
def test_judge_python(head, head_exact, local, mode, env, status):
    verdict = judge_python(head, head_exact, local, mode, "2.49.2", env)
    assert verdict.status is status
    assert local in verdict.summary and head in verdict.summary


def test_patch_warning_explains_why_it_matters():
    verdict = judge_python("3.12.9", True, "3.12.1", "client", "2.49.2", {})
    text = " ".join(verdict.details)
    assert "driver or worker" in text and "3.12.9" in text


def test_guessed_patch_is_labelled():
    verdict = judge_python("3.12.9", False, "3.12.9", "client", "2.49.2", {})
    assert "table of known image builds" in verdict.summary


def test_match_level_env_only_relaxes_new_ray_drivers():
    env = {"RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL": "minor"}
    assert python_level("driver", "2.51.0", env)[0] == "minor"
    assert python_level("driver", "2.49.2", env)[0] == "patch"
    assert python_level("driver", "2.51.0", {})[0] == "patch"
    assert python_level("client", "2.49.2", {})[0] == "minor"
    assert judge_python("3.12.9", True, "3.12.1", "driver", "2.52.0", env).status is Status.WARN


@pytest.mark.parametrize(
    "head, local, mode, env, status",
    [
        ("2.49.2", "2.49.2", "client", {}, Status.OK),
        ("2.49.2", "2.49.1", "client", {}, Status.FAIL),
        ("2.49.2", "2.49.1", "driver", {}, Status.FAIL),
        ("2.49.2", None, "client", {}, Status.FAIL),
        ("2.49.2", "2.48.0", "client", {"RAY_IGNORE_VERSION_MISMATCH": "0"}, Status.WARN),
        ("2.49.2", "2.48.0", "driver", {"RAY_IGNORE_VERSION_MISMATCH": "0"}, Status.FAIL),
        ("2.9.0", "2.8.0", "client", {}, Status.FAIL),
    ],
)
def test_judge_ray(head, local, mode, env, status):
    verdict = judge_ray(head, local, mode, env)
    assert verdict.status is status
    assert head in verdict.summary


def test_old_ray_client_note():
    verdict = judge_ray("2.9.0", "2.8.0", "client", {})
    assert any("protocol" in d for d in verdict.details)


@pytest.mark.parametrize(
    "text, parts",
    [("3.12.9", (3, 12, 9)), ("3.12", (3, 12)), ("3.12.9+", (3, 12, 9)), ("3.13.0rc1", (3, 13, 0)), ("x", ())],
)
def test_python_parts(text, parts):
    assert python_parts(text) == parts


# -- the one version type ----------------------------------------------------------------


def test_version_spec_exact_or_minor() -> None:
    exact, minor = VersionSpec.parse("3.12.9"), VersionSpec.parse("3.12")
    assert exact.exact and not minor.exact and str(exact) == "3.12.9" and str(minor) == "3.12"
    assert exact.minor == minor.minor == "3.12" and exact.at_minor() == minor
    assert exact.satisfies("3.12.9") and not exact.satisfies("3.12.1") and not exact.satisfies("3.11.9")
    assert minor.satisfies("3.12.1") and minor.satisfies("3.12.9+") and not minor.satisfies("3.13.0")
    assert not exact.satisfies("3.12") and not exact.satisfies(None) and not exact.satisfies("x")
    assert VersionSpec.read("3.13.0rc1") == VersionSpec(3, 13, 0) and VersionSpec.read("3") is None


@pytest.mark.parametrize("bad", ["3", "3.12.x", "python3.12", "", "3.12.9.1", "1" * 5000 + ".1"])
def test_version_spec_parse_is_strict(bad: str) -> None:
    with pytest.raises(ValueError):
        VersionSpec.parse(bad)


def test_ray_release_equality() -> None:
    assert release_equal("2.49.2", "2.49.2.0") and not release_equal("2.49.2", "2.49.1")
    assert not release_equal("2.49.2", None) and not release_equal("nonsense", "2.49.2")


def test_no_dot_counting_stands_in_for_a_version_type() -> None:
    """The seven ``want.count(".") == 2`` of old are gone: versions are VersionSpec everywhere."""
    root = Path(basics.__file__).resolve().parent.parent
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"""\.count\(["']\.["']\)""", line)
    ]
    assert offenders == []


# -- basics: stable codes and remedies, on hand-made facts --------------------------------


class Ctx:
    """The part of CheckContext the basics checks read."""

    def __init__(
        self,
        head: HeadFacts,
        local: LocalFacts | None,
        *,
        options: TargetOptions | None = None,
        environ: dict[str, str] | None = None,
        requirements: Requirements | None = None,
        kind: str = "address",
    ) -> None:
        self._head, self._local = head, local
        self.options = options or TargetOptions(address="10.0.0.5:8265")
        self.environ = {"PATH": ""} if environ is None else environ
        self.requirements = requirements
        address = HeadAddress("10.0.0.5", 8265, 10001, 6379, "http", "10.0.0.5:8265")
        self.target: Any = type("T", (), {"kind": kind, "address": address, "compose_path": None})()

    def head(self) -> HeadFacts:
        return self._head

    def local(self) -> LocalFacts:
        if self._local is None:
            raise InterpreterError("/nope/python: No such file or directory")
        return self._local

    def local_or_none(self) -> LocalFacts | None:
        return self._local


def head(ray: str | None = "2.49.2", python: str | None = "3.12.9") -> HeadFacts:
    src = "running cluster (http://10.0.0.5:8265/api/v0/cluster_metadata)"
    return HeadFacts(
        ray=Fact(ray, src) if ray else None, python=Fact(python, src) if python else None, live=bool(ray and python)
    )


def local(python: str = "3.12.9", ray: str | None = "2.49.2", exe: str = "/env/bin/python", **dists: str) -> LocalFacts:
    have = {**({"ray": ray} if ray else {}), **dists}
    return LocalFacts(exe, python, "CPython", "x86_64", "Linux", "/env", "/usr", "--python", have)


def commands(res: Any) -> list[str]:
    return list(res.remediation.commands) if res.remediation else []


@pytest.mark.parametrize(
    "python, mode, status, code",
    [
        ("3.12.9", "client", Status.OK, "versions.python.match"),
        ("3.11.7", "client", Status.FAIL, "versions.python.minor_mismatch"),
        ("3.12.1", "client", Status.WARN, "versions.python.patch_mismatch"),
        ("3.12.1", "driver", Status.FAIL, "versions.python.patch_mismatch"),
    ],
)
def test_python_findings_carry_stable_codes(python: str, mode: str, status: Status, code: str) -> None:
    res = basics.python_version(Ctx(head(), local(python), options=TargetOptions(address="h:8265", mode=mode)))
    assert res.status is status and res.code == code


def test_ray_and_interpreter_and_head_codes() -> None:
    assert basics.ray_version(Ctx(head(), local(ray="2.40.0"))).code == "versions.ray.mismatch"
    assert basics.ray_version(Ctx(head(), local(ray=None))).code == "versions.ray.not_installed"
    assert basics.ray_version(Ctx(head(), local())).code == "versions.ray.match"
    assert basics.ray_version(Ctx(head(ray=None), local())).code == "versions.ray.head_unknown"
    assert basics.local_interpreter(Ctx(head(), None)).code == "local.interpreter.unusable"
    dead = HeadFacts(live_error_kind="refused", live_error="http://10.0.0.5:8265: connection refused")
    res = basics.head_source(Ctx(dead, local(ray=None)))
    assert res.status is Status.FAIL and res.code == "head.source.unreachable" and res.data["kind"] == "refused"
    assert basics.head_source(Ctx(head(), local())).code == "head.source.live"
    grpc = basics.client_extras(Ctx(head(), local()))
    assert grpc.code == "packages.client_extras.missing"  # what fix's plan keys on (plan.CLIENT_EXTRAS_MISSING)


def test_conda_env_name_in_suggestions_is_fixs() -> None:
    """Issue 12: `conda create -n ray2.49.2-py3.12.9` was suggested; fix names it raydoctor-ray…-py…."""
    from doctor.fix.plan import conda_env_name

    cmd = shlex.split(remedies.conda_create("2.49.2", "3.12.9"))
    assert cmd[:4] == ["conda", "create", "-n", conda_env_name("2.49.2", "3.12.9")]
    assert cmd[3] == "raydoctor-ray2.49.2-py3.12.9"


# raydoctor names itself as it was started (remedies.self_command): here, without it on PATH.
FIX = remedies.raydoctor(["fix"], {"PATH": ""})


def test_conda_create_is_suggested_only_where_conda_exists(tmp_path: Path) -> None:
    bare = basics.python_version(Ctx(head(), local("3.11.7")))
    assert not [c for c in commands(bare) if "conda" in c]
    assert any(c.startswith(FIX) for c in commands(bare))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "conda").symlink_to(FAKE_CONDA)
    here = basics.python_version(Ctx(head(), local("3.11.7"), environ={"PATH": str(bindir)}))
    assert "conda create -n raydoctor-ray2.49.2-py3.12.9 python=3.12.9 --yes" in commands(here)
    outside = basics.python_version(Ctx(head(), local("3.11.7"), environ={"PATH": "", "CONDA_EXE": str(FAKE_CONDA)}))
    assert f"{FAKE_CONDA} create -n raydoctor-ray2.49.2-py3.12.9 python=3.12.9 --yes" in commands(outside)


def test_no_pip_into_an_interpreter_that_fails_the_python_rule() -> None:
    """Issue 12: `<global 3.11>/bin/python3 -m pip install 'ray[default]==2.49.2'` can never pass."""
    wrong = basics.ray_version(Ctx(head(), local("3.11.7", ray=None, exe="/usr/bin/python3")))
    assert not [c for c in commands(wrong) if "pip" in c]
    assert commands(wrong) == [f"{FIX} --address 10.0.0.5:8265"]
    right = basics.ray_version(Ctx(head(), local("3.12.9", ray="2.40.0")))
    assert "/env/bin/python -m pip install 'ray[default]==2.49.2'" in commands(right)
    extras = basics.client_extras(Ctx(head(), local("3.11.7", ray="2.49.2")))
    assert not [c for c in commands(extras) if "pip" in c] and commands(extras)[0].startswith(FIX)


def test_requirements_remedy_neither_pips_into_a_failing_interpreter_nor_fixes_an_unknown_head(tmp_path: Path) -> None:
    reqs = Requirements(tmp_path / "packages.txt", [Requirement("requests")])
    res = basics.requirement_pins(Ctx(head(), local("3.11.7"), requirements=reqs))
    assert res.status is Status.FAIL and not [c for c in commands(res) if "pip" in c]
    unknown = basics.requirement_pins(Ctx(head(None, None), local("3.11.7"), requirements=reqs))
    assert not [c for c in commands(unknown) if FIX in c]
    assert any("-m pip install -r" in c for c in commands(unknown))  # nothing says this Python is wrong


def test_dead_address_suggests_ray_status_only_with_the_envs_own_ray(tmp_path: Path) -> None:
    """Issue 12: `ray status` was suggested against a dead --address where no `ray` exists."""
    dead = HeadFacts(live_error_kind="refused", live_error="http://10.0.0.5:8265: connection refused")
    none = basics.head_source(Ctx(dead, local(ray=None)))
    assert not [c for c in commands(none) if "ray" in shlex.split(c)[0]]
    bindir = tmp_path / "env" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "ray").write_text("#!/bin/sh\n")
    os.chmod(bindir / "ray", 0o755)
    mine = basics.head_source(Ctx(dead, local(exe=str(bindir / "python"))))
    assert commands(mine) == [f"{bindir / 'ray'} status --address 10.0.0.5:6379"]


def test_no_raydoctor_fix_when_the_heads_versions_are_unknown() -> None:
    unknown = HeadFacts(ray=Fact("2.49.2", "image tag"), live_error_kind="refused", live_error="refused")
    res = basics.ray_version(Ctx(unknown, local(ray="2.40.0")))
    assert res.status is Status.FAIL and not [c for c in commands(res) if FIX in c]
    assert basics.fix_commands(Ctx(head(), local())) == (f"{FIX} --address 10.0.0.5:8265",)


def test_the_final_check_judges_a_ray_pin_fix_overrode(tmp_path: Path) -> None:
    """The override is an input of the check (TargetOptions.ray_override), not a rewrite of its result."""
    reqs = Requirements(tmp_path / "packages.txt", [Requirement("ray[default]==2.40.0"), Requirement("six")])
    env = local("3.12.9", "2.49.2", six="1.16.0")
    plain = basics.requirement_pins(Ctx(head(), env, requirements=reqs))
    assert plain.status is Status.FAIL  # check alone: the file's pin is not met
    told = TargetOptions(address="10.0.0.5:8265", ray_override="2.49.2")
    res = basics.requirement_pins(Ctx(head(), env, requirements=reqs, options=told))
    assert res.status is Status.WARN and res.code == "packages.requirements.ray_pin_overridden"
    assert "ray[default]==2.40.0" in res.summary and "fix installed Ray 2.49.2 anyway" in res.summary
    (edit,) = res.remediation.edits
    assert edit.path == str(reqs.path) and edit.value == "ray[default]==2.49.2"
    missing = Requirements(reqs.path, [*reqs.requirements, Requirement("numpy")])
    still = basics.requirement_pins(Ctx(head(), env, requirements=missing, options=told))
    assert still.status is Status.FAIL  # another problem: the override does not hide it
