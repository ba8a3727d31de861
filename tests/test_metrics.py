"""Metrics against hand computations, and the two tests against published reference values.

Diebold-Mariano (with the Harvey-Leybourne-Newbold correction, as R's forecast::dm.test):
- the two cases in edoannunziata/dieboldmariano tests/dieboldmarianotest.py
  (stat -2.4905, p 0.05513; and with absolute loss, h=3: stat 1.2109, one-sided p 0.877,
  i.e. R's alternative="less", two-sided 0.24596);
- sxooler/forecasting_stats README: numpy seed 42, e1, e2 = rand(100) each:
  stat -0.5522212106658311, p 0.5820413576449055.
Pesaran-Timmermann: the example series of vpekar's directional-accuracy post; no printed
output exists, so the reference is rugarch's DACTest formula and vpekar's own code, which
agree to 1e-16: S = 1.9683399718793397, one-sided p = 0.024514466850141192. With zero
moves, the textbook formula from the 2x2 table of signs, written out here.
The by-day Diebold-Mariano against statsmodels' HAC OLS on a constant, and by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.api import OLS

from stockpred.evaluation import metrics, scoring

DM_CASE_2_P1 = [0.3675225224615024, 0.5450608127223211, 0.22044990720021074, 0.8688743471040006,
                0.6072512228948467, 0.8582283746501538, 0.41662295816718187, 0.3812100211114714,
                0.7185133356116706, 0.30827323290318875, 0.4297093624074402, 0.8615974488577858,
                0.7240514514808826, 0.3450839595261038, 0.19675301374013598]
DM_CASE_2_P2 = [0.12794132529988733, 0.3679643204341153, 0.768715420996091, 0.09972248964114683,
                0.27197653636654284, 0.28797629010039505, 0.9160213458582482, 0.6112628048698798,
                0.5452873235576241, 0.06785907231746158, 0.6072666485541124, 0.6241575753989782,
                0.39998026828867217, 0.19895665605941748, 0.8094941215215619]


def test_diebold_mariano_matches_published_values():
    stat, p = metrics.diebold_mariano([0] * 6, [0, 1, 2, 3, 4, 5], [0, 2, 3, 3, 5, 6])
    assert stat == pytest.approx(-2.4905, abs=5e-5) and p == pytest.approx(0.05513, abs=5e-6)
    stat, p = metrics.diebold_mariano([0] * 15, DM_CASE_2_P1, DM_CASE_2_P2, horizon=3, power=1)
    assert stat == pytest.approx(1.2109, abs=5e-5)
    assert p == pytest.approx(0.24596250986022242, rel=1e-9)  # = 2 x (1 - 0.877...)
    rng = np.random.RandomState(42)
    e1, e2 = rng.rand(100), rng.rand(100)
    stat, p = metrics.diebold_mariano(np.zeros(100), -e1, -e2)
    assert stat == pytest.approx(-0.5522212106658311, rel=1e-12)
    assert p == pytest.approx(0.5820413576449055, rel=1e-12)


def test_pesaran_timmermann_matches_the_reference_formula():
    actual = [23, -2, 56, 51, 4, -45, -12, -24, -51, 78, -6, -7, -39, 31, 35]
    forecast = [14, 3, 45, 23, -5, -56, 4, -11, -34, 29, 3, -11, -12, 24, 3]
    stat, p = metrics.pesaran_timmermann(actual, forecast)
    assert stat == pytest.approx(1.9683399718793397, rel=1e-12)
    assert p == pytest.approx(0.024514466850141192, rel=1e-10)
    # a forecast that never calls a direction carries no information: no test
    assert np.isnan(metrics.pesaran_timmermann(actual, np.zeros(15))[0])
    assert np.isnan(metrics.pesaran_timmermann(actual, np.ones(15))[1])  # always "up"


def textbook_pt(actual, forecast) -> float:
    """Pesaran & Timmermann (1992), eq. 6-8, from the 2x2 table of up/down counts."""
    up_up = sum(a > 0 and f > 0 for a, f in zip(actual, forecast))
    down_down = sum(a <= 0 and f <= 0 for a, f in zip(actual, forecast))
    n = len(actual)
    p_hat = (up_up + down_down) / n
    p_y = sum(a > 0 for a in actual) / n
    p_x = sum(f > 0 for f in forecast) / n
    p_star = p_y * p_x + (1 - p_y) * (1 - p_x)
    var_p_hat = p_star * (1 - p_star) / n
    var_p_star = ((2 * p_y - 1) ** 2 * p_x * (1 - p_x) / n
                  + (2 * p_x - 1) ** 2 * p_y * (1 - p_y) / n
                  + 4 * p_y * p_x * (1 - p_y) * (1 - p_x) / n ** 2)
    return (p_hat - p_star) / math.sqrt(var_p_hat - var_p_star)


def test_pesaran_timmermann_leaves_zero_moves_out():
    actual = [23, -2, 0, 56, 51, 4, -45, 0, -12, -24, -51, 78, -6, 0, -7, -39, 31, 35, 5]
    forecast = [14, 3, -8, 45, 23, -5, -56, 7, 4, -11, -34, 29, 3, -2, -11, -12, 24, 3, 0]
    moving = [(a, f) for a, f in zip(actual, forecast) if a != 0 and f != 0]
    stat, p = metrics.pesaran_timmermann(actual, forecast)
    assert stat == pytest.approx(textbook_pt(*zip(*moving)), rel=1e-12)
    assert p == pytest.approx(stats.norm.sf(stat), rel=1e-12)
    assert len(metrics.moves(actual, forecast)[0]) == len(moving) == 15
    # counting the flat days as "down" instead gives another verdict
    assert abs(textbook_pt(actual, forecast) - stat) > 0.1


def test_diebold_mariano_by_day_matches_statsmodels_hac():
    rng = np.random.RandomState(7)
    days, stocks = 60, 3
    common = rng.normal(0, 0.02, days)  # a market move every stock shares
    actual = np.concatenate([common + rng.normal(0, 0.01, days) for _ in range(stocks)])
    model = actual + rng.normal(0, 0.012, days * stocks)
    naive = np.zeros(days * stocks)
    dates = np.tile([f"d{t:03d}" for t in range(days)], stocks)
    order = rng.permutation(days * stocks)  # rows in no particular order
    daily = ((model - actual) ** 2 - actual ** 2).reshape(stocks, days).mean(axis=0)
    for horizon, lags in ((1, 3), (6, 5)):  # floor(4 * 0.6^(2/9)) = 3; horizon - 1 = 5
        out = metrics.diebold_mariano_by_day(dates[order], actual[order], model[order],
                                             naive[order], horizon=horizon)
        fit = OLS(daily, np.ones(days)).fit(
            cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False}, use_t=True)
        assert (out["days"], out["lags"]) == (days, lags)
        assert out["stat"] == pytest.approx(fit.tvalues[0], rel=1e-10)
        assert out["pvalue"] == pytest.approx(fit.pvalues[0], rel=1e-10)


def test_diebold_mariano_by_day_by_hand():
    # absolute loss against a forecast that is always 1 off: d = |1 + x| - 1 = x
    rows = [("d1", 0.1), ("d1", 0.1), ("d1", 0.1), ("d2", 0.1), ("d2", 0.3), ("d2", 0.2),
            ("d3", 0.3), ("d3", 0.3), ("d3", 0.3), ("d4", 0.4), ("d4", 0.4), ("d4", 0.4),
            ("d4", np.nan)]
    days, x = [r[0] for r in rows][::-1], np.array([r[1] for r in rows])[::-1]
    out = metrics.diebold_mariano_by_day(days, np.zeros(len(x)), 1 + x, np.ones(len(x)),
                                         power=1)
    # daily d = .1 .2 .3 .4: gamma0 = .0125, gamma1 = .003125, L = floor(4 * .04^(2/9)) = 1,
    # var = (.0125 + 2 * .5 * .003125) / 4 = .0625^2, so DM = .25 / .0625
    assert (out["days"], out["lags"]) == (4, 1)
    assert out["stat"] == pytest.approx(4.0, rel=1e-12)
    assert out["pvalue"] == pytest.approx(2 * stats.t.sf(4.0, df=3), rel=1e-12)
    # the same forecasts taken as 12 independent rows look far stronger
    pooled, _ = metrics.diebold_mariano(np.zeros(len(x)), 1 + x, np.ones(len(x)), power=1)
    assert pooled > 6


def test_pooled_rows_are_judged_by_day():
    rng = np.random.RandomState(0)
    r = rng.normal(0, 0.02, 12)
    f = 0.5 * r + rng.normal(0, 0.01, 12)
    one = pd.DataFrame({"trade_date": [f"201701{t + 1:02d}" for t in range(12)],
                        "close": 10.0, "next_close": 10 * (1 + r),
                        "predicted_close": 10 * (1 + f)})
    # three stocks that move as one carry no more evidence than one of them
    three = pd.concat([one.assign(ts_code=c) for c in "ABC"], ignore_index=True)
    rows = {name: scoring.score(frame, frame.assign(predicted_close=frame["close"]))
            for name, frame in (("one", one.assign(ts_code="A")), ("three", three))}
    assert rows["three"]["dm_days"] == rows["one"]["dm_days"] == 12
    assert rows["three"]["dm_daily_nw_stat"] == pytest.approx(rows["one"]["dm_daily_nw_stat"])
    assert rows["three"]["dm_pvalue_vs_persistence"] < 0.05 < rows["three"]["dm_daily_nw_pvalue"]
    assert not rows["three"]["beats_persistence"]
    assert rows["three"]["pt_moves"] == 36
    board = scoring.leaderboard_markdown([{"model": "m", **rows["three"]}], "# board")
    assert "| dm_daily_nw_stat | dm_daily_nw_pvalue | dm_days | dm_nw_lags |" in board
    assert "each of the 36 forecasts as independent" in board
    assert "dm_days = 12 observations" in board and "dm_nw_lags = 2 lags" in board


def test_errors_and_direction_by_hand():
    actual = np.array([10.0, 11.0, 12.0, np.nan, 9.0])
    predicted = np.array([10.5, 10.0, 12.0, 5.0, 10.0])
    assert metrics.rmse(actual, predicted) == pytest.approx(np.sqrt((0.25 + 1 + 0 + 1) / 4))
    assert metrics.mae(actual, predicted) == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert metrics.mape(actual, predicted) == pytest.approx(
        100 * (0.5 / 10 + 1 / 11 + 0 + 1 / 9) / 4)
    # moves: actual +1, -1, 0 (flat, excluded), +2, +1; predicted +1, +1, -1, -2, 0 (none)
    assert metrics.directional_accuracy([1, -1, 0, 2, 1], [1, 1, -1, -2, 0]) == pytest.approx(1 / 3)
    assert np.isnan(metrics.directional_accuracy([1, -1], [0, 0]))


def test_information_coefficients_by_hand():
    days = []
    for day, (pred, real) in enumerate([([1, 2, 3, 4], [1, 3, 2, 4]),
                                        ([4, 3, 2, 1], [1, 2, 3, 5])]):
        days += [(f"2017010{day}", p, r) for p, r in zip(pred, real)]
    frame = pd.DataFrame(days, columns=["trade_date", "predicted_return", "actual_return"])
    out = metrics.information_coefficients(frame)
    ic1 = np.corrcoef([1, 2, 3, 4], [1, 3, 2, 4])[0, 1]
    ic2 = np.corrcoef([4, 3, 2, 1], [1, 2, 3, 5])[0, 1]
    assert out["ic"] == pytest.approx((ic1 + ic2) / 2)
    assert out["rank_ic"] == pytest.approx((0.8 + -1.0) / 2)
    assert out["icir"] == pytest.approx(((ic1 + ic2) / 2) / np.std([ic1, ic2], ddof=1))
