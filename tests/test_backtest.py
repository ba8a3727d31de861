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
    bought, _, _ = account.buy(10, "20181228", stock, price, 5e5)
    assert bought[0] > 0
    cash = account.cash
    sold, cost, _ = account.sell(10, "20181228", stock, price)
    assert sold[0] == 0 and cost[0] == 0 and account.cash == cash
    assert account.shares[0] == bought[0]
    sold, _, _ = account.sell(11, "20190102", stock, price)
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
    account = Account(1, BacktestSettings(initial_cash=1e4, slippage_bp=0))
    short, _, _ = account.buy(0, "20181228", np.array([0]), price, one_lot + fees - 0.01)
    assert short[0] == 0  # a lot plus its fees does not fit
    bought, cost, _ = account.buy(0, "20181228", np.array([0]), price, one_lot + fees + 0.01)
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
        transfer_fee=0, slippage_bp=0), benchmarks)
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


def test_one_definition_of_the_settings():
    from stockpred.config import Config, with_overrides

    section = Config().cross_section.backtest
    assert type(section) is BacktestSettings and section == BacktestSettings()
    edited = with_overrides(Config(), {"cross_section": {"backtest": {"slippage_bp": 3}}})
    assert edited.cross_section.backtest == BacktestSettings(slippage_bp=3)


def test_slippage_moves_every_fill_and_is_counted_as_a_cost(reversal):
    costly, _ = reversal
    assert BacktestSettings().slippage_bp == 10  # non-zero by default
    filled = costly.trades[costly.trades["filled"]]
    buys = filled["side"] == "buy"
    fill = filled["price"] * np.where(buys, 1.001, 0.999)
    notional = filled["shares"] * fill
    fees = np.where(buys, np.maximum(0.0003 * notional, 5) + 0.00001 * notional,
                    np.maximum(0.0003 * notional, 5) + 0.00101 * notional)
    np.testing.assert_allclose(filled["cost"], fees + 0.001 * filled["shares"]
                               * filled["price"], rtol=1e-9)


def test_qlib_cost_preset():
    qlib = BacktestSettings(costs="qlib")
    value = np.array([1e6, 1e3, 0.0])
    for day in ("20181228", "20230828"):  # qlib's preset knows no stamp duty change
        np.testing.assert_allclose(backtest.transaction_costs(value, False, day, qlib),
                                   [500.0, 5.0, 0.0])
        np.testing.assert_allclose(backtest.transaction_costs(value, True, day, qlib),
                                   [1500.0, 5.0, 0.0])
    account = Account(1, BacktestSettings(costs="qlib", slippage_bp=0))
    bought, cost, _ = account.buy(0, "20181228", np.array([0]), np.array([10.0]), 1e6)
    assert bought[0] == 99_900  # 999 lots and their 0.05% fit in 1e6, 1000 lots do not
    assert cost[0] == pytest.approx(0.0005 * 999_000)


def test_orders_are_capped_at_a_share_of_the_days_amount(bars, calendar, days):
    # a normal day of a stock: 1e10 CNY on one name wants far more than 5% of its amount
    event = days[(days["previous_day"] == days["day"] - 1) & (days["move"].abs() < 0.03)
                 & days["ranged"] & (days["trade_date"] > "20180101")].iloc[0]
    code, day = event["ts_code"], int(event["day"])
    window = _window(bars, calendar, day - 2, day + 1)
    rich = BacktestSettings(topk=1, n_drop=1, initial_cash=1e10)
    order = run_backtest(_scores(code, [calendar[day - 1]]), window, rich).trades.iloc[0]
    cap = 0.05 * event["amount"] * 1000
    fill = event["close"] * 1.001
    assert order["filled"] and order["reason"] == "participation"
    assert cap - 100 * fill < order["shares"] * fill <= cap
    free = run_backtest(_scores(code, [calendar[day - 1]]), window,
                        rich.model_copy(update={"participation": None})).trades.iloc[0]
    assert free["reason"] == "" and free["shares"] * fill > 0.9 * rich.initial_cash

    # a sell is cut to whole lots within the cap, the rest stays held
    account = Account(1, BacktestSettings(slippage_bp=0))
    account.shares[0] = 10_000
    sold, _, capped = account.sell(5, "20181228", np.array([0]), np.array([10.0]),
                                   cap=np.array([25_050.0]))
    assert sold[0] == 2_500 and capped[0] and account.shares[0] == 7_500
    sold, _, capped = account.sell(5, "20181228", np.array([0]), np.array([10.0]),
                                   cap=np.array([1e6]))
    assert sold[0] == 7_500 and not capped[0] and account.shares[0] == 0


def _st_names(code: str) -> pd.DataFrame:
    """namechange rows in tushare's layout (ts_code, name, start_date, end_date, ann_date,
    change_reason), constructed: 600340.SH traded as ST国祥 in 2010 (its bars of that year
    move at most +-5.06%), the dates around that year are made up."""
    return pd.DataFrame({
        "ts_code": [code] * 3, "name": ["国祥股份", "ST国祥", "华夏幸福"],
        "start_date": ["20030328", "20080505", "20111024"],
        "end_date": ["20080504", "20111023", None],
        "ann_date": ["20030326", "20080430", "20111020"],
        "change_reason": ["", "ST", "撤销ST"]})


