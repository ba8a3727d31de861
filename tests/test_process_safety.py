"""Real processes: SIGKILL in the middle of a fetch, and two runs at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from conftest import TOKEN, tree_digest, write_config
from stockpred.config import load_config
from stockpred.data.replay import ReplayServer
from stockpred.data.store import RawStore
from stockpred.layout import resolve_paths
from stockpred.runtime import data_dir_lock


def stockpred(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "stockpred", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_fetch_leaves_readable_files_and_next_run_completes(
        server_tables, tushare_env, workdir):
    stocks = sorted(server_tables["stock_basic"]["ts_code"])
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks},
                     start_date="20080101", interfaces=["daily"])
        env = dict(os.environ)
        raw = workdir / "data" / "raw"
        killed = 0
        # kill as soon as the store holds 5, then 20, then 35 stocks: mid-run, mid-write
        for target in (5, 20, 35):
            proc = stockpred("fetch", env=env)
            deadline = time.monotonic() + 120
            while (len(list((raw / "daily").glob("*.parquet"))) < target
                   and proc.poll() is None and time.monotonic() < deadline):
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            killed += proc.wait() == -signal.SIGKILL
            for path in raw.rglob("*.parquet"):
                pq.read_table(path)  # every file whole
        assert killed >= 2
        final = stockpred("fetch", env=env)
        out, err = final.communicate(timeout=300)
        assert final.returncode == 0, err
        got = RawStore(raw).read("daily")
        daily = server_tables["daily"]
        want = daily[daily["ts_code"].isin(stocks) & (daily["trade_date"] >= "20080101")]
        assert len(got) == len(want)
        assert not got.duplicated(["ts_code", "trade_date"]).any()
        assert not list(raw.rglob("*.tmp-*"))


def test_second_run_is_locked_out_at_once(workdir):
    write_config(workdir, source="sample", start_date="20160101",
                 interfaces=["stock_basic", "qfq_daily", "trade_cal"])
    config = load_config()
    paths = resolve_paths(config)
    with data_dir_lock(paths, "refresh"):
        before = tree_digest(workdir / "data")
        start = time.monotonic()
        proc = stockpred("refresh")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 4
        assert err.count("\n") == 1
        assert "another stockpred run" in err and "`stockpred refresh`" in err
        assert time.monotonic() - start < 60  # did not wait for the lock
        assert tree_digest(workdir / "data") == before
    proc = stockpred("refresh")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "features: 3 stocks" in out
