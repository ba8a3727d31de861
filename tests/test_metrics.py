"""Metrics against hand computations, and the two tests against published reference values.

Diebold-Mariano (with the Harvey-Leybourne-Newbold correction, as R's forecast::dm.test):
- the two cases in edoannunziata/dieboldmariano tests/dieboldmarianotest.py
  (stat -2.4905, p 0.05513; and with absolute loss, h=3: stat 1.2109, one-sided p 0.877,
  i.e. R's alternative="less", two-sided 0.24596);
- sxooler/forecasting_stats README: numpy seed 42, e1, e2 = rand(100) each:
  stat -0.5522212106658311, p 0.5820413576449055.
Pesaran-Timmermann: the example series of vpekar's directional-accuracy post; no printed
output exists, so the reference is rugarch's DACTest formula and vpekar's own code, which
agree to 1e-16: S = 1.9683399718793397, one-sided p = 0.024514466850141192.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred.evaluation import metrics

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
