"""Walk-forward scores of sampled next-day distributions (the WGANs'), beside the point
forecasts' leaderboard.

Each block's refit samples the next-day log return of every day of the block from what is
known at its close; the naive baseline is the Gaussian random walk with that refit's
training mean and volatility, drawn from noise seeded by (seed, day, stock) so that every
model's row compares with the same walk. Per forecast: the CRPS of the samples and whether
the central 80% and 95% bands cover the actual return. The rows give the mean CRPS, the
coverages, and a Diebold-Mariano test (by day, Newey-West) of the CRPS differential
against the random walk and, for a conditioned WGAN, against the plain `wgan` of the same
days: negative means smaller CRPS than the reference.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from stockpred.dataset import StockData
from stockpred.evaluation.metrics import loss_differential_test
from stockpred.generative.wgan import BANDS, band_coverage, crps_sample

WALK = "random_walk"
PLAIN = "wgan"  # what a conditioned WGAN's row is read against
# per forecast: the model's, then the random walk's (walk_)
SCORES = [f"{who}{score}" for who in ("", "walk_")
          for score in ("crps", *(f"covered_{int(b * 100)}" for b in BANDS))]
COLUMNS = ["model", "forecasts", "crps", "coverage_80", "coverage_95", "dm_crps_vs_random_walk",
           "dm_pvalue_vs_random_walk", "beats_random_walk", "dm_crps_vs_wgan",
           "dm_pvalue_vs_wgan", "beats_wgan"]


def _walk(stock: StockData, rows: np.ndarray, n: int, mean: float, std: float,
          seed: int) -> np.ndarray:
    code = zlib.crc32(stock.ts_code.encode())
    return np.stack([mean + std * np.random.default_rng([seed, 17, int(stock.dates[i]), code])
                     .standard_normal(n) for i in rows]) if len(rows) else np.zeros((0, n))


def block_scores(model, stocks: list[StockData], first: str, last: str,
                 seed: int) -> pd.DataFrame:
    """Per stock and day from ``first`` to ``last``: the CRPS and band coverage of the fitted
    ``model``'s sampled next-day log return and of the random walk's, each forecast from
    the rows up to its day."""
    n = int(model.settings["samples"])
    frames = []
    for stock in stocks:
        data = stock.upto(last)
        rows = np.flatnonzero(data.dates >= first)
        if not len(rows):
            continue
        with np.errstate(all="ignore"):
            actual = np.log(data.next_close[rows] / data.close[rows])
        sampled = {"": model.sample_returns(data, n, rows, steps=1)[rows, :, 0],
                   "walk_": _walk(data, rows, n, model.return_mean_, model.return_std_, seed)}
        frame = {"ts_code": stock.ts_code, "trade_date": data.dates[rows]}
        for prefix, x in sampled.items():
            frame[f"{prefix}crps"] = crps_sample(x, actual)
            for band in BANDS:
                frame[f"{prefix}covered_{int(band * 100)}"] = band_coverage(x, actual, band)
        frame = pd.DataFrame(frame)
        usable = np.isfinite(actual) & np.isfinite(sampled[""]).all(axis=1)
        frames.append(frame[usable])
    return (pd.concat(frames, ignore_index=True) if frames else
            pd.DataFrame(columns=["ts_code", "trade_date", *SCORES]))


def _row(model: str, frame: pd.DataFrame, prefix: str = "") -> dict:
    return {"model": model, "forecasts": int(len(frame)),
            "crps": float(frame[f"{prefix}crps"].mean()) if len(frame) else math.nan,
            **{f"coverage_{int(b * 100)}": float(frame[f"{prefix}covered_{int(b * 100)}"].mean())
               if len(frame) else math.nan for b in BANDS}}


def _against(frame: pd.DataFrame, reference: pd.DataFrame, label: str,
             reference_prefix: str = "") -> dict:
    keys = ["ts_code", "trade_date"]
    paired = frame[[*keys, "crps"]].merge(
        reference[[*keys, f"{reference_prefix}crps"]].rename(
            columns={f"{reference_prefix}crps": "reference"}), on=keys)
    test = loss_differential_test(paired["trade_date"].to_numpy(),
                                  paired["crps"] - paired["reference"])
    return {f"dm_crps_vs_{label}": test["stat"], f"dm_pvalue_vs_{label}": test["pvalue"],
            f"beats_{label}": bool(test["stat"] < 0 and test["pvalue"] < 0.05)}


def distribution_rows(scored: dict[str, pd.DataFrame]) -> list[dict]:
    """The random walk's row (the one of the first model's refits; every model's walk is
    the same when they share training rows) and each model's row with its tests."""
    if not scored:
        return []
    first = next(iter(scored.values()))
    rows = [_row(WALK, first, "walk_")]
    for name, frame in scored.items():
        row = {**_row(name, frame), **_against(frame, frame, WALK, "walk_")}
        if name != PLAIN and PLAIN in scored:
            row.update(_against(frame, scored[PLAIN], PLAIN))
        rows.append(row)
    return rows
