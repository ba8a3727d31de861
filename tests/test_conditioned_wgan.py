"""The conditioned WGANs (`wgan+minutes`, `wgan+news`): the news mood is learned from the
training rows alone, and evaluate scores every sampling model's next-day distribution
walk-forward, against the random walk and the plain WGAN. (check_model and the scramble
run in test_conformance.py.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, sample_features

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


def test_the_news_mood_is_fit_on_training_rows_and_reads_zero_without_articles():
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


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The sample from 2014 with minute codes and news vectors; every stock reads every
    article (the few tagged with the bank leave most days without news)."""
    root = tmp_path_factory.mktemp("cwgan")
    folder = sample_features(root / "data", "600036.SH", "20140101")
    config = root / "config.json"
    config.write_text(json.dumps({"news": {"forecaster": {"stock_articles": "all"}}}))
    for stage in (("train", "minutes"), ("embed-news",)):
        code, _, err = run_cli(*stage, "--quick", "--data-dir", str(folder))
        assert code == 0, err
    return folder, config


def test_evaluate_scores_the_sampled_distributions_walk_forward(data, tmp_path):
    """One refit per model: the WGANs' rows in the leaderboard, and the table of CRPS and
    coverage against the random walk and the plain WGAN."""
    folder, config = data
    code, _, err = run_cli("evaluate", "--quick", "--models", "wgan,wgan+minutes,wgan+news",
                           "--test-start", "20180801", "--retrain-every", "200",
                           "--config", str(config), "--data-dir", str(folder),
                           "--results-dir", str(tmp_path))
    assert code == 0, err
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert {"wgan", "wgan+minutes", "wgan+news"} <= {r["model"] for r in board["rows"]}
    assert board["code_inputs"]["minutes"] == ["minute_z0", "minute_z1"]
    table = board["tables"][1]
    rows = {r["model"]: r for r in table["rows"]}
    assert list(rows) == ["random_walk", "wgan", "wgan+minutes", "wgan+news"]
    for name in ("wgan+minutes", "wgan+news"):
        assert rows[name]["forecasts"] == rows["wgan"]["forecasts"] > 50
        assert 0 <= rows[name]["coverage_95"] <= 1 and rows[name]["crps"] > 0
        assert np.isfinite(rows[name]["dm_crps_vs_wgan"])
        assert rows[name]["crps"] != rows["wgan"]["crps"]  # the condition reaches the samples
    assert np.isfinite(rows["wgan"]["dm_pvalue_vs_random_walk"])
    text = (tmp_path / "leaderboard.md").read_text()
    assert "CRPS and band coverage" in text and "against the plain wgan" in text
