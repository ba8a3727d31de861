"""The minute-bar day encoder and the encoders' daily codes as model inputs, on the shipped
sample: every day becomes a grid (short days too), grids are scale-free, codes know no
future, `<model>+minutes` / `<model>+vae` rows read the codes beside the features, and
`wgan+minutes` / `wgan+news` get evaluate's CRPS table."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from stockpred.config import Config, quick_config
from stockpred.data.store import RawStore, atomic_write_parquet
from stockpred.generative.minutes import SLOTS, MinuteDayEncoder, day_grids
from stockpred.layout import resolve_paths
from stockpred.models.registry import prototype
from stockpred.plots import generative as plots
from stockpred.plots import read_provenance
from stockpred.stages.generative import run_minutes
from stockpred.testing import conformance

STOCK, INDEX = "600036.SH", "000001.SH"
TEST_START = Config().evaluation.test_start


@pytest.fixture(scope="module")
def data(tmp_path_factory, sample_copy):
    return sample_copy(STOCK, "20120101", tmp_path_factory.mktemp("codes") / "data")


@pytest.fixture(scope="module")
def bars(data) -> pd.DataFrame:
    return RawStore(data / "raw").read("stk_mins", [INDEX])


def test_every_stored_day_becomes_a_grid_with_short_days_filled(bars):
    days, counts, grids = day_grids(bars)
    stored = bars["trade_time"].str.slice(0, 10).str.replace("-", "")
    assert list(days) == sorted(stored.unique()) and grids.shape == (len(days), 240, 6)
    bars_per_day = dict(zip(days, counts))
    # the 2016 circuit breakers stopped trading after 142 and 17 bars
    assert bars_per_day["20160104"] == 142 and bars_per_day["20160107"] == 17
    assert (counts == 239).any()
    halted = grids[list(days).index("20160107")]
    traded, volume, close = halted[:, 5], halted[:, 4], halted[:, 3]
    # 09:31-09:44, a 15-minute halt, 09:58-10:00, then closed for the day
    slots = [SLOTS.index(t[11:16]) for t in bars[stored == "20160107"]["trade_time"]]
    assert slots == [*range(14), 27, 28, 29]
    assert traded[slots].all() and traded.sum() == 17 and not volume[30:].any()
    assert np.all(halted[14:27, :4] == close[13]) and np.all(halted[30:, :4] == close[29])
    # prices are logs over the previous day's last close; volume shares average to 1
    previous = list(days).index("20160106")
    last_close = bars[stored == "20160106"]["close"].iloc[-1]
    first_close = bars[stored == "20160107"]["close"].iloc[0]
    assert close[0] == pytest.approx(np.log(first_close / last_close))
    assert grids[previous, :, 4].mean() == pytest.approx(1.0)
    assert len(SLOTS) == 240 and SLOTS[0] == "09:31" and SLOTS[-1] == "15:00"


def test_grids_do_not_change_when_the_price_history_is_rebased(bars):
    rebased = bars.copy()
    prices = ["open", "high", "low", "close"]
    rebased[prices] = rebased[prices] / 0.8828
    np.testing.assert_allclose(day_grids(rebased)[2], day_grids(bars)[2], rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def minutes_run(data, tmp_path_factory):
    paths = resolve_paths(Config(), data, tmp_path_factory.mktemp("results"))
    return run_minutes(Config(), paths, quick=True), paths


def test_the_encoder_writes_a_code_for_every_day_and_says_what_it_saw(minutes_run, bars):
    report, paths = minutes_run
    codes = pd.read_parquet(paths.minute_codes_table(INDEX))
    assert len(codes) == report.facts["days"] and codes.filter(like="minute_z").notna().all().all()
    assert dict(zip(codes["trade_date"], codes["bars"]))["20160107"] == 17
    manifest = json.loads(paths.minute_codes_manifest.read_text())
    assert manifest["seen_before"] == TEST_START and manifest["columns"] == ["minute_z0",
                                                                             "minute_z1"]
    assert report.facts["train_days"] > 0 and report.facts["validation_days"] > 0
    assert any("fewer than 240 bars" in line for line in report.summary())
    plots.run(Config(), paths)
    figure = paths.figures_dir("generative") / "minute_codes.png"
    drawn = read_provenance(figure)  # the quick flag reaches the figure from the run's record
    assert drawn["quick"] and drawn["run_id"] == report.run_dir.name
    assert drawn["source"] == f"models/minutes/{report.run_dir.name}"


def test_the_minute_encoder_keeps_the_model_contract(bars, tmp_path):
    days, _, grids = day_grids(bars)
    train, valid = grids[days < "20160101"], grids[(days >= "20160101") & (days < TEST_START)]
    conformance.check_model(prototype(quick_config(Config()), "minute_encoder"), train, valid,
                            grids, TEST_START, tmp_path)


def test_the_saved_encoder_gives_the_same_codes_and_errors(minutes_run, bars):
    report, paths = minutes_run
    again = MinuteDayEncoder.load(report.run_dir)
    days, _, grids = day_grids(bars)
    stored = pd.read_parquet(paths.minute_codes_table(INDEX))
    np.testing.assert_array_equal(again.encode(grids), stored.filter(like="minute_z").to_numpy())
    valid = (days >= Config().evaluation.validation_start) & (days < TEST_START)
    errors = again.validation_errors(grids[valid])
    assert errors == {key: report.facts[key] for key in errors}
    assert again.best_epoch_ == report.facts["best_epoch"]


def test_scrambling_the_test_period_changes_no_earlier_code(minutes_run, tmp_path):
    """Minute bars from the test start on replaced (reversed in time, scaled): the encoder
    and every earlier day's code stay bit-identical."""
    _, paths = minutes_run
    copy = tmp_path / "data"
    shutil.copytree(paths.data_dir, copy)
    for part in sorted((copy / "raw" / "stk_mins").glob("*.parquet")):
        frame = pd.read_parquet(part)
        later = frame["trade_time"] >= f"{TEST_START[:4]}-{TEST_START[4:6]}-{TEST_START[6:]}"
        if later.any():
            for column in ("open", "high", "low", "close", "vol"):
                frame.loc[later, column] = frame.loc[later, column].to_numpy()[::-1] * 1.3
            atomic_write_parquet(frame, part)
    scrambled_paths = resolve_paths(Config(), copy, tmp_path / "results")
    run_minutes(Config(), scrambled_paths, quick=True)
    before = pd.read_parquet(paths.minute_codes_table(INDEX))
    after = pd.read_parquet(scrambled_paths.minute_codes_table(INDEX))
    earlier = before["trade_date"] < TEST_START
    pd.testing.assert_frame_equal(before[earlier], after[earlier])
    assert not np.allclose(before.loc[~earlier, "minute_z0"], after.loc[~earlier, "minute_z0"])


