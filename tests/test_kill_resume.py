"""SIGKILL a real command at a few points, rerun it, and require what an uninterrupted run
writes: every stored table (derived ones included), the feature frames, a model's and a
walk-forward's predictions. Only run ids and timestamps may differ. And Ctrl-C: exit 130,
one line, nothing half-written."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest

from conftest import (TOKEN, after, copy_inputs, files, kill_when, last_run, rerun, run_cli,
                      sample_features, signal_when, write_config)
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.replay import ReplayServer
from stockpred.data.store import TMP_MARK, RawStore

STOCKS = "600036.SH,600519.SH"
# a short test half-year keeps the walk-forward and the LSTM's test forecast small
EVALUATE = ["--quick", "--models", "xgboost", "--test-start", "20180701"]


def test_fetch_killed_anywhere_stores_what_an_uninterrupted_fetch_stores(
        server_tables, tushare_env, workdir):
    stocks = sorted(server_tables["stock_basic"]["ts_code"])[:20]
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks},
                     start_date="20170101", interfaces=["daily", "daily_basic", "adj_factor",
                                                        "qfq_daily"])
        reference = workdir / "uninterrupted"
        code, _, err = run_cli("fetch", "--data-dir", str(reference))
        assert code == 0, err
        raw = workdir / "data" / "raw"
        # mid-interface, then with the sources of qfq_daily stored and it not yet derived
        points = [lambda: files(raw, "daily/*.parquet") >= 8,
                  lambda: files(raw, "adj_factor/*.parquet") >= 1]
        assert all(kill_when(["fetch"], ready) for ready in points)
        rerun("fetch")
    want, got = RawStore(reference / "raw"), RawStore(raw)
    tables = [name for name in CATALOGUE if want.has(name)]
    assert {"daily", "daily_basic", "adj_factor", "qfq_daily", "stock_basic"} <= set(tables)
    for name in tables:
        pd.testing.assert_frame_equal(got.read(name), want.read(name), obj=name)
    assert not [p for p in raw.rglob("*") if TMP_MARK in p.name]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The shipped sample of two stocks with their features: the uninterrupted reference."""
    return sample_features(tmp_path_factory.mktemp("reference"), STOCKS, "20150101")


def test_features_killed_build_the_same_frames(built, workdir):
    folder = copy_inputs(built, workdir / "data", "features", "stages")
    features = folder / "features"
    killed = sum(kill_when(["features", "--data-dir", str(folder)], ready) for ready in
                 [after(2.5), lambda: files(features, "*.parquet") >= 1])
    assert killed >= 1
    rerun("features", "--data-dir", str(folder))
    assert sorted(p.name for p in features.iterdir()) == sorted(
        p.name for p in (built / "features").iterdir())
    for path in sorted((built / "features").glob("*.parquet")):
        pd.testing.assert_frame_equal(pd.read_parquet(features / path.name),
                                      pd.read_parquet(path), obj=path.name)
    manifests = [json.loads((f / "features" / "features.json").read_text()) for f in
                 (folder, built)]
    for manifest in manifests:
        manifest.pop("finished_at")
    assert manifests[0] == manifests[1]


def test_train_killed_mid_fit_forecasts_as_an_uninterrupted_run(built, workdir):
    code, _, err = run_cli("train", "lstm", "--quick", "--data-dir", str(built))
    assert code == 0, err
    folder = copy_inputs(built, workdir / "data", "models")
    runs = folder / "models" / "lstm"
    # the run's staging twin appears when the fit starts
    assert kill_when(["train", "lstm", "--quick", "--data-dir", str(folder)],
                     lambda: runs.exists() and any(runs.iterdir()))
    rerun("train", "lstm", "--quick", "--data-dir", str(folder))
    got, want = last_run(runs), last_run(built / "models" / "lstm")
    pd.testing.assert_frame_equal(pd.read_parquet(got / "predictions.parquet"),
                                  pd.read_parquet(want / "predictions.parquet"))
    metrics = [json.loads((run / "metrics.json").read_text())["metrics"] for run in (got, want)]
    assert metrics[0] == metrics[1]


def test_evaluate_killed_while_writing_scores_as_an_uninterrupted_run(built, workdir):
    results = workdir / "results"
    code, _, err = run_cli("evaluate", *EVALUATE, "--data-dir", str(built),
                           "--results-dir", str(results / "uninterrupted"))
    assert code == 0, err
    folder = copy_inputs(built, workdir / "data", "runs", "models")
    runs = folder / "runs" / "evaluate"
    args = ["evaluate", *EVALUATE, "--data-dir", str(folder), "--results-dir",
            str(results / "killed")]
    # the run's staging twin appears once the walk-forward is done, as the writing starts
    assert kill_when(args, lambda: runs.exists() and any(runs.iterdir()))
    rerun(*args)
    got, want = last_run(runs), last_run(built / "runs" / "evaluate")
    pd.testing.assert_frame_equal(pd.read_parquet(got / "predictions.parquet"),
                                  pd.read_parquet(want / "predictions.parquet"))
    boards = [json.loads((results / name / "leaderboard.json").read_text())["rows"]
              for name in ("killed", "uninterrupted")]
    assert boards[0] == boards[1]


def test_ctrl_c_mid_fit_exits_130_with_one_line_and_leaves_no_run(built, workdir):
    folder = copy_inputs(built, workdir / "data", "models")
    runs = folder / "models" / "xgboost"
    # the run's staging twin appears as the fit starts: Ctrl-C lands in XGBoost or after it
    code, err = signal_when(["train", "xgboost", "--quick", "--data-dir", str(folder)],
                            lambda: runs.exists() and any(runs.iterdir()), signal.SIGINT)
    assert (code, err) == (130, "error: interrupted\n")
    assert not any(runs.iterdir())  # neither a run nor its half-written twin
    assert not [p for p in folder.rglob(f"*{TMP_MARK}*")]
    [log] = (folder / "logs").glob("train-*.log")
    assert "train interrupted (Ctrl-C)" in log.read_text()
