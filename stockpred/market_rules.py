"""Rules of the A-share market that several stages apply."""

from __future__ import annotations

import numpy as np

CHINEXT_20_PERCENT_FROM = "20200824"


def price_limit(ts_code: str, days) -> np.ndarray:
    """The daily price limit on each YYYYMMDD day: 20% on STAR (688) and, from 2020-08-24,
    ChiNext (300/301); 10% elsewhere. ST stocks (5%) cannot be told point-in-time from
    the stored data and get their board's limit."""
    days = np.asarray(days, dtype=str)
    if ts_code.startswith("688"):
        return np.full(days.shape, 0.20)
    if ts_code.startswith(("300", "301")):
        return np.where(days >= CHINEXT_20_PERCENT_FROM, 0.20, 0.10)
    return np.full(days.shape, 0.10)
