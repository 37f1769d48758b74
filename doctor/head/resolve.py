"""Gather the head's facts from the best source available.

Order (issue 2): a running cluster (dashboard HTTP) > Docker Engine (the
image's own Python and Ray) > the image tag. Every fact records its source.
"""

from __future__ import annotations

from doctor.head import docker
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.head.facts import HeadFacts
from doctor.head.image_tag import parse_image
from doctor.model import Fact


def gather_head_facts(dashboard: DashboardClient | None, image: str | None, *, use_docker: bool = True) -> HeadFacts:
    facts = HeadFacts(image=image)
    if dashboard is not None:
        facts.sources_tried.append("dashboard")
        try:
            versions = dashboard.cluster_versions()
        except DashboardError as exc:
            facts.live_error_kind, facts.live_error = exc.kind, exc.message
            facts.problems.append(exc.message)
        else:
            facts.live = True
            facts.dashboard_endpoint = versions.endpoint
            source = f"running cluster ({dashboard.base_url}{versions.endpoint})"
            facts.ray = Fact(versions.ray, source)
            if versions.python:
                facts.python = Fact(versions.python, source)
            try:
                facts.auth_mode = dashboard.auth_mode()
            except DashboardError:
                pass
    if image:
        info = parse_image(image)
        facts.cuda = info.cuda
        if use_docker and (facts.ray is None or facts.python is None):
            facts.sources_tried.append("docker")
            found = docker.image_facts(image)
            if found:
                source = f"docker image {image} ({found.image_id[:19]})"
                facts.python = facts.python or Fact(found.python, source)
                if found.ray:
                    facts.ray = facts.ray or Fact(found.ray, source)
        facts.sources_tried.append("image tag")
        if info.unknown_reason:
            facts.problems.append(info.unknown_reason)
        if facts.ray is None and info.ray:
            facts.ray = Fact(info.ray, f"image tag {info.tag}")
        if facts.python is None and info.python_minor:
            if info.python_patch:
                facts.python = Fact(info.python_patch, f"table of known builds of {info.tag}", exact=False)
            else:
                label = "release default, tag has no -pyXY" if info.python_from_default else "image tag"
                facts.python = Fact(info.python_minor, f"{label} {info.tag}", exact=False)
    return facts
