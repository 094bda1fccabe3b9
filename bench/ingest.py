"""Row: agent ingest, MQTT -> committed -> acked, against a plain paho -> sqlite3 loop.

Both consumers get the same feed from the C publisher (``mosquitto_pub -l -q 1``, one message
per line) through a fresh mosquitto, and both are timed the same way: from the publisher's
start until the consumer's database holds every message. The agent's hub URL points at a
closed port, so nothing is synced away while we count.

The agent runs twice per round, with ``[buffer] durability = "process"`` (the default) and
``"power"`` (an fsync per committed batch): the second row is the cost of power-cut safety on
this machine's disk, power against process in the same run.
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Row, RssSampler, wait_count
from devtools.stack import Agent, Broker, Proc, free_port, wait_for

TARGET_POWER = ">= 0.8x"


def _feed(workdir: Path, n: int, publishers: int) -> list[Path]:
    rng = random.Random(7)
    files = []
    for p in range(publishers):
        path = workdir / f"feed-{p}.txt"
        with path.open("w") as fh:
            for i in range(n // publishers):
                fh.write(
                    f'{{"value": {rng.gauss(50, 5):.3f}, "ts": {1_732_270_000 + i * 0.001:.3f}}}\n'
                )
        files.append(path)
    return files


def _publish(port: int, files: list[Path]) -> list[subprocess.Popen[bytes]]:
    # mosquitto_pub -l (2.0.11) drops what it has not sent yet when its stdin closes, so stdin
    # is held open after the data; _stop() ends the publishers once every message is counted.
    return [
        subprocess.Popen(
            f"(cat {shlex.quote(str(path))}; sleep 600) | mosquitto_pub -h 127.0.0.1 -p {port} "
            f"-q 1 -t factory/l{i}/m1/s1 -l",
            shell=True,
            start_new_session=True,
        )
        for i, path in enumerate(files)
    ]


def _stop(pubs: list[subprocess.Popen[bytes]]) -> None:
    for p in pubs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


def _run_baseline(workdir: Path, files: list[Path], n: int) -> tuple[float, int]:
    (workdir / "b-base").mkdir()
    broker = Broker(workdir / "b-base").start()
    db = workdir / "baseline.db"
    proc = Proc(
        "baseline",
        [sys.executable, "-m", "bench.baseline_ingest", str(broker.port), str(db)],
        workdir,
    )
    proc.start()
    try:
        wait_for(
            "baseline subscribed", lambda: "subscribed" in proc.log_path.read_text(), timeout=20
        )
        time.sleep(0.3)
        assert proc.popen is not None
        sampler = RssSampler(proc.popen.pid)
        start = time.monotonic()
        pubs = _publish(broker.port, files)
        try:
            end = wait_count(db, "msgs", n, timeout=300, sampler=sampler)
        finally:
            _stop(pubs)
        return n / (end - start), sampler.peak
    finally:
        proc.stop()
        broker.stop()


def _run_agent(
    workdir: Path, files: list[Path], n: int, durability: str = "process"
) -> tuple[float, int, float]:
    (workdir / f"b-agent-{durability}").mkdir()
    broker = Broker(workdir / f"b-agent-{durability}").start()
    agent = Agent(
        workdir,
        gateway_id="gw-bench",
        mqtt_port=broker.port,
        hub_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: the backlog stays put
        token="unused",
        name=f"edge-agent-{durability}",
        settings={"buffer": {"durability": durability}},
    )
    try:
        agent.start()
        assert agent.proc.popen is not None
        sampler = RssSampler(agent.proc.popen.pid)
        cpu0 = sum(sampler.proc.cpu_times()[:2])
        start = time.monotonic()
        pubs = _publish(broker.port, files)
        try:
            end = wait_count(agent.buffer, "readings", n, timeout=300, sampler=sampler)
        finally:
            _stop(pubs)
        cpu = sum(sampler.proc.cpu_times()[:2]) - cpu0
        return n / (end - start), sampler.peak, cpu / n
    finally:
        agent.stop()
        broker.stop()


def run(workdir: Path, n: int, rounds: int = 2, publishers: int = 2) -> list[Row]:
    files = _feed(workdir, n, publishers)
    n = sum(1 for f in files for _ in f.open())
    base_rates, agent_rates, base_rss, agent_rss = [], [], [], []
    agent_cpu: list[float] = []
    power_rates: list[float] = []
    for r in range(rounds):
        rd = workdir / f"round-{r}"
        rd.mkdir()
        rate, rss = _run_baseline(rd, files, n)
        base_rates.append(rate)
        base_rss.append(rss)
        rate, rss, cpu = _run_agent(rd, files, n)
        agent_rates.append(rate)
        agent_rss.append(rss)
        agent_cpu.append(cpu)
        rate, _, _ = _run_agent(rd, files, n, durability="power")
        power_rates.append(rate)
    return [
        Row(
            "agent ingest (MQTT -> committed -> acked)",
            max(agent_rates),
            "readings/s",
            "paho -> sqlite3 loop",
            max(base_rates),
            ">= 0.5x and >= 15,000/s",
            note=f"{n:,} QoS 1 messages from {publishers} mosquitto_pub -l; best of {rounds}",
            extra={
                "agent_rates": agent_rates,
                "baseline_rates": base_rates,
                "agent_cpu_s_per_reading": min(agent_cpu),
            },
        ),
        Row(
            "agent RSS during ingest",
            max(agent_rss) / 1e6,
            "MB",
            "paho -> sqlite3 loop RSS",
            max(base_rss) / 1e6,
            "< 80 MB",
            note="peak resident set, sampled every 50 ms",
        ),
        Row(
            "agent ingest, durability = power",
            max(power_rates),
            "readings/s",
            "agent ingest, durability = process",
            max(agent_rates),
            TARGET_POWER,
            note=f"the same feed; an fsync of the WAL per committed batch; best of {rounds}",
            extra={"power_rates": power_rates, "process_rates": agent_rates},
        ),
    ]
