"""Point-in-time universes on real bars: the shipped SSE 50 sample and the shared market data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stockpred.data.sample import read_sample
from stockpred.data.universe import (AllStocks, FixedList, IndexMembers, TopLiquid, membership,
                                     universe_from_name)
from stockpred.plots import Provenance
from stockpred.plots.universe import universe_size

SHARED_DATA = Path(os.environ.get("STOCKPRED_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))


@dataclass(frozen=True)
class Market:
    """Real bars, and what the tests look up in them as calendar positions: each stock's
    bar days and listing day."""

    bars: pd.DataFrame
    stock_basic: pd.DataFrame
    top: TopLiquid  # a top_liquid universe that leaves stocks out on most days
    calendar: np.ndarray
    bar_days: dict[str, np.ndarray]
    listing: dict[str, int]


def _market(bars: pd.DataFrame, stock_basic: pd.DataFrame, top: TopLiquid) -> Market:
    day, calendar = pd.factorize(bars["trade_date"], sort=True)
    stock, codes = pd.factorize(bars["ts_code"], sort=True)
    calendar = np.asarray(calendar, dtype=str)
    order = np.lexsort((day, stock))
    days_by_stock = day[order]
    bounds = np.searchsorted(stock[order], np.arange(len(codes) + 1))
    bar_days = dict(zip(codes, np.split(days_by_stock, bounds[1:-1]), strict=True))
    if "list_date" in stock_basic:
        list_dates = stock_basic.set_index("ts_code")["list_date"]
        listing = {code: int(np.searchsorted(calendar, list_dates[code])) for code in codes}
    else:
        listing = {code: int(days[0]) for code, days in bar_days.items()}
    return Market(bars, stock_basic, top, calendar, bar_days, listing)


def _sample() -> Market:
    return _market(read_sample("qfq_daily")[["trade_date", "ts_code", "amount"]],
                   read_sample("stock_basic"), TopLiquid(n=10))


def _shared_market() -> Market:
    folder = SHARED_DATA / "market"
    bars = pd.concat([pd.read_parquet(f, columns=["trade_date", "ts_code", "amount"])
                      for f in sorted((folder / "qfq_daily").glob("*.parquet"))],
                     ignore_index=True)
    return _market(bars, pd.read_csv(folder / "stock_basic.csv", dtype=str),
                   universe_from_name("top800"))


@pytest.fixture(scope="module", params=["sample", "market"])
def market(request) -> Market:
    if request.param == "sample":
        return _sample()
    if not (SHARED_DATA / "market" / "stock_basic.csv").is_file():
        pytest.skip("../shared/data/market (qfq_daily/<year>.parquet, stock_basic.csv) is not "
                    "beside this checkout")
    return _shared_market()


@pytest.fixture(scope="module")
def everything(market):
    return membership(AllStocks(), market.bars, market.stock_basic)


@pytest.fixture(scope="module")
def most_traded(market):
    return membership(market.top, market.bars, market.stock_basic)


@pytest.fixture(scope="module")
def sample() -> Market:
    return _sample()


@pytest.fixture(scope="module")
def sample_all(sample):
    return membership(AllStocks(), sample.bars, sample.stock_basic)


def _days_of(frame: pd.DataFrame, code: str, reason: str | None = None) -> list[str]:
    rows = frame[frame["ts_code"] == code]
    if reason is not None:
        rows = rows[rows["reason"] == reason]
    return rows["trade_date"].tolist()


# -- names ----------------------------------------------------------------------------------------

def test_builtin_names():
    assert universe_from_name("all") == AllStocks(min_listed_days=60)
    assert universe_from_name("top800") == TopLiquid(n=800, window=20, min_listed_days=60)
    assert universe_from_name("top1").n == 1


@pytest.mark.parametrize("name", ["", "top", "top0", "top-5", "top08", "TOP800", "top 800",
                                  "top800x", "best", "index"])
def test_bad_names_raise_one_line_naming_the_forms(name):
    with pytest.raises(ValueError) as raised:
        universe_from_name(name)
    message = str(raised.value)
    assert "\n" not in message
    assert "'all'" in message and "'topN'" in message and repr(name) in message


# -- the tradeable rules on real stocks -----------------------------------------------------------

def test_new_listing_waits_min_listed_days(market, everything):
    need = AllStocks().min_listed_days
    # a stock that lists inside the data and trades every day of its first need + 1 days
    code = next(code for code, days in market.bar_days.items()
                if days[0] > 0 and market.listing[code] == days[0]
                and len(days) > need and days[need] == days[0] + need)
    first = market.bar_days[code][0]
    assert _days_of(everything.exclusions, code, "listed_days") == \
        market.calendar[first:first + need].tolist()
    member_days = _days_of(everything.members, code)
    assert member_days[0] == market.calendar[first + need]
    assert not set(market.calendar[:first + need]) & set(member_days)


def test_suspension_gap_is_excluded(market, everything):
    need = AllStocks().min_listed_days
    # the first real gap in trading of a stock listed for long enough before it
    code, before, after = next(
        (code, days[i], days[i + 1]) for code, days in market.bar_days.items()
        for i in np.nonzero(np.diff(days) > 1)[0] if days[i] >= market.listing[code] + need)
    gap = market.calendar[before + 1:after].tolist()
    suspended = set(_days_of(everything.exclusions, code, "suspended"))
    members = set(_days_of(everything.members, code))
    assert set(gap) <= suspended and not set(gap) & members
    assert {market.calendar[before], market.calendar[after]} <= members


def test_members_and_exclusions_account_for_every_listed_stock(market, everything):
    listing = np.array(list(market.listing.values()))
    listed_per_day = np.bincount(listing, minlength=len(market.calendar) + 1).cumsum()
    counted = (everything.members.groupby("trade_date").size()
               .add(everything.exclusions.groupby("trade_date").size(), fill_value=0)
               .reindex(market.calendar, fill_value=0))
    assert counted.to_numpy().tolist() == listed_per_day[:len(market.calendar)].tolist()
    codes = pd.Index(sorted(market.bar_days))

    def day_stock_keys(frame):
        day = pd.Index(market.calendar).get_indexer(frame["trade_date"])
        return day.astype(np.int64) * len(codes) + codes.get_indexer(frame["ts_code"])

    # a member always has that day's bar
    assert np.isin(day_stock_keys(everything.members), day_stock_keys(market.bars)).all()


# -- top_liquid -----------------------------------------------------------------------------------

def test_top_liquid_is_point_in_time(market, most_traded):
    cut_day = market.calendar[len(market.calendar) // 2]
    known = market.bars["trade_date"] <= cut_day
    later = market.bars.loc[~known]
    scrambled = later.assign(amount=np.random.default_rng(7).permutation(later["amount"]))
    altered = pd.concat([market.bars[known], scrambled.iloc[::3]], ignore_index=True)

    def up_to_cut(frame):
        return frame[frame["trade_date"] <= cut_day].reset_index(drop=True)

    results = {name: membership(market.top, bars, market.stock_basic)
               for name, bars in [("cut", market.bars[known]), ("altered", altered)]}
    for result in results.values():
        pd.testing.assert_frame_equal(up_to_cut(result.members), up_to_cut(most_traded.members))
        pd.testing.assert_frame_equal(up_to_cut(result.exclusions),
                                      up_to_cut(most_traded.exclusions))

    def after_cut(frame):
        return frame[frame["trade_date"] > cut_day].reset_index(drop=True)

    assert not after_cut(results["altered"].members).equals(after_cut(most_traded.members))


def test_top_liquid_ranks_trailing_mean_amount(market, everything, most_traded):
    top = market.top
    for day in market.calendar[[top.window, len(market.calendar) // 3, -1]]:
        window = market.calendar[market.calendar <= day][-top.window:]
        recent = market.bars[market.bars["trade_date"].isin(window)]
        stats = recent.groupby("ts_code")["amount"].agg(["mean", "count"])
        tradeable = set(_codes_on(everything.members, day))
        stats = stats[(stats["count"] >= top.periods_needed) & stats.index.isin(tradeable)]
        assert set(stats["mean"].nlargest(top.n).index) == set(_codes_on(most_traded.members, day))
    assert most_traded.members.groupby("trade_date").size().max() == top.n


def _codes_on(frame: pd.DataFrame, day: str) -> list[str]:
    return frame.loc[frame["trade_date"] == day, "ts_code"].tolist()


# -- index, list, ST and delisting on the shipped sample ------------------------------------------

def _always_members(sample_all, year: str, count: int) -> list[str]:
    """Stocks that are members on every day of ``year``: their rule changes show cleanly."""
    days = sample_all.members[sample_all.members["trade_date"].str.startswith(year)]
    per_stock = days.groupby("ts_code").size()
    return sorted(per_stock[per_stock == days["trade_date"].nunique()].index)[:count]


def test_index_members_as_of_latest_weights(sample, sample_all):
    a, b, c, d = _always_members(sample_all, "2018", 4)
    absent = "000001.SZ"  # a real stock with no bars in the sample
    # tushare's index_weight layout; 20180630 is a Saturday, so those weights apply from Monday
    weights = pd.DataFrame(
        [("000016.SH", code, day, 100 / 3) for day, codes in
         [("20180102", (a, b, c)), ("20180630", (b, c, d, absent))] for code in codes]
        + [("000300.SH", code, "20170103", 1.0) for code in (a, b, c, d)],
        columns=["index_code", "con_code", "trade_date", "weight"])
    result = membership(IndexMembers(index_code="000016.SH"), sample.bars, sample.stock_basic,
                        index_weight=weights)
    members = result.members.groupby("trade_date")["ts_code"].agg(frozenset)
    assert members.index[0] == "20180102"
    assert set(members["20180102":"20180629"]) == {frozenset((a, b, c))}
    assert set(members["20180702":]) == {frozenset((b, c, d))}
    assert any("before 20180102" in note for note in result.notes)
    assert any(absent in note for note in result.notes)
    assert result.exclusions.empty  # the members trade every day of 2018


def test_fixed_list_is_all_members_among_its_codes(sample, sample_all):
    codes = ("601138.SH", "600519.SH", "601318.SH")
    result = membership(FixedList(ts_codes=codes), sample.bars, sample.stock_basic)
    expected = sample_all.members[sample_all.members["ts_code"].isin(codes)]
    pd.testing.assert_frame_equal(result.members, expected.reset_index(drop=True))
    excluded = sample_all.exclusions[sample_all.exclusions["ts_code"].isin(codes)]
    pd.testing.assert_frame_equal(result.exclusions, excluded.reset_index(drop=True))
    assert "601138.SH" in set(result.exclusions["ts_code"])  # listed in 2018


def test_st_days_from_namechange(sample, sample_all):
    code, other = _always_members(sample_all, "2018", 2)
    assert any("st rule not applied" in note for note in sample_all.notes)
    assert "st" not in set(sample_all.exclusions["reason"])
    # a made-up name history (no real namechange data is stored) in tushare's layout; rows
    # overlap as tushare's do: the row with the latest start_date names the day
    names = pd.DataFrame([(code, "银行", "20000101", "20180301"),
                          (code, "ST银行", "20180301", "20180430"),
                          (code, "银行", "20180427", None),
                          (other, "*ST其他", "20181203", None)],
                         columns=["ts_code", "name", "start_date", "end_date"])
    result = membership(AllStocks(), sample.bars, sample.stock_basic, namechange=names)
    calendar = sample.calendar
    assert _days_of(result.exclusions, code, "st") == \
        calendar[(calendar >= "20180301") & (calendar <= "20180426")].tolist()
    assert _days_of(result.exclusions, other, "st") == calendar[calendar >= "20181203"].tolist()
    assert not any("st rule" in note for note in result.notes)


def test_delisted_after_delist_date(sample, sample_all):
    code = _always_members(sample_all, "2018", 1)[0]
    basic = sample.stock_basic.assign(
        delist_date=np.where(sample.stock_basic["ts_code"] == code, "20180601", None))
    result = membership(AllStocks(), sample.bars, basic)
    calendar = sample.calendar
    assert _days_of(result.exclusions, code, "delisted") == calendar[calendar > "20180601"].tolist()
    assert _days_of(result.members, code)[-1] == "20180601"


def test_universe_size_figure(sample, tmp_path):
    result = membership(sample.top, sample.bars, sample.stock_basic)
    drawn = Provenance(drawn_by="stockpred universe", source="universe/top10.parquet",
                       run_id=None, finished_at=None, config_sha256="0" * 64, quick=False)
    path = universe_size(result.members, result.exclusions, tmp_path / "fig" / "top10.png",
                         drawn, "top10 of the SSE 50 sample")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
