"""Forward- and backward-adjusted daily bars, derived as tushare's ``pro_bar`` derives them.

hfq (backward) multiplies each unadjusted price by that day's ``adj_factor``: it
depends only on the past, so it is safe for features. qfq (forward) also divides by
the latest factor, so every stored price level changes after each new dividend;
its levels embed later corporate actions (returns do not). ``pro_bar`` rounds the
prices and ``pct_chg`` to 2 decimals with ``'%.2f'`` and recomputes ``change``;
this module does the same so the two agree to the cent.
"""

from __future__ import annotations

import pandas as pd

PRICE_COLUMNS = ("open", "close", "high", "low", "pre_close")


def _cents(values: pd.Series) -> pd.Series:
    return values.map(lambda x: float("%.2f" % x))


def adjust_prices(daily: pd.DataFrame, factors: pd.DataFrame, how: str) -> pd.DataFrame:
    """Adjusted bars of one stock; ``how`` is "qfq" or "hfq". Rows keep ``daily``'s days."""
    if how not in ("qfq", "hfq"):
        raise ValueError(f"how must be 'qfq' or 'hfq', not {how!r}")
    factors = factors[["trade_date", "adj_factor"]].sort_values("trade_date", ascending=False)
    bars = daily.sort_values("trade_date", ascending=False)
    bars = bars.merge(factors, on="trade_date", how="left")
    # a day without a factor takes the most recent earlier one, as pro_bar's bfill does
    factor = bars["adj_factor"].bfill()
    scale = factor if how == "hfq" else factor / float(factors["adj_factor"].iloc[0])
    for col in PRICE_COLUMNS:
        bars[col] = _cents(bars[col] * scale)
    bars["change"] = bars["close"] - bars["pre_close"]
    bars["pct_chg"] = _cents(bars["change"] / bars["pre_close"] * 100)
    return bars.drop(columns="adj_factor").sort_values("trade_date").reset_index(drop=True)
