"""Every indicator against values computed by hand from the 通达信 formulas on real rows.

The hand versions below are plain loops over Python lists, written from the formulas
and sharing nothing with stockpred's vectorised code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from stockstats import wrap

from stockpred.config import IndicatorSettings
from stockpred.data.sample import read_sample
from stockpred.features.indicators import TIE_MARGIN, technical

P = IndicatorSettings()


@pytest.fixture(scope="module")
def bars():
    """600036.SH's real unadjusted bars, 2017-2018 (487 days)."""
    d = read_sample("daily")
    return d[d["trade_date"] >= "20170101"].reset_index(drop=True)


@pytest.fixture(scope="module")
def ours(bars):
    return technical(bars, P)[0]


# -- the formulas by hand ------------------------------------------------------------------

def hand_ma(x, n):
    return [sum(x[i - n + 1:i + 1]) / n if i >= n - 1 else None for i in range(len(x))]


def hand_ema(x, n):
    out = [x[0]]
    for v in x[1:]:
        out.append((2 * v + (n - 1) * out[-1]) / (n + 1))
    return out


def hand_sma(x, n, m, seed=None):
    out, y = [], seed
    for v in x:
        y = v if y is None else (m * v + (n - m) * y) / n
        out.append(y)
    return out


def hand_hhv(x, n):
    return [max(x[max(0, i - n + 1):i + 1]) for i in range(len(x))]


def hand_llv(x, n):
    return [min(x[max(0, i - n + 1):i + 1]) for i in range(len(x))]


def hand_sum(x, n):
    return [sum(x[i - n + 1:i + 1]) if i >= n - 1 else None for i in range(len(x))]


def close_enough(ours_series, hand, start=0, tol=1e-9):
    got = ours_series.to_numpy()
    checked = 0
    for i in range(start, len(hand)):
        if hand[i] is None:
            assert np.isnan(got[i]), i
            continue
        assert got[i] == pytest.approx(hand[i], rel=tol, abs=tol), (i, got[i], hand[i])
        checked += 1
    assert checked > 100


def test_moving_averages_and_macd(bars, ours):
    c = list(bars["close"])
    close_enough(ours["ma7"], hand_ma(c, 7))
    close_enough(ours["ma21"], hand_ma(c, 21))
    close_enough(ours["ema12"], hand_ema(c, 12))
    dif = [a - b for a, b in zip(hand_ema(c, 12), hand_ema(c, 26))]
    dea = hand_ema(dif, 9)
    close_enough(ours["macd_dif"], dif)
    close_enough(ours["macd_dea"], dea)
    close_enough(ours["macd_bar"], [2 * (a - b) for a, b in zip(dif, dea)])


def test_bollinger_uses_the_sample_std_of_20_days(bars, ours):
    c = list(bars["close"])
    mid = hand_ma(c, 20)
    upper = []
    for i, m in enumerate(mid):
        if m is None:
            upper.append(None)
            continue
        window = c[i - 19:i + 1]
        sd = math.sqrt(sum((v - m) ** 2 for v in window) / 19)
        upper.append(m + 2 * sd)
    close_enough(ours["boll_mid"], mid)
    close_enough(ours["boll_upper"], upper)


def test_kdj_seeded_at_50_with_two_thirds_smoothing(bars, ours):
    h, low, c = list(bars["high"]), list(bars["low"]), list(bars["close"])
    top, bottom = hand_hhv(h, 9), hand_llv(low, 9)
    rsv = [(c[i] - bottom[i]) / (top[i] - bottom[i]) * 100 if top[i] != bottom[i] else 0.0
           for i in range(len(c))]
    k, d, kv, dv = [], [], 50.0, 50.0
    for r in rsv:
        kv = 2 / 3 * kv + 1 / 3 * r
        dv = 2 / 3 * dv + 1 / 3 * kv
        k.append(kv)
        d.append(dv)
    close_enough(ours["kdj_k"], k)
    close_enough(ours["kdj_d"], d)
    close_enough(ours["kdj_j"], [3 * a - 2 * b for a, b in zip(k, d)])


