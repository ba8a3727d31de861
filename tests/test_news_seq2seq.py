"""The news seq2seq on the shipped sample: real articles, real SSE Composite bars, quick sizes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from stockpred.config import Config
from stockpred.errors import InputError, MissingInputError
from stockpred.layout import Paths
from stockpred.news import samples as news_samples
from stockpred.news import seq2seq
from stockpred.stages import embed_news
from stockpred.stages import seq2seq as seq2seq_stage
from stockpred.testing import conformance

MINUTE = pd.Timedelta(minutes=1)


def paths_of(folder) -> Paths:
    return Paths(data_dir=folder / "data", results_dir=folder / "results")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """News, SSE Composite daily and 1-minute bars of 2018, embedded (quick), one quick run."""
    folder = tmp_path_factory.mktemp("seq2seq")
    code, _, err = run_cli("fetch", "--source", "sample", "--only", "news,index_daily,stk_mins",
                           "--start", "20180101", "--data-dir", str(folder / "data"))
    assert code == 0, err
    embed_news.run(Config(), paths_of(folder), quick=True)
    report = seq2seq_stage.run(Config(), paths_of(folder), quick=True)
    return folder, report


@pytest.fixture(scope="module")
def samples(built):
    folder, _ = built
    s = Config().news.seq2seq
    vectors, _, index, minutes = news_samples.load_inputs(Config(), paths_of(folder), s)
    return news_samples.build_samples(vectors, index, minutes, s), vectors, index, minutes


def test_both_sample_types_are_built_and_their_targets_follow_their_news(samples):
    sets, vectors, index, minutes = samples
    s = Config().news.seq2seq
    for kind in news_samples.KINDS:
        meta = sets[kind].meta
        for split in ("train", "valid", "test"):
            assert (meta["split"] == split).sum() > 0, (kind, split)
        assert np.isfinite(sets[kind].target).all()
        assert sets[kind].has_news.any(axis=1).all()  # every sample has news

    off = sets["offhours"]
    assert off.target.shape == (len(off), 1) and off.news.shape[1] == s.offhours_steps
    opens = pd.to_datetime(off.meta["target_day"]) + pd.Timedelta(hours=9, minutes=25)
    closes = pd.to_datetime(off.meta["previous_day"]) + pd.Timedelta(hours=15)
    assert (off.meta["last_article"] < opens).all()
    assert (off.meta["first_article"] >= closes).all()
    assert (off.meta["target_day"] > off.meta["previous_day"]).all()
    assert (pd.to_datetime(off.meta["target_day"]) >= off.meta["last_article"].dt.normalize()).all()
    daily = index.set_index("trade_date")
    for row, gap in zip(off.meta.itertuples(), off.target[:, 0]):
        assert gap == pytest.approx(daily.loc[row.target_day, "open"]
                                    / daily.loc[row.previous_day, "close"] - 1)

    ins = sets["insession"]
    assert ins.target.shape == (len(ins), s.horizon_minutes)
    assert ins.news.shape[1] == s.lookback_minutes
    # an article stamped a may be published up to a:59; the first target bar starts later
    assert (ins.meta["first_target_start"] >= ins.meta["last_article"] + MINUTE).all()
    assert (ins.meta["base_bar_end"] >= ins.meta["last_article"] + MINUTE).all()
    assert (ins.meta["first_article"] > ins.meta["time"] - s.lookback_minutes * MINUTE).all()
    clock = ins.meta["time"].dt.strftime("%H:%M")
    assert ((clock >= "09:30") & (clock < "15:00")).all()
    bars = minutes.assign(end=pd.to_datetime(minutes["trade_time"])).set_index("end")["close"]
    for i in range(0, len(ins), 97):
        row = ins.meta.iloc[i]
        base = bars.loc[row["base_bar_end"]]
        path = bars.loc[row["base_bar_end"]:].iloc[1:s.horizon_minutes + 1] / base - 1
        assert np.allclose(ins.target[i], path.to_numpy())
        assert path.index[0] - MINUTE == row["first_target_start"]
    # the sample is dense: most articles make a sample
    assert len(off) > 50 and len(ins) > 400


def test_quick_run_compares_with_and_without_news_and_naive(built):
    folder, report = built
    run_dir = report.run_dir
    assert run_dir.parent == paths_of(folder).data_dir / "news" / "seq2seq"
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["quick"] and saved["settings"]["epochs"] <= 2
    for kind in news_samples.KINDS:
        m = saved["metrics"][kind]
        assert set(m["fill_comparison"]) == {"noise", "mask"}
        assert all(v["rmse"] > 0 for v in m["fill_comparison"].values())
        for name in ("with_news", "without_news", "naive"):
            t = m["test"][name]
            assert t["samples"] == m["samples"]["test"] > 0
            assert np.isfinite(t["rmse"]) and t["rmse"] > 0
        assert m["test"]["naive"]["directional_accuracy"] is None  # a zero calls no direction
        assert 0 <= m["test"]["with_news"]["directional_accuracy"] <= 1
        rmse = {fill: v["rmse"] for fill, v in m["fill_comparison"].items()}
        assert m["fill_won"] == min(rmse, key=rmse.get)
    assert (run_dir / seq2seq.NETWORK_DIR / "model.keras").exists()
    assert {m["epochs_run"] for m in saved["metrics"].values()} == {
        saved["metrics"]["offhours"]["epochs_run"]}  # one network, trained once
    lines = report.summary()
    assert any("without_news" in line for line in lines) and any("naive" in line for line in lines)
    assert sum(line.endswith(" won") for line in lines) == 2


def test_one_network_shares_its_encoder_between_the_kinds(built):
    _, report = built
    model = seq2seq.NewsSeq2Seq.load(report.run_dir / seq2seq.NETWORK_DIR)
    heads = model._heads()
    encoder = {id(v) for v in model.network_.get_layer("encoder").trainable_variables}
    own = {kind: {id(v) for v in heads[kind].trainable_variables} - encoder
           for kind in news_samples.KINDS}
    for kind in news_samples.KINDS:
        assert encoder <= {id(v) for v in heads[kind].trainable_variables}
        assert own[kind]  # its decoder and output layer
    assert not own["offhours"] & own["insession"]


def test_alternating_batches_take_turns_and_reshuffle_the_smaller_kind():
    rng = np.random.default_rng(0)
    batches = seq2seq.alternating_batches({"offhours": 5, "insession": 23}, 4, rng)
    assert [kind for kind, _ in batches] == ["offhours", "insession"] * 6
    seen = np.concatenate([rows for kind, rows in batches if kind == "insession"])
    assert sorted(seen) == list(range(23))  # one pass over the larger kind
    off = [rows for kind, rows in batches if kind == "offhours"]
    assert all(0 < len(rows) <= 4 for rows in off)
    assert set(np.concatenate(off)) == set(range(5))


def test_saved_model_predicts_what_the_trained_one_did(built):
    folder, report = built
    s = seq2seq_stage.effective_settings(Config().news.seq2seq, quick=True)
    vectors, _, index, minutes = news_samples.load_inputs(Config(), paths_of(folder), s)
    sets = news_samples.build_samples(vectors, index, minutes, s)
    predictions = pd.read_parquet(report.run_dir / "predictions.parquet")
    model = seq2seq.NewsSeq2Seq.load(report.run_dir / seq2seq.NETWORK_DIR)
    for kind, horizon in (("offhours", 1), ("insession", s.horizon_minutes)):
        test = sets[kind].split("test")
        predicted = model.predict(test)
        assert predicted.shape == (len(test), horizon) and np.isfinite(predicted).all()
        stored = predictions[predictions["kind"] == kind]
        cols = [f"with_news_{h + 1}" for h in range(horizon)]
        assert np.allclose(stored[cols].to_numpy(), predicted, rtol=1e-6, atol=1e-9)
        assert np.allclose(stored[[f"actual_{h + 1}" for h in range(horizon)]].to_numpy(),
                           test.target)


def test_the_network_keeps_the_model_contract_and_a_seed_gives_the_same_forecasts(samples,
                                                                                 tmp_path):
    sets = samples[0]
    s = seq2seq_stage.effective_settings(Config().news.seq2seq, quick=True)
    train = {kind: sets[kind].split("train").subset(np.arange(40)) for kind in news_samples.KINDS}
    valid = {kind: sets[kind].split("valid") for kind in news_samples.KINDS}
    network = seq2seq.NewsSeq2Seq(seq2seq.model_settings(s, "mask"), 7)
    fitted = conformance.check_model(network, train, valid, sets["insession"].split("test"),
                                     "", tmp_path)
    # a second fit of the same seed on the same rows forecasts the same, bit for bit (the
    # contract's fit is the first: one network fewer to build and train than a pair)
    again = network.clone().fit(train, valid)
    test = sets["offhours"].split("test")
    assert np.array_equal(again.predict(test), fitted.predict(test))


def test_missing_inputs_refuse_naming_the_stage(built, tmp_path):
    folder, _ = built
    with pytest.raises(MissingInputError, match="stockpred embed-news"):
        seq2seq_stage.run(Config(), paths_of(tmp_path), quick=True)
    shutil.copytree(folder / "data" / "news", tmp_path / "data" / "news",
                    ignore=shutil.ignore_patterns("seq2seq"))
    with pytest.raises(MissingInputError, match="stockpred fetch"):
        seq2seq_stage.run(Config(), paths_of(tmp_path), quick=True)
    shutil.copytree(folder / "data" / "raw" / "index_daily",
                    tmp_path / "data" / "raw" / "index_daily")
    with pytest.raises(MissingInputError, match="stk_mins.*stockpred fetch"):
        seq2seq_stage.run(Config(), paths_of(tmp_path), quick=True)
    assert not (tmp_path / "data" / "news" / "seq2seq").exists()


def test_vectors_fit_past_the_validation_start_are_refused(built):
    folder, _ = built
    late = Config(news={"seq2seq": {"valid_start": "20180601", "test_start": "20180801"}})
    with pytest.raises(InputError, match="news.fit_end"):
        seq2seq_stage.run(late, paths_of(folder), quick=True)
    empty = Config(news={"seq2seq": {"test_start": "20190101", "test_end": "20190601"}})
    with pytest.raises(InputError, match="no offhours news samples in the test period"):
        seq2seq_stage.run(empty, paths_of(folder), quick=True)
