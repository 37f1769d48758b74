"""Which package differences between this machine and the cluster break Ray, and how it shows.

One table, each row with why. Ray moves objects between a client (or driver) and workers as
pickles (``ray/_private/serialization.py``: pickle protocol 5 through Ray's vendored
``ray.cloudpickle``, numpy arrays as out-of-band buffers), so an object made by one version of a
package is rebuilt by another. Where a package's pickled form changed between versions, the error
names the package's internals, never the version difference: users report it as a Ray bug
(ray-project/ray #15407, #15424, #48592; LanceDB Geneva's dependency-verification guide maps the
symptoms: numpy 1 against 2 as ``ArrowInvalid`` or unpickling errors, attrs as ``Enum.__new__``).

The model is dask's ``distributed/versions.py``: a list of packages that matter and notes for those
whose variation is harmless (its ``notes_mismatch_package``: "msgpack: Variation is ok, as long as
everything is above 0.6"). ``level`` is how much of the version must agree: ``major``, ``minor``
(major.minor) or ``exact``; ``none`` says a difference is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from doctor.errors import UsageError


@dataclass(frozen=True)
class SkewRule:
    name: str  # canonical distribution name
    level: str  # "major" | "minor" | "exact" | "none"
    breaks: bool  # a difference at ``level`` breaks object exchange (a failure), else a warning at most
    symptom: str  # what the user sees
    why: str  # where the rule comes from


TABLE: tuple[SkewRule, ...] = (
    SkewRule(
        "numpy",
        "major",
        True,
        "arrays sent between the two sides fail to load (ModuleNotFoundError: No module named "
        "'numpy._core', or pickle errors), and Arrow conversions raise ArrowInvalid",
        "NumPy 2.0 moved numpy.core to numpy._core and changed its pickles (NumPy 2.0 migration guide); "
        "Ray ships arrays as pickle-5 buffers (ray/_private/serialization.py); Geneva's dependency-verification guide",
    ),
    SkewRule(
        "pyarrow",
        "major",
        True,
        "Ray Data blocks and Arrow tables fail to deserialize (ArrowInvalid, or unpickling errors in pyarrow.lib)",
        "Ray Data's blocks are Arrow tables (ray/data/_internal/arrow_block.py) pickled through "
        "pyarrow's own reducers, which change between major releases",
    ),
    SkewRule(
        "pandas",
        "minor",
        True,
        "DataFrames fail to unpickle (AttributeError or ModuleNotFoundError inside pandas.core, e.g. "
        "'pandas.core.indexes.numeric')",
        "pandas guarantees pickles only backwards, not forwards (pandas' read_pickle documentation); its "
        "internal modules move between minor releases",
    ),
    SkewRule(
        "attrs",
        "minor",
        True,
        "objects of attrs classes fail to rebuild (TypeError: Enum.__new__() takes 1 positional argument "
        "but 2 were given, or a missing attribute)",
        "attrs' generated __reduce__/__setstate__ differ between releases; Geneva's dependency-"
        "verification guide maps Enum.__new__ to an attrs mismatch",
    ),
    SkewRule(
        "pydantic",
        "major",
        True,
        "models fail to unpickle (pydantic v1 and v2 models are different classes: AttributeError "
        "'__fields_set__' or '__pydantic_fields_set__'); Ray Serve configs fail validation",
        "pydantic 2 rewrote BaseModel's state (pydantic's v2 migration guide); Ray supports both through "
        "ray/_private/pydantic_compat.py, but one object crosses between them",
    ),
    SkewRule(
        "torch",
        "minor",
        True,
        "tensors fail to load on the other side (AttributeError: Can't get attribute '_rebuild_...' on "
        "torch._utils, or a storage type error)",
        "tensors pickle through torch's rebuild functions (torch/_utils.py, torch/_tensor.py::__reduce_ex__), "
        "which are added and changed between minor releases",
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
    def breaks(self) -> bool:
        return self.rule is not None and self.rule.breaks and not same_at(self.local, self.head, self.rule.level)

    def describe(self) -> str:
        text = f"{self.name} {self.local} here, {self.head} on the cluster"
        if self.breaks and self.rule is not None:
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


def judge(local: Mapping[str, str], head: Mapping[str, str]) -> list[Skew]:
    """Every package both sides have at different versions, table rows first (Ray itself is judged elsewhere)."""
    out = []
    for name in sorted(set(local) & set(head)):
        if name == "ray" or local[name] == head[name]:
            continue
        out.append(Skew(name, local[name], head[name], RULES.get(name)))
    return sorted(out, key=lambda s: (not s.breaks, s.rule is None, s.name))


def matched_pins(head: Mapping[str, str], *, only: set[str] | None = None) -> list[str]:
    """``name==version`` of the head for every breaking row it has (``fix --match-head``)."""
    names = [r.name for r in TABLE if r.breaks and r.name in head and (only is None or r.name in only)]
    return [f"{n}=={head[n]}" for n in names]


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
