"""Benchmark `stockpred fetch` against the local tushare replay server.

Prints API calls and wall time for
  (a) a backfill of the SSE 50, 2008-2018, for daily, daily_basic and adj_factor,
      with tushare's 6,000-row cap per call (target: at most 1.05 calls per
      (interface, stock));
  (b) a one-trading-day refresh of the same universe (target: exactly 1 call per
      interface);
and, on the market-scale data (<shared data>/market: 1,702 stocks, 2008-2018, served
under `daily`), a whole-market fetch (`stockpred fetch --universe all`):
  (c) the backfill 2008-01-01..2018-12-27 by day (target: at most 1.05 calls per
      (interface, day));
  (d) the one-day refresh of 2018-12-28 (targets: exactly 1 call per interface, at most
      3 files of the interface rewritten);
  (e) reads of the stored table: one stock over 11 years, one day of the market, all of it;
  (f) the same table as a store of one file per stock (what stockpred wrote before the
      time layout): the same reads, then its migration to year files (wall, and whether
      every read is the same frame after it).
Each fetch runs in a subprocess (the `stockpred` command), so wall times include start-up.
A full run records its figures in project_results/benchmarks/bench_fetch.json, which the
README's block is rendered from. Data: the real sample shipped with stockpred (see
stockpred.data.replay.replay_tables) and the shared market data, the shared data folder
being STOCKPRED_SHARED_DATA or ../shared/data beside this checkout ((c)-(f) are skipped
without it).

Usage: python scripts/bench_fetch.py [--market-only | --sse50-only]
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Results, say
from stockpred.data.replay import (ReplayServer, market_replay_tables, replay_tables,
                                   tables_as_of)
from stockpred.data.sample import SAMPLE_TABLES, read_market_tree, read_sample
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef0123456789abcdef0123456789ab"
INTERFACES = ["daily", "daily_basic", "adj_factor"]
LAST_DAY = "20181228"
DAY_BEFORE = "20181227"


def fetch(workdir: Path, server: ReplayServer, fetch_settings: dict,
          command: list[str]) -> float:
    (workdir / "config.json").write_text(json.dumps({"fetch": fetch_settings}))
    env = dict(os.environ, TUSHARE_TOKEN=TOKEN, TUSHARE_API_URL=server.url)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"fetch failed: {done.stderr.strip()[-500:]}")
    return elapsed


def report(title: str, server: ReplayServer, elapsed: float, per: int, unit: str,
           interfaces: list[str]) -> float:
    """Print the calls of each interface; returns the most calls per ``unit`` of any."""
    say(f"\n{title}: {elapsed:.2f} s wall")
    say(f"  {'interface':14s} {'calls':>6s} {unit:>16s}")
    for name in ["stock_basic", "trade_cal", *interfaces]:
        calls = server.calls[name]
        say(f"  {name:14s} {calls:6d} {calls / (per if name in interfaces else 1):16.3f}")
    return max(server.calls[name] / per for name in interfaces)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.parquet"))}


def reads(store: RawStore, results: Results | None = None) -> list:
    """One stock over 11 years, one day of the market, a month of one column, everything."""
    frames = []
    for label, query in (("one stock (600036.SH), 2008-2018", {"subjects": ["600036.SH"]}),
                         (f"one day of the market ({LAST_DAY})",
                          {"start": LAST_DAY, "end": LAST_DAY}),
                         ("one month, close only (201806)",
                          {"start": "20180601", "end": "20180630", "columns": ["close"]}),
                         ("everything", {})):
        start = time.perf_counter()
        frames.append(store.read("daily", **query))
        if results is not None:
            results.add(f"read {label}, {len(frames[-1]):,} rows", time.perf_counter() - start,
                        "s", digits=3)
    return frames


def sse50(results: Results) -> None:
    tables = replay_tables({name: read_sample(name) for name in SAMPLE_TABLES})
    stocks = sorted(read_sample("stock_basic")["ts_code"])
    cli = [sys.executable, "-m", "stockpred", "fetch"]
    with tempfile.TemporaryDirectory() as tmp, ReplayServer(tables, TOKEN) as server:
        workdir = Path(tmp)
        settings = {"universe": {"index": None, "ts_codes": stocks}, "start_date": "20080101",
                    "interfaces": INTERFACES}
        # the server as it stood at the close of the day before the last
        server.tables = tables_as_of(tables, DAY_BEFORE)
        elapsed = fetch(workdir, server, {**settings, "end_date": DAY_BEFORE}, cli)
        most = report(f"(a) backfill of {len(stocks)} stocks, 20080101..{DAY_BEFORE}", server,
                      elapsed, len(stocks), "calls per stock", INTERFACES)
        rows = sum(len(server.tables[n]) for n in INTERFACES)
        say(f"  rows served: {rows}; per-call cap 6000")
        results.add(f"SSE 50 backfill 2008-2018 ({', '.join(INTERFACES)}): calls per "
                    f"(interface, stock), the most of any", most, "", "<= 1.05", most <= 1.05,
                    digits=3)
        results.add("its wall time (the `stockpred fetch` process)", elapsed, "s")
        server.tables = tables
        server.reset_counts()
        elapsed = fetch(workdir, server, {**settings, "end_date": LAST_DAY}, cli)
        most = report(f"(b) one-trading-day refresh ({LAST_DAY})", server, elapsed, 1, "calls",
                      INTERFACES)
        results.add("its one-day refresh: calls per interface, the most of any", most, "",
                    "exactly 1", most == 1, digits=0)


def market(folder: Path, results: Results) -> None:
    say(f"\nloading {folder} ...")
    tables = market_replay_tables(read_market_tree(folder))
    days = tables["trade_cal"].query("is_open == 1")["cal_date"]
    backfill_days = int((days <= DAY_BEFORE).sum())
    stocks = len(tables["stock_basic"])
    cli = [sys.executable, "-m", "stockpred", "fetch", "--universe", "all"]
    with tempfile.TemporaryDirectory() as tmp, ReplayServer(tables, TOKEN) as server:
        workdir = Path(tmp)
        settings = {"start_date": "20080101", "interfaces": ["daily"]}
        server.tables = tables_as_of(tables, DAY_BEFORE)
        say(f"(c) whole-market backfill by day: {stocks} stocks listed, {backfill_days} "
            f"trading days ...")
        elapsed = fetch(workdir, server, {**settings, "end_date": DAY_BEFORE}, cli)
        most = report(f"(c) whole-market backfill, 20080101..{DAY_BEFORE}", server, elapsed,
                      backfill_days, "calls per day", ["daily"])
        results.add(f"whole-market backfill by day ({stocks:,} stocks, {backfill_days:,} "
                    f"days): `daily` calls per day", most, "", "<= 1.05", most <= 1.05,
                    digits=3)
        results.add("its wall time", elapsed, "s", digits=0)
        raw = workdir / "data" / "raw" / "daily"
        before = digests(raw)
        size = sum(p.stat().st_size for p in raw.glob("*.parquet"))
        say(f"  stored: {len(before)} files, {size / 1e6:.1f} MB")
        server.tables = tables
        server.reset_counts()
        elapsed = fetch(workdir, server, {**settings, "end_date": LAST_DAY}, cli)
        most = report(f"(d) whole-market one-day refresh ({LAST_DAY})", server, elapsed, 1,
                      "calls", ["daily"])
        results.add("its one-day refresh: `daily` calls", most, "", "exactly 1", most == 1,
                    digits=0)
        after = digests(raw)
        rewritten = sorted(name for name, digest in after.items() if before.get(name) != digest)
        say(f"  daily files rewritten: {', '.join(rewritten)}")
        results.add(f"files of `daily` the refresh rewrote, of {len(after)}", len(rewritten),
                    "", "<= 3", len(rewritten) <= 3, digits=0)
        store = RawStore(workdir / "data" / "raw")
        say("(e) reads of the stored daily table (year files)")
        reads(store, results)
        legacy = RawStore(workdir / "per_stock")
        start = time.perf_counter()
        legacy.upsert(CATALOGUE["daily"], store.read("daily"))
        say(f"(f) the same table in one file per stock: {len(legacy.files('daily'))} files "
            f"written in {time.perf_counter() - start:.1f} s")
        old = reads(legacy)
        start = time.perf_counter()
        legacy.migrate("daily")
        results.add(f"migration of a per-stock store to {len(legacy.files('daily'))} year "
                    f"files", time.perf_counter() - start, "s", digits=1)
        same = sum(frame.equals(again) for frame, again in zip(old, reads(legacy)))
        results.add(f"reads that return the same frame after it, of {len(old)}", same, "",
                    f"{len(old)}", same == len(old), digits=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market-only", action="store_true", help="Skip (a) and (b).")
    parser.add_argument("--sse50-only", action="store_true", help="Skip (c)-(f).")
    args = parser.parse_args()
    results = Results("bench_fetch", "python scripts/bench_fetch.py")
    if not args.market_only:
        sse50(results)
    root = Path(os.environ.get("STOCKPRED_SHARED_DATA", REPO.parent / "shared" / "data"))
    if args.sse50_only:
        pass
    elif (root / "market" / "qfq_daily").is_dir():
        market(root / "market", results)
    else:
        say(f"\n(c)-(f) skipped: no market data under {root / 'market'}")
    if not (args.market_only or args.sse50_only):  # a partial run would drop figures
        results.save()


if __name__ == "__main__":
    main()
