"""The hub on a real Patroni cluster (docs/operations.md, "Outgrowing one box").

Each host in its own network namespace (devtools/cluster.py): etcd, two PostgreSQL 15
nodes under Patroni with synchronous replication (the shipped deploy/patroni.yml), two
``edge-hub serve`` hosts on the multi-host URL, HAProxy with the shipped deploy/haproxy.cfg.
A real agent with mosquitto is the gateway; sensors publish numbered readings at QoS 1 while
each fault happens, one after the other on the same cluster:

- the primary's postmaster killed (-9),
- the primary cut off the network for longer than Patroni's TTL, then healed: it must come
  back as a standby and never have taken writes as a second primary,
- one hub host killed (-9) and restarted, then HAProxy killed (-9) and restarted,
- ``patronictl switchover``.

After each, every reading the broker acknowledged is at the hub exactly once, every
threshold alert was opened once, and each alert's event reached a real webhook receiver
under one event id (a retried delivery repeats it). Before the faults, a console session
made on one hub host is used, with its CSRF token, on the other. The figures (seconds
without a writable primary, 503s answered) are printed for docs/operations.md:
``pytest -s tests/faults/test_cluster.py``.

Patroni runs with the test's own timings (TIMINGS), shorter than the shipped file's, so the
faults take less of the suite's time; the bench (bench/ha.py) measures the shipped ones.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools import cluster as cl
from devtools.stack import Agent, Broker, Proc, hub_cli, mosquitto_path, wait_for
from tests.hub.test_webhooks import SECRET, Receiver

from .conftest import SensorPublisher

pytestmark = [pytest.mark.integration, pytest.mark.faults]

if os.geteuid() != 0:  # pragma: no cover - the suite runs as root, as CI does
    pytest.fail("the cluster test makes network namespaces: run it as root", pytrace=False)
if missing := cl.missing_tools():  # pragma: no cover - `just test-deps` installs them
    pytest.fail(f"the cluster test needs: {', '.join(missing)}", pytrace=False)
if mosquitto_path() is None:  # pragma: no cover
    pytest.fail("mosquitto is required: apt-get install mosquitto", pytrace=False)

GATEWAY = "gw-cluster"
RATE = 100.0  # readings per second while a fault runs: a few thousand per fault
# Threshold alerts the agent opens (and syncs) once a sensor's value passes max. Values count
# up across all sensors, so each sensor's alert opens at a different point of the run.
ALERT_MAX = {"l1/m0/s0": 500.0, "l1/m1/s1": 3000.0, "l1/m2/s2": 7000.0, "l1/m3/s3": 11000.0}
# Patroni's timings here: the leader key lives ttl seconds without its holder (20, the
# least Patroni takes), each node checks its PostgreSQL every loop_wait, and gives its
# leader key up after retry_timeout without etcd, well before the ttl runs out (Patroni's
# rule: loop_wait + 2 * retry_timeout <= ttl). The shipped file has 30, 10 and 10.
TIMINGS = {"ttl": 20, "loop_wait": 2, "retry_timeout": 5}
TTL_S = float(TIMINGS["ttl"])
LOOP_WAIT_S = float(TIMINGS["loop_wait"])


@dataclass
class Cluster:
    root: Path
    nodes: list[cl.PatroniNode]
    hubs: list[cl.HubHost]
    lb: cl.Balancer
    broker: Broker
    agent: Agent
    read_token: str
    probe: cl.WritableProbe
    started: list[Proc]
    receiver: Receiver
    sensors: SensorPublisher | None = None
    figures: dict[str, str] = field(default_factory=dict)
    # Answers counted by processes that were killed since (their counters died with them).
    carried: collections.Counter[str] = field(default_factory=collections.Counter)

    def logs(self) -> str:
        return "\n".join(p.log_tail(30) for p in self.started)

    def node(self, name: str) -> cl.PatroniNode:
        return next(n for n in self.nodes if n.name == name)

    def leader(self) -> cl.PatroniNode:
        found = [m.name for m in cl.members(self.nodes).values() if m.role == "leader"]
        assert len(found) == 1, cl.members(self.nodes)
        return self.node(found[0])

    def answers(self) -> collections.Counter[str]:
        """Sync batches answered so far, by status at the hubs, and "balancer 5xx"."""
        total = collections.Counter(self.carried)
        for hub in self.hubs:
            total.update(hub.ingest_answers())
        total["balancer 5xx"] += self.lb.answered_5xx()
        return total

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.lb.url,
            headers={"Authorization": f"Bearer {self.read_token}"},
            timeout=30,
        )


def _start_cluster(root: Path, started: list[Proc], receivers: list[Receiver]) -> Cluster:
    """Every process started is appended to ``started`` at once, and the webhook receiver to
    ``receivers``, so a set-up that fails half way still has them stopped by the fixture."""
    nodes, database = cl.start_database(root, started, TIMINGS)
    # On the bridge's address, which exists from now on.
    receiver = Receiver(0, host=cl.GATEWAY_SIDE)
    receivers.append(receiver)
    # Both hosts send to the receiver on the gateways' side of the bridge; one at a time
    # holds the URL's lease, and the other takes over when that one is killed.
    hooks = (
        f'webhooks = [{{url = "{receiver.url}/hook", secret = "{SECRET}", '
        "backoff_min_s = 0.05, backoff_max_s = 0.5, max_attempts = 20}]\n"
    )
    hubs = [cl.HubHost(root, name, database, hooks) for name in ("hub-a", "hub-b")]
    hub_cli("migrate", config=hubs[0].config)
    token = hub_cli("gateway", "add", GATEWAY, "--factory", "plant-ha", config=hubs[0].config)
    read_token = hub_cli("token", "add", "--role", "read", config=hubs[0].config)
    for hub in hubs:
        started.append(hub.proc)
        hub.start()
    for hub in hubs:
        hub.wait_ready()
    lb = cl.Balancer(root)
    started.append(lb.proc)
    lb.start()
    broker = Broker(root)
    started.append(broker.proc)
    broker.start()
    rules = "".join(f'[rules."{key}"]\nmax = {limit}\n' for key, limit in ALERT_MAX.items())
    agent = Agent(
        root,
        gateway_id=GATEWAY,
        mqtt_port=broker.port,
        hub_url=lb.url,
        token=token,
        settings={"hub": {"batch_max_readings": 200, "timeout_s": 10.0, "backoff_max_s": 0.5}},
        extra=rules,
    )
    started.append(agent.proc)
    agent.start()
    probe = cl.WritableProbe(database)
    probe.start()
    return Cluster(root, nodes, hubs, lb, broker, agent, read_token, probe, started, receiver)


def _settled(nodes: list[cl.PatroniNode]) -> Callable[[], bool]:
    """:func:`_healthy`, and still so one Patroni loop after it first was: a primary restarted
    after a crash still shows its former synchronous standby until its next loop takes that
    standby's rights away (to give them back once it streams again)."""
    since: list[float] = []

    def check() -> bool:
        if not cl.healthy(nodes):
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return cl.elapsed_since(since[0]) > LOOP_WAIT_S + 1

    return check


