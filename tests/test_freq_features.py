"""Frequency features of volume, turnover and order sizes, and moneyflow's columns as shares
(issue 26, item 5): causal, and untouched by volume's unit and the prices' re-basing.

No real moneyflow rows are in the shared data: the panel tests write rows in tushare's
layout (all 18 value columns) made from 600036.SH's real bars, beside the sample's real
bars and daily_basic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.sample import read_sample
from stockpred.data.store import RawStore
from stockpred.features.spectral import trailing_spectrum

BANK = "600036.SH"
START, T = "20160101", "20180615"
PRICES = ["open", "high", "low", "close", "pre_close", "change"]
SIZES = ("sm", "md", "lg", "elg")
NEW = ("vol_fft", "turn_fft", "mf_")
WINDOW, COMPONENTS, HARMONICS = 32, [2, 5], 4


def series(seed: int = 0, n: int = 120) -> pd.Series:
    values = np.random.default_rng(seed).normal(size=n).cumsum()
    values[[40, 41, 90]] = np.nan  # e.g. days a table has no value
    return pd.Series(values, index=pd.RangeIndex(n) * 3)


def test_trailing_spectrum_is_the_fft_of_the_last_known_values():
    values = series()
    made = trailing_spectrum(values, WINDOW, COMPONENTS, HARMONICS, "x")
    known = values.dropna()
    for day in (known.index[WINDOW - 1], known.index[70], known.index[-1]):
        window = known.loc[:day].to_numpy()[-WINDOW:]
        spectrum = np.fft.fft(window)
        for k in COMPONENTS:
            kept = spectrum.copy()
            kept[k + 1:WINDOW - k] = 0
            assert made.loc[day, f"x_fft{k}"] == pytest.approx(
                np.fft.ifft(kept)[-1].real - window[-1], abs=1e-9)
        for k in range(1, HARMONICS + 1):
            assert made.loc[day, f"x_fft_amp{k}"] == pytest.approx(
                abs(spectrum[k]) / WINDOW, abs=1e-9)
    assert made.loc[values.isna()].isna().all().all()
    assert made.loc[:known.index[WINDOW - 2]].isna().all().all()


def test_scrambling_the_future_leaves_earlier_values_unchanged():
    values = series()
    cut = values.index[80]
    scrambled = values.copy()
    later = scrambled.index > cut
    scrambled[later] = np.random.default_rng(1).permutation(scrambled[later].to_numpy()) * 7
    before = trailing_spectrum(values, WINDOW, COMPONENTS, HARMONICS, "x")
    after = trailing_spectrum(scrambled, WINDOW, COMPONENTS, HARMONICS, "x")
    pd.testing.assert_frame_equal(before.loc[:cut], after.loc[:cut])
    assert not before.loc[cut:].iloc[1:].equals(after.loc[cut:].iloc[1:])


def test_a_unit_of_volume_is_a_constant_of_log_volume():
    volume = np.exp(series()) * 1e4
    lots = trailing_spectrum(np.log(volume), WINDOW, COMPONENTS, HARMONICS, "x")
    shares = trailing_spectrum(np.log(volume * 100), WINDOW, COMPONENTS, HARMONICS, "x")
    pd.testing.assert_frame_equal(lots, shares, rtol=0, atol=1e-9)


def moneyflow(bars: pd.DataFrame) -> pd.DataFrame:
    """Rows in tushare's moneyflow layout (lots, 10k CNY) splitting each day's volume and
    amount by order size, leaning with the day's move."""
    lean = bars["pct_chg"].to_numpy() / 100
    split = {"sm": (0.30 - lean, 0.30 + lean), "md": (0.25 + lean / 2, 0.25 - lean / 2),
             "lg": (0.25 + lean, 0.25 - lean), "elg": (0.20 + lean, 0.20 - lean)}
    rows = {"ts_code": BANK, "trade_date": bars["trade_date"].to_numpy()}
    for kind, total in (("vol", bars["vol"].to_numpy()),
                        ("amount", bars["amount"].to_numpy() / 10)):
        for size, (buy, sell) in split.items():
            rows[f"buy_{size}_{kind}"] = total * buy
            rows[f"sell_{size}_{kind}"] = total * sell
        rows[f"net_mf_{kind}"] = sum(rows[f"buy_{s}_{kind}"] - rows[f"sell_{s}_{kind}"]
                                     for s in SIZES)
    return pd.DataFrame(rows)


