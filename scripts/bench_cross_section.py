"""Benchmark stockpred's cross-sectional walk-forward on the shared market data.

For the 500 stocks with the most bars (ties to the smaller ts_code) and for all 1,702, a
data folder is set up as a market-wide fetch and `stockpred features --universe all` leave
it (the bars in the raw store's year layout, the point-in-time membership of universe
`all`, its factor panel); then, in a fresh process, the panel is built as `stockpred
evaluate --cross-section` builds it (`universe_panel`) and LightGBM (the config's settings,
early stopping on the last validation_days) is walked forward over the test period
2017-2018 by `walk_forward`. Per case: wall time (panel and walk-forward), peak RSS
(the sampled sum over the process and any Dask workers, floored at its own ru_maxrss; also
apart while building the panel and while walking forward), rows of the panel, training
rows/s (rows fit, train and validation, over the seconds in fit), prediction rows/s,
refits and trees per fit.

Targets (issue 12): all 1,702 stocks peak below 6 GB; at 5,000 stocks, projected on the
line through the two scales, the peak fits 24 GB (LightGBM has no Dask path here).

The config refits every 21 trading days: 24 fits of about 1.4 M rows over 2017-2018, from
20 minutes on an idle two-core machine to hours on a loaded one (LightGBM's two threads
fit several times slower beside other work). The benchmark refits every --retrain-every
days (250 by default: 2 fits); the peak is that of one fit and does not grow with the
number of fits. --trees caps n_estimators (memory goes with rows x factors, not with the
number of trees).

Data: <shared data>/market (see bench_market.py). Results: project_results/benchmarks/
bench_cross_section.json (full runs only).

Usage: python scripts/bench_cross_section.py [--quick] [--retrain-every K] [--trees N]
  --quick: the 100 stocks with the most bars alone, nothing recorded (a few minutes).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from bench_market import (GB, PROJECTED_STOCKS, gb, load_bars, maxrss, projected_peak,
                          shared_market_dir, stocks_by_bars, year_files)
from bench_vs_qlib import Timed
from benchlib import PeakSampler, Results, say, stockpred

UNIVERSE = "all"
CASE = "walk-forward"  # the one case of each scale, as projected_peak looks it up
TARGET_BYTES = 6e9
PROJECTED_LIMIT_BYTES = 24e9
RETRAIN_EVERY = 250


class TreesCounted(Timed):
    """Timed, and the trees each fit built (early stopping ends it before n_estimators)."""

    def clone(self):
        return TreesCounted(self.inner.clone(), self.tally)

    def fit(self, train, valid=None):
        super().fit(train, valid)
        self.tally.setdefault("trees", []).append(self.inner.model_.booster_.current_iteration())
        return self


# -- the parent: a data folder per scale, the case in its own process, the figures ----------

def market_data_dir(folder: Path, market: Path, codes: list[str] | None) -> None:
    """``folder`` as `stockpred fetch --universe all` and `stockpred features --universe all`
    leave it, for ``codes`` (None: every stock)."""
    from stockpred.data.catalogue import CATALOGUE
    from stockpred.data.store import RawStore

    bars, basic = load_bars({"market": str(market), "codes": codes, "years": None})
    store = RawStore(folder / "raw")
    store.fit_layout(CATALOGUE["qfq_daily"], bars["ts_code"].nunique())
    store.upsert(CATALOGUE["qfq_daily"], bars)
    store.upsert(CATALOGUE["stock_basic"], basic)
    stockpred("features", "--universe", UNIVERSE, "--data-dir", str(folder), cwd=folder.parent)


def run_case(data_dir: Path, overrides: dict) -> dict:
    """The walk-forward in a fresh process (spawned: nothing of this one in its peak)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(walk_forward_case, str(data_dir), overrides).result()
        except BrokenProcessPool as exc:  # killed, most likely for memory
            return {"error": f"the case's process died: {exc}"}