def _wait(
    what: str, check: Callable[[], bool], timeout: float, logs: Cluster | None = None
) -> None:
    try:
        wait_for(what, check, timeout=timeout, every=0.2)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{logs.logs() if logs else ''}") from None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # In memory where the machine has it: the faults are of processes and the network, never
    # of the disk, and PostgreSQL's writes (and removing it all at the end) take seconds
    # less. The bench keeps its cluster on disk, as a real one is.
    shm = Path("/dev/shm")
    root = cl.make_root(shm if shm.is_dir() else None)
    started: list[Proc] = []
    c: Cluster | None = None
    receivers: list[Receiver] = []
    try:
        try:
            c = _start_cluster(root, started, receivers)
        except BaseException:
            print("\n".join(p.log_tail(40) for p in started))
            raise
        yield c
        print("\n" + "\n".join(f"{k}: {v}" for k, v in c.figures.items()))
    finally:
        if c is not None:
            c.probe.halt.set()
            if c.sensors is not None:
                with contextlib.suppress(AssertionError):
                    c.sensors.stop()
        cl.stop_all(started)
        cl.sweep()
        for receiver in receivers:
            receiver.close()
        # Every process's log outlives the cluster, where pytest keeps its temp dirs.
        logs = tmp_path_factory.mktemp("cluster-logs")
        for log in root.glob("*.log"):
            shutil.copy(log, logs)
        shutil.rmtree(root, ignore_errors=True)


def _readings(c: Cluster) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    with c.api() as api:
        for sensor in api.get("/api/v1/sensors").raise_for_status().json()["data"]:
            rows = api.get(
                f"/api/v1/sensors/{sensor['id']}/readings", params={"limit": 100_000}
            ).raise_for_status()
            out[sensor["key"]] = sorted((r["ts"], r["value"]) for r in rows.json()["data"])
    return out


def _counts(c: Cluster) -> dict[str, int]:
    with c.api() as api:
        return {
            s["key"]: api.get(f"/api/v1/sensors/{s['id']}/stats")
            .raise_for_status()
            .json()["data"]["count"]
            for s in api.get("/api/v1/sensors").raise_for_status().json()["data"]
        }


