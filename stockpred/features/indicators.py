"""Technical indicators in the conventions of Chinese charting software (通达信 formulas).

Every indicator is written with the software's own primitives, defined once below:
MA (simple mean of N full bars), EMA (Y = (2X + (N-1)Y') / (N+1), seeded with the first
X), SMA(X, N, M) (Y = (M X + (N-M) Y') / N), HHV/LLV (over the bars available, as the
software does at the start of a series), REF (the value N bars ago) and SUM. All of
them look only backwards, so an indicator at day t uses bars up to t only.

Columns in the price's unit (moving averages, MACD, Bollinger bands, TR/ATR, DMA) are
kept as the software shows them, for charts, and each gets a scale-free twin
``<name>_rel`` (a level over the day's close, minus 1; a difference of prices over the
day's close) that models read instead: forward-adjusted prices carry a per-stock
constant that every later dividend changes, and the twins do not see it.

stockstats 0.6.10 agrees with these definitions for KDJ and, negated, for W%R; its EMA,
RSI, Bollinger and CCI seed differently (pandas ``adjust=True``, partial windows), so
the values differ in the warm-up. The tests cross-check against stockstats where the
two agree and against hand computations everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


# -- primitives ---------------------------------------------------------------------------

def ma(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=n).mean()


def ema(x: pd.Series, n: int) -> pd.Series:
    return x.ewm(span=n, adjust=False).mean()


def sma(x: pd.Series, n: int, m: int = 1) -> pd.Series:
    return x.ewm(alpha=m / n, adjust=False).mean()


def hhv(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=1).max()


def llv(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=1).min()


def ref(x: pd.Series, n: int = 1) -> pd.Series:
    return x.shift(n)


def tsum(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=n).sum()


def std(x: pd.Series, n: int) -> pd.Series:
    """The software's STD: the sample estimate (N-1) over N bars."""
    return x.rolling(n, min_periods=n).std(ddof=1)


def avedev(x: pd.Series, n: int) -> pd.Series:
    """Mean absolute deviation from the window's mean, over N full bars."""
    values = x.to_numpy(dtype=float)
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(values, n)
        out[n - 1:] = np.abs(windows - windows.mean(axis=1, keepdims=True)).mean(axis=1)
    return pd.Series(out, index=x.index)


# tushare rounds adjusted prices to 4 decimals
PRICE_STEP = 1e-4
# Two price moves closer than this are a tie. A difference of two moves sums four rounded
# prices (at most 2 steps off), and a re-based series is rounded twice (at most 4.3 steps
# off at a factor of 1.13): 5 steps leave the rounding out and stay below one tick of
# 0.01 CNY at any adjustment factor above 0.05.
TIE_MARGIN = 5 * PRICE_STEP


def ratio(numerator, denominator) -> pd.Series:
    """numerator / denominator, NaN where the denominator is 0 (never inf)."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    index = numerator.index if isinstance(numerator, pd.Series) else denominator.index
    return pd.Series(out, index=index)


def scale_free(values: pd.Series, close: pd.Series, price: str) -> pd.Series:
    """A column in the price's unit over the day's close: a ``price="level"`` X as
    X / close - 1; a ``price="difference"`` D (a difference of prices, or a spectrum
    amplitude, a weighted sum of them) as D / close."""
    relative = ratio(values, close)
    return relative - 1 if price == "level" else relative


# -- indicators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Feature:
    """What a feature column is, for the features manifest. ``model_input`` is False for
    a column in the stock's price unit: its scale-free twin, if any, is the model input."""

    name: str
    group: str
    source: str
    params: dict
    model_input: bool = True


def with_scale_free_twin(feature: Feature, values: pd.Series, close: pd.Series,
                         price: str) -> tuple[dict[str, pd.Series], list[Feature]]:
    """The price-unit column of ``feature`` (no model input) and its twin ``<name>_rel``."""
    level = replace(feature, model_input=False)
    twin = replace(feature, name=f"{feature.name}_rel",
                   params={**feature.params, "relative_to": "close", "price": price})
    return ({level.name: values, twin.name: scale_free(values, close, price)}, [level, twin])


