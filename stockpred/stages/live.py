"""The paper track record of the nightly signals (`stockpred live`).

Every stored signal (data/signals/T.parquet, `stockpred signal`) gets one row of
<results dir>/live/track.parquet once the days it is judged on have closed:

- its realised IC and Rank IC: the day's scores against cross_section.label over the
  signal's members whose label is known on the label's own market day (the second trading
  day after T for ret_2, the first for ret_1; a stock suspended in between, whose label
  ends later, is left out, so the row does not wait on it);
- the paper portfolio's return after costs on ``held_on``, the second trading day after T:
  the TopK-Dropout book that T's scores order at T+1's execution price
  (cross_section.backtest.execution), valued at held_on's close, less the costs paid that
  day, with the backtest's A-share rules and costs (stockpred.evaluation.backtest,
  rebalanced every night as the signal builds its target every night), beside the
  equal-weight universe of the day before's members.

A signal whose days have not closed gets no row yet, so the table grows as days close.
Each row reads nothing after its held_on close, and the whole table is recomputed from the
stored signals and bars: a row never changes when later days arrive, and a rerun on the
same data writes the same bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.data.store import atomic_write_parquet
from stockpred.dataset import stock_labels
from stockpred.errors import MissingInputError
from stockpred.evaluation.backtest import BacktestSettings, equal_weight_returns, run_backtest
from stockpred.evaluation.signal import daily_ic
from stockpred.layout import Paths
from stockpred.manifest import write_manifest
from stockpred.plots import drawn_from
from stockpred.plots.live import track_figure
from stockpred.stages.cross_section import reference_tables
from stockpred.stages.market import market_bars, members

TRACK_COLUMNS = ["trade_date", "model", "label", "stocks", "ic", "rank_ic", "held_on",
                 "return", "equal_weight", "excess", "positions"]
# orders of T's signal fill on the next trading day; the book is then held over the one after
HELD_AFTER = 2
LABEL_DAYS = {"ret_1": 1, "ret_2": 2}  # trading days from T to the close that ends the label


def read_signals(paths: Paths) -> pd.DataFrame:
    """Every stored signal table (trade_date, ts_code, score, rank, model), oldest first."""
    days = paths.signal_days()
    if not days:
        raise MissingInputError(f"no signal under {paths.signals_dir}: run `stockpred signal` "
                                f"first")
    return pd.concat([pd.read_parquet(paths.signal_table(day)) for day in days],
                     ignore_index=True)


def track_record(signals: pd.DataFrame, bars: pd.DataFrame, member_rows: pd.DataFrame,
                 label: str, settings: BacktestSettings,
                 namechange: pd.DataFrame | None = None,
                 stock_basic: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row (TRACK_COLUMNS) per signal day of ``signals`` whose label day and held_on
    day are among the days of ``bars`` (the market calendar: the days with any bar)."""
    days = np.sort(signals["trade_date"].unique().astype(str))
    # nothing before the first signal enters a row: the cost follows the record, not the
    # history stored
    bars = bars[(bars["trade_date"] >= days[0]).to_numpy()]
    calendar = np.sort(bars["trade_date"].unique().astype(str))
    position = np.searchsorted(calendar, days)
    closed = position + HELD_AFTER < len(calendar)
    if not closed.any():
        return pd.DataFrame(columns=TRACK_COLUMNS)
    # the backtest runs to the day after the last signal: a book held past it is pending
    result = run_backtest(signals[["trade_date", "ts_code", "score"]], bars,
                          settings.model_copy(update={"rebalance_every": 1}),
                          {"equal_weight": equal_weight_returns(bars, member_rows)},
                          namechange, stock_basic)
    held_on = calendar[np.minimum(position + HELD_AFTER, len(calendar) - 1)]
    closed &= np.isin(held_on, result.daily.index)
    days, held_on = days[closed], held_on[closed]
    daily = result.daily.loc[held_on]

    labels = stock_labels(bars, label)[["trade_date", "ts_code", label, "known_on"]]
    scored = signals[signals["trade_date"].isin(days)].merge(
        labels, on=["trade_date", "ts_code"], how="left")
    label_day = pd.Series(calendar[position[closed] + LABEL_DAYS[label]], index=days)
    scored = scored[(scored["known_on"].to_numpy(str)
                     <= label_day.reindex(scored["trade_date"]).to_numpy(str))
                    & np.isfinite(scored[label].to_numpy(float))
                    & np.isfinite(scored["score"].to_numpy(float))]
    ic = daily_ic(scored, label)
    model = signals.drop_duplicates("trade_date").set_index("trade_date")["model"]
    return pd.DataFrame({
        "trade_date": days, "model": model.reindex(days).to_numpy(), "label": label,
        "stocks": scored.groupby("trade_date").size().reindex(days, fill_value=0)
        .to_numpy(np.int64),
        "ic": ic["ic"].reindex(days).to_numpy(float),
        "rank_ic": ic["rank_ic"].reindex(days).to_numpy(float),
        "held_on": held_on, "return": daily["return"].to_numpy(float),
        "equal_weight": daily["benchmark_equal_weight"].to_numpy(float),
        "excess": daily["excess_equal_weight"].to_numpy(float),
        "positions": daily["positions"].to_numpy(np.int64)}, columns=TRACK_COLUMNS)


def summary(track: pd.DataFrame, pending: int, tail: int) -> list[str]:
    """The last ``tail`` rows and the record's totals, as printed lines."""
    if track.empty:
        return [f"no signal's days have closed yet ({pending} pending)"]
    shown = track.tail(tail)[["trade_date", "held_on", "stocks", "ic", "rank_ic", "return",
                              "equal_weight", "excess", "positions"]]
    return [shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
            f"{len(track)} signal days {track['trade_date'].iloc[0]}.."
            f"{track['trade_date'].iloc[-1]}: mean Rank IC {track['rank_ic'].mean():.4f} "
            f"(IC {track['ic'].mean():.4f}), cumulative excess after costs over the "
            f"equal-weight universe {track['excess'].sum():+.4f} (portfolio "
            f"{track['return'].sum():+.4f}, universe {track['equal_weight'].sum():+.4f}); "
            f"{pending} signal days pending"]


def run(config: Config, paths: Paths, tail: int = 10) -> list[str]:
    """Recompute the track record from the stored signals and bars, write it and its
    figure, and return the printed lines."""
    cs = config.cross_section
    signals = read_signals(paths)
    member_rows = members(config, paths, cs.universe)
    codes = sorted(set(member_rows["ts_code"]) | set(signals["ts_code"]))
    _, bars = market_bars(paths, codes)
    track = track_record(signals, bars, member_rows, cs.label, cs.backtest,
                         **reference_tables(paths))
    atomic_write_parquet(track, paths.live_track)
    last = paths.signal_days()[-1]
    figure = track_figure(track, paths.live_figure, drawn_from(
        "stockpred live", config, paths, paths.signal_table(last), None, run_id=last))
    pending = signals["trade_date"].nunique() - len(track)
    write_manifest(paths.live_manifest, {
        "stage": "live", "universe": cs.universe, "label": cs.label, "rows": len(track),
        "pending": pending, "through": track["held_on"].max() if len(track) else None,
        "track": paths.live_track.name, "figure": paths.live_figure.name})
    return [*summary(track, pending, tail), f"track: {paths.live_track}",
            f"figure: {figure}"]
