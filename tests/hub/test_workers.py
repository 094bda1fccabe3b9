"""workers = N: N hub processes share `listen`, on both engines, and answer as one hub."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import psutil

from shared.wire import Batch, WireReading, encode_batch
from tests.hub.conftest import start_hub, token

T_RECENT = time.time() - 3600


def _counter(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_two_workers_answer_as_one_hub(tmp_path: Path, database_url: str) -> None:
    hub = start_hub(tmp_path, database=database_url, workers=2, anomaly_scan_interval_s=0)
    try:
        workers = psutil.Process(hub.proc.pid).children()
        assert len(workers) == 2
        gw = token(hub.config, "gateway", "add", "gw-01", "--factory", "acme")
        read = token(hub.config, "token", "add", "--role", "read")
        headers = {"Authorization": f"Bearer {gw}", "Content-Encoding": "gzip"}
        batches = [
            encode_batch(
                Batch(
                    gateway_id="gw-01",
                    readings=[
                        WireReading(s, f"w/m/s{s % 3}", T_RECENT + s, float(s), None)
                        for s in range(lo, lo + 50)
                    ],
                )
            )
            for lo in range(1, 1001, 50)
        ]
        # A connection each: the kernel spreads them over both workers (SO_REUSEPORT).
        for _ in range(2):
            results = [
                httpx.post(f"{hub.url}/api/v1/ingest", content=b, headers=headers).json()["data"]
                for b in batches
            ]
        # The second round: every reading already stored, whichever worker stored it.
        assert sum(r["duplicates"] for r in results) == 1000
        assert sum(r["accepted"] for r in results) == 0
        auth = {"Authorization": f"Bearer {read}"}
        sensors = httpx.get(f"{hub.url}/api/v1/sensors", headers=auth).json()["data"]
        counts = [
            httpx.get(f"{hub.url}/api/v1/sensors/{s['id']}/stats", headers=auth).json()["data"][
                "count"
            ]
            for s in sensors
        ]
        assert sum(counts) == 1000
        # /metrics on any worker sums them all: 1000 accepted, 1000 duplicates, every time.
        for _ in range(6):
            text = httpx.get(f"{hub.url}/metrics").text
            assert _counter(text, "edge_hub_ingest_readings_total", 'result="accepted"') == 1000
            assert _counter(text, "edge_hub_ingest_readings_total", 'result="duplicate"') == 1000
        hub.proc.send_signal(signal.SIGTERM)
        assert hub.proc.wait(timeout=60) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        hub.stop()


def test_a_dead_worker_stops_the_hub_for_a_restart(tmp_path: Path, database_url: str) -> None:
    hub = start_hub(tmp_path, database=database_url, workers=2, anomaly_scan_interval_s=0)
    try:
        first, second = psutil.Process(hub.proc.pid).children()
        first.kill()
        assert hub.proc.wait(timeout=60) == 1  # systemd's Restart= brings all back
        second.wait(timeout=30)
    finally:
        hub.stop()
