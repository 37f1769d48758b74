"""Gather the head's facts from the best source available.

Order: a running cluster (dashboard HTTP) > Docker Engine (the image's own Python and Ray) > the
image tag. Every fact records its source. The result is frozen: nothing changes it afterwards.
"""

from __future__ import annotations

from typing import Any, Callable

from doctor.head import docker
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.head.facts import HeadFacts
from doctor.head.image_tag import parse_image
from doctor.model import Fact

# The dashboard answered, but wants a token (or another one): not "elsewhere", so no fallback.
AUTH_KINDS = frozenset({"unauthorized", "forbidden", "token_withheld"})


def gather_head_facts(
    dashboard: DashboardClient | None,
    image: str | None,
    *,
    use_docker: bool = True,
    token_withheld: str | None = None,
    roundtrip: Callable[[], Any] | None = None,
    client_url: str | None = None,
) -> HeadFacts:
    """``token_withheld``: why raydoctor has a token but does not send it to this dashboard (then a
    dashboard that asks for one is told apart from one that was given none).

    ``roundtrip``: when the user named only the Ray Client address, the round trip's result
    (``doctor.facts.roundtrip.ProbeRun``, run once by the context); asked only when the dashboard did not
    answer (other than for want of a token). Its task's Python and Ray are the head's: Ray refuses a
    worker of another Python or Ray (``ray/_private/utils.py::check_version_info`` on join)."""
    ray: Fact | None = None
    python: Fact | None = None
    cuda: str | None = None
    live = False
    auth_mode: str | None = None
    error_kind: str | None = None
    error: str | None = None
    endpoint: str | None = None
    problems: list[str] = []
    tried: list[str] = []
    if dashboard is not None:
        tried.append("dashboard")
        try:
            versions = dashboard.cluster_versions()
        except DashboardError as exc:
            error_kind, error = exc.kind, exc.message
            if exc.kind == "unauthorized" and token_withheld:
                error_kind = "token_withheld"
                error = f"{dashboard.base_url} requires a Ray auth token; {token_withheld}"
            problems.append(error)
        else:
            live = True
            endpoint = versions.endpoint
            source = f"running cluster ({dashboard.base_url}{versions.endpoint})"
            ray = Fact(versions.ray, source)
            if versions.python:
                python = Fact(versions.python, source)
            try:
                auth_mode = dashboard.auth_mode()
            except DashboardError:
                pass
    from_roundtrip: str | None = None
    if roundtrip is not None and not live and error_kind not in AUTH_KINDS and (ray is None or python is None):
        tried.append("round trip")
        run = roundtrip()
        result = getattr(run, "result", None)
        worker = result.get("worker") if isinstance(result, dict) else None
        if isinstance(worker, dict) and isinstance(worker.get("python"), str) and isinstance(worker.get("ray"), str):
            node = str(worker.get("node_id") or "?")[:12]
            source = f"round trip ({client_url or 'ray://'}: a task on node {node})"
            ray = ray or Fact(worker["ray"], source)
            python = python or Fact(worker["python"], source)
            from_roundtrip = client_url or "ray://"
        else:
            problems.append("the round trip did not answer either (see roundtrip.client)")
    if image:
        info = parse_image(image)
        cuda = info.cuda
        if use_docker and (ray is None or python is None):
            tried.append("docker")
            found = docker.image_facts(image)
            if found:
                source = f"docker image {image} ({found.image_id[:19]})"
                python = python or Fact(found.python, source)
                if found.ray:
                    ray = ray or Fact(found.ray, source)
        tried.append("image tag")
        if info.unknown_reason:
            problems.append(info.unknown_reason)
        if ray is None and info.ray:
            ray = Fact(info.ray, f"image tag {info.tag}")
        if python is None and info.python_minor:
            if info.python_patch:
                python = Fact(info.python_patch, f"table of known builds of {info.tag}", exact=False)
            else:
                label = "release default, tag has no -pyXY" if info.python_from_default else "image tag"
                python = Fact(info.python_minor, f"{label} {info.tag}", exact=False)
    return HeadFacts(
        ray=ray,
        python=python,
        image=image,
        cuda=cuda,
        live=live,
        auth_mode=auth_mode,
        live_error_kind=error_kind,
        live_error=error,
        dashboard_endpoint=endpoint,
        problems=tuple(problems),
        sources_tried=tuple(tried),
        from_roundtrip=from_roundtrip,
    )
