"""Walk-forward for cross-sectional models, and their leaderboard rows.

The test days are cut into blocks of ``retrain_every`` trading days. Before each block a
clone of the model is fit on the rows of the trailing ``train_days`` trading days whose
label is known at the close of the block's first day (for ret_2, the close two traded days
after the row), each day's labels ranked among those known ones only, the last
``validation_days`` of them held back to stop it early. It then scores every row of the
block in one batched call. No label of the block or after it reaches fitting, not even
through the rank of another stock's label.

A model is scored on both labels (ret_1: close T -> T+1; ret_2: close T+1 -> T+2, what
trading at T+1's close earns), over all rows and over the tradeable rows only (rows whose
stock could be entered the next day: not suspended, at no limit, not on one price), and
traded by the A-share TopK-Dropout backtest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from stockpred.config import Config
from stockpred.dataset import FactorPanel
from stockpred.evaluation import backtest, signal

LABELS = ("ret_1", "ret_2")


@dataclass(frozen=True)
class CrossSectionWalkForward:
    test_start: str
    test_end: str
    retrain_every: int
    train_days: int
    validation_days: int

    @classmethod
    def from_config(cls, config: Config) -> "CrossSectionWalkForward":
        cs, ev = config.cross_section, config.evaluation
        return cls(ev.test_start, ev.test_end, cs.retrain_every, cs.train_days,
                   cs.validation_days)


def walk_forward_panel(prototype, panel: FactorPanel, protocol: CrossSectionWalkForward,
                       progress: bool = True) -> pd.DataFrame:
    """trade_date, ts_code, score (known at the close of trade_date) and refit_before for
    every test row of ``panel``."""
    dates = panel.dates
    calendar = np.unique(dates)
    test_days = calendar[(calendar >= protocol.test_start) & (calendar <= protocol.test_end)]
    blocks = [test_days[i:i + protocol.retrain_every]
              for i in range(0, len(test_days), protocol.retrain_every)]
    frames = []
    for block in tqdm(blocks, desc=f"{prototype.name:12s}", unit="refit", leave=False,
                      disable=None if progress else True):
        first, last = block[0], block[-1]
        model = prototype.clone().fit(*training_rows(panel, protocol, first,
                                                     prototype.uses_validation))
        in_block = (dates >= first) & (dates <= last)
        scored = panel.rows(in_block)
        frames.append(scored.keys.assign(score=model.predict(scored), refit_before=first))
    if not frames:
        return pd.DataFrame(columns=["trade_date", "ts_code", "score", "refit_before"])
    return pd.concat(frames, ignore_index=True)


def training_rows(panel: FactorPanel, protocol: CrossSectionWalkForward, first: str,
                  validation: bool) -> tuple[FactorPanel, FactorPanel | None]:
    """What a refit before the block starting on ``first`` learns from: the rows of the
    trailing ``train_days`` whose label is known at ``first``'s close, each day's labels
    ranked among those known ones (``FactorPanel.known_at``); with ``validation`` the last
    ``validation_days`` of them apart (else None)."""
    dates = panel.dates
    calendar = np.unique(dates)
    position = int(np.searchsorted(calendar, first))
    window = (dates >= calendar[max(0, position - protocol.train_days)]) & (dates < first)
    if not validation:
        return panel.known_at(first, window), None
    held = calendar[max(0, position - protocol.validation_days)]
    return (panel.known_at(first, window & (dates < held)),
            panel.known_at(first, window & (dates >= held)))


def score_rows(model: str, scores: pd.DataFrame, panel: FactorPanel, bars: pd.DataFrame,
               execution: str) -> list[dict]:
    """One leaderboard row per label and row set (all, tradeable): IC, Rank IC, ICIR,
    Rank ICIR with Newey-West t, coverage, quantile spread, top-quantile turnover."""
    frame = panel.keys.assign(**{label: panel.returns[label].to_numpy() for label in LABELS})
    frame = frame.merge(scores[["trade_date", "ts_code", "score"]],
                        on=["trade_date", "ts_code"], how="inner")
    frame = signal.flag_untradeable(frame, bars, execution)
    rows = []
    for label in LABELS:
        for subset, exclude in (("all", False), ("tradeable", True)):
            summary = signal.signal_summary(frame, label, exclude_untradeable=exclude)
            rows.append({"model": model, "label": label, "rows": subset, **summary})
    return rows


def backtest_row(model: str, scores: pd.DataFrame, bars: pd.DataFrame,
                 settings: backtest.BacktestSettings, benchmarks: dict[str, pd.Series],
                 namechange: pd.DataFrame | None = None,
                 stock_basic: pd.DataFrame | None = None) -> tuple[dict, pd.DataFrame]:
    """The backtest summary of one model's scores (with the model's name) and its daily
    frame (a trade_date column and the model's name); ``namechange`` and ``stock_basic``
    as ``backtest.run_backtest`` takes them."""
    result = backtest.run_backtest(scores[["trade_date", "ts_code", "score"]], bars, settings,
                                   benchmarks, namechange, stock_basic)
    return {"model": model, **result.summary}, result.daily.reset_index().assign(model=model)
