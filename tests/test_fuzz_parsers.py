"""Property tests for every parser raydoctor feeds with outside input.

Whatever a user types, a file holds or a server answers, raydoctor must
answer with a one-line message, never a traceback: each parser may raise
only its documented error (``UsageError``/``DoctorError``, ``DashboardError``)
or nothing at all. Compose interpolation and ``ray start`` parsing have
their own properties in tests/test_compose_fuzz.py.

RAYDOCTOR_FUZZ_EXAMPLES=5000 for a long hunt; the default keeps the file
well under half a minute.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doctor.errors import UsageError
from doctor.fix.conda import parse_json_output
from doctor.head.cluster_files import detect_format, load_cluster_file
from doctor.head.dashboard import DashboardClient, DashboardError
from doctor.head.image_tag import parse_image
from doctor.local.requirements import load_requirements
from doctor.rules import judge_python, judge_ray
from doctor.target import parse_address
from doctor.versions import parts as python_parts

EXAMPLES = int(os.environ.get("RAYDOCTOR_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
# Each dashboard example is a few real HTTP requests: fewer of them.
HTTP_SETTINGS = settings(
    max_examples=max(50, EXAMPLES // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------
# strategies

digits_heavy = st.text(alphabet=st.sampled_from(list("0123456789.")), min_size=0, max_size=40)
huge_number = st.integers(4301, 6000).map(lambda n: "9" * n)  # over Python's int-from-str limit
version_like = st.one_of(
    st.text(max_size=30),
    digits_heavy,
    huge_number,
    st.from_regex(r"\d{1,3}(\.\d{1,3}){0,3}(rc\d|\.dev\d|\+local|[a-z]{0,3})?", fullmatch=True),
    st.sampled_from(["3.12.9", "3.12", "2.49.2", "", " ", "3.12.9+", "3..12", "v3.12", "latest", "nan"]),
)
image_text = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda repo, tag: f"{repo}:{tag}",
        st.sampled_from(
            ["rayproject/ray", "docker.io/rayproject/ray-ml", "quay.io/x/y", "localhost:5000/rayproject/ray", ""]
        ),
        st.text(alphabet=st.sampled_from(list("0123456789.-pycugtaarch64nightlylatestabcdef")), max_size=30),
    ),
    huge_number.map(lambda n: f"rayproject/ray:{n}.1.1"),  # a release number past int()'s 4300 digits
    st.sampled_from(
        [
            "@sha256:abc",
            "rayproject/ray:",
            "rayproject/ray:2.49.2-py",
            "rayproject/ray:2.49.2-cu",
            "rayproject/ray:nightly.251010.abcdef-py312",
            "library/:x",
            "//:",
            "a@b@c:d",
        ]
    ),
)
address_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list("htps:/[]:.0123456789abray@%#?-_ \x00")), max_size=30),
    st.sampled_from(
        [
            "http://[::1",
            "ray://:0",
            "[::1]:",
            "http://h:99999",
            "http://user@h:1",
            "auto",
            "１２３",
            "http://h:8265/path",
            "https://[fe80::1%eth0]:8265",
            "127.0.0.1:6379",
        ]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    digits_heavy,
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), st.integers(-5, 5)), children, max_size=4),
    ),
    max_leaves=25,
)
deeply_nested = st.integers(900, 4000).map(lambda n: "[" * n + "]" * n)

# --------------------------------------------------------------------------
# pure functions: never raise


@SETTINGS
@given(image_text)
def test_parse_image_never_raises(image):
    info = parse_image(image)
    assert info.image == image


@SETTINGS
@given(address_text, st.one_of(st.none(), st.integers(1, 65535)), st.one_of(st.none(), st.integers(1, 65535)))
def test_parse_address_raises_only_usage_error(text, client_port, gcs_port):
    try:
        address = parse_address(text, client_port=client_port, gcs_port=gcs_port)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 < address.dashboard_port < 65536 and address.host


@SETTINGS
@given(version_like)
def test_python_parts_never_raises(text):
    parts = python_parts(text)
    assert all(isinstance(p, int) for p in parts) and len(parts) <= 3


@SETTINGS
@given(
    version_like,
    st.one_of(st.none(), version_like),
    st.sampled_from(["client", "driver", "other"]),
    st.dictionaries(
        st.sampled_from(["RAY_IGNORE_VERSION_MISMATCH", "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL"]),
        st.sampled_from(["", "1", "minor", "patch"]),
        max_size=2,
    ),
)
def test_judge_ray_never_raises(head, local, mode, environ):
    verdict = judge_ray(head, local, mode, environ)
    assert verdict.summary


@SETTINGS
@given(
    version_like,
    st.booleans(),
    version_like,
    st.sampled_from(["client", "driver"]),
    st.one_of(st.none(), version_like),
    st.dictionaries(
        st.sampled_from(["RAY_IGNORE_VERSION_MISMATCH", "RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL"]),
        st.sampled_from(["", "1", "minor", "patch"]),
        max_size=2,
    ),
)
def test_judge_python_never_raises(head, exact, local, mode, ray, environ):
    verdict = judge_python(head, exact, local, mode, ray, environ)
    assert verdict.summary


json_records = st.one_of(
    trees.map(lambda t: json.dumps(t, default=str)),
    st.text(max_size=80),
    deeply_nested,
    st.binary(max_size=80).map(lambda b: b.decode("utf-8", errors="replace")),
)


@SETTINGS
@given(st.lists(json_records, max_size=4), st.sampled_from(["\0", "\n", "", "\0\n"]))
def test_conda_parse_json_output_never_raises(records, sep):
    value = parse_json_output(sep.join(records))
    assert value is None or isinstance(value, dict)


@SETTINGS
@given(st.binary(max_size=200))
def test_conda_parse_json_output_on_bytes_as_conda_runner_decodes_them(data):
    value = parse_json_output(data.decode("utf-8", errors="replace"))
    assert value is None or isinstance(value, dict)


# --------------------------------------------------------------------------
# files: only UsageError / DoctorError


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rdfuzz-") as folder:
        yield Path(folder)


requirement_words = st.sampled_from(
    [
        "ray",
        "ray[default]",
        "==",
        "2.49.2",
        ">=",
        "<",
        "!=",
        "~=",
        ";",
        "python_version",
        "'3.12'",
        "-r",
        "-c",
        "--index-url",
        "https://x",
        "-e",
        ".",
        "#",
        " #",
        " ",
        "\n",
        "numpy",
        "@",
        "file:///tmp/x",
        "..",
        "/",
        "other.txt",
        "packages.txt",
        "\x00",
        "\t",
        "\\",
        "*",
        "[",
        "]",
        "\ufeff",
        "ñ",
        # what pip-compile/uv write, and the rest of pip's file grammar
        "--hash=sha256:abc",
        "--hash",
        " \\\n    ",
        "\\",
        "--extra-index-url",
        "--requirement=",
        "--constraint",
        "-f",
        "--pre",
        "--no-binary",
        ":all:",
        "--bogus",
        "'",
        '"',
        "=",
        "-",
        "--",
        "https://u:fz-secret@h.invalid/x.whl",
        "git+https://fz-token@github.com/o/r.git",
    ]
)
FUZZ_SECRETS = ("fz-secret", "fz-token")
requirements_text = st.one_of(
    st.lists(requirement_words, max_size=20).map("".join),
    st.lists(requirement_words, max_size=20).map(" ".join),
    st.text(max_size=80),
)


@SETTINGS
@given(requirements_text, requirements_text)
def test_requirements_file_raises_only_doctor_errors(text, other):
    with scratch() as folder:
        (folder / "other.txt").write_text(other, encoding="utf-8", errors="surrogatepass")
        path = folder / "packages.txt"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            reqs = load_requirements(path)
        except UsageError as exc:  # the one error a requirements file may cause: exit 2, naming the file
            assert type(exc) is UsageError and "\n" not in str(exc) and not any(s in str(exc) for s in FUZZ_SECRETS)
            # It names packages.txt (as "packages.txt:LINE includes it: …" for an include that fails)
            # or the other.txt it includes, by its full path.
            assert "packages.txt" in str(exc) or str(folder) in str(exc), exc
            return
        shown = [*reqs.notes, *(e.display for e in reqs.entries), *(o.display for o in reqs.options)]
        assert not [line for line in shown if any(s in line for s in FUZZ_SECRETS)]
        raw = [e.text for e in reqs.entries] + [o.value or "" for o in reqs.options]
        assert all(s in reqs.secret_values() for s in FUZZ_SECRETS if any(s in r for r in raw))


compiled_entry = st.tuples(
    st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
    st.lists(st.from_regex(r"[0-9a-f]{64}", fullmatch=True), min_size=0, max_size=3),
    st.sampled_from(["", "    # via -r requirements.in\n", "    # via\n    #   ray\n"]),
    st.sampled_from(["", ' ; python_version >= "3.9"']),
)


@SETTINGS
@given(st.lists(compiled_entry, max_size=8, unique_by=lambda e: e[0]))
def test_hash_pinned_files_read_back_exactly(entries):
    """What `pip-compile --generate-hashes` writes: every pin, marker and hash, nothing else."""
    text = "#\n# autogenerated\n#\n"
    for name, version, hashes, via, marker in entries:
        text += f"{name}=={version}{marker}" + "".join(f" \\\n    --hash=sha256:{h}" for h in hashes) + "\n" + via
    with scratch() as folder:
        path = folder / "requirements.txt"
        path.write_text(text, encoding="utf-8")
        reqs = load_requirements(path)
    assert [(r.name, str(r.specifier)) for r in reqs.requirements] == [(n, f"=={v}") for n, v, *_ in entries]
    assert [e.hashes for e in reqs.entries] == [tuple(f"sha256:{h}" for h in e[2]) for e in entries]
    assert [bool(r.marker) for r in reqs.requirements] == [bool(e[4]) for e in entries]
    assert reqs.notes == [] and reqs.options == []


environment_docs = st.one_of(
    trees.map(lambda t: yaml.safe_dump(t)),
    st.fixed_dictionaries(
        {
            "name": trees,
            "dependencies": st.lists(
                st.one_of(
                    st.sampled_from(
                        [
                            "python=3.12.9",
                            "pip",
                            "numpy=1.26.4",
                            "conda-forge::ray-default=2.49.2",
                            "x==*",
                            "y>=1",
                            "=",
                            "::",
                        ]
                    ),
                    st.fixed_dictionaries({"pip": st.lists(st.one_of(requirements_text, trees), max_size=3)}),
                    trees,
                ),
                max_size=4,
            ),
        }
    ).map(lambda t: yaml.safe_dump(t)),
    st.text(max_size=80),
)


@SETTINGS
@given(environment_docs)
def test_environment_yml_raises_only_doctor_errors(text):
    with scratch() as folder:
        path = folder / "environment.yml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_requirements(path)
        except UsageError as exc:  # naming environment.yml, or a file its pip list includes
            assert type(exc) is UsageError and "\n" not in str(exc) and str(folder) in str(exc), exc


# Cluster files shaped like each format, with any part replaced by noise.
group = st.fixed_dictionaries(
    {},
    optional={
        "groupName": trees,
        "rayStartParams": st.one_of(
            st.dictionaries(st.sampled_from(["num-gpus", "num-cpus", "block"]), scalars, max_size=2), trees
        ),
        "template": st.one_of(
            st.fixed_dictionaries(
                {
                    "spec": st.fixed_dictionaries(
                        {},
                        optional={
                            "containers": st.one_of(
                                st.lists(
                                    st.fixed_dictionaries(
                                        {},
                                        optional={
                                            "image": st.one_of(image_text, trees),
                                            "resources": st.one_of(
                                                st.fixed_dictionaries(
                                                    {},
                                                    optional={
                                                        "limits": st.one_of(
                                                            st.dictionaries(
                                                                st.sampled_from(["nvidia.com/gpu", "cpu"]),
                                                                scalars,
                                                                max_size=2,
                                                            ),
                                                            trees,
                                                        ),
                                                        "requests": trees,
                                                    },
                                                ),
                                                trees,
                                            ),
                                        },
                                    ),
                                    max_size=2,
                                ),
                                trees,
                            )
                        },
                    )
                }
            ),
            trees,
        ),
    },
)
kuberay_doc = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["ray.io/v1", "ray.io/v1alpha1"]),
        "kind": st.sampled_from(["RayCluster", "RayJob", "RayService"]),
    },
    optional={
        "metadata": st.one_of(st.fixed_dictionaries({"name": trees}), trees),
        "spec": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "rayVersion": st.one_of(version_like, trees),
                    "headGroupSpec": st.one_of(group, trees),
                    "workerGroupSpecs": st.one_of(st.lists(st.one_of(group, trees), max_size=3), trees),
                    "rayClusterSpec": trees,
                    "rayClusterConfig": trees,
                    "clusterSelector": trees,
                },
            ),
            trees,
        ),
    },
)
launcher_doc = st.fixed_dictionaries(
    {"cluster_name": trees},
    optional={
        "docker": st.one_of(
            st.fixed_dictionaries(
                {}, optional={k: st.one_of(image_text, trees) for k in ("image", "head_image", "worker_image")}
            ),
            trees,
        ),
        "available_node_types": st.one_of(
            st.dictionaries(
                st.sampled_from(["head", "worker", "gpu"]),
                st.one_of(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "resources": st.one_of(st.dictionaries(st.sampled_from(["CPU", "GPU"]), scalars), trees),
                            "docker": trees,
                        },
                    ),
                    trees,
                ),
                max_size=3,
            ),
            trees,
        ),
        "head_node_type": st.one_of(st.sampled_from(["head", "worker", "absent"]), trees),
        "max_workers": scalars,
        "provider": st.one_of(st.just({"type": "aws"}), trees),
        "setup_commands": st.one_of(
            st.lists(
                st.one_of(st.sampled_from(["pip install ray==2.9.3", "pip install 'ray[default]==x'"]), trees),
                max_size=3,
            ),
            trees,
        ),
        "head_start_ray_commands": st.one_of(
            st.lists(
                st.one_of(
                    st.sampled_from(
                        ["ray start --head --num-gpus=1", "ray start --num-gpus", "ray start --num-gpus=x 'unclosed"]
                    ),
                    trees,
                ),
                max_size=3,
            ),
            trees,
        ),
        "worker_start_ray_commands": trees,
    },
)
helm_doc = st.fixed_dictionaries(
    {},
    optional={
        "image": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "repository": st.one_of(st.just("rayproject/ray"), trees),
                    "tag": st.one_of(version_like, trees),
                },
            ),
            trees,
        ),
        "head": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "rayVersion": trees,
                    "rayStartParams": trees,
                    "initArgs": trees,
                    "resources": trees,
                    "image": trees,
                },
            ),
            trees,
        ),
        "worker": st.one_of(
            st.fixed_dictionaries({}, optional={"disabled": trees, "groupName": trees, "resources": trees}), trees
        ),
        "additionalWorkerGroups": st.one_of(st.dictionaries(st.text(max_size=5), trees, max_size=3), trees),
    },
)
cluster_docs = st.one_of(kuberay_doc, launcher_doc, helm_doc, trees)


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


@SETTINGS
@given(cluster_docs)
def test_detect_format_never_raises(doc):
    assert detect_format(doc) in (None, "compose", "ray-launcher", "kuberay", "helm")


@SETTINGS
@given(
    st.one_of(
        cluster_docs.map(_dump),
        st.lists(cluster_docs, max_size=3).map(yaml.safe_dump_all),
        st.text(max_size=120),
        st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    )
)
def test_cluster_files_raise_only_usage_error(text):
    with scratch() as folder:
        path = folder / "cluster.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            spec = load_cluster_file(path, environ={})
        except UsageError as exc:
            assert type(exc) is UsageError and "\n" not in str(exc) and str(path) in str(exc)
            # doctor/head/cluster_files.py turns a KeyError/TypeError/... of a reader into this
            # catch-all: a reader that missed a shape, i.e. a bug, not a message for the user.
            assert "unexpected structure" not in str(exc), exc
            return
        assert spec.format in ("compose", "ray-launcher", "kuberay", "helm")
        from doctor.checks.lint import lint_cluster

        if spec.compose is None:
            assert all(r.status.value != "error" for r in lint_cluster(spec))


def test_deeply_nested_yaml_is_a_usage_error():
    """PyYAML composes recursively: a few hundred '[' end in RecursionError, which must not escape.

    One fixed example each, outside hypothesis: deep YAML is slow to parse, and
    hypothesis would draw it again and again.
    """
    deep = "[" * 600 + "]" * 600
    with scratch() as folder:
        for name, text, call in (
            ("environment.yml", "dependencies: " + deep, load_requirements),
            ("cluster.yaml", deep, lambda p: load_cluster_file(p, environ={})),
        ):
            path = folder / name
            path.write_text(text)
            try:
                call(path)
            except UsageError as exc:  # "nested too deeply", or what the shallower parse found
                assert type(exc) is UsageError and "\n" not in str(exc) and str(path) in str(exc)


# --------------------------------------------------------------------------
# the dashboard's answers: only DashboardError escapes


class _Answer:
    status = 200
    content_type = "application/json"
    body = b"{}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(_Answer.status)
        self.send_header("Content-Type", _Answer.content_type)
        self.send_header("Content-Length", str(len(_Answer.body)))
        self.end_headers()
        self.wfile.write(_Answer.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def dashboard_port() -> Iterator[int]:
    """One answering server for the module, shut down by pytest before the interpreter exits.

    A server left for the garbage collector hung CI: at exit its ``shutdown()`` waited for a
    ``serve_forever`` thread that finalization had already frozen.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


