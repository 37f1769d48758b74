"""``network.token``: which source gave the Ray auth token, whether it went to the target, and a token
file that other users of this machine can read.

The facts are the context's (``CheckContext.token_search``: this machine's places in Ray's order, then the
cluster's own, ``doctor.head.token_sources``); this check only judges them. The value is never shown.
"""

from __future__ import annotations

import shlex

from doctor.context import CheckContext
from doctor.model import Remediation, Result, Status, finding
from doctor.runner import Check
from doctor.secrets import TOKEN_PLACES, loose_permissions

TITLE = "Ray auth token"


def check_token(ctx: CheckContext) -> list[Result]:
    search = ctx.token_search()
    token = search.token
    details = [f"tried: {line}" for line in search.tried]
    results: list[Result] = []
    if token is None:
        if search.tried:
            results.append(
                finding(
                    Status.WARN,
                    f"the cluster asks for a token (auth mode token) and none was found: not in {TOKEN_PLACES}, "
                    "and not from the cluster's side",
                    code="network.token.not_found",
                    details=details,
                    fix=Remediation(
                        "Set RAY_AUTH_TOKEN to the cluster's token (on the head: `ray get-auth-token`).", ()
                    ),
                    data={"tried": list(search.tried)},
                )
            )
        else:
            results.append(
                finding(
                    Status.SKIP,
                    "no auth token here, and the cluster's side was not asked (its dashboard did not say auth mode token)",
                    code="network.token.none",
                )
            )
        return results
    withheld = ctx.token_withheld
    where = ctx.target.address.dashboard_url if ctx.target.address else "the target"
    also = " and to the round trip" if ctx.options.roundtrip else ""
    sent = "not sent: " + withheld if withheld else f"sent to {where}{also}"
    results.append(
        finding(
            Status.OK,
            f"auth token from {token.source}, {sent}",
            code="network.token.found",
            details=details,
            data={"source": token.source, "sent": withheld is None, "from_cluster": token.from_cluster},
        )
    )
    if token.path:
        who = loose_permissions(token.path)
        if who:
            results.append(
                finding(
                    Status.WARN,
                    f"the token file {token.path} ({token.source}) can be read by {who} on this machine",
                    code="network.token.file_readable",
                    fix=Remediation(
                        "Make the token file readable by you only.", (shlex.join(["chmod", "600", token.path]),)
                    ),
                    data={"path": token.path, "readable_by": who},
                )
            )
    return results


def checks_for(ctx: CheckContext) -> list[Check]:
    target = ctx.target
    if target.address is None or (ctx.local_token is None and target.compose is None and target.cluster is None):
        return []
    return [Check("network.token", "network", TITLE, check_token, timeout=ctx.options.timeout * 4 + 15)]
