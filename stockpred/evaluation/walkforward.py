"""Walk-forward (rolling-origin) forecasts, and the one-fit forecasts of a test period.

The test period is cut into blocks of ``retrain_every`` trading days. Before each
block the model is refit on the trailing ``train_window_days`` rows that end the day
before the block, so the last training target (the close of the block's first day) is
known when the first forecast of the block is made: a gap of one day, the horizon.
Neural models stop early on the last ``validation_days`` of those rows. No row of the
block, or after it, reaches fitting or scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred import runtime
from stockpred.config import Config
from stockpred.dataset import Periods, StockData
from stockpred.models.base import Forecaster


@dataclass(frozen=True)
class WalkForward:
    """The walk-forward protocol, frozen: which days are forecast and how models are refit."""

    test_start: str
    test_end: str
    retrain_every: int
    train_window_days: int
    validation_days: int

    @classmethod
    def from_config(cls, config: Config) -> "WalkForward":
        ev = config.evaluation
        return cls(ev.test_start, ev.test_end, ev.retrain_every, ev.train_window_days,
                   ev.validation_days)


def tail(stock: StockData, rows: int) -> StockData:
    keep = np.zeros(len(stock), dtype=bool)
    keep[max(0, len(stock) - rows):] = True
    return stock.rows(keep)


def split_validation(train: list[StockData], days: int) -> tuple[list, list]:
    """The last ``days`` rows of each stock validate; the rows before them train."""
    fit, valid = [], []
    for stock in train:
        cut = np.arange(len(stock)) < len(stock) - days
        fit.append(stock.rows(cut))
        valid.append(stock.rows(~cut))
    return fit, valid


def walk_forward(prototype: Forecaster, stocks: list[StockData], protocol: WalkForward,
                 progress: bool = True) -> pd.DataFrame:
    """Forecasts of every test day of every stock, refitting a clone of ``prototype``
    before each block."""
    days = sorted({d for s in stocks for d in s.dates
                   if protocol.test_start <= d <= protocol.test_end})
    every = protocol.retrain_every
    blocks = [days[i:i + every] for i in range(0, len(days), every)]
    rows = []
    for block in runtime.progress(blocks, f"{prototype.name:12s}", "refit", progress):
        first, last = block[0], block[-1]
        # rows whose target is known when the block's first forecast is made (a suspension
        # can push a row's next traded close past the block)
        train = [tail(s.known_by(first), protocol.train_window_days) for s in stocks]
        train = [s for s in train if len(s)]
        valid = None
        if prototype.uses_validation:
            train, valid = split_validation(train, protocol.validation_days)
        model = prototype.clone().fit(train, valid)
        for stock in stocks:
            data = stock.upto(last)
            in_block = data.dates >= first
            if not in_block.any():
                continue
            predicted = model.predict(data)[in_block]
            rows.append(pd.DataFrame({
                "ts_code": stock.ts_code, "trade_date": data.dates[in_block],
                "close": data.close[in_block], "next_close": data.next_close[in_block],
                "predicted_close": predicted, "refit_before": first}))
    return pd.concat(rows, ignore_index=True)


def forecast_period(model: Forecaster, stocks: list[StockData],
                    periods: Periods) -> pd.DataFrame:
    """A fitted model's next-close forecasts for every day of the test period (one fit, no
    refit: what `stockpred train` reports)."""
    frames = []
    for stock in stocks:
        days = periods.in_test(stock.dates)
        frames.append(pd.DataFrame({
            "ts_code": stock.ts_code, "trade_date": stock.dates[days],
            "close": stock.close[days], "next_close": stock.next_close[days],
            "predicted_close": model.predict(stock)[days]}))
    return pd.concat(frames, ignore_index=True)
