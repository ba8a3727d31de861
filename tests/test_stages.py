"""The stage table: one staleness rule, checked against every key of the config schema.

The edits are generated from the schema: every leaf key of config.json is changed once,
and exactly the stages whose sections hold it must go stale. The sections a model names
are held to what its ``settings_from`` reads, by the same edits.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from datetime import date, timedelta

import pytest
from pydantic import BaseModel

from stockpred.config import Config, load_config, with_overrides
from stockpred.errors import InputError
from stockpred.layout import Paths, resolve_paths
from stockpred.models.names import CROSS_SECTION, MODELS, STOCK, model_class, names_in
from stockpred.stages import table

# keys no recorded stage may depend on, and why
READ_BY_NO_STAGE = {
    "data_dir": "where results go, not what they are",
    "results_dir": "where results go, not what they are",
    "refresh.stages": "which stages refresh runs, not what any of them computes",
    "models.quick": "read by --quick runs only, which are never recorded",
    "experiments.quick_feature_windows": "read by --quick runs only",
}
# values for the keys whose type alone does not give a valid edit
EDITS = {
    "tushare.api_url": "http://127.0.0.1:9/dataapi",
    "fetch.universe.index": "000300.SH",
    "fetch.end_date": "20181231",
    "fetch.interfaces": ["daily"],
    "fetch.futures": ["IF.CFX"],
    "features.ma": [5, 21],
    "fetch.settle_time": "21:00",
    "tushare.calls_per_minute": 100,
    "tushare.rows_per_call": {"daily": 1000},
    "compute.scheduler": "tcp://127.0.0.1:8786",
    "compute.workers": 1,
    "compute.memory_limit": "2GB",
    "universes": {"mine": {"kind": "top_liquid", "n": 5}},
    "news.seq2seq.open_cutoff": "09:20",
    "news.bert.host": "127.0.0.1",
    "cross_section.universe": "top500",
    "cross_section.backtest.benchmark_index": "000905.SH",
    "refresh.train_model": "gru",
    "qlib.dir": "qlib_cn",
    "news.finetune.checkpoint": "pretrained.keras",
}
# keys that are only valid edited together with another
PAIRED_EDITS = {
    "fetch.universe.ts_codes": {"fetch": {"universe": {"index": None, "ts_codes": ["600036.SH"]}}},
}


def _leaves(model: BaseModel, prefix: str = ""):
    for name, field in type(model).model_fields.items():
        if field.exclude:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value, field.annotation


def _candidates(key: str, value, annotation) -> list:
    if key in EDITS:
        return [EDITS[key]]
    choices = [c for c in typing.get_args(annotation) if isinstance(c, str)]
    if typing.get_origin(annotation) is typing.Literal:
        return [c for c in choices if c != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2]
    if isinstance(value, float):
        return [value * 1.5, value / 2, value + 0.1]
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        day = date(int(value[:4]), int(value[4:6]), int(value[6:]))
        return [(day + timedelta(days=d)).strftime("%Y%m%d") for d in (1, -1, 30, -30)]
    if isinstance(value, str) and value.endswith((".SH", ".SZ")):
        return ["600000.SH", "000001.SH"]
    if isinstance(value, (list, tuple)) and value:
        first = value[0]
        bumped = ([first[0] + 1, *first[1:]] if isinstance(first, (list, tuple)) else
                  first + 1 if isinstance(first, (int, float)) else first)
        return [list(value[:-1]), [*value, value[-1]], [bumped, *value[1:]]]
    if isinstance(value, list):
        return [["600000.SH"], ["lstm"]]
    return [value + "2"] if isinstance(value, str) else []


def _nested(key: str, value) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _every_edit(config: Config):
    """(key, edited config) for every leaf key; a key without a valid edit fails here."""
    for key, value, annotation in _leaves(config):
        overrides = ([PAIRED_EDITS[key]] if key in PAIRED_EDITS else
                     [_nested(key, c) for c in _candidates(key, value, annotation)])
        for override in overrides:
            try:
                edited = with_overrides(config, override)
            except InputError:
                continue
            if edited.model_dump() != config.model_dump():
                yield key, edited
                break
        else:
            pytest.fail(f"no valid edit of {key} (value {value!r}): add one to EDITS")


def _reads(section: str, key: str) -> bool:
    return key == section or key.startswith(section + ".")


@pytest.fixture(scope="module")
def every_model() -> Config:
    """The defaults with every model evaluated, so that every model's sections count."""
    return with_overrides(Config(), {"evaluation": {"models": names_in(STOCK)},
                                     "cross_section": {"models": names_in(CROSS_SECTION)}})


RECORDED = [s for s in table.STAGES if s.records is not table._never]


def _stale(config: Config, paths: Paths) -> set[str]:
    return {s.name for s in RECORDED if table.is_stale(s, config, paths)}


