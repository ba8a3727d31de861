"""Faults from the server: the fetch survives them or stops cleanly, losing and duplicating nothing."""

from __future__ import annotations

import pytest

from conftest import STOCKS, TOKEN, run_cli, tree_digest, write_config
from stockpred.data.replay import ReplayServer
from stockpred.data.store import RawStore


def stored_daily(workdir):
    return RawStore(workdir / "data" / "raw").read("daily")


def clean_result(server_tables):
    daily = server_tables["daily"]
    return daily[daily["ts_code"].isin(STOCKS) & daily["trade_date"].between("20170101",
                                                                              "20181228")]


def assert_complete(workdir, server_tables):
    """Every row a clean fetch stores, each once."""
    got = stored_daily(workdir)
    assert len(got) == len(clean_result(server_tables))
    assert not got.duplicated(["ts_code", "trade_date"]).any()


@pytest.mark.parametrize("fault", ["minute_limit", "http500", "drop"])
def test_transient_faults_are_retried(fault, server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        server.inject(fault, times=2, api="daily")
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert_complete(workdir, server_tables)
        assert server.calls["daily"] == len(STOCKS) + 2


def test_persistent_http_errors_fail_in_one_line_and_keep_what_was_stored(
        server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"], end_date="20171231")
        assert run_cli("fetch")[0] == 0
        before = tree_digest(workdir / "data" / "raw" / "daily")
        write_config(workdir, interfaces=["daily"])
        server.inject("http500", times=50, api="daily")
        code, out, err = run_cli("fetch")
        assert code == 1
        assert err.count("\n") == 1 and "daily failed after 4 attempts" in err
        assert "Traceback" not in err + out
        assert tree_digest(workdir / "data" / "raw" / "daily") == before


def test_daily_quota_stops_cleanly_and_the_next_run_completes(server_tables, tushare_env,
                                                             workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        server.inject("daily_quota", times=1, api="daily")
        code, out, err = run_cli("fetch")
        assert code == 3
        assert err.count("\n") == 1
        assert "daily quota reached on daily (0 of 3 calls done)" in err
        assert "everything fetched so far is stored" in err
        assert run_cli("fetch")[0] == 0
        assert_complete(workdir, server_tables)


def test_quota_after_some_stocks_keeps_them(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        server.inject("daily_quota", api="daily", after=2)
        code, _, err = run_cli("fetch")
        assert code == 3
        assert "(2 of 3 calls done)" in err
        asked = [p["ts_code"] for api, p in server.requests if api == "daily"]
        assert set(stored_daily(workdir)["ts_code"]) == set(asked[:2])
        server.reset_counts()
        assert run_cli("fetch")[0] == 0
        assert server.calls["daily"] == 1  # only the stock that was not fetched
        assert_complete(workdir, server_tables)


def test_interface_without_permission_is_skipped(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily", "moneyflow"])
        server.inject("no_permission", times=10, api="moneyflow")
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert "moneyflow" in out and "no permission" in out
        assert len(stored_daily(workdir)) == len(clean_result(server_tables))
