"""A package pinned to one version, as a type: from the head's packages to the installer.

``fix --match-head``, ``fix --constraints``, ``raydoctor lock`` and packages.skew's remedy all carry
``Pin(name, version)``; the text ``name==version`` is made only where a file or a command line is
written (``str(pin)``), never split again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

_PROJECT_NAME = re.compile(r"[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9]", re.IGNORECASE)
_MAX_VERSION = 128


@dataclass(frozen=True)
class Pin:
    """``name`` at exactly ``version``; make one with ``Pin.of`` when the parts come from outside."""

    name: str
    version: str

    @classmethod
    def of(cls, name: object, version: object) -> Pin | None:
        """A pin when both can stand as one line of a requirements file, else None.

        Names and versions that reach a file come from a dashboard, a probe job or an image: a version
        ``"1.26.4\\n--index-url http://evil"`` would be an option line to pip and uv. So the name must be
        a PEP 508 name and the version a PEP 440 version, exactly as given (``Version`` itself forgives
        surrounding whitespace, a newline included, which is refused here).
        """
        if not isinstance(name, str) or not isinstance(version, str) or not _PROJECT_NAME.fullmatch(name):
            return None
        if not version or len(version) > _MAX_VERSION or version != version.strip() or not version.isascii():
            return None
        try:
            Version(version)
        except InvalidVersion:
            return None
        return cls(name, version)

    def __str__(self) -> str:
        """The requirements-file line: ``name==version``."""
        return f"{self.name}=={self.version}"


def valid_name(name: object) -> bool:
    """Whether ``name`` is a PEP 508 project name (safe to show and to write)."""
    return isinstance(name, str) and bool(_PROJECT_NAME.fullmatch(name))
