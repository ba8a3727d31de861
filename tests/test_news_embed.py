"""embed-news on the shipped sample's 767 real Sina articles: the offline encoder, its
look-ahead rule, bert-as-service through a real ZMQ round trip, refusals, the figure."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bert_service import BertService, hashed_characters
from conftest import run_cli
from stockpred.config import Config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore
from stockpred.errors import InputError, MissingInputError
from stockpred.layout import Paths
from stockpred.news import embed
from stockpred.plots import news as news_plots
from stockpred.stages import embed_news

FIT_END = "20180701"


def paths_of(folder) -> Paths:
    return Paths(data_dir=folder / "data", results_dir=folder / "results")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A data dir holding the shipped sample's news table, embedded with the offline encoder."""
    folder = tmp_path_factory.mktemp("news")
    code, _, err = run_cli("fetch", "--source", "sample", "--only", "news", "--data-dir",
                           str(folder / "data"))
    assert code == 0, err
    report = embed_news.run(Config(), paths_of(folder))
    return folder, report


def vectors_of(folder) -> pd.DataFrame:
    return pd.read_parquet(paths_of(folder).news_vectors)


def test_offline_vectors_one_finite_unit_row_per_article(sample):
    folder, report = sample
    news = RawStore(folder / "data" / "raw").read("news")
    table = vectors_of(folder)
    cols = embed.vector_columns(table)
    assert len(news) == 767 and len(table) == 767 and report.rows == 767
    assert cols == [f"v{i}" for i in range(Config().news.dimensions)]
    assert list(table.columns[:5]) == embed.META_COLUMNS
    values = table[cols].to_numpy()
    assert np.isfinite(values).all()
    assert np.allclose(np.linalg.norm(values, axis=1), 1.0, atol=1e-5)
    assert sorted(zip(table["datetime"], table["title"])) == sorted(zip(news["datetime"],
                                                                        news["title"]))
    assert table["datetime"].is_monotonic_increasing
    manifest = json.loads(paths_of(folder).news_vectors_manifest.read_text())
    assert manifest["encoder"] == "offline" and manifest["dimensions"] == 64
    assert manifest["rows"] == 767 and manifest["fit_end"] == FIT_END
    assert manifest["fit_rows"] == int((news["datetime"] < "2018-07-01").sum()) == report.fit_rows
    assert any("767 articles" in line for line in report.summary())


def test_offline_encoder_puts_paraphrases_closer_than_an_unrelated_headline(sample):
    folder, _ = sample
    news = embed.read_news(paths_of(folder))
    early = news[news["datetime"] < "2018-07-01"]
    encoder = embed.OfflineEncoder(64, (1, 3)).fit(embed.article_texts(early, 1000))
    pairs = [("证监会发布新规 严查上市公司财务造假", "证监会出台新规定 从严查处上市公司财务造假",
              "白酒板块集体走强 贵州茅台涨逾3%"),
             ("地产板块快速下挫 保利地产华夏幸福跌超4%", "房地产股快速走低 华夏幸福保利地产跌逾4%",
              "芯片概念股午后拉升 多股涨停")]
    for one, paraphrase, unrelated in pairs:
        a, b, c = encoder.transform([one, paraphrase, unrelated])
        assert a @ b > max(a @ c, b @ c) + 0.3, (one, a @ b, a @ c, b @ c)


