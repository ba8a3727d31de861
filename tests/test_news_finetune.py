"""The fine-tuned news encoder on the shipped sample's 767 real Sina articles and SSE
Composite closes (a tiny network, two epochs): the store it writes, its cut-off rule,
loading a pre-trained checkpoint by layer name, refusing a bad one, and `plot news`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.config import Config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore
from stockpred.errors import InputError
from stockpred.layout import Paths
from stockpred.news import embed
from stockpred.news.forecaster import read_articles
from stockpred.plots import news as news_plots
from stockpred.stages import embed_news

TINY = {"vocabulary": 300, "sequence_length": 24, "width": 8, "heads": 1, "epochs": 2,
        "batch_size": 64, "patience": 1}
INDEX = "000001.SH"


def settings(**finetune) -> dict:
    return {"encoder": "finetuned", "dimensions": 4, "text_max_chars": 40,
            "finetune": {**TINY, **finetune}}


def paths_of(folder) -> Paths:
    return Paths(data_dir=folder / "data", results_dir=folder / "results")


def vectors_of(folder) -> pd.DataFrame:
    return pd.read_parquet(paths_of(folder).news_vectors)


def copy_raw(built, to):
    shutil.copytree(built / "data" / "raw", to / "data" / "raw")
    return to


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A data dir with the sample's news and index closes, embedded by the tiny encoder."""
    folder = tmp_path_factory.mktemp("finetune")
    code, _, err = run_cli("fetch", "--source", "sample", "--only", "news,index_daily",
                           "--data-dir", str(folder / "data"))
    assert code == 0, err
    report = embed_news.run(Config(news=settings()), paths_of(folder))
    return folder, report


def test_finetuned_vectors_go_to_the_store_the_news_models_read(sample):
    folder, report = sample
    table = vectors_of(folder)
    cols = embed.vector_columns(table)
    assert len(table) == report.rows == 767 and cols == ["v0", "v1", "v2", "v3"]
    assert list(table.columns[:5]) == embed.META_COLUMNS
    assert np.isfinite(table[cols].to_numpy()).all()
    assert np.abs(table[cols].to_numpy()).max() <= 1  # tanh
    manifest = json.loads(paths_of(folder).news_vectors_manifest.read_text())
    assert manifest["encoder"] == "finetuned" and manifest["fit_end"] == "20180701"
    news = RawStore(folder / "data" / "raw").read("news")
    before = int((news["datetime"] < "2018-07-01").sum())
    assert 0 < manifest["fit_rows"] == report.fit_rows <= before
    assert manifest["finetune"]["index_code"] == INDEX
    assert manifest["finetune"]["checkpoint"] is None
    assert manifest["finetune"]["loaded_layers"] == []
    assert paths_of(folder).news_encoder.is_file()
    # the news models read them as they read the fixed encoders' (with their fit_end rule)
    articles = read_articles(paths_of(folder))
    assert articles.vectors.shape == (767, 4)
    assert articles.basis["encoder"] == "finetuned" and articles.basis["fit_end"] == "20180701"


def test_articles_and_prices_after_the_cut_off_change_no_vector(sample, tmp_path):
    """Rewrite, drop and add articles from fit_end on and scramble the index's closes from
    fit_end on: every article in both tables keeps its vector, so the fitted
    encoder is the same function. A later fit_end does move them (the test can fail)."""
    folder, _ = sample
    full = vectors_of(folder)
    raw = RawStore(folder / "data" / "raw")
    news = raw.read("news")
    late = news["datetime"] >= "2018-07-01"
    changed = news.copy()
    rewritten = late & (np.arange(len(news)) % 2 == 0)
    changed.loc[rewritten, "title"] = "央行宣布降准0.5个百分点" + changed.loc[rewritten, "title"]
    changed = changed[~(late & (np.arange(len(news)) % 3 == 1))]
    extra = news[late].head(5).assign(title=lambda f: "新增 " + f["title"],
                                      datetime=lambda f: f["datetime"].str[:-2] + "59")
    changed = pd.concat([changed, extra], ignore_index=True)
    index = raw.read("index_daily")
    after = index["trade_date"] >= "20180701"
    rng = np.random.default_rng(7)
    index.loc[after, "close"] = index.loc[after, "close"].to_numpy() * rng.uniform(
        0.8, 1.2, int(after.sum()))
    other = tmp_path / "other"
    store = RawStore(other / "data" / "raw")
    store.upsert(CATALOGUE["news"], changed)
    store.upsert(CATALOGUE["index_daily"], index)
    embed_news.run(Config(news=settings()), paths_of(other))
    cols = embed.vector_columns(full)
    key = ["datetime", "title"]
    both = full.merge(vectors_of(other), on=key, suffixes=("", "_b"))
    assert len(both) >= int((~late).sum()) + 20
    assert np.array_equal(both[cols].to_numpy(), both[[c + "_b" for c in cols]].to_numpy())
    embed_news.run(Config(news={**settings(), "fit_end": "20180801"}), paths_of(other))
    later = vectors_of(other).merge(full, on=key, suffixes=("", "_a"))
    assert not np.allclose(later[cols].to_numpy(), later[[c + "_a" for c in cols]].to_numpy())


