"""Cross-sectional evaluation of a score: daily and monthly IC / Rank IC with Newey-West
t-statistics, alphalens-style quantile returns, top-quantile turnover, and the A-share
trading status of each bar (shared with the backtest).

The frames are long: one row per stock and day, with ``trade_date`` (YYYYMMDD), ``ts_code``,
``score`` and a label column (a forward return, e.g. qlib's close T+1 -> close T+2).
Rows without a score or a label are left out of every statistic; a day keeps its place only
with at least ``min_stocks`` such rows (default 10), so a thin day cannot post an IC of +-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred.market_rules import price_limit

MIN_STOCKS = 10
# the month-block bootstrap behind every interval of a mean IC: draws, and the central share
BOOTSTRAP_DRAWS = 2000
INTERVAL_LEVEL = 0.9
UNTRADEABLE = "untradeable"
# The exchange rounds the limit price to the cent, round(pre_close x (1 + limit), 2), so a
# move to the limit lands within 0.005 / pre_close of the limit in return space. The
# forward-adjusted bars keep the raw close / pre_close ratio, so a return tolerance of
# 0.2 percentage points covers stocks priced from 2.5 CNY. In the SSE 50 bars shipped with
# the package, every close at the day's high with a move of +9..+11% lies in +9.88..+10.16%.
LIMIT_TOLERANCE = 0.002
# Equal raw prices adjust to equal forward-adjusted prices, so "at the high" is an equality
# up to float noise.
_SAME_PRICE = 1e-9


def trading_status(bars: pd.DataFrame, price: str = "close",
                   tolerance: float = LIMIT_TOLERANCE, st=None) -> pd.DataFrame:
    """Per bar: whether ``price`` ("close" or "open") sits at the limit-up or limit-down
    price, and whether the day traded at one price (high == low, in A-shares a day locked
    at a limit, which no order gets through in either direction).

    At the limit up: ``price / pre_close - 1 >= limit - tolerance`` and ``price`` is the
    day's high (down: the mirror, at the low), ``limit`` from
    ``stockpred.market_rules.price_limit``: ``st``, one bool per bar, marks the bars of ST
    days (5%); without it an ST stock gets its board's limit.
    Returns trade_date, ts_code, limit_up, limit_down, one_price (bools), in ``bars``' order.
    """
    if price not in ("close", "open"):
        raise ValueError(f"price must be 'close' or 'open', got {price!r}")
    day, days = pd.factorize(bars["trade_date"])
    code, codes = pd.factorize(bars["ts_code"])
    days = np.asarray(days, dtype=str)
    st_days = np.zeros((len(codes), len(days)), dtype=bool)
    if st is not None:
        st_days[code, day] = np.asarray(st, dtype=bool)
    limits = np.stack([price_limit(str(c), days, st_days[i])
                       for i, c in enumerate(codes)])  # stock x day
    limit = limits[code, day]
    at = bars[price].to_numpy(float)
    high, low = bars["high"].to_numpy(float), bars["low"].to_numpy(float)
    move = at / bars["pre_close"].to_numpy(float) - 1
    return pd.DataFrame({
        "trade_date": bars["trade_date"], "ts_code": bars["ts_code"],
        "limit_up": (move >= limit - tolerance) & (at >= high * (1 - _SAME_PRICE)),
        "limit_down": (move <= -(limit - tolerance)) & (at <= low * (1 + _SAME_PRICE)),
        "one_price": high == low,
    }, index=bars.index)


def _positions(column: pd.Series, sorted_values: np.ndarray, side: str = "left") -> np.ndarray:
    """np.searchsorted of each value of ``column`` into ``sorted_values``, looking up each
    distinct value once."""
    which, distinct = pd.factorize(column)
    return np.searchsorted(sorted_values, np.asarray(distinct, dtype=str), side=side)[which]


def flag_untradeable(frame: pd.DataFrame, bars: pd.DataFrame, execution: str = "close",
                     tolerance: float = LIMIT_TOLERANCE) -> pd.DataFrame:
    """A copy of ``frame`` with a bool ``untradeable`` column: the stock could not be
    entered on the next trading day (the day an order from this row's score executes), as
    it had no bar that day (suspended or not listed), traded at one price, or stood at the
    limit up or down at the ``execution`` price. Trading days are the days in ``bars``.
    """
    calendar = np.sort(np.asarray(bars["trade_date"].unique(), dtype=str))
    codes = np.union1d(np.asarray(bars["ts_code"].unique(), dtype=str),
                       np.asarray(frame["ts_code"].unique(), dtype=str))
    # one integer per (day, stock): day position x number of stocks + stock position
    bar_cell = (_positions(bars["trade_date"], calendar) * len(codes)
                + _positions(bars["ts_code"], codes))
    status = trading_status(bars, execution, tolerance)
    blocked = status[["limit_up", "limit_down", "one_price"]].to_numpy().any(axis=1)
    order = np.argsort(bar_cell)
    bar_cell, blocked = bar_cell[order], blocked[order]
    entry_cell = (_positions(frame["trade_date"], calendar, side="right") * len(codes)
                  + _positions(frame["ts_code"], codes))
    found = np.minimum(np.searchsorted(bar_cell, entry_cell), len(bar_cell) - 1)
    out = frame.copy()
    out[UNTRADEABLE] = (bar_cell[found] != entry_cell) | blocked[found]
    return out


def newey_west_lags(n: int) -> int:
    """The usual automatic lag of the Bartlett kernel: floor(4 (n / 100)^(2/9))."""
    return math.floor(4 * (n / 100) ** (2 / 9))


def newey_west_tstat(series, lags: int | None = None, small_sample: bool = False) -> float:
    """t-statistic of the mean of ``series`` with a Newey-West (HAC, Bartlett) variance.

    var(mean) = (gamma_0 + 2 sum_{j=1..L} (1 - j/(L+1)) gamma_j) / n, gamma_j =
    sum_t e_t e_{t-j} / n, e = x - mean; ``small_sample`` multiplies it by n / (n - 1),
    as statsmodels' OLS on a constant with cov_type="HAC" and use_correction=True.
    L defaults to ``newey_west_lags(n)``; NaNs are dropped first.
    """
    x = np.asarray(series, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 2:
        return math.nan
    lags = newey_west_lags(n) if lags is None else lags
    e = x - x.mean()
    long_run = e @ e + 2 * sum((1 - j / (lags + 1)) * (e[j:] @ e[:-j])
                               for j in range(1, min(lags, n - 1) + 1))
    variance = long_run / n ** 2
    if small_sample:
        variance *= n / (n - 1)
    return float(x.mean() / math.sqrt(variance)) if variance > 0 else math.nan


def _considered(frame: pd.DataFrame, exclude_untradeable: bool) -> pd.DataFrame:
    if not exclude_untradeable:
        return frame
    if UNTRADEABLE not in frame.columns:
        raise ValueError(f"exclude_untradeable needs the {UNTRADEABLE!r} column "
                         "(see flag_untradeable)")
    return frame[~frame[UNTRADEABLE].to_numpy(bool)]


def _usable(frame: pd.DataFrame, label: str | None, min_stocks: int,
            exclude_untradeable: bool) -> pd.DataFrame:
    """Rows with a score and a label (any label if None; tradeable rows only if asked), on
    days with at least ``min_stocks`` of them, sorted by day and code."""
    rows = _considered(frame, exclude_untradeable)
    columns = ["trade_date", "ts_code", "score"] + ([label] if label else [])
    keep = np.logical_and.reduce([np.isfinite(rows[c].to_numpy(float)) for c in columns[2:]])
    rows = rows.loc[keep, columns]
    day = pd.factorize(rows["trade_date"], sort=True)[0]
    code = pd.factorize(rows["ts_code"], sort=True)[0]
    order = np.lexsort((code, day))
    rows, day = rows.iloc[order], day[order]
    return rows[np.bincount(day)[day] >= min_stocks]


def _pearson_by_day(days: pd.Series, x: pd.Series, y: pd.Series) -> pd.Series:
    dx = x - x.groupby(days).transform("mean")
    dy = y - y.groupby(days).transform("mean")
    products = pd.DataFrame({"xy": dx * dy, "xx": dx * dx, "yy": dy * dy}).groupby(days).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return products["xy"] / np.sqrt(products["xx"] * products["yy"])


def daily_ic(frame: pd.DataFrame, label: str = "label", min_stocks: int = MIN_STOCKS,
             exclude_untradeable: bool = False) -> pd.DataFrame:
    """Per day: IC (Pearson of score and label), Rank IC (Spearman: Pearson of the ranks,
    ties averaged) and the number of stocks; indexed by trade_date. A day whose scores or
    labels are all equal has no correlation and is left out."""
    rows = _usable(frame, label, min_stocks, exclude_untradeable)
    days = rows["trade_date"]
    ranks = rows[["score", label]].groupby(days).rank()
    out = pd.DataFrame({"ic": _pearson_by_day(days, rows["score"], rows[label]),
                        "rank_ic": _pearson_by_day(days, ranks["score"], ranks[label]),
                        "stocks": days.value_counts().sort_index()})
    out.index.name = "trade_date"
    return out[np.isfinite(out["ic"]) & np.isfinite(out["rank_ic"])]


def _ic_statistics(ic: pd.DataFrame, lags: int | None, small_sample: bool) -> dict[str, float]:
    """Of the daily IC and Rank IC: mean, std (ddof 1), mean / std (qlib's ICIR and Rank
    ICIR, not annualised) and the Newey-West t of the mean."""
    out = {}
    for column, ratio in (("ic", "icir"), ("rank_ic", "rank_icir")):
        mean, std = float(ic[column].mean()), float(ic[column].std())
        out |= {column: mean, f"{column}_std": std,
                ratio: mean / std if std > 0 else math.nan,
                f"{column}_t_nw": newey_west_tstat(ic[column], lags, small_sample)}
    return out


def monthly_bootstrap_means(daily: pd.DataFrame, draws: int = BOOTSTRAP_DRAWS,
                            seed: int = 0) -> pd.DataFrame:
    """The means of ``daily``'s columns (indexed by trade_date) over ``draws`` resamples
    that draw whole calendar months with replacement, as many as the series spans: a block
    bootstrap whose blocks are months, so the dependence of days within a month (IC series
    are autocorrelated) stays in every resample. Columns resampled together keep their
    pairing by day, so a ratio of two models' means gets its interval from the same rows."""
    months = daily.index.str[:6]
    sums, counts = daily.groupby(months).sum(), daily.groupby(months).count()
    picks = np.random.default_rng(seed).integers(len(sums), size=(draws, len(sums)))
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums.to_numpy()[picks].sum(axis=1) / counts.to_numpy()[picks].sum(axis=1)
    return pd.DataFrame(means, columns=daily.columns)


def interval(values, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``values``."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def compare_means(daily: pd.DataFrame, numerator: str, denominator: str,
                  draws: int = BOOTSTRAP_DRAWS, seed: int = 0,
                  level: float = INTERVAL_LEVEL) -> dict[str, float]:
    """Two daily series (columns of ``daily``, indexed by trade_date) compared by their
    means: the ratio numerator / denominator and the difference numerator - denominator,
    each with the ``level`` interval from the same month-block resamples
    (``monthly_bootstrap_means``), so a month good for both moves both means together and
    the interval of the ratio is that of the pairing, not of two independent draws. Days
    where either series is missing are left out of both."""
    both = daily[[numerator, denominator]].dropna()
    means = monthly_bootstrap_means(both, draws, seed)
    top, bottom = both[numerator].mean(), both[denominator].mean()
    ratio_low, ratio_high = interval(means[numerator] / means[denominator], level)
    low, high = interval(means[numerator] - means[denominator], level)
    return {"ratio": float(top / bottom), "ratio_low": ratio_low, "ratio_high": ratio_high,
            "difference": float(top - bottom), "difference_low": low,
            "difference_high": high, "days": len(both)}


def ic_summary(frame: pd.DataFrame, label: str = "label", min_stocks: int = MIN_STOCKS,
               lags: int | None = None, small_sample: bool = False,
               exclude_untradeable: bool = False) -> dict[str, float]:
    """ic, ic_std, icir, ic_t_nw and the same for rank_ic over the daily series, with the
    90% interval of the mean Rank IC from a month-block bootstrap (rank_ic_lo90,
    rank_ic_hi90); the days used and dropped (too few stocks, or no spread); and coverage:
    the share of the frame's rows (tradeable ones if excluding) that carry a score."""
    ic = daily_ic(frame, label, min_stocks, exclude_untradeable)
    considered = _considered(frame, exclude_untradeable)
    low, high = interval(monthly_bootstrap_means(ic[["rank_ic"]])["rank_ic"])
    return {**_ic_statistics(ic, lags, small_sample), "rank_ic_lo90": low, "rank_ic_hi90": high,
            "days": len(ic), "days_dropped": int(considered["trade_date"].nunique() - len(ic)),
            "coverage": float(considered["score"].notna().mean())}


def monthly_ic(frame: pd.DataFrame, label: str = "label", min_stocks: int = MIN_STOCKS,
               lags: int | None = None, small_sample: bool = False,
               exclude_untradeable: bool = False) -> pd.DataFrame:
    """The statistics of ``ic_summary`` for each month (YYYYMM index) of the daily series;
    the Newey-West lag follows each month's own length unless ``lags`` is given."""
    ic = daily_ic(frame, label, min_stocks, exclude_untradeable)
    months = ic.index.str[:6]
    table = pd.DataFrame.from_dict(
        {month: {**_ic_statistics(days, lags, small_sample), "days": len(days)}
         for month, days in ic.groupby(months)}, orient="index")
    return table.rename_axis("month")


def _quantiles(rows: pd.DataFrame, quantiles: int) -> np.ndarray:
    """Quantile 1..q of each row within its day, as alphalens' pd.qcut of the scores (ties
    broken in ts_code order): the i-th smallest of n (0-based) falls in
    max(ceil(i q / (n - 1)), 1)."""
    if quantiles < 2:
        raise ValueError(f"need at least 2 quantiles, got {quantiles}")
    days = rows["trade_date"]
    position = rows["score"].groupby(days).rank(method="first").to_numpy(int) - 1
    size = days.groupby(days).transform("size").to_numpy(int)
    return np.maximum(-(-position * quantiles // (size - 1)), 1)


@dataclass(frozen=True)
class QuantileReturns:
    """daily: mean label per day (rows) and quantile (columns 1..q); mean: its average over
    days; spread: top minus bottom quantile per day, with its mean and Newey-West t."""

    daily: pd.DataFrame
    mean: pd.Series
    spread: pd.Series
    spread_mean: float
    spread_t_nw: float


def quantile_returns(frame: pd.DataFrame, label: str = "label", quantiles: int = 5,
                     min_stocks: int = MIN_STOCKS, lags: int | None = None,
                     small_sample: bool = False,
                     exclude_untradeable: bool = False) -> QuantileReturns:
    """Alphalens-style mean label by score quantile (raw means, not demeaned by the day's
    average: the spread is the same either way)."""
    rows = _usable(frame, label, max(min_stocks, quantiles), exclude_untradeable)
    daily = rows[label].groupby([rows["trade_date"], _quantiles(rows, quantiles)]).mean()
    daily = daily.unstack()
    daily.index.name, daily.columns.name = "trade_date", "quantile"
    spread = daily[quantiles] - daily[1]
    return QuantileReturns(daily, daily.mean(), spread, float(spread.mean()),
                           newey_west_tstat(spread, lags, small_sample))


def top_quantile_turnover(frame: pd.DataFrame, quantiles: int = 5, min_stocks: int = MIN_STOCKS,
                          exclude_untradeable: bool = False) -> pd.Series:
    """Per day, the share of the top quantile's names that were not in it on the previous
    evaluated day (alphalens' quantile_turnover); the first day has none. Only the score
    is needed, so rows without a label count too."""
    rows = _usable(frame, None, max(min_stocks, quantiles), exclude_untradeable)
    top = rows[_quantiles(rows, quantiles) == quantiles]
    day, days = pd.factorize(top["trade_date"], sort=True)
    code, codes = pd.factorize(top["ts_code"])
    # a name stayed when (previous evaluated day, name) is among the top's (day, name)
    stayed = np.isin((day - 1) * len(codes) + code, day * len(codes) + code)
    turnover = 1 - pd.Series(stayed).groupby(day).mean().to_numpy()
    return pd.Series(turnover[1:], index=pd.Index(days[1:], name="trade_date"),
                     name="turnover")


def signal_summary(frame: pd.DataFrame, label: str = "label", quantiles: int = 5,
                   min_stocks: int = MIN_STOCKS, lags: int | None = None,
                   small_sample: bool = False,
                   exclude_untradeable: bool = False) -> dict[str, float]:
    """One row for a leaderboard: ``ic_summary``, the long-short spread's mean and t, and
    the top quantile's mean daily turnover."""
    spread = quantile_returns(frame, label, quantiles, min_stocks, lags, small_sample,
                              exclude_untradeable)
    turnover = top_quantile_turnover(frame, quantiles, min_stocks, exclude_untradeable)
    return {**ic_summary(frame, label, min_stocks, lags, small_sample, exclude_untradeable),
            "long_short_mean": spread.spread_mean, "long_short_t_nw": spread.spread_t_nw,
            "top_quantile_turnover": float(turnover.mean())}
