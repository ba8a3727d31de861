"""The cross-sectional step: each day's factors normalised on that day's stocks alone, and the
labels.

A day's normalised value depends only on the rows of that day (its median, MAD, mean and
standard deviation, or its ranks), never on other days, so nothing is fit on the future.
The labels are the opposite: they are the only forward-looking columns of the market-wide
work (``FORWARD_LABELS``), made to be learned, never to be fed in as features.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

KEYS = ("trade_date", "ts_code")
# the only columns that look forward: the stock's later traded closes
FORWARD_LABELS = ("ret_1", "ret_2", "ret_1_rank", "ret_2_rank")
# MAD x 1.4826 estimates the standard deviation of normal data, so k MADs reads as k sigma
MAD_TO_SIGMA = 1.4826
# values held at once while normalising, so the float64 temporaries stay near half a GB on
# any panel (beside the panel and its float32 result, which grow with the market)
BLOCK_CELLS = 10_000_000


def normalise_by_day(panel: pd.DataFrame, columns: list[str] | None = None,
                     method: Literal["zscore", "rank"] = "zscore",
                     mad_k: float | None = 3.0) -> pd.DataFrame:
    """Each factor, day by day: clipped at median +/- ``mad_k`` robust sigmas, then z-scored
    (``zscore``) or ranked into (-0.5, 0.5) (``rank``); missing values become 0, the day's mean.

    ``panel`` has ``trade_date``, ``ts_code`` and the factor ``columns`` (all other columns by
    default). ``mad_k=None`` skips the clipping (ranks need none: clipping only adds ties).
    Returns the keys and one float32 column per factor, rows as in ``panel``.
    """
    columns = list(columns or [c for c in panel.columns if c not in KEYS])
    out = pd.DataFrame(normalised_matrix(panel, columns, method, mad_k), columns=columns,
                       index=panel.index, copy=False)
    for key in reversed(KEYS):
        out.insert(0, key, panel[key].to_numpy())
    return out


def normalised_matrix(panel: pd.DataFrame, columns: list[str],
                      method: Literal["zscore", "rank"] = "zscore",
                      mad_k: float | None = 3.0, rows: np.ndarray | None = None) -> np.ndarray:
    """What normalise_by_day computes, as a (rows, columns) float32 array, for the rows at
    positions ``rows`` of ``panel`` in that order (default: every row). Only a block of
    factors is ever held in float64, and the selected rows are gathered block by block,
    never as a whole copy of the panel."""
    if method not in ("zscore", "rank"):
        raise ValueError(f"method must be 'zscore' or 'rank', not {method!r}")
    dates = panel["trade_date"].to_numpy()
    if rows is not None:
        dates = dates[rows]
    # rows grouped by day, so each day is one contiguous run and a day's statistic reaches
    # its rows by np.repeat, not by a gather over the whole panel
    day = pd.factorize(dates)[0]
    by_day_order = np.argsort(day, kind="stable")
    day = day[by_day_order]
    rows_per_day = np.bincount(day)
    gather = by_day_order if rows is None else np.asarray(rows)[by_day_order]
    normalised = np.empty((len(dates), len(columns)), dtype=np.float32)
    width = max(1, BLOCK_CELLS // max(len(panel), 1))
    for first in range(0, len(columns), width):
        block = columns[first:first + width]
        # (factor, row) layout: each factor a contiguous row, as the grouped kernels want
        values = panel[block].to_numpy(np.float64)[gather].T.copy()
        values[~np.isfinite(values)] = np.nan
        if mad_k is not None:
            _clip_by_mad(values, day, rows_per_day, mad_k)
        by_day = _by_day(values, day)
        if method == "zscore":
            spread = by_day.std().to_numpy().T
            values -= _to_rows(by_day.mean(), rows_per_day)
            values /= _to_rows(np.where(spread > 0, spread, np.nan).T, rows_per_day)
        else:
            ranks = by_day.rank(method="average").to_numpy().T
            values = (ranks - 0.5) / _to_rows(by_day.count(), rows_per_day) - 0.5
        normalised[by_day_order, first:first + len(block)] = np.nan_to_num(values, nan=0.0).T
    return normalised


def _by_day(values: np.ndarray, day: np.ndarray):
    return pd.DataFrame(values.T, copy=False).groupby(day, sort=False)


def _to_rows(per_day, rows_per_day: np.ndarray) -> np.ndarray:
    """A (day, factor) statistic spread over the (factor, row) layout of day-grouped rows."""
    return np.repeat(np.asarray(per_day).T, rows_per_day, axis=1)


def _clip_by_mad(values: np.ndarray, day: np.ndarray, rows_per_day: np.ndarray,
                 k: float) -> None:
    """Clip each (factor, day) at median +/- k robust sigmas of that day, in place."""
    median = _to_rows(_by_day(values, day).median(), rows_per_day)
    deviation = np.abs(values - median)
    reach = k * MAD_TO_SIGMA * _by_day(deviation, day).median().to_numpy()
    # a zero MAD (over half the day on one value) would pull every other value onto the
    # median: such a day and factor is left unclipped
    reach = _to_rows(np.where(reach > 0, reach, np.inf), rows_per_day)
    np.clip(values, median - reach, median + reach, out=values)


def forward_labels(bars: pd.DataFrame, horizon: int = 1) -> pd.DataFrame:
    """FORWARD-LOOKING labels from closes, per stock over its traded rows, ``horizon``
    traded rows long.

    ``ret_1``: close t -> close of the stock's ``horizon``-th next traded row; ``ret_2``:
    the next close -> the close ``horizon`` rows after it (at horizon 1 qlib's Alpha158
    label ``Ref($close,-2)/Ref($close,-1)-1``, what a trade at the next close earns).
    ``*_rank``: the day's percentile rank (0, 1] among the stocks with a label that day.
    Returns the keys and the labels, rows in (ts_code, trade_date) order as
    ``factors.compute_factors``; float32.
    """
    bars = bars[[*KEYS, "close"]].sort_values(["ts_code", "trade_date"], kind="stable")
    bars = bars.reset_index(drop=True)
    close = bars["close"].astype(np.float64)
    by_stock = close.groupby(bars["ts_code"].to_numpy(), sort=False)
    next_close = by_stock.shift(-1)
    out = bars[list(KEYS)].copy()
    out["ret_1"] = by_stock.shift(-horizon) / close - 1
    out["ret_2"] = by_stock.shift(-1 - horizon) / next_close - 1
    day = pd.factorize(bars["trade_date"])[0]
    ranks = out[["ret_1", "ret_2"]].groupby(day, sort=False).rank(pct=True, method="average")
    out["ret_1_rank"], out["ret_2_rank"] = ranks["ret_1"], ranks["ret_2"]
    return out.astype({name: np.float32 for name in FORWARD_LABELS})
