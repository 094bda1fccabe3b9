"""People's console sessions over real storage (both engines), time given to each lookup
instead of waited for: who a session names (role, display, factories), idle timeout and
absolute lifetime, and the changes to an account that end every session of it at once.
Password checks: lockout after consecutive failures, unlock, rehash of old parameters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from argon2 import PasswordHasher

from hub.console_settings import ConsoleSettings
from hub.errors import ApiError
from hub.passwords import hash_password
from hub.storage import Storage
from hub.storage.audit import Actor
from hub.web import session
from hub.web.signin import check_password
from shared.timeutil import now

PASSWORD = "correct horse battery staple"
IDLE, LIFETIME = 100.0, 1000.0
SETTINGS = ConsoleSettings(
    session_idle_s=IDLE, session_lifetime_s=LIFETIME, lockout_failures=3, lockout_s=600
)


@dataclass
class Request:
    """What hub.web reads of a request: its headers and the peer's address."""

    headers: dict[str, str] = field(default_factory=dict)
    ip_addr: str = "192.0.2.7"


# Who changes the accounts in these tests (the audit rows need someone).
BY = Actor(None, "admin", "system", "test")


def cookie(value: str) -> Request:
    return Request({"cookie": f"{session.COOKIE}={value}"})


def add(storage: Storage, name: str = "anna", **fields: object) -> int:
    row = storage.users.add(
        name,
        name.casefold(),
        role="operator",
        password_hash=hash_password(PASSWORD),
        by=BY,
        **fields,
    )
    return int(row["id"])


def test_a_person_session_names_them_and_their_factories(storage: Storage) -> None:
    north = storage.create_factory("north", None, Actor(None, "admin"))
    storage.create_factory("south", None, Actor(None, "admin"))
    user_id = add(storage, "Anna", display="Anna Berg", factories=["north"])
    value, made = session.sign_in_user(storage, user_id, SETTINGS, Request())
    found = session.current(storage, cookie(value))
    assert found is not None and found.csrf == made.csrf
    who = found.principal
    assert (who.user_id, who.name, who.display, who.role) == (
        user_id,
        "Anna",
        "Anna Berg",
        "operator",
    )
    assert who.factories == frozenset({north["id"]})
    assert who.kind == "user" and who.quota_key == -user_id
    # Not limited to factories: None, which is every factory.
    everywhere, _ = session.sign_in_user(storage, add(storage, "bo"), SETTINGS, Request())
    bo = session.current(storage, cookie(everywhere))
    assert bo is not None and bo.principal.factories is None and bo.principal.display is None


def test_idle_sessions_end_and_use_keeps_them_alive(storage: Storage) -> None:
    value, _ = session.sign_in_user(storage, add(storage), SETTINGS, Request())
    start = now()
    assert session.current(storage, cookie(value), at=start + IDLE - 1) is not None
    # That use moved its idle timeout: alive past the first deadline, then idle too long.
    assert session.current(storage, cookie(value), at=start + IDLE + 50) is not None
    assert session.current(storage, cookie(value), at=start + 2 * IDLE + 48) is not None
    assert session.current(storage, cookie(value), at=start + 3 * IDLE + 49) is None
    # An unused session ends one idle timeout after sign-in.
    other, _ = session.sign_in_user(storage, add(storage, "bo"), SETTINGS, Request())
    assert session.current(storage, cookie(other), at=now() + IDLE + 1) is None


def test_a_session_in_use_still_ends_at_its_lifetime(storage: Storage) -> None:
    value, made = session.sign_in_user(storage, add(storage), SETTINGS, Request())
    at = now()
    while at + IDLE / 2 < made.expires_at:
        at += IDLE / 2
        assert session.current(storage, cookie(value), at=at) is not None
    assert session.current(storage, cookie(value), at=made.expires_at + 0.001) is None


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.users.update("anna", disabled=True, by=BY),
        lambda s: s.users.update("anna", role="read", by=BY),
        lambda s: s.users.update("anna", factories=["north"], by=BY),
        lambda s: s.users.reset_password("anna", "link-hash", now() + 60, by=BY),
        lambda s: s.users.set_password("anna", hash_password("a new long passphrase")),
    ],
    ids=["disabled", "role", "factories", "reset", "password"],
)
def test_account_changes_end_every_session_of_it(storage: Storage, change: object) -> None:
    storage.create_factory("north", None, Actor(None, "admin"))
    user_id = add(storage)
    values = [session.sign_in_user(storage, user_id, SETTINGS, Request())[0] for _ in range(2)]
    other, _ = session.sign_in_user(storage, add(storage, "bo"), SETTINGS, Request())
    change(storage)  # type: ignore[operator]
    assert [session.current(storage, cookie(v)) for v in values] == [None, None]
    assert session.current(storage, cookie(other)) is not None
    # Enabled again, or whatever the change: a new sign-in is needed.
    storage.users.update("anna", disabled=False, by=BY)
    assert [session.current(storage, cookie(v)) for v in values] == [None, None]


def test_changes_that_grant_nothing_keep_sessions(storage: Storage) -> None:
    value, _ = session.sign_in_user(storage, add(storage), SETTINGS, Request())
    storage.users.update("anna", display="Anna B.", by=BY)
    storage.users.set_password("anna", hash_password(PASSWORD), changed=False)
    storage.users.unlock("anna", by=BY)
    found = session.current(storage, cookie(value))
    assert found is not None and found.principal.display == "Anna B."


def test_a_disabled_account_gets_no_session(storage: Storage) -> None:
    user_id = add(storage)
    storage.users.update("anna", disabled=True, by=BY)
    with pytest.raises(ApiError) as refused:
        session.sign_in_user(storage, user_id, SETTINGS, Request())
    assert refused.value.status == 401


