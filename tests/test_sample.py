"""The shipped sample: a row-for-row copy of the shared real data, loaded as tushare would."""

from __future__ import annotations

import pandas as pd

from conftest import run_cli, tree_digest
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.sample import SAMPLE_TABLES, read_sample, sample_dir
from stockpred.data.store import RawStore


def test_sample_is_the_shared_data_row_for_row(shared_tables):
    for name in SAMPLE_TABLES:
        shipped = read_sample(name)
        pd.testing.assert_frame_equal(shipped, shared_tables[name], check_exact=True)
    size = sum(p.stat().st_size for p in sample_dir().glob("*.parquet"))
    assert size <= 25 * 2**20


def test_fetch_without_token_loads_the_sample_idempotently(workdir):
    code, out, err = run_cli("fetch")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Loaded the shipped sample (no tushare token found)")
    store = RawStore(workdir / "data" / "raw")
    daily = store.read("daily", subjects=["600036.SH"])
    # exactly the real rows, tushare's columns and units (vol in lots, amount in 1000 CNY)
    real = read_sample("daily")
    real = real[real["trade_date"] >= "20080101"].reset_index(drop=True)
    pd.testing.assert_frame_equal(daily, real)
    assert list(daily.columns) == ["ts_code", "trade_date", "open", "high", "low", "close",
                                   "pre_close", "change", "pct_chg", "vol", "amount"]
    assert store.read("qfq_daily")["ts_code"].nunique() == 50
    before = tree_digest(workdir / "data" / "raw")
    code, out, _ = run_cli("fetch", "--source", "sample")
    assert code == 0
    assert "Loaded the shipped sample (as asked)" in out
    assert "0 rows added" in out
    assert tree_digest(workdir / "data" / "raw") == before


def test_sample_honours_stocks_days_and_interfaces(workdir):
    code, out, err = run_cli("fetch", "--ts-code", "600519.SH", "--start", "20180101",
                             "--end", "20180630", "--only", "qfq_daily,trade_cal,moneyflow")
    assert code == 0, err
    store = RawStore(workdir / "data" / "raw")
    bars = store.read("qfq_daily")
    assert set(bars["ts_code"]) == {"600519.SH"}
    assert bars["trade_date"].min() >= "20180102" and bars["trade_date"].max() <= "20180629"
    assert not store.has("daily")
    assert "moneyflow" in out and "not in the shipped sample" in out


def test_trade_calendar_is_the_index_trading_days(workdir):
    assert run_cli("fetch", "--only", "trade_cal,index_daily")[0] == 0
    store = RawStore(workdir / "data" / "raw")
    cal = store.read("trade_cal")
    index = store.read("index_daily", subjects=["000001.SH"])
    assert list(cal.loc[cal["is_open"] == 1, "cal_date"]) == list(index["trade_date"])
    # 2018-10-01..07 is the National Day holiday; 2018-10-08 opens after it
    week = cal.set_index("cal_date").loc["20181001":"20181008"]
    assert list(week["is_open"]) == [0, 0, 0, 0, 0, 0, 0, 1]
    assert week.loc["20181008", "pretrade_date"] == "20180928"


def test_catalogue_covers_the_original_design():
    design = """stock_basic trade_cal daily daily_basic moneyflow adj_factor income balancesheet
    cashflow forecast express dividend fina_indicator fina_audit fina_mainbz moneyflow_hsgt
    margin pledge_stat repurchase share_float block_trade stk_holdertrade index_basic
    index_daily index_weight fut_daily fut_holding fut_wsr shibor shibor_quote shibor_lpr
    libor hibor wz_index gz_index news anns cctv_news stk_mins""".split()
    assert set(design) <= set(CATALOGUE)
    numeric_keys = {k for i in CATALOGUE.values() for k in i.keys if k not in i.text_columns}
    assert numeric_keys == {"price", "vol", "change_vol"}  # block and holder trades
