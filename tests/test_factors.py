"""The scale-free factor library and the cross-sectional step, on real bars only.

Two panels: the SSE 50 forward-adjusted bars shipped with the package (always present) and
30 stocks of the shared market data, 2016-2018 (skipped when ../shared is absent). The hand
computations below use Python's statistics module on lists of real rows and share nothing
with the vectorised code.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import percentileofscore, rankdata

from stockpred.config import IndicatorSettings
from stockpred.data.sample import read_sample
from stockpred.features.cross_section import (FORWARD_LABELS, MAD_TO_SIGMA, forward_labels,
                                              normalise_by_day)
from stockpred.features.factors import (FACTOR_NAMES, FACTORS, VOLUME_NORM_WINDOW,
                                        compute_factors, factor_panel)
from stockpred.features.indicators import technical

REPO = Path(__file__).resolve().parents[1]
MARKET = Path(os.environ.get("STOCKPRED_SHARED_DATA", REPO.parent / "shared" / "data")) / \
    "market" / "qfq_daily"
MARKET_YEARS = (2016, 2017, 2018)
PRICES = ("open", "high", "low", "close", "pre_close")
# a relative change below 1e-6 is float rounding; the absolute 1e-10 admits factors that are
# exactly 0 in decimal (close at the middle of the day's range, a typical price equal to its
# mean) and come out as +-1e-14 of float noise whose sign depends on the price scale; a real
# nonzero factor is never that small (one 0.0001 tick over a price of 300 is 3e-7)
RTOL, ATOL = 1e-6, 1e-10
DMI = ["DMI_PDI", "DMI_MDI", "DMI_ADX"]
# DMI's tie margin is in the vendor's 4-decimal steps (indicators.TIE_MARGIN): it holds under
# a re-base as the vendor makes one, times a constant and rounded to 4 decimals (below), but
# 4-decimal prices blown up 13-fold without rounding turn their rounding into moves
SCALE_FREE = [name for name in FACTOR_NAMES if name not in DMI]
REBASE = 1 / 0.8828  # a dividend's re-base, as in tests/test_rebasing.py
# the re-base moves DMI (0 to 100) by 0.35 at most on the sample; a tie taken as a move, by 10
DMI_REBASE_ATOL = 0.5
SUSPENDED = "600050.SH"  # in the sample, suspended from 2017-04-05 to 2017-08-18
KEYS = ["trade_date", "ts_code"]


def _sample() -> pd.DataFrame:
    bars = read_sample("qfq_daily")
    return bars[bars["trade_date"] >= "20150101"].reset_index(drop=True)


def _market() -> pd.DataFrame:
    files = [MARKET / f"{year}.parquet" for year in MARKET_YEARS]
    if not all(f.is_file() for f in files):
        pytest.skip(f"the shared market bars ({MARKET}) are not beside this checkout")
    codes = sorted(pd.read_parquet(files[0], columns=["ts_code"])["ts_code"].unique())
    chosen = codes[::len(codes) // 30][:30]
    frames = [pd.read_parquet(f, filters=[("ts_code", "in", chosen)]) for f in files]
    return pd.concat(frames, ignore_index=True)


PANELS = {"sample": _sample, "market": _market}


@pytest.fixture(scope="module", params=list(PANELS))
def panel(request):
    """(bars, their factors) for one real panel."""
    bars = PANELS[request.param]()
    return bars, compute_factors(bars)


@pytest.fixture(scope="module")
def sample_panel():
    bars = _sample()
    return bars, compute_factors(bars)


def _rows(bars: pd.DataFrame, code: str) -> pd.DataFrame:
    return bars[bars["ts_code"] == code].sort_values("trade_date").reset_index(drop=True)


def _suspension_cut(bars: pd.DataFrame) -> str:
    """A day the market traded while some stock, listed before and after it, did not."""
    days = np.sort(bars["trade_date"].unique())
    best = (0, None)
    for _, rows in bars.groupby("ts_code"):
        traded = np.sort(rows["trade_date"].to_numpy())
        inside = days[(days > traded[0]) & (days < traded[-1])]
        gap = np.setdiff1d(inside, traded)
        if len(gap) > best[0]:
            best = (len(gap), gap[len(gap) // 2])
    assert best[1] is not None, "no suspension in this panel"
    return str(best[1])


# -- the factor frame -----------------------------------------------------------------------

def test_factor_frame_shape(panel):
    bars, factors = panel
    assert len(FACTOR_NAMES) == len(set(FACTOR_NAMES)) == len(FACTORS)
    assert list(factors.columns) == KEYS + FACTOR_NAMES
    assert (factors[FACTOR_NAMES].dtypes == np.float32).all()
    ordered = bars.sort_values(["ts_code", "trade_date"]).reset_index(drop=True)
    assert factors["ts_code"].tolist() == ordered["ts_code"].tolist()
    assert factors["trade_date"].tolist() == ordered["trade_date"].tolist()
    assert all(factors[name].notna().any() for name in FACTOR_NAMES)
    assert not any(spec.name.startswith("VWAP") for spec in FACTORS)


def test_scale_invariance(panel):
    """One stock's prices times any constant, another's volume in shares: no factor but DMI
    moves."""
    bars, factors = panel
    codes = sorted(bars["ts_code"].unique())
    scaled = bars.copy()
    prices = [c for c in PRICES if c in bars.columns]
    for k, code in enumerate(codes):
        rows = scaled["ts_code"] == code
        if k % 3 == 0:
            scaled.loc[rows, prices] *= (0.37, 13.1, 1 / 3, 1000.7)[k // 3 % 4]
        if k % 2 == 0:
            scaled.loc[rows, "vol"] *= 100  # lots -> shares
    moved = compute_factors(scaled)
    a = factors[SCALE_FREE].to_numpy(np.float64)
    b = moved[SCALE_FREE].to_numpy(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = np.isnan(a) | (np.abs(a - b) <= RTOL * np.maximum(np.abs(a), np.abs(b)) + ATOL)
    broken = [SCALE_FREE[j] for j in np.flatnonzero(~ok.all(axis=0))]
    assert not broken, f"not scale-free: {broken}"


def test_dmi_survives_a_rebase(panel):
    """Every stock re-based as the vendor does at a dividend: DMI moves by the rounding only."""
    bars, factors = panel
    rebased = bars.copy()
    prices = [c for c in PRICES if c in bars.columns]
    rebased[prices] = (bars[prices] * REBASE).round(4)
    moved = compute_factors(rebased)
    np.testing.assert_allclose(moved[DMI].to_numpy(np.float64),
                               factors[DMI].to_numpy(np.float64), rtol=0, atol=DMI_REBASE_ATOL)


def test_no_look_ahead(panel):
    """Cut at several days, one inside a suspension: every factor up to the cut is identical."""
    bars, factors = panel
    days = np.sort(bars["trade_date"].unique())
    inside_gap = _suspension_cut(bars)
    for cut in (days[70], inside_gap, days[-40]):
        early = compute_factors(bars[bars["trade_date"] <= cut])
        expected = factors[factors["trade_date"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(early, expected, check_exact=True)


def test_dask_equals_in_process(sample_panel):
    from distributed import Client, LocalCluster

    bars, factors = sample_panel
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        distributed = factor_panel(bars, client=client, partitions=3)
        later = factor_panel(bars, client=client, partitions=3, since="20180615")
    pd.testing.assert_frame_equal(distributed, factors, check_exact=True)
    pd.testing.assert_frame_equal(factor_panel(bars), factors, check_exact=True)
    pd.testing.assert_frame_equal(
        later, factors[factors["trade_date"] > "20180615"].reset_index(drop=True),
        check_exact=True)


@pytest.mark.parametrize("since", ["20160104", "20180615", "20181228"])
def test_the_rows_after_a_day_are_those_of_the_whole_history(panel, since):
    """What incremental factors rest on: the windows read a bounded past, the recursive
    indicators the whole of it, and neither depends on where the computation starts."""
    bars, factors = panel
    pd.testing.assert_frame_equal(
        compute_factors(bars, since),
        factors[factors["trade_date"] > since].reset_index(drop=True), check_exact=True)


# -- against hand computations ---------------------------------------------------------------

def _hand_factors(rows: pd.DataFrame, i: int) -> dict[str, float]:
    o, h, low, c, v = (rows[k].tolist() for k in ("open", "high", "low", "close", "vol"))

    def last(x, n):
        return x[i - n + 1:i + 1]

    moves = [c[k] - c[k - 1] for k in range(i - 4, i + 1)]
    window10 = last(c, 10)
    return {
        "KMID": (c[i] - o[i]) / o[i],
        "KSFT": (2 * c[i] - h[i] - low[i]) / o[i],
        "ROC5": c[i - 5] / c[i],
        "MA5": sum(last(c, 5)) / 5 / c[i],
        "STD20": statistics.stdev(last(c, 20)) / c[i],
        "BETA5": statistics.linear_regression(range(5), last(c, 5)).slope / c[i],
        "RSQR10": statistics.correlation(range(10), window10) ** 2,
        "MAX10": max(last(h, 10)) / c[i],
        "QTLU5": statistics.quantiles(last(c, 5), n=5, method="inclusive")[3] / c[i],
        "QTLD20": statistics.quantiles(last(c, 20), n=5, method="inclusive")[0] / c[i],
        "RANK10": percentileofscore(window10, c[i], kind="rank") / 100,
        "RSV10": (c[i] - min(last(low, 10))) / (max(last(h, 10)) - min(last(low, 10))),
        "IMAX10": (last(h, 10).index(max(last(h, 10))) + 1) / 10,
        "IMIN10": (last(low, 10).index(min(last(low, 10))) + 1) / 10,
        "CNTP5": sum(m > 0 for m in moves) / 5,
        "SUMP5": sum(max(m, 0) for m in moves) / sum(abs(m) for m in moves),
        "CORR10": statistics.correlation(window10, [math.log(x) for x in last(v, 10)]),
        "VMA5": statistics.mean(last(v, 5)) / statistics.mean(last(v, VOLUME_NORM_WINDOW)),
    }


def test_factors_by_hand_across_a_suspension(sample_panel):
    bars, factors = sample_panel
    rows = _rows(bars, SUSPENDED)
    ours = factors[factors["ts_code"] == SUSPENDED].reset_index(drop=True)
    first_back = int(np.flatnonzero(rows["trade_date"] > "20170405")[0])
    # windows ending just after the gap reach back over it to the rows traded before
    for i in (first_back + 2, first_back + 30, len(rows) - 1):
        for name, expected in _hand_factors(rows, i).items():
            assert ours.loc[i, name] == pytest.approx(expected, rel=RTOL, abs=1e-9), \
                (name, rows.loc[i, "trade_date"])
    # the stock's first rows: a window needs all of its rows
    stock = _rows(read_sample("qfq_daily"), "601336.SH")  # listed on 2011-12-16
    early = compute_factors(stock)
    assert early["MA5"][:4].isna().all() and early["MA5"][4:].notna().all()
    assert early["ROC5"][:5].isna().all() and early["ROC5"][5:].notna().all()
    assert early["VMA5"][:VOLUME_NORM_WINDOW - 1].isna().all()
    assert early["VMA5"][VOLUME_NORM_WINDOW - 1:].notna().all()


def test_indicators_follow_the_charting_conventions(sample_panel):
    """KDJ ... TRIX equal indicators.technical() on the same bars."""
    bars, factors = sample_panel
    rows = _rows(bars, "600036.SH")
    ours = factors[factors["ts_code"] == "600036.SH"].reset_index(drop=True)
    theirs, _ = technical(rows, IndicatorSettings())
    same = {"KDJ_K": "kdj_k", "KDJ_D": "kdj_d", "KDJ_J": "kdj_j", "WR6": "wr6", "WR10": "wr10",
            "RSI6": "rsi6", "RSI12": "rsi12", "RSI24": "rsi24", "CR26": "cr26",
            "CCI14": "cci14", "CCI20": "cci20", "VR26": "vr26", "DMI_PDI": "dmi_pdi",
            "DMI_MDI": "dmi_mdi", "DMI_ADX": "dmi_adx", "TRIX": "trix"}
    for name, column in same.items():
        np.testing.assert_allclose(ours[name], theirs[column], rtol=RTOL, atol=1e-6,
                                   err_msg=name)


# -- the cross-sectional step ---------------------------------------------------------------

CHECKED = ["KMID", "MA20", "STD20", "CORR20", "VMA5", "RSI6", "IMAX10"]


def test_zscore_per_day(panel):
    _, factors = panel
    z = normalise_by_day(factors[KEYS + CHECKED])
    assert list(z.columns) == KEYS + CHECKED and (z[CHECKED].dtypes == np.float32).all()
    missing = factors[CHECKED].isna().to_numpy()
    assert (z[CHECKED].to_numpy()[missing] == 0).all()
    present = z[KEYS + CHECKED].mask(np.column_stack([np.zeros((len(z), 2), bool), missing]))
    by_day = present.groupby("trade_date")[CHECKED]
    counts = by_day.count()
    full = counts >= 5
    assert full.to_numpy().mean() > 0.8
    np.testing.assert_allclose(by_day.mean().to_numpy()[full.to_numpy()], 0, atol=1e-5)
    np.testing.assert_allclose(by_day.std().to_numpy()[full.to_numpy()], 1, rtol=1e-4)


def test_zscore_by_hand(panel):
    """One day's clip at 3 robust sigmas and z-score, from the day's values alone."""
    _, factors = panel
    day = np.sort(factors["trade_date"].unique())[-30]
    z = normalise_by_day(factors[KEYS + CHECKED])
    on_day = factors["trade_date"] == day
    for name in CHECKED:
        x = factors.loc[on_day, name].to_numpy(np.float64)
        present = ~np.isnan(x)
        values = x[present]
        median = np.median(values)
        reach = 3 * MAD_TO_SIGMA * np.median(np.abs(values - median))
        if reach > 0:
            values = np.clip(values, median - reach, median + reach)
        expected = np.zeros(len(x))
        expected[present] = (values - values.mean()) / values.std(ddof=1)
        np.testing.assert_allclose(z.loc[on_day, name], expected, rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def test_rank_per_day(panel):
    _, factors = panel
    ranked = normalise_by_day(factors[KEYS + CHECKED], method="rank", mad_k=None)
    values = ranked[CHECKED].to_numpy()
    assert (values > -0.5).all() and (values < 0.5).all()
    np.testing.assert_allclose(ranked.groupby("trade_date")[CHECKED].mean().to_numpy(), 0,
                               atol=1e-6)
    day = np.sort(factors["trade_date"].unique())[-30]
    on_day = factors["trade_date"] == day
    for name in CHECKED:
        x = factors.loc[on_day, name].to_numpy(np.float64)
        present = ~np.isnan(x)
        expected = np.zeros(len(x))
        expected[present] = (rankdata(x[present]) - 0.5) / present.sum() - 0.5
        np.testing.assert_allclose(ranked.loc[on_day, name], expected, atol=1e-6)


@pytest.mark.parametrize("method", ["zscore", "rank"])
def test_a_day_depends_only_on_its_own_rows(panel, method):
    _, factors = panel
    days = np.sort(factors["trade_date"].unique())
    kept, scrambled = days[-30], days[-29]
    table = factors[KEYS + CHECKED].copy()
    other = (table["trade_date"] == scrambled).to_numpy()
    shuffled = table.loc[other, CHECKED].to_numpy()[::-1] * 7.0
    table.loc[other, CHECKED] = shuffled.astype(np.float32)
    before = normalise_by_day(factors[KEYS + CHECKED], method=method)
    after = normalise_by_day(table, method=method)
    on_day = (factors["trade_date"] == kept).to_numpy()
    pd.testing.assert_frame_equal(after[on_day], before[on_day], check_exact=True)
    assert not after[other].equals(before[other])


def test_labels_by_hand_across_a_suspension(sample_panel):
    bars, factors = sample_panel
    labels = forward_labels(bars)
    assert list(labels.columns) == KEYS + list(FORWARD_LABELS)
    assert labels[KEYS].equals(factors[KEYS])
    rows = _rows(bars, SUSPENDED)
    ours = labels[labels["ts_code"] == SUSPENDED].reset_index(drop=True)
    close = rows["close"].tolist()
    before_gap = int(np.flatnonzero(rows["trade_date"] < "20170405")[-1])
    for i in (before_gap - 1, before_gap, before_gap + 1, len(rows) - 3):
        assert ours.loc[i, "ret_1"] == pytest.approx(close[i + 1] / close[i] - 1, rel=1e-6)
        assert ours.loc[i, "ret_2"] == pytest.approx(close[i + 2] / close[i + 1] - 1, rel=1e-6)
    assert rows.loc[before_gap + 1, "trade_date"] > "20170818"
    assert np.isnan(ours["ret_1"].iloc[-1]) and np.isnan(ours["ret_2"].iloc[-2:]).all()

    day = rows.loc[before_gap, "trade_date"]
    on_day = labels[labels["trade_date"] == day]
    for name in ("ret_1", "ret_2"):
        x = on_day[name].to_numpy(np.float64)
        present = ~np.isnan(x)
        expected = np.full(len(x), np.nan)
        expected[present] = rankdata(x[present]) / present.sum()
        np.testing.assert_allclose(on_day[f"{name}_rank"], expected, rtol=1e-6)
