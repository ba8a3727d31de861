"""The features stage on real data: the leak test (the project's proof) and the point-in-time rules."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.sample import read_sample
from stockpred.data.store import RawStore
from stockpred.features.spectral import (ar_differences_forecast, fourier_amplitudes,
                                         fourier_reconstruction)

STOCKS = "600036.SH,600519.SH,601318.SH"

# Statement rows made for the test (no real statement dumps exist in the shared data).
# 2011 annual: announced Saturday 2012-03-17, so visible from Monday 2012-03-19;
# 2012 Q1 on 2012-04-27; a revision of 2011 annual on 2012-06-01 must not replace Q1.
INCOME = pd.DataFrame([
    ("600036.SH", "20111028", "20111028", "20110930", "1", 71.3e9, 0.98),
    ("600036.SH", "20120317", "20120317", "20111231", "1", 96.2e9, 1.33),
    ("600036.SH", "20120427", "20120427", "20120331", "1", 27.4e9, 0.40),
    ("600036.SH", "20120601", "20120601", "20111231", "1", 96.9e9, 1.34),
], columns=["ts_code", "ann_date", "f_ann_date", "end_date", "report_type", "total_revenue",
            "basic_eps"])


def made_flows() -> dict[str, pd.DataFrame]:
    """moneyflow, moneyflow_hsgt and margin rows made from real bars (no real dumps exist).

    Order sizes split each real day's amount (moneyflow's unit: 10k CNY) in shares that
    lean with the day's move; northbound flow and margin balances follow the index.
    """
    bars = read_sample("daily").query("trade_date >= '20080101'")
    amount = bars["amount"].to_numpy() / 10
    lean = bars["pct_chg"].to_numpy() / 100
    shares = {"sm": (0.30 - lean, 0.30 + lean), "md": (0.25, 0.25),
              "lg": (0.25 + lean, 0.25 - lean), "elg": (0.20 + lean, 0.20 - lean)}
    flow = {"ts_code": bars["ts_code"].to_numpy(), "trade_date": bars["trade_date"].to_numpy()}
    for size, (buy, sell) in shares.items():
        flow[f"buy_{size}_amount"] = amount * buy
        flow[f"sell_{size}_amount"] = amount * sell
    flow = pd.DataFrame(flow)
    flow["net_mf_amount"] = sum(flow[f"buy_{s}_amount"] - flow[f"sell_{s}_amount"]
                                for s in shares)
    index = read_sample("index_daily").query("ts_code == '000001.SH'")
    hsgt = pd.DataFrame({"trade_date": index["trade_date"].to_numpy(),
                         "north_money": index["pct_chg"].to_numpy() * 1000.0})
    margin = pd.concat([pd.DataFrame({"trade_date": index["trade_date"].to_numpy(),
                                      "exchange_id": exchange,
                                      "rzye": index["close"].to_numpy() * scale})
                        for exchange, scale in (("SSE", 1e8), ("SZSE", 7e7))])
    return {"moneyflow": flow, "moneyflow_hsgt": hsgt, "margin": margin}


FLOWS = made_flows()


def build(folder, end=None):
    """fetch the sample (up to ``end``) plus the rows published by then; build features."""
    args = ["fetch", "--source", "sample", "--ts-code", STOCKS, "--data-dir", str(folder)]
    assert run_cli(*args, *(["--end", end] if end else []))[0] == 0
    store = RawStore(folder / "raw")
    announced = INCOME if end is None else INCOME[INCOME["f_ann_date"] <= end]
    store.upsert(CATALOGUE["income"], announced)
    for name, rows in FLOWS.items():
        store.upsert(CATALOGUE[name], rows if end is None else rows[rows["trade_date"] <= end])
    code, out, err = run_cli("features", "--data-dir", str(folder))
    assert code == 0, err
    return out


def panel(folder, code):
    return pd.read_parquet(folder / "features" / f"{code}.parquet")


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    build(folder)
    return folder


@pytest.mark.parametrize("cut", ["20100310", "20120316", "20120319", "20150708", "20180712"])
def test_features_on_data_cut_at_t_equal_those_on_the_full_history(cut, full, tmp_path,
                                                                    workdir):
    """For every stock, day <= t and feature: the value does not depend on data after t.

    20100310 falls inside a suspension of 600036.SH (20100305-20100312).
    """
    build(tmp_path / "cut", end=cut)
    for code in STOCKS.split(","):
        whole = panel(full, code)
        whole = whole[whole["trade_date"] <= cut].reset_index(drop=True)
        part = panel(tmp_path / "cut", code)
        assert list(part["trade_date"]) == list(whole["trade_date"])
        for col in part.columns:
            assert col in whole.columns, col
            np.testing.assert_array_equal(part[col].to_numpy(), whole[col].to_numpy(),
                                          err_msg=f"{code} {col} at cut {cut}")
        # a column the cut dropped carried no information up to t
        for col in set(whole.columns) - set(part.columns):
            values = whole[col]
            assert values.nunique(dropna=False) <= 1 or any(
                values.equals(whole[other]) for other in part.columns if other != col), col


def test_statements_count_from_their_announcement_date(full):
    cmb = panel(full, "600036.SH").set_index("trade_date")
    assert cmb.loc["20120316", "inc_total_revenue"] == 71.3e9  # Q3 still in force on Friday
    assert cmb.loc["20120319", "inc_total_revenue"] == 96.2e9  # Saturday's annual on Monday
    assert cmb.loc["20120319", "inc_age_days"] == 2
    assert cmb.loc["20120427", "inc_total_revenue"] == 27.4e9
    assert cmb.loc["20120601", "inc_total_revenue"] == 27.4e9  # an older period's revision
    assert cmb.loc["20111027", "inc_total_revenue"] != cmb.loc["20111027", "inc_total_revenue"]
    # carried for at most 400 days after 2012-04-27, then missing
    assert cmb.loc["20130531", "inc_total_revenue"] == 27.4e9  # 399 days
    assert cmb.loc["20130603":"20131231", "inc_total_revenue"].isna().all()
    manifest = json.loads((full / "features" / "features.json").read_text())
    stats = manifest["stocks"]["600036.SH"]
    assert stats["statement_days_filled"]["income"] > 300
    assert stats["statement_days_expired"]["income"] > 1000
    entry = next(f for f in manifest["features"] if f["name"] == "inc_total_revenue")
    assert entry == {"name": "inc_total_revenue", "group": "statement", "source": "income",
                     "params": {"max_age_days": 400}, "model_input": True}


def test_order_flow_northbound_and_margin_join_by_day(full):
    cmb = panel(full, "600036.SH").set_index("trade_date")
    day = cmb.loc["20180102"]
    lean = read_sample("daily").set_index("trade_date").loc["20180102", "pct_chg"] / 100
    # net buying by size: small -2 lean, medium 0, large and extra-large +2 lean each
    assert day["flow_net_share"] == pytest.approx(2 * lean)
    assert day["flow_large_net_share"] == pytest.approx(4 * lean)
    assert day["flow_small_net_share"] == pytest.approx(-2 * lean)
    index = read_sample("index_daily").query("ts_code == '000001.SH'").set_index("trade_date")
    assert day["hsgt_north_money"] == index.loc["20180102", "pct_chg"] * 1000
    # margin is published the next morning: on 2018-01-02, 2017-12-29's figure
    assert day["margin_sse_rzye"] == index.loc["20171229", "close"] * 1e8
    # the other stocks have no moneyflow, but the market series
    assert "flow_net_share" not in panel(full, "600519.SH").columns
    assert "margin_szse_rzye" in panel(full, "600519.SH").columns


def test_forward_adjusted_prices_come_without_unadjusted_ones(full):
    """qfq / unadjusted is the factor relative to the latest one: future dividends."""
    assert not [c for c in panel(full, "600036.SH").columns if c.startswith("raw_")]


def test_suspended_days_carry_the_last_traded_values(full):
    cmb = panel(full, "600036.SH").reset_index(drop=True)
    suspended = cmb.index[cmb["suspended"] == 1]
    assert len(suspended) > 0
    day = suspended[0]
    assert cmb.loc[day, "close"] == cmb.loc[day - 1, "close"]
    assert cmb.loc[day, "rsi6"] == cmb.loc[day - 1, "rsi6"]
    assert cmb.loc[day, "vol"] == 0
    assert cmb.loc[day, "days_since_trade"] == cmb.loc[day - 1, "days_since_trade"] + 1
    traded = set(read_sample("qfq_daily").query("ts_code == '600036.SH'")["trade_date"])
    assert cmb.loc[day, "trade_date"] not in traded


def test_limit_days_are_flagged(full):
    ping_an = panel(full, "601318.SH").set_index("trade_date")
    # 2015-08-24, the SSE 50 fell by its limit almost across the board
    assert ping_an.loc["20150824", "limit_down"] == 1
    assert ping_an["limit_up"].sum() > 5


def test_manifest_lists_every_feature_with_group_source_and_parameters(full):
    manifest = json.loads((full / "features" / "features.json").read_text())
    columns = set()
    for code in STOCKS.split(","):
        columns |= set(panel(full, code).columns) - {"trade_date"}
    assert {f["name"] for f in manifest["features"]} == columns
    rsi = next(f for f in manifest["features"] if f["name"] == "rsi6")
    assert rsi == {"name": "rsi6", "group": "momentum", "source": "close",
                   "params": {"window": 6}, "model_input": True}
    # a column in the price's unit is stored, but models read its twin over the close
    entries = {f["name"]: f for f in manifest["features"]}
    assert not entries["ma7"]["model_input"] and not entries["close"]["model_input"]
    assert entries["ma7_rel"]["params"] == {"window": 7, "relative_to": "close",
                                            "price": "level"}
    cmb = panel(full, "600036.SH")
    np.testing.assert_allclose(cmb["ma7_rel"], cmb["ma7"] / cmb["close"] - 1)
    np.testing.assert_allclose(cmb["atr14_rel"], cmb["atr14"] / cmb["close"])
    assert set(manifest["inputs"]) >= {"qfq_daily", "trade_cal", "index_daily"}


def test_short_histories_are_skipped_and_missing_inputs_name_fetch(tmp_path, workdir):
    assert run_cli("features", "--data-dir", str(tmp_path / "empty"))[0] == 5
    code, out, err = run_cli("features", "--data-dir", str(tmp_path / "empty"))
    assert "run `stockpred fetch` first" in err and err.count("\n") == 1
    assert run_cli("fetch", "--source", "sample", "--data-dir", str(tmp_path / "d"),
                   "--ts-code", "600036.SH,601138.SH")[0] == 0
    code, out, err = run_cli("features", "--data-dir", str(tmp_path / "d"))
    assert code == 0, err
    assert "skipped 601138.SH: 139 trading days, fewer than the longest window (256)" in out
    code, out, err = run_cli("features", "--data-dir", str(tmp_path / "d"), "--ts-code",
                             "601138.SH")
    assert code == 2 and "no stock had enough data" in err


def test_fourier_features_are_the_trailing_window_fft():
    close = read_sample("daily")["close"].reset_index(drop=True)
    recon = fourier_reconstruction(close, 250, 6)
    amps = fourier_amplitudes(close, 250, 4)
    assert recon[:249].isna().all()
    for t in (249, 1000, len(close) - 1):
        window = close.to_numpy()[t - 249:t + 1]
        spectrum = np.fft.fft(window)
        kept = spectrum.copy()
        kept[7:250 - 6] = 0
        assert recon[t] == pytest.approx(np.fft.ifft(kept)[-1].real, rel=1e-10)
        np.testing.assert_allclose(amps.iloc[t], np.abs(spectrum[1:5]) / 250, rtol=1e-9)


def test_arima_feature_is_autoreg_on_each_trailing_window():
    from statsmodels.tsa.ar_model import AutoReg

    close = read_sample("daily")["close"].reset_index(drop=True)
    forecast = ar_differences_forecast(close, 5, 250)
    assert forecast[:255].isna().all() and not np.isnan(forecast[255])
    for t in (255, 1200, len(close) - 1):
        diffs = np.diff(close.to_numpy()[:t + 1])[-255:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = AutoReg(diffs, lags=5, trend="n").fit()
        assert forecast[t] == pytest.approx(close[t] + fitted.forecast(1)[0], rel=1e-10)
