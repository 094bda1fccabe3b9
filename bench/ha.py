"""Rows: the hub on a Patroni cluster against one hub on one PostgreSQL, and a failover.

edge-load (Rust) posts 100-reading batches flat out from GATEWAYS gateways for SECONDS:

- baseline: to one hub (workers = 1) on one durable PostgreSQL 15 (bench.pgserver: fsync and
  synchronous_commit on);
- cluster: through HAProxy (the shipped haproxy.cfg) to two hub hosts (workers = 1 each) on
  two PostgreSQL 15 nodes under Patroni with synchronous replication (the shipped
  patroni.yml), each host in its own network namespace (devtools/cluster.py). Every commit
  waits for the standby's flush as well.

Then, with edge-load still posting to the cluster, the primary's host is lost: its Patroni and
PostgreSQL are killed (-9) and stay down. The failover row is the seconds from the kill until
a new session reaches a writable primary through the hubs' multi-host URL (Patroni's `ttl`
decides most of it), and it says how many readings were lost or doubled: edge-load's
acknowledged readings against the rows in the database.

Everything here runs on the one machine: both PostgreSQL nodes, both hubs, HAProxy, etcd and
edge-load share its cores, which the baseline's three processes do not.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import Row, edge_load
from bench.pgserver import PgBenchServer
from devtools import cluster as cl
from devtools.stack import Hub, Proc, hub_cli, wait_for

GATEWAYS = 100
BATCH = 100
SENSORS = 5
FAILOVER_LOAD_S = 60.0  # edge-load runs this long while the primary's host is lost


def _edge_load(url: str, tokens: Path, seconds: float, seq_start: int) -> dict[str, Any]:
    return edge_load(
        url, tokens, seconds, "--seq-start", str(seq_start), batch=BATCH, sensors=SENSORS
    )


def _stored(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return int(row[0])


def _single(wd: Path, seconds: float) -> float:
    """readings/s of one hub on one PostgreSQL."""
    from tests.pg import bin_dir

    found = bin_dir()
    if found is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = PgBenchServer(found).start()
    hub = Hub(wd, database=server.url())
    try:
        ids = [f"gw-{i:04d}" for i in range(GATEWAYS)]
        tokens = wd / "tokens.txt"
        tokens.write_text(hub.cli("gateway", "add", *ids, "--factory", "bench") + "\n")
        hub.start()
        _edge_load(hub.url, tokens, 2, 1)  # every sensor made before the measured run
        return float(_edge_load(hub.url, tokens, seconds, 1_000_000)["readings_per_s"])
    finally:
        hub.stop()
        server.stop()


def _lose_host(node: cl.PatroniNode) -> None:
    """The node's Patroni and PostgreSQL killed (-9): its host lost power. The postmaster is
    not Patroni's child (Patroni detaches it), so both families go."""
    postmaster = node.postmaster().pid
    assert node.proc.popen is not None
    cl.kill_family(node.proc.popen.pid)
    cl.kill_family(postmaster)


def _cluster(wd: Path, seconds: float) -> tuple[float, float, dict[str, int]]:
    """readings/s through the cluster, then seconds without a writable primary after the
    primary's host is lost, and the lost/doubled tally of that run."""
    started: list[Proc] = []
    try:
        nodes, database = cl.start_database(wd, started)
        hubs = [cl.HubHost(wd, name, database) for name in ("hub-a", "hub-b")]
        hub_cli("migrate", config=hubs[0].config)
        ids = [f"gw-{i:04d}" for i in range(GATEWAYS)]
        tokens = wd / "tokens.txt"
        tokens.write_text(
            hub_cli("gateway", "add", *ids, "--factory", "bench", config=hubs[0].config) + "\n"
        )
        for hub in hubs:
            started.append(hub.proc)
            hub.start()
        for hub in hubs:
            hub.wait_ready()
        lb = cl.Balancer(wd)
        started.append(lb.proc)
        lb.start()
        _edge_load(lb.url, tokens, 2, 1)
        rate = float(_edge_load(lb.url, tokens, seconds, 1_000_000)["readings_per_s"])

        before = _stored(database)
        reports: list[dict[str, Any]] = []
        load = threading.Thread(
            target=lambda: reports.append(_edge_load(lb.url, tokens, FAILOVER_LOAD_S, 2_000_000)),
            daemon=True,
        )
        load.start()
        primary = next(n for n in nodes if n.in_recovery() is False)
        probe = cl.WritableProbe(database)
        probe.start()
        wait_for(  # the load and the probe under way before the host goes
            "writable sessions", lambda: sum(1 for _, ok in probe.tries if ok) >= 5, 30
        )
        lost_at = time.monotonic()
        _lose_host(primary)
        load.join(FAILOVER_LOAD_S + 180)
        probe.halt.set()
        outage = probe.outage_since(lost_at)
        acked = reports[0]["readings_acked"]
        unconfirmed = reports[0]["readings_unconfirmed"]
        stored = _stored(database) - before
        tally = {
            "acked": acked,
            "lost": max(0, acked - stored),
            "doubled": max(0, stored - acked - unconfirmed),
        }
        return rate, outage, tally
    finally:
        cl.stop_all(started)
        cl.sweep()


def run(workdir: Path, seconds: float = 10.0) -> list[Row]:
    (workdir / "ha-single").mkdir()
    single = _single(workdir / "ha-single", seconds)
    root = cl.make_root()  # PostgreSQL runs as postgres: not under a root-only temp dir
    try:
        rate, outage, tally = _cluster(root, seconds)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
    return [
        Row(
            "ha ingest: HAProxy, 2 hubs, Patroni (sync replication)",
            rate,
            "readings/s",
            "1 hub on 1 PostgreSQL",
            single,
            ">= 0.7x",
            note=f"edge-load flat out, {GATEWAYS} gateways x {BATCH} readings, {seconds:.0f} s",
        ),
        Row(
            "ha failover: primary's host lost under load",
            outage,
            "s without a writable primary",
            "Patroni ttl",
            30.0,
            "<= ttl + loop_wait",
            note=(
                f"{tally['acked']:,} readings acknowledged, {tally['lost']} lost, "
                f"{tally['doubled']} doubled"
            ),
            extra=tally,
        ),
    ]