ray_shaped = st.one_of(
    st.fixed_dictionaries(
        {
            "result": trees,
            "data": st.one_of(
                st.fixed_dictionaries({}, optional={"rayVersion": trees, "pythonVersion": trees}),
                st.fixed_dictionaries({"result": st.one_of(st.fixed_dictionaries({"result": trees}), trees)}),
                trees,
            ),
        }
    ),
    st.fixed_dictionaries({}, optional={"ray_version": trees, "version": trees, "authentication_mode": trees}),
    trees,
)
bodies = st.one_of(
    ray_shaped.map(lambda t: json.dumps(t, default=str).encode()),
    st.text(max_size=100).map(str.encode),
    st.binary(max_size=100),
    deeply_nested.map(str.encode),
    st.sampled_from([b"success", b"<html>Grafana</html>", b"", b"null", b"[]", b'{"result": tru']),
)
statuses = st.one_of(st.sampled_from([200, 200, 200, 301, 400, 401, 403, 404, 500, 503]), st.integers(200, 599))


# DashboardError kinds an HTTP answer can give (doctor/head/dashboard.py::DashboardClient._get and friends).
ANSWER_KINDS = {"not_ray", "unauthorized", "forbidden", "http", "not_found", "server_error", "unhealthy"}


@HTTP_SETTINGS
@given(statuses, st.sampled_from(["application/json", "text/html", "text/plain", ""]), bodies)
def test_dashboard_client_raises_only_dashboard_error(dashboard_port, status, content_type, body):
    from doctor.target import HeadAddress

    _Answer.status, _Answer.content_type, _Answer.body = status, content_type, body
    client = DashboardClient(HeadAddress("127.0.0.1", dashboard_port), timeout=5)
    try:
        for call in (client.cluster_versions, client.auth_mode, client.healthz, client.nodes):
            try:
                call()
            except DashboardError as exc:
                # The server always answers: only the kinds an answer can give, never "refused" and the like.
                assert exc.kind in ANSWER_KINDS, (exc.kind, exc.message)
                assert "\n" not in exc.message
    finally:
        client.close()


@pytest.mark.parametrize(
    "body, call",
    [
        (("[" * 2000 + "]" * 2000).encode(), "cluster_versions"),  # RecursionError escaped get_json
        (b'{"data": {"result": {"result": 5}}}', "nodes"),  # TypeError escaped nodes()
    ],
    ids=["deeply-nested-json", "node-list-not-a-list"],
)
def test_dashboard_answers_the_property_test_found(dashboard_port, body, call):
    """Found once the property test above really reached its server (before, it met refused connections)."""
    from doctor.target import HeadAddress

    _Answer.status, _Answer.content_type, _Answer.body = 200, "application/json", body
    client = DashboardClient(HeadAddress("127.0.0.1", dashboard_port), timeout=5)
    try:
        with pytest.raises(DashboardError) as info:
            getattr(client, call)()
        assert info.value.kind == "not_ray"
    finally:
        client.close()
