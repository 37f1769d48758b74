"""``raydoctor fix --cluster``: apply check's compose edits to the compose file, comments and layout kept.

The edits are the ``doctor.model.Change`` of check's compose findings: a key path, an operation and a
YAML value (or, for a `ray start`, the options to drop and add), never the display strings. They are
applied with ruamel.yaml's round trip (imported here only: a check never pays for it), which keeps
comments, key order, quoting and indentation.

A file is edited only when that is provably safe, else refused in one line naming it and why, with
nothing written:

* it is read through the one capped reader, a symlink refused (only the file named is ever written);
* anchors, aliases and merge keys (``&a``, ``*a``, ``<<:``) are refused: an edit at one place would
  change others; so are duplicate keys and several documents;
* ruamel's reading must equal raydoctor's own (``doctor.head.compose.load_tree``, PyYAML): YAML 1.1
  words such as ``yes`` that the two read differently are refused, as is a key holding a variable;
* the new text, read back with raydoctor's reader, must equal the original data with the changes
  applied, and each changed `ray start` must read back as the option line intended;
* at write time the file must still be the bytes that were planned from (``write_plan``), and it is
  written through ``doctor.files.write_atomic`` with its mode kept.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doctor import files
from doctor.errors import UsageError
from doctor.model import Change, Edit, Op
from doctor.parsers.ray_start import RayStartLine, first_ray_start
from doctor.parsers.shell import SHELL_OPERATORS, SHELLS, ShellWord, scan_shell, shell_script_at, unwrap_shells
from doctor.parsers.yaml_load import MAX_FILE_BYTES

__all__ = ["FilePlan", "Refused", "plan_file", "write_plan"]

# Words `fix --cluster` adds to a `ray start` must read the same in any quoting: no quote, `$`,
# backslash, backtick, space or glob character.
_SAFE_WORD = re.compile(r"[A-Za-z0-9_=:./,@+%-]+")
_BOM = b"\xef\xbb\xbf"


class Refused(UsageError):
    """The file cannot be edited safely: nothing was written (exit 2, as any fix that could not run)."""


@dataclass
class FilePlan:
    """What ``fix --cluster`` would write: the file as read, its new text, and the edits that make it."""

    path: Path
    original: bytes  # the bytes read: the file must still hold them when written
    old_text: str
    new_text: str
    applied: list[Edit] = field(default_factory=list)  # edits that change the file
    already: list[Edit] = field(default_factory=list)  # edits the file already satisfies

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text

    def diff(self) -> str:
        """The unified diff of the change, as ``diff -u`` prints it."""
        name = str(self.path)
        lines = difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True), name, name
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    def services(self) -> list[str]:
        """The services whose definition the applied edits change, in file order of the edits."""
        names = [e.change.key[1] for e in self.applied if e.change and e.change.key[:1] == ("services",)]
        return [str(n) for n in dict.fromkeys(names)]

    def touches_networks(self) -> bool:
        """True when a top-level network changes (every service on it is then affected)."""
        return any(e.change and e.change.key[:1] == ("networks",) for e in self.applied)


# --------------------------------------------------------------------------
# reading


def _read(path: Path) -> tuple[bytes, str]:
    try:
        data = files.read_bytes(path, MAX_FILE_BYTES, follow_symlinks=False)
    except files.Unreadable as exc:
        hint = "name the file it points to with --compose" if os.path.islink(path) else None
        raise Refused(f"{path}: {exc.reason}: not edited", hint=hint) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refused(f"{path}: not UTF-8 text: not edited") from None
    return data, text


def _refuse_aliases(path: Path, text: str) -> None:
    """Anchors, aliases and merge keys share one value between places; several documents are not Compose's."""
    import yaml
    from yaml.events import AliasEvent, DocumentStartEvent, NodeEvent

    documents = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor):
                raise Refused(
                    f"{path}: uses YAML anchors or aliases (&name, *name, <<: merge keys): not edited, since one "
                    "edit would change every place that shares the value",
                    hint="apply check's edits by hand",
                )
            if isinstance(event, DocumentStartEvent):
                documents += 1
    except yaml.YAMLError:
        return  # load_tree words the error
    if documents > 1:
        raise Refused(f"{path}: holds {documents} YAML documents: not edited", hint="apply check's edits by hand")


def _yaml() -> Any:
    """ruamel.yaml's round trip, set to write back what it read: quotes kept, no line folding."""
    from ruamel.yaml import YAML

    yml = YAML(typ="rt")
    yml.preserve_quotes = True
    yml.width = 1 << 16
    yml.allow_duplicate_keys = False
    return yml


