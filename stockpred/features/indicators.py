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
# Each takes one stock's Series or a frame of one column per stock (a Columns) and works column
# by column, so technical() and the market factors compute every indicator with the same code.
Columns = pd.Series | pd.DataFrame


def ma(x: Columns, n: int) -> Columns:
    return x.rolling(n, min_periods=n).mean()


def ema(x: Columns, n: int) -> Columns:
    return x.ewm(span=n, adjust=False).mean()


def sma(x: Columns, n: int, m: int = 1) -> Columns:
    return x.ewm(alpha=m / n, adjust=False).mean()


def hhv(x: Columns, n: int) -> Columns:
    return x.rolling(n, min_periods=1).max()


def llv(x: Columns, n: int) -> Columns:
    return x.rolling(n, min_periods=1).min()


def ref(x: Columns, n: int = 1) -> Columns:
    return x.shift(n)


def tsum(x: Columns, n: int) -> Columns:
    return x.rolling(n, min_periods=n).sum()


def std(x: Columns, n: int) -> Columns:
    """The software's STD: the sample estimate (N-1) over N bars."""
    return x.rolling(n, min_periods=n).std(ddof=1)


def avedev(x: Columns, n: int) -> Columns:
    """Mean absolute deviation from the window's mean, over N full bars."""
    # one row per column with the window along the contiguous axis: numpy sums a window in
    # the same order for a frame as for a single series
    values = np.ascontiguousarray(x.to_numpy(dtype=float).T)
    out = np.full(values.shape, np.nan)
    if values.shape[-1] >= n:
        windows = np.lib.stride_tricks.sliding_window_view(values, n, axis=-1)
        out[..., n - 1:] = np.abs(windows - windows.mean(axis=-1, keepdims=True)).mean(axis=-1)
    return _like(x, out.T)


def seeded_sma(x: Columns, n: int, seed: float) -> Columns:
    """SMA(X, N, 1) whose value before the first bar is ``seed`` (the software's KDJ)."""
    before = x.iloc[:1].copy()
    before[:] = seed
    return sma(pd.concat([before, x]), n).iloc[1:]


# tushare rounds adjusted prices to 4 decimals
PRICE_STEP = 1e-4
# Two price moves closer than this are a tie. A difference of two moves sums four rounded
# prices (at most 2 steps off), and a re-based series is rounded twice (at most 4.3 steps
# off at a factor of 1.13): 5 steps leave the rounding out and stay below one tick of
# 0.01 CNY at any adjustment factor above 0.05.
TIE_MARGIN = 5 * PRICE_STEP


def _like(x: Columns, values: np.ndarray) -> Columns:
    """``values`` on the axes of the Series or DataFrame ``x``."""
    if isinstance(x, pd.DataFrame):
        return pd.DataFrame(values, index=x.index, columns=x.columns)
    return pd.Series(values, index=x.index)


