"""The TopK-Dropout backtest on the forward-adjusted SSE 50 bars shipped with the package:
real limit-up, limit-down and suspension days are found in the bars by query; the scores
are made here (they are not prices)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockpred.data.sample import read_sample
from stockpred.evaluation import backtest
from stockpred.evaluation.backtest import Account, BacktestSettings, run_backtest

ONE_STOCK = BacktestSettings(topk=1, n_drop=1)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return read_sample("qfq_daily").sort_values(["ts_code", "trade_date"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def calendar(bars) -> np.ndarray:
    return np.unique(bars["trade_date"])


@pytest.fixture(scope="module")
def days(bars, calendar) -> pd.DataFrame:
    """Each bar with its calendar position (day), close-to-close move and whether it
    traded at more than one price (ranged), and the same of the stock's previous and next
    bars (previous_day, next_move, ...: to find bars on consecutive trading days, or gaps)."""
    own = pd.DataFrame({"day": np.searchsorted(calendar, bars["trade_date"]),
                        "move": bars["close"] / bars["pre_close"] - 1,
                        "ranged": bars["high"] > bars["low"]}, index=bars.index)
    by_stock = own.groupby(bars["ts_code"])
    return pd.concat([bars, own, by_stock.shift(1).add_prefix("previous_"),
                      by_stock.shift(-1).add_prefix("next_")], axis=1)


def _window(bars, calendar, first: int, last: int) -> pd.DataFrame:
    return bars[bars["trade_date"].between(calendar[first], calendar[last])]


def _scores(code: str, trade_dates) -> pd.DataFrame:
    return pd.DataFrame({"trade_date": list(trade_dates), "ts_code": code, "score": 1.0})


def test_no_buy_at_the_limit_up(bars, calendar, days):
    # closed locked at +10% after opening below it: the close fill is refused, the open
    # fill goes through, so it is the limit, not the order, that stops the buy
    event = days[(days["move"] > 0.099) & (days["close"] == days["high"]) & days["ranged"]
                 & (days["open"] < days["high"]) & (days["previous_day"] == days["day"] - 1)]
    event = event.iloc[10]
    code, day = event["ts_code"], int(event["day"])
    window = _window(bars, calendar, day - 3, day + 3)
    scores = _scores(code, [calendar[day - 1]])

    at_close = run_backtest(scores, window, ONE_STOCK)
    order = at_close.trades.iloc[0]
    assert (order["trade_date"], order["ts_code"], order["side"]) == (calendar[day], code, "buy")
    assert not order["filled"] and order["reason"] == "limit_up"
    assert at_close.daily["positions"].iloc[0] == 0
    assert at_close.daily["value"].iloc[0] == ONE_STOCK.initial_cash

    at_open = run_backtest(scores, window, BacktestSettings(topk=1, n_drop=1,
                                                            execution="open"))
    order = at_open.trades.iloc[0]
    assert order["filled"] and order["price"] == event["open"]
    assert at_open.daily["positions"].iloc[0] == 1


def test_no_sell_at_the_limit_down_then_retried(bars, calendar, days):
    # bought the day before a real limit-down close (a normal day); the sell ordered for the
    # limit-down day is refused and, the stock still ranking last, filled the next day
    bought = days[(days["previous_day"] == days["day"] - 1)
                  & (days["move"].abs() < 0.05) & days["ranged"]]
    event = bought[(bought["next_day"] == bought["day"] + 1) & (bought["next_move"] < -0.099)
                   & bought["next_ranged"].astype(bool)]
    event = days.loc[event.index + 1]  # the limit-down bar itself
    event = event[(event["close"] == event["low"]) & (event["next_day"] == event["day"] + 1)
                  & (event["next_move"] > -0.09) & event["next_ranged"].astype(bool)].iloc[0]
    code, day = event["ts_code"], int(event["day"])
    result = run_backtest(_scores(code, calendar[day - 2:day + 1]),
                          _window(bars, calendar, day - 3, day + 2), ONE_STOCK)
    trades = result.trades.set_index(["trade_date", "side"])
    refused = trades.loc[(calendar[day], "sell")]
    assert not refused["filled"] and refused["reason"] == "limit_down"
    assert result.daily.loc[calendar[day], "positions"] == 1
    assert trades.loc[(calendar[day + 1], "sell"), "filled"]
    assert result.daily.loc[calendar[day + 1], "positions"] == 0
    # all in cash again: what came in from the sale less what the buy and all fees took
    filled = result.trades[result.trades["filled"]]
    flow = np.where(filled["side"] == "sell", 1, -1) * filled["shares"] * filled["price"]
    assert result.daily["value"].iloc[-1] == pytest.approx(
        ONE_STOCK.initial_cash + flow.sum() - filled["cost"].sum(), rel=1e-12)
    assert filled["cost"].gt(0).all()


def test_suspended_stock_keeps_its_last_close_value(bars, calendar, days):
    # bought on its last bar before a real suspension; the strategy wants it sold every
    # day, but it cannot trade until it resumes, and is worth its last close meanwhile
    gap = days[(days["next_day"] - days["day"]).between(3, 10)
               & (days["previous_day"] == days["day"] - 1) & (days["move"].abs() < 0.05)
               & days["ranged"] & (days["next_move"].abs() < 0.05)
               & days["next_ranged"].astype(bool)].iloc[0]
    code, last, back = gap["ts_code"], int(gap["day"]), int(gap["next_day"])
    result = run_backtest(_scores(code, calendar[last - 1:back]),
                          _window(bars, calendar, last - 2, back + 1), ONE_STOCK)
    daily = result.daily
    held_value = daily.loc[calendar[last], "value"]
    suspended = calendar[last + 1:back]
    assert len(suspended) >= 2
    assert (daily.loc[suspended, "positions"] == 1).all()
    np.testing.assert_array_equal(daily.loc[suspended, "value"], held_value)
    assert (daily.loc[suspended, "return"] == 0).all()
    sells = result.trades[result.trades["side"] == "sell"].set_index("trade_date")
    assert (sells.loc[suspended, "reason"] == "suspended").all()
    assert sells.loc[calendar[back], "filled"]
    cash = held_value - gap["close"] * result.trades.iloc[0]["shares"]
    assert 0 < cash < held_value  # the stock is in the value, at its last close


def test_shares_bought_today_are_not_sold_today(bars):
    price = np.array([bars.loc[bars["ts_code"] == "600519.SH", "close"].iloc[-1]])
    account = Account(1, BacktestSettings(initial_cash=1e6))
    stock = np.array([0])
    bought, _ = account.buy(10, "20181228", stock, price, 5e5)
    assert bought[0] > 0
    cash = account.cash
    sold, cost = account.sell(10, "20181228", stock, price)
    assert sold[0] == 0 and cost[0] == 0 and account.cash == cash
    assert account.shares[0] == bought[0]
    sold, _ = account.sell(11, "20190102", stock, price)
    assert sold[0] == bought[0] and account.shares[0] == 0 and account.cash > cash


def test_stamp_duty_only_on_sells_and_halved_from_20230828():
    settings = BacktestSettings()
    value = np.array([1e6])

    def stamp(day):
        return (backtest.transaction_costs(value, True, day, settings)
                - backtest.transaction_costs(value, False, day, settings))[0]

    assert stamp("20230825") == pytest.approx(1000.0)
    assert stamp("20230828") == pytest.approx(500.0)
    buy = backtest.transaction_costs(value, False, "20230825", settings)[0]
    assert buy == pytest.approx(1e6 * (0.0003 + 0.00001))
    assert backtest.transaction_costs(value, False, "20230828", settings)[0] == buy


def test_minimum_commission_on_a_small_order(bars):
    price = bars.loc[(bars["ts_code"] == "600000.SH") & (bars["trade_date"] == "20181228"),
                     "close"].to_numpy()
    one_lot = 100 * price[0]
    fees = 5.0 + 0.00001 * one_lot  # 0.03% of about 1,000 CNY is far below 5 CNY
    assert 0.0003 * one_lot < 5
    np.testing.assert_allclose(
        backtest.transaction_costs([one_lot], False, "20181228", BacktestSettings()), [fees])
    account = Account(1, BacktestSettings(initial_cash=1e4))
    short, _ = account.buy(0, "20181228", np.array([0]), price, one_lot + fees - 0.01)
    assert short[0] == 0  # a lot plus its fees does not fit
    bought, cost = account.buy(0, "20181228", np.array([0]), price, one_lot + fees + 0.01)
    assert bought[0] == 100 and cost[0] == pytest.approx(fees)
    assert account.cash == pytest.approx(1e4 - one_lot - fees)


@pytest.fixture(scope="module")
def reversal(bars):
    """Ten stocks of the SSE 50 ranked by 5-day reversal, 2017-2018, with costs and without,
    against the CSI 300 and the equal-weight universe."""
    recent = bars[bars["trade_date"] >= "20161201"]
    close = recent.groupby("ts_code")["close"]
    scores = recent.assign(score=1 - recent["close"] / close.shift(5))
    scores = scores.loc[scores["trade_date"] >= "20170101", ["trade_date", "ts_code", "score"]]
    benchmarks = {"csi300": backtest.index_returns(read_sample("index_daily"), "000300.SH"),
                  "equal": backtest.equal_weight_returns(recent)}
    costly = run_backtest(scores, recent, BacktestSettings(topk=10, n_drop=2), benchmarks)
    free = run_backtest(scores, recent, BacktestSettings(
        topk=10, n_drop=2, commission=0, min_commission=0, stamp_duty=0, reduced_stamp_duty=0,
        transfer_fee=0), benchmarks)
    return costly, free


def test_costs_make_returns_lower(reversal):
    costly, free = reversal
    daily = costly.daily
    traded = daily["cost_paid"] > 0
    assert traded.mean() > 0.5  # no trade when the candidates rank below every holding
    assert (daily.loc[traded, "return"] < daily.loc[traded, "return_without_cost"]).all()
    assert daily["value"].iloc[-1] < free.daily["value"].iloc[-1]
    assert (costly.summary["annualised_return"]
            < costly.summary["annualised_return_without_cost"])
    assert costly.summary["total_cost"] == pytest.approx(daily["cost_paid"].sum())
    assert free.summary["total_cost"] == 0


def test_run_keeps_topk_and_never_sells_what_it_bought_that_day(reversal):
    costly, _ = reversal
    # qlib sizes the buys by the intended sells, so a blocked sell (here mostly a stock
    # suspended for months) holds an extra name until a later day sells it
    positions = costly.daily["positions"]
    assert positions.median() == 10 and positions.max() <= 10 + 2
    filled = costly.trades[costly.trades["filled"]]
    sides = filled.groupby(["trade_date", "ts_code"])["side"].nunique()
    assert (sides == 1).all()
    assert set(costly.trades["reason"]) >= {"", "suspended"}


def test_summary_formulas(reversal):
    costly, _ = reversal
    daily, summary = costly.daily, costly.summary
    assert summary["annualised_return"] == pytest.approx(252 * daily["return"].mean())
    excess = daily["return"] - daily["benchmark_csi300"]
    assert summary["excess_return_with_cost_csi300"] == pytest.approx(252 * excess.mean())
    assert summary["information_ratio_with_cost_csi300"] == pytest.approx(
        np.sqrt(252) * excess.mean() / excess.std(ddof=1))
    excess = daily["return_without_cost"] - daily["benchmark_equal"]
    assert summary["excess_return_without_cost_equal"] == pytest.approx(252 * excess.mean())
    value = np.r_[1e8, daily["value"]]
    assert summary["max_drawdown"] == pytest.approx(
        min(v / value[:i + 1].max() - 1 for i, v in enumerate(value)))
    assert summary["mean_daily_turnover"] == pytest.approx(daily["turnover"].mean())
    assert 0.1 < summary["mean_daily_turnover"] < 0.3  # 2 of 10 names a day, both sides


def test_benchmark_returns(bars):
    day = bars[bars["trade_date"] == "20180702"]
    assert backtest.equal_weight_returns(bars)["20180702"] == pytest.approx(
        (day["close"] / day["pre_close"] - 1).mean())
    index = read_sample("index_daily")
    csi = index[index["ts_code"] == "000300.SH"].set_index("trade_date")["close"]
    assert backtest.index_returns(index)["20180702"] == pytest.approx(
        csi["20180702"] / csi["20180629"] - 1)


def test_topk_dropout_orders_follow_qlib():
    score = np.array([0.9, 0.1, 0.5, np.nan, 0.7, 0.3])
    held = np.array([False, True, True, True, False, False])
    sell, buy = backtest.topk_dropout_orders(score, held, topk=3, n_drop=1)
    assert sell.tolist() == [3] and buy.tolist() == [0]  # the unscored holding goes first
    sell, buy = backtest.topk_dropout_orders(score, held, topk=3, n_drop=2)
    assert sell.tolist() == [1, 3] and buy.tolist() == [0, 4]
    sell, buy = backtest.topk_dropout_orders(score, np.zeros(6, bool), topk=3, n_drop=1)
    assert sell.tolist() == [] and buy.tolist() == [0, 4, 2]


def test_rebalances_every_k_days(bars):
    recent = bars[bars["trade_date"] >= "20180101"]
    scores = recent.assign(score=recent["close"] / recent["open"])
    result = run_backtest(scores, recent, BacktestSettings(topk=5, n_drop=1,
                                                           rebalance_every=5))
    calendar = np.unique(recent["trade_date"])
    traded = np.searchsorted(calendar, np.unique(result.trades["trade_date"]))
    assert len(traded) > 40 and (np.diff(traded) == 5).all()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="n_drop"):
        BacktestSettings(topk=5, n_drop=6)
    with pytest.raises(ValueError, match="execution"):
        BacktestSettings(execution="vwap")
