"""Forecast metrics and tests: errors, direction, Diebold-Mariano (HLN, and by day with a
Newey-West variance), Pesaran-Timmermann, IC.

Every function takes plain arrays; NaN pairs are dropped before computing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from stockpred.evaluation.signal import newey_west_lags, newey_west_tstat


def _pairs(*arrays) -> list[np.ndarray]:
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    keep = np.logical_and.reduce([~np.isnan(a) for a in arrays])
    return [a[keep] for a in arrays]


def rmse(actual, predicted) -> float:
    a, p = _pairs(actual, predicted)
    return float(np.sqrt(np.mean((p - a) ** 2))) if len(a) else math.nan


def mae(actual, predicted) -> float:
    a, p = _pairs(actual, predicted)
    return float(np.mean(np.abs(p - a))) if len(a) else math.nan


def mape(actual, predicted) -> float:
    """Mean absolute percentage error, in percent."""
    a, p = _pairs(actual, predicted)
    return float(np.mean(np.abs((p - a) / a)) * 100) if len(a) else math.nan


def moves(actual_change, predicted_change) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose actual and predicted moves are both non-zero.

    A flat close is neither up nor down, and a zero forecast (persistence) calls no
    direction, so the direction statistics leave both out rather than file them as "down".
    """
    a, p = _pairs(actual_change, predicted_change)
    keep = (a != 0) & (p != 0)
    return a[keep], p[keep]


def directional_accuracy(actual_change, predicted_change) -> float:
    """Share of ``moves`` whose predicted move has the sign of the actual move; NaN if none."""
    a, p = moves(actual_change, predicted_change)
    return float(np.mean(np.sign(a) == np.sign(p))) if len(a) else math.nan


def pesaran_timmermann(actual_change, predicted_change) -> tuple[float, float]:
    """Pesaran & Timmermann (1992) test that predicted signs carry information.

    Over ``moves`` only: zero moves, actual or predicted, are dropped before counting, the
    observations of ``directional_accuracy``. (rugarch's DACTest keeps them as "not up" and
    never a hit; pooled over stocks that often close unchanged, that choice moves the
    result.) As in DACTest, the n^-2 term of var(P*) is kept and the p-value is
    one-sided (upper tail). Returns (statistic, p-value); the null is independence of the
    signs, each pair counted as an independent observation.
    """
    a, p = moves(actual_change, predicted_change)
    n = len(a)
    if n < 2:
        return math.nan, math.nan
    hit = float(np.mean(a * p > 0))
    py, px = float(np.mean(a > 0)), float(np.mean(p > 0))
    if not (0 < px < 1 and 0 < py < 1):  # one side never called, or never happened
        return math.nan, math.nan
    expected = py * px + (1 - py) * (1 - px)
    var_hit = expected * (1 - expected) / n
    var_expected = ((2 * py - 1) ** 2 * px * (1 - px) / n
                    + (2 * px - 1) ** 2 * py * (1 - py) / n
                    + 4 * py * px * (1 - py) * (1 - px) / n ** 2)
    spread = var_hit - var_expected
    if spread <= 0:
        return math.nan, math.nan
    statistic = (hit - expected) / math.sqrt(spread)
    return float(statistic), float(stats.norm.sf(statistic))


def _loss_differential(actual, forecast_a, forecast_b, power: int) -> np.ndarray:
    return np.abs(actual - forecast_a) ** power - np.abs(actual - forecast_b) ** power


