"""The conditioned WGANs (`wgan+minutes`, `wgan+news`): the news mood is learned from the
rows handed to fit alone, and the rows of evaluate's CRPS table test each model against
the random walk and the plain WGAN. (check_model and the scramble run in
test_conformance.py; evaluate's CRPS table on the sample in test_minute_codes.py, beside
the minute codes it needs.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred.config import Config, quick_config
from stockpred.dataset import DailyNews, StockData
from stockpred.errors import InputError
from stockpred.evaluation import distribution, metrics
from stockpred.models.registry import prototype

BASIS = {"encoder": "offline", "dimensions": 6, "fit_end": "20180701", "finished_at": "x"}


def news_stock(days: int = 60, seed: int = 0, first: str = "20180702") -> StockData:
    """A stock whose days after ``first`` carry synthetic article vectors, every third day
    without articles."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(first, periods=days).strftime("%Y%m%d").to_numpy()
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    present = np.arange(days) % 3 != 0
    vectors = np.where(present[:, None], rng.normal(size=(days, 6)) * [3, 2, 1, .5, .1, .1],
                       0.0)
    return StockData("600036.SH", dates, close, pd.DataFrame(index=range(days)),
                     np.append(close[1:], np.nan), news=DailyNews(vectors, present, BASIS))


def fit_mood(model, train):
    """The mood alone (no GAN fit): what fit learns before its networks."""
    model.return_mean_, model.return_std_ = 0.0, 0.01
    model._fit_context(train, [])
    return model


def test_the_news_mood_is_fit_on_the_rows_it_is_handed_and_reads_zero_without_articles():
    stock = news_stock()
    train = stock.rows(np.arange(len(stock)) < 40)
    model = fit_mood(prototype(quick_config(Config()), "wgan+news"), [train])
    mood = model._context(stock)
    assert mood.shape == (len(stock), 3)
    np.testing.assert_allclose(mood[:40][train.news.present].std(axis=0), 1.0)
    assert not mood[~stock.news.present].any()
    # later rows' articles move later moods only, never the projection
    later = news_stock(seed=1)
    changed = StockData(stock.ts_code, stock.dates, stock.close, stock.features,
                        stock.next_close, news=DailyNews(
                            np.where(np.arange(len(stock))[:, None] < 40, stock.news.vectors,
                                     later.news.vectors), stock.news.present, BASIS))
    again = fit_mood(prototype(quick_config(Config()), "wgan+news"),
                     [changed.rows(np.arange(len(stock)) < 40)])
    np.testing.assert_array_equal(again.components_, model.components_)
    # a fit whose last known close is before news.fit_end reads no mood (the encoder's
    # vocabulary holds text from after it)
    early = news_stock(first="20180301")
    blind = fit_mood(prototype(quick_config(Config()), "wgan+news"), [early.rows(
        np.arange(len(early)) < 40)])
    assert blind.components_ is None and not blind._context(early).any()


def test_conditioned_wgans_refuse_data_without_their_inputs():
    bare = news_stock()
    with pytest.raises(InputError, match="train minutes"):
        fit_mood(prototype(quick_config(Config()), "wgan+minutes"), [bare])
    no_news = StockData(bare.ts_code, bare.dates, bare.close, bare.features, bare.next_close)
    with pytest.raises(InputError, match="embed-news"):
        fit_mood(prototype(quick_config(Config()), "wgan+news"), [no_news])


def test_crps_rows_test_the_differential_by_day():
    days = np.repeat(pd.bdate_range("20180102", periods=30).strftime("%Y%m%d"), 2)
    rng = np.random.default_rng(3)
    walk = rng.uniform(0.01, 0.02, len(days))
    frame = pd.DataFrame({"ts_code": np.tile(["A", "B"], 30), "trade_date": days,
                          "crps": walk - 0.003, "walk_crps": walk,
                          "covered_80": True, "covered_95": True,
                          "walk_covered_80": False, "walk_covered_95": True})
    plain = frame.assign(crps=walk + rng.normal(0, 0.001, len(days)))
    rows = {r["model"]: r for r in distribution.distribution_rows({"wgan": plain,
                                                                   "wgan+news": frame})}
    assert rows["random_walk"]["crps"] == pytest.approx(walk.mean())
    assert rows["random_walk"]["coverage_80"] == 0 and rows["wgan+news"]["coverage_80"] == 1
    news = rows["wgan+news"]
    assert news["beats_random_walk"] and news["dm_crps_vs_random_walk"] < 0
    expected = metrics.loss_differential_test(days, frame["crps"] - plain["crps"])
    assert news["dm_crps_vs_wgan"] == pytest.approx(expected["stat"])
    assert "dm_crps_vs_wgan" not in rows["wgan"]
    # the same test as Diebold-Mariano by day on absolute errors
    actual, a, b = rng.normal(size=(3, len(days)))
    by_day = metrics.diebold_mariano_by_day(days, actual, a, b, power=1)
    assert metrics.loss_differential_test(days, abs(actual - a) - abs(actual - b)) == by_day
