"""The fetched tables that became point-in-time features (issue 15, item 6).

No real rows of these interfaces are in the shared data: the tests write rows in the column
layout of tushare's documentation for each interface into a store beside the shipped sample
(600036.SH with its unadjusted bars, 600519.SH with forward-adjusted bars only), run the real
`stockpred features`, and check that each value lands on the day its rule says it becomes
known, that rows known after a day T change nothing up to T, and that re-basing the price
history changes no value (families that touch prices read the unadjusted close only).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore

BANK, SPIRITS = "600036.SH", "600519.SH"  # SPIRITS: no unadjusted bars in the sample
START = "20160101"
T = "20180615"  # the cut: a Friday before the Dragon Boat holiday (20180618)
PRICES = ["open", "high", "low", "close", "pre_close", "change"]
REBASE = 1 / 0.8828


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def tables(late: float) -> dict[str, pd.DataFrame]:
    """Rows of every family; ``late`` scales the values of the rows that become known after
    T by their rule (1 leaves them as they are), and adds rows known after T when not 1."""
    more = late != 1
    dividend = frame([
        # the plan, announced on a Saturday
        {"ts_code": BANK, "end_date": "20171231", "ann_date": "20180324", "div_proc": "预案",
         "stk_div": 0.0, "stk_bo_rate": None, "stk_co_rate": None, "cash_div": 0.756,
         "cash_div_tax": 0.84, "record_date": None, "ex_date": None, "pay_date": None,
         "div_listdate": None, "imp_ann_date": None},
        # the shareholders' approval: no date of its own, never used
        {"ts_code": BANK, "end_date": "20171231", "ann_date": "20180324",
         "div_proc": "股东大会通过", "stk_div": 0.0, "stk_bo_rate": None, "stk_co_rate": None,
         "cash_div": 0.9, "cash_div_tax": 1.0, "record_date": None, "ex_date": None,
         "pay_date": None, "div_listdate": None, "imp_ann_date": None},
        # the implementation, known from imp_ann_date (after T), with bonus shares
        {"ts_code": BANK, "end_date": "20171231", "ann_date": "20180324", "div_proc": "实施",
         "stk_div": 0.2 * late, "stk_bo_rate": 0.2, "stk_co_rate": 0.0, "cash_div": 0.756,
         "cash_div_tax": 0.84 * late, "record_date": "20180711",
         "ex_date": "20180712" if not more else "20180713", "pay_date": "20180712",
         "div_listdate": "20180713", "imp_ann_date": "20180706"},
        {"ts_code": SPIRITS, "end_date": "20171231", "ann_date": "20180328", "div_proc": "预案",
         "stk_div": 0.0, "stk_bo_rate": None, "stk_co_rate": None, "cash_div": 9.9,
         "cash_div_tax": 10.999, "record_date": None, "ex_date": None, "pay_date": None,
         "div_listdate": None, "imp_ann_date": None},
    ])
    pledge = frame([{"ts_code": BANK, "end_date": end, "pledge_count": count,
                     "unrest_pledge": 6316.0, "rest_pledge": 0.0, "total_share": 2521984.5,
                     "pledge_ratio": ratio}
                    for end, count, ratio in (("20180601", 23.0, 10.0), ("20180608", 24.0, 12.0),
                                              (T, 25.0 * late, 13.0 * late))])
    block = frame([{"ts_code": BANK, "trade_date": day, "price": price, "vol": vol,
                    "amount": price * vol, "buyer": buyer, "seller": "机构专用"}
                   for day, price, vol, buyer in (
                       ("20180605", 28.0, 100.0, "中信证券股份有限公司上海分公司"),
                       ("20180605", 27.0, 300.0, "机构专用"),
                       (T, 26.0 * late, 50.0 * late, "招商证券股份有限公司深圳益田路营业部"))])
    anns = frame([{"ann_date": day, "ts_code": BANK, "name": "招商银行", "title": title,
                   "url": f"http://static.cninfo.com.cn/{n}.PDF", "rec_time": at}
                  for n, (day, title, at) in enumerate((
                      ("20180604", "董事会决议公告", "2018-06-04 10:00:00"),
                      ("20180604", "关于高级管理人员任职的公告", "2018-06-04 18:30:00"),
                      ("20180609", "监事会决议公告", "2018-06-09 09:00:00"),
                      *([(T, "关于可转债的公告", "2018-06-15 16:05:00"),
                         ("20180620", "年度权益分派实施公告", "2018-06-20 08:00:00")]
                        if more else [])))])
    holdertrade = frame([{"ts_code": BANK, "ann_date": day, "holder_name": name,
                          "holder_type": "G", "in_de": in_de, "change_vol": vol,
                          "change_ratio": ratio, "after_share": 1e6, "after_ratio": 0.01,
                          "avg_price": 28.0, "total_share": 1e6, "begin_date": day,
                          "close_date": day}
                         for day, name, in_de, vol, ratio in (
                             ("20180605", "田惠宇", "IN", 1e5, 0.5),
                             ("20180606", "王良", "DE", 4e4, 0.2),
                             *([("20180619", "刘建军", "DE", 9e5, 3.0)] if more else []))])
    repurchase = frame([{"ts_code": BANK, "ann_date": day, "end_date": None, "proc": proc,
                         "exp_date": "20190605", "vol": None, "amount": 5e8, "high_limit": 30.0,
                         "low_limit": None}
                        for day, proc in (("20180605", "董事会预案"),
                                          *([("20180620", "股东大会通过")] if more else []))])
    share_float = frame([{"ts_code": BANK, "ann_date": ann, "float_date": unlock,
                          "float_share": 1e8, "float_ratio": ratio, "holder_name": holder,
                          "share_type": "定增股份"}
                         for ann, unlock, ratio, holder in (
                             ("20180601", "20180720", 5.0, "某投资有限公司"),
                             ("20180710", "20180725", 1.0 * late, "某资产管理计划"))])
    audit = frame([{"ts_code": BANK, "ann_date": ann, "end_date": end, "audit_result": result,
                    "audit_fees": 1.5e7, "audit_agency": "毕马威华振会计师事务所",
                    "audit_sign": "某某,某某"}
                   for ann, end, result in (("20170325", "20161231", "保留意见"),
                                            ("20180324", "20171231", "标准无保留意见"))])
    days = ["20180601", "20180604", "20180605", "20180606", "20180607", "20180608", T,
            "20180619", "20180620"]
    # a rate dated T is known after T when published after the close, on T otherwise
    rate = {d: 2.0 + 0.1 * n * (late if d >= T else 1) for n, d in enumerate(days)}
    fixed_before_close = {d: 2.0 + 0.1 * n * (late if d > T else 1) for n, d in enumerate(days)}
    libor = frame([{"date": d, "curr_type": "USD", "on": r, "1w": r + 0.05, "1m": r + 0.1,
                    "2m": r + 0.2, "3m": r + 0.3, "6m": r + 0.4, "12m": r + 0.5}
                   for d, r in rate.items()])
    hibor = frame([{"date": d, "on": r - 1, "1w": r - 0.9, "2w": r - 0.8, "1m": r - 0.7,
                    "2m": r - 0.6, "3m": r - 0.5, "6m": r - 0.4, "12m": r - 0.3}
                   for d, r in fixed_before_close.items()])
    lpr = frame([{"date": "20180604", "1y": 4.31, "5y": None}])
    wz = frame([{"date": d, "comp_rate": r + 13, "center_rate": r + 14, "micro_rate": r + 12,
                 "cm_rate": 15.0, "sdb_rate": 14.4, "om_rate": 23.0, "aa_rate": 9.4,
                 "m1_rate": 16.0, "m3_rate": 16.1, "m6_rate": 15.2, "m12_rate": 14.6,
                 "long_rate": 13.9} for d, r in rate.items()])
    gz = frame([{"date": d, "d10_rate": r + 10, "m1_rate": 19.2, "m3_rate": 19.2,
                 "m6_rate": 12.77, "m12_rate": 14.4, "long_rate": 12.0}
                for d, r in rate.items()])
    return {"dividend": dividend, "pledge_stat": pledge, "block_trade": block, "anns": anns,
            "stk_holdertrade": holdertrade, "repurchase": repurchase,
            "share_float": share_float, "fina_audit": audit, "libor": libor, "hibor": hibor,
            "shibor_lpr": lpr, "wz_index": wz, "gz_index": gz}


def build(folder, late: float = 1.0, rebase: float = 1.0) -> dict[str, pd.DataFrame]:
    """The sample's two stocks from START with the made rows; their panels by trade_date."""
    assert run_cli("fetch", "--source", "sample", "--ts-code", f"{BANK},{SPIRITS}",
                   "--data-dir", str(folder), "--start", START)[0] == 0
    store = RawStore(folder / "raw")
    for name, rows in tables(late).items():
        store.upsert(CATALOGUE[name], rows)
    # SPIRITS has no unadjusted bars: its unadjusted close comes from daily_basic
    bars = store.read("qfq_daily", subjects=[SPIRITS])
    store.upsert(CATALOGUE["daily_basic"], pd.DataFrame({
        "ts_code": SPIRITS, "trade_date": bars["trade_date"], "close": bars["close"] * 1.7,
        "turnover_rate": 0.3, "pe": 30.0, "pb": 9.0}))
    if rebase != 1:
        for code in (BANK, SPIRITS):
            bars = store.read("qfq_daily", subjects=[code])
            bars[PRICES] = (bars[PRICES] * rebase).round(4)
            store.upsert(CATALOGUE["qfq_daily"], bars)
    code, _, err = run_cli("features", "--data-dir", str(folder))
    assert code == 0, err
    return {c: pd.read_parquet(folder / "features" / f"{c}.parquet").set_index("trade_date")
            for c in (BANK, SPIRITS)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("events")


@pytest.fixture(scope="module")
def panels(folder):
    return build(folder)


@pytest.fixture(scope="module")
def raw_close(panels, folder):
    """600036.SH's unadjusted close, which the families that touch prices read."""
    return RawStore(folder / "raw").read("daily", subjects=[BANK]).set_index(
        "trade_date")["close"]


FAMILY_COLUMNS = {
    "dividend": ["div_stock_ratio", "div_days_to_ex", "div_cash_yield", "div_age_days"],
    "pledge_stat": ["pledge_ratio", "pledge_count", "pledge_age_days"],
    "block_trade": ["block_vol_ratio", "block_premium"],
    "anns": ["anns_count", "anns_count_20d"],
    "stk_holdertrade": ["holder_net_change_20d"],
    "repurchase": ["repurchase_anns_20d"],
    "share_float": ["float_unlock_next_30d"],
    "fina_audit": ["audit_modified", "audit_age_days"],
    "libor": ["libor_usd_on", "libor_usd_12m"],
    "hibor": ["hibor_on"],
    "shibor_lpr": ["lpr_1y"],
    "wz_index": ["wz_comp_rate"],
    "gz_index": ["gz_d10_rate"],
}
EVERY_COLUMN = [c for columns in FAMILY_COLUMNS.values() for c in columns]


def test_each_family_has_its_columns_and_only_where_rows_exist(panels, folder):
    bank, spirits = panels[BANK], panels[SPIRITS]
    assert set(EVERY_COLUMN) <= set(bank.columns)
    # SPIRITS has a dividend plan and the market series, none of the stock's other tables
    assert {"div_cash_yield", "div_age_days", "libor_usd_on", "lpr_1y"} <= set(spirits.columns)
    assert not [c for c in spirits.columns
                if c.startswith(("pledge_", "block_", "anns_", "holder_", "repurchase_",
                                 "float_unlock", "audit_"))]
    manifest = json.loads((folder / "features" / "features.json").read_text(encoding="utf-8"))
    sources = {f["name"]: f["source"] for f in manifest["features"] if f["model_input"]}
    assert {table for table, columns in FAMILY_COLUMNS.items()
            for c in columns if sources.get(c) == table} == set(FAMILY_COLUMNS)


def test_dividend_counts_from_plan_then_implementation(panels, raw_close):
    bank, spirits = panels[BANK], panels[SPIRITS]
    # announced on Saturday 20180324: nothing on Friday, the plan from Monday
    assert np.isnan(bank.loc["20180323", "div_cash_yield"])
    assert bank.loc["20180326", "div_cash_yield"] == pytest.approx(0.84 / raw_close["20180326"])
    assert bank.loc["20180326", "div_age_days"] == 2
    # the ex-date is known from the implementation's announcement (20180706), not before
    assert bank.loc[:"20180705", "div_days_to_ex"].isna().all()
    assert bank.loc["20180706", "div_days_to_ex"] == 6
    assert bank.loc["20180712", "div_days_to_ex"] == 0
    assert np.isnan(bank.loc["20180713", "div_days_to_ex"])
    # after the ex-date the unadjusted close is per post-bonus share
    assert bank.loc["20180712", "div_cash_yield"] == pytest.approx(
        0.84 / 1.2 / raw_close["20180712"])
    assert bank.loc["20180711", "div_cash_yield"] == pytest.approx(0.84 / raw_close["20180711"])
    assert bank.loc["20180712", "div_stock_ratio"] == pytest.approx(0.2)
    # no unadjusted bars: daily_basic's close (made as qfq close x 1.7)
    assert spirits.loc["20180328", "div_cash_yield"] == pytest.approx(
        10.999 / (spirits.loc["20180328", "close"] * 1.7))


def test_pledge_counts_from_the_next_trading_day(panels):
    bank = panels[BANK]
    assert bank.loc["20180601", "pledge_ratio"] != 10.0
    assert bank.loc["20180604", ["pledge_ratio", "pledge_count", "pledge_age_days"]].tolist() \
        == [10.0, 23.0, 0.0]
    assert bank.loc["20180608", "pledge_ratio"] == 10.0
    assert bank.loc["20180611", "pledge_ratio"] == 12.0
    assert bank.loc[T, "pledge_ratio"] == 12.0
    assert bank.loc["20180619", "pledge_ratio"] == 13.0  # after the holiday


def test_block_trades_count_from_the_next_trading_day(panels, raw_close):
    bank = panels[BANK]
    assert bank.loc["20180605", "block_vol_ratio"] == 0
    assert np.isnan(bank.loc["20180605", "block_premium"])
    traded_lots = bank.loc["20180605", "vol"]
    assert bank.loc["20180606", "block_vol_ratio"] == pytest.approx(4e6 / (traded_lots * 100))
    price = (28.0 * 100 + 27.0 * 300) / 400
    assert bank.loc["20180606", "block_premium"] == pytest.approx(
        price / raw_close["20180605"] - 1)
    assert bank.loc["20180607", "block_vol_ratio"] == 0


def test_announcements_after_the_close_count_the_next_day(panels):
    bank = panels[BANK]
    counts = bank.loc["20180601":"20180612", "anns_count"]
    assert counts.to_dict() == {"20180601": 0, "20180604": 1, "20180605": 1, "20180606": 0,
                                "20180607": 0, "20180608": 0, "20180611": 1, "20180612": 0}
    assert bank.loc["20180611", "anns_count_20d"] == 3


def test_holder_trades_repurchases_unlocks_and_audits(panels):
    bank = panels[BANK]
    assert bank.loc["20180605", "holder_net_change_20d"] == pytest.approx(0.5)
    assert bank.loc["20180606", "holder_net_change_20d"] == pytest.approx(0.3)
    assert bank.loc["20180604", "repurchase_anns_20d"] == 0
    assert bank.loc["20180605", "repurchase_anns_20d"] == 1
    # unlocks announced 20180601 for 20180720 count from 30 days before, until the day
    unlock = bank["float_unlock_next_30d"]
    assert unlock["20180619"] == 0 and unlock["20180620"] == 5
    assert unlock["20180710"] == 6 and unlock["20180719"] == 6
    assert unlock["20180720"] == 1 and unlock["20180725"] == 0
    # a qualified opinion announced Saturday 20170325, a clean one on 20180324
    assert np.isnan(bank.loc["20170324", "audit_modified"])
    assert bank.loc["20170327", "audit_modified"] == 1
    assert bank.loc["20180323", "audit_modified"] == 1
    assert bank.loc["20180326", "audit_modified"] == 0


def test_rates_join_as_of_their_publication(panels):
    bank = panels[BANK]
    # Libor and the lending indices are published after the close: the day before's
    assert np.isnan(bank.loc["20180601", "libor_usd_on"])
    assert bank.loc["20180604", "libor_usd_on"] == pytest.approx(2.0)
    assert bank.loc["20180605", "libor_usd_on"] == pytest.approx(2.1)
    assert bank.loc["20180605", "wz_comp_rate"] == pytest.approx(15.1)
    assert bank.loc["20180605", "gz_d10_rate"] == pytest.approx(12.1)
    # Hibor and the LPR are fixed before the close: the day's own
    assert bank.loc["20180605", "hibor_on"] == pytest.approx(1.2)
    assert bank.loc["20180604", "lpr_1y"] == 4.31
    assert bank.loc["20180713", "lpr_1y"] == 4.31  # a month on, still the fixing in force


def test_rows_known_after_t_change_nothing_up_to_t(panels, tmp_path):
    later = build(tmp_path, late=3.0)
    for code, panel in panels.items():
        other = later[code]
        up_to_t = panel.index <= T
        shared = [c for c in panel.columns if c in other.columns]
        assert set(EVERY_COLUMN) & set(panel.columns) <= set(shared)
        pd.testing.assert_frame_equal(panel.loc[up_to_t, shared], other.loc[up_to_t, shared])
        # the later rows did arrive
        if code == BANK:
            assert not panel.loc["20180619", EVERY_COLUMN].equals(
                other.loc["20180619", EVERY_COLUMN])


def test_rebasing_the_prices_moves_no_event_value(panels, tmp_path):
    rebased = build(tmp_path, rebase=REBASE)
    for code, panel in panels.items():
        columns = [c for c in EVERY_COLUMN if c in panel.columns]
        assert rebased[code]["close"].iloc[-1] != panel["close"].iloc[-1]
        pd.testing.assert_frame_equal(panel[columns], rebased[code][columns])
