"""The nightly signal on the shipped sample (top20): tomorrow's scores and TopK-Dropout
target, unchanged when later days arrive, the same on a second run, and the same after a
run killed part way."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, run_cli
from stockpred.config import Config, with_overrides
from stockpred.data.store import TMP_MARK
from stockpred.layout import resolve_paths
from stockpred.stages import signal

SETTINGS = {"compute": {"workers": 0},
            "cross_section": {"universe": "top20", "models": ["lightgbm"], "train_days": 250,
                              "validation_days": 50, "retrain_every": 10,
                              "lightgbm": {"n_estimators": 20, "num_leaves": 15,
                                           "reg_alpha": 0.0, "reg_lambda": 1.0,
                                           "threads": 1},
                              "backtest": {"topk": 5, "n_drop": 1}}}
FIRST, LATER = "20180615", "20180622"
SUSPENDED = "601390.SH"  # no bar from 20180608 to past FIRST


def _cli(folder: Path, *args) -> None:
    code, _, err = run_cli(*args, "--data-dir", str(folder / "data"), "--config",
                           str(folder / "config.json"))
    assert code == 0, err


def _night(folder: Path, end: str) -> None:
    """The nightly job up to the signal: fetch to ``end``, membership and factors."""
    _cli(folder, "fetch", "--source", "sample", "--start", "20170101", "--end", end)
    _cli(folder, "features", "--universe", "top20")


def _signal(folder: Path, **cross_section) -> list[str]:
    config = with_overrides(Config(), {**SETTINGS, "cross_section": {
        **SETTINGS["cross_section"], **cross_section}})
    return signal.run(config, resolve_paths(config, folder / "data"))


def _files(folder: Path) -> dict[str, str]:
    """Content hashes of the signal folder's files, temporaries left aside."""
    root = folder / "data" / "signals"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and TMP_MARK not in str(p)}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A store up to FIRST with its factors, no signal yet."""
    folder = tmp_path_factory.mktemp("signal") / "store"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SETTINGS))
    _night(folder, FIRST)
    return folder


@pytest.fixture(scope="module")
def first(stored, tmp_path_factory):
    """The store with FIRST's signal, uninterrupted."""
    folder = tmp_path_factory.mktemp("first") / "store"
    shutil.copytree(stored, folder)
    _signal(folder)
    return folder


def test_the_signal_scores_every_member_and_builds_the_target(first):
    table = pd.read_parquet(first / "data" / "signals" / f"{FIRST}.parquet")
    config = with_overrides(Config(), SETTINGS)
    members = pd.read_parquet(resolve_paths(config, first / "data").universe_members("top20"))
    assert list(table.columns) == ["trade_date", "ts_code", "score", "rank", "model"]
    assert set(table["ts_code"]) == set(members.loc[members["trade_date"] == FIRST, "ts_code"])
    assert (table["trade_date"] == FIRST).all() and sorted(table["rank"]) == list(
        range(1, len(table) + 1))
    run = table["model"].iloc[0]
    assert run.startswith(f"lightgbm-{FIRST}-") and (table["model"] == run).all()
    assert (first / "data" / "signals" / "models" / run / "fit.json").exists()
    book = json.loads((first / "data" / "signals" / f"{FIRST}.portfolio.json").read_text())
    best = table.sort_values("rank")["ts_code"].head(5).tolist()
    assert [row["ts_code"] for row in book["target"]] == best  # an empty book buys the top 5
    assert book["previous"] is None and book["model_run"] == run and book["sell"] == []


def test_later_days_leave_the_day_alone_and_build_on_its_target(first, tmp_path):
    folder = tmp_path / "store"
    shutil.copytree(first, folder)
    before = _files(folder)
    _night(folder, LATER)
    lines = _signal(folder)
    after = _files(folder)
    assert {k: v for k, v in after.items() if k in before and k != "signal.json"} == \
        {k: v for k, v in before.items() if k != "signal.json"}
    book = json.loads((folder / "data" / "signals" / f"{LATER}.portfolio.json").read_text())
    previous = json.loads((folder / "data" / "signals" / f"{FIRST}.portfolio.json")
                          .read_text())
    held = [row["ts_code"] for row in previous["target"]]
    assert book["previous"] == FIRST
    kept = [row["ts_code"] for row in book["target"] if row["action"] == "hold"]
    assert set(kept) | {row["ts_code"] for row in book["sell"]} == set(held)
    assert len(book["sell"]) <= 1 and len(book["target"]) == 5
    # four trading days on, within retrain_every (10): the model of FIRST scores LATER
    assert book["model_run"] == previous["model_run"] and "fitted on 20180615" in lines[0]
    # past it, the model is fitted again on LATER's close, under its own run id
    assert f"fitted on {LATER}" in _signal(folder, retrain_every=3)[0]


