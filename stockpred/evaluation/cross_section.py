"""The leaderboard rows of cross-sectional models (their walk-forward is the one in
stockpred.evaluation.walkforward, over a FactorPanel).

A model is scored on both labels (ret_1: close T -> T+1; ret_2: close T+1 -> T+2, what
trading at T+1's close earns; at horizon h close T -> T+h and T+1 -> T+1+h), over all rows
and over the tradeable rows only (rows whose stock could be entered the next day: not
suspended, at no limit, not on one price), and traded by the A-share TopK-Dropout
backtest. Beside zero, each model's daily Rank IC is compared with the reversal's, the
naive score A-shares are known for (minus last_return: yesterday's losers rise), day by day.
"""

from __future__ import annotations

import pandas as pd

from stockpred.dataset import FactorPanel
from stockpred.evaluation import backtest, signal
from stockpred.evaluation.metrics import loss_differential_test

LABELS = ("ret_1", "ret_2")
REFERENCE = "reference"  # the column of the baseline's scores, paired row by row


def daily_versus_reversal(frame: pd.DataFrame, label: str,
                          exclude_untradeable: bool) -> pd.DataFrame:
    """Per day (indexed by trade_date), ``difference``: the model's Rank IC less the
    reversal's (minus ``REFERENCE``, last_return's score), both on the rows that both
    score; a day counts as ``signal.daily_ic`` counts it, for both."""
    frame = frame[frame["score"].notna() & frame[REFERENCE].notna()]
    model = signal.daily_ic(frame, label, exclude_untradeable=exclude_untradeable)
    reversal = signal.daily_ic(frame.assign(score=-frame[REFERENCE]), label,
                               exclude_untradeable=exclude_untradeable)
    return (model["rank_ic"] - reversal["rank_ic"]).dropna().to_frame("difference")


def versus_reversal(frame: pd.DataFrame, label: str, horizon: int,
                    exclude_untradeable: bool) -> dict[str, float]:
    """Of ``daily_versus_reversal``: the mean, the Newey-West t and two-sided p of the
    mean (lags as ``score_rows``', from ``loss_differential_test``) and the 90% interval of
    the mean from the month-block bootstrap behind the Rank IC's interval. Positive: the
    model ranks better than the reversal. A Rank IC above zero is no evidence of skill
    when the reversal alone earns it."""
    difference = daily_versus_reversal(frame, label, exclude_untradeable)
    test = loss_differential_test(difference.index, difference["difference"], horizon)
    low, high = signal.interval(signal.monthly_bootstrap_means(difference)["difference"])
    return {"rank_ic_vs_reversal": float(difference["difference"].mean()),
            "vs_reversal_t_nw": test["stat"], "vs_reversal_pvalue": test["pvalue"],
            "vs_reversal_lo90": low, "vs_reversal_hi90": high}


def score_rows(model: str, scores: pd.DataFrame, panel: FactorPanel, bars: pd.DataFrame,
               execution: str, horizon: int = 1,
               reference: pd.DataFrame | None = None) -> list[dict]:
    """One leaderboard row per label and row set (all, tradeable): IC, Rank IC, ICIR,
    Rank ICIR with Newey-West t, coverage, quantile spread, top-quantile turnover, and
    with ``reference`` (last_return's scores) the comparison with the reversal
    (``versus_reversal``). Labels of ``horizon`` h > 1 (the panel's) overlap h-1 days from
    one day to the next, so the Newey-West variances take at least h-1 lags."""
    keys = ["trade_date", "ts_code"]
    frame = panel.keys.assign(**{label: panel.returns[label].to_numpy() for label in LABELS})
    frame = frame.merge(scores[[*keys, "score"]], on=keys, how="inner")
    if reference is not None:
        frame = frame.merge(reference[[*keys, "score"]].rename(columns={"score": REFERENCE}),
                            on=keys, how="left")
    frame = signal.flag_untradeable(frame, bars, execution)
    lags = (None if horizon == 1 else
            max(signal.newey_west_lags(frame["trade_date"].nunique()), horizon - 1))
    rows = []
    for label in LABELS:
        for subset, exclude in (("all", False), ("tradeable", True)):
            summary = signal.signal_summary(frame, label, lags=lags,
                                            exclude_untradeable=exclude)
            if reference is not None:
                summary |= versus_reversal(frame, label, horizon, exclude)
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