def _round_trip_load(path: Path, text: str) -> tuple[Any, Any]:
    from ruamel.yaml.error import YAMLError, YAMLFutureWarning
    from ruamel.yaml.util import load_yaml_guess_indent

    yml = _yaml()
    try:
        _, sequence, offset = load_yaml_guess_indent(text)
        yml.indent(mapping=_mapping_indent(text), sequence=sequence or 2, offset=offset or 0)
        tree = yml.load(text)
    except (YAMLError, YAMLFutureWarning) as exc:
        problem = " ".join(str(getattr(exc, "problem", "") or exc).split())[:120]
        raise Refused(f"{path}: a round-trip YAML reader refuses it ({problem}): not edited") from None
    return yml, tree


def _mapping_indent(text: str) -> int:
    """How far the file indents a nested mapping (ruamel's guess reads the sequences' indent)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for line, nxt in zip(lines, lines[1:]):
        body = line.split(" #", 1)[0].rstrip()
        if body.endswith(":") and not body.lstrip().startswith("-") and not nxt.lstrip().startswith("-"):
            step = (len(nxt) - len(nxt.lstrip())) - (len(line) - len(line.lstrip()))
            if step > 0:
                return step
    return 2


def plain(value: Any) -> Any:
    """ruamel's (or PyYAML's) data as plain dicts, lists and scalars, for comparing."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def _difference(a: Any, b: Any, at: str = "") -> str | None:
    """Where two plain trees first differ (``services.x.tty``), or None when equal."""
    if type(a) is not type(b):
        return at or "the top level"
    if isinstance(a, dict):
        if list(a) != list(b):
            extra = [k for k in list(a) + list(b) if (k in a) != (k in b)]
            return f"{at}.{extra[0]}".lstrip(".") if extra else at or "the top level"
        for key in a:
            found = _difference(a[key], b[key], f"{at}.{key}")
            if found:
                return found.lstrip(".")
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return at.lstrip(".") or "the top level"
        for index, (x, y) in enumerate(zip(a, b)):
            found = _difference(x, y, f"{at}[{index}]")
            if found:
                return found.lstrip(".")
        return None
    return None if a == b else (at.lstrip(".") or "the top level")


# --------------------------------------------------------------------------
# applying one change to a tree (ruamel's or a plain copy: the same code gives the intended data)


def _place(key: Sequence[Any]) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def _new_like(node: Any, kind: type) -> Any:
    """A new mapping or list of the tree's own kind (ruamel's commented ones in ruamel's tree)."""
    if type(node).__module__.startswith("ruamel"):
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        return CommentedMap() if kind is dict else CommentedSeq()
    return kind()


def _styled(old: Any, new: Any) -> Any:
    """``new`` written as ``old`` was (its quotes or block style) where both are strings."""
    if isinstance(new, str) and isinstance(old, str) and type(old) is not str:
        return type(old)(new)
    return new


def _set_key(node: Any, key: Any, value: Any) -> None:
    """``node[key] = value``; a key new to a ruamel mapping takes over the blank lines and comments that
    followed the mapping's last entry, so that it lands before them, not after them."""
    new = isinstance(node, MutableMapping) and key not in node and len(node) > 0
    last = list(node)[-1] if new else None
    node[key] = _like_tree(node, value)
    if new and hasattr(node, "ca"):
        _move_trailing_comment(node, last, key)


def _like_tree(node: Any, value: Any) -> Any:
    """``value`` with its mappings and lists made the tree's own kind (ruamel's, in ruamel's tree)."""
    if isinstance(value, dict) and not hasattr(value, "ca"):
        out = _new_like(node, dict)
        for k, v in value.items():
            out[k] = _like_tree(node, v)
        return out
    if isinstance(value, list) and not hasattr(value, "ca"):
        seq = _new_like(node, list)
        seq.extend(_like_tree(node, v) for v in value)
        return seq
    return value


def _trailing_holder(node: Any, key: Any) -> tuple[Any, Any, int] | None:
    """The container, key and slot of ruamel's comment token that follows ``node[key]`` (its deepest last entry)."""
    value = node[key]
    if isinstance(value, MutableMapping) and len(value) and hasattr(value, "ca"):
        return _trailing_holder(value, list(value)[-1])
    if isinstance(value, MutableSequence) and len(value) and hasattr(value, "ca"):
        return _trailing_holder(value, len(value) - 1)
    if not hasattr(node, "ca"):
        return None
    return node, key, 2 if isinstance(node, MutableMapping) else 0


