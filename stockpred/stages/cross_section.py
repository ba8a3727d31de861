"""The market-wide evaluate stage (`stockpred evaluate --cross-section`) and `backtest`.

Reads a universe's factor panel and membership (`stockpred features --universe NAME`) and
its stocks' bars; walks every model forward over the test period (last_return and random
are always rows); writes <data dir>/runs/evaluate/<run id>/predictions.parquet
(trade_date, ts_code, model, score), the backtests' daily frames, and
<results dir>/cross_section/leaderboard.{md,json} with figures beside them.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass

import pandas as pd

from stockpred.config import Config, quick_config
from stockpred.data.store import RawStore, atomic_write_parquet, atomic_write_text
from stockpred.dataset import FactorPanel, build_factor_panel
from stockpred.errors import InputError, MissingInputError
from stockpred.evaluation import leaderboard, signal
from stockpred.evaluation.backtest import equal_weight_returns, index_returns, rule_notes
from stockpred.evaluation.cross_section import backtest_row, score_rows
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.layout import Paths, new_run_folder
from stockpred.manifest import config_hash, package_versions, upstream
from stockpred.models.names import CROSS_SECTION, check_models
from stockpred.tuning.spaces import tunable
from stockpred.models.registry import prototype
from stockpred.plots import cross_section as figures
from stockpred.plots import drawn_from
from stockpred.stages.market import (
    _optional,
    compute_client,
    factor_files,
    factor_years,
    first_window_day,
    market_bars,
    members,
)

BASELINES = ["last_return", "random"]
# a folder name as new_run_folder makes them: no separator, no leading dot, hence no ".."
_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]*")
SIGNAL_COLUMNS = ["model", "label", "rows", "ic", "rank_ic", "rank_ic_lo90", "rank_ic_hi90",
                  "icir", "rank_icir", "ic_t_nw", "rank_ic_t_nw", "rank_ic_vs_reversal",
                  "vs_reversal_pvalue", "vs_reversal_lo90", "vs_reversal_hi90", "coverage",
                  "long_short_mean", "top_quantile_turnover"]
BACKTEST_COLUMNS = ["model", "annualised_return", "excess_return_with_cost_equal_weight",
                    "excess_return_without_cost_equal_weight",
                    "information_ratio_with_cost_equal_weight", "max_drawdown",
                    "mean_daily_turnover"]


def benchmarks(config: Config, paths: Paths, bars: pd.DataFrame,
               member_rows: pd.DataFrame) -> dict[str, pd.Series]:
    """The equal-weight universe (each day's members of the day before) and, when
    index_daily holds it, the configured index."""
    out = {"equal_weight": equal_weight_returns(bars, member_rows)}
    store = RawStore(paths.raw_dir)
    code = config.cross_section.backtest.benchmark_index
    if store.has("index_daily"):
        index = store.read("index_daily", [code])
        if not index.empty:
            out[code.replace(".", "_")] = index_returns(index, code)
    return out


def reference_tables(paths: Paths) -> dict[str, pd.DataFrame | None]:
    """The stored tables the backtest's rules read when they are there: namechange (ST
    days) and stock_basic (delist dates)."""
    store = RawStore(paths.raw_dir)
    return {name: _optional(store, name) for name in ("namechange", "stock_basic")}


def _by_horizon(columns: list[str], tagged: bool) -> list[str]:
    """A table's columns, with the horizon after the model on a board of several."""
    return [columns[0], "horizon", *columns[1:]] if tagged else columns


def _cap(settings) -> str:
    return "no share" if settings.participation is None else f"{settings.participation:.0%}"


@dataclass
class CrossSectionReport:
    run_id: str
    markdown: str
    costs: list[dict]

    def summary(self) -> list[str]:
        return self.markdown.strip().splitlines() + ["", "Training cost (this run):"] + [
            f"  {c['model']}{' at horizon ' + str(c['horizon']) if 'horizon' in c else ''}: "
            f"{c['walk_seconds']:g} s wall, {c['walk_cpu_seconds']:g} CPU s" for c in self.costs]