def test_a_second_run_on_the_day_changes_nothing(first, tmp_path):
    folder = tmp_path / "store"
    shutil.copytree(first, folder)
    before = _files(folder)
    _signal(folder)
    assert _files(folder) == before


def test_a_held_stock_that_cannot_trade_is_marked_not_dropped(stored, tmp_path):
    folder = tmp_path / "store"
    shutil.copytree(stored, folder)
    held = [SUSPENDED, "600028.SH", "600030.SH", "601288.SH", "600196.SH"]
    path = folder / "data" / "signals" / "20180614.portfolio.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"target": [{"ts_code": c} for c in held]}))
    _signal(folder)
    book = json.loads((folder / "data" / "signals" / f"{FIRST}.portfolio.json").read_text())
    # without a score (not a member while suspended) it ranks last and is sold, marked
    assert book["previous"] == "20180614"
    assert book["sell"] == [{"ts_code": SUSPENDED, "score": None, "rank": None,
                             "blocked": "suspended"}]


KILLER = """
import os, signal as sig, sys
from stockpred.stages import signal
calls = []
real = signal.atomic_write_text

def dying(*args, **kwargs):
    calls.append(args)
    if len(calls) == {at}:
        os.kill(os.getpid(), sig.SIGKILL)
    return real(*args, **kwargs)

signal.atomic_write_text = dying
from stockpred.config import Config, with_overrides
from stockpred.layout import resolve_paths
config = with_overrides(Config(), {settings})
signal.run(config, resolve_paths(config, sys.argv[1]))
"""


@pytest.mark.parametrize("at, left", [(1, "no signal file"),  # in the fit, its folder unnamed
                                      (2, "the scores, no portfolio")])
def test_a_run_killed_part_way_reruns_to_the_same_signal(at, left, stored, first, tmp_path):
    folder = tmp_path / "store"
    shutil.copytree(stored, folder)
    script = KILLER.replace("{at}", str(at)).replace("{settings}", repr(SETTINGS))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script, str(folder / "data")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    written = _files(folder)
    assert (f"{FIRST}.parquet" in written) == (at == 2), left
    assert f"{FIRST}.portfolio.json" not in written
    for name in written:  # nothing torn: every file that is there reads whole
        path = folder / "data" / "signals" / name
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
    _signal(folder)
    assert _files(folder) == _files(first)


def test_refresh_of_a_universe_runs_its_market_path_and_only_that(tmp_path, workdir):
    """`refresh --universe top20` fetches, then builds the universe's factors, tomorrow's
    signal and the paper record, none of the per-stock stages; a second refresh finds them
    up to date."""
    import json

    from conftest import run_cli

    (workdir / "config.json").write_text(json.dumps({
        "compute": {"workers": 0},
        "fetch": {"source": "sample", "start_date": "20170101"},
        "cross_section": {"train_days": 200, "validation_days": 40, "models": ["lightgbm"],
                          "backtest": {"topk": 5, "n_drop": 1}}}))
    data = str(tmp_path / "data")
    code, out, err = run_cli("refresh", "--universe", "top20", "--data-dir", data)
    assert code == 0, err
    assert "features: up to date" not in out and not any(
        line.startswith(("importance", "evaluate")) for line in out.splitlines())
    assert any(line.startswith("factors of top20") for line in out.splitlines()), out
    assert list((tmp_path / "data" / "signals").glob("*.portfolio.json"))
    assert "no signal's days have closed yet (1 pending)" in out  # the paper record: live
    code, out, err = run_cli("refresh", "--universe", "top20", "--data-dir", data)
    assert code == 0, err
    assert "factors: up to date, inputs unchanged" in out
    assert "signal: up to date, inputs unchanged" in out
    assert "live: up to date, inputs unchanged" in out
