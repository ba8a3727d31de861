"""The daily news model and its fusion with a price model, on the shipped news and bars."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.config import Config
from stockpred.data.store import RawStore
from stockpred.dataset import StockData
from stockpred.errors import InputError
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.layout import resolve_paths
from stockpred.models.base import Forecaster
from stockpred.models.registry import prototype
from stockpred.news import embed
from stockpred.news.forecaster import close_rows, with_news
from stockpred.stages import embed_news

INDEX = "000001.SH"


def config_for(folder, **forecaster) -> Config:
    return Config(data_dir=str(folder), news={"forecaster": forecaster})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The shipped news (embedded, quick sizes), stock names and SSE Composite bars."""
    folder = tmp_path_factory.mktemp("news_fusion") / "data"
    code, _, err = run_cli("fetch", "--source", "sample", "--ts-code", "600036.SH",
                           "--only", "news,stock_basic,index_daily,daily",
                           "--start", "20170101", "--data-dir", str(folder))
    assert code == 0, err
    embed_news.run(Config(), resolve_paths(Config(), folder), quick=True)
    return folder


@pytest.fixture(scope="module")
def index(data_dir) -> StockData:
    """The SSE Composite's closes as a StockData (the news model reads no features)."""
    bars = RawStore(data_dir / "raw").read("index_daily", [INDEX]).sort_values("trade_date")
    close = bars["close"].to_numpy(float)
    return StockData(INDEX, bars["trade_date"].to_numpy(str), close,
                     pd.DataFrame(index=range(len(close))), np.append(close[1:], np.nan))


def news_of(folder, stock: StockData, **forecaster) -> StockData:
    """``stock`` with the news under ``folder`` that the ``forecaster`` settings give it, as
    the stage building a news model's dataset attaches it."""
    config = config_for(folder, **forecaster)
    return with_news([stock], config, resolve_paths(config))[0]


def rows_between(stock: StockData, first: str, last: str) -> StockData:
    return stock.rows((stock.dates >= first) & (stock.dates <= last))


def test_an_article_belongs_to_the_first_close_after_it():
    dates = np.array(["20180702", "20180703", "20180705"])
    stamps = ["2018-07-02 14:59", "2018-07-02 15:00", "2018-07-03 23:10", "2018-07-04 10:00",
              "2018-07-05 15:00", "2018-06-30 10:00", "2018-07-01 16:00"]
    times = pd.to_datetime(stamps).to_numpy().astype("datetime64[m]")
    assert close_rows(times, dates).tolist() == [0, 1, 2, 2, -1, -1, 0]


def test_articles_after_the_close_of_t_leave_the_forecasts_up_to_t_unchanged(data_dir, index,
                                                                            tmp_path):
    """Walk-forward over July-September 2018 with every article from 15:00 of the cut day
    on scrambled, and one more stamped 15:00 of it: every forecast up to the cut day is
    the same, later ones are not."""
    cut, close_of_cut = "20180815", "2018-08-15 15:00:00"
    dirty_dir = tmp_path / "data"
    shutil.copytree(data_dir / "news", dirty_dir / "news")
    vectors = pd.read_parquet(dirty_dir / "news" / "vectors.parquet")
    later = (vectors["datetime"].astype(str) >= close_of_cut).to_numpy()
    cols = embed.vector_columns(vectors)
    vectors.loc[later, cols] = -vectors.loc[later, cols].to_numpy()[::-1]
    extra = vectors[~later].iloc[[0]].assign(datetime=close_of_cut)
    pd.concat([vectors, extra], ignore_index=True).to_parquet(dirty_dir / "news" /
                                                              "vectors.parquet")
    protocol = WalkForward("20180702", "20180928", retrain_every=20, train_days=400,
                           validation_days=20)
    clean, dirty = (walk_forward(prototype(config_for(folder), "news"),
                                 [news_of(folder, index, stock_articles="all")], protocol,
                                 progress=False)
                    for folder in (data_dir, dirty_dir))
    assert (clean["predicted_close"] != clean["close"]).sum() > 10  # the news speaks
    upto = (clean["trade_date"] <= cut).to_numpy()
    pd.testing.assert_series_equal(clean.loc[upto, "predicted_close"],
                                   dirty.loc[upto, "predicted_close"])
    assert not clean.loc[~upto, "predicted_close"].equals(dirty.loc[~upto, "predicted_close"])


