# Runs INSIDE the interpreter being judged (any CPython 2.7+): doctor/local/interpreter.py passes this
# file's text to `python -c`, from an empty temporary folder. Importing it runs nothing (main() runs only
# as __main__), and it imports Ray only when asked (``job_client`` in its arguments: the Jobs API path's one
# question, slow and maybe broken, so never asked otherwise). It prints one JSON line about itself.
#
# One probe for every question raydoctor asks of a local interpreter: check's facts (doctor.local.interpreter),
# fix's discovery of interpreters to build from (doctor.fix.discover: run with -I) and jobs.client.
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
import sysconfig  # noqa: E402


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


# Whether Ray's job client imports here (``ray.job_submission.JobSubmissionClient``, the client of the
# cluster's Jobs API, ray/dashboard/modules/job/sdk.py): {"ray": version, "python": version} or {"error": the
# exception's last line, as a traceback would end, "missing": the module an ImportError names (its ``name``),
# else null}. Any failure is an answer: the facts above still come back.
def job_client():
    try:
        import ray
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except BaseException as exc:  # noqa: B036  (a SystemExit in a broken install is an answer too)
        missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        return {"error": "%s: %s" % (type(exc).__name__, exc), "missing": missing}
    return {"ray": str(getattr(ray, "__version__", "?")), "python": sys.version.split()[0]}


def main():
    facts = {
        "python": platform.python_version(),
        # the release without a pre-release tag ("3.13.0" for 3.13.0rc1): what fix's discovery compares
        "release": "%d.%d.%d" % tuple(sys.version_info[:3]),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        "machine": platform.machine(),
        "system": platform.system(),
        # a free-threaded build (PEP 703): Ray's wheels are not built for one
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "distributions": distributions(),
    }
    if "job_client" in sys.argv[1:]:
        facts["job_client"] = job_client()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
