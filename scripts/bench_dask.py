"""Benchmark the market-wide work on Dask without a gather, on the shared market data.

A data folder of every stock (1,702) is set up as a market-wide fetch and `stockpred
universe all` leave it (bars in the raw store, the point-in-time membership of `all`);
then, each case in a fresh process:
  (a) `stockpred features --universe all` (market.run_factors, full): in process, and on a
      LocalCluster of 2 workers (127.0.0.1, one thread each; the cluster's start-up is in
      the time), where the workers compute and write the year files;
  (b) the LightGBM walk-forward of `evaluate --cross-section` over 2017-2018: in process
      (universe_panel, LGBMRegressor), and on a LocalCluster of 2 workers
      (universe_panel_on_dask: the workers read and normalise the year files and hold
      them; lightgbm.dask fits where they live).
Per case: wall time, CPU seconds of the whole process tree (this process and its Dask
workers, user + system), peak memory of the tree (the sampled sum of RSS, floored at the
client's own ru_maxrss), of the client alone (its ru_maxrss: the process that holds the
scheduler and the models) and of the largest worker. The factor year files of (a) are
compared byte for byte; the scores of (b) by their correlation and mean daily Rank IC.

Target (issue 23 item 4): on the 2-worker cluster the client's peak <= 2 GB while the
workers hold the partitions; wall and CPU beside the in-process run.

Usage: python scripts/bench_dask.py [--quick] [--trees N] [--retrain-every K]
                                   [--cases all|factors|walk-forward] [--data DIR]
  --quick: the 100 stocks with the most bars, nothing recorded;
  --cases: (a) or (b) alone; --data: the data folder, kept (set up when it has no raw/),
  so that (b) can run on the factors (a) left there;
  --trees: LightGBM's n_estimators (default 50: memory goes with rows x factors);
  --retrain-every: refit every K trading days (default 250: 2 fits over 2017-2018).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_market import (GB, PeakSampler, gb, load_bars, maxrss, shared_market_dir,
                          stocks_by_bars, year_files)
from benchlib import Results, say, stockpred

TARGET_CLIENT_BYTES = 2e9
WORKERS = 2
UNIVERSE = "all"


def data_dir(folder: Path, market: Path, codes: list[str] | None) -> None:
    """``folder`` as a market-wide fetch and `stockpred universe all` leave it."""
    from stockpred.data.catalogue import CATALOGUE
    from stockpred.data.store import RawStore

    bars, basic = load_bars({"market": str(market), "codes": codes, "years": None})
    store = RawStore(folder / "raw")
    store.fit_layout(CATALOGUE["qfq_daily"], bars["ts_code"].nunique())
    store.upsert(CATALOGUE["qfq_daily"], bars)
    store.upsert(CATALOGUE["stock_basic"], basic)
    stockpred("universe", UNIVERSE, "--data-dir", str(folder), cwd=folder.parent)


def run_case(case: str, folder: Path, settings: dict) -> dict:
    """One case in a fresh process: its memory and CPU are its own (and its workers')."""
    done = subprocess.run([sys.executable, __file__, "--case", case, "--dir", str(folder),
                           "--settings", json.dumps(settings)],
                          check=False, capture_output=True, text=True)
    result = next((json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if done.returncode != 0 or result is None:
        return {"error": (done.stderr.strip() or done.stdout.strip())[-600:]}
    return result


def files_digest(folder: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(folder.glob("*.parquet")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def report(title: str, r: dict) -> None:
    if "error" in r:
        say(f"  {title:40s} FAILED: {r['error']}")
        return
    say(f"  {title:40s} wall {r['wall_s']:7.1f} s, CPU {r['cpu_s']:7.1f} s; peak: tree "
        f"{gb(r['peak_total'])}, client {gb(r['peak_self'])}, largest worker "
        f"{gb(r['peak_child'] or None)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 stocks, nothing recorded")
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--retrain-every", type=int, default=250)
    parser.add_argument("--cases", choices=("all", "factors", "walk-forward"), default="all",
                        help="run only (a) or (b); (b) alone needs --data with factors")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the data folder here (set up only when it has no raw/)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args.case, Path(args.dir), json.loads(args.settings))

    market = shared_market_dir()
    if market is None:
        sys.exit("no market data: set STOCKPRED_SHARED_DATA or put shared/data/market "
                 "(qfq_daily/<year>.parquet, stock_basic.csv) beside this checkout")
    ranked = stocks_by_bars(year_files(market, None))
    codes = sorted(ranked[:100]) if args.quick else None
    stocks = 100 if args.quick else len(ranked)
    settings = {"cross_section": {"retrain_every": args.retrain_every,
                                  "lightgbm": {"n_estimators": args.trees}}}
    command = " ".join(["python scripts/bench_dask.py", *sys.argv[1:]])
    say(f"bench_dask: {market}, {stocks:,} stocks; {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}; LocalCluster of {WORKERS} workers, one thread each")
    say(f"target: the client's peak <= {TARGET_CLIENT_BYTES / GB:.0f} GB on the cluster")
    results = Results("bench_dask", command)
    started = time.perf_counter()
    cases = {}
    same = comparison = None
    with tempfile.TemporaryDirectory(prefix="bench_dask-") as tmp:
        folder = args.data or Path(tmp) / "data"
        if not (folder / "raw").is_dir():
            t = time.perf_counter()
            data_dir(folder, market, codes)
            say(f"data folder set up in {time.perf_counter() - t:.0f} s (store, membership; "
                f"not in the figures)")
        if args.cases in ("all", "factors"):
            say("(a) stockpred features --universe all (full)")
            digests = {}
            for workers, title in ((WORKERS, f"factors, LocalCluster of {WORKERS}"),
                                   (0, "factors in process")):
                cases[title] = run_case(f"factors:{workers}", folder, settings)
                report(title, cases[title])
                digests[title] = files_digest(folder / "factors" / UNIVERSE)
            same = len(set(digests.values())) == 1
            say(f"  the year files are {'byte for byte identical' if same else 'DIFFERENT'}")
        if args.cases in ("all", "walk-forward"):
            say(f"(b) LightGBM walk-forward, {args.trees} trees, refit every "
                f"{args.retrain_every} days")
            for workers, title in ((WORKERS, f"walk-forward, LocalCluster of {WORKERS}"),
                                   (0, "walk-forward in process")):
                cases[title] = run_case(f"train:{workers}", folder, settings)
                report(title, cases[title])
                if "error" not in cases[title]:
                    r = cases[title]
                    say(f"  {'':40s} {r['rows']:,} panel rows, {r['fits']} fits; mean "
                        f"daily Rank IC (ret_2) {r['rank_ic']:.4f}")
            comparison = compare_scores(folder)
            if comparison:
                say(f"  scores, {WORKERS} workers vs in process: correlation "
                    f"{comparison['correlation']:.4f}, largest difference "
                    f"{comparison['max_abs_diff']:.4f}")
    for title, r in cases.items():
        if "LocalCluster" not in title or "error" in r:
            continue
        results.add(f"{title}: client peak", r["peak_self"] / GB, "GB",
                    target=f"<= {TARGET_CLIENT_BYTES / GB:.0f} GB",
                    met=r["peak_self"] <= TARGET_CLIENT_BYTES)
    for title, r in cases.items():
        if "error" not in r:
            results.add(f"{title}: wall", r["wall_s"], "s", digits=1)
            results.add(f"{title}: CPU (tree)", r["cpu_s"], "s", digits=1)
            results.add(f"{title}: peak (tree)", r["peak_total"] / GB, "GB")
    if not args.quick:
        results.data.update(stocks=stocks, workers=WORKERS, trees=args.trees, cases_run=args.cases,
                            retrain_every=args.retrain_every, identical_files=same,
                            scores=comparison, cases=cases)
        results.save()
    say(f"\ndone in {time.perf_counter() - started:.0f} s; load now {os.getloadavg()[0]:.1f}")


def compare_scores(folder: Path) -> dict | None:
    import numpy as np
    import pandas as pd

    paths = [folder / f"scores-{w}.parquet" for w in (WORKERS, 0)]
    if not all(p.exists() for p in paths):
        return None
    there, here = (pd.read_parquet(p) for p in paths)
    both = here.merge(there, on=["trade_date", "ts_code"], suffixes=("", "_dask"))
    return {"correlation": float(np.corrcoef(both["score"], both["score_dask"])[0, 1]),
            "max_abs_diff": float((both["score"] - both["score_dask"]).abs().max()),
            "rows": len(both)}


# -- a case: one process, its own memory ------------------------------------------------------

def cpu_seconds() -> float:
    """User + system seconds of this process and its finished descendants (the workers,
    once their cluster is closed)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def child(case: str, folder: Path, settings: dict) -> None:
    import shutil

    from stockpred.config import Config, with_overrides
    from stockpred.layout import resolve_paths

    kind, _, arg = case.partition(":")
    workers = int(arg)
    config = with_overrides(Config(), {**settings, "compute": {"workers": workers}})
    paths = resolve_paths(config, folder)
    extra = {}
    start, cpu = time.perf_counter(), cpu_seconds()
    with PeakSampler() as sampler:
        if kind == "factors":
            from stockpred.stages import market

            shutil.rmtree(paths.factors_dir(UNIVERSE), ignore_errors=True)
            report_ = market.run_factors(config, paths, UNIVERSE, progress=False)
            extra["rows"] = report_.rows
        else:
            extra = walk(config, paths, workers, folder)
    wall = time.perf_counter() - start
    self_peak = maxrss(resource.RUSAGE_SELF)
    print("RESULT " + json.dumps({
        "wall_s": wall, "cpu_s": cpu_seconds() - cpu,
        "peak_total": max(sampler.peak, self_peak), "peak_self": self_peak,
        "peak_child": maxrss(resource.RUSAGE_CHILDREN), **extra}))


def walk(config, paths, workers: int, folder: Path) -> dict:
    """The LightGBM walk-forward as `evaluate --cross-section` runs it; scores written to
    ``folder``; rows, fits and the mean daily Rank IC on ret_2."""
    from stockpred.evaluation.walkforward import WalkForward, walk_forward
    from stockpred.models.names import CROSS_SECTION
    from stockpred.models.registry import prototype
    from stockpred.stages.cross_section import universe_panel, universe_panel_on_dask
    from stockpred.stages.market import compute_client

    model = prototype(config, "lightgbm")
    protocol = WalkForward.from_config(config, CROSS_SECTION)
    if workers:
        model = type(model)({**model.settings, "on_dask": True}, model.seed)
        with compute_client(config) as client:
            panel, _, _ = universe_panel_on_dask(config, paths, UNIVERSE, client,
                                                 protocol.test_start, protocol.test_end)
            scores = walk_forward(model, panel, protocol, progress=False)
    else:
        panel, _, _ = universe_panel(config, paths, UNIVERSE, protocol.test_start,
                                     protocol.test_end)
        scores = walk_forward(model, panel, protocol, progress=False)
    scores.to_parquet(folder / f"scores-{workers}.parquet")
    labelled = scores.merge(panel.keys.assign(ret_2=panel.returns["ret_2"].to_numpy()),
                            on=["trade_date", "ts_code"])
    daily = labelled.groupby("trade_date")[["score", "ret_2"]].corr("spearman")
    rank_ic = daily.xs("score", level=1)["ret_2"].mean()
    return {"rows": len(panel), "fits": int(scores["refit_before"].nunique()),
            "rank_ic": float(rank_ic)}


if __name__ == "__main__":
    main()
