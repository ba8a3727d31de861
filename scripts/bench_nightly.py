"""Benchmark the market-wide work at the whole market's width and the nightly increment.

Prints, each stage a `stockpred` subprocess (start-up included) whose peak memory is the
sum of RSS over its process tree, sampled every 0.1 s:
  (a) a 5,000-stock stand-in, for memory and time only: the shared 1,702 stocks three
      times over under renamed codes (the copies trade under .SZ for .SH and the reverse,
      and under .BJ), 2008-2018, computed in process (compute.workers 0):
        - the full factor build, `stockpred features --universe all` (target: peak
          <= 6 GB);
        - `stockpred evaluate --cross-section --universe all --models lightgbm`, the
          default protocol (target: peak <= 8 GB), stopped past 9.5 GB (target missed:
          9.60 GB after 324 s with the training rows no longer gathered; 9.53 GB after
          170 s before).
          --evaluate-minutes stops it there: the figures are then its peak and wall so
          far, marked unfinished, no verdict;
  (b) the nightly increment on the 1,702 real stocks: the store fetched through the
      replay server up to 2018-12-27 with fetch.universe "all", the factors built, the
      signal's model fitted and the track record started (set-up, timed apart); then
      `stockpred refresh --universe all` on 2018-12-28: the new day fetched, the factors
      of the new day, scores from the stored model, signal and portfolio, the track record
      (targets: <= 2 minutes wall on a quiet 2-core machine, <= 3 GB, at most one factor
      year file rewritten).
The Dask figures (a LocalCluster's workers) are bench_market's, not this script's.
Data: <shared data>/market, the shared data folder being STOCKPRED_SHARED_DATA or
../shared/data beside this checkout. A full run records its figures in
project_results/benchmarks/bench_nightly.json.

Usage: python scripts/bench_nightly.py [--evaluate-minutes M] [--stand-in-only |
                                        --nightly-only]
(--stand-in-only keeps the stored nightly figures, each marked with the run it is from.)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from benchlib import REPO, Results, measured, say

GB = 1e9
DAY_BEFORE, LAST_DAY = "20181227", "20181228"
TOKEN = "bench-token-0123456789abcdef0123456789abcdef0123456789ab"
IN_PROCESS = {"compute": {"workers": 0}}
# the stand-in's evaluate is stopped past this (its target is 8 GB): on a shared machine a
# run that keeps growing would take the others' memory
STOP_ABOVE = 9.5 * GB
# each copy of the market under other codes: the same digits on another exchange
RENAMES = ({"SH": "SH", "SZ": "SZ"}, {"SH": "SZ", "SZ": "SH"}, {"SH": "BJ", "SZ": "BJ"})


def shared_market_dir() -> Path:
    root = Path(os.environ.get("STOCKPRED_SHARED_DATA", REPO.parent / "shared" / "data"))
    return root / "market"


def renamed(codes, exchanges: dict[str, str]):
    return codes.str[:7] + codes.str[7:].map(exchanges)


def stand_in_store(folder: Path, market: Path) -> int:
    """``folder``/data/raw holding the stand-in's qfq_daily and stock_basic; its stocks."""
    import pandas as pd

    from stockpred.data.catalogue import CATALOGUE
    from stockpred.data.sample import read_market_tree
    from stockpred.data.store import RawStore

    tables = read_market_tree(market)
    bars = pd.concat([tables["qfq_daily"].assign(ts_code=renamed(tables["qfq_daily"]["ts_code"],
                                                                 names))
                      for names in RENAMES], ignore_index=True)
    basic = pd.concat([tables["stock_basic"].assign(
        ts_code=renamed(tables["stock_basic"]["ts_code"], names)) for names in RENAMES],
        ignore_index=True)
    del tables
    store = RawStore(folder / "data" / "raw")
    stocks = bars["ts_code"].nunique()
    store.fit_layout(CATALOGUE["qfq_daily"], stocks)
    store.upsert(CATALOGUE["qfq_daily"], bars)
    store.upsert(CATALOGUE["stock_basic"], basic)
    return stocks


