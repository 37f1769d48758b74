"""Text from elsewhere (a dashboard, a job's logs, a server's error page) made safe to print.

A string a server sent may carry terminal escape sequences: ``ESC [ 2 J`` clears
the screen, ``ESC ] 8 ;;`` writes a hyperlink, ``ESC ] 52`` sets the clipboard,
and a bidirectional override makes text read other than it is. ``sanitize``
removes whole escape sequences first (so no ``[31m`` is left behind), then every
other C0 and C1 control character, DEL and the bidi controls.
"""

from __future__ import annotations

import re

# ECMA-48: CSI (ESC [ or the C1 byte 0x9b) parameters, intermediates, a final byte;
# OSC/DCS/SOS/PM/APC strings up to BEL or ST (ESC \\ or 0x9c); any other ESC + one character.
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 but tab and newline, DEL, C1; the Unicode bidi embeddings, overrides and isolates; line/paragraph separators.
_CONTROLS_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_BLANKS = re.compile(r"[\t\n\r]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def sanitize(text: str, *, multiline: bool = False) -> str:
    """``text`` without escape sequences and control characters.

    One-line (the default): tab, newline and carriage return become a space,
    every other control character goes. ``multiline=True`` keeps tab and
    newline (logs), and turns ``\\r\\n`` into ``\\n`` first.
    """
    if not isinstance(text, str):
        text = str(text)
    text = _SEQUENCES.sub("", text)
    if multiline:
        return _CONTROLS_MULTILINE.sub("", text.replace("\r\n", "\n"))
    return _CONTROLS.sub("", _BLANKS.sub(" ", text))


def clip(text: object, limit: int = 60) -> str:
    """``text`` on one line (white space folded), cut to ``limit`` characters ending in ``...``."""
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def ascii_int(text: object, *, digits: int = 18) -> int | None:
    """The number ``text`` spells in ASCII digits (at most ``digits`` of them, spaces around), else None.

    Numbers from files, flags and servers are ASCII or none: ``'²'.isdigit()`` is true and ``int('²')``
    raises; ``int('٣')`` is 3; ``int()`` refuses more than 4300 digits.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not text or len(text) > digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
