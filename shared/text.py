"""Which characters text from outside may not hold, at either end.

Control characters (Cc: NUL, CR, LF, TAB, DEL, C1), format characters (Cf: zero-width
spaces, bidi overrides), line and paragraph separators (Zl, Zp), unassigned (Cn),
surrogates (Cs) and private use (Co). PostgreSQL cannot store NUL in text at all, and the
rest break log lines, CSV exports and the console, or make two names that look alike. One
rule for every text field (names, comments, locations, units), so both engines answer alike.

Names are compared in Unicode NFC: ``café`` typed with a precomposed ``é`` or with ``e``
and a combining accent is one name.
"""

from __future__ import annotations

import unicodedata

BANNED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs", "Co"})


def hidden_char(value: str) -> str | None:
    """The first character ``value`` may not hold, as ``U+XXXX``, or None."""
    if value.isascii() and value.isprintable():
        return None  # printable ASCII (space to tilde) is in no banned category: two C loops
    for ch in value:
        if unicodedata.category(ch) in BANNED_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def text_problem(field: str, value: str) -> str | None:
    """``field`` holds a control or invisible character: why, or None."""
    bad = hidden_char(value)
    if bad is None:
        return None
    return f"{field} contains the control or invisible character {bad}"


def nfc(value: str) -> str:
    """``value`` in Unicode NFC (the form most keyboards type), so look-alikes compare equal."""
    return unicodedata.normalize("NFC", value)


def is_nfc(value: str) -> bool:
    return unicodedata.is_normalized("NFC", value)