def universe_panel(config: Config, paths: Paths, name: str, first_block: str | None = None,
                   last: str | None = None
                   ) -> tuple[FactorPanel, pd.DataFrame, pd.DataFrame]:
    """The factor panel of universe ``name`` on its member days, its membership and the bars
    of its stocks. With ``first_block``, the panel holds only the days a walk-forward whose
    first block starts there reads: from the first day of that block's trailing
    cross_section.train_days through ``last``, from those years' files alone; each row it
    holds is as in the whole history's panel."""
    cs = config.cross_section
    member_rows = members(config, paths, name)
    files = factor_files(config, paths, name)
    first = None if first_block is None else first_window_day(files, member_rows, first_block,
                                                              cs.train_days)
    _, bars = market_bars(paths, sorted(member_rows["ts_code"].unique()))
    # normalised a year at a time: the raw factors of one year at most beside the matrix
    panel = build_factor_panel(factor_years(files, first, last), member_rows, bars, cs.label,
                               cs.normalise, cs.mad_k)
    return panel, member_rows, bars


def universe_panel_on_dask(config: Config, paths: Paths, name: str, client,
                           first_block: str | None = None, last: str | None = None
                           ) -> tuple[FactorPanel, pd.DataFrame, pd.DataFrame]:
    """``universe_panel`` with the factors read and normalised by the client's workers and
    held there (stockpred.dataset_on_dask); the same window of days. The client holds the
    window's keys and labels, so a window bounds its memory as it bounds the workers'."""
    from stockpred.dataset_on_dask import factor_panel_on_dask

    cs = config.cross_section
    member_rows = members(config, paths, name)
    files = factor_files(config, paths, name)
    first = None if first_block is None else first_window_day(files, member_rows, first_block,
                                                              cs.train_days)
    dates = member_rows["trade_date"].to_numpy(dtype=str)
    window = member_rows[(dates >= (first or "")) & ((dates <= last) if last else True)]
    # a window past every stored year keeps one file: its schema names the factors
    files = [f for f in files if f.stem >= (first or "")[:4] and (last is None or
                                                                  f.stem <= last[:4])
             ] or files[-1:]
    _, bars = market_bars(paths, sorted(member_rows["ts_code"].unique()))
    panel = factor_panel_on_dask(client, files, window, bars, cs.label, cs.normalise,
                                 cs.mad_k)
    return panel, member_rows, bars