def test_a_checkpoint_is_loaded_by_layer_name_where_shapes_match(sample, tmp_path):
    """A tiny pre-trained model made here: its token embedding (same name and shape) is
    loaded, its news_vector layer (another shape) is not; with a learning rate of ~0 the
    fine-tuned encoder keeps the given embedding."""
    import keras

    folder, _ = sample
    given = np.linspace(-0.5, 0.5, TINY["vocabulary"] * TINY["width"], dtype=np.float32)
    given = given.reshape(TINY["vocabulary"], TINY["width"])
    tokens = keras.Input(shape=(TINY["sequence_length"],), dtype="int64")
    hidden = keras.layers.Embedding(TINY["vocabulary"], TINY["width"],
                                    name="token_embedding")(tokens)
    hidden = keras.layers.GlobalAveragePooling1D()(hidden)
    pretrained = keras.Model(tokens, keras.layers.Dense(16, name="news_vector")(hidden))
    pretrained.get_layer("token_embedding").set_weights([given])
    checkpoint = tmp_path / "pretrained.keras"
    pretrained.save(checkpoint)
    copy_raw(folder, tmp_path)
    config = Config(news=settings(checkpoint=str(checkpoint), learning_rate=1e-12))
    embed_news.run(config, paths_of(tmp_path))
    manifest = json.loads(paths_of(tmp_path).news_vectors_manifest.read_text())
    assert manifest["finetune"]["loaded_layers"] == ["token_embedding"]
    assert manifest["finetune"]["checkpoint"] == str(checkpoint)
    saved = keras.models.load_model(paths_of(tmp_path).news_encoder)
    network = saved.get_layer("news_encoder")
    assert np.allclose(network.get_layer("token_embedding").get_weights()[0], given, atol=1e-6)
    # the encoder this stage saved is itself a checkpoint: all of it loads, vocabulary too
    again = tmp_path / "again"
    copy_raw(folder, again)
    reused = Config(news=settings(checkpoint=str(paths_of(folder).news_encoder),
                                  learning_rate=1e-12))
    embed_news.run(reused, paths_of(again))
    loaded = json.loads(paths_of(again).news_vectors_manifest.read_text())["finetune"]
    assert len(loaded["loaded_layers"]) == 9
    cols = embed.vector_columns(vectors_of(folder))
    assert np.allclose(vectors_of(again)[cols], vectors_of(folder)[cols], atol=1e-5)


def test_a_missing_or_incompatible_checkpoint_is_one_line_and_exit_2(sample, tmp_path):
    import keras

    folder, _ = sample
    copy_raw(folder, tmp_path)
    unrelated = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2, name="other")])
    bad = tmp_path / "unrelated.keras"
    unrelated.save(bad)
    torn = tmp_path / "torn.keras"
    torn.write_bytes(b"not a zip file")
    for checkpoint, says in ((bad, "is incompatible"),
                             (tmp_path / "absent.keras", "does not exist"),
                             (torn, "is not a Keras model"), (tmp_path / "w.h5", "does not exist")):
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"news": settings(checkpoint=str(checkpoint))}))
        code, out, err = run_cli("embed-news", "--data-dir", str(tmp_path / "data"),
                                 "--config", str(config))
        assert code == 2, (checkpoint, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and "news.finetune.checkpoint" in lines[0]
    assert not paths_of(tmp_path).news_vectors.exists()
    with pytest.raises(InputError, match="not a .keras model file"):
        weights = tmp_path / "w.weights.h5"
        unrelated.save_weights(weights)
        embed_news.run(Config(news=settings(checkpoint=str(weights))), paths_of(tmp_path))


def test_plot_news_draws_the_two_by_three_grid_from_stored_data(sample, tmp_path):
    folder, _ = sample
    copy_raw(folder, tmp_path)
    shutil.copytree(paths_of(folder).news_dir, paths_of(tmp_path).news_dir)
    paths_of(tmp_path).news_encoder.unlink()  # a figure never needs the model
    code, out, err = run_cli("plot", "news", "--data-dir", str(tmp_path / "data"),
                             "--results-dir", str(tmp_path / "results"))
    assert code == 0, err
    figure = tmp_path / "results" / "news" / news_plots.PAIRS_FIGURE
    assert figure.stat().st_size > 20_000
    assert json.loads(figure.with_name(figure.name + ".json").read_text())["source"] == \
        "news/vectors.parquet"
    vectors, manifest = embed.read_vectors(paths_of(tmp_path))
    index = RawStore(tmp_path / "data" / "raw").read("index_daily", [INDEX])
    fig = news_plots._dimension_pairs(vectors, manifest, index, INDEX)
    pairs = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
    assert pairs == [("v0", "v1"), ("v0", "v2"), ("v0", "v3"), ("v1", "v2"), ("v1", "v3"),
                     ("v2", "v3")]
    assert np.array(fig.axes).size == 6 and fig.axes[0].get_gridspec().get_geometry() == (2, 3)
