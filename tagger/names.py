"""File names as people and programs are shown them: one line each, nothing forged, nothing lost.

A Linux file name is any bytes but ``/`` and NUL: bytes that are not UTF-8
(Python holds them as ``surrogateescape`` characters, ``os.fsdecode``), a
newline that would forge a line of a log, an escape sequence that would
recolour a terminal.  Every line terc-tag prints or logs, every CSV cell and
every JSON string that holds a name holds :func:`shown` of it, which is
reversible with :func:`unshown`:

* ``\\`` becomes ``\\\\``; newline, carriage return and tab become ``\\n``, ``\\r``, ``\\t``;
* another control character below 0x80 and each byte that is not UTF-8 become ``\\xHH``
  (``caf\\xe9.jpg`` is the Latin-1 name ``café.jpg``);
* other characters that would break or reorder a line (C1 controls, line and
  paragraph separators, bidirectional overrides) become ``\\uHHHH``;
* everything else, accents and emoji included, is shown as it is.
"""

from __future__ import annotations

import os
import re
import unicodedata

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode holds it
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI:
        return f"\\u{code:04x}"
    return char


_RISKY = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def shown(name: str | os.PathLike | bytes) -> str:
    """``name`` as one printable line of valid UTF-8, escaped as the module says (reversed by :func:`unshown`)."""
    text = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    return _RISKY.sub(lambda match: _escape(match.group()), text)


_ESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")


def unshown(text: str) -> str:
    """The exact name behind :func:`shown`'s ``text`` (as ``os.fsdecode`` gives it; ``os.fsencode`` for the bytes).

    A backslash that starts no escape of :func:`shown` is kept as it is, so a
    hand-written labels file may name ``a\\b.jpg`` plainly.
    """
    def name(match: re.Match) -> str:
        escape = match.group(1)
        if escape[0] == "x":
            code = int(escape[1:], 16)
            return chr(code) if code < 0x80 else chr(0xDC00 + code)
        if escape[0] == "u":
            return chr(int(escape[1:], 16))
        return {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[escape]

    return _ESCAPE.sub(name, text)
