"""The contract every registered model of every world must keep, in the manner of
scikit-learn's ``check_estimator``: run ``check_model`` on a model prototype and real data
(stocks for a forecaster, a FactorPanel for a cross-sectional model, an encoder's own
samples for an encoder), and ``check_no_look_ahead`` on a dataset and its twin scrambled
from a cut day on.

- ``fit`` returns the model itself; ``clone`` gives an unfitted copy with equal settings;
- ``predict`` gives one value per row: a forecaster's NaN only in the warm-up at the start
  (the rows before a window is complete), finite and near the close after it; a
  cross-sectional model's finite everywhere; an encoder's, one code per sample;
- ``save`` then ``load`` gives a model that predicts the same values;
- no look-ahead: walk-forward on the scrambled twin leaves every prediction made before
  the cut unchanged (also when a suspension pushes a row's target past the cut) and
  changes later ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.dataset import DailyNews, FactorPanel, StockData
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.models.base import Model
from stockpred.models.names import CROSS_SECTION, ENCODER


def _fitted_state(model: Model) -> list[str]:
    return [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]


def check_fit_and_clone(prototype: Model, train, valid) -> Model:
    copy = prototype.clone()
    assert copy is not prototype and copy.settings == prototype.settings
    assert copy.seed == prototype.seed and not _fitted_state(copy), "clone must be unfitted"
    fitted = copy.fit(train, valid if prototype.uses_validation else None)
    assert fitted is copy, "fit must return self"
    assert not _fitted_state(prototype), "fitting a clone must leave the prototype unfitted"
    return fitted


def check_predictions(model: Model, data: StockData | FactorPanel,
                      scored_from: str) -> np.ndarray:
    predicted = model.predict(data)
    if model.world == ENCODER:
        assert len(predicted) == len(data), "one code per sample"
        assert np.isfinite(predicted).any()
        return predicted
    assert predicted.shape == (len(data),), "one prediction per row"
    if model.world == CROSS_SECTION:
        assert np.isfinite(predicted).all(), "a score for every row"
        return predicted
    stock = data
    missing = np.flatnonzero(np.isnan(predicted))
    assert np.array_equal(missing, np.arange(len(missing))), "NaN only in the warm-up"
    late = stock.dates >= scored_from
    assert np.isfinite(predicted[late]).all()
    # a next-day forecast stays near today's close (within 20%)
    assert np.all(np.abs(predicted[late] / stock.close[late] - 1) < 0.2)
    return predicted


def check_save_load(model: Model, data: StockData | FactorPanel, folder: Path) -> None:
    predicted = model.predict(data)
    model.save(folder)
    again = type(model).load(folder)
    assert type(again) is type(model) and again.settings == model.settings
    np.testing.assert_allclose(again.predict(data), predicted, rtol=1e-6, equal_nan=True)


def check_model(prototype: Model, train, valid, data: StockData | FactorPanel,
                scored_from: str, folder: Path) -> Model:
    """The whole contract but look-ahead: fit and clone, predictions on ``data`` (finite
    from ``scored_from`` on), and the save/load round trip into ``folder``."""
    model = check_fit_and_clone(prototype, train, valid)
    check_predictions(model, data, scored_from)
    check_save_load(model, data, folder)
    return model


def suspended(stock: StockData, first: str, last: str) -> StockData:
    """The stock as if it had not traded from ``first`` to ``last`` (its rows removed)."""
    return stock.rows((stock.dates < first) | (stock.dates > last)).ahead(stock.horizon)


def scrambled_after(stock: StockData, cut: str) -> StockData:
    """Every row from ``cut`` on (features, close and news) replaced by reversed, rescaled
    rows: a different future. Each of those rows has news, so that a model reading a later
    row's news changes its forecast of the day before the cut."""
    later = stock.dates >= cut
    features = stock.features.copy()
    features.loc[later] = features.loc[later].to_numpy()[::-1] * 1.7
    close = np.where(later, stock.close[::-1] * 1.3, stock.close)
    news = stock.news
    if news is not None:
        vectors, present = news.vectors.copy(), news.present.copy()
        vectors[later], present[later] = vectors[later][::-1] * 1.7 + 0.1, True
        news = DailyNews(vectors, present, news.basis)
    return replace(stock, close=close, features=features, news=news).ahead(stock.horizon)


def check_no_look_ahead(prototype: Model, clean, scrambled, protocol: WalkForward,
                        cut: str) -> None:
    """Walk-forward on ``scrambled`` (``clean`` with every row, or every bar, from ``cut`` on
    changed) predicts every day before ``cut`` as on ``clean``, and later days otherwise.
    A cross-sectional score must be bit-identical; a forecast equal to float rounding."""
    column = "score" if prototype.world == CROSS_SECTION else "predicted_close"
    before_cut = walk_forward(prototype, clean, protocol, progress=False)
    after_cut = walk_forward(prototype, scrambled, protocol, progress=False)
    pd.testing.assert_frame_equal(before_cut[["trade_date", "ts_code"]],
                                  after_cut[["trade_date", "ts_code"]])
    before = before_cut["trade_date"] < cut
    assert before.sum() > 20, "the check needs predictions before the cut"
    pd.testing.assert_series_equal(before_cut.loc[before, column], after_cut.loc[before, column],
                                   check_exact=prototype.world == CROSS_SECTION)
    # the check can fail: predictions after the cut do see the scrambled rows
    assert not before_cut.loc[~before, column].equals(after_cut.loc[~before, column])
