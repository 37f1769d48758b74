"""What a ``rayproject/ray`` image tag says about Ray, Python and CUDA.

Tag grammar (documented in ray-project/ray `docker/ray/README.md`, "Tags", plus the `.sha` build suffix)::

    {version}[.{sha6}][-pyXY][-cpu|-gpu|-cuXYZ|-tpu][-aarch64]

The tag names Python's minor only. The patch is whatever conda-forge had on
the build day, so it comes from ``KNOWN_PATCHES``, a table that is labelled
as such (``exact=False``); only the running cluster or the image itself can
say for sure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

RAY_REPOSITORIES = ("rayproject/ray", "rayproject/ray-ml", "rayproject/ray-llm", "anyscale/ray")

# -gpu aliases a specific CUDA build; cuXYZ maps to the CUDA toolkit version.
CUDA_TAGS = {
    "cu117": "11.7.1",
    "cu118": "11.8.0",
    "cu121": "12.1.1",
    "cu123": "12.3.2",
    "cu124": "12.4.1",
    "cu125": "12.5.1",
    "cu126": "12.6.3",
    "cu128": "12.8.1",
    "cu129": "12.9.1",
}
GPU_ALIAS = "cu121"

# (Ray version, Python minor) -> the Python patch the image ships. Seen, not derived:
# 2.49.2-py312 ships 3.12.9 (conda-forge build; the tutorial's job log shows it).
KNOWN_PATCHES: dict[tuple[str, str], str] = {
    ("2.49.2", "3.12"): "3.12.9",
}


def default_python(ray_version: str) -> str:
    """The Python a tag without ``-pyXY`` carries: 3.7 in early releases, 3.9 later, 3.10 in the newest."""
    try:
        version = Version(ray_version)
    except (InvalidVersion, ValueError):  # ValueError: a release number past int()'s 4300 digits
        return "3.10"
    if version < Version("2.5"):
        return "3.7"
    if version < Version("2.11"):
        return "3.8"
    if version < Version("2.50"):
        return "3.9"
    return "3.10"


_TAG = re.compile(
    r"""^(?P<release>\d+\.\d+\.\d+(?:rc\d+)?)(?:\.(?P<sha>[0-9a-f]{6,40}))?
        |^(?P<channel>nightly|latest)(?:\.(?P<date>\d{6}))?(?:\.(?P<nsha>[0-9a-f]{6,40}))?""",
    re.X,
)
_SUFFIX = re.compile(r"^(py(?P<py>\d)(?P<pyminor>\d{1,2})|cpu|gpu|tpu|(?P<cu>cu\d{3})|aarch64|arm64|x86_64)$")


@dataclass(frozen=True)
class ImageInfo:
    """The parsed image reference."""

    image: str
    repository: str
    tag: str
    ray: str | None  # None for latest/nightly/custom images
    python_minor: str | None
    python_patch: str | None  # from KNOWN_PATCHES, a guess
    python_from_default: bool  # the tag had no -pyXY
    platform: str  # "cpu" | "gpu" | "tpu"
    cuda: str | None  # "12.8.1"
    arch: str  # "x86_64" | "aarch64"
    is_ray_image: bool
    unknown_reason: str | None = None

    @property
    def python(self) -> str | None:
        return self.python_patch or self.python_minor


def split_image(image: str) -> tuple[str, str]:
    """``registry/repo:tag@digest`` → (repository without registry, tag)."""
    ref = image.strip().split("@", 1)[0]
    name, tag = ref, "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) > 2 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # drop a registry host such as docker.io or quay.io
    if parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts).lower(), tag


def parse_image(image: str) -> ImageInfo:
    """Never raises: an image it cannot read says why in ``unknown_reason``."""
    repository, tag = split_image(image)
    is_ray = repository in RAY_REPOSITORIES
    base: dict[str, Any] = dict(image=image, repository=repository, tag=tag, is_ray_image=is_ray)
    if not is_ray:
        return ImageInfo(
            **base,
            ray=None,
            python_minor=None,
            python_patch=None,
            python_from_default=False,
            platform="cpu",
            cuda=None,
            arch="x86_64",
            unknown_reason=f"{repository} is not a rayproject/ray image: its tag carries no Ray or Python version",
        )
    head, *suffixes = tag.split("-")
    match = _TAG.match(head)
    python_minor = None
    platform, cuda, arch = "cpu", None, "x86_64"
    bad_suffix = None
    for suffix in suffixes:
        sm = _SUFFIX.match(suffix)
        if not sm:
            bad_suffix = suffix
            continue
        if sm.group("py"):
            python_minor = f"{sm.group('py')}.{sm.group('pyminor')}"
        elif suffix == "gpu":
            platform, cuda = "gpu", CUDA_TAGS[GPU_ALIAS]
        elif sm.group("cu"):
            platform, cuda = "gpu", CUDA_TAGS.get(suffix, f"{suffix[2:-1]}.{suffix[-1]}")
        elif suffix == "tpu":
            platform = "tpu"
        elif suffix in {"aarch64", "arm64"}:
            arch = "aarch64"
    common: dict[str, Any] = dict(platform=platform, cuda=cuda, arch=arch)
    if not match or match.end() != len(head) or bad_suffix:
        what = f"suffix {bad_suffix!r}" if bad_suffix else f"{head!r}"
        reason = f"tag {tag!r} does not follow rayproject/ray's tag scheme ({what})"
    elif match.group("channel"):
        reason = f"tag {tag!r} moves with every release: it names no Ray version"
    else:
        reason = None
    if reason is not None or match is None:  # no Ray version in the tag
        return ImageInfo(
            **base,
            ray=None,
            python_minor=python_minor,
            python_patch=None,
            python_from_default=False,
            **common,
            unknown_reason=reason or f"tag {tag!r} does not follow rayproject/ray's tag scheme",
        )
    ray = match.group("release")
    from_default = python_minor is None
    if from_default:
        python_minor = default_python(ray)
    return ImageInfo(
        **base,
        ray=ray,
        python_minor=python_minor,
        python_patch=KNOWN_PATCHES.get((ray, python_minor)) if python_minor else None,
        python_from_default=from_default,
        **common,
    )
