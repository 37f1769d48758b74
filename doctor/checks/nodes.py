"""The cluster's nodes: a worker that died is a finding before any task lands on it."""

from __future__ import annotations

import time
from typing import Any

from doctor.head.dashboard import DashboardError
from doctor.model import Remediation, Result, Status, result
from doctor.runner import Check

TITLE = "Cluster nodes"
EMPTY_RETRIES = 6
EMPTY_RETRY_S = 0.5


def describe_node(node: dict[str, Any]) -> str:
    """``worker 1a2b3c4d5e6f (10.0.0.7)``: how findings name a node."""
    role = "head" if node.get("is_head_node") else "worker"
    return f"{role} {str(node.get('node_id', '?'))[:12]} ({node.get('node_ip', '?')})"


def _total(nodes: list[dict[str, Any]], resource: str) -> float:
    total = 0.0
    for node in nodes:
        try:
            total += float((node.get("resources_total") or {}).get(resource) or 0)
        except (TypeError, ValueError):
            continue
    return total


def read_nodes(dashboard: Any) -> list[dict[str, Any]]:
    """The dashboard's node list; a head that has just started lists no nodes for a moment, so ask again."""
    nodes = dashboard.nodes()
    for _ in range(EMPTY_RETRIES):
        if nodes:
            break
        time.sleep(EMPTY_RETRY_S)
        nodes = dashboard.nodes()
    return nodes


def check_nodes(ctx: Any) -> Result:
    if not ctx.head().live:
        return result("head.nodes", "head", TITLE, Status.SKIP, "the cluster did not answer (see Ray head)")
    try:
        nodes = ctx.nodes()
    except DashboardError as exc:
        return result("head.nodes", "head", TITLE, Status.WARN, f"the node list could not be read: {exc.message}")
    if not nodes:
        return result(
            "head.nodes",
            "head",
            TITLE,
            Status.WARN,
            "the dashboard lists no nodes yet (a head that has just started?)",
            fix=Remediation("Run the check again in a few seconds.", ()),
        )
    alive = [n for n in nodes if str(n.get("state", "")).upper() == "ALIVE"]
    dead = [n for n in nodes if str(n.get("state", "")).upper() == "DEAD"]
    workers = sum(1 for n in alive if not n.get("is_head_node"))
    resources = f"{_total(alive, 'CPU'):g} CPUs, {_total(alive, 'GPU'):g} GPUs"
    data = {"alive": len(alive), "dead": len(dead), "dead_nodes": [describe_node(n) for n in dead]}
    if not any(n.get("is_head_node") for n in alive):
        return result(
            "head.nodes",
            "head",
            TITLE,
            Status.FAIL,
            f"no alive head node among {len(nodes)} nodes",
            fix=Remediation("Restart the head (ray start --head …).", ()),
            data=data,
        )
    summary = f"{len(alive)} alive (head + {workers} worker{'s' if workers != 1 else ''}; {resources})"
    if not dead:
        return result("head.nodes", "head", TITLE, Status.OK, summary, data=data)
    names = ", ".join(describe_node(n) for n in dead[:3])
    details = [f"{describe_node(n)}: {n.get('state_message') or 'DEAD'}" for n in dead]
    address = f"{ctx.target.address.host}:{ctx.target.address.gcs_port}"
    return result(
        "head.nodes",
        "head",
        TITLE,
        Status.WARN,
        f"{summary}; {len(dead)} dead: {names}",
        details=details,
        fix=Remediation(
            "Restart Ray on the dead node so that it joins again (its resources are gone until then).",
            (f"ray start --address={address}",),
        ),
        data=data,
    )


def checks_for(ctx: Any) -> list[Check]:
    if ctx.target.address is None:
        return []
    return [Check("head.nodes", "head", TITLE, check_nodes, timeout=15)]
