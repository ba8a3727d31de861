"""Benchmark `stockpred fetch` against the local tushare replay server.

Prints API calls and wall time for
  (a) a backfill of the SSE 50, 2008-2018, for daily, daily_basic and adj_factor,
      with tushare's 6,000-row cap per call (target: at most 1.05 calls per
      (interface, stock));
  (b) a one-trading-day refresh of the same universe (target: exactly 1 call per
      interface).
Runs the real `stockpred` command in a subprocess, so wall times include start-up.
Data: the real sample shipped with stockpred (see stockpred.data.replay.replay_tables).

Usage: python scripts/bench_fetch.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stockpred.data.replay import ReplayServer, replay_tables, tables_as_of
from stockpred.data.sample import SAMPLE_TABLES, read_sample

TOKEN = "bench-token-0123456789abcdef0123456789abcdef0123456789ab"
INTERFACES = ["daily", "daily_basic", "adj_factor"]
LAST_DAY = "20181228"


def fetch(workdir: Path, server: ReplayServer, end: str) -> float:
    stocks = sorted(read_sample("stock_basic")["ts_code"])
    config = {"fetch": {"universe": {"index": None, "ts_codes": stocks},
                        "start_date": "20080101", "end_date": end, "interfaces": INTERFACES}}
    (workdir / "config.json").write_text(json.dumps(config))
    env = dict(os.environ, TUSHARE_TOKEN=TOKEN, TUSHARE_API_URL=server.url)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stockpred", "fetch"], cwd=workdir, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"fetch failed: {done.stderr.strip()}")
    return elapsed


def report(title: str, server: ReplayServer, elapsed: float, per: int) -> None:
    print(f"\n{title}: {elapsed:.2f} s wall")
    unit = "calls per stock" if per > 1 else "calls"
    print(f"  {'interface':14s} {'calls':>6s} {unit:>16s}")
    for name in ["stock_basic", "trade_cal", *INTERFACES]:
        calls = server.calls[name]
        print(f"  {name:14s} {calls:6d} {calls / (per if name in INTERFACES else 1):16.3f}")


def main() -> None:
    tables = replay_tables({name: read_sample(name) for name in SAMPLE_TABLES})
    stocks = len(read_sample("stock_basic"))
    with tempfile.TemporaryDirectory() as tmp, ReplayServer(tables, TOKEN) as server:
        workdir = Path(tmp)
        # the server as it stood at the close of the day before the last
        day_before = "20181227"
        server.tables = tables_as_of(tables, day_before)
        elapsed = fetch(workdir, server, day_before)
        report(f"(a) backfill of {stocks} stocks, 20080101..{day_before}", server, elapsed,
               stocks)
        rows = sum(len(server.tables[n]) for n in INTERFACES)
        print(f"  rows served: {rows}; per-call cap 6000")
        server.tables = tables
        server.reset_counts()
        elapsed = fetch(workdir, server, LAST_DAY)
        report(f"(b) one-trading-day refresh ({LAST_DAY})", server, elapsed, 1)


if __name__ == "__main__":
    main()