def scramble_after_t(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    later = frame["trade_date"] > T
    noise = np.random.default_rng(2).uniform(0.2, 5.0, size=(later.sum(), len(columns)))
    frame.loc[later, columns] = frame.loc[later, columns].to_numpy()[::-1] * noise
    return frame


def build(folder, scramble: bool = False, rebase: float = 1.0) -> pd.DataFrame:
    assert run_cli("fetch", "--source", "sample", "--ts-code", BANK, "--data-dir", str(folder),
                   "--start", START)[0] == 0
    store = RawStore(folder / "raw")
    bars = store.read("qfq_daily", subjects=[BANK])
    flow = moneyflow(store.read("daily", subjects=[BANK]))
    if scramble:
        bars = scramble_after_t(bars, ["vol"])
        flow = scramble_after_t(flow, [c for c in flow.columns if c.endswith(("vol", "amount"))])
        basic = store.read("daily_basic", subjects=[BANK])
        store.upsert(CATALOGUE["daily_basic"], scramble_after_t(basic, ["turnover_rate"]))
    bars[PRICES] = (bars[PRICES] * rebase).round(4)
    store.upsert(CATALOGUE["qfq_daily"], bars)
    store.upsert(CATALOGUE["moneyflow"], flow)
    code, _, err = run_cli("features", "--data-dir", str(folder))
    assert code == 0, err
    return pd.read_parquet(folder / "features" / f"{BANK}.parquet").set_index("trade_date")


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    return build(tmp_path_factory.mktemp("freq"))


def new_columns(panel: pd.DataFrame) -> list[str]:
    return [c for c in panel.columns if c.startswith(NEW)]


def test_every_moneyflow_column_is_a_share_of_the_days_flow(panel):
    day = panel.loc["20180102"]
    lean = read_sample("daily").set_index(["ts_code", "trade_date"]).loc[
        (BANK, "20180102"), "pct_chg"] / 100  # the unadjusted bars' that made the rows
    for kind in ("vol", "amount"):
        shares = [f"mf_{side}_{size}_{kind}_share" for side in ("buy", "sell") for size in SIZES]
        assert day[shares].sum() == pytest.approx(1.0)
        assert day[f"mf_buy_lg_{kind}_share"] == pytest.approx((0.25 + lean) / 2)
        assert day[f"mf_net_mf_{kind}_share"] == pytest.approx(1.5 * lean)  # 3 lean over 2
    assert day["mf_large_share"] == pytest.approx(0.45)
    assert day["mf_large_net_share"] == pytest.approx(2 * lean)
    columns = new_columns(panel)
    for prefix in ("vol", "turn", "mf_large_share", "mf_large_net_share"):
        assert {f"{prefix}_fft6", f"{prefix}_fft_amp8"} <= set(columns), prefix
    assert panel.loc["20170301":, columns].notna().all().all()


def test_data_after_t_changes_nothing_up_to_t(panel, tmp_path):
    """Volume, turnover and every moneyflow value after T scrambled: no column moves up
    to T, the new ones move after it."""
    other = build(tmp_path, scramble=True)
    up_to_t = panel.index <= T
    assert set(new_columns(panel)) <= set(other.columns)
    shared = [c for c in panel.columns if c in other.columns]
    pd.testing.assert_frame_equal(panel.loc[up_to_t, shared], other.loc[up_to_t, shared])
    for column in new_columns(panel):
        assert not panel.loc[~up_to_t, column].equals(other.loc[~up_to_t, column]), column


def test_rebasing_the_prices_moves_no_new_value(panel, tmp_path):
    rebased = build(tmp_path, rebase=1 / 0.8828)
    assert rebased["close"].iloc[-1] != panel["close"].iloc[-1]
    columns = new_columns(panel)
    pd.testing.assert_frame_equal(panel[columns], rebased[columns])
