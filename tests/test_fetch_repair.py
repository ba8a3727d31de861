"""Data a store used to lose (issue 13, items 5, 6 and 8): a damaged file or ledger that
no command could get past, the shipped sample loaded over a tushare store when a cron run
lost its token, and the smaller cases (NaN prices, a corrupt manifest, a full disk, a
token in config.json, stock_basic asked on every run)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, STOCKS, TOKEN, run_cli, tree_digest, write_config
from stockpred.config import user_config_path
from stockpred.data import store as store_module
from stockpred.data.replay import ReplayServer
from stockpred.data.store import TMP_MARK, RawStore

START, END = "20170101", "20181228"


def raw(workdir: Path) -> Path:
    return workdir / "data" / "raw"


def expected_daily(server_tables, stocks=STOCKS):
    daily = server_tables["daily"]
    return daily[daily["ts_code"].isin(stocks) & daily["trade_date"].between(START, END)]


def assert_one_line_error(code, out, err, *phrases):
    assert code != 0, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err
    for phrase in phrases:
        assert phrase in err, err


def assert_complete(workdir, server_tables):
    got = RawStore(raw(workdir)).read("daily")
    assert len(got) == len(expected_daily(server_tables))
    assert not got.duplicated(["ts_code", "trade_date"]).any()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def set_aside(workdir: Path) -> list[Path]:
    return sorted(p for p in (raw(workdir) / "_damaged").rglob("*") if p.is_file())


# -- item 6: a store remembers its source -------------------------------------------------

@pytest.fixture
def tushare_store(server_tables, tushare_env, workdir, monkeypatch):
    """A store fetched from tushare; then the token is gone, as in a cron job that lost it."""
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
    monkeypatch.delenv("TUSHARE_TOKEN")
    return tree_digest(raw(workdir))


@pytest.mark.parametrize("command", ["fetch", "refresh"])
def test_auto_never_loads_the_sample_into_a_tushare_store(command, tushare_store, workdir):
    code, out, err = run_cli(command)
    assert code == 2
    assert_one_line_error(code, out, err, "TUSHARE_TOKEN", str(user_config_path()),
                          "fetched from tushare")
    assert tree_digest(raw(workdir)) == tushare_store
    assert json.loads((raw(workdir) / "manifest.json").read_text())["source"] == "tushare"


def test_a_store_from_before_the_source_marker_is_known_by_its_manifest(tushare_store,
                                                                        workdir):
    for marker in raw(workdir).glob("_source*"):
        marker.unlink()
    code, out, err = run_cli("fetch")
    assert code == 2
    assert_one_line_error(code, out, err, "fetched from tushare")
    assert tree_digest(raw(workdir)) == tushare_store


def test_the_sample_is_not_mixed_into_a_tushare_store_even_when_asked(tushare_store,
                                                                      workdir):
    code, out, err = run_cli("fetch", "--source", "sample")
    assert code == 2
    assert_one_line_error(code, out, err, "fetched from tushare", "--data-dir")
    assert tree_digest(raw(workdir)) == tushare_store


def test_a_sample_store_without_a_token_stays_the_sample(workdir):
    write_config(workdir, interfaces=["daily"])
    for _ in range(2):
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert "no tushare token found" in out


# -- item 5: damaged files and ledgers ----------------------------------------------------

@pytest.fixture
def fetched(server_tables, tushare_env, workdir):
    """A tushare store of the three stocks' daily bars, and the server, still up."""
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        server.reset_counts()
        yield server


def test_a_truncated_file_is_named_set_aside_and_fetched_again(fetched, server_tables,
                                                                workdir):
    bad = raw(workdir) / "daily" / "600036.SH.parquet"
    truncate(bad)
    damaged = bad.read_bytes()
    code, out, err = run_cli("fetch")
    assert_one_line_error(code, out, err, str(bad), "stockpred fetch --repair")
    code, out, err = run_cli("features")
    assert_one_line_error(code, out, err, str(bad), "stockpred fetch --repair")
    assert fetched.calls["daily"] == 0

    code, out, err = run_cli("fetch", "--repair")
    assert code == 0, err
    assert str(bad.name) in out
    assert fetched.calls["daily"] == 1  # that stock only
    assert_complete(workdir, server_tables)
    kept = set_aside(workdir)
    assert [p.name for p in kept] == [bad.name] and kept[0].read_bytes() == damaged
    fetched.reset_counts()
    code, _, err = run_cli("fetch")
    assert code == 0, err
    assert fetched.calls["daily"] == 0


def test_a_deleted_file_is_fetched_again(fetched, server_tables, workdir):
    gone = raw(workdir) / "daily" / "600000.SH.parquet"
    gone.unlink()
    code, out, err = run_cli("fetch")
    assert_one_line_error(code, out, err, str(gone), "missing", "stockpred fetch --repair")
    code, out, err = run_cli("fetch", "--repair")
    assert code == 0, err
    assert fetched.calls["daily"] == 1
    assert_complete(workdir, server_tables)


