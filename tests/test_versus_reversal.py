"""The cross-sectional board's paired test against the reversal (issue 26): each model's
daily Rank IC less the reversal's (minus last_return), against scipy and statsmodels, on
the forward-adjusted SSE 50 bars shipped with the package. The model's score is a real
signal (the 5-day reversal), the reference last_return's (close over the previous close),
the label qlib's Alpha158 label (close T+1 -> T+2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.regression.linear_model import OLS

from stockpred.data.sample import read_sample
from stockpred.evaluation.cross_section import (REFERENCE, daily_versus_reversal,
                                                versus_reversal)
from stockpred.evaluation.signal import newey_west_lags

LABEL = "ret_2"
CUT = "20180601"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    bars = read_sample("qfq_daily").sort_values(["ts_code", "trade_date"])
    close = bars.groupby("ts_code")["close"]
    scored = bars.assign(score=1 - bars["close"] / close.shift(5),
                         **{REFERENCE: bars["close"] / close.shift(1) - 1,
                            LABEL: close.shift(-2) / close.shift(-1) - 1})
    return scored.loc[scored["trade_date"] >= "20170101",
                      ["trade_date", "ts_code", "score", REFERENCE, LABEL]].reset_index(drop=True)


def by_hand(frame: pd.DataFrame) -> pd.Series:
    """Per day: Spearman of the score with the label less Spearman of minus last_return."""
    out = {}
    for day, rows in frame.dropna().groupby("trade_date"):
        if len(rows) >= 10:
            out[day] = (stats.spearmanr(rows["score"], rows[LABEL])[0]
                        - stats.spearmanr(-rows[REFERENCE], rows[LABEL])[0])
    return pd.Series(out)


@pytest.fixture(scope="module")
def difference(frame) -> pd.Series:
    return by_hand(frame)


def test_the_difference_and_its_newey_west_test_by_hand(frame, difference):
    row = versus_reversal(frame, LABEL, 1, False)
    assert row["rank_ic_vs_reversal"] == pytest.approx(difference.mean(), abs=1e-12)
    lags = newey_west_lags(len(difference))
    fit = OLS(difference.to_numpy(), np.ones(len(difference))).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
    assert row["vs_reversal_t_nw"] == pytest.approx(fit.tvalues[0], rel=1e-9)
    assert row["vs_reversal_pvalue"] == pytest.approx(
        2 * stats.t.sf(abs(fit.tvalues[0]), df=len(difference) - 1), rel=1e-9)
    assert row["vs_reversal_lo90"] < row["rank_ic_vs_reversal"] < row["vs_reversal_hi90"]


def test_the_reversal_against_itself_differs_by_nothing(frame):
    row = versus_reversal(frame.assign(score=-frame[REFERENCE]), LABEL, 1, False)
    assert row["rank_ic_vs_reversal"] == 0.0
    assert row["vs_reversal_lo90"] == row["vs_reversal_hi90"] == 0.0


def test_a_longer_horizon_takes_at_least_its_overlap_in_lags(frame, difference):
    """Labels h days long overlap h-1 days: the t-statistic takes at least h-1 lags."""
    row = versus_reversal(frame, LABEL, 21, False)
    assert 20 > newey_west_lags(len(difference))
    fit = OLS(difference.to_numpy(), np.ones(len(difference))).fit(
        cov_type="HAC", cov_kwds={"maxlags": 20, "use_correction": False})
    assert row["vs_reversal_t_nw"] == pytest.approx(fit.tvalues[0], rel=1e-9)


def test_the_days_before_a_cut_ignore_scores_and_labels_after_it(frame, difference):
    """Scores, last_return and labels after the cut shuffled among the later rows: every
    day up to the cut keeps its difference, the later days do not."""
    later = frame["trade_date"] > CUT
    scrambled = frame.copy()
    shuffle = np.random.default_rng(0).permutation(later.sum())
    for column in ("score", REFERENCE, LABEL):
        scrambled.loc[later, column] = scrambled.loc[later, column].to_numpy()[shuffle]
    before = daily_versus_reversal(frame, LABEL, False)["difference"]
    after = daily_versus_reversal(scrambled, LABEL, False)["difference"]
    pd.testing.assert_series_equal(before[before.index <= CUT], after[after.index <= CUT])
    moved = before[before.index > CUT].sub(after[after.index > CUT]).abs()
    assert (moved.dropna() > 1e-6).mean() > 0.9
    pd.testing.assert_series_equal(before, difference, check_names=False,
                                   check_index_type=False, atol=1e-12, rtol=0)
