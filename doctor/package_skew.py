"""Which package differences between this machine and the cluster break Ray, and how it shows.

One table, each row with why. Ray moves objects between a client (or driver) and workers as
pickles (``ray/_private/serialization.py``: pickle protocol 5 through Ray's vendored
``ray.cloudpickle``, numpy arrays as out-of-band buffers), so an object made by one version of a
package is rebuilt by another. Where a package's pickled form changed between versions, the error
names the package's internals, never the version difference: users report it as a Ray bug
(ray-project/ray #15407, #15424, #48592; LanceDB Geneva's dependency-verification guide maps the
symptoms: numpy 1 against 2 as ``ArrowInvalid`` or unpickling errors, attrs as ``Enum.__new__``, which
the round trips behind the attrs row did not show).

The model is dask's ``distributed/versions.py``: a list of packages that matter and notes for those
whose variation is harmless (its ``notes_mismatch_package``: "msgpack: Variation is ok, as long as
everything is above 0.6"). ``level`` is how much of the version must agree: ``major``, ``minor``
(major.minor) or ``exact``; ``none`` says a difference is harmless. ``across`` narrows a row to the
releases where the pickled form changed: attrs' slotted classes pickle differently from 22.2.0 on,
and a difference on one side of it loads both ways. A row with ``breaks`` False and a level is a
warning: some objects fail across it (pyarrow: a column type the older release lacks), most load.

The rows of pyarrow, pandas, attrs and pydantic say what was seen when an object pickled (protocol 5)
by one version was loaded with ``pickle.loads`` by the other, both ways; tests/test_package_skew_real.py
repeats those round trips in two venvs per pair and fails where this table contradicts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from doctor.errors import UsageError
from doctor.pins import Pin, valid_name


@dataclass(frozen=True)
class SkewRule:
    name: str  # canonical distribution name
    level: str  # "major" | "minor" | "exact" | "none"
    breaks: bool  # a difference at ``level`` breaks object exchange (a failure), else a warning at most
    symptom: str  # what the user sees
    why: str  # where the rule comes from
    across: tuple[str, ...] = ()  # releases whose pickles changed: if given, only a difference spanning one breaks


TABLE: tuple[SkewRule, ...] = (
    SkewRule(
        "numpy",
        "major",
        True,
        "arrays made by numpy 2 fail to load under numpy 1: from a numpy-2 cluster, ray.get on a numpy-1 "
        "client raises ModuleNotFoundError: No module named 'numpy._core.numeric'; sent from a numpy-2 client "
        "to a numpy-1 cluster, an array breaks the Ray Client connection (ConnectionError: Failed during this "
        "or a previous request ... details = \"No module named 'numpy._core.numeric'\"); arrays from numpy 1 "
        "load under numpy 2",
        "NumPy 2.0 moved numpy.core to numpy._core (NumPy 2.0 migration guide): its arrays pickle at protocol 5 "
        "(Ray Client's default both ways: ray/util/client/client_pickler.py, server/server_pickler.py) through "
        "numpy._core.numeric._frombuffer, and numpy 1.26's numpy._core holds only stubs (multiarray, umath), "
        "no numeric; numpy 2 keeps numpy.core as an alias, so numpy-1 pickles load there (seen with Ray 2.49.2, "
        "numpy 2.2.6 and 1.26.4: "
        "tests/test_package_skew.py). Ray ships arrays as pickle-5 buffers (ray/_private/serialization.py); "
        "Geneva's dependency-verification guide",
    ),
    SkewRule(
        "pyarrow",
        "major",
        False,
        "tables of types both releases have load both ways; a column type the older pyarrow lacks fails "
        "there (ValueError: No type alias for string_view)",
        "seen here: a Table of int, string, list, struct, dictionary, timestamp and decimal columns loads both "
        "ways between pyarrow 14.0.2 and 18.1.0 and between 17.0.0 and 26.0.1; an 18.1.0 table with a "
        "string_view column loaded by 14.0.2 raises ValueError: No type alias for string_view. A Table pickles "
        "as its columns' Arrow buffers and each type's name (pyarrow/table.pxi::Table.__reduce__, "
        "array.pxi::_reduce_array_data, types.pxi::DataType.__reduce__ -> type_for_alias)",
    ),
    SkewRule(
        "pandas",
        "major",
        True,
        "DataFrames fail to unpickle: a 1.x frame with an integer index in 2.x raises ModuleNotFoundError: No "
        "module named 'pandas.core.indexes.numeric'; a 3.x frame with a str column in 2.x raises TypeError: "
        "StringDtype.__init__() takes from 1 to 2 positional arguments but 3 were given",
        "seen here: a 1.5.3 frame loaded by 2.2.3 raises the ModuleNotFoundError (2.2.3's frame loads in 1.5.3); "
        "a 3.0.6 frame loaded by 2.2.3 raises the TypeError (2.2.3's loads in 3.0.6); 2.1.4 and 2.2.3 load each "
        "other's. pandas promises only that read_pickle reads older pickles (pandas/io/pickle.py::read_pickle, "
        "Notes), through its own unpickler, which maps 'pandas.core.indexes.numeric' to Index "
        "(pandas/compat/pickle_compat.py); Ray loads with plain pickle.loads (ray/cloudpickle/cloudpickle.py), "
        "without it. 3.0's StringDtype.__reduce__ passes (storage, na_value) (pandas/core/arrays/string_.py)",
    ),
    SkewRule(
        "attrs",
        "minor",
        True,
        "objects of slotted attrs classes (attrs.define, attr.s(slots=True)) come back wrong: under attrs "
        "before 22.2 a newer object gets its field names as values, with no error; under 22.2.0 an older "
        "object loads without its fields (AttributeError: 'Job' object has no attribute 'count' when one is read)",
        "seen here: a 22.2.0 or 26.1.0 object loaded by 22.1.0 has count == 'count'; a 22.1.0 object loaded by "
        "22.2.0 lacks its fields, by 26.1.0 it loads; 25.1.0 and 26.1.0 load each other's. attrs 22.2.0's "
        "slots_getstate returns a dict where 22.1.0's returned a tuple (attr/_make.py; python-attrs/attrs#1009), "
        "and from 23.1.0 slots_setstate reads tuples again (attr/_make.py; python-attrs/attrs#1085)",
        across=("22.2.0",),
    ),
    SkewRule(
        "pydantic",
        "major",
        True,
        "a pydantic 2 model fails to unpickle under pydantic 1 (KeyError: '__fields_set__'); a pydantic 1 model "
        "loads under 2 with its values but no fields set (model_fields_set is empty)",
        "seen here: a 2.14.4 model loaded by 1.10.27 raises KeyError: '__fields_set__', a 1.10.27 model loads "
        "in 2.14.4 without its fields set; 2.9.2 and 2.14.4 load each other's. 1.10's BaseModel.__setstate__ "
        "reads state['__fields_set__'], 2's __getstate__ writes '__pydantic_fields_set__' and its __setstate__ "
        "reads every key with state.get(key, {}) (pydantic/main.py of each). Ray supports both majors through "
        "ray/_common/pydantic_compat.py, but one object crosses between them",
    ),
    SkewRule(
        "torch",
        "minor",
        False,
        "ordinary tensors, modules and state_dicts load both ways; float8 and uint16 tensors do not: under a "
        "torch before 2.4 they raise AttributeError: Can't get attribute '_rebuild_tensor_v3' on <module "
        "'torch._utils'>, elsewhere AttributeError: type object 'torch.storage.UntypedStorage' has no attribute "
        "'dtype' (even between equal versions)",
        "seen here (pickle protocol 5, Python 3.11, torch 2.1.2, 2.4.1, 2.5.1 and 2.13.0, all 16 pairs both ways): "
        "float32, int64, bfloat16, requires_grad and transposed tensors, an nn.Linear and its state_dict load "
        "with equal values; float8_e4m3fn and uint16 tensors fail as quoted, and some releases cannot pickle them "
        "at all (KeyError: 'dtype torch.float8_e4m3fn is not recognized'). Tensors pickle through "
        "torch/_tensor.py::Tensor._reduce_ex_internal: _rebuild_tensor_v2 with a TypedStorage, or, for "
        "torch.storage._new_dtypes(), _rebuild_tensor_v3 (absent before 2.4) with an UntypedStorage, whose legacy "
        "torch.load path (torch/serialization.py, persistent_load) reads storage_type.dtype. 1.x against 2.x, "
        "CUDA, sparse and quantized tensors were not tried",
    ),
    SkewRule(
        "cloudpickle",
        "none",
        False,
        "none for Ray's own objects; code that pickles with cloudpickle itself (dask, joblib) may fail "
        "to load functions",
        "Ray pickles with its vendored copy, ray.cloudpickle (python/ray/cloudpickle/), not the installed "
        "cloudpickle; dask lists cloudpickle as required (distributed/versions.py)",
    ),
    SkewRule(
        "msgpack",
        "none",
        False,
        "none",
        "dask's distributed/versions.py: 'msgpack: Variation is ok, as long as everything is above 0.6'",
    ),
    SkewRule(
        "grpcio",
        "none",
        False,
        "none (Ray Client's gRPC wire protocol does not depend on the grpcio version)",
        "Ray Client speaks gRPC (ray/util/client/worker.py); HTTP/2 framing is stable across grpcio releases",
    ),
    SkewRule(
        "protobuf",
        "none",
        False,
        "none for the wire; the protobuf runtime must suit the generated code Ray ships (checked at import)",
        "protobuf's wire format is stable by design (protobuf's language guide)",
    ),
)
RULES = {rule.name: rule for rule in TABLE}


@dataclass(frozen=True)
class Skew:
    """One package installed on both sides at versions that differ."""

    name: str
    local: str
    head: str
    rule: SkewRule | None  # None: not in the table

    @property
    def differs(self) -> bool:
        """The versions differ where the row says it matters: at its level and, where it names releases, across one."""
        rule = self.rule
        return (
            rule is not None
            and not same_at(self.local, self.head, rule.level)
            and spans(self.local, self.head, rule.across)
        )

    @property
    def breaks(self) -> bool:
        return self.rule is not None and self.rule.breaks and self.differs

    def describe(self) -> str:
        text = f"{self.name} {self.local} here, {self.head} on the cluster"
        if self.differs and self.rule is not None:
            text += f": {self.rule.symptom}"
        elif self.rule is not None and self.rule.level == "none":
            text += " (harmless)"
        return text


def same_at(a: str, b: str, level: str) -> bool:
    """Whether versions ``a`` and ``b`` agree at ``level``; unreadable versions agree only when equal."""
    if level == "none":
        return True
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return a == b
    if level == "major":
        return va.major == vb.major
    if level == "minor":
        return va.release[:2] == vb.release[:2]
    return va == vb


def spans(a: str, b: str, releases: tuple[str, ...]) -> bool:
    """Whether one of ``releases`` lies between ``a`` and ``b`` (one is older than it, the other not).

    No releases: always. Unreadable versions: always (nothing says they are on one side).
    """
    if not releases:
        return True
    try:
        va, vb = Version(a), Version(b)
        return any((va < Version(r)) != (vb < Version(r)) for r in releases)
    except InvalidVersion:
        return True


def judge(local: Mapping[str, str], head: Mapping[str, str]) -> list[Skew]:
    """Every package both sides have at different versions, table rows first (Ray itself is judged elsewhere)."""
    out = []
    for name in sorted(set(local) & set(head)):
        if name == "ray" or local[name] == head[name]:
            continue
        out.append(Skew(name, local[name], head[name], RULES.get(name)))
    return sorted(out, key=lambda s: (not s.breaks, s.rule is None, s.name))


# packaging's own pattern for a valid project name (PEP 508; ``packaging.utils._validate_regex``).
def valid_pins(head: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the entries that make a ``pin``, the names of those that do not, shown safely)."""
    good: dict[str, str] = {}
    bad: list[str] = []
    for name, version in head.items():
        if Pin.of(name, version) is not None:
            good[name] = version
        else:
            bad.append(name if valid_name(name) else "(an invalid name)")
    return good, bad


def matched_pins(head: Mapping[str, str], *, only: set[str] | None = None) -> list[Pin]:
    """The head's ``Pin`` for every breaking row it has (``fix --match-head``); a version that is not
    PEP 440 (see ``Pin.of``) is left out, never written."""
    names = [r.name for r in TABLE if r.breaks and r.name in head and (only is None or r.name in only)]
    return [pin for n in names if (pin := Pin.of(n, head[n])) is not None]


def read_pins(path: Path) -> dict[str, str]:
    """A constraints file's exact pins (``name==version``), read by the one requirements parser."""
    from doctor.local.requirements import load_requirements

    if not path.is_file():
        raise UsageError(f"{path}: no such file (a constraints file of name==version lines)")
    reqs = load_requirements(path)
    out: dict[str, str] = {}
    for entry in reqs.entries:
        req = entry.requirement
        if req is None:
            continue
        exact = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(exact) == 1:
            out[canonicalize_name(req.name)] = exact[0]
    return out
