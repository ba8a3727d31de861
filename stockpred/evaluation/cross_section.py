"""The leaderboard rows of cross-sectional models (their walk-forward is the one in
stockpred.evaluation.walkforward, over a FactorPanel).

A model is scored on both labels (ret_1: close T -> T+1; ret_2: close T+1 -> T+2, what
trading at T+1's close earns; at horizon h close T -> T+h and T+1 -> T+1+h), over all rows
and over the tradeable rows only (rows whose stock could be entered the next day: not
suspended, at no limit, not on one price), and traded by the A-share TopK-Dropout
backtest.
"""

from __future__ import annotations


import pandas as pd

from stockpred.dataset import FactorPanel
from stockpred.evaluation import backtest, signal

LABELS = ("ret_1", "ret_2")


def score_rows(model: str, scores: pd.DataFrame, panel: FactorPanel, bars: pd.DataFrame,
               execution: str, horizon: int = 1) -> list[dict]:
    """One leaderboard row per label and row set (all, tradeable): IC, Rank IC, ICIR,
    Rank ICIR with Newey-West t, coverage, quantile spread, top-quantile turnover. Labels of
    ``horizon`` h > 1 (the panel's) overlap h-1 days from one day to the next, so the
    Newey-West variances take at least h-1 lags."""
    frame = panel.keys.assign(**{label: panel.returns[label].to_numpy() for label in LABELS})
    frame = frame.merge(scores[["trade_date", "ts_code", "score"]],
                        on=["trade_date", "ts_code"], how="inner")
    frame = signal.flag_untradeable(frame, bars, execution)
    lags = (None if horizon == 1 else
            max(signal.newey_west_lags(frame["trade_date"].nunique()), horizon - 1))
    rows = []
    for label in LABELS:
        for subset, exclude in (("all", False), ("tradeable", True)):
            summary = signal.signal_summary(frame, label, lags=lags,
                                            exclude_untradeable=exclude)
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
