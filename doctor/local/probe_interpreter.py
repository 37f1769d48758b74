# Runs INSIDE the interpreter being judged (any CPython 2.7+), never imported by raydoctor.
# It prints one JSON line about itself; it must not import Ray (slow, and may be broken).
import json
import platform
import sys

dists = {}
try:
    from importlib import metadata

    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            dists.setdefault(name, dist.version)
except Exception:  # Python < 3.8, or a broken dist: fall back to pkg_resources
    try:
        import pkg_resources

        for dist in pkg_resources.working_set:
            dists.setdefault(dist.project_name, dist.version)
    except Exception:
        pass

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
            "distributions": dists,
        }
    )
)
