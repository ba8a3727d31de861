"""Data a fetch used to lose (issue 13): adjusted bars after a stop, interfaces after a
permission reply or a permanent error, rows past a lower row cap than assumed, a history
behind one empty reply. Each case goes through the real client and the replay server."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import STOCKS, TOKEN, run_cli, write_config
from stockpred.data.replay import ReplayServer, tables_as_of
from stockpred.data.store import RawStore

DERIVED = ["daily", "adj_factor", "qfq_daily", "hfq_daily"]
START, END = "20170101", "20181228"


def store_of(folder) -> RawStore:
    return RawStore(folder / "data" / "raw")


def expected(tables, name, stocks=STOCKS, start=START, end=END) -> pd.DataFrame:
    t = tables[name]
    return t[t["ts_code"].isin(stocks) & t["trade_date"].between(start, end)]


def calls_for(rows_per_request, cap: int) -> int:
    """Pages a request of n rows needs at ``cap`` rows a page: a last page short of the cap
    (has_more false) ends it; one of exactly the cap is followed by an empty one."""
    return sum(n // cap + 1 for n in rows_per_request)


def test_adjusted_bars_are_derived_after_a_stop(server_tables, tushare_env, workdir):
    """daily and adj_factor stored, then the daily quota on a later interface: the next
    run derives qfq/hfq from what is stored, also when only a new day is underived."""
    first, new_day = "20181214", "20181217"
    later = [*DERIVED, "income"]  # income comes after adj_factor and before the derivation
    with ReplayServer(tables_as_of(server_tables, first), TOKEN) as server:
        tushare_env(server)

        def reference(end: str) -> dict[str, pd.DataFrame]:
            folder = workdir / f"uninterrupted-{end}"
            write_config(workdir, end_date=end, interfaces=later)
            code, _, err = run_cli("fetch", "--data-dir", str(folder / "data"))
            assert code == 0, err
            return {name: store_of(folder).read(name) for name in ("qfq_daily", "hfq_daily")}

        def stopped_then_rerun(end: str) -> None:
            write_config(workdir, end_date=end, interfaces=later)
            server.inject("daily_quota", api="income")
            code, _, err = run_cli("fetch")
            assert code == 3 and "daily quota reached on income" in err
            assert run_cli("fetch")[0] == 0

        stopped_then_rerun(first)
        for name, want in reference(first).items():
            assert len(want) > 400
            pd.testing.assert_frame_equal(store_of(workdir).read(name), want)

        for name in ("daily", "adj_factor", "trade_cal"):
            table = server_tables[name]
            day = table["cal_date" if name == "trade_cal" else "trade_date"]
            server.add_rows(name, table[day.between("20181215", new_day)])
        stopped_then_rerun(new_day)
        for name, want in reference(new_day).items():
            assert want["trade_date"].max() == new_day
            pd.testing.assert_frame_equal(store_of(workdir).read(name), want)


def test_features_refuse_to_mix_price_bases(server_tables, tushare_env, workdir):
    # the server has adjustment factors of 600036.SH only: the others get no hfq/qfq bars
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=DERIVED)
        assert run_cli("fetch")[0] == 0
    assert set(store_of(workdir).read("hfq_daily")["ts_code"]) == {"600036.SH"}
    code, out, err = run_cli("features")
    assert code == 5, out + err
    assert err.count("\n") == 1
    assert "600000.SH, 600519.SH" in err and "hfq_daily" in err and "600036.SH" not in err


@pytest.mark.parametrize("wording", ["no_permission", "no_permission_2002",
                                     "no_api_permission"])
def test_each_permission_reply_skips_the_interface_only(wording, server_tables, tushare_env,
                                                        workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily", "moneyflow", "adj_factor"])
        server.inject(wording, times=10, api="moneyflow")
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert "skipped: no permission" in out
        assert server.calls["moneyflow"] == 1  # not retried
        for name in ("daily", "adj_factor"):
            assert len(store_of(workdir).read(name)) == len(expected(server_tables, name))


def test_a_failing_interface_does_not_stop_the_others(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily", "daily_basic", "adj_factor"])
        server.inject("http500", times=4, api="daily_basic")  # each attempt of its first call
        code, _, err = run_cli("fetch")
        assert code == 1
        assert err.count("\n") == 1
        assert "incomplete: daily_basic" in err and "failed after 4 attempts" in err
        assert "adj_factor" not in err
        for name in ("daily", "adj_factor"):
            assert len(store_of(workdir).read(name)) == len(expected(server_tables, name))
        assert not store_of(workdir).has("daily_basic")
        server.reset_counts()
        assert run_cli("fetch")[0] == 0
        assert server.calls["daily_basic"] == len(STOCKS) and server.calls["daily"] == 0
        assert len(store_of(workdir).read("daily_basic")) == len(
            expected(server_tables, "daily_basic"))


@pytest.mark.parametrize("by_day", [False, True], ids=["by_stock", "by_day"])
def test_paging_learns_a_cap_lower_than_assumed(by_day, server_tables, tushare_env, workdir):
    """The server pages at fewer rows than the catalogue's 6000, and config.json does not
    say so: every row is still fetched, in as many calls as pages."""
    cap = 20 if by_day else 100
    stocks = sorted(server_tables["stock_basic"]["ts_code"]) if by_day else STOCKS
    start = "20181101" if by_day else START
    end = "20181214" if by_day else END
    with ReplayServer(server_tables, TOKEN, caps={"daily": cap}) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date=start,
                     end_date=end, interfaces=["daily"])
        code, _, err = run_cli("fetch")
        assert code == 0, err
        want = expected(server_tables, "daily", stocks, start, end)
        got = store_of(workdir).read("daily")
        assert len(got) == len(want) > 5 * cap
        assert not got.duplicated(["ts_code", "trade_date"]).any()
        per_request = want.groupby("trade_date" if by_day else "ts_code").size()
        assert server.calls["daily"] == calls_for(per_request, cap)


def test_a_request_cut_after_its_first_page_is_not_marked_asked(server_tables, tushare_env,
                                                                 workdir):
    with ReplayServer(server_tables, TOKEN, caps={"daily": 100}) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        server.inject("http500", times=4, api="daily", after=1)  # the first stock's 2nd page
        code, _, err = run_cli("fetch")
        first = server.requests[[a for a, _ in server.requests].index("daily")][1]["ts_code"]
        assert first not in store_of(workdir).coverage("daily")
        assert code == 1 and "incomplete: daily" in err
        assert run_cli("fetch")[0] == 0
        assert len(store_of(workdir).read("daily")) == len(expected(server_tables, "daily"))


def test_an_empty_reply_for_a_traded_range_is_asked_again(server_tables, tushare_env,
                                                          workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        server.inject("empty", api="daily", after=1)
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert "unconfirmed" in out
        empty = [p["ts_code"] for api, p in server.requests if api == "daily"][1]
        assert empty not in set(store_of(workdir).read("daily")["ts_code"])
        server.reset_counts()
        assert run_cli("fetch")[0] == 0
        assert [p["ts_code"] for api, p in server.requests if api == "daily"] == [empty]
        assert len(store_of(workdir).read("daily")) == len(expected(server_tables, "daily"))
        server.reset_counts()
        assert run_cli("fetch")[0] == 0
        assert server.calls["daily"] == 0


def test_a_range_empty_twice_counts_as_asked(server_tables, tushare_env, workdir):
    """A stock with no bars in the range (suspended, or listed after it) is asked twice, in
    two runs, then no more."""
    quiet = "600001.SH"
    listed = pd.concat([server_tables["stock_basic"],
                        pd.DataFrame({"ts_code": [quiet], "name": ["停牌股"]})], ignore_index=True)
    with ReplayServer({**server_tables, "stock_basic": listed}, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": [*STOCKS, quiet]},
                     interfaces=["daily"])
        asked = []
        for _ in range(3):
            server.reset_counts()
            assert run_cli("fetch")[0] == 0
            asked.append([p["ts_code"] for api, p in server.requests if api == "daily"])
        assert asked == [[*STOCKS, quiet], [quiet], []]
        assert len(store_of(workdir).read("daily")) == len(expected(server_tables, "daily"))
