"""The paper track record (`stockpred live`) over four nights of signals on the shipped
sample (top20): the realised Rank IC equals a hand computation, a signal gets no row
before its label closes, later days leave earlier rows alone and a rerun writes the same
bytes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import run_cli
from stockpred.config import Config, with_overrides
from stockpred.data.store import RawStore
from stockpred.layout import resolve_paths
from stockpred.stages import live
from test_signal_stage import SETTINGS, _night, _signal

NIGHTS = ["20180611", "20180612", "20180613", "20180614"]
LATER_NIGHTS = ["20180615"]


def _paths(folder):
    config = with_overrides(Config(), SETTINGS)
    return config, resolve_paths(config, folder / "data", folder / "project_results")


def _nights(folder, days):
    for day in days:
        _night(folder, day)
        _signal(folder)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    """A store with the signals of NIGHTS, each scored on its own night's bars."""
    folder = tmp_path_factory.mktemp("live") / "store"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(SETTINGS))
    _nights(folder, NIGHTS)
    return folder


@pytest.fixture(scope="module")
def week_track(week):
    config, paths = _paths(week)
    lines = live.run(config, paths)
    return pd.read_parquet(paths.live_track), lines


@pytest.fixture(scope="module")
def later(week, week_track, tmp_path_factory):
    """The week's store a night on, its track recomputed."""
    folder = tmp_path_factory.mktemp("later") / "store"
    shutil.copytree(week, folder)
    _nights(folder, LATER_NIGHTS)
    config, paths = _paths(folder)
    live.run(config, paths)
    return folder


def test_a_signal_has_no_row_until_its_label_closes(week, week_track):
    track, lines = week_track
    # ret_2 of day T ends at T+2's close: the last two nights' labels are unknown
    assert track["trade_date"].tolist() == NIGHTS[:-2]
    assert track["held_on"].tolist() == NIGHTS[2:]
    assert "2 signal days pending" in lines[-3]
    assert (track["label"] == "ret_2").all() and (track["positions"] == 5).all()
    np.testing.assert_allclose(track["excess"], track["return"] - track["equal_weight"])
    assert (_paths(week)[1].live_figure).stat().st_size > 0


def test_the_rank_ic_of_a_day_is_the_hand_computed_one(later):
    config, paths = _paths(later)
    track = pd.read_parquet(paths.live_track).set_index("trade_date")
    bars = RawStore(paths.raw_dir).read("qfq_daily")
    close = bars.pivot(index="trade_date", columns="ts_code", values="close").sort_index()
    calendar = close.index.astype(str).tolist()
    for day in ("20180612", "20180613"):
        signal = pd.read_parquet(paths.signal_table(day)).set_index("ts_code")
        after = calendar.index(day)
        # close T+1 -> close T+2 of each member that traded on both days
        label = (close.iloc[after + 2] / close.iloc[after + 1] - 1).reindex(signal.index)
        known = label.notna()
        row = track.loc[day]
        assert row["stocks"] == known.sum() >= 10
        assert row["rank_ic"] == pytest.approx(
            stats.spearmanr(signal["score"][known], label[known]).statistic, abs=1e-9)
        assert row["ic"] == pytest.approx(
            stats.pearsonr(signal["score"][known], label[known]).statistic, abs=1e-6)
        assert row["held_on"] == calendar[after + 2]


def test_later_days_leave_earlier_rows_alone(week_track, later):
    before, _ = week_track
    track = pd.read_parquet(_paths(later)[1].live_track)
    # a night on, the first pending day has closed; the last two nights wait their turn
    assert track["trade_date"].tolist() == NIGHTS[:3]
    pd.testing.assert_frame_equal(track.head(len(before)), before)


def test_a_rerun_writes_the_same_bytes(later):
    config, paths = _paths(later)
    before = paths.live_track.read_bytes()
    live.run(config, paths)
    assert paths.live_track.read_bytes() == before


def test_a_first_night_prints_an_empty_record(week, tmp_path):
    folder = tmp_path / "store"
    shutil.copytree(week, folder)
    config, paths = _paths(folder)
    for day in NIGHTS[1:]:
        paths.signal_table(day).unlink()
    lines = live.run(config, paths)
    assert lines[0] == "no signal's days have closed yet (1 pending)"
    assert pd.read_parquet(paths.live_track).empty


def test_without_signals_live_names_the_signal_stage(tmp_path, workdir):
    code, out, err = run_cli("live", "--data-dir", str(tmp_path / "data"))
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "run `stockpred signal` first" in lines[0], err
