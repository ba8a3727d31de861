"""Re-basing forward-adjusted prices moves no model input and no forecast return.

tushare's qfq prices are re-based at every dividend: the series fetched on day T is the
later one times a constant per stock, rounded to 4 decimals. The leak test of
tests/test_features.py cuts the data at T but keeps the later fetch's basis; here the
sample's qfq bars are re-based at the cut as a fetch on day T would have seen them, the
features rebuilt, and every model input and every forecaster's forecast return of the
days up to T compared with those built from the shipped bars.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli
from stockpred.config import Config, quick_config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore
from stockpred.dataset import load_stocks
from stockpred.layout import resolve_paths
from stockpred.models import names
from stockpred.models.registry import prototype

# Bank of China: the sample's cheapest qfq prices (1.34 CNY at the least), where the
# vendor's rounding weighs most
STOCK = "601988.SH"
CUT = "20160630"
FACTOR = 1 / 0.8828  # a dividend after T: the earlier fetch's prices are higher by this
PRICES = ["open", "high", "low", "close", "pre_close", "change"]
CONFIG = quick_config(Config())
# Rounding moves each price by at most half a step, 5e-5 CNY: 3.7e-5 of this stock's
# smallest price. Ratios of prices move by about that; oscillators measured on ranges of
# a few percent (KDJ, W%R, CCI, DMI) by up to 1.5% of their spread. A price level moves
# by FACTOR - 1 = 13% of itself.
INPUT_TOLERANCE_SDS = 0.05
# What that leaves of a forecast return: 2 basis points, a fiftieth of a typical day's move.
# A tree flips a split on the days an input lies within the rounding of its threshold
# (xgboost: 2% of the days, by up to a leaf), so 95% of the days must be within it.
RETURN_TOLERANCE = 2e-4
WITHIN_SHARE = 0.95
# A refit on re-based bars learns from inputs moved by the rounding: greedy trees then
# pick some other near-equal splits (xgboost: 8% of its forecasts' spread, the most).
REFIT_RMS_OF_SPREAD = 0.10
# fusion+dqn picks one of five weights per block: where two weights' Q-values nearly tie,
# the rounding's small moves of its LSTM's errors flip the choice (about 21% of the spread)
REFIT_RMS_OF_SPREAD_OF = {"fusion+dqn": 0.30}
# Fusion's own code (the blend, alpha on the validation rows) is the same whatever its pair,
# and lstm and wgan are checked on their own: paired with drift it costs no WGAN fits.
SETTINGS = {name: {"components": ["lstm", "drift"]}
            for name in ("fusion", "fusion+equal", "fusion+dqn")}


def build(folder, factor: float):
    """The sample's bars of STOCK up to CUT, prices times ``factor`` rounded to 4 decimals
    as the vendor does, and their features; returns (stock, model features)."""
    assert run_cli("fetch", "--source", "sample", "--ts-code", STOCK, "--data-dir",
                   str(folder), "--start", "20120101", "--end", CUT)[0] == 0
    store = RawStore(folder / "raw")
    bars = store.read("qfq_daily", subjects=[STOCK])
    bars[PRICES] = (bars[PRICES] * factor).round(4)
    store.upsert(CATALOGUE["qfq_daily"], bars)
    code, _, err = run_cli("features", "--data-dir", str(folder))
    assert code == 0, err
    stocks, features = load_stocks(CONFIG, resolve_paths(CONFIG, folder), [STOCK])
    return stocks[0], features


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return build(tmp_path_factory.mktemp("shipped"), 1.0)


@pytest.fixture(scope="module")
def rebased(tmp_path_factory):
    return build(tmp_path_factory.mktemp("rebased"), FACTOR)


def test_every_model_input_is_the_same_after_rebasing(shipped, rebased):
    (before, features), (after, features_after) = shipped, rebased
    assert features == features_after
    np.testing.assert_array_equal(before.dates, after.dates)
    np.testing.assert_allclose(after.close / before.close, FACTOR, rtol=1e-4)  # it re-based
    for name in features:
        x, y = before.features[name].to_numpy(), after.features[name].to_numpy()
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=name)
        spread = np.nanstd(x) if np.isfinite(x).any() else 0.0
        np.testing.assert_allclose(y, x, rtol=0, atol=INPUT_TOLERANCE_SDS * spread + 1e-12,
                                   err_msg=f"{name} moved with the re-basing")


def _returns(predicted: np.ndarray, stock) -> np.ndarray:
    return predicted / stock.close - 1


def _share_within(got: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    known = ~np.isnan(expected)
    return float(np.mean(np.abs(got[known] - expected[known]) <= tolerance))


# wgan with context channels this data does not carry (minute codes, news), each free of
# any price (minute bars over the previous close, text): wgan's row tests their prices
CONTEXT_ONLY = {"wgan+minutes", "wgan+news"}


@pytest.mark.parametrize("name", [n for n in names.names_in(names.STOCK)
                                  if n not in CONTEXT_ONLY])
def test_forecast_returns_are_the_same_after_rebasing(name, shipped, rebased):
    """A model fit on the shipped bars forecasts the same returns from re-based ones (a
    saved model meets a later fetch), its price forecasts scaled by the factor; one fit
    on the re-based bars forecasts about the same returns."""
    (before, _), (after, _) = shipped, rebased

    def fitted(stock):
        train = stock.rows(stock.dates < "20150101")
        valid = stock.rows(stock.dates >= "20150101")
        model = prototype(CONFIG, name, SETTINGS.get(name))
        return model.fit([train], [valid] if model.uses_validation else None)

    model = fitted(before)
    expected = _returns(model.predict(before), before)
    assert np.isfinite(expected).sum() > 500
    predicted = model.predict(after)
    assert _share_within(_returns(predicted, after), expected, RETURN_TOLERANCE) >= WITHIN_SHARE
    # the price forecast scales by the factor (to the rounding of the close, 1e-4 here)
    unscaled = predicted / FACTOR / before.close - 1
    assert _share_within(unscaled, expected, RETURN_TOLERANCE + 1e-4) >= WITHIN_SHARE
    refit = _returns(fitted(after).predict(after), after)
    _share_within(refit, expected, np.inf)  # the same days forecast
    rms = np.sqrt(np.nanmean((refit - expected) ** 2))
    allowed = REFIT_RMS_OF_SPREAD_OF.get(name, REFIT_RMS_OF_SPREAD)
    assert rms <= allowed * np.nanstd(expected) + 1e-6  # drift: no spread