def _move_trailing_comment(node: Any, last: Any, key: Any) -> None:
    from ruamel.yaml.tokens import CommentToken

    found = _trailing_holder(node, last)
    if found is None:
        return
    holder, slot_key, slot = found
    entry = holder.ca.items.get(slot_key)
    token = entry[slot] if entry and len(entry) > slot else None
    if token is None or not isinstance(getattr(token, "value", None), str):
        return
    text = token.value
    keep, rest = ("", text) if not text.startswith("#") else (text[: text.find("\n") + 1], text[text.find("\n") + 1 :])
    if not rest.strip("\n") and rest.count("\n") <= 1:
        return  # nothing after the last entry but its line end
    if keep:
        token.value = keep
    else:
        entry[slot] = None
    moved = CommentToken(rest if keep else text, token.start_mark, None)
    target = _trailing_holder(node, key)
    if target is None:
        return
    to, to_key, to_slot = target
    slots: list[Any] = [None, None, None, None]
    slots[to_slot] = moved
    to.ca.items[to_key] = slots


def _walk(tree: Any, key: Sequence[Any], create: bool) -> Any:
    node = tree
    for depth, part in enumerate(key):
        if isinstance(node, MutableMapping) and not isinstance(part, int):
            if part not in node or node[part] is None:
                if not create:
                    raise Refused(f"{_place(key[: depth + 1])} is not in the file")
                _set_key(node, part, _new_like(node, dict))
            node = node[part]
        elif isinstance(node, MutableSequence) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            raise Refused(f"{_place(key[: depth + 1])} is not where the edit expects it")
    return node


def _no_variable(key: Sequence[Any], value: Any) -> None:
    if isinstance(value, str) and "$" in value:
        raise Refused(f"{_place(key)} holds a variable ($): an edit would replace it with one value")


def apply_change(tree: Any, change: Change) -> None:
    """Apply one change in place; ``Refused`` where the file is not shaped as the change expects."""
    key = change.key
    if not key:
        raise Refused("an edit with no key")
    parent = _walk(tree, key[:-1], create=change.op in (Op.SET, Op.APPEND))
    last = key[-1]
    if isinstance(parent, MutableMapping) and not isinstance(last, int):
        present = last in parent
        old = parent.get(last)
    elif isinstance(parent, MutableSequence) and isinstance(last, int) and 0 <= last < len(parent):
        present, old = True, parent[last]
    else:
        raise Refused(f"{_place(key)} is not where the edit expects it")
    if change.op is Op.SET:
        _no_variable(key, old)
        _no_variable(key, change.value)
        _set_key(parent, last, _styled(old, copy.deepcopy(change.value)))
    elif change.op is Op.DELETE:
        if present:
            del parent[last]
    elif change.op is Op.APPEND:
        if old is None:
            old = _new_like(parent, list)
            _set_key(parent, last, old)
        if not isinstance(old, MutableSequence):
            raise Refused(f"{_place(key)} is not a list")
        if change.value not in [plain(v) for v in old]:
            old.append(_styled(old[-1], change.value) if len(old) else change.value)
    elif change.op is Op.RAY_START:
        if not present or not isinstance(old, (str, MutableSequence)):
            raise Refused(f"{_place(key)} is not a command")
        new = _edit_command(old, change, key)
        if new is not old:
            parent[last] = new
    else:  # pragma: no cover - Op is closed
        raise Refused(f"{_place(key)}: unknown edit {change.op}")


# --------------------------------------------------------------------------
# the `ray start` inside a command: words found with their places, so the rest stays as written


def _scan(text: str) -> list[ShellWord]:
    """A shell script's words and operators with their places: the reader's own splitter
    (``doctor.parsers.shell.scan_shell``), so an edit finds the words the check read."""
    try:
        return scan_shell(text)
    except ValueError:
        raise Refused("a command with an unclosed quote") from None


def _plain_start(text: str, word: ShellWord) -> int | None:
    """Where ``word``'s value starts in ``text`` when it is written as one plain segment (bare, or wholly
    inside one pair of quotes with no escape in double quotes); None when it is not (then it is not
    edited in place)."""
    raw = text[word.start : word.end]
    if raw[:1] in ("'", '"') and len(raw) >= 2 and raw[-1] == raw[0] and raw.count(raw[0]) == 2:
        return word.start + 1 if "\\" not in raw or raw[0] == "'" else None
    if not any(q in raw for q in "'\"\\"):
        return word.start
    return None


