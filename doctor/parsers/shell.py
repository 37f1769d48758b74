"""Shell command lines as words: what `sh -c` and Compose's string ``command:`` would see.

Only splitting, never running: raydoctor reads the commands a cluster file runs
(`bash -c "ray start ... && sleep infinity"`) to find the `ray start` inside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["SHELL_OPERATORS", "SHELLS", "ShellWord", "scan_shell", "shell_script_at", "split_shell", "unwrap_shells"]

# Words a shell treats as the end of a simple command: `ray start`'s own
# arguments stop at the first of these.
SHELL_OPERATORS = frozenset({"&&", "||", ";", ";;", "|", "&", "\n", "(", ")", "<", ">", ">>", "<<"})

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
_MAX_UNWRAP = 5


@dataclass(frozen=True)
class ShellWord:
    """A word of a command line with its place in the text: ``text[start:end]`` is how it was written
    (quotes and escapes included), ``value`` what the shell reads; ``op`` for an operator word."""

    start: int
    end: int
    value: str
    op: bool = False


def scan_shell(text: str, *, operators: bool = True) -> list[ShellWord]:
    """Split a shell command line into words, POSIX style, each with its place in ``text``.

    With ``operators`` (a ``sh -c`` script), ``&&``, ``;``, ``|``, newlines
    and redirections become words of their own and ``#`` at a word's start
    begins a comment; without, it splits like Compose splits a string
    ``command:`` (quotes only). Raises ValueError on an unclosed quote.
    The places let ``doctor.fix.cluster_file`` edit a script where it stands.
    """
    words: list[ShellWord] = []
    cur: list[str] = []
    in_word = False
    start = 0
    i, n = 0, len(text)

    def flush() -> None:
        nonlocal in_word
        if in_word:
            words.append(ShellWord(start, min(i, n), "".join(cur)))
            cur.clear()
            in_word = False

    def begin() -> None:
        nonlocal in_word, start
        if not in_word:
            start, in_word = i, True

    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 < n and text[i + 1] == "\n":
                i += 2  # line continuation
                continue
            begin()
            if i + 1 < n:
                cur.append(text[i + 1])
            i += 2
            continue
        if ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ValueError("no closing quotation")
            begin()
            cur.append(text[i + 1 : end])
            i = end + 1
            continue
        if ch == '"':
            j = i + 1
            while True:
                if j >= n:
                    raise ValueError("no closing quotation")
                c = text[j]
                if c == "\\" and j + 1 < n and text[j + 1] in '"\\$`\n':
                    if text[j + 1] != "\n":
                        cur.append(text[j + 1])
                    j += 2
                    continue
                if c == '"':
                    break
                cur.append(c)
                j += 1
            begin()
            i = j + 1
            continue
        if ch in " \t\r" or (ch == "\n" and not operators):
            flush()
            i += 1
            continue
        if operators:
            if ch == "#" and not in_word:
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            if ch in "\n;&|()<>":
                flush()
                two = text[i : i + 2]
                op = two if two in ("&&", "||", ";;", ">>", "<<") else ch
                words.append(ShellWord(i, i + len(op), op, op=True))
                i += len(op)
                continue
        begin()
        cur.append(ch)
        i += 1
    flush()
    return words


def split_shell(text: str, *, operators: bool = True) -> list[str]:
    """The words of a shell command line (``scan_shell`` without the places)."""
    return [word.value for word in scan_shell(text, operators=operators)]


def shell_script_at(words: Sequence[str], shell: int) -> int | None:
    """Where the ``-c`` script of the shell ``words[shell]`` stands (``sh -o pipefail -c SCRIPT``): the
    index of SCRIPT, or None when that shell runs no ``-c`` script (a script file, or nothing)."""
    j = shell + 1
    while j < len(words):
        opt = words[j]
        if re.fullmatch(r"-[a-zA-Z]+", opt) and "c" in opt:
            return j + 1 if j + 1 < len(words) else None
        if opt in ("-o", "+o", "-O", "+O"):
            j += 2
        elif re.fullmatch(r"[-+][a-zA-Z]+|--[a-z][a-z-]*", opt):
            j += 1
        else:
            return None
    return None


def unwrap_shells(words: list[str], depth: int = 0) -> list[str]:
    """Replace ``sh -c SCRIPT`` by ``sh -c`` followed by the script's words.

    Words after the script (its ``$0``, ``$1``...) are dropped.
    """
    if depth >= _MAX_UNWRAP:
        return words
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        out.append(word)
        i += 1
        if word.rsplit("/", 1)[-1] not in SHELLS:
            continue
        script_at = shell_script_at(words, i - 1)
        if script_at is not None:
            out.extend(words[i:script_at])
            script = words[script_at]
            try:
                inner = split_shell(script, operators=True)
            except ValueError:
                inner = [script]
            out.extend(unwrap_shells(inner, depth + 1))
            break  # the words after the script are its $0, $1...: not commands
    return out
