"""Console sign-in abuse: failed sign-ins are throttled per source address and per token,
counted in the database so every hub process shares the counts; a token holds at most
``max_sessions_per_token`` live sessions (the oldest ends). Both engines."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from hub.auth import hash_token
from hub.storage import Storage, open_storage
from shared.timeutil import now
from tests.hub.conftest import HubProcess, start_hub, token

MAX_FAILURES = 3


class _Console:
    def __str__(self) -> str:
        return f"{{ sign_in_max_failures = {MAX_FAILURES}, max_sessions_per_token = 2 }}"


@pytest.fixture
def two_workers(tmp_path: Path, database_url: str) -> Iterator[HubProcess]:
    hub = start_hub(
        tmp_path, database=database_url, workers=2, anomaly_scan_interval_s=0, console=_Console()
    )
    try:
        assert len(psutil.Process(hub.proc.pid).children()) == 2
        revoked = token(hub.config, "token", "add", "--role", "read")
        hub.tokens = {
            "read": token(hub.config, "token", "add", "--role", "read"),
            "operator": token(hub.config, "token", "add", "--role", "operator"),
            "revoked": revoked,
        }
        with contextlib.closing(open_storage(database_url)) as storage:
            record = storage.token_by_hash(hash_token(revoked))
            assert record is not None and storage.revoke_token(record.id)
        yield hub
    finally:
        hub.stop()


def form_free(page: str) -> str:
    """A sign-in page without its form's CSRF token (new for each browser)."""
    return re.sub(r'name="csrf_token" value="[^"]*"', "", page)


def sign_in(hub: HubProcess, secret: str, address: str = "192.0.2.1") -> httpx.Response:
    # A fresh connection each time: the kernel spreads them over both hub processes. The
    # hub trusts X-Real-IP from a loopback peer (the front sets it), so it names the client.
    return httpx.post(
        f"{hub.url}/login",
        data={"token": secret},
        headers={"X-Real-IP": address, "Connection": "close"},
        follow_redirects=False,
        timeout=30,
    )


def test_failed_sign_ins_are_throttled_per_address_across_processes(
    two_workers: HubProcess,
) -> None:
    hub = two_workers
    unknown = "fer_" + "x" * 43
    answers = [sign_in(hub, s) for s in (unknown, hub.tokens["revoked"], unknown + "y")]
    assert [r.status_code for r in answers] == [401] * MAX_FAILURES
    # An unknown and a revoked token read the same (but for each page's own form token).
    assert form_free(answers[0].text) == form_free(answers[1].text)
    refused = [sign_in(hub, s) for s in (unknown, hub.tokens["revoked"], hub.tokens["read"])]
    assert [r.status_code for r in refused] == [429] * 3
    # The same page but for the wait, which counts down as the requests go by (on a busy
    # machine they can straddle a second).
    assert len({re.sub(r"try again in \d+ s", "", form_free(r.text)) for r in refused}) == 1
    assert all("try again in" in r.text for r in refused)
    for r in refused:
        assert 1 <= int(r.headers["Retry-After"]) <= 900
        assert "edge_session" not in r.headers.get("set-cookie", "")
    # Another address is not held up by that one.
    assert sign_in(hub, hub.tokens["read"], "192.0.2.2").status_code == 303


def test_a_good_sign_in_does_not_count_and_a_token_is_throttled_across_addresses(
    two_workers: HubProcess,
) -> None:
    hub = two_workers
    for _ in range(MAX_FAILURES + 2):
        assert sign_in(hub, hub.tokens["read"], "192.0.2.9").status_code == 303
    # The same (revoked) token from ever new addresses: its own count stops it.
    tried = [sign_in(hub, hub.tokens["revoked"], f"198.51.100.{i}") for i in range(5)]
    assert [r.status_code for r in tried] == [401] * MAX_FAILURES + [429] * 2


def test_a_token_keeps_at_most_max_sessions_per_token(two_workers: HubProcess) -> None:
    hub = two_workers
    cookies = []
    for i in range(3):
        r = sign_in(hub, hub.tokens["operator"], f"203.0.113.{i}")
        assert r.status_code == 303
        cookies.append(r.cookies["edge_session"])

    def status(cookie: str) -> int:
        return httpx.get(
            f"{hub.url}/api/v1/alerts", cookies={"edge_session": cookie}, timeout=30
        ).status_code

    # The oldest ended on the third sign-in; the two newest live on.
    assert [status(c) for c in cookies] == [401, 200, 200]


def test_storage_counts_attempts_per_window(storage: Storage) -> None:
    at = now()
    assert storage.sign_in_attempt(["a", "b"], at, 60) == [(1, at), (1, at)]
    assert storage.sign_in_attempt(["a"], at + 1, 60) == [(2, at)]
    storage.sign_in_forgive(["a"], ["b"])
    assert storage.sign_in_attempt(["a", "b"], at + 2, 60) == [(2, at), (1, at + 2)]
    # The window is over: counting starts again.
    assert storage.sign_in_attempt(["a"], at + 61, 60) == [(1, at + 61)]


def test_storage_ends_the_oldest_session_past_the_cap(storage: Storage) -> None:
    storage.add_token("read", hash_token("fer_t"))
    ends = now() + 3600
    ended = [storage.create_session(f"s{i}", hash_token("fer_t"), "c", ends, 2) for i in range(4)]
    assert ended == [0, 0, 1, 1]
    assert [storage.session_by_hash(f"s{i}") is not None for i in range(4)] == [
        False,
        False,
        True,
        True,
    ]