def run(config: Config, paths: Paths, universe: str | None = None,
        models: list[str] | None = None, quick: bool = False,
        progress: bool = True) -> CrossSectionReport:
    if quick:
        config = quick_config(config)
    cs = config.cross_section
    name = universe or cs.universe
    names = list(dict.fromkeys(BASELINES + check_models(list(models or cs.models),
                                                        CROSS_SECTION)))
    protocol = WalkForward.from_config(config, CROSS_SECTION)
    prototypes = {m: prototype(config, m) for m in names}
    prototypes.update(leaderboard.tuned_models(
        config, {m: paths.cross_section_tune_dir(name, m) for m in tunable(CROSS_SECTION)},
        leaderboard.tuning_scope(config, universe=name)))
    on_dask = any(model.settings.get("on_dask") for model in prototypes.values())
    # a board of the next-close label alone keeps the rows and files it had before horizons
    tagged = cs.horizons != [1]
    signal_rows, backtests, dailies, monthly, quintiles, predictions = [], [], [], [], [], []
    costs = []  # the run's own: no rerun reproduces a time, so it stays out of the board
    with compute_client(config) if on_dask else nullcontext() as client:
        # every learner on the cluster: the factors stay there too, this process never
        # holds them; else the window's years are read here (and shipped to on_dask learners)
        panel, member_rows, bars = (
            universe_panel_on_dask(config, paths, name, client, protocol.test_start,
                                   protocol.test_end)
            if client is not None and all(model.settings.get("on_dask")
                                          for m, model in prototypes.items()
                                          if m not in BASELINES)
            else universe_panel(config, paths, name, protocol.test_start, protocol.test_end))
        in_test = (panel.dates >= protocol.test_start) & (panel.dates <= protocol.test_end)
        if not in_test.any():
            raise InputError(f"no member day of {name} between {protocol.test_start} and "
                             f"{protocol.test_end}")
        settings = config.cross_section.backtest
        marks = benchmarks(config, paths, bars, member_rows)
        listings = reference_tables(paths)
        test_keys = panel.keys[in_test]
        for horizon in cs.horizons:
            data = panel.ahead(bars, horizon)
            tag = {"horizon": horizon} if tagged else {}
            reversal = None  # last_return's scores, walked first: every later row's pair
            for m, model in prototypes.items():
                wall, cpu = time.perf_counter(), time.process_time()
                frame = walk_forward(model, data, protocol, progress)
                costs.append({"model": m, **tag,
                              "walk_seconds": round(time.perf_counter() - wall, 1),
                              "walk_cpu_seconds": round(time.process_time() - cpu, 1)})
                signal_rows += [{**row, **tag} for row in score_rows(
                    m, frame, data, bars, settings.execution, horizon, reversal)]
                if m == "last_return":
                    reversal = frame
                row, daily = backtest_row(m, frame, bars, settings, marks, **listings)
                backtests.append({**row, **tag})
                dailies.append(daily.assign(**tag))
                predictions.append(frame[["trade_date", "ts_code"]].assign(
                    model=m, **tag, score=frame["score"]))
                if horizon != cs.horizons[0]:
                    continue  # the figures show the first horizon
                labelled = test_keys.assign(label=data.returns.loc[in_test, cs.label]
                                            .to_numpy()).merge(frame, on=["trade_date", "ts_code"])
                monthly.append(signal.monthly_ic(labelled).reset_index().assign(model=m))
                means = signal.quantile_returns(labelled).mean
                quintiles.append(pd.DataFrame({"quantile": means.index,
                                               "mean": means.to_numpy(), "model": m}))
    header = (f"# Cross-sectional leaderboard\n\nUniverse {name} ({member_rows['ts_code'].nunique()}"
              f" stocks), test {protocol.test_start}..{protocol.test_end}, refit every "
              f"{protocol.retrain_every} trading days on the trailing {protocol.train_days} "
              f"(the last {protocol.validation_days} stop early), trained on {cs.label} "
              f"ranked per day{' (quick sizes)' if quick else ''}. IC and Rank IC are daily "
              f"cross-sectional correlations of the score with ret_1 (close T -> T+1) and "
              f"ret_2 (close T+1 -> T+2); t_nw: Newey-West t of the daily series; "
              f"rank_ic_lo90..hi90: the 90% interval of the mean Rank IC, resampling whole "
              f"months; rank_ic_vs_reversal: the mean of the daily Rank IC less the "
              f"reversal's (minus last_return) on the same days, vs_reversal_pvalue its "
              f"two-sided Newey-West p and vs_reversal_lo90..hi90 its month-block 90% "
              f"interval: beside zero, a model must beat what the reversal alone earns; "
              f"each model's training cost (walk_seconds, walk_cpu_seconds: the wall "
              f"and CPU seconds of its whole walk-forward, every refit and every block's "
              f"scores; CPU counts every thread, Dask workers' not) is in the run folder's "
              f"metrics.json, `costs`, as no rerun reproduces a time; "
              f"`tradeable` leaves out stocks that could not be entered the next day. "
              f"last_return and random are the naive scores; a `(tuned by ...)` row has "
              f"the settings `stockpred tune --universe` chose on the validation days. The "
              f"backtest trades TopK "
              f"{settings.topk} / drop {settings.n_drop} at the next {settings.execution} with "
              f"A-share rules, {settings.costs} costs, {settings.slippage_bp:g} bp of "
              f"slippage a side, orders capped at {_cap(settings)} of the day's amount; "
              f"excess is over the equal-weight universe of the day before's members."
              + (f" Rows of horizon h (here {', '.join(map(str, cs.horizons))}) score and "
                 f"train on labels h traded days long: ret_1 close T -> T+h, ret_2 close "
                 f"T+1 -> T+1+h (tradeable from the next close), each refit learning only "
                 f"from labels known at its first close (a gap of 1+h days for ret_2); "
                 f"last_return is then the past h days' return; t_nw takes at least h-1 "
                 f"lags, as labels overlapping h-1 days need (the month blocks of the "
                 f"bootstrap share a few days at their edges beyond horizon 1); the "
                 f"backtest trades each horizon's scores by the same daily rule; the "
                 f"figures show horizon {cs.horizons[0]}." if tagged else ""))
    with new_run_folder(paths.evaluation_runs, quick) as run_folder:
        atomic_write_parquet(pd.concat(predictions, ignore_index=True),
                             run_folder.writing / "predictions.parquet")
        atomic_write_parquet(pd.concat(dailies, ignore_index=True),
                             run_folder.writing / "backtest_daily.parquet")
        board = {"run_id": run_folder.run_id, "world": CROSS_SECTION, "header": header,
                 "test_period": [protocol.test_start, protocol.test_end],
                 "protocol": vars(protocol), "quick": quick, "models": list(prototypes),
                 **({"horizons": cs.horizons} if tagged else {}), "rows": signal_rows,
                 "tables": [leaderboard.table(signal_rows, _by_horizon(SIGNAL_COLUMNS, tagged),
                                              "Signal"),
                            leaderboard.table(backtests, _by_horizon(BACKTEST_COLUMNS, tagged),
                                              "Backtest")],
                 "notes": [f"Note: {n}" for n in rule_notes(**listings)],
                 "config_sha256": config_hash(config), "versions": package_versions(),
                 "upstream": upstream(paths), "universe": name, "label": cs.label,
                 "settings": cs.model_dump(mode="json"), "backtest": backtests,
                 "costs": costs}
        leaderboard.write_metrics(board, run_folder.writing)
    markdown = leaderboard.publish(paths, board)
    out = paths.figures_dir("cross_section")
    drawn = drawn_from("stockpred evaluate --cross-section", config, paths, run_folder.final,
                       None, run_id=run_folder.run_id, quick=quick)
    daily = pd.concat(dailies, ignore_index=True)
    if tagged:
        daily = daily[daily["horizon"] == cs.horizons[0]]
    figures.cumulative_excess(daily, "equal_weight", out / "cumulative_excess.png", drawn)
    figures.monthly_rank_ic(pd.concat(monthly, ignore_index=True), out / "monthly_rank_ic.png",
                            drawn)
    figures.quintile_returns(pd.concat(quintiles, ignore_index=True), out / "quintiles.png",
                             drawn)
    return CrossSectionReport(run_folder.run_id, markdown, costs)


