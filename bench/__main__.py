"""``just bench``: run every benchmark row, print a table, write bench/results.json.

Every row is a ratio against a baseline measured in the same run on the same machine, so the
numbers mean something on a noisy 2-core box. ``--quick`` shrinks the sizes for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench import anomaly, checker, drain, ingest
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


def main() -> None:
    ap = argparse.ArgumentParser(prog="just bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--only", choices=["ingest", "drain", "anomaly", "checker"], action="append")
    ap.add_argument("--ingest-n", type=int)
    ap.add_argument("--drain-n", type=int)
    args = ap.parse_args()
    ingest_n = args.ingest_n or (20_000 if args.quick else 100_000)
    drain_n = args.drain_n or (100_000 if args.quick else 1_000_000)
    only = set(args.only or ["ingest", "drain", "anomaly", "checker"])

    rows: list[Row] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="factory-edge-bench-") as tmp:
        wd = Path(tmp)
        if "ingest" in only:
            print(
                f"[bench] agent ingest: {ingest_n:,} messages, agent vs plain loop ...", flush=True
            )
            rows += ingest.run(wd, ingest_n)
        if "drain" in only:
            print(f"[bench] sync drain: {drain_n:,}-reading backlog ...", flush=True)
            rows += drain.run(wd, drain_n)
        if "checker" in only:
            print("[bench] threshold_checker vs Python and numpy ...", flush=True)
            cpu = next(
                (
                    r.extra["agent_cpu_s_per_reading"]
                    for r in rows
                    if "agent_cpu_s_per_reading" in r.extra
                ),
                None,
            )
            rows += checker.run(100_000 if args.quick else 1_000_000, cpu)
        if "anomaly" in only:
            print("[bench] anomaly-detector vs the same endpoint in Python ...", flush=True)
            rows += anomaly.run(wd, seconds=3.0 if args.quick else 8.0)
    print()
    print(_table(rows))
    RESULTS.write_text(
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
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