def _option_words(line: RayStartLine) -> list[list[int]]:
    """For each option of ``line``, the indexes of the argument words it was written as."""
    after = line.positional_after if len(line.positional_after) == len(line.positionals) else []
    out: list[list[int]] = []
    at, k = 0, 0
    for index, opt in enumerate(line.options):
        while k < len(after) and after[k] <= index:
            at, k = at + 1, k + 1
        size = 1 if opt.inline or opt.value is None else 2
        out.append(list(range(at, at + size)))
        at += size
    return out


def _cut_points(line: RayStartLine, change: Change, count: int) -> tuple[list[list[int]], int]:
    """The argument words to drop (per option) and where to add: before argument word ``index``."""
    spans = _option_words(line)
    drop = [s for opt, s in zip(line.options, spans) if opt.name in change.remove]
    if not change.add:
        return drop, count
    if change.first:
        at = 1 if line.options[:1] and line.options[0].name == "--head" else 0
        return drop, spans[at][0] if at < len(spans) else count
    return drop, count


def _check_words(change: Change) -> None:
    for word in change.add:
        if not _SAFE_WORD.fullmatch(word):
            raise Refused(f"the `ray start` option {word!r} would need quoting: add it by hand")


def _edit_text(text: str, change: Change) -> str:
    """``text`` (a shell script) with its first `ray start` changed; removal and addition in two passes."""
    if change.remove:
        text = _edit_pass(text, Change(Op.RAY_START, change.key, remove=change.remove))
    if change.add:
        text = _edit_pass(text, Change(Op.RAY_START, change.key, add=change.add, first=change.first))
    return text


def _edit_pass(text: str, change: Change, depth: int = 0) -> str:
    if depth > 5:
        raise Refused("`ray start` nested too deep in shells")
    words = _scan(text)
    for i in range(len(words) - 1):
        w, nxt = words[i], words[i + 1]
        if not w.op and not nxt.op and w.value.rsplit("/", 1)[-1] == "ray" and nxt.value == "start":
            args: list[ShellWord] = []
            j = i + 2
            while j < len(words) and not words[j].op:
                args.append(words[j])
                j += 1
            return _edit_args(text, nxt, args, change)
    values = [w.value for w in words]
    for i, w in enumerate(words):
        if w.op or w.value.rsplit("/", 1)[-1] not in SHELLS:
            continue
        at = shell_script_at(values, i)  # as the reader finds the script (doctor.parsers.shell.unwrap_shells)
        if at is not None and not words[at].op:
            script = words[at]
            inner_at = _plain_start(text, script)
            if inner_at is None:
                raise Refused("its `ray start` is inside a shell script written with escapes: edit it by hand")
            close = script.end - (1 if inner_at != script.start else 0)
            inner = _edit_pass(text[inner_at:close], change, depth + 1)
            return text[:inner_at] + inner + text[close:]
    raise Refused("no `ray start` found in it")


def _edit_args(text: str, start_word: ShellWord, args: list[ShellWord], change: Change) -> str:
    from doctor.parsers.ray_start import parse_ray_start

    line = parse_ray_start([a.value for a in args])
    drop, add_at = _cut_points(line, change, len(args))
    _check_words(change)
    if change.add:
        before = args[add_at - 1].end if add_at > 0 else start_word.end
        return text[:before] + "".join(" " + word for word in change.add) + text[before:]
    out = text
    for span in sorted(drop, key=lambda s: -s[0]):  # from the end: earlier places stay valid
        prev_end = args[span[0] - 1].end if span[0] > 0 else start_word.end
        out = out[:prev_end] + out[args[span[-1]].end :]  # the words and the blank before them
    return out


def _edit_argv(seq: MutableSequence[Any], change: Change) -> MutableSequence[Any]:
    """A list ``command:``: `ray start` words as items (edited as items), or a shell's ``-c`` script item."""
    values = [str(v) for v in seq]
    for i in range(len(values) - 1):
        if values[i].rsplit("/", 1)[-1] == "ray" and values[i + 1] == "start":
            from doctor.parsers.ray_start import parse_ray_start

            end = i + 2
            while end < len(values) and values[end] not in SHELL_OPERATORS:
                end += 1
            if change.remove:
                line = parse_ray_start(values[i + 2 : end])
                drop, _ = _cut_points(line, Change(Op.RAY_START, change.key, remove=change.remove), end - i - 2)
                for index in sorted((i + 2 + x for span in drop for x in span), reverse=True):
                    del seq[index]
                values = [str(v) for v in seq]
                end = i + 2
                while end < len(values) and values[end] not in SHELL_OPERATORS:
                    end += 1
            if change.add:
                _check_words(change)
                line = parse_ray_start(values[i + 2 : end])
                _, at = _cut_points(
                    line, Change(Op.RAY_START, change.key, add=change.add, first=change.first), end - i - 2
                )
                for offset, word in enumerate(change.add):
                    seq.insert(i + 2 + at + offset, _styled(seq[i + 1], word))
            return seq
    for i, value in enumerate(values):
        if value.rsplit("/", 1)[-1] in SHELLS:
            script = shell_script_at(values, i)
            if script is not None:
                seq[script] = _styled(seq[script], _edit_text(values[script], change))
                return seq
    raise Refused("no `ray start` found in it")