def test_a_person_keeps_at_most_max_sessions(storage: Storage) -> None:
    user_id = add(storage)
    capped = SETTINGS.model_copy(update={"max_sessions_per_token": 2})
    values = [session.sign_in_user(storage, user_id, capped, Request())[0] for _ in range(3)]
    alive = [session.current(storage, cookie(v)) is not None for v in values]
    assert alive == [False, True, True]


def _actions(storage: Storage) -> list[tuple[str, str | None, str]]:
    rows, _ = storage.audit.audit_page(0, 100, target="user")
    # The accounts' own creation and changes by the test (BY) are not what is checked here.
    return [
        (r["action"], r["target_id"], r["role"])
        for r in reversed(rows)
        if r["action"] not in ("user.create", "user.update", "user.disable")
    ]


def test_wrong_passwords_in_a_row_lock_the_account_until_unlocked(storage: Storage) -> None:
    user_id = add(storage, "Anna")

    def check(password: str) -> int | None:
        return check_password(storage, SETTINGS, "ANNA", password, "192.0.2.7")

    assert check("wrong one") is None
    assert check(PASSWORD) == user_id  # a good one starts the count again
    assert [check("wrong one") for _ in range(3)] == [None] * 3
    creds = storage.users.credentials("anna")
    assert creds is not None and creds.failures == 3 and creds.locked_until is not None
    locked_until = creds.locked_until
    # Locked: the right password is refused too, and the lock is not prolonged.
    assert check(PASSWORD) is None
    assert check("wrong one") is None
    assert storage.users.credentials("anna").locked_until == locked_until  # type: ignore[union-attr]
    assert storage.users.unlock("anna", by=BY)
    assert check(PASSWORD) == user_id
    assert _actions(storage) == [
        ("user.sign_in_failed", "Anna", "none"),
        ("user.sign_in_failed", "Anna", "none"),
        ("user.sign_in_failed", "Anna", "none"),
        ("user.sign_in_failed", "Anna", "none"),
        ("user.lock", "Anna", "system"),
        ("user.sign_in_failed", "Anna", "none"),
        ("user.sign_in_failed", "Anna", "none"),
        ("user.unlock", "Anna", "admin"),
    ]
    rows, _ = storage.audit.audit_page(0, 100, target="user")
    assert {r["detail"]["reason"] for r in rows if r["action"] == "user.sign_in_failed"} == {
        "wrong password",
        "locked",
    }


def test_a_lock_that_ran_out_counts_from_zero(storage: Storage) -> None:
    user_id = add(storage)
    at = now()
    for _ in range(2):
        assert storage.users.sign_in_failed(user_id, at, 3, 600) is None
    assert storage.users.sign_in_failed(user_id, at, 3, 600) == at + 600
    # Counting nothing while locked; once the lock is over, one failure is one.
    assert storage.users.sign_in_failed(user_id, at + 1, 3, 600) is None
    assert storage.users.sign_in_failed(user_id, at + 601, 3, 600) is None
    creds = storage.users.credentials("anna")
    assert creds is not None and (creds.failures, creds.locked_until) == (1, None)


def test_unknown_disabled_and_wrong_are_refused_alike_and_recorded(storage: Storage) -> None:
    add(storage, "bo")
    storage.users.update("bo", disabled=True, by=BY)
    add(storage, "anna")
    tried = [
        check_password(storage, SETTINGS, "nobody", PASSWORD, "192.0.2.7"),
        check_password(storage, SETTINGS, "bo", PASSWORD, "192.0.2.7"),
        check_password(storage, SETTINGS, "anna", "not it", "192.0.2.7"),
        check_password(storage, SETTINGS, "x" * 5000, PASSWORD, "192.0.2.7"),
        check_password(storage, SETTINGS, "an\u0000na", PASSWORD, "192.0.2.7"),
    ]
    assert tried == [None] * 5
    rows, _ = storage.audit.audit_page(0, 100, target="user")
    failed = [r for r in reversed(rows) if r["action"] == "user.sign_in_failed"]
    assert [(r["target_id"], r["detail"]["reason"]) for r in failed] == [
        ("nobody", "unknown user"),
        ("bo", "disabled"),
        ("anna", "wrong password"),
        ("x" * 64, "unknown user"),
        ("an\\x00na", "unknown user"),
    ]
    # A disabled account counts no failures (it cannot sign in anyway).
    assert storage.users.credentials("bo").failures == 0  # type: ignore[union-attr]


def test_an_unknown_name_costs_a_password_verify(storage: Storage) -> None:
    add(storage)

    def seconds(name: str) -> float:
        started = time.perf_counter()
        check_password(storage, SETTINGS, name, "not the password", "192.0.2.7")
        return time.perf_counter() - started

    seconds("nobody")  # the dummy hash is made once, on first use
    unknown = min(seconds("nobody") for _ in range(3))
    wrong = min(seconds("anna") for _ in range(3))
    # Without the dummy verify an unknown name answers in about a millisecond, a wrong
    # password in about 175 ms: the bound tells those apart on a loaded machine.
    assert unknown > wrong / 3, (unknown, wrong)


def test_an_old_hash_is_replaced_at_sign_in_and_sessions_live_on(storage: Storage) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    user_id = add(storage)
    storage.users.set_password("anna", weak, changed=False)
    value, _ = session.sign_in_user(storage, user_id, SETTINGS, Request())
    assert check_password(storage, SETTINGS, "anna", PASSWORD, "192.0.2.7") == user_id
    creds = storage.users.credentials("anna")
    assert creds is not None and creds.password_hash != weak
    assert "m=65536,t=3,p=4" in str(creds.password_hash)
    assert check_password(storage, SETTINGS, "anna", PASSWORD, "192.0.2.7") == user_id
    assert session.current(storage, cookie(value)) is not None
