"""The replay server pages ``daily`` as tushare Pro does, by stock and by day, at any scale."""

from __future__ import annotations

import pandas as pd
import requests

from conftest import TOKEN
from stockpred.data.replay import ReplayServer
from stockpred.data.sample import read_sample


def post(server: ReplayServer, api: str, **params) -> dict:
    """One call with the body the tushare client sends; returns the reply's ``data``,
    which (unlike the client) keeps ``has_more``."""
    body = {"api_name": api, "token": TOKEN, "params": params, "fields": ""}
    reply = requests.post(f"{server.url}/{api}", json=body, timeout=30).json()
    assert reply["code"] == 0, reply["msg"]
    return reply["data"]


def pages(server: ReplayServer, api: str, cap: int, **params) -> tuple[pd.DataFrame, list[bool]]:
    """Every page of a query, read ``cap`` rows at a time; returns the rows and each has_more."""
    frames, more = [], []
    while not more or more[-1]:
        data = post(server, api, **params, offset=sum(map(len, frames)), limit=cap)
        frames.append(pd.DataFrame(data["items"], columns=data["fields"]))
        more.append(data["has_more"])
    return pd.concat(frames, ignore_index=True), more


def newest_first(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["trade_date", "ts_code"], ascending=False, ignore_index=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    want = newest_first(want).astype(object)
    pd.testing.assert_frame_equal(got.astype(object), want[list(got.columns)],
                                  check_dtype=False)


def test_one_day_of_every_stock_pages_past_the_cap(server_tables):
    day = server_tables["daily"].query("trade_date == '20181228'")
    with ReplayServer(server_tables, TOKEN, caps={"daily": 20}) as server:
        got, more = pages(server, "daily", 20, trade_date="20181228")
        assert more == [True, True, False] and len(got) == len(day) == 49
        assert_same_rows(got, day)
        # a limit above the cap is cut to the cap, as tushare does
        assert len(post(server, "daily", trade_date="20181228", limit=1000)["items"]) == 20


def test_one_stock_over_a_range_pages_newest_first(server_tables):
    daily = server_tables["daily"]
    want = daily.query("ts_code == '600036.SH' and '20180101' <= trade_date <= '20181228'")
    with ReplayServer(server_tables, TOKEN, caps={"daily": 100}) as server:
        got, more = pages(server, "daily", 100, ts_code="600036.SH", start_date="20180101",
                          end_date="20181228")
        assert more == [True, True, False] and len(got) == len(want) == 243
        assert_same_rows(got, want)
        assert post(server, "daily", ts_code="600036.SH", trade_date="20181228",
                    start_date="20190101")["items"] == []


def test_market_scale_daily_by_day_and_by_stock(market_tables):
    bars = market_tables["daily"]
    cal = market_tables["trade_cal"]
    index = read_sample("index_daily").query("ts_code == '000001.SH' and trade_date >= '20080101'")
    assert list(cal.loc[cal["is_open"] == 1, "cal_date"]) == list(index["trade_date"])
    with ReplayServer(market_tables, TOKEN, caps={"daily": 500}) as server:
        day = bars[bars["trade_date"] == "20181228"]
        got, more = pages(server, "daily", 500, trade_date="20181228")
        assert more == [True, True, True, False] and len(got) == len(day) == 1695
        assert_same_rows(got, day)
        stock = bars[bars["ts_code"] == "000001.SZ"]
        got, more = pages(server, "daily", 500, ts_code="000001.SZ")
        assert len(more) == -(-len(stock) // 500) and len(got) == len(stock)
        assert_same_rows(got, stock)
        # a month by day, every stock in one call a day at tushare's own cap of 6000
        server.caps["daily"] = 6000
        month = cal.query("is_open == 1 and '20180101' <= cal_date <= '20180131'")["cal_date"]
        rows = sum(len(post(server, "daily", trade_date=d)["items"]) for d in month)
        assert rows == bars["trade_date"].between("20180101", "20180131").sum()
