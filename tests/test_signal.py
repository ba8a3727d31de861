"""Cross-sectional signal evaluation against hand computations (numpy, scipy, pandas' qcut)
and statsmodels, on the forward-adjusted SSE 50 bars shipped with the package. The scores
are a real signal (the 5-day reversal, rounded so that ties occur); the label is qlib's
Alpha158 label, the return from close T+1 to close T+2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.regression.linear_model import OLS

from stockpred.data.sample import read_sample
from stockpred.evaluation import signal


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = read_sample("qfq_daily").sort_values(["ts_code", "trade_date"])
    return frame.reset_index(drop=True)


@pytest.fixture(scope="module")
def frame(bars) -> pd.DataFrame:
    close = bars.groupby("ts_code")["close"]
    scored = bars.assign(score=(1 - bars["close"] / close.shift(5)).round(2),
                         label=close.shift(-2) / close.shift(-1) - 1)
    return scored.loc[scored["trade_date"] >= "20170101",
                      ["trade_date", "ts_code", "score", "label"]].reset_index(drop=True)


def _usable_day(frame, day):
    rows = frame[frame["trade_date"] == day].dropna(subset=["score", "label"])
    return rows.sort_values("ts_code")


def test_daily_ic_matches_scipy_on_real_days(frame):
    ic = signal.daily_ic(frame)
    tied = [d for d, rows in frame.groupby("trade_date") if rows["score"].duplicated().any()]
    for day in ["20170104", tied[10]]:
        rows = _usable_day(frame, day)
        assert ic.loc[day, "ic"] == pytest.approx(stats.pearsonr(rows["score"],
                                                                 rows["label"])[0], abs=1e-12)
        assert ic.loc[day, "rank_ic"] == pytest.approx(
            stats.spearmanr(rows["score"], rows["label"])[0], abs=1e-12)
        assert ic.loc[day, "stocks"] == len(rows)


def test_thin_days_are_dropped_and_counted(frame):
    day = "20170301"
    thin = frame[(frame["trade_date"] != day)
                 | frame.index.isin(frame.index[frame["trade_date"] == day][:6])]
    assert day not in signal.daily_ic(thin).index
    assert day in signal.daily_ic(thin, min_stocks=6).index
    assert (signal.ic_summary(thin)["days_dropped"]
            == signal.ic_summary(frame)["days_dropped"] + 1)


def test_summary_statistics_by_hand(frame):
    sparse = frame.copy()
    sparse.loc[sparse.index[::7], "score"] = np.nan
    summary = signal.ic_summary(sparse)
    ic = signal.daily_ic(sparse)
    for column, ratio in (("ic", "icir"), ("rank_ic", "rank_icir")):
        values = ic[column].to_numpy()
        assert summary[column] == pytest.approx(values.mean(), rel=1e-12)
        assert summary[f"{column}_std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert summary[ratio] == pytest.approx(values.mean() / values.std(ddof=1), rel=1e-12)
    assert summary["coverage"] == pytest.approx(sparse["score"].notna().mean())
    assert summary["coverage"] < 0.9
    assert summary["days"] == len(ic)


@pytest.mark.parametrize("small_sample", [False, True])
@pytest.mark.parametrize("lags", [None, 0, 12])
def test_newey_west_matches_statsmodels(frame, small_sample, lags):
    series = signal.daily_ic(frame)["rank_ic"].to_numpy()
    maxlags = signal.newey_west_lags(len(series)) if lags is None else lags
    fit = OLS(series, np.ones(len(series))).fit(
        cov_type="HAC", cov_kwds={"maxlags": maxlags, "use_correction": small_sample})
    assert signal.newey_west_tstat(series, lags, small_sample) == pytest.approx(
        fit.tvalues[0], rel=1e-10)


def test_newey_west_default_lag():
    assert signal.newey_west_lags(100) == 4
    assert signal.newey_west_lags(2500) == int(np.floor(4 * 25 ** (2 / 9)))  # = 8


def test_monthly_ic_is_the_summary_of_each_month(frame):
    monthly = signal.monthly_ic(frame)
    ic = signal.daily_ic(frame)
    march = ic[ic.index.str.startswith("201803")]
    assert monthly.loc["201803", "days"] == len(march)
    assert monthly.loc["201803", "rank_ic"] == pytest.approx(march["rank_ic"].mean())
    assert monthly.loc["201803", "ic_t_nw"] == pytest.approx(
        signal.newey_west_tstat(march["ic"]))


def test_the_rank_ic_interval_resamples_whole_months(frame):
    """The interval holds the mean Rank IC and comes again with the seed; its blocks are
    months: a series that is one level per month gets the interval of its month means
    (resampling single days would make it about sqrt(days per month) times narrower)."""
    summary = signal.ic_summary(frame)
    assert summary["rank_ic_lo90"] < summary["rank_ic"] < summary["rank_ic_hi90"]
    assert signal.ic_summary(frame)["rank_ic_lo90"] == summary["rank_ic_lo90"]
    ic = signal.daily_ic(frame)[["rank_ic"]]
    months = ic.index.str[:6]
    by_month = ic.groupby(months)["rank_ic"].transform("mean").to_frame()
    low, high = signal.interval(signal.monthly_bootstrap_means(by_month)["rank_ic"])
    level = ic.groupby(months)["rank_ic"].mean()
    expected = 2 * 1.645 * level.std(ddof=0) / np.sqrt(len(level))
    assert 0.8 < (high - low) / expected < 1.2


def test_quantile_returns_match_pandas_qcut(frame):
    result = signal.quantile_returns(frame, quantiles=5)
    days = [d for d in ["20170104", "20170705", "20180702"]
            if len(_usable_day(frame, d)) % 5]
    assert days, "want days whose stock count does not split evenly"
    for day in days:
        rows = _usable_day(frame, day)
        bucket = pd.qcut(rows["score"].rank(method="first"), 5, labels=False) + 1
        by_hand = rows["label"].groupby(bucket.to_numpy()).mean()
        np.testing.assert_allclose(result.daily.loc[day].to_numpy(), by_hand.to_numpy(),
                                   rtol=1e-12)
        assert result.spread[day] == pytest.approx(by_hand[5] - by_hand[1])
    assert result.spread_mean == pytest.approx(result.spread.mean())
    np.testing.assert_allclose(result.mean.to_numpy(), result.daily.mean().to_numpy())
    assert result.spread_t_nw == pytest.approx(signal.newey_west_tstat(result.spread))


def test_top_quantile_turnover_by_hand(frame):
    turnover = signal.top_quantile_turnover(frame, quantiles=5)
    days = np.unique(frame["trade_date"])[:4]
    tops = []
    for day in days:
        rows = frame[frame["trade_date"] == day].dropna(subset=["score"]).sort_values(
            "ts_code")
        bucket = pd.qcut(rows["score"].rank(method="first"), 5, labels=False) + 1
        tops.append(set(rows.loc[bucket == 5, "ts_code"]))
    for day, today, yesterday in zip(days[1:], tops[1:], tops[:-1], strict=True):
        assert turnover[day] == pytest.approx(len(today - yesterday) / len(today))
    assert days[0] not in turnover.index


def test_untradeable_rows_found_in_real_bars(bars):
    # one real row of each kind, found by its stock's next bar: the next trading day the
    # stock closed at the limit up, at the limit down, traded at one price, or had no bar
    calendar = np.unique(bars["trade_date"])
    day = np.searchsorted(calendar, bars["trade_date"])
    following = bars.groupby("ts_code").shift(-1)
    next_day = np.searchsorted(calendar, following["trade_date"].fillna(calendar[-1]))
    entered = (next_day == day + 1) & following["close"].notna().to_numpy()
    move = following["close"] / following["pre_close"] - 1
    ranged = following["high"] > following["low"]
    cases = [entered & (move > 0.099) & (following["close"] == following["high"]) & ranged,
             entered & (move < -0.099) & (following["close"] == following["low"]) & ranged,
             entered & (following["high"] == following["low"]),
             (next_day > day + 1) & following["close"].notna().to_numpy(),
             entered & (move.abs() < 0.02) & ranged]
    rows = pd.concat([bars.loc[np.asarray(case), ["trade_date", "ts_code"]].iloc[[5]]
                      for case in cases])
    flagged = signal.flag_untradeable(rows.assign(score=1.0), bars)
    assert flagged[signal.UNTRADEABLE].tolist() == [True, True, True, True, False]


def test_trading_status_on_real_bars(bars):
    status = signal.trading_status(bars)
    at_open = signal.trading_status(bars, price="open")
    move = bars["close"] / bars["pre_close"] - 1
    locked = (move > 0.099) & (bars["close"] == bars["high"])
    assert status.loc[locked, "limit_up"].all()
    # closed near +10% but below the day's high: the close was not the limit price
    near = (move > 0.099) & (bars["close"] < bars["high"])
    assert near.any() and not status.loc[near, "limit_up"].any()
    # opened at the limit up, closed below it: blocked at the open only
    opened = ((bars["open"] / bars["pre_close"] - 1 > 0.099) & (bars["open"] == bars["high"])
              & (bars["close"] < bars["high"]))
    assert opened.any()
    assert at_open.loc[opened, "limit_up"].all() and not status.loc[opened, "limit_up"].any()
    assert status["one_price"].equals(bars["high"] == bars["low"])


def test_excluding_untradeable_rows(bars, frame):
    flagged = signal.flag_untradeable(frame, bars)
    assert 0 < flagged[signal.UNTRADEABLE].sum() < len(flagged)
    kept = flagged[~flagged[signal.UNTRADEABLE]]
    pd.testing.assert_frame_equal(signal.daily_ic(flagged, exclude_untradeable=True),
                                  signal.daily_ic(kept))
    assert (signal.signal_summary(flagged, exclude_untradeable=True)
            == signal.signal_summary(kept))
    with pytest.raises(ValueError, match="untradeable"):
        signal.ic_summary(frame, exclude_untradeable=True)


def test_two_series_are_compared_on_the_same_resampled_months(frame, bars):
    """The ratio and difference of two models' mean Rank IC come from paired month draws:
    a series against itself shifted by a constant has a difference interval of exactly
    that constant (independent draws would spread it by the months' variation); the point
    figures are the plain means' ratio and difference over the days both have."""
    close = bars.groupby("ts_code")["close"]
    slow = bars.assign(score=1 - bars["close"] / close.shift(20))[["trade_date", "ts_code",
                                                                   "score"]]
    other = frame.drop(columns="score").merge(slow, on=["trade_date", "ts_code"])
    daily = pd.DataFrame({"fast": signal.daily_ic(frame)["rank_ic"],
                          "slow": signal.daily_ic(other)["rank_ic"]})
    daily.iloc[:5, 1] = np.nan
    out = signal.compare_means(daily, "fast", "slow")
    both = daily.dropna()
    assert out["days"] == len(both) == len(daily) - 5
    assert out["ratio"] == pytest.approx(both["fast"].mean() / both["slow"].mean())
    assert out["difference"] == pytest.approx(both["fast"].mean() - both["slow"].mean())
    assert out["ratio_low"] < out["ratio"] < out["ratio_high"]
    assert out["difference_low"] < out["difference"] < out["difference_high"]
    shifted = signal.compare_means(both.assign(up=both["fast"] + 0.01), "up", "fast")
    assert shifted["difference_low"] == pytest.approx(0.01)
    assert shifted["difference_high"] == pytest.approx(0.01)
    assert signal.compare_means(daily, "fast", "slow") == out
