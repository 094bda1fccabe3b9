"""Shared bits of the benchmark rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from devtools.stack import edge_load_binary


def edge_load(
    url: str, tokens: Path, seconds: float, *extra: str, batch: int, sensors: int
) -> dict[str, Any]:
    """One edge-load run against the hub at ``url`` (a gateway per line of ``tokens``, each
    sending ``batch`` readings of ``sensors`` sensors a request, ``extra`` flags added);
    its JSON report."""
    out = subprocess.run(
        [
            str(edge_load_binary()),
            "--hub",
            url,
            "--tokens",
            str(tokens),
            "--batch",
            str(batch),
            "--sensors",
            str(sensors),
            "--duration",
            str(seconds),
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    report: dict[str, Any] = json.loads(out.stdout)
    return report


@dataclass
class Row:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    target: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def count_rows(db: Path, table: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


class RssSampler:
    """Peak RSS of one process (and its children), sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0

    def sample(self) -> None:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass


def wait_count(
    db: Path, table: str, n: int, timeout: float, sampler: RssSampler | None = None
) -> float:
    """Poll until ``table`` holds ``n`` rows; returns the monotonic time it got there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sampler:
            sampler.sample()
        if count_rows(db, table) >= n:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(
        f"{table} in {db} did not reach {n} rows in {timeout:.0f}s (has {count_rows(db, table)})"
    )


class CpuMeter:
    """CPU seconds (user + system) that a process and its children spend from ``start()`` to
    the last ``sample()``. Children that come and go in between count up to their last sample,
    so sample often (every poll of a wait loop) when the tree changes."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], float] = {}
        self._started = False

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def start(self) -> CpuMeter:
        self._started = True
        self.sample()
        self._first = dict(self._last)
        return self

    def sample(self) -> None:
        for p in self._tree():
            try:
                key = (p.pid, p.create_time())
                t = p.cpu_times()
                self._last[key] = t.user + t.system
            except psutil.Error:
                continue

    @property
    def seconds(self) -> float:
        return sum(v - self._first.get(k, 0.0) for k, v in self._last.items())
