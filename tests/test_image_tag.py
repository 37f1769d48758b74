"""A table of real rayproject/ray tags, read offline (the tag scheme of ray-project/ray ``docker/ray/README.md``, "Tags")."""

import pytest

from doctor.head.image_tag import KNOWN_PATCHES, parse_image, split_image

# image, ray, python minor, python patch (table), from default, platform, cuda, arch
REAL_TAGS = [
    ("rayproject/ray:2.49.2.7b0af3-py312-cpu", "2.49.2", "3.12", "3.12.9", False, "cpu", None, "x86_64"),
    ("rayproject/ray:2.49.2.7b0af3-py312-cu128", "2.49.2", "3.12", "3.12.9", False, "gpu", "12.8.1", "x86_64"),
    ("rayproject/ray:2.49.0.5531bc-py312-cpu", "2.49.0", "3.12", None, False, "cpu", None, "x86_64"),
    ("rayproject/ray:2.44.1-py312-gpu", "2.44.1", "3.12", None, False, "gpu", "12.1.1", "x86_64"),
    ("rayproject/ray:2.49.2-py312-cu128", "2.49.2", "3.12", "3.12.9", False, "gpu", "12.8.1", "x86_64"),
    ("rayproject/ray:2.40.0-py311-cu124-aarch64", "2.40.0", "3.11", None, False, "gpu", "12.4.1", "aarch64"),
    ("rayproject/ray:2.9.3-py310-cu118", "2.9.3", "3.10", None, False, "gpu", "11.8.0", "x86_64"),
    ("rayproject/ray:2.30.0-aarch64", "2.30.0", "3.9", None, True, "cpu", None, "aarch64"),
    ("rayproject/ray:2.52.0", "2.52.0", "3.10", None, True, "cpu", None, "x86_64"),
    ("rayproject/ray:1.13.0-py38", "1.13.0", "3.8", None, False, "cpu", None, "x86_64"),
    ("docker.io/rayproject/ray:2.47.1-py311-cu121", "2.47.1", "3.11", None, False, "gpu", "12.1.1", "x86_64"),
    ("rayproject/ray-ml:2.10.0-py39-gpu", "2.10.0", "3.9", None, False, "gpu", "12.1.1", "x86_64"),
    ("rayproject/ray:2.49.2-py312-cpu@sha256:71094320d360", "2.49.2", "3.12", "3.12.9", False, "cpu", None, "x86_64"),
    ("rayproject/ray:2.35.0-py312-tpu", "2.35.0", "3.12", None, False, "tpu", None, "x86_64"),
]


@pytest.mark.parametrize("image, ray, minor, patch, default, platform, cuda, arch", REAL_TAGS)
def test_real_tags(image, ray, minor, patch, default, platform, cuda, arch):
    info = parse_image(image)
    assert info.unknown_reason is None
    assert (info.ray, info.python_minor, info.python_patch) == (ray, minor, patch)
    assert info.python_from_default is default
    assert (info.platform, info.cuda, info.arch) == (platform, cuda, arch)


@pytest.mark.parametrize(
    "image, words",
    [
        ("rayproject/ray", "moves with every release"),
        ("rayproject/ray:latest", "moves with every release"),
        ("rayproject/ray:latest-gpu", "moves with every release"),
        ("rayproject/ray:nightly-py311", "moves with every release"),
        ("rayproject/ray:nightly.251010.abcdef-py312", "moves with every release"),
        ("python:3.9.7-slim", "not a rayproject/ray image"),
        ("ghcr.io/acme/ray-custom:2.49.2", "not a rayproject/ray image"),
        ("rayproject/ray:2.49.2-py312-weird", "tag scheme"),
        ("rayproject/ray:banana", "tag scheme"),
    ],
)
def test_unknown_tags_say_why(image, words):
    info = parse_image(image)
    assert info.ray is None
    assert words in info.unknown_reason


def test_nightly_still_tells_python_minor_and_gpu():
    info = parse_image("rayproject/ray:nightly-py311-cu128")
    assert info.python_minor == "3.11" and info.cuda == "12.8.1"


@pytest.mark.parametrize(
    "image, repo, tag",
    [
        ("rayproject/ray", "rayproject/ray", "latest"),
        ("localhost:5000/rayproject/ray:2.40.0-py311", "rayproject/ray", "2.40.0-py311"),
        ("quay.io/rayproject/ray:2.40.0", "rayproject/ray", "2.40.0"),
        ("docker.io/library/python:3.12", "python", "3.12"),
    ],
)
def test_split_image(image, repo, tag):
    assert split_image(image) == (repo, tag)


def test_known_patches_are_full_versions():
    for (_ray, minor), patch in KNOWN_PATCHES.items():
        assert patch.startswith(minor + ".") and patch.count(".") == 2
