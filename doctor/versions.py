"""One version type: a Python (or Ray) version spec, parsed once, exact or minor-only.

The head's Python is sometimes known to the patch (``3.12.9``, from the running
cluster) and sometimes only to the minor (``3.12``, from an image tag). Every part
of raydoctor that compares Pythons asks the same object: ``exact`` (is the patch
known), ``minor`` (``"3.12"``), ``satisfies(version)`` (does an interpreter of that
version match: the same patch for an exact spec, the same minor otherwise).
virtualenv's ``PythonSpec`` (``src/virtualenv/discovery/py_spec.py``) has the same
shape.

``VersionSpec.parse`` is strict (``X.Y`` or ``X.Y.Z``: what fix accepts as a target);
``VersionSpec.read`` is tolerant of what interpreters and dashboards report
(``3.12.9+``, ``3.13.0rc1``) and returns None for text with no version in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

_STRICT = re.compile(r"(\d{1,9})\.(\d{1,9})(?:\.(\d{1,9}))?")
_LEADING_DIGITS = re.compile(r"\d+")
_MAX_DIGITS = 18  # no real version part is that long; int() refuses more than 4300 digits


def parts(text: object) -> tuple[int, ...]:
    """``"3.12.9"`` → (3, 12, 9); ``"3.12"`` → (3, 12); ``"3.12.9+"`` → (3, 12, 9); ``"x"`` → ()."""
    out: list[int] = []
    for piece in str(text).split(".")[:3]:
        match = _LEADING_DIGITS.match(piece)
        if not match or len(match.group()) > _MAX_DIGITS:
            break
        out.append(int(match.group()))
    return tuple(out)


@dataclass(frozen=True)
class VersionSpec:
    """``X.Y.Z`` (exact) or ``X.Y`` (minor only)."""

    major: int
    minor_number: int
    patch: int | None = None

    @classmethod
    def parse(cls, text: str) -> VersionSpec:
        """Strict: ``"3.12.9"`` or ``"3.12"``; ValueError for anything else."""
        match = _STRICT.fullmatch(str(text).strip())
        if not match:
            raise ValueError(f"not a version: {text!r} (expected X.Y.Z or X.Y)")
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch) if patch is not None else None)

    @classmethod
    def read(cls, text: object) -> VersionSpec | None:
        """Tolerant: the leading ``X.Y[.Z]`` of what an interpreter or a dashboard reports, or None."""
        found = parts(text)
        if len(found) < 2:
            return None
        return cls(found[0], found[1], found[2] if len(found) > 2 else None)

    @property
    def exact(self) -> bool:
        """Whether the patch is known."""
        return self.patch is not None

    @property
    def minor(self) -> str:
        """``"3.12"``."""
        return f"{self.major}.{self.minor_number}"

    @property
    def key(self) -> tuple[int, ...]:
        return (self.major, self.minor_number) if self.patch is None else (self.major, self.minor_number, self.patch)

    def at_minor(self) -> VersionSpec:
        """The same version with the patch dropped (``3.12.9`` → ``3.12``)."""
        return VersionSpec(self.major, self.minor_number)

    def same_minor(self, version: VersionSpec | str | None) -> bool:
        other = _spec(version)
        return other is not None and (other.major, other.minor_number) == (self.major, self.minor_number)

    def satisfies(self, version: VersionSpec | str | None) -> bool:
        """Whether an interpreter of ``version`` is what this spec asks for.

        Exact spec: the same major.minor.patch. Minor spec: the same major.minor.
        """
        other = _spec(version)
        if other is None or not self.same_minor(other):
            return False
        return self.patch is None or other.patch == self.patch

    def __str__(self) -> str:
        return self.minor if self.patch is None else f"{self.minor}.{self.patch}"


def _spec(version: VersionSpec | str | None) -> VersionSpec | None:
    if version is None or isinstance(version, VersionSpec):
        return version
    return VersionSpec.read(version)


def release_equal(a: str | None, b: str | None) -> bool:
    """Whether two Ray versions are the same release (``2.49.2`` = ``2.49.2.0``); False if either is missing."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return Version(a) == Version(b)
    except (InvalidVersion, TypeError, ValueError):  # ValueError: a number over Python's 4300-digit int limit
        return False


def release(text: str | None) -> Version | None:
    """``text`` as a packaging Version, or None when it is not one."""
    try:
        return Version(text or "")
    except (InvalidVersion, TypeError, ValueError):
        return None