def technical(bars: pd.DataFrame, p) -> tuple[pd.DataFrame, list[Feature]]:
    """All indicators of one stock's traded days (columns open, high, low, close, vol).

    ``p`` is the ``features.indicators`` section of config.json.
    """
    o, h, low, c, v = (bars[k].astype(float) for k in ("open", "high", "low", "close", "vol"))
    out: dict[str, pd.Series] = {}
    meta: list[Feature] = []

    def put(name, values, group, price=None, **params):
        feature = Feature(name, group, "close" if group != "volume" else "vol", params)
        if price is None:
            out[name] = values
            meta.append(feature)
        else:
            columns, features = with_scale_free_twin(feature, values, c, price)
            out.update(columns)
            meta.extend(features)

    for n in p.ma:
        put(f"ma{n}", ma(c, n), "trend", "level", window=n)
    for n in p.ema:
        put(f"ema{n}", ema(c, n), "trend", "level", span=n)

    fast, slow, signal = p.macd
    dif = ema(c, fast) - ema(c, slow)
    dea = ema(dif, signal)
    put("macd_dif", dif, "trend", "difference", fast=fast, slow=slow)
    put("macd_dea", dea, "trend", "difference", fast=fast, slow=slow, signal=signal)
    put("macd_bar", 2 * (dif - dea), "trend", "difference", fast=fast, slow=slow,
        signal=signal)

    n, width = p.boll
    mid = ma(c, n)
    put("boll_mid", mid, "volatility", "level", window=n)
    put("boll_upper", mid + width * std(c, n), "volatility", "level", window=n, width=width)
    put("boll_lower", mid - width * std(c, n), "volatility", "level", window=n, width=width)

    n, m1, m2 = p.kdj
    # a window of one price (days locked at the limit) has no range: 0, as the software shows
    rsv = ratio(c - llv(low, n), hhv(h, n) - llv(low, n)).fillna(0.0) * 100
    k = _seeded_sma(rsv, m1, seed=50.0)
    d = _seeded_sma(k, m2, seed=50.0)
    put("kdj_k", k, "momentum", window=n, smooth=m1)
    put("kdj_d", d, "momentum", window=n, smooth=m1, signal=m2)
    put("kdj_j", 3 * k - 2 * d, "momentum", window=n, smooth=m1, signal=m2)

    for n in p.wr:
        top, bottom = hhv(h, n), llv(low, n)
        put(f"wr{n}", ratio(top - c, top - bottom).fillna(0.0) * 100, "momentum", window=n)

    change = c - ref(c)
    for n in p.rsi:
        rise = sma(change.clip(lower=0).iloc[1:], n)
        both = sma(change.abs().iloc[1:], n)
        put(f"rsi{n}", ratio(rise, both).reindex(c.index) * 100, "momentum", window=n)

    n, mas = p.cr.window, p.cr.ma
    mid_prev = ref(h + low) / 2
    cr = ratio(tsum((h - mid_prev).clip(lower=0), n), tsum((mid_prev - low).clip(lower=0), n))
    cr = cr * 100
    put(f"cr{n}", cr, "momentum", window=n)
    for m in mas:
        put(f"cr_ma{m}", ref(ma(cr, m), int(m / 2.5 + 1)), "momentum", window=n, ma=m,
            lag=int(m / 2.5 + 1))

    typical = (h + low + c) / 3
    for n in p.cci:
        put(f"cci{n}", ratio(typical - ma(typical, n), 0.015 * avedev(typical, n)), "momentum",
            window=n)

    n, m = p.vr.window, p.vr.ma
    up = tsum(v.where(change > 0, 0.0), n)
    down = tsum(v.where(change < 0, 0.0), n)
    flat = tsum(v.where(change == 0, 0.0), n)
    vr = ratio(2 * up + flat, 2 * down + flat) * 100
    put(f"vr{n}", vr, "volume", window=n)
    put(f"vr_ma{m}", ma(vr, m), "volume", window=n, ma=m)

    prev_close = ref(c)
    tr = pd.concat([h - low, (h - prev_close).abs(), (low - prev_close).abs()], axis=1).max(
        axis=1, skipna=False)
    put("tr", tr, "volatility", "difference")
    put(f"atr{p.atr}", ma(tr, p.atr), "volatility", "difference", window=p.atr)

    n, m = p.dmi.window, p.dmi.adx
    up_move, down_move = h - ref(h), ref(low) - low
    # on 4-decimal adjusted prices a tie of the raw prices (a common case: both moves one
    # tick) comes out a rounding step either way, and a strict comparison would count
    # the whole move to one side or the other
    dmp = tsum(up_move.where((up_move > TIE_MARGIN) & (up_move > down_move + TIE_MARGIN),
                             0.0), n)
    dmm = tsum(down_move.where((down_move > TIE_MARGIN)
                               & (down_move > up_move + TIE_MARGIN), 0.0), n)
    mtr = tsum(tr, n)
    pdi, mdi = ratio(dmp, mtr) * 100, ratio(dmm, mtr) * 100
    adx = ma(ratio((mdi - pdi).abs(), mdi + pdi) * 100, m)
    put("dmi_pdi", pdi, "trend", window=n)
    put("dmi_mdi", mdi, "trend", window=n)
    put("dmi_adx", adx, "trend", window=n, adx=m)
    put("dmi_adxr", (adx + ref(adx, m)) / 2, "trend", window=n, adx=m)

    n, m = p.trix.window, p.trix.ma
    triple = ema(ema(ema(c, n), n), n)
    trix = ratio(triple - ref(triple), ref(triple)) * 100
    put("trix", trix, "trend", window=n)
    put(f"trix_ma{m}", ma(trix, m), "trend", window=n, ma=m)

    short, long, m = p.dma.short, p.dma.long, p.dma.ma
    dma_dif = ma(c, short) - ma(c, long)
    put("dma_dif", dma_dif, "trend", "difference", short=short, long=long)
    put("dma_difma", ma(dma_dif, m), "trend", "difference", short=short, long=long, ma=m)

    for n in p.momentum:
        put(f"mom{n}", ratio(c, ref(c, n)) - 1, "momentum", lag=n)
        put(f"logmom{n}", np.log(ratio(c, ref(c, n))), "momentum", lag=n)
    put("gap", ratio(o, prev_close) - 1, "momentum")
    put("range", ratio(h - low, prev_close), "volatility")

    for n in p.volume:
        put(f"vol_ma{n}_ratio", ratio(v, ma(v, n)), "volume", window=n)
        put(f"vol_z{n}", ratio(v - ma(v, n), std(v, n)), "volume", window=n)
    frame = pd.DataFrame(out, index=bars.index)
    return frame, meta