def report(stocks: int, r: dict) -> None:
    if "error" in r:
        say(f"  {stocks:,} stocks FAILED: {r['error']}")
        return
    say(f"  {stocks:,} stocks: wall {r['wall_s']:.0f} s (panel {r['panel_s']:.0f} s, "
        f"walk-forward {r['walk_forward_s']:.0f} s), peak {gb(r['peak_total'])} (self "
        f"{gb(r['peak_self'])}; building the panel {gb(r['panel_peak'])}, walking forward "
        f"{gb(r['walk_forward_peak'])}), panel "
        f"{r['rows']:,} rows x {r['factors']} factors")
    say(f"    {r['fits']} refits, trees "
        f"{', '.join(map(str, r['trees']))}; training {r['fit_rows']:,} rows in "
        f"{r['fit_s']:.0f} s: {r['fit_rows'] / r['fit_s']:,.0f} rows/s; prediction "
        f"{r['predict_rows']:,} rows in {r['predict_s']:.1f} s: "
        f"{r['predict_rows'] / r['predict_s']:,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 stocks, nothing recorded")
    parser.add_argument("--retrain-every", type=int, default=RETRAIN_EVERY,
                        help=f"refit every K trading days (default {RETRAIN_EVERY})")
    parser.add_argument("--trees", type=int, default=None,
                        help="cap LightGBM's n_estimators (default: the config's)")
    args = parser.parse_args()

    market = shared_market_dir()
    if market is None:
        sys.exit("no market data: set STOCKPRED_SHARED_DATA or put shared/data/market "
                 "(qfq_daily/<year>.parquet, stock_basic.csv) beside this checkout")
    from stockpred.config import Config

    defaults = Config()
    lightgbm = {"n_estimators": args.trees} if args.trees else {}
    overrides = {"cross_section": {"retrain_every": args.retrain_every, "lightgbm": lightgbm}}
    ranked = stocks_by_bars(year_files(market, None))
    sizes = [100] if args.quick else [500, len(ranked)]
    command = " ".join(["python scripts/bench_cross_section.py", *sys.argv[1:]])
    say(f"bench_cross_section: {market}, {len(ranked)} stocks; {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}")
    say(f"LightGBM walk-forward, universe {UNIVERSE} (point in time), test "
        f"{defaults.evaluation.test_start}..{defaults.evaluation.test_end}, trailing "
        f"{defaults.cross_section.train_days} days (the last "
        f"{defaults.cross_section.validation_days} stop early); refit every "
        f"{args.retrain_every} trading days, not the config's "
        f"{defaults.cross_section.retrain_every} (one fit's peak is every fit's); trees: "
        f"{f'capped at {args.trees}' if args.trees else 'the config n_estimators'} "
        f"(of {defaults.cross_section.lightgbm.n_estimators}, early stopping)")
    say(f"targets: {len(ranked):,} stocks peak <= {TARGET_BYTES / GB:.0f} GB; at "
        f"{PROJECTED_STOCKS:,} (projected) <= {PROJECTED_LIMIT_BYTES / GB:.0f} GB")
    results = Results("bench_cross_section", command)
    started = time.perf_counter()
    scales = []
    with tempfile.TemporaryDirectory(prefix="bench_cross_section-") as tmp:
        for size in sizes:
            codes = None if size == len(ranked) else sorted(ranked[:size])
            folder = Path(tmp) / f"{size}-stocks"
            t = time.perf_counter()
            market_data_dir(folder, market, codes)
            say(f"\n{size:,} stocks: data folder set up in {time.perf_counter() - t:.0f} s "
                f"(store, membership, factors; not in the figures)")
            result = run_case(folder, overrides)
            report(size, result)
            scales.append({"stocks": size, "cases": {CASE: result}})
    if not args.quick:
        full = scales[-1]["cases"][CASE]
        met = "error" not in full and full["peak_total"] <= TARGET_BYTES
        projection = projected_peak(scales, PROJECTED_STOCKS, CASE)
        fits = projection is not None and projection <= PROJECTED_LIMIT_BYTES
        say(f"\ntarget, {len(ranked):,} stocks peak <= {TARGET_BYTES / GB:.0f} GB: "
            f"{'met' if met else 'NOT met'}")
        say(f"projected peak at {PROJECTED_STOCKS:,} stocks (the line through "
            f"{sizes[0]} and {sizes[1]:,}): {gb(projection)}; <= "
            f"{PROJECTED_LIMIT_BYTES / GB:.0f} GB: {'met' if fits else 'NOT met'}")
        results.data.update(
            universe=UNIVERSE, test_period=[defaults.evaluation.test_start,
                                            defaults.evaluation.test_end],
            train_days=defaults.cross_section.train_days,
            validation_days=defaults.cross_section.validation_days,
            retrain_every=args.retrain_every,
            config_retrain_every=defaults.cross_section.retrain_every,
            trees_cap=args.trees, config_trees=defaults.cross_section.lightgbm.n_estimators,
            target_bytes=TARGET_BYTES, target_met=met, projected_stocks=PROJECTED_STOCKS,
            projected_peak_total=projection, projected_limit_bytes=PROJECTED_LIMIT_BYTES,
            projected_fits=fits, scales=scales)
        results.save()
    say(f"\ndone in {time.perf_counter() - started:.0f} s; load now {os.getloadavg()[0]:.1f}")


# -- the case: one process, its own memory ---------------------------------------------------

def walk_forward_case(data_dir: str, overrides: dict) -> dict:
    from stockpred.config import Config, with_overrides
    from stockpred.evaluation.walkforward import WalkForward, walk_forward
    from stockpred.models.base import CROSS_SECTION
    from stockpred.layout import resolve_paths
    from stockpred.models.registry import prototype
    from stockpred.stages.cross_section import universe_panel

    config = with_overrides(Config(), overrides)
    paths = resolve_paths(config, data_dir)
    tally = {"fit_s": 0.0, "fit_rows": 0, "predict_s": 0.0, "predict_rows": 0, "fits": 0}
    start = time.perf_counter()
    with PeakSampler() as building:
        panel, _, _ = universe_panel(config, paths, UNIVERSE)
    panel_s = time.perf_counter() - start
    # sampling can miss a short peak of this process: its own ru_maxrss is a floor (of the
    # panel's peak only, as nothing else has run yet)
    panel_peak = max(building.peak, maxrss(resource.RUSAGE_SELF))
    model = TreesCounted(prototype(config, "lightgbm"), tally)
    with PeakSampler() as walking:
        walk_forward(model, panel, WalkForward.from_config(config, CROSS_SECTION),
                           progress=False)
    wall = time.perf_counter() - start
    self_peak = maxrss(resource.RUSAGE_SELF)
    return {**tally, "wall_s": wall, "panel_s": panel_s, "walk_forward_s": wall - panel_s,
            "rows": len(panel.keys), "factors": len(panel.features),
            "panel_stocks": int(panel.keys["ts_code"].nunique()), "panel_peak": panel_peak,
            "walk_forward_peak": walking.peak,
            "peak_total": max(panel_peak, walking.peak, self_peak), "peak_self": self_peak,
            "peak_child": maxrss(resource.RUSAGE_CHILDREN)}


if __name__ == "__main__":
    main()