def test_no_vector_depends_on_an_article_published_on_or_after_fit_end(sample, tmp_path):
    """Rewrite, drop and add articles from fit_end on: every vector of an article that is in
    both tables is unchanged. Moving fit_end later does change them (the test can fail)."""
    folder, _ = sample
    full = vectors_of(folder)
    news = RawStore(folder / "data" / "raw").read("news")
    late = news["datetime"] >= "2018-07-01"
    changed = news.copy()
    rewritten = late & (np.arange(len(news)) % 2 == 0)
    changed.loc[rewritten, "content"] = "公司公告称，控股股东拟减持不超过2%股份。" * 20
    changed.loc[rewritten, "title"] = changed.loc[rewritten, "title"] + "（更新）"
    changed = changed[~(late & (np.arange(len(news)) % 3 == 1))]
    extra = news[late].head(5).assign(
        title=lambda f: "新增 " + f["title"], datetime=lambda f: f["datetime"].str[:-2] + "59",
        content="新文章：" + news[late].head(5)["content"].str[::-1])
    changed = pd.concat([changed, extra], ignore_index=True)
    other = tmp_path / "other"
    RawStore(other / "data" / "raw").upsert(CATALOGUE["news"], changed)
    embed_news.run(Config(), paths_of(other))
    again = vectors_of(other)
    cols = embed.vector_columns(full)
    key = ["datetime", "title"]
    both = full.merge(again, on=key, suffixes=("", "_b"))
    assert len(both) >= int((~late).sum()) + 20
    assert np.array_equal(both[cols].to_numpy(), both[[c + "_b" for c in cols]].to_numpy())
    # a later fit_end lets July's articles into the fit, and then early vectors do move
    embed_news.run(Config(news={"fit_end": "20180901"}), paths_of(other))
    later = vectors_of(other).merge(full, on=key, suffixes=("", "_a"))
    assert not np.allclose(later[cols].to_numpy(), later[[c + "_a" for c in cols]].to_numpy())


def test_bert_service_encoder_returns_the_servers_vectors(sample, tmp_path):
    folder, _ = sample
    shutil.copytree(folder / "data" / "raw", tmp_path / "data" / "raw")
    paths = paths_of(tmp_path)
    with BertService() as server:
        config = Config(news={"bert": {"host": "127.0.0.1", "port": server.port,
                                       "port_out": server.port_out, "timeout_ms": 5000,
                                       "batch_size": 300}})
        report = embed_news.run(config, paths, encoder="bert-service")
        assert server.requests[0] == b"SHOW_CONFIG"
        assert len(server.requests) == 1 + 3  # 767 articles in batches of 300
    table = vectors_of(tmp_path)
    expected = hashed_characters(embed.article_texts(embed.read_news(paths), 1000))
    assert report.dimensions == 32 and len(table) == 767
    assert np.array_equal(table[embed.vector_columns(table)].to_numpy(), expected)
    manifest = json.loads(paths.news_vectors_manifest.read_text())
    assert manifest["encoder"] == "bert-service" and manifest["fit_end"] is None


def test_a_dead_bert_server_is_a_one_line_input_error():
    with BertService() as server:
        ports = server.port, server.port_out
    settings = Config(news={"bert": {"host": "127.0.0.1", "port": ports[0],
                                     "port_out": ports[1], "timeout_ms": 200}}).news.bert
    with pytest.raises(InputError) as caught:
        embed.bert_service_encode(["央行下调存款准备金率"], settings)
    message = str(caught.value)
    assert "did not answer within 200 ms" in message and "\n" not in message


def test_missing_news_refuses_naming_fetch(tmp_path):
    with pytest.raises(MissingInputError, match="stockpred fetch"):
        embed_news.run(Config(), paths_of(tmp_path))
    with pytest.raises(MissingInputError, match="stockpred embed-news"):
        news_plots.run(Config(), paths_of(tmp_path))
    with pytest.raises(InputError, match="unknown news encoder"):
        embed_news.run(Config(), paths_of(tmp_path), encoder="word2vec")


def test_too_few_articles_before_fit_end_is_a_clear_error(sample, tmp_path):
    folder, _ = sample
    shutil.copytree(folder / "data" / "raw", tmp_path / "data" / "raw")
    with pytest.raises(InputError, match="news.fit_end"):
        embed_news.run(Config(news={"fit_end": "20180313"}), paths_of(tmp_path))


def test_news_vectors_figure(sample):
    folder, _ = sample
    made = news_plots.run(Config(), paths_of(folder))
    assert made == [folder / "results" / "news" / "news_vectors.png"]
    assert made[0].stat().st_size > 20_000
    labels = news_plots.ascii_labels(pd.Series(["财经", "sinaStock", "财经", "股票"]))
    assert labels.str.isascii().all() or news_plots._cjk_font() is not None
