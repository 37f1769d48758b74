"""Keep tokens and passwords out of every output.

Whatever raydoctor reads as a secret is registered here; the renderers pass
all text through ``scrub`` as a last line of defence, so a secret that slipped
into an exception message still never reaches the terminal, JSON or a report.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

_lock = threading.Lock()
_secrets: set[str] = set()
REDACTED = "***"


def register_secret(value: str) -> None:
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def scrub(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


@dataclass(frozen=True)
class Token:
    """A Ray auth token and where it was found; its value never prints."""

    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"<token from {self.source}>"


TOKEN_PLACES = "RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def load_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Token | None:
    """Find the token the way Ray does (REFERENCE §2): env, then path env, then ~/.ray/auth_token."""
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
    if token:
        register_secret(token.value)
    return token
