"""A person's sign-in over HTTP against the real hub (both engines): name and password, the
same answer for every refusal, bad input, the throttle per name and per address, lockout
and ``edge-hub user unlock``, the one-time setup page, and a disabled account's sessions."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from hub.cli import main
from hub.storage import open_storage
from tests.hub.conftest import HubProcess, start_hub, token

PASSWORD = "correct horse battery staple"
LINK = re.compile(r"/setup\?token=([A-Za-z0-9_-]{43})$")


class _Console:
    def __str__(self) -> str:
        return "{ sign_in_max_failures = 5, lockout_failures = 3, lockout_s = 600 }"


def cli(hub: HubProcess, *args: str, stdin: str = "") -> str:
    """``edge-hub ARGS``'s stdout, run in this process against the hub's database."""
    out, err = io.StringIO(), io.StringIO()
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        code = main([*args, "--config", str(hub.config)], stdout=out, stderr=err)
    finally:
        sys.stdin = saved
    assert code == 0, err.getvalue()
    return out.getvalue().strip()


def add_user(hub: HubProcess, name: str, *extra: str, password: str = PASSWORD) -> None:
    cli(hub, "user", "add", name, "--role", "operator", *extra, "--password-stdin", stdin=password)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_database: str) -> Iterator[HubProcess]:
    server = start_hub(
        tmp_path_factory.mktemp("hub"),
        database=hub_database,
        anomaly_scan_interval_s=0,
        console=_Console(),
    )
    try:
        server.tokens = {"admin": token(server.config, "token", "add", "--role", "admin")}
        yield server
    finally:
        server.stop()


class Browser:
    """A client that keeps its cookies, as a browser does, from one source address (the
    hub trusts X-Real-IP from a loopback peer)."""

    def __init__(self, hub: HubProcess, address: str = "192.0.2.1") -> None:
        self.client = httpx.Client(
            base_url=hub.url, timeout=30, headers={"X-Real-IP": address}, follow_redirects=False
        )

    def form_token(self, path: str = "/login") -> str:
        page = self.client.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return found[1]

    def sign_in(self, name: str, password: str, **headers: str) -> httpx.Response:
        data = {"csrf_token": self.form_token(), "name": name, "password": password}
        return self.client.post("/login", data=data, headers=headers)

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)


def plain(page: str) -> str:
    """A sign-in page without what differs by design: the form's token, the name typed."""
    page = re.sub(r'name="csrf_token" value="[^"]*"', "", page)
    return re.sub(r'(id="name"[^>]*value=")[^"]*"', r'\1"', page)


def audit(hub: HubProcess) -> list[tuple[str, str]]:
    with hub.client("admin") as c:
        rows = c.get("/api/v1/audit", params={"target": "user", "limit": 500}).json()["data"]
    return [(r["action"], r["target_id"]) for r in reversed(rows)]


