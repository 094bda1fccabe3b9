"""People's passwords: argon2id hashes, and which passwords the hub refuses.

Hashing uses argon2-cffi's RFC 9106 low-memory profile (argon2id, 64 MiB, 3 passes, 4
lanes): one verify takes about 175 ms on a 2-core plant server, slow enough to make a stolen
database expensive to guess through and quick enough for a person signing in. Hashes made
with other parameters still verify; :func:`needs_rehash` says when to store a fresh one.

Policy (NIST SP 800-63B): a minimum length, a maximum that bounds the hashing work, no
control or invisible characters, not one of the 30,000 most common passwords (the list
zxcvbn ships), and no composition rules.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from shared.text import nfc, text_problem

# Long passphrases are welcome; past this the request is more likely abuse than a person.
MAX_LENGTH = 256
DEFAULT_MIN_LENGTH = 12

_HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


@cache
def _dummy_hash() -> str:
    return _HASHER.hash("not a password anyone has")


@cache
def _common() -> frozenset[str]:
    # Imported here: the module is 800 kB of lists that only a password change needs.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, min_length: int = DEFAULT_MIN_LENGTH) -> str | None:
    """Why ``password`` may not be used, in words for the person choosing it; None if fine."""
    length = len(nfc(password))
    if length < min_length:
        return f"the password must have at least {min_length} characters"
    if length > MAX_LENGTH:
        return f"the password may have at most {MAX_LENGTH} characters"
    problem = text_problem("the password", password)
    if problem is not None:
        return problem
    if nfc(password).casefold() in _common():
        return "this password is one of the most common ones; choose another"
    return None


def hash_password(password: str) -> str:
    # NFC: the same password typed on another keyboard (é as one or two code points) matches.
    return _HASHER.hash(nfc(password))


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``. With no stored hash (unknown user, no
    password set yet) a dummy hash is verified instead, so the answer takes as long."""
    try:
        return _HASHER.verify(stored or _dummy_hash(), nfc(password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with other parameters than the hub uses now."""
    return _HASHER.check_needs_rehash(stored)
