# Runs INSIDE the interpreter being judged: doctor/checks/roundtrip.py passes this file's text to
# `python -c THIS ray://host:port`, from an empty temporary folder. Importing it runs nothing (main() runs
# only as __main__). It does what a user's script does: import Ray, ray.init("ray://..."), one remote
# task, and prints one line per phase so that raydoctor can tell where a hang or a failure happened.
#
# Nothing from the current folder may run here: `python -c` puts '' (the current folder) first on
# sys.path, and a ray/ or json.py in a cloned repository would replace what is imported below. So, first
# thing, before any other import, '' and the current folder leave sys.path (see probe_interpreter.py).
import sys

if __name__ == "__main__":  # imported (by a test), it leaves the importer's sys.path alone
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".")]

import os  # noqa: E402  (already loaded by the interpreter's start-up: sys.modules answers)

if __name__ == "__main__":
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry) != os.getcwd()]

import json  # noqa: E402
import time  # noqa: E402


def say(kind, **data):
    sys.stdout.write("RAYDOCTOR_%s %s\n" % (kind, json.dumps(data)))
    sys.stdout.flush()


def main():
    address = sys.argv[1]
    timings = {}
    phase = "import"
    say("PHASE", phase=phase)
    t0 = time.perf_counter()
    try:
        import ray

        timings["import_s"] = time.perf_counter() - t0
        phase = "init"
        say("PHASE", phase=phase, ray=getattr(ray, "__version__", None))
        t1 = time.perf_counter()
        ray.init(address, logging_level="ERROR", log_to_driver=False)
        timings["init_s"] = time.perf_counter() - t1
        phase = "task"
        say("PHASE", phase=phase)
        t2 = time.perf_counter()

        @ray.remote(num_cpus=0)
        def whoami():
            import platform
            import socket

            import ray as worker_ray

            return {
                "python": platform.python_version(),
                "ray": worker_ray.__version__,
                "node_id": worker_ray.get_runtime_context().get_node_id(),
                "hostname": socket.gethostname(),
            }

        worker = ray.get(whoami.remote())
        timings["task_s"] = time.perf_counter() - t2
        say(
            "RESULT",
            worker=worker,
            timings=timings,
            client_ray=ray.__version__,
            client_python="%d.%d.%d" % sys.version_info[:3],
        )
        try:
            ray.shutdown()  # a clean goodbye: else the server keeps this client's session for its grace period
        except Exception:
            pass
    except BaseException as exc:  # report every failure, including SystemExit from Ray
        say("ERROR", phase=phase, type=type(exc).__name__, message=str(exc)[-4000:], timings=timings)
        _leave(3)
    _leave(0)


def _leave(code):
    """Exit without the interpreter's teardown: with Ray and gRPC loaded it takes 0.1-0.2 s (measured on
    Ray 2.49.2 after ray.shutdown()), and everything raydoctor reads has been printed and flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