def test_st_days_get_a_five_percent_limit(bars, calendar, days):
    # 600340.SH on 2010-03-03 closed at its high, +4.98%: at the ST limit, not at 10%
    event = days[(days["ts_code"] == "600340.SH") & (days["trade_date"] == "20100303")].iloc[0]
    assert event["close"] == event["high"] > event["open"] and event["ranged"]
    assert event["previous_day"] == event["day"] - 1
    day = int(event["day"])
    window = _window(bars, calendar, day - 3, day + 3)
    scores = _scores("600340.SH", [calendar[day - 1]])
    names = _st_names("600340.SH")

    blind = run_backtest(scores, window, ONE_STOCK)
    assert blind.trades.iloc[0]["filled"]
    assert any("namechange" in note for note in blind.notes)
    known = run_backtest(scores, window, ONE_STOCK, namechange=names)
    order = known.trades.iloc[0]
    assert not order["filled"] and order["reason"] == "limit_up"
    assert not any("namechange" in note for note in known.notes)
    # once the ST name is gone the board's 10% applies again
    lifted = names.assign(start_date=["20030328", "20080505", "20100101"],
                          end_date=["20080504", "20091231", None])
    assert run_backtest(scores, window, ONE_STOCK, namechange=lifted).trades.iloc[0]["filled"]


def test_a_delisted_position_is_closed_at_its_last_traded_close(bars, calendar):
    # 600000.SH's bars cut after 2018-06-01, as if it stopped trading then and was
    # delisted (a stock_basic row in tushare's layout, list_status D) seven trading days on
    gone, other = "600000.SH", "600036.SH"
    last = int(np.searchsorted(calendar, "20180601"))
    delist = calendar[last + 7]
    window = _window(bars, calendar, last - 3, last + 12)
    window = window[(window["ts_code"] != gone) | (window["trade_date"] <= calendar[last])]
    basic = pd.DataFrame({"ts_code": [gone, other], "symbol": ["600000", "600036"],
                          "name": ["浦发银行", "招商银行"], "list_date": ["19991110", "20020409"],
                          "delist_date": [delist, None], "list_status": ["D", "L"]})
    scores = pd.concat([_scores(gone, [calendar[last - 2]]).assign(score=2.0),
                        _scores(other, calendar[last - 2:last + 11])])
    settings = BacktestSettings(topk=2, n_drop=0)
    result = run_backtest(scores, window, settings, stock_basic=basic)
    daily, trades = result.daily, result.trades
    held = calendar[last + 1:last + 7]
    assert (daily.loc[held, "positions"] == 2).all()
    closing = trades[trades["reason"] == "delisted"]
    assert len(closing) == 1 and closing.iloc[0]["trade_date"] == delist
    last_close = bars.loc[(bars["ts_code"] == gone) & (bars["trade_date"] == calendar[last]),
                          "close"].iloc[0]
    shares = trades[(trades["ts_code"] == gone) & (trades["side"] == "buy")]["shares"].iloc[0]
    assert closing.iloc[0]["price"] == last_close and closing.iloc[0]["shares"] == shares
    fees = backtest.transaction_costs([shares * last_close], True, delist, settings)[0]
    assert closing.iloc[0]["cost"] == pytest.approx(fees)  # sell fees, no slippage
    # the day's value moves only by the fees and the other stock's close
    assert daily.loc[delist, "positions"] == 1
    assert daily.loc[calendar[last + 8]:, "positions"].eq(1).all()
    theirs = trades[(trades["ts_code"] == other) & (trades["side"] == "buy")]["shares"].iloc[0]
    close = window[window["ts_code"] == other].set_index("trade_date")["close"]
    assert daily.loc[delist, "value"] - daily.loc[calendar[last + 6], "value"] == pytest.approx(
        theirs * (close[delist] - close[calendar[last + 6]]) - fees)
    assert not any("delist" in note for note in result.notes)

    kept = run_backtest(scores, window, settings)
    assert kept.daily["positions"].iloc[-1] == 2 and "delisted" not in set(kept.trades["reason"])
    assert any("delist" in note for note in kept.notes)


def test_equal_weight_is_formed_from_the_day_befores_members(bars):
    # members on 2018-07-02: a stock that joins that day (on its own amount) earns the
    # benchmark nothing until the next day; one that leaves still counts, and a member of
    # the day before without a bar (suspended) counts as 0
    recent = bars[bars["trade_date"].between("20180625", "20180706")]
    members = recent[["trade_date", "ts_code"]]
    joined, left = "600000.SH", "600036.SH"
    members = members[~((members["ts_code"] == joined) & (members["trade_date"] < "20180702"))
                      & ~((members["ts_code"] == left) & (members["trade_date"] >= "20180702"))]
    suspended = "600519.SH"
    lacking = recent[~((recent["ts_code"] == suspended) & (recent["trade_date"] == "20180702"))]
    returns = backtest.equal_weight_returns(lacking, members)
    move = (recent["close"] / recent["pre_close"] - 1).where(
        ~((recent["ts_code"] == suspended) & (recent["trade_date"] == "20180702")), 0.0)
    on_day = move[recent["trade_date"] == "20180702"].set_axis(
        recent.loc[recent["trade_date"] == "20180702", "ts_code"])
    known = members.loc[members["trade_date"] == "20180629", "ts_code"]
    assert joined not in set(known) and left in set(known) and suspended in set(known)
    assert returns["20180702"] == pytest.approx(on_day.reindex(known).mean())
    assert "20180625" not in returns.index  # no members known before the first day