def test_williams_r_is_0_at_the_top_and_100_at_the_bottom(bars, ours):
    h, low, c = list(bars["high"]), list(bars["low"]), list(bars["close"])
    for n in (10, 6):
        top, bottom = hand_hhv(h, n), hand_llv(low, n)
        close_enough(ours[f"wr{n}"], [(top[i] - c[i]) / (top[i] - bottom[i]) * 100
                                      for i in range(len(c))])
    assert ours["wr10"].between(0, 100).all()


def test_rsi_with_sma_n_1(bars, ours):
    c = list(bars["close"])
    change = [c[i] - c[i - 1] for i in range(1, len(c))]
    for n in (6, 12, 24):
        up = hand_sma([max(x, 0) for x in change], n, 1)
        both = hand_sma([abs(x) for x in change], n, 1)
        close_enough(ours[f"rsi{n}"], [None] + [u / b * 100 for u, b in zip(up, both)])


def test_cr_uses_yesterdays_middle_price_and_lagged_averages(bars, ours):
    h, low = list(bars["high"]), list(bars["low"])
    mid = [None] + [(h[i - 1] + low[i - 1]) / 2 for i in range(1, len(h))]
    up = [max(0, h[i] - mid[i]) if mid[i] is not None else None for i in range(len(h))]
    down = [max(0, mid[i] - low[i]) if mid[i] is not None else None for i in range(len(h))]
    cr = [None] * len(h)
    for i in range(26, len(h)):
        cr[i] = sum(up[i - 25:i + 1]) / sum(down[i - 25:i + 1]) * 100
    close_enough(ours["cr26"], cr)
    # MA1 = REF(MA(CR, 10), 10 / 2.5 + 1): the 10-day mean of CR, five days ago
    ma10 = [None if i < 35 else sum(cr[i - 9:i + 1]) / 10 for i in range(len(h))]
    close_enough(ours["cr_ma10"], [None] * 5 + ma10[:-5])


def test_cci_vr_atr(bars, ours):
    h, low, c, v = (list(bars[k]) for k in ("high", "low", "close", "vol"))
    typical = [(a + b + d) / 3 for a, b, d in zip(h, low, c)]
    for n in (14, 20):
        cci = [None] * len(c)
        for i in range(n - 1, len(c)):
            window = typical[i - n + 1:i + 1]
            mean = sum(window) / n
            mad = sum(abs(x - mean) for x in window) / n
            cci[i] = (typical[i] - mean) / (0.015 * mad)
        close_enough(ours[f"cci{n}"], cci)
    vr = [None] * len(c)
    for i in range(26, len(c)):
        th = sum(v[j] for j in range(i - 25, i + 1) if c[j] > c[j - 1])
        tl = sum(v[j] for j in range(i - 25, i + 1) if c[j] < c[j - 1])
        tq = sum(v[j] for j in range(i - 25, i + 1) if c[j] == c[j - 1])
        vr[i] = 100 * (2 * th + tq) / (2 * tl + tq)
    close_enough(ours["vr26"], vr, start=26)
    tr = [None] + [max(h[i] - low[i], abs(h[i] - c[i - 1]), abs(low[i] - c[i - 1]))
                   for i in range(1, len(c))]
    close_enough(ours["tr"], tr)
    close_enough(ours["atr14"], [None] + hand_ma(tr[1:], 14))


