"""stockpred fetch through the real tushare client against the replay server."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import tushare

from conftest import STOCKS, TOKEN, run_cli, tree_digest, write_config
from stockpred.data.replay import ReplayServer, tables_as_of
from stockpred.data.store import RawStore

INTERFACES = ("daily", "daily_basic", "adj_factor")


def expected_rows(tables, name, stocks, start="20170101", end="20181228"):
    t = tables[name]
    return t[t["ts_code"].isin(stocks) & t["trade_date"].between(start, end)]


def stored(workdir, name):
    return RawStore(workdir / "data" / "raw").read(name)


def test_backfill_rerun_and_nightly_refresh(server_tables, tushare_env, workdir):
    with ReplayServer(tables_as_of(server_tables, "20181214"), TOKEN) as server:
        tushare_env(server)
        write_config(workdir, end_date="20181214")
        code, out, err = run_cli("fetch")
        assert code == 0, err
        for name in INTERFACES:
            want = expected_rows(server_tables, name, STOCKS, end="20181214")
            got = stored(workdir, name)
            assert len(got) == len(want) > 0
            assert not got.duplicated(["ts_code", "trade_date"]).any()
            # one call per (interface, stock) for a backfill
            assert server.calls[name] == len(STOCKS)
        close = stored(workdir, "daily").set_index(["ts_code", "trade_date"])["close"]
        real = server_tables["daily"].set_index(["ts_code", "trade_date"])["close"]
        assert close.equals(real.loc[close.index])

        # a re-run asks only what came back empty once (the server has daily_basic and
        # adj_factor of 600036.SH only), a third nothing; neither adds or rewrites a row
        before = tree_digest(workdir / "data" / "raw")
        for again in (len(STOCKS) - 1, 0):
            server.reset_counts()
            code, out, _ = run_cli("fetch")
            assert code == 0
            assert "0 rows added" in out
            assert tree_digest(workdir / "data" / "raw") == before
            assert [server.calls[name] for name in INTERFACES] == [0, again, again]

        # the server gains the next trading days; the nightly refresh asks once per day
        for name, table in server_tables.items():
            field = "cal_date" if name == "trade_cal" else "trade_date"
            if name in (*INTERFACES, "trade_cal"):
                server.add_rows(name, table[table[field].between("20181215", "20181217")])
        server.reset_counts()
        write_config(workdir, end_date="20181217")
        code, out, err = run_cli("refresh")
        assert code == 0, err
        assert f"features: {len(STOCKS)} stocks" in out
        for name in INTERFACES:
            assert server.calls[name] == 1, (name, server.requests)
            assert ("trade_date", "20181217") in server.requests[
                [a for a, _ in server.requests].index(name)][1].items()
            got = stored(workdir, name)
            assert len(got) == len(expected_rows(server_tables, name, STOCKS, end="20181217"))
            new_day = expected_rows(server_tables, name, STOCKS, "20181217", "20181217")
            assert (got["trade_date"] == "20181217").sum() == len(new_day) > 0
        assert server.calls["trade_cal"] == 1
        assert list((workdir / "data" / "logs").glob("refresh-*.log"))


def test_paging_past_the_row_cap(server_tables, tushare_env, workdir):
    caps = {"daily": 300}
    with ReplayServer(server_tables, TOKEN, caps=caps) as server:
        tushare_env(server)
        config = write_config(workdir, interfaces=["daily"])
        raw = json.loads(config.read_text())
        raw["tushare"]["rows_per_call"] = caps
        config.write_text(json.dumps(raw))
        code, _, err = run_cli("fetch")
        assert code == 0, err
        want = expected_rows(server_tables, "daily", STOCKS)
        got = stored(workdir, "daily")
        assert len(got) == len(want)
        assert not got.duplicated(["ts_code", "trade_date"]).any()
        per_stock = want.groupby("ts_code").size()
        assert server.calls["daily"] == sum(n // 300 + 1 for n in per_stock)
        offsets = [p["offset"] for a, p in server.requests if a == "daily"]
        assert max(offsets) >= 300


def test_trading_day_not_yet_published_is_asked_again(server_tables, tushare_env, workdir):
    with ReplayServer(tables_as_of(server_tables, "20181214"), TOKEN) as server:
        tushare_env(server)
        write_config(workdir, end_date="20181214", interfaces=["daily"])
        assert run_cli("fetch")[0] == 0
        # the calendar knows 20181217 is open, but the bars are not published yet
        cal = server_tables["trade_cal"]
        server.add_rows("trade_cal", cal[cal["cal_date"].between("20181215", "20181217")])
        write_config(workdir, end_date="20181217", interfaces=["daily"])
        code, out, _ = run_cli("fetch")
        assert code == 0
        assert "no rows yet for 20181217" in out
        server.add_rows("daily", server_tables["daily"].query("trade_date == '20181217'"))
        server.reset_counts()
        code, out, _ = run_cli("fetch")
        assert code == 0
        assert server.calls["daily"] == 1
        assert (stored(workdir, "daily")["trade_date"] == "20181217").sum() == len(STOCKS)


def test_universe_from_index_weight(server_tables, tushare_env, workdir):
    members = server_tables["stock_basic"]["ts_code"]
    weights = pd.DataFrame({"index_code": "000016.SH", "con_code": members,
                            "trade_date": "20181203", "weight": 2.0})
    with ReplayServer({**server_tables, "index_weight": weights}, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": "000016.SH", "ts_codes": []},
                     start_date="20181201", interfaces=["daily"])
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert set(stored(workdir, "daily")["ts_code"]) == set(members)
        # 50 stocks, 20 trading days: one call a day beats one per stock
        days = server_tables["trade_cal"].query("is_open == 1 and cal_date >= '20181201'")
        assert server.calls["daily"] == len(days) == 20
        manifest = json.loads((workdir / "data" / "raw" / "manifest.json").read_text())
        assert sorted(manifest["stocks"]) == sorted(members)
        assert manifest["tables"]["daily"]["rows"] == len(stored(workdir, "daily"))


def test_adjusted_prices_match_tushare_pro_bar(real_tables, server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, universe={"index": None, "ts_codes": ["600036.SH"]},
                     interfaces=["daily", "adj_factor", "qfq_daily", "hfq_daily"])
        code, _, err = run_cli("fetch")
        assert code == 0, err
        pro = tushare.pro_api(TOKEN)
        pro._DataApi__http_url = server.url
        for how in ("qfq", "hfq"):
            theirs = tushare.pro_bar(ts_code="600036.SH", api=pro, adj=how,
                                     start_date="20170101", end_date="20181228")
            theirs = theirs.sort_values("trade_date").reset_index(drop=True)
            ours = stored(workdir, f"{how}_daily")
            assert len(ours) > 400
            assert list(ours["trade_date"]) == list(theirs["trade_date"])
            for col in ("open", "high", "low", "close", "pre_close", "change", "pct_chg"):
                assert ours[col].to_numpy() == pytest.approx(theirs[col].to_numpy(), abs=1e-9)
    # and they are the real forward-adjusted series, up to the constant of its base day
    real = real_tables["qfq_daily"].query("ts_code == '600036.SH' and trade_date >= '20170101'")
    ratio = stored(workdir, "qfq_daily")["close"].to_numpy() / real["close"].to_numpy()
    assert ratio.max() / ratio.min() - 1 < 2e-3
