"""The smaller leftovers of issue 13: replies in GBK, replies slower than the timeout, a
config file that is not UTF-8, a negative --tail, a user config others can read, and the
log's name and what it records."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from conftest import STOCKS, TOKEN, run_cli, write_config
from stockpred.config import API_URL_ENV, USER_CONFIG_ENV
from stockpred.data.fetch import BEIJING
from stockpred.data.replay import ReplayServer
from stockpred.data.store import RawStore


def with_tushare(folder: Path, **settings) -> None:
    """write_config's config.json with ``settings`` in its tushare section."""
    path = folder / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tushare"].update(settings)
    path.write_text(json.dumps(config), encoding="utf-8")


def logs(workdir: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8")
            for p in (workdir / "data" / "logs").glob("*.log")}


def stored_daily_rows(server_tables) -> int:
    daily = server_tables["daily"]
    return int((daily["ts_code"].isin(STOCKS)
                & daily["trade_date"].between("20170101", "20181228")).sum())


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_a_gbk_reply_keeps_its_chinese_names(declared, server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN, charset="gbk", declare_charset=declared) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        code, _, err = run_cli("fetch")
        assert code == 0, err
    got = RawStore(workdir / "data" / "raw").read("stock_basic")
    want = server_tables["stock_basic"].sort_values("ts_code", ignore_index=True)
    pd.testing.assert_frame_equal(got[["ts_code", "name"]], want[["ts_code", "name"]])
    assert "招商银行" in set(got["name"])


def test_a_reply_slower_than_the_timeout_is_asked_again(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN, slow_s=2.0) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        with_tushare(workdir, timeout_s=0.5)
        server.inject("slow", times=2, api="daily", after=1)
        code, _, err = run_cli("fetch")
        assert code == 0, err
        calls = server.calls["daily"]
    got = RawStore(workdir / "data" / "raw").read("daily")
    assert len(got) == stored_daily_rows(server_tables)
    assert not got.duplicated(["ts_code", "trade_date"]).any()
    (log,) = logs(workdir).values()
    # a busy machine may time out a prompt reply too: each timeout is one more call
    assert log.count("ReadTimeout; retry") == calls - len(STOCKS) >= 2


@pytest.mark.parametrize("which", ["config.json", "user config"])
def test_a_config_file_not_in_utf8_is_named_in_one_line(which, workdir, monkeypatch):
    text = json.dumps({"tushare_token": "不是UTF-8"} if which == "user config"
                      else {"results_dir": "结果"}, ensure_ascii=False)
    path = workdir / ("user.json" if which == "user config" else "config.json")
    path.write_bytes(text.encode("gbk"))
    monkeypatch.setenv(USER_CONFIG_ENV, str(workdir / "user.json"))
    code, out, err = run_cli("fetch", "--source", "sample", "--only", "trade_cal")
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and str(path) in err and "UTF-8" in err, err
    assert "unexpected" not in err and "log" not in err


def test_show_refuses_a_negative_tail(workdir):
    code, _, err = run_cli("show", "daily", "--tail", "-5")
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "--tail" in err, err


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o600, False)],
                         ids=["644", "600"])
def test_a_user_config_others_can_read_is_warned_of(mode, warned, server_tables, workdir,
                                                    monkeypatch):
    user = workdir / "user.json"
    user.write_text(json.dumps({"tushare_token": TOKEN}), encoding="utf-8")
    user.chmod(mode)
    monkeypatch.setenv(USER_CONFIG_ENV, str(user))
    with ReplayServer(server_tables, TOKEN) as server:
        monkeypatch.setenv(API_URL_ENV, server.url)
        write_config(workdir, universe={"index": None, "ts_codes": ["600036.SH"]},
                     interfaces=["daily"])
        code, out, err = run_cli("fetch")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "chmod 600" in line]
    assert len(lines) == warned, err
    if warned:
        assert str(user) in lines[0]
    assert TOKEN not in out + err + "".join(logs(workdir).values())


@pytest.fixture
def machine_date_not_beijing(monkeypatch):
    """A machine clock whose date differs from Beijing's now: UTC+14 is 6 h ahead of
    Beijing (another date from 18:00 Beijing on), UTC-12 20 h behind (before 20:00)."""
    zone = "Etc/GMT-14" if datetime.now(BEIJING).hour >= 18 else "Etc/GMT+12"
    before = os.environ.get("TZ")
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    assert datetime.now().date() != datetime.now(BEIJING).date()
    yield
    # monkeypatch restores TZ only after every fixture's teardown: tzset needs it now
    if before is None:
        monkeypatch.delenv("TZ")
    else:
        monkeypatch.setenv("TZ", before)
    time.tzset()


def test_the_log_is_named_by_the_beijing_day_and_records_each_retry(
        machine_date_not_beijing, server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        server.inject("http500", api="daily", after=1)
        server.inject("minute_limit", api="daily")  # its retry
        code, _, err = run_cli("refresh")
        assert code == 0, err
    found = logs(workdir)
    assert list(found) == [f"refresh-{datetime.now(BEIJING):%Y%m%d}.log"]
    (log,) = found.values()
    retries = [line for line in log.splitlines() if "retry" in line]
    assert len(retries) == 2, log
    assert "daily" in retries[0] and "HTTP 500" in retries[0]
    assert "daily" in retries[1] and "rate limit" in retries[1]
    assert TOKEN not in log