def test_models_read_the_codes_beside_their_features(minutes_run, tmp_path):
    _, paths = minutes_run
    data, results = str(paths.data_dir), str(tmp_path / "results")
    assert run_cli("train", "vae", "--quick", "--data-dir", data)[0] == 0
    code, out, err = run_cli("evaluate", "--quick", "--models",
                             "xgboost,xgboost+minutes,xgboost+vae+minutes",
                             "--test-start", "20180701", "--retrain-every", "120",
                             "--data-dir", data, "--results-dir", results)
    assert code == 0, err
    board = json.loads((tmp_path / "results" / "leaderboard.json").read_text())
    rows = {row["model"]: row for row in board["rows"]}
    assert {"persistence", "xgboost", "xgboost+minutes", "xgboost+vae+minutes"} <= set(rows)
    assert board["code_inputs"]["minutes"] == ["minute_z0", "minute_z1"]
    assert board["code_inputs"]["vae+minutes"][-2:] == ["minute_z0", "minute_z1"]
    assert rows["xgboost+minutes"]["rmse_return"] != rows["xgboost"]["rmse_return"]
    assert "+minutes is the model given" in board["header"]


def test_codes_from_an_encoder_that_saw_the_test_period_are_refused(minutes_run, tmp_path):
    _, paths = minutes_run
    manifest = paths.minute_codes_manifest
    original = manifest.read_text()
    try:  # as if the encoder had been fit with a later test start
        manifest.write_text(json.dumps({**json.loads(original), "seen_before": "20180101"}))
        code, _, err = run_cli("evaluate", "--quick", "--models", "xgboost+minutes",
                               "--data-dir", str(paths.data_dir), "--results-dir",
                               str(tmp_path))
    finally:
        manifest.write_text(original)
    assert code != 0 and "saw days up to 20180101" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_input_family_gets_one_line(data, tmp_path):
    code, _, err = run_cli("evaluate", "--models", "xgboost+minuets", "--data-dir", str(data),
                           "--results-dir", str(tmp_path))
    assert code != 0 and "+minutes" in err and "Traceback" not in err


def test_evaluate_scores_the_conditioned_wgans_by_crps_walk_forward(minutes_run, tmp_path):
    """One refit per model: the WGANs' rows in the leaderboard, and the table of CRPS and
    band coverage against the random walk and the plain WGAN. Every stock reads every
    article (the few tagged with the bank leave most days without news)."""
    _, paths = minutes_run
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"news": {"forecaster": {"stock_articles": "all"}}}))
    data = str(paths.data_dir)
    assert run_cli("embed-news", "--quick", "--data-dir", data)[0] == 0
    code, _, err = run_cli("evaluate", "--quick", "--models", "wgan,wgan+minutes,wgan+news",
                           "--test-start", "20180801", "--retrain-every", "200",
                           "--config", str(config), "--data-dir", data,
                           "--results-dir", str(tmp_path / "results"))
    assert code == 0, err
    board = json.loads((tmp_path / "results" / "leaderboard.json").read_text())
    assert {"wgan", "wgan+minutes", "wgan+news"} <= {r["model"] for r in board["rows"]}
    assert board["code_inputs"]["minutes"] == ["minute_z0", "minute_z1"]
    rows = {r["model"]: r for r in board["tables"][1]["rows"]}
    assert list(rows) == ["random_walk", "wgan", "wgan+minutes", "wgan+news"]
    for name in ("wgan+minutes", "wgan+news"):
        assert rows[name]["forecasts"] == rows["wgan"]["forecasts"] > 50
        assert 0 <= rows[name]["coverage_95"] <= 1 and rows[name]["crps"] > 0
        assert np.isfinite(rows[name]["dm_crps_vs_wgan"])
        assert rows[name]["crps"] != rows["wgan"]["crps"]  # the condition reaches the samples
    assert np.isfinite(rows["wgan"]["dm_pvalue_vs_random_walk"])
    text = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "CRPS and band coverage" in text and "against the plain wgan" in text