def stand_in(results: Results, market: Path, evaluate_minutes: float | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        say("(a) building the 5,000-stock stand-in's store ...")
        stocks = stand_in_store(folder, market)
        (folder / "config.json").write_text(json.dumps(IN_PROCESS))
        say(f"(a) {stocks:,} stocks, 2008-2018: `stockpred features --universe all` ...")
        built = measured("features", "--universe", "all", cwd=folder)
        say("  " + built["out"].strip().splitlines()[-1])
        results.add(f"stand-in ({stocks:,} stocks): full factor build, wall",
                    built["wall_s"], "s", digits=0)
        results.add("its peak (process tree)", built["peak"] / GB, "GB", "<= 6 GB",
                    built["peak"] <= 6 * GB)
        say("(a) `stockpred evaluate --cross-section --universe all --models lightgbm` ...")
        limit = evaluate_minutes * 60 if evaluate_minutes else None
        run = measured("evaluate", "--cross-section", "--universe", "all", "--models",
                       "lightgbm", cwd=folder, limit_s=limit, stop_above=STOP_ABOVE)
        if run["finished"]:
            results.add("stand-in: evaluate --cross-section (LightGBM, default protocol), "
                        "wall", run["wall_s"], "s", digits=0)
            results.add("its peak (process tree)", run["peak"] / GB, "GB", "<= 8 GB",
                        run["peak"] <= 8 * GB)
        elif run["memory_stop"]:
            results.add(f"stand-in: evaluate --cross-section (LightGBM, default protocol), "
                        f"STOPPED past {STOP_ABOVE / GB:g} GB after", run["wall_s"], "s",
                        digits=0)
            results.add("its peak (process tree)", run["peak"] / GB, "GB", "<= 8 GB", False)
        else:
            results.add(f"stand-in: evaluate --cross-section (LightGBM, default protocol), "
                        f"UNFINISHED: stopped after {evaluate_minutes:g} min", run["wall_s"],
                        "s", digits=0)
            results.add("its peak so far (process tree; target <= 8 GB not judged: the run "
                        "did not finish)", run["peak"] / GB, "GB")


def nightly(results: Results, market: Path) -> None:
    from stockpred.data.replay import ReplayServer, market_replay_tables, tables_as_of
    from stockpred.data.sample import read_market_tree

    tables = market_replay_tables(read_market_tree(market))
    stocks = len(tables["stock_basic"])
    with tempfile.TemporaryDirectory() as tmp, \
            ReplayServer(tables_as_of(tables, DAY_BEFORE), TOKEN) as server:
        folder = Path(tmp)
        env = {"TUSHARE_TOKEN": TOKEN, "TUSHARE_API_URL": server.url}

        def configure(end: str) -> None:
            (folder / "config.json").write_text(json.dumps({
                **IN_PROCESS, "cross_section": {"universe": "all"},
                "fetch": {"universe": "all", "start_date": "20080101", "end_date": end,
                          "interfaces": ["daily"]}}))

        configure(DAY_BEFORE)
        say(f"(b) set-up on {stocks:,} real stocks through {DAY_BEFORE}: fetch (fetch.universe "
            f"all), factors, the signal's first fit, the track record ...")
        setup = {}
        for stage in (["fetch"], ["features", "--universe", "all"], ["signal"], ["live"]):
            run = measured(*stage, cwd=folder, env=env)
            setup[stage[0]] = run
            say(f"  {' '.join(stage)}: {run['wall_s']:.0f} s, peak {run['peak'] / GB:.2f} GB")
        results.data["setup"] = {k: {"wall_s": v["wall_s"], "peak": v["peak"]}
                                 for k, v in setup.items()}
        server.tables = tables
        configure(LAST_DAY)
        say(f"(b) the nightly increment: `stockpred refresh --universe all` on {LAST_DAY} ...")
        night = measured("refresh", "--universe", "all", cwd=folder, env=env)
        for line in night["out"].strip().splitlines():
            say("  " + line[:160])
        from stockpred.config import load_config
        from stockpred.layout import resolve_paths
        from stockpred.manifest import read_manifest

        paths = resolve_paths(load_config(folder / "config.json"), folder / "data")
        written = (read_manifest(paths.factors_manifest("all")) or {}).get("last_run", {}) \
            .get("written")
        results.add(f"nightly increment ({stocks:,} real stocks, one new day): wall",
                    night["wall_s"], "s", "<= 120 s on a quiet 2-core machine",
                    night["wall_s"] <= 120, digits=0)
        results.add("its peak (process tree)", night["peak"] / GB, "GB", "<= 3 GB",
                    night["peak"] <= 3 * GB)
        if written is None:
            say("  factor files rewritten: not found in factors.json")
        else:
            results.add(f"factor year files it rewrote ({', '.join(written) or 'none'})",
                        len(written), "", "<= 1", len(written) <= 1, digits=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluate-minutes", type=float, default=None,
                        help="Stop the stand-in's evaluate after this many minutes.")
    parser.add_argument("--stand-in-only", action="store_true", help="Skip (b).")
    parser.add_argument("--nightly-only", action="store_true", help="Skip (a).")
    args = parser.parse_args()
    market = shared_market_dir()
    if not (market / "qfq_daily").is_dir():
        raise SystemExit(f"no market data under {market}: set STOCKPRED_SHARED_DATA")
    results = Results("bench_nightly", "python scripts/bench_nightly.py")
    # saved after each part: a run stopped in the long stand-in keeps the nightly figures
    if not args.stand_in_only:
        nightly(results, market)
        results.save()
    else:  # the nightly figures of the last run that measured them, marked as such
        results.figures = earlier_nightly_figures()
    if not args.nightly_only:
        stand_in(results, market, args.evaluate_minutes)
        results.save()


def earlier_nightly_figures() -> list[dict]:
    """The stored result's figures of part (b), each saying the run it is from."""
    from stockpred.config import load_config
    from stockpred.layout import resolve_paths

    stored = resolve_paths(load_config(REPO / "config.json"), REPO / "data") \
        .benchmark_results("bench_nightly")
    if not stored.exists():
        return []
    result = json.loads(stored.read_text())
    kept = []
    for figure in result["figures"]:
        if figure["what"].startswith("stand-in"):
            break
        if " (from the run of " in figure["what"]:  # kept from an earlier run already:
            kept.append(figure)  # its own run's date and load, not the stored result's
            continue
        kept.append({**figure, "what": f"{figure['what']} (from the run of {result['date']}, "
                                       f"load {result['load_at_start']:.1f} to "
                                       f"{result['load_at_end']:.1f})"})
    return kept


if __name__ == "__main__":
    main()
