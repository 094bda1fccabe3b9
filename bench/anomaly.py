"""Rows: anomaly-detector (Rust, axum) against the same endpoint in plain Python (orjson +
numpy under Robyn), and against numpy computing the same in-process.

Both servers get the same pre-encoded 100,000-value body over 2 keep-alive connections for a
fixed time, in turns; the count of answered requests gives requests/s. The load comes from
wrk (C, one thread) when it is installed: Python client threads spend as much CPU per request
as the Rust server does, and on a 2-core machine they take it from the server under test
(on 2 cores, with 2 httpx threads: 1.7-2.3x; with wrk: 2.4-2.7x). Without wrk the bench falls back
to httpx threads and says so in the row.

The 1,000,000-value row times one request end to end (JSON parse + statistics + answer)
against numpy on an array already in memory, the floor any service must pay on top of.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from bench.common import Row
from devtools.stack import Detector, Proc, free_port, wait_for

ROUNDS = 4


def _series(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(50.0, 5.0) for _ in range(n)]
    for i in range(0, n, max(1, n // 50)):
        values[i] += 60.0  # some spikes, so the answer is not empty
    return values


WRK_SCRIPT = Path(__file__).with_name("wrk_post.lua")
CONNECTIONS = 2


def _rps_wrk(url: str, body_file: Path, seconds: float) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(WRK_SCRIPT),
            url + "/detect",
        ],
        env={**os.environ, "BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    # wrk counts any answer; a 4xx/5xx or a socket error would make the figure meaningless.
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk against {url} saw failed requests:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return float(found.group(1))


def _rps(url: str, body: bytes, seconds: float, clients: int = CONNECTIONS) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        with httpx.Client(timeout=30, headers={"Content-Type": "application/json"}) as c:
            while time.monotonic() < stop:
                c.post(f"{url}/detect", content=body).raise_for_status()
                done[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - start)


def _best_latency(url: str, body: bytes, tries: int = 5) -> float:
    best = float("inf")
    with httpx.Client(timeout=60, headers={"Content-Type": "application/json"}) as c:
        for _ in range(tries):
            t = time.perf_counter()
            c.post(f"{url}/detect", content=body).raise_for_status()
            best = min(best, time.perf_counter() - t)
    return best


def _numpy_inprocess(values: np.ndarray, threshold: float, tries: int = 5) -> float:
    best = float("inf")
    for _ in range(tries):
        t = time.perf_counter()
        mean, std = values.mean(), values.std()
        z = (values - mean) / std
        idx = np.flatnonzero(np.abs(z) > threshold)
        _ = [(int(i), float(values[i]), float(z[i])) for i in idx]
        best = min(best, time.perf_counter() - t)
    return best


def run(workdir: Path, seconds: float = 8.0) -> list[Row]:
    wd = workdir / "anomaly"
    wd.mkdir()
    body_100k = orjson.dumps({"values": _series(100_000, 1), "threshold": 2.0})
    body_file = wd / "body_100k.json"
    body_file.write_bytes(body_100k)
    wrk = shutil.which("wrk") is not None

    def rps(url: str) -> float:
        if wrk:
            return _rps_wrk(url, body_file, seconds / ROUNDS)
        return _rps(url, body_100k, seconds / ROUNDS)

    values_1m = _series(1_000_000, 2)
    body_1m = orjson.dumps({"values": values_1m, "threshold": 2.0})

    detector = Detector(wd, body_limit=64 * 1024 * 1024).start()  # 1M values ~ 19 MB
    port = free_port()
    py = Proc("py-detector", [sys.executable, "-m", "bench.py_detector", str(port)], wd)
    py.start()
    py_url = f"http://127.0.0.1:{port}"
    try:
        wait_for("python detector", lambda: httpx.get(f"{py_url}/health").is_success, timeout=30)
        # Same answer from both, or the race means nothing.
        json_ct = {"Content-Type": "application/json"}
        a = orjson.loads(
            httpx.post(f"{detector.url}/detect", content=body_100k, headers=json_ct).content
        )
        b = orjson.loads(httpx.post(f"{py_url}/detect", content=body_100k, headers=json_ct).content)
        assert len(a["anomalies"]) == len(b["anomalies"]), (
            len(a["anomalies"]),
            len(b["anomalies"]),
        )
        # In turns, best of each: a noisy moment then costs one round, not one side's whole
        # measurement (the checker rows do the same).
        rust_rounds: list[float] = []
        py_rounds: list[float] = []
        for _ in range(ROUNDS):
            rust_rounds.append(rps(detector.url))
            py_rounds.append(rps(py_url))
        rust_rps, py_rps = max(rust_rounds), max(py_rounds)
        rust_1m = _best_latency(detector.url, body_1m)
    finally:
        py.stop()
        detector.stop()
    numpy_1m = _numpy_inprocess(np.asarray(values_1m), 2.0)
    return [
        Row(
            "anomaly-detector /detect, 100k-value bodies",
            rust_rps,
            "requests/s",
            "same endpoint in Python (orjson+numpy, Robyn)",
            py_rps,
            ">= 2x",
            note=(
                (
                    f"wrk, 1 thread, {CONNECTIONS} connections"
                    if wrk
                    else f"{CONNECTIONS} httpx client threads (no wrk installed: the client"
                    " competes with the server for CPU, the ratio reads low)"
                )
                + f", same pre-encoded body; best of {ROUNDS} rounds of"
                f" {seconds / ROUNDS:.1f}s, in turns"
            ),
            extra={
                "rust_rps": rust_rounds,
                "python_rps": py_rounds,
                "client": "wrk" if wrk else "httpx",
            },
        ),
        Row(
            "anomaly-detector, 1M values per request",
            1.0 / rust_1m,
            "requests/s",
            "numpy in-process on an array (no JSON)",
            1.0 / numpy_1m,
            "(ratio: how close a request gets to in-memory numpy)",
            note=f"best of 5: server {rust_1m * 1000:.0f} ms vs numpy {numpy_1m * 1000:.0f} ms",
        ),
    ]
