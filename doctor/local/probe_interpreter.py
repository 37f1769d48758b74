# Runs INSIDE the interpreter being judged (any CPython 2.7+): doctor/local/interpreter.py passes this
# file's text to `python -c`, from an empty temporary folder. Importing it runs nothing (main() runs only
# as __main__), and it must not import Ray (slow, and may be broken). It prints one JSON line about itself.
#
# Nothing from the current folder may run here: `python -c` puts '' (the current folder) first on
# sys.path, so a json.py or platform.py in a cloned repository would replace the modules below and run
# its own code. So, first thing, before any other import, '' and the current folder leave sys.path.
# (`-I` would do it too, but it also hides PYTHONPATH and the user's site-packages, which changes what is
# judged; `-P` exists only from Python 3.11, and the version is what this probe is asked.)
import sys

if __name__ == "__main__":  # imported (by a test), it leaves the importer's sys.path alone
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]

import os  # noqa: E402  (already loaded by the interpreter's start-up: sys.modules answers)

if __name__ == "__main__":
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry) != os.getcwd()]

import json  # noqa: E402
import platform  # noqa: E402


# Installed distributions are read from the *.dist-info / *.egg-info folder names on sys.path (first
# one wins, as for imports): parsing every METADATA file with importlib.metadata costs ~0.3 s on an env
# with a hundred packages.
def distributions():
    found = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry)
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


def main():
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


if __name__ == "__main__":
    main()
