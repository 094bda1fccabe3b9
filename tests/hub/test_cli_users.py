"""``edge-hub user ...`` on both engines: accounts made, listed and changed from the command
line; the setup link printed alone and once, only its hash kept; bad names and passwords
refused with a clear message and nothing stored."""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.auth import hash_token
from hub.cli import main
from hub.passwords import verify_password
from hub.storage import Storage, open_storage
from hub.storage.audit import Actor
from tests.hub.conftest import clean_env, dump, free_port, hub_command, run_cli, write_config

LINK = re.compile(r"^http://127\.0\.0\.1:\d+/setup\?token=([A-Za-z0-9_-]{43})\n$")


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, free_port(), database=database_url)


@pytest.fixture
def storage(config: Path, database_url: str) -> Iterator[Storage]:
    with contextlib.closing(open_storage(database_url)) as s:
        s.migrate()
        s.create_factory("north", None, Actor(None, "admin"))
        yield s


def cli(config: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        code = main([*args, "--config", str(config)], stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def users(config: Path) -> list[dict[str, object]]:
    code, out, err = cli(config, "user", "list", "--json")
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def test_add_prints_a_setup_link_alone_and_keeps_only_its_hash(
    config: Path, storage: Storage
) -> None:
    code, out, err = cli(
        config, "user", "add", "Anna", "--role", "operator", "--display", "Anna Berg",
        "--factory", "north",
    )  # fmt: skip
    assert code == 0, err
    found = LINK.match(out)
    assert found is not None, out
    assert "24 h" in err
    assert storage.users.setup_user(hash_token(found[1])) == "Anna"
    assert found[1] not in dump(storage)
    assert users(config) == [
        {
            "name": "Anna",
            "display": "Anna Berg",
            "role": "operator",
            "factories": ["north"],
            "state": "no password",
            "created": users(config)[0]["created"],
        }
    ]


def test_the_link_starts_with_the_public_url(tmp_path: Path, database_url: str) -> None:
    config = write_config(
        tmp_path, free_port(), database=database_url, public_url="https://hub.plant.example/"
    )
    code, out, _ = cli(config, "user", "add", "bo", "--role", "read")
    assert code == 0 and out.startswith("https://hub.plant.example/setup?token=")


def test_password_stdin_sets_the_password(config: Path, storage: Storage) -> None:
    code, out, err = cli(
        config, "user", "add", "bo", "--role", "read", "--password-stdin",
        stdin="Grüße aus Köln 42\n",
    )  # fmt: skip
    assert (code, out) == (0, ""), err
    creds = storage.users.credentials("bo")
    assert creds is not None and verify_password(creds.password_hash, "Grüße aus Köln 42")
    assert users(config)[0]["state"] == "active"


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("\n", "at least 12"),
        ("x" * 10_240, "at most 256"),
        ("qwerty123456\n", "most common"),
        ("correct horse\x00battery\n", "U+0000"),
    ],
)
def test_bad_passwords_are_refused_and_nothing_is_stored(
    config: Path, storage: Storage, password: str, why: str
) -> None:
    code, out, err = cli(
        config, "user", "add", "bo", "--role", "read", "--password-stdin", stdin=password
    )
    assert (code, out) == (2, "") and why in err
    assert users(config) == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("x" * 10_240, "at most 64"),
        ("anna berg", "spaces"),
        ("an\u200bna", "U+200B"),
    ],
)
def test_bad_names_are_refused(config: Path, storage: Storage, name: str, why: str) -> None:
    code, _, err = cli(config, "user", "add", name, "--role", "read")
    assert code == 2 and why in err
    assert users(config) == []


@pytest.mark.parametrize("again", ["ANNA", "anna"])
def test_a_name_differing_only_in_case_is_taken(config: Path, storage: Storage, again: str) -> None:
    assert cli(config, "user", "add", "Anna", "--role", "read")[0] == 0
    code, out, err = cli(config, "user", "add", again, "--role", "admin")
    assert (code, out) == (1, "") and "already exists" in err


def test_a_name_differing_only_in_normalization_is_taken(config: Path, storage: Storage) -> None:
    assert cli(config, "user", "add", "Jos\u00e9", "--role", "read")[0] == 0
    code, _, err = cli(config, "user", "add", "Jose\u0301", "--role", "read")
    assert code == 1 and "already exists" in err
    assert cli(config, "user", "disable", "JOSE\u0301")[0] == 0


def test_an_unknown_factory_is_refused(config: Path, storage: Storage) -> None:
    code, _, err = cli(config, "user", "add", "bo", "--role", "read", "--factory", "nowhere")
    assert code == 2 and "no factory 'nowhere'" in err
    assert users(config) == []


