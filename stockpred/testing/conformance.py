"""The contract every registered forecaster must keep, in the manner of scikit-learn's
``check_estimator``: run ``check_forecaster`` on a model prototype and real stocks.

- ``fit`` returns the model itself; ``clone`` gives an unfitted copy with equal settings;
- ``predict`` gives one value per row, NaN only in the warm-up at the start (the rows
  before a window is complete), finite and near the close after it;
- ``save`` then ``load`` gives a model that predicts the same values;
- no look-ahead: scrambling every row from a cut day on leaves every forecast made
  before the cut unchanged in walk-forward, also when a suspension pushes a row's
  target past the cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.dataset import StockData
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.models.base import Forecaster


def _fitted_state(model: Forecaster) -> list[str]:
    return [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]


def check_fit_and_clone(prototype: Forecaster, train: list[StockData],
                        valid: list[StockData]) -> Forecaster:
    copy = prototype.clone()
    assert copy is not prototype and copy.settings == prototype.settings
    assert copy.seed == prototype.seed and not _fitted_state(copy), "clone must be unfitted"
    fitted = copy.fit(train, valid if prototype.uses_validation else None)
    assert fitted is copy, "fit must return self"
    assert not _fitted_state(prototype), "fitting a clone must leave the prototype unfitted"
    return fitted


def check_predictions(model: Forecaster, stock: StockData, scored_from: str) -> np.ndarray:
    predicted = model.predict(stock)
    assert predicted.shape == (len(stock),), "one forecast per row"
    missing = np.flatnonzero(np.isnan(predicted))
    assert np.array_equal(missing, np.arange(len(missing))), "NaN only in the warm-up"
    late = stock.dates >= scored_from
    assert np.isfinite(predicted[late]).all()
    # a next-day forecast stays near today's close (within 20%)
    assert np.all(np.abs(predicted[late] / stock.close[late] - 1) < 0.2)
    return predicted


def check_save_load(model: Forecaster, stock: StockData, folder: Path) -> None:
    predicted = model.predict(stock)
    model.save(folder)
    again = Forecaster.load(folder)
    assert type(again) is type(model) and again.settings == model.settings
    np.testing.assert_allclose(again.predict(stock), predicted, rtol=1e-6, equal_nan=True)


def suspended(stock: StockData, first: str, last: str) -> StockData:
    """The stock as if it had not traded from ``first`` to ``last`` (its rows removed)."""
    keep = (stock.dates < first) | (stock.dates > last)
    return StockData(stock.ts_code, stock.dates[keep], stock.close[keep],
                     stock.features.loc[keep].reset_index(drop=True),
                     np.append(stock.close[keep][1:], np.nan))


def scrambled_after(stock: StockData, cut: str) -> StockData:
    """Every row from ``cut`` on replaced by reversed, rescaled rows: a different future."""
    later = stock.dates >= cut
    features = stock.features.copy()
    features.loc[later] = features.loc[later].to_numpy()[::-1] * 1.7
    close = np.where(later, stock.close[::-1] * 1.3, stock.close)
    return StockData(stock.ts_code, stock.dates, close, features, np.append(close[1:], np.nan))


def check_no_look_ahead(prototype: Forecaster, stocks: list[StockData], protocol: WalkForward,
                        cut: str) -> None:
    clean = walk_forward(prototype, stocks, protocol, progress=False)
    dirty = walk_forward(prototype, [scrambled_after(s, cut) for s in stocks], protocol,
                         progress=False)
    before = clean["trade_date"] < cut
    assert before.sum() > 20, "the check needs forecasts before the cut"
    pd.testing.assert_series_equal(clean.loc[before, "predicted_close"],
                                   dirty.loc[before, "predicted_close"])
    # the check can fail: forecasts after the cut do see the scrambled rows
    assert not clean.loc[~before, "predicted_close"].equals(
        dirty.loc[~before, "predicted_close"])
