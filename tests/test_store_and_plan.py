"""The raw store's upsert and reader, and the fetch planner's day arithmetic."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from conftest import STOCKS, TOKEN, run_cli, write_config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.fetch import coverage_end, missing_ranges, settled_day
from stockpred.data.replay import ReplayServer, tables_as_of
from stockpred.data.store import RawStore


def test_upsert_adds_new_keys_replaces_changed_rows_and_skips_identical_writes(
        real_tables, tmp_path):
    store = RawStore(tmp_path)
    daily = CATALOGUE["daily"]
    rows = real_tables["daily"].iloc[:100]
    first = store.upsert(daily, rows.iloc[:60])
    assert (first.added, first.updated) == (60, 0)
    path = store.files("daily")[0]
    stamp = path.stat().st_mtime_ns
    again = store.upsert(daily, rows.iloc[:60])
    assert (again.added, again.updated) == (0, 0)
    assert path.stat().st_mtime_ns == stamp  # nothing rewritten
    revised = rows.iloc[50:100].copy()
    revised.loc[revised.index[0], ["high", "close"]] += 1.0  # tushare revised one day
    result = store.upsert(daily, revised)
    assert (result.added, result.updated) == (40, 10)
    table = store.read("daily")
    assert len(table) == 100 and table["trade_date"].is_monotonic_increasing
    assert table.loc[50, "close"] == rows.iloc[50]["close"] + 1.0
    window = store.read("daily", start=rows.iloc[10]["trade_date"],
                        end=rows.iloc[19]["trade_date"], columns=["close"])
    assert list(window.columns) == ["close"] and len(window) == 10


def test_readers_ignore_and_cleanup_removes_temporaries_of_a_killed_writer(real_tables,
                                                                           tmp_path):
    store = RawStore(tmp_path)
    store.upsert(CATALOGUE["daily"], real_tables["daily"].iloc[:10])
    torn = tmp_path / "daily" / "600036.SH.parquet.tmp-12345"
    torn.write_bytes(b"PAR1 half a file")
    assert len(store.read("daily")) == 10
    assert store.remove_temporaries() == 1 and not torn.exists()


def test_minute_bars_and_news_partition_by_subject_and_year(real_tables, tmp_path):
    store = RawStore(tmp_path)
    store.upsert(CATALOGUE["stk_mins"], real_tables["stk_mins"])
    names = sorted(p.name for p in store.files("stk_mins"))
    assert names == [f"000001.SH_{y}.parquet" for y in (2015, 2016, 2017, 2018)]
    day = store.read("stk_mins", subjects=["000001.SH"], start="20181228", end="20181228")
    source = real_tables["stk_mins"]
    assert len(day) == source["trade_time"].str.startswith("2018-12-28").sum() >= 239
    assert day["trade_time"].iloc[0] == "2018-12-28 09:31:00"
    assert day["trade_time"].iloc[-1] == "2018-12-28 15:00:00"


def test_missing_ranges():
    assert missing_ranges("20180101", "20181231") == [("20180101", "20181231")]
    assert missing_ranges("20180101", "20181231", ("20180301", "20181130")) == [
        ("20180101", "20180228"), ("20181201", "20181231")]
    assert missing_ranges("20180301", "20181130", ("20180101", "20181231")) == []
    assert missing_ranges("20181201", "20181231", ("20180101", "20181130")) == [
        ("20181201", "20181231")]


def test_recent_ranges_count_as_asked_only_up_to_what_came_back():
    final = "20181210"  # a week before the settled day
    # an old range is final whatever came back
    assert coverage_end("20180101", "20181130", None, final) == "20181130"
    # a recent range with rows: up to the last day returned, at least to the final day
    assert coverage_end("20181201", "20181217", "20181214", final) == "20181214"
    assert coverage_end("20181201", "20181217", "20181203", final) == "20181210"
    # no rows over a range reaching back past the final day: the subject has none there
    assert coverage_end("20181201", "20181217", None, final) == "20181217"
    # no rows for recent days only: not published yet, nothing counts as asked
    assert coverage_end("20181214", "20181217", None, final) == "20181213"


def test_settled_day_follows_beijing_settle_time():
    beijing = ZoneInfo("Asia/Shanghai")
    assert settled_day("20:00", datetime(2018, 12, 17, 19, 59, tzinfo=beijing)) == "20181216"
    assert settled_day("20:00", datetime(2018, 12, 17, 20, 0, tzinfo=beijing)) == "20181217"
    # 13:00 UTC is 21:00 in Beijing
    utc = ZoneInfo("UTC")
    assert settled_day("20:00", datetime(2018, 12, 17, 13, 0, tzinfo=utc)) == "20181217"


def test_refresh_mixes_day_calls_for_current_stocks_with_a_backfill_for_a_new_one(
        server_tables, tushare_env, workdir):
    with ReplayServer(tables_as_of(server_tables, "20181217"), TOKEN) as server:
        tushare_env(server)
        write_config(workdir, end_date="20181214", interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        # a fourth stock joins the universe the night the market gains a day
        server.reset_counts()
        newcomer = "601318.SH"
        write_config(workdir, end_date="20181217", interfaces=["daily"],
                     universe={"index": None, "ts_codes": [*STOCKS, newcomer]})
        code, _, err = run_cli("fetch")
        assert code == 0, err
        daily_calls = [p for api, p in server.requests if api == "daily"]
        assert len(daily_calls) == 2
        assert daily_calls[0]["ts_code"] == newcomer
        assert daily_calls[1]["trade_date"] == "20181217"
        stored = RawStore(workdir / "data" / "raw").read("daily")
        expected = server_tables["daily"]
        expected = expected[expected["ts_code"].isin([*STOCKS, newcomer])
                            & expected["trade_date"].between("20170101", "20181217")]
        assert len(stored) == len(expected)
        assert not stored.duplicated(["ts_code", "trade_date"]).any()