def test_no_model_before_the_encoder_s_fit_end_and_none_without_enough_news_days(data_dir,
                                                                                  index):
    fit_end = json.loads((data_dir / "news" / "vectors.json").read_text())["fit_end"]
    index = news_of(data_dir, index)
    early = rows_between(index, "20170101", "20180620")  # targets known before fit_end
    assert max(early.next_dates) < fit_end
    model = prototype(config_for(data_dir, min_days=5), "news").fit([early])
    assert model.coef_ is None and model.fit_days_ == 0
    np.testing.assert_array_equal(model.predict(index), index.close)
    assert not model.informed(index).any()

    late = rows_between(index, "20170101", "20180810")
    model = prototype(config_for(data_dir), "news").fit([late])
    assert model.origin_ >= fit_end and model.fit_days_ >= 20 and model.coef_ is not None
    informed, predicted = model.informed(index), model.predict(index)
    assert informed.sum() > 50
    np.testing.assert_array_equal(predicted[~informed], index.close[~informed])
    assert (predicted[informed] != index.close[informed]).all()
    few = prototype(config_for(data_dir, min_days=500), "news").fit([late])
    assert few.coef_ is None and few.fit_days_ == model.fit_days_


def test_a_stock_reads_the_articles_tagged_with_its_company(data_dir):
    bars = RawStore(data_dir / "raw").read("daily", ["600036.SH"]).sort_values("trade_date")
    close = bars["close"].to_numpy(float)
    bare = StockData("600036.SH", bars["trade_date"].to_numpy(str), close,
                     pd.DataFrame(index=range(len(close))), np.append(close[1:], np.nan))
    stock = news_of(data_dir, bare)
    train = rows_between(stock, "20170101", "20180831")
    news = RawStore(data_dir / "raw").read("news")
    tagged = news[news["company"].fillna("").str.split("|").apply(lambda c: "招商银行" in c)]
    times = pd.to_datetime(tagged["datetime"]).to_numpy().astype("datetime64[m]")
    rows = close_rows(times, stock.dates)
    days = set(stock.dates[rows[rows >= 0]])
    own = prototype(config_for(data_dir, min_days=2), "news").fit([train])
    assert set(stock.dates[own.informed(stock)]) == days
    assert own.fit_days_ == len(days & set(train.dates))
    # China Merchants Securities (招商证券) is another company
    assert any("招商证券" in str(c) and "招商银行" not in str(c) for c in news["company"])
    market = prototype(config_for(data_dir, min_days=2, stock_articles="all"), "news")
    every = news_of(data_dir, bare, stock_articles="all")
    assert market.fit([rows_between(every, "20170101", "20180831")]).informed(every).sum() > \
        3 * len(days)


def test_saved_news_model_predicts_the_same_and_refuses_rebuilt_vectors(data_dir, index,
                                                                         tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(data_dir / "news", folder / "news")
    index = news_of(folder, index)
    model = prototype(config_for(folder), "news").fit([rows_between(index, "20170101",
                                                                    "20180810")])
    model.save(tmp_path / "model")
    again = Forecaster.load(tmp_path / "model")
    np.testing.assert_array_equal(again.predict(index), model.predict(index))
    manifest = folder / "news" / "vectors.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()),
                                    "finished_at": "later"}))
    with pytest.raises(InputError, match="rebuilt.*refit"):
        again.predict(news_of(folder, index))


def test_without_vectors_the_news_model_forecasts_no_change(tmp_path, index):
    index = news_of(tmp_path, index)
    assert index.news is None
    model = prototype(config_for(tmp_path), "news").fit([index])
    assert model.coef_ is None
    np.testing.assert_array_equal(model.predict(index), index.close)


def test_fusion_news_is_the_price_model_on_days_without_news_and_fits_alpha_on_news_days(
        data_dir, index):
    fused = prototype(config_for(data_dir, stock_articles="all"), "fusion+news",
                      {"components": ["drift", "news"]})
    assert fused.reads_news and not prototype(Config(), "fusion").reads_news
    index = news_of(data_dir, index, stock_articles="all")
    train = rows_between(index, "20170101", "20180531")
    valid = rows_between(index, "20180601", "20180830")
    fused.fit([train], [valid])
    drift, news = fused.components_
    informed = news.informed(index)
    assert news.informed(valid).sum() >= 20
    predicted = fused.predict(index)
    np.testing.assert_array_equal(predicted[~informed], drift.predict(index)[~informed])
    blend = fused.alpha_ * drift.predict(index) + (1 - fused.alpha_) * news.predict(index)
    np.testing.assert_allclose(predicted[informed], blend[informed])
    # alpha is the grid's best on the validation days with news
    on = news.informed(valid)
    actual = valid.next_return[on]
    z0, z1 = (c.predict(valid)[on] / valid.close[on] - 1 for c in (drift, news))
    errors = {w: np.mean((actual - (w * z0 + (1 - w) * z1)) ** 2) for w in np.linspace(0, 1, 21)}
    assert errors[min(errors, key=lambda w: abs(w - fused.alpha_))] == pytest.approx(
        min(errors.values()))
    # fusion keeps its LSTM and WGAN pair
    assert prototype(Config(), "fusion").settings["components"] == ["lstm", "wgan"]
    assert prototype(Config(), "fusion+news").settings["components"] == ["lstm", "news"]