def test_a_corrupt_ledger_is_set_aside_and_its_table_fetched_again(fetched, server_tables,
                                                                    workdir):
    ledger = raw(workdir) / "daily" / "_coverage.json"
    ledger.write_text(ledger.read_text()[:40])
    code, out, err = run_cli("fetch")
    assert_one_line_error(code, out, err, str(ledger), "stockpred fetch --repair")
    code, out, err = run_cli("fetch", "--repair")
    assert code == 0, err
    assert fetched.calls["daily"] == len(STOCKS)
    assert_complete(workdir, server_tables)
    assert [p.name for p in set_aside(workdir)] == ["_coverage.json"]


def test_a_damaged_year_file_is_fetched_again_for_its_year_only(server_tables, tushare_env,
                                                                 workdir, monkeypatch):
    monkeypatch.setattr(store_module, "MARKET_SCALE", 2)  # three stocks: the time layout
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        year = raw(workdir) / "daily" / "2017.parquet"
        assert year.exists()
        truncate(year)
        server.reset_counts()
        code, _, err = run_cli("fetch", "--repair")
        assert code == 0, err
        asked = [p for api, p in server.requests if api == "daily"]
        assert asked and all(max(p.get("start_date", ""), p.get("trade_date", ""))[:4] == "2017"
                             for p in asked)
        assert_complete(workdir, server_tables)


# -- item 8: the smaller ones -------------------------------------------------------------

def test_bars_with_nan_or_inf_prices_are_set_aside(server_tables, tushare_env, workdir):
    daily = server_tables["daily"].copy()
    rows = daily.index[daily["ts_code"].eq("600036.SH")
                       & daily["trade_date"].isin(["20170104", "20170105"])]
    daily.loc[rows[0], "close"] = np.nan
    daily.loc[rows[1], "high"] = np.nan  # tushare's JSON has null, never Infinity
    with ReplayServer({**server_tables, "daily": daily}, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        code, out, err = run_cli("fetch")
        assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("daily"))
    assert "2 rows" in line and "600036.SH 20170104" in line and "quarantine" in line
    stored = RawStore(raw(workdir)).read("daily")
    assert len(stored) == len(expected_daily(server_tables)) - 2
    assert np.isfinite(stored[["open", "high", "low", "close"]]).all().all()
    side = list((raw(workdir) / "_quarantine").glob("daily*.parquet"))
    assert len(side) == 1
    assert sorted(pd.read_parquet(side[0])["trade_date"]) == ["20170104", "20170105"]


def test_an_infinite_price_is_set_aside_on_write(server_tables, workdir):
    bars = expected_daily(server_tables).copy()
    bars.loc[bars.index[3], "low"] = -np.inf
    store = RawStore(raw(workdir))
    result = store.upsert(store_module.CATALOGUE["daily"], bars)
    assert result.added == len(bars) - 1 and len(result.quarantined) == 1
    assert len(store.read("daily")) == len(bars) - 1


def test_a_corrupt_manifest_is_named_as_corrupt(workdir):
    write_config(workdir, source="sample", interfaces=["daily", "trade_cal"])
    assert run_cli("fetch")[0] == 0
    manifest = raw(workdir) / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    code, out, err = run_cli("features")
    assert_one_line_error(code, out, err, str(manifest), "corrupt")
    assert "run `stockpred fetch` first" not in err
    assert run_cli("fetch")[0] == 0  # which rewrites it
    assert json.loads(manifest.read_text())["source"] == "sample"


def test_an_unwritable_data_dir_is_reported_once(workdir):
    blocker = workdir / "a-file"
    blocker.write_text("not a folder")
    # a process of its own: pytest's log capture would hide a second copy of the line
    done = subprocess.run([sys.executable, "-m", "stockpred", "fetch", "--data-dir",
                           str(blocker / "data")], capture_output=True, text=True, check=False,
                          cwd=workdir, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("cannot write to the data directory") == 1, done.stderr


def test_a_full_disk_is_named_and_leaves_no_temporary(fetched, workdir, monkeypatch):
    before = tree_digest(raw(workdir))
    write = os.write

    def full_disk(fd, data):
        if TMP_MARK in os.readlink(f"/proc/self/fd/{fd}"):
            write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data)

    monkeypatch.setattr(store_module.os, "write", full_disk)
    write_config(workdir, interfaces=["daily", "adj_factor"])
    code, out, err = run_cli("fetch")
    monkeypatch.undo()
    assert_one_line_error(code, out, err, "no space left on")
    assert "unexpected" not in err
    assert not [p for p in workdir.rglob("*") if TMP_MARK in p.name]
    assert tree_digest(raw(workdir)) == before


@pytest.mark.parametrize("config", [{"tushare_token": TOKEN}, {"tushare": {"token": TOKEN}}])
def test_a_token_in_config_json_is_refused_with_where_it_goes(config, workdir):
    (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    code, out, err = run_cli("fetch")
    assert code == 2
    assert_one_line_error(code, out, err, "TUSHARE_TOKEN", str(user_config_path()))
    assert "unknown key" not in err and TOKEN not in err


def test_stock_basic_is_asked_at_most_once_a_day(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        for _ in range(3):
            assert run_cli("fetch")[0] == 0
        assert server.calls["stock_basic"] == 1