def test_disable_enable_set_role_unlock(config: Path, storage: Storage) -> None:
    assert cli(config, "user", "add", "bo", "--role", "read", "--password-stdin",
               stdin="a long passphrase\n")[0] == 0  # fmt: skip
    assert cli(config, "user", "disable", "BO")[0] == 0
    assert users(config)[0]["state"] == "disabled"
    assert cli(config, "user", "enable", "bo")[0] == 0
    assert users(config)[0]["state"] == "active"
    code, _, err = cli(config, "user", "set-role", "bo", "--role", "admin", "--factory", "north")
    assert code == 0, err
    assert (users(config)[0]["role"], users(config)[0]["factories"]) == ("admin", ["north"])
    assert cli(config, "user", "set-role", "bo", "--role", "read")[0] == 0
    assert users(config)[0]["factories"] == []
    with storage._write() as conn:
        conn.execute("UPDATE users SET failures = 9, locked_until = 4e9 WHERE id > 0")
    assert users(config)[0]["state"] == "locked"
    assert cli(config, "user", "unlock", "bo")[0] == 0
    assert users(config)[0]["state"] == "active"


@pytest.mark.parametrize("action", ["disable", "enable", "unlock", "reset-password"])
def test_an_unknown_user_is_exit_2(config: Path, storage: Storage, action: str) -> None:
    code, out, err = cli(config, "user", action, "nobody")
    assert (code, out) == (2, "") and "no user 'nobody'" in err


def test_reset_password_ends_the_old_one_and_prints_a_new_link(
    config: Path, storage: Storage
) -> None:
    assert cli(config, "user", "add", "bo", "--role", "read", "--password-stdin",
               stdin="a long passphrase\n")[0] == 0  # fmt: skip
    code, out, err = cli(config, "user", "reset-password", "bo")
    found = LINK.match(out)
    assert code == 0 and found is not None, err
    creds = storage.users.credentials("bo")
    assert creds is not None and creds.password_hash is None
    assert storage.users.setup_user(hash_token(found[1])) == "bo"


def test_password_stdin_through_a_real_pipe(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    result = subprocess.run(
        [*hub_command(), "user", "add", "bo", "--role", "read", "--password-stdin",
         "--config", str(config)],
        input="a long passphrase\n", env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    listed = run_cli(config, "user", "list")
    assert re.search(r"^bo\s+-\s+read\s+all\s+active\s", listed.stdout, re.M), listed.stdout


def test_every_change_from_the_command_line_is_audited(config: Path, storage: Storage) -> None:
    assert cli(config, "user", "add", "Bo", "--role", "read", "--display", "Bo B")[0] == 0
    assert cli(config, "user", "set-role", "bo", "--role", "admin", "--factory", "north")[0] == 0
    assert cli(config, "user", "disable", "bo")[0] == 0
    assert cli(config, "user", "enable", "bo")[0] == 0
    assert cli(config, "user", "unlock", "bo")[0] == 0
    assert cli(config, "user", "reset-password", "bo")[0] == 0
    # refused: nothing is in the log
    assert cli(config, "user", "set-role", "bo", "--role", "read", "--factory", "nowhere")[0] == 2
    assert cli(config, "user", "disable", "nobody")[0] == 2
    rows, total = storage.audit_page(0, 50, target="user")
    assert total == 6
    rows.reverse()
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("user.create", "Bo"),
        ("user.update", "Bo"),
        ("user.disable", "Bo"),
        ("user.enable", "Bo"),
        ("user.unlock", "Bo"),
        ("user.reset_password", "Bo"),
    ]
    assert rows[0]["detail"] == {
        "role": "read",
        "display": "Bo B",
        "factories": [],
        "password": "setup link",
    }
    assert rows[1]["detail"] == {
        "role": {"from": "read", "to": "admin"},
        "factories": {"from": [], "to": ["north"]},
    }
    for row in rows:
        # the hub's own command line, run by this login
        assert (row["by_kind"], row["by_name"], row["role"], row["token_id"]) == (
            "system",
            "cli",
            "admin",
            None,
        )
        assert row["by_display"] == getpass.getuser()


def test_tokens_have_names(config: Path, storage: Storage) -> None:
    label = "Pr\u00fcfstand Nord"
    code, out, err = cli(config, "token", "add", "--role", "operator", "--name", label)
    assert code == 0, err
    record = storage.token_by_hash(hash_token(out.strip()))
    assert record is not None and record.name == label
    assert cli(config, "token", "add", "--role", "read")[0] == 0
    code, out, _ = cli(config, "token", "list", "--json")
    assert [(t["name"], t["role"]) for t in json.loads(out)] == [
        (label, "operator"),
        (None, "read"),
    ]
    for bad in ("", " padded", "x" * 129, "bell\a", "zero\u200bwidth"):
        code, out, err = cli(config, "token", "add", "--role", "read", "--name", bad)
        assert (code, out) == (2, "") and "token name" in err, bad
    assert len(storage.list_tokens()) == 2