def _seeded_sma(x: pd.Series, n: int, seed: float) -> pd.Series:
    """SMA(X, N, 1) whose value before the first bar is ``seed`` (the software's KDJ)."""
    values = pd.concat([pd.Series([seed]), x.reset_index(drop=True)], ignore_index=True)
    smoothed = values.ewm(alpha=1 / n, adjust=False).mean().iloc[1:]
    return pd.Series(smoothed.to_numpy(), index=x.index)


def order_flow(flow: pd.DataFrame, amount: pd.Series) -> tuple[pd.DataFrame, list[Feature]]:
    """Order-size statistics from tushare's moneyflow (amounts in 10k CNY, bars in 1000 CNY)."""
    traded = amount.astype(float) / 10.0  # daily amount in 10k CNY, moneyflow's unit
    large = (flow["buy_lg_amount"] + flow["buy_elg_amount"]
             - flow["sell_lg_amount"] - flow["sell_elg_amount"])
    small = flow["buy_sm_amount"] - flow["sell_sm_amount"]
    out = pd.DataFrame({
        "flow_net_share": ratio(flow["net_mf_amount"], traded),
        "flow_large_net_share": ratio(large, traded),
        "flow_small_net_share": ratio(small, traded),
        "flow_net_ma5": ma(ratio(flow["net_mf_amount"], traded), 5),
    }, index=flow.index)
    meta = [Feature(name, "order_flow", "moneyflow", {}) for name in out.columns]
    return out, meta
