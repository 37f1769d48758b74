"""Shell command lines as words: what `sh -c` and Compose's string ``command:`` would see.

Only splitting, never running: raydoctor reads the commands a cluster file runs
(`bash -c "ray start ... && sleep infinity"`) to find the `ray start` inside.
"""

from __future__ import annotations

import re

__all__ = ["SHELL_OPERATORS", "SHELLS", "split_shell", "unwrap_shells"]

# Words a shell treats as the end of a simple command: `ray start`'s own
# arguments stop at the first of these.
SHELL_OPERATORS = frozenset({"&&", "||", ";", ";;", "|", "&", "\n", "(", ")", "<", ">", ">>", "<<"})

SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
_MAX_UNWRAP = 5


def split_shell(text: str, *, operators: bool = True) -> list[str]:
    """Split a shell command line into words, POSIX style.

    With ``operators`` (a ``sh -c`` script), ``&&``, ``;``, ``|``, newlines
    and redirections become words of their own and ``#`` at a word's start
    begins a comment; without, it splits like Compose splits a string
    ``command:`` (quotes only). Raises ValueError on an unclosed quote.
    """
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    i, n = 0, len(text)

    def flush() -> None:
        nonlocal in_word
        if in_word:
            words.append("".join(cur))
            cur.clear()
            in_word = False

    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 < n and text[i + 1] == "\n":
                i += 2  # line continuation
                continue
            if i + 1 < n:
                cur.append(text[i + 1])
            in_word = True
            i += 2
            continue
        if ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ValueError("no closing quotation")
            cur.append(text[i + 1 : end])
            in_word = True
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
            in_word = True
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
                words.append(op)
                i += len(op)
                continue
        cur.append(ch)
        in_word = True
        i += 1
    flush()
    return words


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
        j = i
        script_at = -1
        while j < len(words):
            opt = words[j]
            if re.fullmatch(r"-[a-zA-Z]+", opt) and "c" in opt:
                script_at = j + 1
                break
            if opt in ("-o", "+o", "-O", "+O"):
                j += 2
            elif re.fullmatch(r"[-+][a-zA-Z]+|--[a-z][a-z-]*", opt):
                j += 1
            else:
                break  # a script file or the end: nothing to look into
        if 0 < script_at < len(words):
            out.extend(words[i:script_at])
            script = words[script_at]
            try:
                inner = split_shell(script, operators=True)
            except ValueError:
                inner = [script]
            out.extend(unwrap_shells(inner, depth + 1))
            break  # the words after the script are its $0, $1...: not commands
    return out
