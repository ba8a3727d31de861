"""Rules of the A-share market that several stages apply."""

from __future__ import annotations

import numpy as np

CHINEXT_20_PERCENT_FROM = "20200824"
ST_LIMIT = 0.05


def price_limit(ts_code: str, days, st=None) -> np.ndarray:
    """The daily price limit on each YYYYMMDD day: 20% on STAR (688) and, from 2020-08-24,
    ChiNext (300/301); 10% elsewhere. ``st`` (one bool per day, from ``namechange``: only
    it tells ST days point-in-time) marks the days the stock was ST: 5% where its board
    allows 10% (an ST stock on STAR, or on ChiNext from 2020-08-24, keeps 20%). Without
    ``st`` an ST stock gets its board's limit."""
    days = np.asarray(days, dtype=str)
    if ts_code.startswith("688"):
        limit = np.full(days.shape, 0.20)
    elif ts_code.startswith(("300", "301")):
        limit = np.where(days >= CHINEXT_20_PERCENT_FROM, 0.20, 0.10)
    else:
        limit = np.full(days.shape, 0.10)
    if st is None:
        return limit
    return np.where(np.asarray(st, dtype=bool) & (limit < 0.20), ST_LIMIT, limit)
