"""Strings read from files (keys, module names) are the file's, not ours: before they reach a
terminal, control and format characters (ESC, CR, BEL, bidi overrides, zero-width marks) are
written as escapes, so a key cannot move the cursor, recolour the screen or hide text.
JSON needs nothing of this: json.dumps escapes on its own."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """'enc\\x1b[2J' -> 'enc\\\\x1b[2J': every Cc/Cf character escaped, the rest unchanged."""
    if text.isprintable():
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
                   else ch for ch in text)
