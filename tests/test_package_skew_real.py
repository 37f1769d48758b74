"""packages.skew's table against reality: objects pickled by one version of a package, loaded by another.

Ray moves objects as pickles (protocol 5, through ray.cloudpickle); this does the same without Ray:
for each pair of versions of a table row's package, two cached venvs on this machine's Python 3.11
(``tests.ray_cluster.ensure_venv``, one per version, the other pins shared so that only the row's
package differs), an object pickled with ``pickle.dumps(obj, protocol=5)`` in one and loaded with
``pickle.loads`` in the other, both ways: the newer (cluster) side's object in the older (client)
version and back. The classes the user defines (a pydantic model, an attrs class) live in one
module, ``skewobj``, written to a temp folder on both sides' PYTHONPATH.

What each direction really does is written below (``PAIRS``) and asserted exactly; then the table
must agree: ``judge`` says ``breaks`` for a pair exactly when one of its directions failed, and a
row's ``symptom`` quotes every error seen. A change to ``doctor/package_skew.py`` that contradicts
what happens fails here. numpy and torch are not here (numpy is checked through a real Ray cluster,
torch is too large to download for a test).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from doctor.package_skew import RULES, judge
from tests.helpers import missing
from tests.ray_cluster import ensure_venv, python_version

pytestmark = [pytest.mark.slow, pytest.mark.needs(python="3.11", uv=True)]

NUMPY1 = "numpy==1.26.4"  # pandas 1.5.3 and pyarrow 14 need numpy < 2
NUMPY2 = "numpy==2.2.6"  # pyarrow 26 needs numpy >= 2

LOADS = "loads"


@dataclass(frozen=True)
class Pair:
    row: str  # the table row (a package name)
    old: str  # the client's version
    new: str  # the cluster's version
    kind: str  # the object (skewobj.make)
    new_to_old: str  # what loading the new side's object in the old version does
    old_to_new: str | None  # ... and the old side's in the new (None: the old version cannot make it)
    shared: tuple[str, ...] = ()  # pins both venvs have
    edge: bool = False  # an object the row names as a warning: it fails, yet the row does not break

    @property
    def id(self) -> str:
        return f"{self.row}-{self.old}-{self.new}" + (f"-{self.kind}" if self.edge else "")


PAIRS = [
    Pair(
        "pydantic",
        "1.10.27",
        "2.14.4",
        "pydantic_model",
        new_to_old="raises KeyError: '__fields_set__'",
        old_to_new='loads wrong: ["Point", 3, "hello", []]',  # values kept, fields set lost
    ),
    Pair("pydantic", "2.9.2", "2.14.4", "pydantic_model", new_to_old=LOADS, old_to_new=LOADS),
    Pair(
        "attrs",
        "22.1.0",
        "22.2.0",
        "attrs_slotted",
        new_to_old='loads wrong: ["Job", "count", "label"]',  # the field names as values, no error
        old_to_new="loads, then raises AttributeError: 'Job' object has no attribute 'count'",
    ),
    Pair(
        "attrs",
        "22.1.0",
        "26.1.0",
        "attrs_slotted",
        new_to_old='loads wrong: ["Job", "count", "label"]',
        old_to_new=LOADS,  # 23.1.0 and later read 22.1's tuples again
    ),
    Pair("attrs", "25.1.0", "26.1.0", "attrs_slotted", new_to_old=LOADS, old_to_new=LOADS),
    Pair(
        "pandas",
        "1.5.3",
        "2.2.3",
        "pandas_frame",
        new_to_old=LOADS,
        old_to_new="raises ModuleNotFoundError: No module named 'pandas.core.indexes.numeric'",
        shared=(NUMPY1,),
    ),
    Pair("pandas", "2.1.4", "2.2.3", "pandas_frame", new_to_old=LOADS, old_to_new=LOADS, shared=(NUMPY1,)),
    Pair(
        "pandas",
        "2.2.3",
        "3.0.6",
        "pandas_frame",
        new_to_old="raises TypeError: StringDtype.__init__() takes from 1 to 2 positional arguments but 3 were given",
        old_to_new=LOADS,
        shared=(NUMPY1,),
    ),
    Pair("pyarrow", "14.0.2", "18.1.0", "arrow_table", new_to_old=LOADS, old_to_new=LOADS, shared=(NUMPY1,)),
    Pair("pyarrow", "17.0.0", "26.0.1", "arrow_table", new_to_old=LOADS, old_to_new=LOADS, shared=(NUMPY2,)),
    Pair(
        "pyarrow",
        "14.0.2",
        "18.1.0",
        "arrow_string_view",  # a type pyarrow 14 does not have
        new_to_old="raises ValueError: No type alias for string_view",
        old_to_new=None,
        shared=(NUMPY1,),
        edge=True,
    ),
]

# The objects, importable by one name in every venv. Every import is guarded: a venv has one package.
SKEWOBJ = textwrap.dedent(
    '''
    """Objects for tests/test_package_skew_real.py (written there): make, summarize, dump, load."""
    import json
    import pickle

    try:
        import attrs
    except ImportError:
        attrs = None
    try:
        import pydantic
    except ImportError:
        pydantic = None

    if attrs is not None:

        @attrs.define  # slotted
        class Job:
            count: int
            label: str

    if pydantic is not None:

        class Point(pydantic.BaseModel):
            x: int
            label: str


    def make(kind):
        if kind == "pydantic_model":
            return Point(x=3, label="hello")
        if kind == "attrs_slotted":
            return Job(count=3, label="hello")
        if kind == "pandas_frame":
            import pandas as pd

            return pd.DataFrame(
                {
                    "n": [1, 2],
                    "s": ["x", "y"],
                    "t": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                    "k": pd.Categorical(["u", "v"]),
                },
                index=[10, 20],
            )
        import datetime
        import decimal

        import pyarrow as pa

        if kind == "arrow_table":
            return pa.table(
                {
                    "n": [1, 2],
                    "s": ["x", "y"],
                    "l": [[1], [2, 3]],
                    "st": [{"p": 1}, {"p": 2}],
                    "d": pa.array(["u", "v"]).dictionary_encode(),
                    "t": pa.array([datetime.datetime(2024, 1, 1), None], pa.timestamp("us", tz="UTC")),
                    "m": pa.array([decimal.Decimal("1.5"), None], pa.decimal128(5, 2)),
                }
            )
        if kind == "arrow_string_view":
            return pa.table({"s": pa.array(["x", "y"], pa.string_view())})
        raise ValueError(kind)


    def summary(kind, obj):
        """What the object holds, as JSON, to compare the loaded object with the one pickled."""
        if kind == "pydantic_model":
            fields_set = obj.__fields_set__ if pydantic.VERSION.startswith("1.") else obj.model_fields_set
            return [type(obj).__name__, obj.x, obj.label, sorted(fields_set)]
        if kind == "attrs_slotted":
            return [type(obj).__name__, obj.count, obj.label]
        if kind == "pandas_frame":
            columns = {str(c): [str(v) for v in obj[c]] for c in obj.columns}
            return [type(obj).__name__, obj.index.tolist(), columns, [str(d) for d in obj.dtypes]]
        columns = {k: [str(v) for v in vs] for k, vs in obj.to_pydict().items()}
        return [type(obj).__name__, str(obj.schema), columns]


    def dump(folder, kinds):
        for kind in kinds:
            obj = make(kind)
            with open(f"{folder}/{kind}.pkl", "wb") as f:
                f.write(pickle.dumps(obj, protocol=5))
            with open(f"{folder}/{kind}.json", "w") as f:
                json.dump(summary(kind, obj), f)


    def load(kind, path):
        with open(path, "rb") as f:
            data = f.read()
        with open(path[: -len(".pkl")] + ".json") as f:
            expected = json.load(f)
        try:
            obj = pickle.loads(data)
        except Exception as exc:
            return f"raises {type(exc).__name__}: {exc}"
        try:
            got = json.loads(json.dumps(summary(kind, obj)))
        except Exception as exc:
            return f"loads, then raises {type(exc).__name__}: {exc}"
        return "loads" if got == expected else "loads wrong: " + json.dumps(got)


    def main(argv):
        """``dump FOLDER KIND...`` or ``load KIND PICKLE ...`` (prints {pickle: outcome} as JSON).

        Called as ``import skewobj; skewobj.main(...)``, never run as __main__: the classes must
        pickle as skewobj.Job and skewobj.Point.
        """
        if argv[0] == "dump":
            dump(argv[1], argv[2:])
        else:
            pairs = argv[1:]
            print(json.dumps({path: load(kind, path) for kind, path in zip(pairs[::2], pairs[1::2])}))
    '''
)


def pins(pair: Pair, version: str) -> tuple[str, ...]:
    return tuple(sorted((f"{pair.row}=={version}", *pair.shared)))


def directions(pair: Pair) -> list[tuple[str, str, str]]:
    """(direction, dumping version, loading version)."""
    out = [("new_to_old", pair.new, pair.old)]
    if pair.old_to_new is not None:
        out.append(("old_to_new", pair.old, pair.new))
    return out


def run(python: Path, args: list[str], cwd: Path, path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(path)
    done = subprocess.run(
        [str(python), "-s", "-c", "import sys, skewobj; skewobj.main(sys.argv[1:])", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )
    assert done.returncode == 0, f"{python} skewobj {args[0]}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def outcomes(local_python311: str, tmp_path_factory) -> dict[tuple[str, str], str]:
    """{(pair id, direction): what really happened}, every round trip in one go (one dump and one load per venv)."""
    version = python_version(local_python311)
    venvs: dict[tuple[str, ...], Path] = {}
    for pair in PAIRS:
        for v in (pair.old, pair.new):
            key = pins(pair, v)
            if key not in venvs:
                name = f"skew-py{version}-" + "-".join(key).replace("==", "")
                try:
                    venvs[key] = ensure_venv(
                        name, key, local_python311, about={"packages": list(key), "python": version}
                    )
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    missing(f"cannot build the venv {name} (uv pip install {' '.join(key)}): {exc}")
    work = tmp_path_factory.mktemp("skew")
    mods, cwd = work / "mods", work / "cwd"
    mods.mkdir()
    cwd.mkdir()
    (mods / "skewobj.py").write_text(SKEWOBJ)
    dumps: dict[tuple[str, ...], set[str]] = {}
    loads: dict[tuple[str, ...], list[tuple[str, str, Path]]] = {}  # loader: (pair id, direction, pickle)
    for pair in PAIRS:
        for direction, dumper, loader in directions(pair):
            dumps.setdefault(pins(pair, dumper), set()).add(pair.kind)
            folder = work / "dumps" / "-".join(pins(pair, dumper))
            loads.setdefault(pins(pair, loader), []).append((pair.id, direction, folder / f"{pair.kind}.pkl"))
    for key, kinds in dumps.items():
        folder = work / "dumps" / "-".join(key)
        folder.mkdir(parents=True)
        run(venvs[key], ["dump", str(folder), *sorted(kinds)], cwd, mods)
    seen: dict[tuple[str, str], str] = {}
    for key, jobs in loads.items():
        args = [a for pair_id, _, path in jobs for a in (next(p.kind for p in PAIRS if p.id == pair_id), str(path))]
        got = json.loads(run(venvs[key], ["load", *args], cwd, mods).splitlines()[-1])
        for pair_id, direction, path in jobs:
            seen[(pair_id, direction)] = got[str(path)]
    return seen


ROUND_TRIPS = [
    pytest.param(pair, direction, id=f"{pair.id}-{direction}") for pair in PAIRS for direction, _, _ in directions(pair)
]


@pytest.mark.parametrize("pair,direction", ROUND_TRIPS)
def test_round_trip_does_what_was_seen(outcomes, pair, direction):
    assert outcomes[(pair.id, direction)] == getattr(pair, direction)


@pytest.mark.parametrize("pair", [pytest.param(p, id=p.id) for p in PAIRS])
def test_the_table_says_what_happens(outcomes, pair):
    seen = [outcomes[(pair.id, d)] for d, _, _ in directions(pair)]
    failed = any(s != LOADS for s in seen)
    [skew] = judge({pair.row: pair.old}, {pair.row: pair.new})
    assert skew.rule is RULES[pair.row]
    if pair.edge:  # an object the row warns about: it fails, the row does not break
        assert failed and skew.differs and not skew.breaks, seen
    else:
        assert skew.breaks is failed, f"judge says breaks={skew.breaks}; seen: {seen}"
    for s in seen:  # every error seen is quoted in the row's symptom
        if "raises " in s:
            error = s.split("raises ", 1)[1]
            assert error in skew.rule.symptom, f"{error!r} is not in the {pair.row} row's symptom"
