"""The Ray auth token: where it is found, and a value that never prints.

Keeping secrets out of output is not done here: the run's secrets travel on the
report (``Report.secret_values``) and one pass masks them before any renderer
(``doctor.render.mask.mask_report``). Nothing is registered process-wide.

The places on the cluster's side (a compose head's ``ray get-auth-token``, a KubeRay
cluster's secret) are in ``doctor.head.token_sources``; this module reads only this machine.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from doctor import files


@dataclass(frozen=True)
class Token:
    """A Ray auth token and where it was found; its value never prints.

    ``path``: the file it was read from (``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``), so that
    its permissions can be judged; None for the environment or a cluster-side source.
    ``from_cluster``: it came from the cluster itself (docker exec, kubectl), not from this
    machine's environment or files: a child that needs it gets it as ``RAY_AUTH_TOKEN``.
    """

    value: str = field(repr=False)
    source: str
    path: str | None = None
    from_cluster: bool = False

    def __str__(self) -> str:
        return f"<token from {self.source}>"


TOKEN_FILE_MAX_BYTES = 64 * 1024  # a token file holds one token; a FIFO or device there is no token
TOKEN_PLACES = "RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def load_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Token | None:
    """Find the token in the order Ray's own loader uses: ``RAY_AUTH_TOKEN``, then the file ``RAY_AUTH_TOKEN_PATH``
    names, then ``~/.ray/auth_token`` (Ray's C++ ``AuthenticationTokenLoader`` in
    ``src/ray/rpc/authentication/authentication_token_loader.cc``; the default path is
    ``python/ray/_private/authentication/authentication_token_setup.py::_get_default_token_path``).
    Surrounding whitespace is dropped, as Ray trims what it reads."""
    env = os.environ if environ is None else environ
    token: Token | None = None
    if env.get("RAY_AUTH_TOKEN", "").strip():
        token = Token(env["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN")
    else:
        candidates = []
        if env.get("RAY_AUTH_TOKEN_PATH"):
            candidates.append((Path(env["RAY_AUTH_TOKEN_PATH"]).expanduser(), "RAY_AUTH_TOKEN_PATH"))
        home_dir = home if home is not None else (Path(env["HOME"]) if env.get("HOME") else Path.home())
        candidates.append((home_dir / ".ray" / "auth_token", "~/.ray/auth_token"))
        for path, label in candidates:
            try:
                text = files.read_text(path, TOKEN_FILE_MAX_BYTES).strip()
            except files.Unreadable:  # missing, or a FIFO, device or folder: no token there
                continue
            if text:
                token = Token(text, label, path=str(path))
                break
    return token


def loose_permissions(path: str | Path) -> str | None:
    """Who besides the owner may read a token file (``"group and others"``, ...), or None when only the owner can.

    Ray writes ``~/.ray/auth_token`` with the process umask (``generate_and_save_token`` in
    ``ray/_private/authentication/authentication_token_setup.py`` opens it plainly), so a default umask of
    022 leaves it readable by every user of the machine.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    who = [name for bit, name in ((stat.S_IRGRP, "group"), (stat.S_IROTH, "others")) if mode & bit]
    return " and ".join(who) if who else None
