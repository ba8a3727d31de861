"""Walk-forward (rolling-origin) forecasts of either world, and the one-fit forecasts of a
test period.

The test days are cut into blocks of ``retrain_every`` trading days. Before each block a
clone of the model is refit on the trailing ``train_days`` of rows whose target is known
at the close of the block's first day: for a forecaster (a StockSet) the close its
horizon of h traded days after the row (StockData.ahead), a gap of h days; for a
cross-sectional model (a FactorPanel) its label (for ret_2 of horizon h the close 1+h
traded days after the row, FactorPanel.ahead), ranked among the labels known then. The
gap is the data's, so one rule serves every horizon. Models that stop early hold back the last ``validation_days`` of those rows. No row
of the block, or after it, reaches fitting or scaling. A forecaster then forecasts each
day of the block from what is known at its close; a cross-sectional model scores every
row of the block in one batched call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from stockpred import runtime
from stockpred.config import Config
from stockpred.dataset import FactorPanel, Periods, StockData, StockSet
from stockpred.models.base import Forecaster
from stockpred.models.names import CROSS_SECTION


@dataclass(frozen=True)
class WalkForward:
    """The walk-forward protocol of either world, frozen: which days are forecast and how
    models are refit."""

    test_start: str
    test_end: str
    retrain_every: int
    train_days: int
    validation_days: int

    @classmethod
    def from_config(cls, config: Config, world: str = Forecaster.world) -> "WalkForward":
        """The protocol of ``world`` (a model class's ``world`` trait): the test period is
        one for both, the refits each world's own section."""
        ev = config.evaluation
        if world == CROSS_SECTION:
            cs = config.cross_section
            return cls(ev.test_start, ev.test_end, cs.retrain_every, cs.train_days,
                       cs.validation_days)
        return cls(ev.test_start, ev.test_end, ev.retrain_every, ev.train_window_days,
                   ev.validation_days)


def walk_forward(prototype, data: StockSet | list[StockData] | FactorPanel,
                 protocol: WalkForward, progress: bool = True,
                 on_refit: Callable | None = None) -> pd.DataFrame:
    """The predictions of every test day of ``data`` (a list of stocks is a StockSet),
    refitting a clone of ``prototype`` before each block: StockSet.PREDICTIONS or
    FactorPanel.PREDICTIONS. ``on_refit(model, first, last)`` is called with each block's
    fitted model, for what else a caller scores with it (a generative model's sampled
    distributions) without fitting it twice."""
    data = StockSet(data) if isinstance(data, list) else data
    days = data.days_between(protocol.test_start, protocol.test_end)
    every = protocol.retrain_every
    blocks = [days[i:i + every] for i in range(0, len(days), every)]
    validation = protocol.validation_days if prototype.uses_validation else None
    frames = []
    for block in runtime.progress(blocks, f"{prototype.name:12s}", "refit", progress):
        first, last = block[0], block[-1]
        model = prototype.clone().fit(*data.training(first, protocol.train_days, validation))
        frames.append(data.predictions(model, first, last))
        if on_refit is not None:
            on_refit(model, first, last)
    frames = [f for f in frames if f is not None]
    return (pd.concat(frames, ignore_index=True) if frames else
            pd.DataFrame(columns=type(data).PREDICTIONS))


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