def rerun_backtest(config: Config, paths: Paths, run_id: str,
                   model: str | None = None) -> list[str]:
    """`stockpred backtest --run RUN_ID`: the backtest of stored predictions, again, with
    the current cross_section.backtest settings."""
    if not _RUN_ID.fullmatch(run_id):
        raise InputError(f"--run {run_id!r} is not a run id: the name of a folder under "
                         f"{paths.evaluation_runs}, such as 20181228-093000")
    folder = paths.evaluation_runs / run_id
    stored = folder / "predictions.parquet"
    if not stored.exists():
        raise MissingInputError(f"no predictions at {stored}: run `stockpred evaluate "
                                f"--cross-section` first")
    predictions = pd.read_parquet(stored)
    if "score" not in predictions.columns:
        raise InputError(f"run {run_id} holds next-close forecasts, not cross-sectional "
                         f"scores")
    chosen = [model] if model else list(predictions["model"].unique())
    unknown = [m for m in chosen if m not in set(predictions["model"])]
    if unknown:
        raise InputError(f"run {run_id} has no model {', '.join(unknown)}; it has "
                         f"{', '.join(predictions['model'].unique())}")
    record = json.loads((folder / leaderboard.METRICS_FILE).read_text(encoding="utf-8"))
    member_rows = members(config, paths, record["universe"])
    _, bars = market_bars(paths, sorted(member_rows["ts_code"].unique()))
    marks = benchmarks(config, paths, bars, member_rows)
    listings = reference_tables(paths)
    # a run of several horizons holds each model's scores once per horizon
    tagged = "horizon" in predictions.columns
    runs = predictions.groupby("horizon", sort=True) if tagged else [(None, predictions)]
    rows = [{**backtest_row(m, scored[scored["model"] == m], bars,
                            config.cross_section.backtest, marks, **listings)[0],
             **({"horizon": int(horizon)} if tagged else {})}
            for horizon, scored in runs for m in chosen]
    atomic_write_text(folder / "backtest.json", json.dumps(rows, indent=1) + "\n")
    return [*leaderboard.table_lines(rows, _by_horizon(BACKTEST_COLUMNS, tagged)),
            *[f"note: {n}" for n in rule_notes(**listings)]]