def _alerts_opened(c: Cluster) -> dict[str, int]:
    """Alerts at the hub per sensor key (each opened once is 1)."""
    with c.api() as api:
        keys = {s["id"]: s["key"] for s in api.get("/api/v1/sensors").json()["data"]}
        alerts = api.get("/api/v1/alerts", params={"per_page": 100}).raise_for_status()
    opened = collections.Counter(
        keys[a["sensor_id"]] for a in alerts.json()["data"] if a["sensor_id"] is not None
    )
    return dict(opened)


def _assert_exactly_once(c: Cluster) -> int:
    """Every reading the broker acknowledged is at the hub once (count and content, per
    sensor), and every sensor past its threshold has exactly one alert."""
    assert c.sensors is not None
    published = c.sensors.published()
    expected = {k: len(v) for k, v in published.items()}
    with contextlib.suppress(AssertionError):
        _wait("the hub to hold every reading", lambda: _counts(c) == expected, 60)
    stored = _readings(c)
    problems = []
    for key in sorted(set(published) | set(stored)):
        want = collections.Counter(published.get(key, []))
        got = collections.Counter(stored.get(key, []))
        lost, doubled = want - got, got - want
        if lost or doubled:
            problems.append(
                f"{key}: published {sum(want.values())}, hub has {sum(got.values())}; "
                f"lost {sum(lost.values())} (e.g. {sorted(lost)[:3]}), "
                f"doubled {sum(doubled.values())} (e.g. {sorted(doubled)[:3]})"
            )
    assert not problems, "\n".join(problems) + "\n" + c.logs()
    top = {key: max(v for _, v in readings) for key, readings in published.items()}
    want_alerts = {k: 1 for k, limit in ALERT_MAX.items() if top.get(k, 0.0) > limit}
    with contextlib.suppress(AssertionError):
        _wait("the alerts to reach the hub", lambda: _alerts_opened(c) == want_alerts, 30)
    assert _alerts_opened(c) == want_alerts
    _assert_webhooks_once(c)
    return sum(expected.values())


def _assert_webhooks_once(c: Cluster) -> None:
    """Each alert the hub opened reached the receiver as alert.opened, signed; a delivery
    tried again (a hub killed mid-way, the other taking the URL's lease over) repeats its
    event id, and no event ever arrives under two ids."""
    with c.api() as api:
        alerts = api.get("/api/v1/alerts", params={"per_page": 100}).raise_for_status()
    opened = {a["id"] for a in alerts.json()["data"]}

    def delivered() -> set[int]:
        with c.receiver.changed:
            bodies = [b[0] for b in c.receiver.accepted.values()]
        return {b["alert"]["id"] for b in bodies if b["event"] == "alert.opened"}

    # A host killed while it held the URL's lease: the other takes over once it lapses (60 s).
    _wait("every opened alert at the webhook receiver", lambda: delivered() == opened, 150, c)
    # An alarm whose source grows more severe (the edge's alert passing from high to
    # critical) is announced once more as opened with ``escalated``: another event.
    ids: dict[tuple[str, int, bool, bool], set[str]] = collections.defaultdict(set)
    with c.receiver.changed:
        assert all(signed for *_, signed in c.receiver.requests), c.receiver.requests
        for event_id, bodies in c.receiver.accepted.items():
            for body in bodies:
                assert body["id"] == event_id
                key = (body["event"], body["alert"]["id"], body["reannounced"], body["escalated"])
                ids[key].add(event_id)
    assert {k: v for k, v in ids.items() if len(v) > 1} == {}


def _under_load(
    c: Cluster,
    name: str,
    fault: Callable[[], None],
    recovered: Callable[[], bool],
    answers_allowed: frozenset[str] = frozenset({"200", "503", "balancer 5xx"}),
) -> float:
    """Sensors publishing, the fault, the cluster back, more readings, then the check.
    Returns the seconds without a writable primary."""
    if c.sensors is None:
        c.sensors = SensorPublisher(c.broker.port, rate=RATE)
    c.sensors.start()
    flowing = c.sensors.count() + 300
    _wait("readings flowing before the fault", lambda: c.sensors.count() >= flowing, 30, c)
    answers = c.answers()
    fault_at = time.monotonic()
    fault()
    _wait(f"the cluster back after {name}", recovered, 150, c)
    _wait("the hubs ready", lambda: all(h.ready() for h in c.hubs) and c.lb.ready(), 60, c)
    more = c.sensors.count() + 300  # written on the cluster as it is after the fault
    _wait("readings flowing after the fault", lambda: c.sensors.count() >= more, 30, c)
    c.sensors.pause()
    total = _assert_exactly_once(c)
    outage = c.probe.outage_since(fault_at)
    during = c.answers()
    during.subtract(answers)
    # A lost database is a 503 (database_unavailable), never a 500.
    assert {k for k, v in during.items() if v > 0} <= answers_allowed, during
    c.figures[name] = (
        f"{outage:.1f} s without a writable primary; sync batches answered 503 by the hubs "
        f"{during['503']}, 5xx by HAProxy {during['balancer 5xx']}, 2xx {during['200']}; "
        f"{total} readings published so far, 0 lost, 0 doubled"
    )
    return outage


