"""Ray's compatibility rules, in one place, each with where Ray enforces it.

| connection            | Ray      | Python              | where in Ray                                              |
|-----------------------|----------|---------------------|-----------------------------------------------------------|
| Ray Client (ray://)   | equal    | major.minor equal   | ray/util/client/__init__.py::_check_versions →            |
|                       |          | (patch only warns)  | _private/utils.py::check_version_info(level="minor")       |
| driver/worker joining | equal    | major.minor.patch   | _private/node.py::Node.check_version_info (default        |
| the GCS               |          | (Ray ≥ 2.51: minor  | "patch"; RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=minor)      |
|                       |          | if the env says so) |                                                           |

``RAY_IGNORE_VERSION_MISMATCH`` (present, any value) turns the Ray Client
error into a warning and does nothing for drivers and workers. Before Ray
2.10 the client compared a protocol date, not the Ray version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from packaging.version import Version

from doctor.model import Status
from doctor.versions import VersionSpec, release, release_equal

CLIENT_SOURCE = "ray/util/client/__init__.py::_check_versions (python_version_match_level='minor')"
DRIVER_SOURCE = "ray/_private/node.py::Node.check_version_info (python_version_match_level='patch')"
IGNORE_ENV = "RAY_IGNORE_VERSION_MISMATCH"
MATCH_LEVEL_ENV = "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL"


@dataclass(frozen=True)
class Verdict:
    """Ray's verdict: a status, a sentence, why, and a stable ``cause`` (the tail of a finding's code)."""

    status: Status
    summary: str
    details: tuple[str, ...] = ()
    cause: str = ""


def python_level(mode: str, ray_version: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """How much of Python must match, and where Ray says so."""
    if mode == "client":
        return "minor", CLIENT_SOURCE
    ray = release(ray_version)
    if ray is not None and ray >= Version("2.51") and environ.get(MATCH_LEVEL_ENV, "").lower() == "minor":
        return "minor", f"{DRIVER_SOURCE}, relaxed by {MATCH_LEVEL_ENV}=minor"
    return "patch", DRIVER_SOURCE


def judge_ray(head: str, local: str | None, mode: str, environ: Mapping[str, str]) -> Verdict:
    """Ray must be equal for Ray Client and for drivers/workers."""
    if local is None:
        return Verdict(Status.FAIL, f"Ray is not installed locally; the cluster runs Ray {head}", cause="not_installed")
    head_v = release(head)
    if release_equal(head, local):
        return Verdict(Status.OK, f"Ray {local} locally = Ray {head} on the head", cause="match")
    summary = f"Ray {local} locally ≠ Ray {head} on the head"
    why = "Ray requires the same Ray version on both sides: " + (CLIENT_SOURCE if mode == "client" else DRIVER_SOURCE)
    if mode == "client" and IGNORE_ENV in environ:
        return Verdict(
            Status.WARN,
            summary + f" ({IGNORE_ENV} is set, so Ray only warns)",
            (
                why,
                "Ignoring the mismatch lets the connection start; objects pickled by different Ray versions still break.",
            ),
            cause="mismatch_ignored",
        )
    old = head_v is not None and head_v < Version("2.10") and mode == "client"
    details = [why]
    if old:
        details.append(
            "Before Ray 2.10 the client compared a protocol date; equal Ray versions are the only safe choice."
        )
    return Verdict(Status.FAIL, summary, tuple(details), cause="mismatch")


GUESSED_PATCH = "a guess from the table of known image builds"


def judge_python(
    head: str | VersionSpec,
    head_exact: bool,
    local: str | VersionSpec,
    mode: str,
    ray_version: str | None,
    environ: Mapping[str, str],
) -> Verdict:
    """Judge Python by the connection's match level; say why a patch difference matters.

    ``head_exact`` is False when the head's patch is a guess (a table of known image builds).
    """
    level, source = python_level(mode, ray_version, environ)
    want = head if isinstance(head, VersionSpec) else VersionSpec.read(head)
    have = local if isinstance(local, VersionSpec) else VersionSpec.read(local)
    # A patch from the table of known image builds is a guess, and says so wherever it is shown.
    guessed = not head_exact and want is not None and want.exact
    guess = f" ({GUESSED_PATCH})" if guessed else ""
    if want is None or have is None or not want.same_minor(have):
        why = f"major.minor must match; {head} is {GUESSED_PATCH}" if guessed else "major.minor must match"
        summary = f"Python {local} locally ≠ Python {head} on the head ({why})"
        if mode == "client" and IGNORE_ENV in environ:
            return Verdict(
                Status.WARN,
                summary + f" ({IGNORE_ENV} is set, so Ray only warns)",
                (source,),
                cause="minor_mismatch_ignored",
            )
        return Verdict(Status.FAIL, summary, (f"Ray enforces it in {source}",), cause="minor_mismatch")
    if not want.exact:
        note = f"the head's Python patch is unknown (only {head} is known)"
        if level == "patch":
            return Verdict(
                Status.WARN,
                f"Python {local} locally, {head}.x on the head: {note}",
                (
                    f"A driver or worker joining the cluster needs the exact patch ({source}).",
                    "Point raydoctor at the running cluster (--address) or at a local image (Docker) to learn it.",
                ),
                cause="patch_unknown",
            )
        return Verdict(
            Status.OK,
            f"Python {local} locally, {head}.x on the head (minor matches; {note})",
            (source,),
            cause="minor_match",
        )
    if want.satisfies(have):
        return Verdict(
            Status.OK, f"Python {local} locally = Python {head} on the head{guess}", (source,), cause="match"
        )
    summary = f"Python {local} locally, Python {head} on the head{guess}: the patch differs"
    if level == "minor":
        return Verdict(
            Status.WARN,
            summary,
            (
                f"Ray Client accepts a patch difference ({source}),",
                f"but a driver or worker that joins the cluster (ray.init('host:6379'), ray start --address) needs Python {head} exactly ({DRIVER_SOURCE}).",
                "Objects pickled by different patch releases can also differ in rare cases.",
            ),
            cause="patch_mismatch",
        )
    return Verdict(
        Status.FAIL,
        summary + " (drivers and workers need major.minor.patch equal)",
        (f"Ray enforces it in {source}",),
        cause="patch_mismatch",
    )