def test_a_person_signs_in_with_their_password(hub: HubProcess) -> None:
    add_user(hub, "Anna", "--display", "Anna Berg")
    browser = Browser(hub)
    assert browser.get("/api/v1/alerts").status_code == 401
    # Any case of the name is the account.
    r = browser.sign_in("aNNA", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("edge_session=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert browser.get("/api/v1/alerts").status_code == 200
    page = browser.get("/")
    assert page.status_code == 200 and 'id="person">Anna Berg<' in page.text
    assert ("user.sign_in", "Anna") in audit(hub)


def test_every_refusal_reads_the_same(hub: HubProcess) -> None:
    add_user(hub, "bea")
    add_user(hub, "dora")
    cli(hub, "user", "disable", "dora")
    add_user(hub, "lena")
    for i in range(3):
        assert Browser(hub, f"192.0.2.2{i}").sign_in("lena", "nope").status_code == 401
    # One browser (its form token is the same on every page), each try from its own address
    # so that the address's throttle stays out of it.
    browser = Browser(hub)
    tries = [
        ("nobody-here", PASSWORD),  # unknown
        ("dora", PASSWORD),  # disabled, right password
        ("bea", "not her password"),  # wrong password
        ("lena", PASSWORD),  # locked, right password
        ("an\u0000na", PASSWORD),  # a name no account can have
    ]
    answers = [
        browser.sign_in(name, password, **{"X-Real-IP": f"192.0.2.3{i}"})
        for i, (name, password) in enumerate(tries)
    ]
    assert [r.status_code for r in answers] == [401] * 5
    assert len({plain(r.text) for r in answers}) == 1
    assert "The user name or password is wrong." in answers[0].text
    assert all("edge_session" not in r.headers.get("set-cookie", "") for r in answers)


def test_bad_input_gets_a_clear_4xx(hub: HubProcess) -> None:
    add_user(hub, "José", password="pässwörd ñandú 42")
    browser = Browser(hub, "192.0.2.30")
    assert browser.sign_in("", PASSWORD).status_code == 400
    assert browser.sign_in("José", "").status_code == 400
    assert browser.sign_in("José", "x" * 10_240).status_code == 413
    # Other forms of the same name and password (decomposed, upper case) are the same.
    r = browser.sign_in(
        unicodedata.normalize("NFD", "JOSÉ"), unicodedata.normalize("NFD", "pässwörd ñandú 42")
    )
    assert r.status_code == 303
    assert Browser(hub, "192.0.2.31").sign_in("José", "pässwörd ñandú 43").status_code == 401


def test_a_sign_in_post_from_elsewhere_is_refused(hub: HubProcess) -> None:
    add_user(hub, "eva")
    browser = Browser(hub, "192.0.2.40")
    foreign = browser.sign_in("eva", PASSWORD, Origin="https://evil.example")
    assert foreign.status_code == 403
    cross = browser.sign_in("eva", PASSWORD, **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    # No form token from this hub's sign-in page: refused, even from no browser at all.
    bare = httpx.post(f"{hub.url}/login", data={"name": "eva", "password": PASSWORD}, timeout=30)
    assert bare.status_code == 403
    made_up = httpx.post(
        f"{hub.url}/login",
        data={"name": "eva", "password": PASSWORD, "csrf_token": "x" * 43},
        cookies={"edge_signin": "y" * 43},
        timeout=30,
    )
    assert made_up.status_code == 403
    # No sign-in was tried as far as the log goes (the account's creation is there).
    assert "eva" not in [t for action, t in audit(hub) if action.startswith("user.sign_in")]
    assert browser.sign_in("eva", PASSWORD).status_code == 303


def test_sign_ins_are_throttled_per_name_and_per_address(hub: HubProcess) -> None:
    # One name from ever new addresses: its own count stops it (5 a window here).
    tried = [Browser(hub, f"198.51.100.{i}").sign_in("ghost", "guess") for i in range(7)]
    assert [r.status_code for r in tried] == [401] * 5 + [429] * 2
    assert 1 <= int(tried[-1].headers["Retry-After"]) <= 900
    # Ever new names from one address: the address's count stops it.
    browser = Browser(hub, "203.0.113.9")
    tried = [browser.sign_in(f"ghost{i}", "guess") for i in range(7)]
    assert [r.status_code for r in tried] == [401] * 5 + [429] * 2
    # A person with the right password is held up too while the name is throttled.
    add_user(hub, "Ghost2")
    assert Browser(hub, "203.0.113.10").sign_in("ghost2", PASSWORD).status_code == 303


def test_a_locked_account_signs_in_after_edge_hub_user_unlock(hub: HubProcess) -> None:
    add_user(hub, "carl")
    browser = Browser(hub, "192.0.2.50")
    assert [browser.sign_in("carl", "wrong").status_code for _ in range(3)] == [401] * 3
    assert browser.sign_in("carl", PASSWORD).status_code == 401
    assert '"state": "locked"' in cli(hub, "user", "list", "--json").replace(
        '"state":"locked"', '"state": "locked"'
    )
    cli(hub, "user", "unlock", "CARL")
    assert browser.sign_in("carl", PASSWORD).status_code == 303
    carl = [action for action, target in audit(hub) if target == "carl"]
    assert carl == [
        "user.create",
        "user.sign_in_failed",
        "user.sign_in_failed",
        "user.sign_in_failed",
        "user.lock",
        "user.sign_in_failed",
        "user.unlock",
        "user.sign_in",
    ]


def test_disabling_a_person_ends_their_sessions(hub: HubProcess) -> None:
    add_user(hub, "finn")
    browser = Browser(hub, "192.0.2.60")
    assert browser.sign_in("finn", PASSWORD).status_code == 303
    assert browser.get("/api/v1/alerts").status_code == 200
    cli(hub, "user", "disable", "finn")
    assert browser.get("/api/v1/alerts").status_code == 401
    assert browser.get("/").headers["location"] == "/login"
    cli(hub, "user", "enable", "finn")
    assert browser.get("/api/v1/alerts").status_code == 401
    assert browser.sign_in("finn", PASSWORD).status_code == 303
    assert browser.get("/api/v1/alerts").status_code == 200


def test_a_setup_link_sets_the_password_once_and_signs_in(hub: HubProcess) -> None:
    link = cli(hub, "user", "add", "gus", "--role", "read")
    found = LINK.search(link)
    assert found is not None
    path = f"/setup?token={found[1]}"
    browser = Browser(hub, "192.0.2.70")
    page = browser.get(path)
    assert page.status_code == 200 and 'id="setup-user">gus<' in page.text

    def post(password: str, confirm: str | None = None) -> httpx.Response:
        data = {
            "csrf_token": browser.form_token(path),
            "token": found[1],
            "password": password,
            "confirm": password if confirm is None else confirm,
        }
        return browser.client.post("/setup", data=data)

    short = post("short")
    assert short.status_code == 400
    assert re.search(r'id="password-error">The password must have at least 12', short.text)
    common = post("qwerty123456")
    assert common.status_code == 400 and "most common" in common.text
    assert post(PASSWORD, PASSWORD + "!").status_code == 400
    done = post(PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert browser.get("/api/v1/alerts").status_code == 200
    # Spent: the page and its form are gone; the password works.
    assert browser.get(path).status_code == 404
    other = Browser(hub, "192.0.2.72")
    data = {
        "csrf_token": other.form_token(),
        "token": found[1],
        "password": "another long passphrase",
        "confirm": "another long passphrase",
    }
    again = other.client.post("/setup", data=data)
    assert again.status_code == 404
    assert Browser(hub, "192.0.2.71").sign_in("gus", PASSWORD).status_code == 303


def test_an_expired_setup_link_is_refused(hub: HubProcess, hub_database: str) -> None:
    found = LINK.search(cli(hub, "user", "add", "hal", "--role", "read"))
    assert found is not None
    with contextlib.closing(open_storage(hub_database)) as storage, storage._write() as conn:
        conn.execute("UPDATE users SET setup_expires_at = 1 WHERE name_key = 'hal'")
    assert Browser(hub).get(f"/setup?token={found[1]}").status_code == 404
    assert Browser(hub).get("/setup?token=" + "x" * 5000).status_code == 404


def test_token_sign_in_can_be_turned_off(tmp_path: Path, database_url: str) -> None:
    class Console:
        def __str__(self) -> str:
            return "{ token_sign_in = false }"

    server = start_hub(
        tmp_path, database=database_url, anomaly_scan_interval_s=0, console=Console()
    )
    try:
        secret = token(server.config, "token", "add", "--role", "read")
        page = httpx.get(f"{server.url}/login", timeout=30)
        assert 'id="password-form"' in page.text and 'id="token"' not in page.text
        r = httpx.post(f"{server.url}/login", data={"token": secret}, timeout=30)
        assert r.status_code == 400 and "edge_session" not in r.headers.get("set-cookie", "")
        # The API still takes the token.
        assert (
            server.client()
            .get("/api/v1/alerts", headers={"Authorization": f"Bearer {secret}"})
            .status_code
            == 200
        )
    finally:
        server.stop()


def test_a_person_or_token_limited_to_a_factory_sees_only_it_in_the_console(
    hub: HubProcess,
) -> None:
    cli(hub, "gateway", "add", "gw-north", "--factory", "north")
    cli(hub, "gateway", "add", "gw-south", "--factory", "south")
    add_user(hub, "kim", "--factory", "north")
    person = Browser(hub, "192.0.2.80")
    assert person.sign_in("kim", PASSWORD).status_code == 303
    scoped_token = cli(hub, "token", "add", "--role", "read", "--factory", "north")
    machine = Browser(hub, "192.0.2.81")
    assert machine.client.post("/login", data={"token": scoped_token}).status_code == 303
    for browser in (person, machine):
        r = browser.get("/api/v1/factories")
        assert r.status_code == 200
        assert [row["name"] for row in r.json()["data"]] == ["north"]
        gateways = browser.get("/api/v1/gateways").json()["data"]
        assert {row["name"] for row in gateways} == {"gw-north"}


def test_a_password_check_does_not_hold_up_other_requests(
    tmp_path: Path, database_url: str
) -> None:
    # One Robyn worker thread: were the argon2 check run on it, every request arriving
    # meanwhile (a gateway's batch, here a probe) would wait for it.
    server = start_hub(tmp_path, database=database_url, anomaly_scan_interval_s=0, threads=1)
    try:
        add_user(server, "ida")
        # A hash made with ten times the passes on one lane: its check takes a second or more,
        # so a probe held up by it stands far above what a busy machine's scheduler can do to
        # one (with the usual 0.15 s check, CI once saw a probe wait 0.33 s of it, starved of
        # CPU by the check's four lanes and the other test process). Any hash verifies.
        slow = PasswordHasher(time_cost=30, memory_cost=65536, parallelism=1).hash(PASSWORD)
        with contextlib.closing(open_storage(database_url)) as storage:
            assert storage.users.set_password("ida", slow, changed=False)
        browser = Browser(server)
        data = {"csrf_token": browser.form_token(), "name": "ida", "password": PASSWORD}
        done = threading.Event()
        took: list[float] = []

        def sign_in() -> None:
            started = time.perf_counter()
            assert browser.client.post("/login", data=data).status_code == 303
            took.append(time.perf_counter() - started)
            done.set()

        waits: list[float] = []
        worker = threading.Thread(target=sign_in)
        with httpx.Client(base_url=server.url, timeout=30) as probe:
            worker.start()
            while not done.is_set():
                started = time.perf_counter()
                assert probe.get("/health/live").status_code == 200
                waits.append(time.perf_counter() - started)
        worker.join(timeout=30)
        assert took and waits
        assert max(waits) < took[0] / 2, (max(waits), took[0])
    finally:
        server.stop()