def test_a_console_session_works_on_either_hub_host(cluster: Cluster) -> None:
    """Signed in on one host, the browser's next requests may reach the other: its session
    and CSRF secret are rows of the shared database, so that host knows them, and a sign-out
    there ends the session on both."""
    c = cluster
    first, second = c.hubs
    with httpx.Client(base_url=first.url, timeout=30) as a:
        signed = a.post("/login", data={"token": c.read_token})
    assert signed.status_code == 303, signed.text
    cookie = signed.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("edge_session=")
    with httpx.Client(base_url=second.url, timeout=30, headers={"Cookie": cookie}) as b:
        page = b.get("/alerts")
        assert page.status_code == 200, page.headers
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert found is not None
        assert b.post("/logout", data={"csrf_token": "not-it"}).status_code == 403
        out = b.post("/logout", data={"csrf_token": found.group(1)})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
    with httpx.Client(base_url=first.url, timeout=30, headers={"Cookie": cookie}) as a:
        ended = a.get("/alerts")
    assert ended.status_code == 303 and ended.headers["location"].startswith("/login")


def test_primary_postmaster_killed(cluster: Cluster) -> None:
    c = cluster
    primary = c.leader()
    _under_load(
        c,
        "kill -9 of the primary's postmaster",
        lambda: cl.signal_postmaster(primary),
        _settled(c.nodes),
    )


def test_primary_cut_off_longer_than_ttl_rejoins_as_standby(cluster: Cluster) -> None:
    c = cluster
    old = c.leader()
    new = next(n for n in c.nodes if n is not old)

    def partition() -> None:
        cut_at = time.monotonic()
        cl.cut(old.name)
        try:
            _wait(f"{new.name} promoted", lambda: new.in_recovery() is False, 120, c)
            # Patroni on the cut node gives its leader key up after retry_timeout, before the
            # TTL runs out and the other node may promote: never two primaries at once.
            assert old.in_recovery() is not False, f"{old.name} still takes writes"
            _wait("the cut to outlast the TTL", lambda: cl.elapsed_since(cut_at) > TTL_S, 60)
        finally:
            cl.heal(old.name)

    settled = _settled(c.nodes)

    def rejoined() -> bool:
        return settled() and cl.members(c.nodes)[old.name].role == "sync_standby"

    _under_load(c, "primary cut off the network, then healed", partition, rejoined)
    assert c.leader() is new
    assert old.in_recovery() is True  # the former primary is a standby now


def test_hub_host_and_haproxy_killed(cluster: Cluster) -> None:
    c = cluster
    hub = c.hubs[0]

    def kill_and_restart() -> None:
        c.carried.update(hub.ingest_answers())  # its counters die with it
        hub.kill()
        hub.start()
        hub.wait_ready()
        c.carried["balancer 5xx"] += c.lb.answered_5xx()
        c.lb.kill()
        c.lb.start()

    # HAProxy killed while it passes a batch on leaves the hub half a body, which it answers
    # 400 to no one: the agent saw its connection drop and sends the batch again (and the
    # exactly-once check shows it did).
    cut_short = frozenset({"200", "503", "400", "balancer 5xx"})
    _under_load(
        c, "kill -9 of a hub host, then of HAProxy", kill_and_restart, lambda: True, cut_short
    )


def test_switchover_under_load(cluster: Cluster) -> None:
    c = cluster
    old = c.leader()
    new = next(n for n in c.nodes if n is not old)
    took: list[float] = []

    def switchover() -> None:
        started = time.monotonic()
        new.patronictl("switchover", "--leader", old.name, "--candidate", new.name, "--force")
        took.append(cl.elapsed_since(started))

    settled = _settled(c.nodes)

    def switched() -> bool:
        return settled() and cl.members(c.nodes)[new.name].role == "leader"

    _under_load(c, "patronictl switchover", switchover, switched)
    c.figures["switchover command"] = f"{took[0]:.1f} s"
