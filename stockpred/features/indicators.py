"""Technical indicators in the conventions of Chinese charting software (通达信 formulas).

Every indicator is written with the software's own primitives, defined once below:
MA (simple mean of N full bars), EMA (Y = (2X + (N-1)Y') / (N+1), seeded with the first
X), SMA(X, N, M) (Y = (M X + (N-M) Y') / N), HHV/LLV (over the bars available, as the
software does at the start of a series), REF (the value N bars ago) and SUM. All of
them look only backwards, so an indicator at day t uses bars up to t only.

stockstats 0.6.10 agrees with these definitions for KDJ and, negated, for W%R; its EMA,
RSI, Bollinger and CCI seed differently (pandas ``adjust=True``, partial windows), so
the values differ in the warm-up. The tests cross-check against stockstats where the
two agree and against hand computations everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def ratio(numerator, denominator) -> pd.Series:
    """numerator / denominator, NaN where the denominator is 0 (never inf)."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    index = numerator.index if isinstance(numerator, pd.Series) else denominator.index
    return pd.Series(out, index=index)


# -- indicators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Feature:
    """What a feature column is, for the features manifest."""

    name: str
    group: str
    source: str
    params: dict


def technical(bars: pd.DataFrame, p) -> tuple[pd.DataFrame, list[Feature]]:
    """All indicators of one stock's traded days (columns open, high, low, close, vol).

    ``p`` is the ``features.indicators`` section of config.json.
    """
    o, h, low, c, v = (bars[k].astype(float) for k in ("open", "high", "low", "close", "vol"))
    out: dict[str, pd.Series] = {}
    meta: list[Feature] = []

    def put(name, values, group, **params):
        out[name] = values
        meta.append(Feature(name, group, "close" if group != "volume" else "vol", params))

    for n in p.ma:
        put(f"ma{n}", ma(c, n), "trend", window=n)
    for n in p.ema:
        put(f"ema{n}", ema(c, n), "trend", span=n)

    fast, slow, signal = p.macd
    dif = ema(c, fast) - ema(c, slow)
    dea = ema(dif, signal)
    put("macd_dif", dif, "trend", fast=fast, slow=slow)
    put("macd_dea", dea, "trend", fast=fast, slow=slow, signal=signal)
    put("macd_bar", 2 * (dif - dea), "trend", fast=fast, slow=slow, signal=signal)

    n, width = p.boll
    mid = ma(c, n)
    put("boll_mid", mid, "volatility", window=n)
    put("boll_upper", mid + width * std(c, n), "volatility", window=n, width=width)
    put("boll_lower", mid - width * std(c, n), "volatility", window=n, width=width)

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
    put("tr", tr, "volatility")
    put(f"atr{p.atr}", ma(tr, p.atr), "volatility", window=p.atr)

    n, m = p.dmi.window, p.dmi.adx
    up_move, down_move = h - ref(h), ref(low) - low
    dmp = tsum(up_move.where((up_move > 0) & (up_move > down_move), 0.0), n)
    dmm = tsum(down_move.where((down_move > 0) & (down_move > up_move), 0.0), n)
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
    put("dma_dif", dma_dif, "trend", short=short, long=long)
    put("dma_difma", ma(dma_dif, m), "trend", short=short, long=long, ma=m)

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