def ratio(numerator, denominator) -> Columns:
    """numerator / denominator, NaN where the denominator is 0 (never inf)."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return _like(numerator if isinstance(numerator, Columns) else denominator,
                 out)


def scale_free(values: pd.Series, close: pd.Series, price: str) -> pd.Series:
    """A column in the price's unit over the day's close: a ``price="level"`` X as
    X / close - 1; a ``price="difference"`` D (a difference of prices, or a spectrum
    amplitude, a weighted sum of them) as D / close."""
    relative = ratio(values, close)
    return relative - 1 if price == "level" else relative


# -- indicators ---------------------------------------------------------------------------
# Like the primitives, on Columns.

def kdj(h, low, c, n: int, m1: int, m2: int):
    # a window of one price (days locked at the limit) has no range: 0, as the software shows
    rsv = ratio(c - llv(low, n), hhv(h, n) - llv(low, n)).fillna(0.0) * 100
    k = seeded_sma(rsv, m1, seed=50.0)
    d = seeded_sma(k, m2, seed=50.0)
    return k, d, 3 * k - 2 * d


def wr(h, low, c, n: int):
    top, bottom = hhv(h, n), llv(low, n)
    return ratio(top - c, top - bottom).fillna(0.0) * 100


def rsi(c, n: int):
    change = c - ref(c)
    rise = sma(change.clip(lower=0).iloc[1:], n)
    both = sma(change.abs().iloc[1:], n)
    return ratio(rise, both).reindex(c.index) * 100


def cr(h, low, n: int):
    mid_prev = ref(h + low) / 2
    return ratio(tsum((h - mid_prev).clip(lower=0), n),
                 tsum((mid_prev - low).clip(lower=0), n)) * 100


def cci(h, low, c, n: int):
    typical = (h + low + c) / 3
    return ratio(typical - ma(typical, n), 0.015 * avedev(typical, n))


def vr(c, v, n: int):
    change = c - ref(c)
    up = tsum(v.where(change > 0, 0.0), n)
    down = tsum(v.where(change < 0, 0.0), n)
    flat = tsum(v.where(change == 0, 0.0), n)
    return ratio(2 * up + flat, 2 * down + flat) * 100


def true_range(h, low, c):
    prev_close = ref(c)
    return np.maximum(h - low, np.maximum((h - prev_close).abs(), (low - prev_close).abs()))


def dmi(h, low, tr, n: int, m: int):
    """PDI, MDI and ADX over the true range ``tr``."""
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
    return pdi, mdi, ma(ratio((mdi - pdi).abs(), mdi + pdi) * 100, m)


def trix(c, n: int):
    triple = ema(ema(ema(c, n), n), n)
    return ratio(triple - ref(triple), ref(triple)) * 100


@dataclass(frozen=True)
class Feature:
    """What a feature column is, for the features manifest. ``model_input`` is False for
    a column in the stock's price unit (its scale-free twin, if any, is the model input)
    and for the flow features no model has yet been shown to gain from (see panel.py)."""

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
    k, d, j = kdj(h, low, c, n, m1, m2)
    put("kdj_k", k, "momentum", window=n, smooth=m1)
    put("kdj_d", d, "momentum", window=n, smooth=m1, signal=m2)
    put("kdj_j", j, "momentum", window=n, smooth=m1, signal=m2)

    for n in p.wr:
        put(f"wr{n}", wr(h, low, c, n), "momentum", window=n)
    for n in p.rsi:
        put(f"rsi{n}", rsi(c, n), "momentum", window=n)

    n = p.cr.window
    cr_n = cr(h, low, n)
    put(f"cr{n}", cr_n, "momentum", window=n)
    for m in p.cr.ma:
        put(f"cr_ma{m}", ref(ma(cr_n, m), int(m / 2.5 + 1)), "momentum", window=n, ma=m,
            lag=int(m / 2.5 + 1))

    for n in p.cci:
        put(f"cci{n}", cci(h, low, c, n), "momentum", window=n)

    n, m = p.vr.window, p.vr.ma
    vr_n = vr(c, v, n)
    put(f"vr{n}", vr_n, "volume", window=n)
    put(f"vr_ma{m}", ma(vr_n, m), "volume", window=n, ma=m)

    tr = true_range(h, low, c)
    put("tr", tr, "volatility", "difference")
    put(f"atr{p.atr}", ma(tr, p.atr), "volatility", "difference", window=p.atr)

    n, m = p.dmi.window, p.dmi.adx
    pdi, mdi, adx = dmi(h, low, tr, n, m)
    put("dmi_pdi", pdi, "trend", window=n)
    put("dmi_mdi", mdi, "trend", window=n)
    put("dmi_adx", adx, "trend", window=n, adx=m)
    put("dmi_adxr", (adx + ref(adx, m)) / 2, "trend", window=n, adx=m)

    n, m = p.trix.window, p.trix.ma
    trix_n = trix(c, n)
    put("trix", trix_n, "trend", window=n)
    put(f"trix_ma{m}", ma(trix_n, m), "trend", window=n, ma=m)

    short, long, m = p.dma.short, p.dma.long, p.dma.ma
    dma_dif = ma(c, short) - ma(c, long)
    put("dma_dif", dma_dif, "trend", "difference", short=short, long=long)
    put("dma_difma", ma(dma_dif, m), "trend", "difference", short=short, long=long, ma=m)

    for n in p.momentum:
        put(f"mom{n}", ratio(c, ref(c, n)) - 1, "momentum", lag=n)
        put(f"logmom{n}", np.log(ratio(c, ref(c, n))), "momentum", lag=n)
    put("gap", ratio(o, ref(c)) - 1, "momentum")
    put("range", ratio(h - low, ref(c)), "volatility")

    for n in p.volume:
        put(f"vol_ma{n}_ratio", ratio(v, ma(v, n)), "volume", window=n)
        put(f"vol_z{n}", ratio(v - ma(v, n), std(v, n)), "volume", window=n)
    frame = pd.DataFrame(out, index=bars.index)
    return frame, meta


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