def test_dmi_trix_dma_momentum(bars, ours):
    h, low, c = list(bars["high"]), list(bars["low"]), list(bars["close"])
    tr = [None] + [max(h[i] - low[i], abs(h[i] - c[i - 1]), abs(low[i] - c[i - 1]))
                   for i in range(1, len(c))]
    hd = [None] + [h[i] - h[i - 1] for i in range(1, len(c))]
    ld = [None] + [low[i - 1] - low[i] for i in range(1, len(c))]
    # moves within the rounding of adjusted prices are ties, as the software's exact
    # decimals make them (here they also absorb the float error of 0.01-tick differences)
    tie = TIE_MARGIN
    dmp = [None] + [hd[i] if hd[i] > tie and hd[i] > ld[i] + tie else 0
                    for i in range(1, len(c))]
    dmm = [None] + [ld[i] if ld[i] > tie and ld[i] > hd[i] + tie else 0
                    for i in range(1, len(c))]
    pdi = [None] * len(c)
    mdi = [None] * len(c)
    for i in range(14, len(c)):
        mtr = sum(tr[i - 13:i + 1])
        pdi[i] = sum(dmp[i - 13:i + 1]) * 100 / mtr
        mdi[i] = sum(dmm[i - 13:i + 1]) * 100 / mtr
    close_enough(ours["dmi_pdi"], pdi)
    close_enough(ours["dmi_mdi"], mdi)
    dx = [None if p is None else abs(m - p) / (m + p) * 100 for p, m in zip(pdi, mdi)]
    adx = [None] * 14 + hand_ma(dx[14:], 6)
    close_enough(ours["dmi_adx"], adx)
    close_enough(ours["dmi_adxr"], [None if i < 6 or adx[i] is None or adx[i - 6] is None
                                    else (adx[i] + adx[i - 6]) / 2 for i in range(len(c))])
    triple = hand_ema(hand_ema(hand_ema(c, 12), 12), 12)
    trix = [None] + [(triple[i] - triple[i - 1]) / triple[i - 1] * 100 for i in range(1, len(c))]
    close_enough(ours["trix"], trix)
    close_enough(ours["dma_dif"], [None if a is None or b is None else a - b
                                   for a, b in zip(hand_ma(c, 10), hand_ma(c, 50))])
    close_enough(ours["mom5"], [None] * 5 + [c[i] / c[i - 5] - 1 for i in range(5, len(c))])
    close_enough(ours["logmom20"], [None] * 20 + [math.log(c[i] / c[i - 20])
                                                  for i in range(20, len(c))])


def test_agrees_with_stockstats_where_the_definitions_match(bars, ours):
    stock = wrap(bars[["open", "high", "low", "close", "vol"]].rename(columns={"vol": "volume"}))
    np.testing.assert_allclose(ours["kdj_k"], stock["kdjk_9"], rtol=1e-9)
    np.testing.assert_allclose(ours["kdj_d"], stock["kdjd_9"], rtol=1e-9)
    np.testing.assert_allclose(ours["wr10"], -stock["wr_10"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours["tr"][1:], stock["tr"][1:], rtol=1e-9)
    np.testing.assert_allclose(ours["dma_dif"][49:], stock["dma"][49:], rtol=1e-9)
    # stockstats' MACD seeds its EMA with pandas adjust=True: the two converge later
    late = slice(300, None)
    np.testing.assert_allclose(ours["macd_dif"][late], stock["macd"][late], rtol=1e-6)


def test_days_locked_at_the_limit_give_finite_indicators(real_tables):
    """2015-07: SSE 50 stocks locked limit-down (high == low) for days in a row."""
    qfq = real_tables["qfq_daily"]
    one_price = qfq[(qfq["high"] == qfq["low"]) & (qfq["pct_chg"] < -9)]
    code = one_price["ts_code"].value_counts().index[0]
    bars = qfq[qfq["ts_code"] == code].reset_index(drop=True)
    frame = technical(bars, P)[0]
    locked = bars.index[(bars["high"] == bars["low"]) & (bars["pct_chg"] < -9)]
    assert len(locked) >= 2
    after = frame.loc[locked[locked > 60]]
    assert np.isfinite(after.to_numpy()).all()
    assert (after["wr6"] >= 0).all() and (after["wr6"] <= 100).all()
