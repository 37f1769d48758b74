"""Ray's version rules (REFERENCE §1), judged without Ray."""

import pytest

from doctor.model import Status
from doctor.rules import judge_python, judge_ray, python_level, python_parts


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
