"""Backfills by trade_date through the real tushare client and the replay server: calls per
(interface, day), pages past the cap, the same rows as the per-stock path, a whole-market
fetch, and a one-day refresh that rewrites a bounded number of files."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from conftest import TOKEN, run_cli, tree_digest, write_config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.replay import ReplayServer, tables_as_of
from stockpred.data.store import ALL_SUBJECTS, RawStore

INTERFACES = ("daily", "daily_basic", "adj_factor")
START, END, NEXT = "20181101", "20181214", "20181217"  # 32 trading days, then the next one


def open_days(tables, start, end) -> list[str]:
    cal = tables["trade_cal"]
    return list(cal.loc[(cal["is_open"] == 1) & cal["cal_date"].between(start, end), "cal_date"])


def expected(tables, name, stocks, start=START, end=END) -> pd.DataFrame:
    t = tables[name]
    return t[t["ts_code"].isin(stocks) & t["trade_date"].between(start, end)]


def store_of(folder) -> RawStore:
    return RawStore(folder / "data" / "raw")


def day_calls(server, names=INTERFACES) -> Counter:
    """How often each (interface, trade_date) was asked by day."""
    return Counter((api, p["trade_date"]) for api, p in server.requests
                   if api in names and "trade_date" in p)


def gain_day(server, tables, day, names=INTERFACES) -> None:
    """The server publishes ``day`` of ``names`` and of the calendar."""
    for name in (*names, "trade_cal"):
        field = "cal_date" if name == "trade_cal" else "trade_date"
        table = tables[name]
        server.add_rows(name, table[table[field] == day])


def test_sse50_by_day_asks_once_per_interface_and_day_and_stores_the_per_stock_rows(
        server_tables, tushare_env, workdir):
    stocks = sorted(server_tables["stock_basic"]["ts_code"])
    days = open_days(server_tables, START, END)
    assert len(days) == 32 < len(stocks)
    with ReplayServer(tables_as_of(server_tables, END), TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date=START,
                     end_date=END)
        code, _, err = run_cli("fetch")
        assert code == 0, err
        calls = day_calls(server)
        assert set(calls) == {(name, day) for name in INTERFACES for day in days}
        assert set(calls.values()) == {1}
        assert sum(server.calls[name] for name in INTERFACES) == len(calls)
        by_day = {name: store_of(workdir).read(name) for name in INTERFACES}
        for name in INTERFACES:
            assert len(by_day[name]) == len(expected(server_tables, name, stocks)) > 0

        # the ledger lets a rerun ask nothing
        server.reset_counts()
        assert run_cli("fetch")[0] == 0
        assert not any(server.calls[name] for name in INTERFACES)

        # the per-stock path (ten stocks a run: fewer stocks than days) stores the same frames
        other = workdir / "per_stock"
        server.reset_counts()
        for i in range(0, len(stocks), 10):
            write_config(workdir, universe={"index": None, "ts_codes": stocks[i:i + 10]},
                         start_date=START, end_date=END)
            code, _, err = run_cli("fetch", "--data-dir", str(other / "data"))
            assert code == 0, err
        assert not day_calls(server) and server.calls["daily"] == len(stocks)
        for name in INTERFACES:
            pd.testing.assert_frame_equal(by_day[name], store_of(other).read(name))

        # the night the market gains a day: one call per interface
        gain_day(server, server_tables, NEXT)
        server.reset_counts()
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date=START,
                     end_date=NEXT)
        assert run_cli("fetch")[0] == 0
        assert day_calls(server) == Counter({(name, NEXT): 1 for name in INTERFACES})
        assert all(server.calls[name] == 1 for name in INTERFACES)
        got = store_of(workdir).read("daily")
        assert len(got) == len(expected(server_tables, "daily", stocks, end=NEXT))


def test_by_day_pages_past_a_lower_cap(server_tables, tushare_env, workdir):
    cap = 25
    stocks = sorted(server_tables["stock_basic"]["ts_code"])
    with ReplayServer(server_tables, TOKEN, caps={"daily": cap}) as server:
        tushare_env(server)
        config = write_config(workdir, universe={"index": None, "ts_codes": stocks},
                              start_date=START, end_date=END, interfaces=["daily"])
        raw = json.loads(config.read_text())
        raw["tushare"]["rows_per_call"] = {"daily": cap}
        config.write_text(json.dumps(raw))
        code, _, err = run_cli("fetch")
        assert code == 0, err
        want = expected(server_tables, "daily", stocks)
        per_day = want.groupby("trade_date").size()
        # the client pages until a page comes back short of the cap
        assert server.calls["daily"] == sum(n // cap + 1 for n in per_day) > len(per_day)
        offsets = Counter(p["trade_date"] for api, p in server.requests
                          if api == "daily" and p["offset"])
        assert set(offsets) == set(per_day.index)
        got = store_of(workdir).read("daily")
        assert len(got) == len(want)
        assert not got.duplicated(["ts_code", "trade_date"]).any()


def test_whole_market_keeps_every_row_of_the_day_and_marks_the_market_asked(
        server_tables, tushare_env, workdir):
    delisted = ["600000.SH", "600519.SH"]  # not in today's list (list_status L)
    listed = server_tables["stock_basic"]
    tables = {**server_tables, "stock_basic": listed[~listed["ts_code"].isin(delisted)]}
    days = open_days(server_tables, START, END)
    with ReplayServer(tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, start_date=START, end_date=END, interfaces=["daily"])
        code, _, err = run_cli("fetch", "--universe", "all")
        assert code == 0, err
        assert day_calls(server, ["daily"]) == Counter({("daily", d): 1 for d in days})
        store = store_of(workdir)
        got = store.read("daily")
        day_rows = server_tables["daily"][server_tables["daily"]["trade_date"].between(START,
                                                                                        END)]
        assert len(got) == len(day_rows)
        assert set(delisted) <= set(got["ts_code"])
        assert list(store.coverage("daily")) == [ALL_SUBJECTS]
        # rows asked for the whole market count for any stock after it
        server.reset_counts()
        write_config(workdir, universe={"index": None, "ts_codes": ["600036.SH"]},
                     start_date=START, end_date=END, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        assert server.calls["daily"] == 0


def test_an_index_universe_fetches_every_member_of_the_period_not_only_the_latest(
        server_tables, tushare_env, workdir):
    # the sample has no index_weight: two semi-annual snapshots in tushare's layout
    codes = sorted(server_tables["stock_basic"]["ts_code"])[:5]
    snapshots = {"20160630": codes[:2], "20161230": codes[:4], "20180629": [*codes[:3], codes[4]]}
    weights = pd.DataFrame([{"index_code": "000016.SH", "con_code": code, "trade_date": day,
                             "weight": 2.0} for day, members in snapshots.items()
                            for code in members])
    tables = {**server_tables, "index_weight": weights}
    start = "20170101"
    ever = set(codes)  # the 2016-12-30 weights were in force on the first day
    with ReplayServer(tables, TOKEN) as server:
        tushare_env(server)
        config = write_config(workdir, start_date=start, end_date="20181228",
                              interfaces=["daily"])
        raw = json.loads(config.read_text())
        raw["universes"] = {"sse50": {"kind": "index", "index_code": "000016.SH"}}
        config.write_text(json.dumps(raw))
        code, _, err = run_cli("fetch", "--universe", "sse50")
        assert code == 0, err
        assert set(store_of(workdir).read("daily")["ts_code"]) == ever
        code, _, err = run_cli("fetch", "--universe", "sse50", "--ts-code", "600036.SH")
        assert code == 2 and err.count("\n") == 1
        code, _, err = run_cli("fetch", "--universe", "top0")
        assert code == 2 and "unknown universe" in err


def test_refresh_of_one_day_rewrites_at_most_three_files_per_interface(
        server_tables, tushare_env, workdir):
    stocks = sorted(server_tables["stock_basic"]["ts_code"])
    with ReplayServer(tables_as_of(server_tables, END), TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date="20160101",
                     end_date=END)
        # twice: the second confirms the empty replies of the stocks the server has no
        # daily_basic and adj_factor of
        for _ in range(2):
            assert run_cli("fetch")[0] == 0
        store = store_of(workdir)
        for name in INTERFACES:  # the SSE 50 is below market scale: move it by hand
            assert store.migrate(name)
        before = {name: tree_digest(store.table_dir(name)) for name in INTERFACES}
        gain_day(server, server_tables, NEXT)
        server.reset_counts()
        write_config(workdir, universe={"index": None, "ts_codes": stocks},
                     start_date="20160101", end_date=NEXT)
        assert run_cli("fetch")[0] == 0
        for name in INTERFACES:
            assert server.calls[name] == 1
            after = tree_digest(store.table_dir(name))
            rewritten = [f for f, digest in after.items() if before[name].get(f) != digest]
            assert rewritten == ["2018.parquet"], (name, rewritten)
            assert len(after) == 3  # 2016, 2017, 2018


def test_market_scale_backfill_by_day_into_year_files(market_tables, tushare_env, workdir):
    stocks = sorted(market_tables["stock_basic"]["ts_code"])[::5][:300]
    start, end, refresh_day = "20180903", "20181130", "20181203"
    days = open_days(market_tables, start, end)
    with ReplayServer(tables_as_of(market_tables, end), TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date=start,
                     end_date=end, interfaces=["daily"])
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert "market scale: one file per year from now on" in out
        assert day_calls(server, ["daily"]) == Counter({("daily", d): 1 for d in days})
        store = store_of(workdir)
        assert store.partition(CATALOGUE["daily"]) == "year"
        assert [p.name for p in store.files("daily")] == ["2018.parquet"]
        want = expected(market_tables, "daily", stocks, start, end)
        got = store.read("daily")
        assert len(got) == len(want) > 15_000
        one = store.read("daily", subjects=[stocks[3]], start="20181101", end=end)
        days_of_one = want.loc[want["ts_code"] == stocks[3], "trade_date"]
        assert list(one["trade_date"]) == sorted(days_of_one[days_of_one >= "20181101"])
        before = tree_digest(store.table_dir("daily"))
        gain_day(server, market_tables, refresh_day, ["daily"])
        server.reset_counts()
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date=start,
                     end_date=refresh_day, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        assert server.calls["daily"] == 1
        after = tree_digest(store.table_dir("daily"))
        assert [f for f in after if before.get(f) != after[f]] == ["2018.parquet"]


def test_fetch_universe_may_name_a_universe(server_tables, tushare_env, workdir):
    """fetch.universe "all" in config.json fetches as `stockpred fetch --universe all` does:
    the whole market by day; a name that is no universe is refused before any call."""
    from stockpred.config import Config, with_overrides
    from stockpred.errors import InputError

    assert with_overrides(Config(), {"fetch": {"universe": "top800"}}).fetch.universe == "top800"
    named = {"universes": {"big": {"kind": "top_liquid", "n": 5}}, "fetch": {"universe": "big"}}
    assert with_overrides(Config(), named).fetch.universe == "big"
    with pytest.raises(InputError, match="unknown universe 'sse50'"):
        with_overrides(Config(), {"fetch": {"universe": "sse50"}})
    end = open_days(server_tables, START, END)[2]
    days = open_days(server_tables, START, end)
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe="all", start_date=START, end_date=end,
                     interfaces=["daily"])
        code, _, err = run_cli("fetch")
        assert code == 0, err
        assert day_calls(server, ["daily"]) == Counter({("daily", d): 1 for d in days})
        day_rows = server_tables["daily"]["trade_date"].between(START, end)
        assert len(store_of(workdir).read("daily")) == day_rows.sum()
