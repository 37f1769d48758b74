"""The facts about a head that checks judge, each with its source."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from doctor.model import Fact
from doctor.origin import PackagesOrigin


@dataclass(frozen=True)
class HeadFacts:
    """What is known about the head, best source first; frozen once gathered (``doctor.head.resolve``).

    ``python`` holds ``"3.12.9"`` when the patch is known (``exact``) and
    ``"3.12"`` when only the minor is; ``python.exact`` is False when the
    patch is a guess from the table of known image patches.

    The node list and the head's installed packages are not here: they are facts of their own
    (``doctor.facts.cluster``), gathered only when a check asks for them.
    """

    ray: Fact | None = None
    python: Fact | None = None
    image: str | None = None
    cuda: str | None = None  # "12.8" for a -cu128 image
    live: bool = False  # the dashboard answered as Ray
    auth_mode: str | None = None
    live_error_kind: str | None = None  # DashboardError.kind when the dashboard did not answer as Ray
    live_error: str | None = None
    dashboard_endpoint: str | None = None  # which endpoint gave the versions
    problems: tuple[str, ...] = ()  # why a source gave nothing
    sources_tried: tuple[str, ...] = ()
    # The Ray Client URL whose round trip gave the versions, when the dashboard could not
    # (the user named only ``ray://host:port``): the head is live through Ray Client.
    from_roundtrip: str | None = None

    @property
    def python_version(self) -> str | None:
        return str(self.python.value) if self.python else None

    @property
    def ray_version(self) -> str | None:
        return str(self.ray.value) if self.ray else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ray": self.ray.to_dict() if self.ray else None,
            "python": self.python.to_dict() if self.python else None,
            "image": self.image,
            "cuda": self.cuda,
            "live": self.live,
            "live_error": {"kind": self.live_error_kind, "message": self.live_error} if self.live_error else None,
            "auth_mode": self.auth_mode,
            "problems": list(self.problems),
            "sources_tried": list(self.sources_tried),
            "from_roundtrip": self.from_roundtrip,
        }


@dataclass(frozen=True)
class HeadPackages:
    """The head's installed distributions (canonical name -> version) and where they were read.

    One answer for every consumer (packages.head, packages.skew, fix --match-head): the ``--deep``
    probe of the running head first, then the file the user named (``--head-packages``), then
    the image through a local Docker engine (``doctor.head.docker``).
    """

    packages: Mapping[str, str]
    origin: PackagesOrigin  # what decisions read (``raydoctor lock`` takes the probed node's versions)
    where: str = ""  # FILE: the file's path; IMAGE: "NAME (sha256:…)"
    complete: bool = True  # every installed distribution; a team's file lists only some (absent is unknown)

    @property
    def source(self) -> str:
        """Where they were read, in words (the report's text): "the --deep probe", the file's path,
        "docker image NAME (sha256:…)"."""
        if self.origin is PackagesOrigin.FILE:
            return self.where
        if self.origin is PackagesOrigin.IMAGE:
            return f"docker image {self.where}"
        return PackagesOrigin.DEEP_PROBE.value
