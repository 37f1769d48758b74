"""YAML from files a user just cloned: safe, bounded, and described without ``str()``.

PyYAML shares the object an alias points to, so loading an alias bomb (a
500-byte file whose aliases nest to a billion elements) is cheap; what is not
is anything that walks the expanded tree afterwards: ``str()`` of it in an
error message ran past 15 s. ``BoundedLoader`` counts alias events and the
size they expand to while composing, and refuses a file past the bounds with
``AliasBomb``; ``describe`` names a bad value by its kind with a capped
``reprlib`` rendering, never ``str()`` of a whole structure. ``read_text`` and
``yaml_error`` word a file that cannot be read or parsed the same way for every
YAML file a user names (compose files, cluster files, environment.yml).
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from doctor.errors import UsageError
from doctor.masking import mask_credentials
from doctor.text import clip

__all__ = [
    "MAX_ALIASES",
    "MAX_FILE_BYTES",
    "MAX_EXPANDED",
    "AliasBomb",
    "BoundedLoader",
    "describe",
    "kind",
    "read_text",
    "yaml_error",
]

# Real compose files and Helm values use a few anchors (`x-common: &common`,
# `<<: *common`) a few dozen times; these bounds are far above that and far
# below what slows anything down.
# A compose file or cluster file is a few KiB; a bigger one is refused, never read whole.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ALIASES = 1000
MAX_EXPANDED = 100_000  # nodes the aliases of one document stand for, expanded


class AliasBomb(yaml.YAMLError):
    """The aliases of a document expand past the bounds."""


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts aliases and the nodes they expand to, refusing past the bounds."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._weights: dict[int, int] = {}
        self._aliases = 0
        self._expanded = 0

    def compose_document(self) -> Node | None:
        self._weights, self._aliases, self._expanded = {}, 0, 0
        return super().compose_document()  # type: ignore[no-any-return]

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        alias = self.check_event(AliasEvent)
        node = super().compose_node(parent, index)
        if node is None:
            return node
        if alias:
            self._aliases += 1
            self._expanded += self._weights.get(id(node), 1)  # an alias of a node still open counts 1
            if self._aliases > MAX_ALIASES or self._expanded > MAX_EXPANDED:
                raise AliasBomb(
                    f"its aliases expand past {MAX_EXPANDED:,} values ({self._aliases} aliases): "
                    "an alias bomb, or a file raydoctor will not expand"
                )
            return node
        weight = 1
        if isinstance(node, SequenceNode):
            weight += sum(self._weights.get(id(child), 1) for child in node.value)
        elif isinstance(node, MappingNode):
            weight += sum(self._weights.get(id(k), 1) + self._weights.get(id(v), 1) for k, v in node.value)
        self._weights[id(node)] = weight
        return node


class _Preview(reprlib.Repr):
    """``reprlib`` with each string's URL credentials masked before it is cut: cut first, a long URL
    loses its ``@`` and its password's start would show (``'https://u:SECRETS...example.com/simple'``)."""

    def repr_str(self, x: str, level: int) -> str:
        return super().repr_str(mask_credentials(x), level)


_REPR = _Preview()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxstring = _REPR.maxother = 40


def kind(value: Any) -> str:
    """A value's YAML kind, for messages: never ``str()`` of a structure."""
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return f"scalar ({type(value).__name__})"


def describe(value: Any, limit: int = 60) -> str:
    """A bad value for a message: a short ``repr`` of a scalar (``null`` for an empty one), or its kind
    and a capped preview; URL credentials masked (``doctor.masking``, pip's rule).

    The one describer of parsed YAML for every file a user names (compose files, ``--runtime-env``,
    environment.yml). Bounded in time and length whatever the value: ``reprlib`` stops at two
    levels and four items, so an aliased structure of a billion elements is
    shown as ``a list [[...], [...], ...]``.
    """
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        text = f"a {kind(value)} {_REPR.repr(value)}"
    else:
        text = _REPR.repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_text(path: Path, what: str, hint: str) -> str:
    """A YAML file the user named, as text (UTF-8, a BOM dropped), or one-line ``UsageError``.

    ``what`` names the file in the message ("compose file"); ``hint`` says how to name another.
    """
    from doctor import files

    try:
        return files.read_text(path, MAX_FILE_BYTES)
    except files.Unreadable as exc:
        if exc.missing:
            raise UsageError(f"{path}: no such {what}", hint=hint) from None
        if exc.reason.startswith("is not UTF-8"):
            raise UsageError(f"{path}: not UTF-8 text", hint=f"save the {what} as UTF-8") from None
        if exc.reason == files.IS_A_DIRECTORY:
            raise UsageError(f"{path}: is a directory, not a {what}", hint=hint) from None
        raise UsageError(f"{path}: {clip(exc.reason, 80)}", hint=hint) from None


def yaml_error(path: Path, exc: yaml.YAMLError, hint: str = "fix the YAML") -> UsageError:
    """The one-line ``UsageError`` for a file PyYAML (or ``BoundedLoader``) refused."""
    if isinstance(exc, AliasBomb):
        return UsageError(f"{path}: {exc}", hint="write the values out instead of nesting aliases")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return UsageError(
            f"{path}: invalid YAML{where}: {clip(exc.problem or exc.context or 'parse error', 80)}", hint=hint
        )
    return UsageError(f"{path}: invalid YAML: {clip(exc, 80)}", hint=hint)
