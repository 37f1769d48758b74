"""Python source that raydoctor's probes run in other interpreters (the head's job, an image's Python).

Text, never imported there: each probe embeds it. One listing of installed distributions, so that
the ``--deep`` probe and the image probe (``doctor.head.docker``) report packages the same way.
"""

from __future__ import annotations

# ``distributions()``: {distribution name: version}, the first of each name on sys.path winning, as
# importlib.metadata finds them. A distribution whose metadata cannot be read is left out.
DISTRIBUTIONS = """
from importlib import metadata

def distributions():
    found = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        if name:
            found.setdefault(name, dist.version)
    return found
"""