def _as_read(command: Any) -> str | list[str]:
    """A command as ``doctor.head.compose`` reads it: a list's ``sh -c SCRIPT`` looked into."""
    return str(command) if isinstance(command, str) else unwrap_shells([str(v) for v in command])


def _edit_command(old: Any, change: Change, key: Sequence[Any]) -> Any:
    where = _place(key)
    before = first_ray_start(_as_read(old))  # read first: a list is edited in place
    try:
        if isinstance(old, str):
            new: Any = _styled(old, _edit_text(str(old), change))
        else:
            new = _edit_argv(old, change)
    except Refused as exc:
        raise Refused(f"{where}: {exc.message}") from None
    after = first_ray_start(_as_read(new))
    if before is None:
        raise Refused(f"{where}: no `ray start` found in it")
    want = before.line.without(*change.remove).with_options(*change.add, first=change.first)
    if after is None or after.line.words() != want.words():
        raise Refused(f"{where}: the edited command would not read back as intended: edit it by hand")
    return new


# --------------------------------------------------------------------------
# the plan and the write


def plan_file(path: Path, edits: Sequence[Edit]) -> FilePlan:
    """The new text of ``path`` with every edit's ``change`` applied, proven to read back as intended.

    ``Refused`` (a one-line ``UsageError``) where the file cannot be edited safely.
    """
    from doctor.head.compose import load_tree

    original, text = _read(path)
    crlf = "\r\n" in text
    body = text.replace("\r\n", "\n") if crlf else text
    _refuse_aliases(path, body)
    ours = load_tree(body, path)
    yml, tree = _round_trip_load(path, body)
    differs = _difference(plain(tree), plain(ours))
    if differs is not None:
        raise Refused(
            f"{path}: {differs} reads differently to a round-trip YAML reader (a YAML 1.1 word such as "
            "yes/on/off, a date, a tag): not edited",
            hint="quote that value, or apply check's edits by hand",
        )
    intended = plain(ours)
    plan = FilePlan(path, original, text, text)
    seen: set[Change] = set()
    for edit in edits:
        change = edit.change
        if change is None or change in seen:
            continue
        seen.add(change)
        before = plain(tree)
        try:
            apply_change(tree, change)
            apply_change(intended, change)
        except Refused as exc:
            raise Refused(
                f"{path}: {exc.message}: not edited", hint=exc.hint or "apply check's edits by hand"
            ) from None
        (plan.applied if plain(tree) != before else plan.already).append(edit)
    if not plan.applied:
        return plan
    import io

    out = io.StringIO()
    yml.dump(tree, out)
    new_body = out.getvalue()
    try:
        back = load_tree(new_body, path)
    except UsageError:
        back = None
    where = _difference(plain(back), intended) if back is not None else "the whole file"
    if where is not None:
        raise Refused(f"{path}: the edited file would not read back as intended (at {where}): not edited")
    plan.new_text = new_body.replace("\n", "\r\n") if crlf else new_body
    return plan


def write_plan(plan: FilePlan) -> None:
    """Write the planned text, only if the file still holds the bytes it was planned from."""
    try:
        now = files.read_bytes(plan.path, MAX_FILE_BYTES, follow_symlinks=False)
    except files.Unreadable as exc:
        raise Refused(f"{plan.path}: {exc.reason} since raydoctor read it: not written") from None
    if now != plan.original:
        raise Refused(
            f"{plan.path}: changed since raydoctor read it: not written", hint="run raydoctor fix --cluster again"
        )
    data = plan.new_text.encode("utf-8")
    if plan.original.startswith(_BOM):
        data = _BOM + data
    try:
        files.write_atomic(plan.path, data)
    except OSError as exc:
        raise Refused(f"{plan.path}: cannot be written ({exc.strerror or exc}): not written") from None