def diebold_mariano(actual, forecast_a, forecast_b, horizon: int = 1,
                    power: int = 2) -> tuple[float, float]:
    """Diebold-Mariano test of equal accuracy, with the Harvey-Leybourne-Newbold correction.

    Loss |e|^power; a negative statistic means forecast_a is more accurate. Returns
    (statistic, two-sided p-value from Student's t with n-1 degrees of freedom), as R's
    forecast::dm.test computes them.
    """
    d = _loss_differential(*_pairs(actual, forecast_a, forecast_b), power)
    n = len(d)
    if n < 3:
        return math.nan, math.nan
    mean = d.mean()
    centred = d - mean
    gamma = [float(np.dot(centred[k:], centred[:n - k]) / n) for k in range(horizon)]
    variance = (gamma[0] + 2 * sum(gamma[1:])) / n
    if variance <= 0:
        return math.nan, math.nan
    statistic = mean / math.sqrt(variance)
    statistic *= math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(statistic), float(2 * stats.t.sf(abs(statistic), df=n - 1))


def diebold_mariano_by_day(days, actual, forecast_a, forecast_b, horizon: int = 1,
                           power: int = 2) -> dict[str, float]:
    """Diebold-Mariano test on the daily loss differential, with a Newey-West variance.

    d_t is the mean over day t's stocks of |e_a|^power - |e_b|^power, so stocks that move
    together count once and the test has one observation per day (T days, not the pooled
    forecasts); with one stock it is the plain DM with a HAC variance. var(mean d) is
    Newey-West's (Bartlett weights 1 - j/(L+1), autocovariances divided by T, no
    small-sample factor) at L = max(floor(4 (T/100)^(2/9)), horizon - 1) lags; a negative
    statistic means forecast_a is more accurate; the two-sided p-value is from Student's t
    with T-1 degrees of freedom, as ``diebold_mariano``'s. Returns stat, pvalue, days, lags.
    """
    y, fa, fb = (np.asarray(a, dtype=float) for a in (actual, forecast_a, forecast_b))
    return loss_differential_test(days, _loss_differential(y, fa, fb, power), horizon)


def loss_differential_test(days, differential, horizon: int = 1) -> dict[str, float]:
    """``diebold_mariano_by_day`` on a given loss differential (loss_a - loss_b per
    forecast, such as two CRPS): the by-day mean with a Newey-West variance; negative: a is
    better."""
    d = pd.Series(np.asarray(differential, dtype=float), index=np.asarray(days))
    daily = d.dropna().groupby(level=0, sort=True).mean()
    n = len(daily)
    lags = max(newey_west_lags(n), horizon - 1)
    statistic = newey_west_tstat(daily.to_numpy(), lags) if n >= 3 else math.nan
    p = math.nan if math.isnan(statistic) else float(2 * stats.t.sf(abs(statistic), df=n - 1))
    return {"stat": statistic, "pvalue": p, "days": n, "lags": lags}


def information_coefficients(frame: pd.DataFrame) -> dict[str, float]:
    """Daily cross-sectional IC (Pearson) and Rank IC (Spearman) of predicted vs actual returns.

    ``frame`` has columns trade_date, predicted_return, actual_return, one row per stock
    and day. Days with fewer than 3 stocks are skipped. ICIR is mean IC / std of IC.
    """
    daily_ic, daily_rank = [], []
    for _, day in frame.dropna(subset=["predicted_return", "actual_return"]).groupby(
            "trade_date"):
        if len(day) < 3 or day["predicted_return"].nunique() < 2:
            continue
        daily_ic.append(day["predicted_return"].corr(day["actual_return"]))
        daily_rank.append(day["predicted_return"].corr(day["actual_return"], method="spearman"))
    ic, rank = np.array(daily_ic, dtype=float), np.array(daily_rank, dtype=float)
    if len(ic) < 2:
        return {"ic": math.nan, "rank_ic": math.nan, "icir": math.nan, "rank_icir": math.nan,
                "ic_days": len(ic)}
    return {"ic": float(np.nanmean(ic)), "rank_ic": float(np.nanmean(rank)),
            "icir": float(np.nanmean(ic) / np.nanstd(ic, ddof=1)),
            "rank_icir": float(np.nanmean(rank) / np.nanstd(rank, ddof=1)),
            "ic_days": len(ic)}
