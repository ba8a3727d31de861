"""The on-request interfaces (issue 15, item 5): each fetched by name only, via the replay server.

Rows are made in the column layout of tushare's documentation for each interface, served,
fetched with `stockpred fetch --only NAME`, and looked for in the store; a rerun adds nothing.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from conftest import STOCKS, TOKEN, run_cli, write_config
from stockpred.config import Config, with_overrides
from stockpred.data.catalogue import CATALOGUE, GROUPS, ON_REQUEST
from stockpred.data.fetch import selected_interfaces
from stockpred.data.replay import ReplayServer
from stockpred.data.store import RawStore
from stockpred.errors import InputError

START, END = "20181201", "20181228"
OTHER = "601318.SH"  # a listed stock outside the universe: its rows must not be asked for
INDICES = ["000001.SH", "000300.SH"]
FUTURES = ["IF1812.CFX", "IH1812.CFX"]


def open_days(calendar: pd.DataFrame, start: str = START, end: str = END) -> list[str]:
    cal = calendar[calendar["cal_date"].between(start, end) & (calendar["is_open"] == 1)]
    return sorted(cal["cal_date"])


def weekdays(start: str = START, end: str = END) -> list[str]:
    first = date(int(start[:4]), int(start[4:6]), int(start[6:]))
    last = date(int(end[:4]), int(end[4:6]), int(end[6:]))
    return [f"{d:%Y%m%d}" for n in range((last - first).days + 1)
            if (d := first + timedelta(n)).weekday() < 5]


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# -- rows in tushare's layout, one builder per interface ------------------------------------

def index_dailybasic(days):
    return frame([{"ts_code": code, "trade_date": d, "total_mv": 2.6e13 + i, "float_mv": 2.2e13,
                   "total_share": 3.9e12, "float_share": 3.4e12, "free_share": 1.2e12,
                   "turnover_rate": 0.4, "turnover_rate_f": 1.1, "pe": 12.5, "pe_ttm": 12.1,
                   "pb": 1.3}
                  for code in [*INDICES, "399001.SZ"] for i, d in enumerate(days)])


def fx_daily(days):
    return frame([{"ts_code": code, "trade_date": d, "bid_open": 6.9, "bid_close": 6.91,
                   "bid_high": 6.93, "bid_low": 6.88, "ask_open": 6.9005, "ask_close": 6.9105,
                   "ask_high": 6.9305, "ask_low": 6.8805, "tick_qty": 120000 + i,
                   "exchange": "FXCM"}
                  for code in ("USDCNH.FXCM", "EURUSD.FXCM")
                  for i, d in enumerate(weekdays())])  # FX trades on China's holidays too


def opt_basic(days):
    return frame([{"ts_code": f"1000{n:04d}.SH", "exchange": "SSE",
                   "name": f"华夏上证50ETF期权1812认{'购' if cp == 'C' else '沽'}{price}",
                   "per_unit": 10000, "opt_code": "OP510050.SH", "opt_type": "ETF期权",
                   "call_put": cp, "exercise_type": "欧式", "exercise_price": price,
                   "s_month": "201812", "maturity_date": "20181226", "list_price": 0.1,
                   "list_date": "20180426", "delist_date": "20181226", "last_edate": "20181226",
                   "last_ddate": "20181227", "quote_unit": "人民币元", "min_price_chg": "0.0001"}
                  for n, (cp, price) in enumerate((c, p) for c in "CP"
                                                  for p in (2.3, 2.35, 2.4))])


def opt_daily(days):
    return frame([{"ts_code": code, "exchange": "SSE", "trade_date": d, "pre_settle": 0.05,
                   "pre_close": 0.05, "open": 0.051, "high": 0.06, "low": 0.048,
                   "close": 0.055, "settle": 0.055, "vol": 1000.0 + i, "amount": 55.0,
                   "oi": 20000.0}
                  for code in ("10001500.SH", "10001501.SH") for i, d in enumerate(days)])


def fut_basic(days):
    return frame([{"ts_code": code, "symbol": code.split(".")[0], "exchange": "CFFEX",
                   "name": f"沪深300股指期货{code[2:6]}", "fut_code": "IF", "multiplier": 300,
                   "trade_unit": "点", "per_unit": 300, "quote_unit": "点",
                   "quote_unit_desc": "0.2点", "d_mode_desc": "现金交割",
                   "list_date": "20180420", "delist_date": f"2018{code[4:6]}21",
                   "d_month": f"2018{code[4:6]}", "last_ddate": f"2018{code[4:6]}21",
                   "trade_time_desc": "9:30-11:30,13:00-15:00"}
                  for code in ("IF1812.CFX", "IF1901.CFX", "IF1903.CFX")])


def fut_settle(days):
    return frame([{"ts_code": code, "trade_date": d, "settle": 3100.0 + i,
                   "trading_fee_rate": 0.000023, "trading_fee": None, "delivery_fee": None,
                   "b_hedging_margin_rate": 0.1, "s_hedging_margin_rate": 0.1,
                   "long_margin_rate": 0.1, "short_margin_rate": 0.1,
                   "offset_today_fee": None, "exchange": "CFFEX"}
                  for code in [*FUTURES, "IC1812.CFX"] for i, d in enumerate(days)])


HOLDER_PERIODS = [("20171231", "20180328"), ("20180331", "20180427"),
                  ("20180630", "20180825"), ("20180930", "20181027")]


def _holders(float_only: bool):
    rows = []
    for code in [*STOCKS, OTHER]:
        for end, ann in HOLDER_PERIODS:
            for n in range(10):
                row = {"ts_code": code, "ann_date": ann, "end_date": end,
                       "holder_name": f"股东{n}", "hold_amount": 1e8 - n * 1e6,
                       "hold_ratio": 10.0 - n}
                if not float_only:
                    row["hold_float_ratio"] = 11.0 - n
                row.update(hold_change=0.0, holder_type="一般法人")
                rows.append(row)
    return frame(rows)


def top10_holders(days):
    return _holders(float_only=False)


def top10_floatholders(days):
    return _holders(float_only=True)


def top_list(days):
    rows = []
    for i, d in enumerate(days):
        for code, reasons in ((STOCKS[0], ("日涨幅偏离值达到7%的前五只证券",
                                           "连续三个交易日内，涨幅偏离值累计达到20%的证券")),
                              (OTHER, ("日跌幅偏离值达到7%的前五只证券",))):
            rows += [{"trade_date": d, "ts_code": code, "name": "某股", "close": 10.0 + i,
                      "pct_change": 10.0, "turnover_rate": 5.0, "amount": 1e9,
                      "l_sell": 1e8, "l_buy": 2e8, "l_amount": 3e8, "net_amount": 1e8,
                      "net_rate": 10.0, "amount_rate": 30.0, "float_values": 1e10,
                      "reason": reason} for reason in reasons]
    return frame(rows)


def top_inst(days):
    reason = "日涨幅偏离值达到7%的前五只证券"
    return frame([{"trade_date": d, "ts_code": STOCKS[0], "exalter": exalter, "side": side,
                   "buy": 5e7, "buy_rate": 5.0, "sell": 1e7, "sell_rate": 1.0,
                   "net_buy": 4e7, "reason": reason}
                  for d in days for side in ("0", "1")
                  for exalter in ("机构专用", "中信证券股份有限公司上海溧阳路证券营业部")])


def concept(days):
    return frame([{"code": f"TS{n}", "name": name, "src": "ts"}
                  for n, name in enumerate(("密集调研", "锂电池", "5G"), 1)])


def concept_detail(days):
    return frame([{"id": cid, "concept_name": name, "ts_code": code, "name": "某股",
                   "in_date": in_date, "out_date": None}
                  for code in [*STOCKS, OTHER]
                  for cid, name, in_date in (("TS2", "锂电池", None),
                                             ("TS3", "5G", "20181210"))])


def stk_holdernumber(days):
    return frame([{"ts_code": code, "ann_date": ann, "end_date": end,
                   "holder_num": 100000.0 + n}
                  for code in [*STOCKS, OTHER]
                  for n, (ann, end) in enumerate((("20181205", "20181130"),
                                                  ("20181220", "20181210")))])


def stk_account(days):
    return frame([{"date": d, "weekly_new": 20.5 + n, "total": 14500.0 + n,
                   "weekly_hold": None, "weekly_trade": None}
                  for n, d in enumerate(("20181207", "20181214", "20181221", "20181228"))])


def hsgt_top10(days):
    return frame([{"trade_date": d, "ts_code": code, "name": "某股", "close": 20.0,
                   "change": 1.5, "rank": rank, "market_type": market, "amount": 5e8,
                   "net_amount": 1e8, "buy": 3e8, "sell": 2e8}
                  for d in days for rank, (code, market) in enumerate(
                      (("600519.SH", "1"), ("601318.SH", "1"),
                       ("000333.SZ", "3"), ("000651.SZ", "3")), 1)])


def ggt_top10(days):
    # a Hong Kong stock can be in the top ten of both southbound links on one day
    return frame([{"trade_date": d, "ts_code": code, "name": "腾讯控股", "close": 300.0,
                   "p_change": 1.2, "rank": 1, "market_type": market, "amount": 1e9,
                   "net_amount": 2e8, "sh_amount": 6e8, "sh_net_amount": 1e8, "sh_buy": 3.5e8,
                   "sh_sell": 2.5e8, "sz_amount": 4e8, "sz_net_amount": 1e8, "sz_buy": 2.5e8,
                   "sz_sell": 1.5e8}
                  for d in days for code in ("00700.HK", "02318.HK") for market in ("2", "4")])


def margin_detail(days):
    return frame([{"trade_date": d, "ts_code": code, "name": "某股", "rzye": 1e9 + i,
                   "rqye": 1e7, "rzmre": 5e7, "rqyl": 1e5, "rzche": 4e7, "rqchl": 1e4,
                   "rqmcl": 2e4, "rzrqye": 1.01e9}
                  for code in [*STOCKS, OTHER] for i, d in enumerate(days)])


def pledge_detail(days):
    return frame([{"ts_code": code, "ann_date": ann, "holder_name": "某控股集团有限公司",
                   "pledge_amount": amount, "start_date": start, "end_date": None,
                   "is_release": release, "release_date": released, "pledgor": pledgor,
                   "holding_amount": 5e4, "pledged_amount": 3e4, "p_total_ratio": 10.0,
                   "h_total_ratio": 60.0, "is_buyback": "0"}
                  for code in [*STOCKS, OTHER]
                  for ann, amount, start, release, released, pledgor in (
                      ("20181204", 1000.0, "20181203", "0", None, "中国银行股份有限公司"),
                      # two tranches of one day, to two pledgees
                      ("20181218", 500.0, "20181217", "0", None, "招商证券股份有限公司"),
                      ("20181218", 800.0, "20181217", "1", "20181227", "中信证券股份有限公司"))])


BUILDERS = {f.__name__: f for f in (
    index_dailybasic, fx_daily, opt_basic, opt_daily, fut_basic, fut_settle, top10_holders,
    top10_floatholders, top_list, top_inst, concept, concept_detail, stk_holdernumber,
    stk_account, hsgt_top10, ggt_top10, margin_detail, pledge_detail)}
# the holders' lists are asked by report period, which ends months before the announcement
STARTS = {"top10_holders": "20180101", "top10_floatholders": "20180101"}


def expected(name: str, served: pd.DataFrame) -> pd.DataFrame:
    """The served rows a fetch of the test config must store."""
    iface = CATALOGUE[name]
    subjects = {"stock": STOCKS, "index": INDICES, "future": FUTURES}.get(iface.subject)
    rows = served
    if subjects is not None:
        rows = rows[rows[iface.subject_param].isin(subjects)]
    if iface.date_field and iface.range_query:
        rows = rows[rows[iface.date_field].between(STARTS.get(name, START), END)]
    return rows


def keys_of(table: pd.DataFrame, keys) -> set[tuple]:
    return set(map(tuple, table[list(keys)].astype(str).to_numpy()))


def test_every_on_request_interface_is_tested_and_in_no_fetch_group():
    on_request = {n for n, i in CATALOGUE.items() if i.group == ON_REQUEST}
    assert on_request == set(BUILDERS)
    assert ON_REQUEST not in GROUPS
    defaults = {i.name for i in selected_interfaces(Config())}
    every_group = with_overrides(Config(), {"fetch": {"groups": list(GROUPS)}})
    assert not on_request & (defaults | {i.name for i in selected_interfaces(every_group)})
    with pytest.raises(InputError, match="unknown group 'on_request'"):
        with_overrides(Config(), {"fetch": {"groups": [ON_REQUEST]}})
    for name in on_request:
        iface = CATALOGUE[name]
        assert set(iface.keys) <= iface.text_columns, name


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fetch_only_on_request_interface(name, server_tables, tushare_env, workdir):
    iface = CATALOGUE[name]
    served = BUILDERS[name](open_days(server_tables["trade_cal"]))
    assert not served.duplicated(list(iface.keys)).any()
    want = expected(name, served)
    assert 0 < len(want)
    tables = {"stock_basic": server_tables["stock_basic"],
              "trade_cal": server_tables["trade_cal"], name: served}
    with ReplayServer(tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, start_date=STARTS.get(name, START), end_date=END,
                     indices=INDICES, futures=FUTURES)
        code, out, err = run_cli("fetch", "--only", name)
        assert code == 0, err
        got = RawStore(workdir / "data" / "raw").read(name)
        assert len(got) == len(want), out
        assert not got.duplicated(list(iface.keys)).any()
        assert keys_of(got, iface.keys) == keys_of(want, iface.keys)
        assert all(pd.api.types.is_string_dtype(got[k]) for k in iface.keys)
        # only the named interface (and what its plan reads) was asked
        assert set(server.calls) <= {name, "stock_basic", "trade_cal"}
        asked = [params for api, params in server.requests if api == name]
        assert asked and all(params.get(k) == v for params in asked
                             for k, v in iface.fixed_params.items())
        if iface.by_trade_date and not iface.range_query:  # one call per trading day
            assert sorted(p["trade_date"] for p in asked) == open_days(server_tables["trade_cal"])

        # a rerun adds nothing
        code, out, err = run_cli("fetch", "--only", name)
        assert code == 0, err
        assert "0 rows added" in out
        assert len(RawStore(workdir / "data" / "raw").read(name)) == len(want)


def test_fina_mainbz_fills_one_table_by_product_and_one_by_region(server_tables, tushare_env,
                                                                   workdir):
    """One tushare interface, two tables: `type` P (product) and D (region) are asked apart
    and each reply lands in its own table."""
    def mainbz(items):
        return frame([{"ts_code": code, "end_date": end, "bz_item": item, "bz_sales": 1e9 + n,
                       "bz_profit": 2e8, "bz_cost": 8e8, "curr_type": "CNY", "update_flag": "0"}
                      for code in STOCKS for end in ("20180630", "20180930")
                      for n, item in enumerate(items)])

    by_product, by_region = mainbz(["零售金融", "公司金融"]), mainbz(["华东地区", "境外"])
    tables = {"stock_basic": server_tables["stock_basic"],
              "trade_cal": server_tables["trade_cal"], "fina_mainbz": by_product,
              "fina_mainbz_region": by_region}
    with ReplayServer(tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, start_date="20180101", end_date=END)
        code, out, err = run_cli("fetch", "--only", "fina_mainbz,fina_mainbz_region")
        assert code == 0, err
        store = RawStore(workdir / "data" / "raw")
        for name, served in (("fina_mainbz", by_product), ("fina_mainbz_region", by_region)):
            assert keys_of(store.read(name), CATALOGUE[name].keys) == \
                keys_of(served, CATALOGUE[name].keys)
        asked = {params["type"] for api, params in server.requests if api == "fina_mainbz"}
        assert asked == {"P", "D"} and "fina_mainbz_region" not in server.calls
