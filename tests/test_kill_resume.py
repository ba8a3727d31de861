"""SIGKILL a real command at a few points, rerun it, and require what an uninterrupted run
writes: every stored table (derived ones included), the feature frames, a model's and a
walk-forward's predictions. Only run ids and timestamps may differ."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conftest import TOKEN, run_cli, sample_features, write_config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.replay import ReplayServer
from stockpred.data.store import TMP_MARK, RawStore

STOCKS = "600036.SH,600519.SH"
# a short test half-year keeps the walk-forward and the LSTM's test forecast small
EVALUATE = ["--quick", "--models", "xgboost", "--test-start", "20180701"]


def kill_when(args: list[str], ready: Callable[[], bool], limit_s: float = 120) -> bool:
    """Start `stockpred ARGS`, SIGKILL it once ``ready()`` holds; True if it was still
    running then (False: it finished first, which leaves nothing to check)."""
    proc = subprocess.Popen([sys.executable, "-m", "stockpred", *args], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit_s
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    return proc.wait() == -signal.SIGKILL


def rerun(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "stockpred", *args], capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr


def files(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern)))


def after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start > seconds


def copy_inputs(built: Path, to: Path, *outputs: str) -> Path:
    """A copy of the data folder ``built`` without the stage outputs named."""
    shutil.copytree(built, to, ignore=lambda folder, names: [
        n for n in names if Path(folder) == built and n in outputs])
    return to


def last_run(runs: Path) -> Path:
    """The newest run folder under ``runs``; a killed run's half-written twin is gone."""
    folders = sorted(runs.iterdir())
    assert not [f for f in folders if TMP_MARK in f.name], folders
    return folders[-1]


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
