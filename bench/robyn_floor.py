"""The floor under the hub's CPU per request: a bare Robyn app, configured as the hub runs
Robyn (one process, the hub's default threads), whose ingest route reads the body and answers
a fixed acceptance, with no auth, decoding or storage. edge-load posts the same 100-reading
batches at it as at the hub; what its process spends per request is Robyn's own share.

Usage: python -m bench.robyn_floor [--seconds S] [--gateways N]
(``python -m bench.robyn_floor serve PORT`` is the app itself.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import CpuMeter, edge_load
from devtools.stack import free_port, wait_for
from hub.app import load_robyn, robyn_config
from hub.config import HubSettings

ANSWER = json.dumps({"data": {"accepted": 100, "duplicates": 0, "config_version": 1}, "meta": {}})


def serve(port: int) -> None:
    robyn = load_robyn()
    app = robyn.Robyn(__file__, config=robyn_config(robyn, HubSettings()))

    def ingest(request: Any) -> Any:
        _ = request.body  # the hub reads the body too
        return robyn.Response(
            status_code=200, headers={"Content-Type": "application/json"}, description=ANSWER
        )

    def health(request: Any) -> Any:
        return robyn.Response(status_code=200, headers={}, description="ok")

    app.add_route("POST", "/api/v1/ingest", ingest)
    app.add_route("GET", "/health/ready", health)
    app.start(host="127.0.0.1", port=port, _check_port=False)


def measure(seconds: float, gateways: int) -> dict[str, float]:
    """Robyn's CPU ms per request with ``gateways`` edge-load gateways flat out."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.robyn_floor", "serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "bare robyn",
            lambda: httpx.get(f"{url}/health/ready", timeout=1).status_code == 200,
            timeout=60,
        )
        with tempfile.TemporaryDirectory() as tmp:
            tokens = Path(tmp) / "tokens.txt"
            tokens.write_text("".join(f"gw-{i:04d} unused-{i}\n" for i in range(gateways)))
            meter = CpuMeter(proc.pid).start()
            started = time.perf_counter()
            report = edge_load(url, tokens, seconds, batch=100, sensors=5)
            meter.sample()
            elapsed = time.perf_counter() - started
        requests = max(1, int(report["requests"]))
        return {
            "cpu_ms_per_request": meter.seconds * 1000 / requests,
            "requests_per_s": requests / elapsed,
        }
    finally:
        # Robyn's server threads do not always end on SIGTERM: its whole group goes.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.robyn_floor", description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--gateways", type=int, default=200)
    args = ap.parse_args()
    got = measure(args.seconds, args.gateways)
    print(
        f"bare Robyn: {got['cpu_ms_per_request']:.2f} ms CPU per 100-reading request "
        f"({got['requests_per_s']:,.0f} requests/s, {args.gateways} gateways flat out)"
    )


if __name__ == "__main__":
    main()
