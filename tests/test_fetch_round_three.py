"""Rows a fetch still lost for good (issue 22): an empty reply for a market day or a
stock's range of any dense table, a row cap lower than assumed on a server that omits
has_more, a file lost together with the manifest, a store whose source is unreadable,
and bars that cannot be prices. Each goes through the real tushare client and the
replay server, and loses nothing after one rerun."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from conftest import STOCKS, TOKEN, run_cli, tree_digest, write_config
from stockpred.data import store as store_module
from stockpred.data.replay import ReplayServer
from stockpred.data.store import ALL_SUBJECTS, RawStore

START, END = "20181101", "20181214"  # 32 open days, more than a week before the end
EMPTY_DAY = "20181105"


def store_of(folder) -> RawStore:
    return RawStore(folder / "data" / "raw")


def expected(tables, name, stocks=None, start=START, end=END) -> pd.DataFrame:
    t = tables[name]
    rows = t["trade_date"].between(start, end)
    if stocks is not None:
        rows &= t["ts_code"].isin(stocks)
    return t[rows]


def asked(server, api: str, param: str) -> list[str]:
    return [p[param] for a, p in server.requests if a == api]


def test_an_empty_market_day_of_a_by_day_backfill_is_asked_again(server_tables, tushare_env,
                                                                 workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, start_date=START, end_date=END, interfaces=["daily"])
        server.inject("empty", api="daily", where={"trade_date": EMPTY_DAY})
        code, out, err = run_cli("fetch", "--universe", "all")
        assert code == 0, err
        assert "unconfirmed" in out and EMPTY_DAY in out
        store = store_of(workdir)
        assert EMPTY_DAY not in set(store.read("daily")["trade_date"])
        assert all(not lo <= EMPTY_DAY <= hi for lo, hi in store.coverage("daily")[ALL_SUBJECTS])
        server.reset_counts()
        code, _, err = run_cli("fetch", "--universe", "all")
        assert code == 0, err
        assert asked(server, "daily", "trade_date") == [EMPTY_DAY]
        assert len(store.read("daily")) == len(expected(server_tables, "daily"))
        server.reset_counts()
        assert run_cli("fetch", "--universe", "all")[0] == 0
        assert server.calls["daily"] == 0


def test_a_market_day_empty_twice_counts_as_asked(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, start_date=START, end_date=END, interfaces=["daily"])
        server.inject("empty", times=2, api="daily", where={"trade_date": EMPTY_DAY})
        days = []
        for _ in range(3):
            server.reset_counts()
            assert run_cli("fetch", "--universe", "all")[0] == 0
            days.append(asked(server, "daily", "trade_date"))
        assert EMPTY_DAY in days[0] and days[1:] == [[EMPTY_DAY], []]


@pytest.mark.parametrize("name", ["adj_factor", "daily_basic"])
def test_an_empty_range_of_any_dense_table_is_asked_again(name, server_tables, tushare_env,
                                                          workdir):
    stock = "600036.SH"  # the one stock the server has factors and indicators of
    interfaces = ["daily", "adj_factor", "qfq_daily"] + (["daily_basic"] if name != "adj_factor"
                                                          else [])
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=interfaces)
        server.inject("empty", api=name, where={"ts_code": stock})
        code, out, err = run_cli("fetch")
        assert code == 0, err
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert "unconfirmed" in line and "asked again next run" in line
        assert not store_of(workdir).has(name) or stock not in set(
            store_of(workdir).read(name)["ts_code"])
        # the server has the table of 600036.SH only: the other two are asked twice too
        for want_asked in (STOCKS, []):
            server.reset_counts()
            assert run_cli("fetch")[0] == 0
            assert sorted(asked(server, name, "ts_code")) == want_asked
        store = store_of(workdir)
        want = expected(server_tables, name, STOCKS, "20170101", "20181228")
        assert len(store.read(name)) == len(want) > 0
        qfq = store.read("qfq_daily", subjects=[stock])
        assert len(qfq) == len(expected(server_tables, "daily", [stock], "20170101", "20181228"))


@pytest.mark.parametrize("by_day", [False, True], ids=["by_stock", "by_day"])
def test_a_lower_cap_without_has_more_loses_nothing(by_day, server_tables, tushare_env,
                                                    workdir):
    """The server pages at a cap below the catalogue's and never says it has more: a round
    page (by stock, cap 100) or a day far short of the listed stocks (by day, cap 20) is
    asked past its end."""
    cap = 20 if by_day else 100
    stocks = sorted(server_tables["stock_basic"]["ts_code"]) if by_day else STOCKS
    start, end = (START, END) if by_day else ("20170101", "20181228")
    # tushare's stock_basic has each stock's list date: the sample's lacks it
    listed = server_tables["stock_basic"].assign(list_date="20100104")
    tables = {**server_tables, "stock_basic": listed}
    with ReplayServer(tables, TOKEN, caps={"daily": cap}, has_more=False) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": stocks}, start_date=start,
                     end_date=end, interfaces=["daily"])
        code, _, err = run_cli("fetch")
        assert code == 0, err
        want = expected(server_tables, "daily", stocks, start, end)
        got = store_of(workdir).read("daily")
        assert len(got) == len(want) > 5 * cap
        assert not got.duplicated(["ts_code", "trade_date"]).any()
        pages = Counter(p.get("trade_date" if by_day else "ts_code") for a, p in server.requests
                        if a == "daily")
        per_request = want.groupby("trade_date" if by_day else "ts_code").size()
        # one probe past the first short page, then pages of the learned cap
        assert sum(pages.values()) <= sum(n // cap + 1 for n in per_request) + 1


# -- item 3: the ledger against the files, and a store of unknown source ------------------

def assert_one_line_error(code, out, err, *phrases):
    assert code != 0, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err and "unexpected" not in err
    for phrase in phrases:
        assert phrase in err, err


@pytest.mark.parametrize("loss", ["deleted", "cut short"])
def test_a_year_file_lost_with_the_manifest_is_found_and_fetched_again(
        loss, server_tables, tushare_env, workdir, monkeypatch):
    monkeypatch.setattr(store_module, "MARKET_SCALE", 2)  # the time layout for the SSE 50
    start = "20171101"  # two year files
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, start_date=start, end_date=END, interfaces=["daily"])
        assert run_cli("fetch", "--universe", "all")[0] == 0
        raw = workdir / "data" / "raw"
        year = raw / "daily" / "2018.parquet"
        if loss == "deleted":
            year.unlink()
        else:  # a whole file, short of its last weeks
            kept = pd.read_parquet(year)
            kept[kept["trade_date"] < "20181201"].to_parquet(year)
        (raw / "manifest.json").unlink()
        server.reset_counts()
        code, out, err = run_cli("fetch", "--universe", "all")
        assert_one_line_error(code, out, err, str(year), "stockpred fetch --repair")
        assert server.calls["daily"] == 0
        code, out, err = run_cli("fetch", "--universe", "all", "--repair")
        assert code == 0, err
        assert all(p["trade_date"] >= "20180101" for a, p in server.requests if a == "daily")
        want = expected(server_tables, "daily", start=start)
        assert len(store_of(workdir).read("daily")) == len(want)
        server.reset_counts()
        assert run_cli("fetch", "--universe", "all")[0] == 0
        assert server.calls["daily"] == 0


def test_a_stock_file_lost_with_the_manifest_is_found_and_fetched_again(
        server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        raw = workdir / "data" / "raw"
        gone = raw / "daily" / "600000.SH.parquet"
        gone.unlink()
        (raw / "manifest.json").unlink()
        code, out, err = run_cli("fetch")
        assert_one_line_error(code, out, err, str(gone), "missing")
        server.reset_counts()
        assert run_cli("fetch", "--repair")[0] == 0
        assert asked(server, "daily", "ts_code") == ["600000.SH"]
        want = expected(server_tables, "daily", STOCKS, "20170101", "20181228")
        assert len(store_of(workdir).read("daily")) == len(want)


def test_a_store_of_unknown_source_is_refused_without_a_token(server_tables, tushare_env,
                                                              workdir, monkeypatch):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
    monkeypatch.delenv("TUSHARE_TOKEN")
    raw = workdir / "data" / "raw"
    (raw / "_source.json").write_text("{not json")
    (raw / "manifest.json").write_text("{not json")
    before = tree_digest(raw)
    code, out, err = run_cli("fetch")
    assert code == 2
    assert_one_line_error(code, out, err, "unknown source", "TUSHARE_TOKEN", "--source sample")
    assert tree_digest(raw) == before
    assert (raw / "_source.json").read_text() == "{not json"


# -- item 4: bars that cannot be prices -----------------------------------------------------

def test_bars_that_cannot_be_prices_are_set_aside_with_their_reason(server_tables,
                                                                    tushare_env, workdir):
    daily = server_tables["daily"].copy()
    stock = daily["ts_code"].eq("600036.SH")
    at = {day: daily.index[stock & daily["trade_date"].eq(day)][0]
          for day in ("20170104", "20170105", "20170106", "20170109", "20170110")}
    daily.loc[at["20170104"], "close"] = 0.0
    daily.loc[at["20170105"], ["close", "low"]] = -5.0
    daily.loc[at["20170106"], "vol"] = -100.0
    daily.loc[at["20170109"], "high"] = 1e12
    twin = daily.loc[[at["20170110"]]].assign(close=daily.loc[at["20170110"], "close"] * 1.01)
    daily = pd.concat([daily, twin], ignore_index=True)
    with ReplayServer({**server_tables, "daily": daily}, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily", "adj_factor", "qfq_daily"])
        code, out, err = run_cli("fetch")
        assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("daily"))
    assert "6 rows" in line and "600036.SH 20170109 (high past 10x the limit price)" in line
    store = store_of(workdir)
    aside = store.quarantined("daily")
    reasons = dict(zip(aside["trade_date"], aside["reason"]))
    assert reasons == {"20170104": "price <= 0", "20170105": "price <= 0",
                       "20170106": "negative volume",
                       "20170109": "high past 10x the limit price",
                       "20170110": "rows of one key that disagree"}
    assert len(aside) == 6  # both rows of the key that disagree
    stored = store.read("daily", subjects=["600036.SH"])
    assert not set(reasons) & set(stored["trade_date"])
    want = expected(server_tables, "daily", ["600036.SH"], "20170101", "20181228")
    assert len(stored) == len(want) - len(reasons)
    qfq = store.read("qfq_daily", subjects=["600036.SH"])
    assert not set(reasons) & set(qfq["trade_date"])
    assert (qfq["pct_chg"].abs() < 11).all()
    code, out, err = run_cli("show", "daily", "--quarantined", "--tail", "0")
    assert code == 0, err
    assert "rows of one key that disagree" in out and "(6 rows)" in out
