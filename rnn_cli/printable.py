"""Strings that come from files (checkpoint keys, prefixes, paths, ONNX node names), made safe
to show: every control character (C0, DEL, C1) and the Unicode format characters that reorder
or hide text (U+202E, U+200B, ...) are written as Python escapes (`\\x1b`, `\\u202e`), so a key
cannot move the cursor, set the window title or clear the screen of whoever reads it.
Views and stderr lines use this; JSON keeps the exact string (json.dumps escapes on its own)."""

from __future__ import annotations

import re
import unicodedata

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    c = m.group()
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def printable(text: str) -> str:
    """`text` with control and invisible format characters escaped; printable text unchanged."""
    text = str(text)
    if text.isprintable() and not _UNSAFE.search(text):
        return text
    out = _UNSAFE.sub(_escape, text)
    return "".join(c if c.isprintable() or c == " " or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn")
                   else _escape_char(c) for c in out)


def _escape_char(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else (f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
