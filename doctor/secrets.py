"""The Ray auth token: where it is found, and a value that never prints.

Keeping secrets out of output is not done here: the run's secrets travel on the
report (``Report.secret_values``) and one pass masks them before any renderer
(``doctor.render.mask.mask_report``). Nothing is registered process-wide.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Token:
    """A Ray auth token and where it was found; its value never prints."""

    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"<token from {self.source}>"


TOKEN_PLACES = "RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def load_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Token | None:
    """Find the token in the order Ray's own loader uses: ``RAY_AUTH_TOKEN``, then the file ``RAY_AUTH_TOKEN_PATH``
    names, then ``~/.ray/auth_token`` (Ray's ``AuthenticationTokenLoader``, and ``load_auth_token`` under
    ``python/ray/_private/authentication/``)."""
    env = os.environ if environ is None else environ
    token: Token | None = None
    if env.get("RAY_AUTH_TOKEN", "").strip():
        token = Token(env["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN")
    else:
        candidates = []
        if env.get("RAY_AUTH_TOKEN_PATH"):
            candidates.append((Path(env["RAY_AUTH_TOKEN_PATH"]).expanduser(), "RAY_AUTH_TOKEN_PATH"))
        candidates.append(((home or Path.home()) / ".ray" / "auth_token", "~/.ray/auth_token"))
        for path, label in candidates:
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if text:
                token = Token(text, label)
                break
    return token
