"""People's accounts in storage (hub.storage.users), on both engines: one account per name
whatever its case or Unicode form, factories kept by name, secrets only as hashes."""

from __future__ import annotations

import pytest

from hub.passwords import hash_password, verify_password
from hub.storage import Storage
from hub.storage.audit import Actor
from hub.storage.model import Conflict
from hub.storage.users import UnknownFactory
from hub.user_names import name_key
from shared.timeutil import now
from tests.hub.conftest import dump

ADMIN = Actor(1, "admin")


def test_a_user_reads_back_without_secrets(storage: Storage) -> None:
    storage.create_factory("north", None, ADMIN)
    made = storage.users.add(
        "Anna",
        name_key("Anna"),
        role="operator",
        display="Anna Berg",
        factories=["north"],
        by=ADMIN,
    )
    assert made["name"] == "Anna" and made["display"] == "Anna Berg"
    assert made["role"] == "operator" and made["factories"] == ["north"]
    assert made["disabled"] is False and made["has_password"] is False
    assert "password_hash" not in made and "setup_hash" not in made
    assert storage.users.get(name_key("ANNA")) == made
    assert [u["name"] for u in storage.users.list()] == ["Anna"]


@pytest.mark.parametrize("other", ["anna", "ANNA", "AnNa"])
def test_names_differing_only_in_case_are_one_account(storage: Storage, other: str) -> None:
    storage.users.add("Anna", name_key("Anna"), role="read", by=ADMIN)
    with pytest.raises(Conflict):
        storage.users.add(other, name_key(other), role="admin", by=ADMIN)
    assert len(storage.users.list()) == 1


def test_names_differing_only_in_normalization_are_one_account(storage: Storage) -> None:
    storage.users.add("Jos\u00e9", name_key("Jos\u00e9"), role="read", by=ADMIN)
    decomposed = "Jose\u0301"
    assert storage.users.get(name_key(decomposed)) is not None
    with pytest.raises(Conflict):
        storage.users.add(decomposed, name_key(decomposed), role="read", by=ADMIN)


def test_an_unknown_factory_is_refused_and_nothing_is_stored(storage: Storage) -> None:
    with pytest.raises(UnknownFactory, match="nowhere"):
        storage.users.add("bo", "bo", role="read", factories=["nowhere"], by=ADMIN)
    assert storage.users.list() == []


def test_updates_change_only_what_is_given(storage: Storage) -> None:
    storage.create_factory("north", None, ADMIN)
    storage.create_factory("south", None, ADMIN)
    storage.users.add("bo", "bo", role="read", display="Bo", factories=["north"], by=ADMIN)
    changed = storage.users.update("bo", role="admin", factories=["south", "north"], by=ADMIN)
    assert changed is not None
    assert (changed["role"], changed["display"]) == ("admin", "Bo")
    assert changed["factories"] == ["north", "south"]
    assert storage.users.update("bo", disabled=True, factories=[], by=ADMIN)["disabled"] is True  # type: ignore[index]
    assert storage.users.get("bo")["factories"] == []  # type: ignore[index]
    assert storage.users.update("nobody", role="read", by=ADMIN) is None


def test_a_factory_in_a_users_scope_is_not_deleted(storage: Storage) -> None:
    factory = storage.create_factory("north", None, ADMIN)
    storage.users.add("bo", "bo", role="read", factories=["north"], by=ADMIN)
    with pytest.raises(Conflict, match="scope of 1 user"):
        storage.delete_factory(factory["id"], ADMIN)
    storage.users.update("bo", factories=[], by=ADMIN)
    assert storage.delete_factory(factory["id"], ADMIN)


def test_a_setup_link_sets_the_password_once(storage: Storage) -> None:
    storage.users.add("bo", "bo", role="read", setup=("link-hash", now() + 60), by=ADMIN)
    assert storage.users.setup_user("link-hash") == "bo"
    done = storage.users.finish_setup("link-hash", hash_password("a long passphrase"))
    assert done is not None and done[1] == "bo"
    assert storage.users.finish_setup("link-hash", hash_password("another passphrase")) is None
    creds = storage.users.credentials("bo")
    assert creds is not None and verify_password(creds.password_hash, "a long passphrase")
    assert "a long passphrase" not in dump(storage)


def test_an_expired_setup_link_does_nothing(storage: Storage) -> None:
    storage.users.add("bo", "bo", role="read", setup=("link-hash", now() - 1), by=ADMIN)
    assert storage.users.setup_user("link-hash") is None
    assert storage.users.finish_setup("link-hash", hash_password("a long passphrase")) is None
    assert storage.users.get("bo")["has_password"] is False  # type: ignore[index]


def test_a_reset_ends_the_old_password(storage: Storage) -> None:
    storage.users.add(
        "bo", "bo", role="read", password_hash=hash_password("the old passphrase"), by=ADMIN
    )
    before = storage.users.get("bo")["password_changed_at"]  # type: ignore[index]
    assert storage.users.reset_password("bo", "new-link", now() + 60, by=ADMIN)
    creds = storage.users.credentials("bo")
    assert creds is not None and creds.password_hash is None
    assert storage.users.get("bo")["password_changed_at"] > before  # type: ignore[index]
    assert not storage.users.reset_password("nobody", "other-link", now() + 60, by=ADMIN)


def test_unlock_clears_failures(storage: Storage) -> None:
    storage.users.add("bo", "bo", role="read", by=ADMIN)
    with storage._write() as conn:
        conn.execute("UPDATE users SET failures = 5, locked_until = ? WHERE id > 0", (now() + 60,))
    assert storage.users.unlock("bo", by=ADMIN)
    creds = storage.users.credentials("bo")
    assert creds is not None and (creds.failures, creds.locked_until) == (0, None)
