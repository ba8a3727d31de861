"""Moving per-subject tables to the time layout: the same reads row for row, idempotent, and
safe to kill (a real SIGKILL mid-migration); and the coverage ledger's ranges."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import run_cli, tree_digest
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.fetch import missing_ranges
from stockpred.data.store import RawStore

# per table: reads as the stages ask them (whole, some stocks, a day range, some columns)
READS = {
    "qfq_daily": [{}, {"subjects": ["600036.SH"]},
                  {"subjects": ["601318.SH", "600036.SH"], "start": "20150105", "end": "20160630"},
                  {"start": "20181201", "end": "20181228", "columns": ["close"]},
                  {"subjects": ["600519.SH"], "columns": ["trade_date", "close", "vol"]}],
    "daily": [{}, {"subjects": ["600036.SH"], "start": "20171229", "end": "20180102"}],
    "stk_mins": [{}, {"subjects": ["000001.SH"], "start": "20181228", "end": "20181228"},
                 {"start": "20160104", "end": "20160107", "columns": ["close"]}],
}
MIGRATE = ("import sys; from stockpred.data.store import RawStore; "
           "RawStore(sys.argv[1]).migrate(sys.argv[2])")


@pytest.fixture
def sample_raw(workdir):
    """A data folder holding the whole shipped sample, one file per subject."""
    code, _, err = run_cli("fetch", "--source", "sample", "--start", "20070101")
    assert code == 0, err
    return workdir / "data" / "raw"


def reads(store: RawStore, name: str) -> list[pd.DataFrame]:
    return [store.read(name, **query) for query in READS[name]]


def test_migration_keeps_every_read_row_for_row_and_is_idempotent(sample_raw, workdir):
    store = RawStore(sample_raw)
    for name, partition in (("qfq_daily", "year"), ("daily", "year"), ("stk_mins", "month")):
        before = reads(store, name)
        subject_files = store.files(name)
        assert store.migrate(name)
        assert store.partition(CATALOGUE[name]) == partition
        periods = [p.stem for p in store.files(name)]
        assert periods and all(p.isdigit() and len(p) == (4 if partition == "year" else 6)
                               for p in periods)
        assert not any(p.exists() for p in subject_files)
        for query, frame in zip(READS[name], before):
            pd.testing.assert_frame_equal(store.read(name, **query), frame, obj=str(query))
    year = pd.read_parquet(store.table_dir("qfq_daily") / "2018.parquet")
    assert year["ts_code"].nunique() == 50
    assert year[["ts_code", "trade_date"]].equals(
        year[["ts_code", "trade_date"]].sort_values(["ts_code", "trade_date"]))
    digest = tree_digest(sample_raw)
    assert not store.migrate("qfq_daily")
    # a second load of the sample upserts into the new files and changes none of them
    assert run_cli("fetch", "--source", "sample", "--start", "20070101")[0] == 0
    assert tree_digest(sample_raw) == digest


def test_subject_files_left_after_the_commit_are_ignored_then_removed(sample_raw, workdir):
    store = RawStore(sample_raw)
    before = store.read("qfq_daily")
    leftover = store.files("qfq_daily")[0]
    kept = workdir / leftover.name
    shutil.copy(leftover, kept)
    store.migrate("qfq_daily")
    shutil.copy(kept, leftover)  # as if killed after the marker, before deleting this one
    pd.testing.assert_frame_equal(store.read("qfq_daily"), before)
    assert store.resume_migrations() == ["qfq_daily"] and not leftover.exists()
    pd.testing.assert_frame_equal(store.read("qfq_daily"), before)


def test_sigkill_mid_migration_leaves_the_old_store_readable_and_the_next_run_completes_it(
        sample_raw, workdir):
    before = RawStore(sample_raw).read("qfq_daily")
    mid = 0
    # kill once the first, the fifth, the ninth year file is written: mid-migration
    for n, target in enumerate((1, 5, 9)):
        raw = workdir / f"copy{n}" / "data" / "raw"
        shutil.copytree(sample_raw, raw)
        table = raw / "qfq_daily"
        proc = subprocess.Popen([sys.executable, "-c", MIGRATE, str(raw), "qfq_daily"])
        deadline = time.monotonic() + 120
        while (sum(p.stem.isdigit() for p in table.glob("*.parquet")) < target
               and proc.poll() is None and time.monotonic() < deadline):
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        killed = proc.wait() == -signal.SIGKILL
        store = RawStore(raw)
        if killed and not (table / "_layout.json").exists():
            mid += 1
            assert store.partition(CATALOGUE["qfq_daily"]) == "subject"
        pd.testing.assert_frame_equal(store.read("qfq_daily"), before)  # readable, whole
        # the next run (any fetch) finishes the move
        code, _, err = run_cli("fetch", "--source", "sample", "--only", "stock_basic",
                               "--data-dir", str(raw.parent))
        assert code == 0, err
        assert store.partition(CATALOGUE["qfq_daily"]) == "year"
        assert all(p.stem.isdigit() for p in table.glob("*.parquet"))
        assert not list(raw.rglob("*.tmp-*"))
        pd.testing.assert_frame_equal(store.read("qfq_daily"), before)
    assert mid >= 2


def test_ledger_keeps_several_ranges_and_reads_the_one_range_format(tmp_path):
    store = RawStore(tmp_path)
    ledger = tmp_path / "daily" / "_coverage.json"
    ledger.parent.mkdir()
    ledger.write_text(json.dumps({"600036.SH": ["20170101", "20170630"]}))  # before ranges
    assert store.coverage("daily") == {"600036.SH": [("20170101", "20170630")]}
    store.record_coverage("daily", [("600036.SH", "20170701", "20171231"),
                                    ("600036.SH", "20180301", "20180331"),
                                    ("*", "20180101", "20180110")])
    assert store.coverage("daily") == {"*": [("20180101", "20180110")],
                                       "600036.SH": [("20170101", "20171231"),
                                                     ("20180301", "20180331")]}
    stamp = os.stat(ledger).st_mtime_ns
    store.record_coverage("daily", [("600036.SH", "20170801", "20170901")])  # nothing new
    assert os.stat(ledger).st_mtime_ns == stamp
    covered = store.coverage("daily")
    assert missing_ranges("20170101", "20180331", *covered["600036.SH"], *covered["*"]) == [
        ("20180111", "20180228")]
