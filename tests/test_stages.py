"""The stage table: one staleness rule, each config section re-running exactly its stages."""

from __future__ import annotations

import json

import pytest

from conftest import sample_features
from stockpred.config import load_config, with_overrides
from stockpred.layout import resolve_paths
from stockpred.stages import table

# one edit inside each section a stage declares
EDITS = {
    "features": {"features": {"indicators": {"ma": [5, 21]}}},
    "importance": {"importance": {"top_k": 10}},
    "models": {"models": {"lstm": {"units": [32]}}},
    "evaluation": {"evaluation": {"retrain_every": 30}},
    "generative.vae": {"generative": {"vae": {"latent_dim": 3}}},
    "generative.minutes": {"generative": {"minutes": {"code_dim": 3}}},
    "news.encoder": {"news": {"encoder": "bert-service"}},
    "news.dimensions": {"news": {"dimensions": 32}},
    "news.fit_end": {"news": {"fit_end": "20180601"}},
    "news.ngram_range": {"news": {"ngram_range": [1, 2]}},
    "news.text_max_chars": {"news": {"text_max_chars": 500}},
    "news.bert": {"news": {"bert": {"port": 5557}}},
    "news.forecaster": {"news": {"forecaster": {"ridge_alpha": 2.0}}},
    "refresh.train_model": {"refresh": {"train_model": "gru"}},
    "plot": {"plot": {"ts_code": "600000.SH"}},
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return sample_features(tmp_path_factory.mktemp("stages"), "600036.SH", "20160101")


def _stale(config, paths) -> set[str]:
    return {s.name for s in table.STAGES if table.is_stale(s, config, paths)}


def test_every_declared_section_is_edited_here():
    declared = {section for stage in table.STAGES for section in stage.sections}
    assert declared == set(EDITS)


@pytest.mark.parametrize("section", list(EDITS))
def test_editing_a_section_makes_exactly_its_stages_stale(section, built, workdir):
    config = load_config()
    paths = resolve_paths(config, built)
    for stage in table.STAGES:
        table.record_run(stage.name, config, paths)
    assert _stale(config, paths) == set()
    edited = with_overrides(config, EDITS[section])
    assert _stale(edited, paths) == {s.name for s in table.STAGES if section in s.sections}


def test_a_changed_input_makes_its_readers_stale(built, workdir):
    config = load_config()
    paths = resolve_paths(config, built)
    for stage in table.STAGES:
        table.record_run(stage.name, config, paths)
    manifest = json.loads(paths.features_manifest.read_text())
    original = paths.features_manifest.read_text()
    try:
        # a new timestamp alone is no change
        paths.features_manifest.write_text(json.dumps({**manifest, "finished_at": "later"}))
        assert _stale(config, paths) == set()
        paths.features_manifest.write_text(json.dumps({**manifest, "stocks": {}}))
        assert _stale(config, paths) == {s.name for s in table.STAGES if "features" in s.reads}
    finally:
        paths.features_manifest.write_text(original)


def test_refresh_skips_fresh_stages_and_reruns_an_edited_one(built, workdir):
    (workdir / "config.json").write_text(json.dumps({
        "fetch": {"source": "sample", "universe": {"index": None, "ts_codes": ["600036.SH"]},
                  "start_date": "20160101"},
        "refresh": {"stages": ["features"]}}))
    config = load_config()
    paths = resolve_paths(config, built)
    first = table.refresh(config, paths)
    second = table.refresh(config, paths)
    assert "features: up to date, inputs unchanged" in second, (first, second)
    edited = with_overrides(config, EDITS["features"])
    third = table.refresh(edited, paths)
    assert not any(line.startswith("features: up to date") for line in third)
