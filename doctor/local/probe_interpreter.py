# Runs INSIDE the interpreter being judged (any CPython 2.7+), never imported by raydoctor.
# It prints one JSON line about itself; it must not import Ray (slow, and may be broken).
# Installed distributions are read from the *.dist-info / *.egg-info folder names on
# sys.path (first one wins, as for imports): parsing every METADATA file with
# importlib.metadata costs ~0.3 s on an env with a hundred packages.
import json
import os
import platform
import sys


def distributions():
    found = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                stem = name[: -len(".dist-info")]
            elif name.endswith(".egg-info"):
                stem = name[: -len(".egg-info")]
            else:
                continue
            parts = stem.split("-")
            if len(parts) >= 2 and parts[0] and parts[1]:
                found.setdefault(parts[0], parts[1])
    return found


print(
    json.dumps(
        {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix),
            "machine": platform.machine(),
            "system": platform.system(),
            "distributions": distributions(),
        }
    )
)
