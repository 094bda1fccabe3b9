"""``workers = N``: N hub processes sharing ``listen``.

``edge-hub serve`` with ``workers > 1`` becomes a small supervisor: it migrates the database
and checks the port once, then starts N copies of itself as worker processes (fresh
interpreters, not forks: a forked SQLite connection or psycopg pool is not safe to use).
Each worker binds ``listen`` itself; Robyn's socket sets SO_REUSEPORT, so the kernel spreads
new connections over the workers. Nothing that answers a request is held per process:

- config versions, sensors, tokens and sessions are read from the database;
- Prometheus metrics are written by each worker to files in one directory
  (prometheus_client's multiprocess mode) and /metrics, on any worker, sums them;
- periodic jobs that must run once take a lock (the anomaly scan: hub.worker.ScanLead;
  retention and webhooks their own advisory locks and leases);
- rate limits are per worker (documented in docs/operations.md).

SIGTERM/SIGINT to the supervisor stops every worker the way one hub stops (requests inside
a handler finish) and exits 0. If a worker dies on its own, the supervisor stops the others
and exits 1, so systemd's Restart= brings all of them back together.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType

# Set in each worker's environment: which worker it is (0..N-1). A worker never supervises.
WORKER_ENV = "EDGE_HUB_WORKER_INDEX"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
STOP_TIMEOUT_S = 30.0


def is_worker() -> bool:
    return WORKER_ENV in os.environ


def worker_index() -> int:
    return int(os.environ.get(WORKER_ENV, "0"))


def supervise(workers: int, config_file: str | None, argv0: Sequence[str] | None = None) -> int:
    """Run ``workers`` hub processes until a stop signal (0) or one of them dies (1)."""
    metrics_dir = tempfile.mkdtemp(prefix="edge-hub-metrics-")
    command = [*(argv0 or [sys.executable, "-m", "hub.cli"]), "serve"]
    if config_file:
        command += ["--config", config_file]
    stopping = threading.Event()
    procs: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for index in range(workers):
            env = {**os.environ, WORKER_ENV: str(index), METRICS_ENV: metrics_dir}
            procs.append(subprocess.Popen(command, env=env))
        print(f"edge-hub: {workers} workers started", file=sys.stderr, flush=True)
        # Wait for any worker to end; then stop the rest.
        done = threading.Event()

        def watch(proc: subprocess.Popen[bytes]) -> None:
            proc.wait()
            done.set()

        for proc in procs:
            threading.Thread(target=watch, args=(proc,), daemon=True).start()
        done.wait()
        failed = not stopping.is_set()
        if failed:
            codes = [p.returncode for p in procs if p.poll() is not None]
            print(f"edge-hub: a worker exited ({codes}); stopping the others", file=sys.stderr)
            stop(signal.SIGTERM, None)
            stopping.clear()
        for proc in procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        clean = all(p.returncode == 0 for p in procs)
        return 1 if failed or not clean else 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
