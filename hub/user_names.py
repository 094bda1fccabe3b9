"""People's account names: what one may be, and the key that makes two spellings one account;
and what a token's name (its label) may be.

A name is compared in NFC and case-folded: ``Anna``, ``ANNA`` and ``anna`` are one account,
and so are ``José`` with a precomposed é and with ``e`` and a combining accent. It is kept as
first given (in NFC) for display.
"""

from __future__ import annotations

from shared.text import nfc, text_problem

MAX_NAME = 64
MAX_DISPLAY = 128
MAX_TOKEN_NAME = 128


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a user name, or None."""
    if not name:
        return "a user name may not be empty"
    if len(nfc(name)) > MAX_NAME:
        return f"a user name may have at most {MAX_NAME} characters"
    problem = text_problem("the user name", name)
    if problem is not None:
        return problem
    if any(ch.isspace() for ch in name):
        return "a user name may not contain spaces"
    return None


def display_problem(display: str) -> str | None:
    """Why ``display`` cannot be a display name, or None (empty is allowed)."""
    if len(display) > MAX_DISPLAY:
        return f"a display name may have at most {MAX_DISPLAY} characters"
    if display != display.strip():
        return "a display name may not start or end with spaces"
    return text_problem("the display name", display)


def token_name_problem(name: str) -> str | None:
    """Why ``name`` cannot label a token, or None. A label is free text ("nightly export"):
    it is shown as who acted, so it is bounded and printable like a display name."""
    if not name.strip():
        return "a token name may not be empty"
    if len(name) > MAX_TOKEN_NAME:
        return f"a token name may have at most {MAX_TOKEN_NAME} characters"
    if name != name.strip():
        return "a token name may not start or end with spaces"
    return text_problem("the token name", name)


def name_key(name: str) -> str:
    """The form two names are compared in: NFC, case-folded (folding may decompose, so NFC
    again)."""
    return nfc(nfc(name).casefold())
