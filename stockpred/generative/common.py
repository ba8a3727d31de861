"""What the VAE and the WGAN share: the training-rows check and daily log returns."""

from __future__ import annotations

import numpy as np

from stockpred.dataset import StockData
from stockpred.errors import InputError


def check_enough(stocks: list[StockData], rows: int, what: str) -> None:
    if not any(len(s) >= rows for s in stocks):
        raise InputError(f"too few training rows for the {what}: need at least {rows} days "
                         f"before evaluation.validation_start; fetch an earlier start")


def log_returns(close: np.ndarray) -> np.ndarray:
    """log(close_t / close_{t-1}); NaN on the first row."""
    out = np.full(len(close), np.nan)
    with np.errstate(all="ignore"):
        out[1:] = np.log(close[1:] / close[:-1])
    return out
