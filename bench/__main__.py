"""``just bench``: run every benchmark row, print a table, write bench/results.json.

Every row is a ratio against a baseline measured in the same run on the same machine, so the
numbers mean something on a noisy 2-core box. ``--quick`` shrinks the sizes for a smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bench import (
    alarms,
    anomaly,
    backlog,
    checker,
    days_kept,
    drain,
    fleet,
    ha,
    history,
    ingest,
    page_cache,
    pg_drain,
    request_cost,
    sparkplug,
)
from bench import console as console_bench
from bench.common import Row

RESULTS = Path(__file__).resolve().parent / "results.json"


def _fmt(value: float, unit: str) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 10 * scale:
            return f"{value / scale:,.1f}{suffix} {unit}"
    return f"{value:,.1f} {unit}"


def _table(rows: list[Row]) -> str:
    head = f"{'row':42} {'value':>18} {'baseline':>18} {'ratio':>7}  target"
    lines = [head, "-" * len(head)]
    for r in rows:
        unit = {"readings/s": "/s", "requests/s": "req/s"}.get(r.unit, r.unit)
        lines.append(
            f"{r.name:42} {_fmt(r.value, unit):>18} {_fmt(r.baseline, unit):>18} "
            f"{r.ratio:>6.2f}x  {r.target}"
        )
        lines.append(f"{'':42}   baseline: {r.baseline_name}; {r.note}")
    return "\n".join(lines)


class _Stages:
    """Which stage runs: a bar with elapsed time on a terminal, one line per stage otherwise."""

    def __init__(self, total: int) -> None:
        self.bar: Progress | None = None
        if sys.stdout.isatty():
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            self.task = self.bar.add_task("bench", total=total)
            self.bar.start()

    def begin(self, text: str) -> None:
        if self.bar is None:
            print(text, flush=True)
        else:
            self.bar.update(self.task, description=text)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# The row groups `--only` can pick; a full run takes them all.
STAGES = (
    "ingest",
    "drain",
    "backlog",
    "anomaly",
    "checker",
    "fleet",
    "cost",
    "days",
    "pgdrain",
    "history",
    "sparkplug",
    "console",
    "alarms",
    "ha",
)


def main() -> None:
    ap = argparse.ArgumentParser(prog="just bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument(
        "--only",
        choices=STAGES,
        action="append",
    )
    ap.add_argument("--ingest-n", type=int)
    ap.add_argument("--drain-n", type=int)
    ap.add_argument("--backlog-n", type=int)
    ap.add_argument("--pg-drain-n", type=int, help="backlog of the PostgreSQL drain (10M)")
    ap.add_argument("--history-n", type=int, help="readings of the one-year sensor (10M)")
    ap.add_argument("--alarms-n", type=int, help="alarms of the alarm report's year (100k)")
    args = ap.parse_args()
    ingest_n = args.ingest_n or (20_000 if args.quick else 100_000)
    drain_n = args.drain_n or (100_000 if args.quick else 1_000_000)
    backlog_n = args.backlog_n or (1_000_000 if args.quick else 10_000_000)
    only = set(args.only or STAGES)

    rows: list[Row] = []
    started = time.time()
    stages = _Stages(len(only))
    with (
        contextlib.closing(stages),
        tempfile.TemporaryDirectory(prefix="factory-edge-bench-") as tmp,
    ):
        wd = Path(tmp)
        if "ingest" in only:
            stages.begin(f"[bench] agent ingest: {ingest_n:,} messages, agent vs plain loop ...")
            rows += ingest.run(wd, ingest_n)
            stages.end()
        if "drain" in only:
            stages.begin(f"[bench] sync drain: {drain_n:,}-reading backlog ...")
            rows += drain.run(wd, drain_n)
            stages.end()
        if "backlog" in only:
            stages.begin(f"[bench] after an outage: {backlog_n:,}-reading backlog ...")
            rows += backlog.run(wd, backlog_n)
            stages.end()
        if "checker" in only:
            stages.begin("[bench] threshold_checker vs Python and numpy ...")
            cpu = next(
                (
                    r.extra["agent_cpu_s_per_reading"]
                    for r in rows
                    if "agent_cpu_s_per_reading" in r.extra
                ),
                None,
            )
            rows += checker.run(100_000 if args.quick else 1_000_000, cpu)
            stages.end()
        if "anomaly" in only:
            stages.begin("[bench] anomaly-detector vs the same endpoint in Python ...")
            rows += anomaly.run(wd, seconds=3.0 if args.quick else 8.0)
            stages.end()
        if "fleet" in only:
            stages.begin("[bench] fleet of 1,000 gateways (edge-load) with operator queries ...")
            rows += fleet.run(wd, seconds=5.0 if args.quick else 20.0)
            stages.end()
        if "cost" in only:
            stages.begin("[bench] CPU per ingest request, by stage, against a raw COPY ...")
            (wd / "cost").mkdir()
            rows += request_cost.run(wd / "cost", 500 if args.quick else 2000)
            rows += page_cache.run(wd / "cost", rounds=4 if args.quick else 10)
            stages.end()
        if "days" in only:
            stages.begin(
                f"[bench] PostgreSQL with {days_kept.YEARS_DAYS:,} days kept vs a week ..."
            )
            rows += days_kept.run(250 if args.quick else 1000)
            stages.end()
        if "pgdrain" in only:
            pg_drain_n = args.pg_drain_n or backlog_n
            stages.begin(f"[bench] drain into PostgreSQL: {pg_drain_n:,}-reading backlog ...")
            rows += pg_drain.run(wd, pg_drain_n)
            stages.end()
        if "sparkplug" in only:
            stages.begin(f"[bench] Sparkplug B ingest: {ingest_n:,} messages, vs JSON ...")
            rows += sparkplug.run(wd, ingest_n)
            stages.end()
        if "history" in only:
            history_n = args.history_n or (1_000_000 if args.quick else 10_000_000)
            stages.begin(f"[bench] history: one sensor, {history_n:,} readings over a year ...")
            rows += history.run(wd, history_n, compare=min(history_n, 2_000_000))
            stages.end()
        if "console" in only:
            console_n = args.history_n or (1_000_000 if args.quick else 10_000_000)
            stages.begin(f"[bench] console: sensor page over {console_n:,} readings ...")
            rows += console_bench.run(wd / "console", console_n)
            stages.end()
        if "alarms" in only:
            alarms_n = args.alarms_n or (10_000 if args.quick else 100_000)
            stages.begin(f"[bench] alarm report over a year of {alarms_n:,} alarms ...")
            rows += alarms.run(wd, alarms_n)
            stages.end()
        if "ha" in only:
            stages.begin("[bench] a Patroni cluster behind HAProxy vs one PostgreSQL ...")
            rows += ha.run(wd, seconds=5.0 if args.quick else 10.0)
            stages.end()
    print()
    print(_table(rows))
    # A partial run (--only) must not replace the whole suite's record with a few rows.
    out = (
        RESULTS
        if args.only is None
        else RESULTS.with_name(f"results.{'+'.join(sorted(only))}.json")
    )
    out.write_text(
        json.dumps(
            {
                "started": started,
                "seconds": round(time.time() - started, 1),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "quick": args.quick,
                "rows": [r.as_dict() for r in rows],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
