"""Which passwords and user names the hub takes (hub.passwords, hub.user_names)."""

from __future__ import annotations

import time

import pytest

from hub.passwords import hash_password, needs_rehash, password_problem, verify_password
from hub.user_names import display_problem, name_key, name_problem


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("", "at least 12"),
        ("short pass", "at least 12"),
        ("x" * 10_240, "at most 256"),
        ("qwerty123456", "most common"),
        ("LeaveMeAlone", "most common"),
        ("correct\x00horse battery", "U+0000"),
        ("correct horse\u200bbattery", "U+200B"),
    ],
)
def test_refused_passwords_say_why(password: str, why: str) -> None:
    problem = password_problem(password)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "password", ["correct horse battery", "Grüße aus Köln 42", "日本語のパスワードです長い"]
)
def test_long_uncommon_passwords_are_taken_without_composition_rules(password: str) -> None:
    assert password_problem(password, min_length=12) is None


def test_the_minimum_length_is_configurable() -> None:
    assert password_problem("eight ch", min_length=8) is None


def test_a_password_matches_in_either_unicode_form() -> None:
    stored = hash_password("Jos\u00e9 passphrase!")
    assert verify_password(stored, "Jose\u0301 passphrase!")
    assert not verify_password(stored, "jos\u00e9 passphrase!")
    assert not needs_rehash(stored)


def test_old_parameters_ask_for_a_rehash() -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("a passphrase")
    assert verify_password(weak, "a passphrase") and needs_rehash(weak)


def test_no_stored_hash_never_matches_and_takes_a_verify() -> None:
    stored = hash_password("a long passphrase")
    started = time.perf_counter()
    assert not verify_password(None, "a long passphrase")
    dummy = time.perf_counter() - started
    started = time.perf_counter()
    assert not verify_password(stored, "wrong passphrase")
    wrong = time.perf_counter() - started
    # The same work either way: an unknown user is not told apart by the time it takes.
    assert dummy > wrong / 3


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a" * 65, "at most 64"),
        ("x" * 10_240, "at most 64"),
        ("anna berg", "spaces"),
        ("anna\x00", "U+0000"),
        ("an\u200bna", "U+200B"),
    ],
)
def test_refused_names_say_why(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None and why in problem


def test_names_compare_folded_and_normalized() -> None:
    assert name_problem("Jürgen.Müller") is None
    assert name_key("JOSE\u0301") == name_key("jos\u00e9")
    assert name_key("STRASSE") == name_key("straße")


def test_display_names() -> None:
    assert display_problem("Anna Berg") is None and display_problem("") is None
    assert "at most 128" in (display_problem("x" * 10_240) or "")
    assert "spaces" in (display_problem(" Anna") or "")