def test_editing_any_key_makes_exactly_the_stages_that_read_it_stale(every_model, tmp_path):
    paths = Paths(data_dir=tmp_path / "data", results_dir=tmp_path / "results")
    for stage in RECORDED:
        table.record_run(stage, every_model, paths)
    assert _stale(every_model, paths) == set()
    unread = []
    for key, edited in _every_edit(every_model):
        readers = {s.name for s in RECORDED
                   if any(_reads(section, key) for section in s.sections(every_model))}
        if not readers and not any(_reads(k, key) for k in READ_BY_NO_STAGE):
            unread.append(key)
        assert _stale(edited, paths) == readers, key
    assert unread == [], f"keys no stage declares it reads: {unread}"


@pytest.mark.parametrize("name", list(MODELS))
def test_a_model_names_every_key_its_settings_come_from(name, every_model):
    cls = model_class(name)
    assert (cls.name, cls.world) == (name, MODELS[name][0]), "the registry line disagrees"
    before = json.dumps(cls.settings_from(every_model), sort_keys=True, default=str)
    for key, edited in _every_edit(every_model):
        if json.dumps(cls.settings_from(edited), sort_keys=True, default=str) != before:
            assert any(_reads(s, key) for s in cls.config_sections()), (name, key)


def test_the_cli_stays_a_thin_shell_over_the_table():
    """The CLI keeps the session and the generator; everything else belongs to a stage."""
    import stockpred.cli

    assert len(Path(stockpred.cli.__file__).read_text().splitlines()) <= 250


def test_every_artefact_read_is_written_by_a_stage_or_a_benchmark():
    written = {key for stage in table.STAGES for key in stage.writes}
    for stage in table.STAGES:
        for key in (*stage.reads, *stage.writes):
            assert key in table.ARTEFACTS, (stage.name, key)
        assert set(stage.reads) <= written | set(table.EXTERNAL), stage.name


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_copy):
    return sample_copy("600036.SH", "20160101", tmp_path_factory.mktemp("stages") / "data")


def test_a_changed_input_makes_its_readers_stale(built, workdir):
    config = load_config()
    paths = resolve_paths(config, built)
    for stage in RECORDED:
        table.record_run(stage, config, paths)
    manifest = json.loads(paths.features_manifest.read_text())
    original = paths.features_manifest.read_text()
    try:
        # a new timestamp or another config hash alone is no change
        paths.features_manifest.write_text(json.dumps({**manifest, "finished_at": "later",
                                                       "config_sha256": "other"}))
        assert _stale(config, paths) == set()
        paths.features_manifest.write_text(json.dumps({**manifest, "stocks": {}}))
        assert _stale(config, paths) == {s.name for s in RECORDED if "features" in s.reads}
    finally:
        paths.features_manifest.write_text(original)


def test_refresh_skips_fresh_stages_and_reruns_an_edited_one(built, workdir, caplog):
    (workdir / "config.json").write_text(json.dumps({
        "fetch": {"source": "sample", "universe": {"index": None, "ts_codes": ["600036.SH"]},
                  "start_date": "20160101"},
        "refresh": {"stages": ["features"]}}))
    config = load_config()
    paths = resolve_paths(config, built)
    first = table.refresh(config, paths)
    second = table.refresh(config, paths)
    assert "features: up to date, inputs unchanged" in second, (first, second)
    # a setting no stage after fetch reads reruns nothing
    assert "features: up to date, inputs unchanged" in table.refresh(
        with_overrides(config, {"plot": {"days": 400}}), paths)
    edited = with_overrides(config, {"features": {"indicators": {"ma": [5, 21]}}})
    caplog.clear()
    with caplog.at_level("INFO", logger="stockpred"):
        third = table.refresh(edited, paths)
    assert not any(line.startswith("features: up to date") for line in third)
    # an unattended log says where the night is: each stage run starts and finishes
    logged = [r.getMessage() for r in caplog.records if r.name == "stockpred.stages.table"]
    assert [m.split(" in ")[0] for m in logged] == ["fetch: started", "fetch: finished",
                                                    "features: started", "features: finished"]


def test_a_command_run_records_its_stage_and_stages_lists_every_command(built, workdir):
    from conftest import run_cli

    code, out, err = run_cli("stages", "--data-dir", str(built))
    assert code == 0, err
    listed = {line.split()[0] for line in out.splitlines()[1:]}
    assert listed == {s.name for s in table.STAGES}
    code, _, err = run_cli("importance", "--data-dir", str(built))
    assert code == 0, err
    paths = resolve_paths(load_config(), built)
    assert not table.is_stale(table.stage("importance"), load_config(), paths)
    # a run over other stocks is not the stage's own result: nothing recorded
    record = paths.stage_record("importance").read_text()
    code, _, err = run_cli("importance", "--ts-code", "600036.SH", "--data-dir", str(built))
    assert code == 0, err
    assert paths.stage_record("importance").read_text() == record


def test_the_architecture_doc_shows_the_table():
    from conftest import REPO

    doc = (REPO / "doc" / "architecture.md").read_text(encoding="utf-8")
    shown = doc.split("<!-- stages -->\n")[1].split("<!-- /stages -->")[0]
    assert shown == table.markdown(Config()), "run `stockpred stages --markdown` into the doc"
