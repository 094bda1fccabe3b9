"""Ingest rate of a real ``edge-hub serve``: gzip batches of 5,000 readings over HTTP.

Run: ``.venv/bin/python tests/hub/bench_ingest.py [--batches 200] [--clients 2]``.
Not collected by pytest (no test_ prefix); bench/ may wrap it.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from shared.wire import Batch, WireReading, encode_batch  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--sensors", type=int, default=50)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    port = free_port()
    cfg = tmp / "hub.toml"
    cfg.write_text(f'listen = "127.0.0.1:{port}"\ndatabase = "sqlite:///{tmp}/hub.db"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "hub.cli", "--config", str(cfg)]
    token = subprocess.run(
        [*cli, "gateway", "add", "gw-bench", "--factory", "bench"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    proc = subprocess.Popen([*cli, "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        keys = [f"line{i % 5}/m{i // 5}/s{i}" for i in range(args.sensors)]
        t0 = 1_700_000_000.0
        bodies = []
        for b in range(args.batches):
            readings = [
                WireReading(
                    seq, keys[seq % len(keys)], t0 + seq, 20.0 + (seq % 17) * 0.5, "C"
                )
                for seq in range(b * args.size + 1, (b + 1) * args.size + 1)
            ]
            bodies.append(encode_batch(Batch(gateway_id="gw-bench", readings=readings)))
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
        accepted = [0] * args.clients
        # Warm-up: sensors get created on first data; not part of steady state.
        with httpx.Client() as c:
            c.post(f"{base}/api/v1/ingest", content=bodies[0], headers=headers).raise_for_status()

        def worker(n: int) -> None:
            with httpx.Client(timeout=30) as c:
                for body in bodies[1 + n :: args.clients]:
                    r = c.post(f"{base}/api/v1/ingest", content=body, headers=headers)
                    r.raise_for_status()
                    accepted[n] += r.json()["data"]["accepted"]

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        total = sum(accepted)
        print(
            f"{total} readings in {args.batches - 1} gzip batches of {args.size}, "
            f"{args.clients} client(s): {elapsed:.2f}s = {total / elapsed:,.0f} readings/s "
            f"({(args.batches - 1) / elapsed:.1f} batches/s, {len(bodies[1]) / 1024:.0f} KiB/batch)"
        )
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
