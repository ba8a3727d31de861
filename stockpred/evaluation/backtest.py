"""A TopK-Dropout backtest of a daily score on A-share bars, after qlib's TopkDropoutStrategy
(method_sell="bottom", method_buy="top", only_tradable=False).

Each rebalancing day T the strategy ranks day T's scores: it keeps the held stocks, adds the
best ``topk + n_drop - held`` unheld ones, sells the held stocks among the ``n_drop`` worst of
that union and buys as many of the best new ones as keep ``topk`` names; the orders execute at
day T+1's close (or open). A-share rules on the execution day: no trade in a stock without a
bar (suspended) or on a one-price day (high == low: locked at a limit); no buy at the
limit up, no sell at the limit down (``signal.trading_status``; ST days from ``namechange``
get 5%); shares bought on a day are sold on a later day only (T+1). An order that cannot
fill is dropped; the next rebalancing day ranks afresh, so a blocked sell is retried only
if the stock still ranks among the worst (qlib's behaviour). Buys share ``cash x
risk_degree`` (cash after the day's sells) equally among the intended buys, the blocked
ones included, as qlib does; a buy is a whole number of lots and a sell the whole position,
both cut to ``participation`` of the day's traded amount. As in qlib, the number of buys
counts the intended sells, so a blocked or cut sell leaves more than ``topk`` names until a
later day sells the extra ones.

Prices are forward-adjusted, so share counts and lots are in adjusted shares, an
approximation of real lot sizes. A stock's position is valued at its last close while it
has no bar (suspended). A delisted stock (``stock_basic``'s delist_date) stays held until
its delist date; on the first trading day from then on the position is closed at its last
traded close, with the sell fees and no slippage (there is no market left to move).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator, model_validator

from stockpred.data.universe import _st_days
from stockpred.evaluation.signal import LIMIT_TOLERANCE, trading_status
from stockpred.settings_base import Section, parse_day

TRADING_DAYS = 252
BAR_COLUMNS = ("trade_date", "ts_code", "open", "high", "low", "close", "pre_close")
TRADE_COLUMNS = ("trade_date", "ts_code", "side", "filled", "shares", "price", "cost",
                 "reason")
# qlib's backtest exchange preset (its benchmark YAMLs): open_cost on buys, close_cost on
# sells, min_cost a floor per order; no separate stamp duty or transfer fee
QLIB_OPEN_COST, QLIB_CLOSE_COST, QLIB_MIN_COST = 0.0005, 0.0015, 5.0
AMOUNT_UNIT = 1000.0  # tushare's daily `amount` is in thousand CNY
_NEVER = "99999999"  # after every YYYYMMDD day


class BacktestSettings(Section):
    """The `cross_section.backtest` section of config.json and the backtest's settings.

    ``rebalance_every``: trade on every k-th trading day counted from the first scored day;
    ``execution``: fill at the next day's "close" or "open"; ``risk_degree``: the share of
    cash spent on each day's buys (qlib's default 0.95); ``costs``: "a_share" (commission
    with its minimum, stamp duty on sells, transfer fee; rates are fractions of the traded
    value) or "qlib" (its preset: 0.05% on buys, 0.15% on sells, at least 5 CNY an order);
    ``slippage_bp`` moves every fill price against the order (buy higher, sell lower) by
    that many basis points and counts as a cost; ``participation`` caps an order's value at
    that share of the stock's traded amount on the fill day (None: no cap);
    ``benchmark_index``: the index beside the equal-weight universe (when index_daily holds
    it)."""

    model_config = ConfigDict(frozen=True)
    section: ClassVar[str] = "cross_section.backtest"
    topk: int = Field(50, gt=0)
    n_drop: int = Field(5, ge=0)
    rebalance_every: int = Field(1, gt=0)
    execution: Literal["close", "open"] = "close"
    risk_degree: float = Field(0.95, gt=0, le=1)
    costs: Literal["a_share", "qlib"] = "a_share"
    commission: float = Field(0.0003, ge=0)
    min_commission: float = Field(5.0, ge=0)
    stamp_duty: float = Field(0.001, ge=0)
    reduced_stamp_duty: float = Field(0.0005, ge=0)
    stamp_duty_reduced_from: str = "20230828"
    transfer_fee: float = Field(0.00001, ge=0)
    # about a tick's half-spread on a 10 CNY stock (5 bp) plus the impact of an order of a
    # few percent of the day's amount: at TopK 50 / drop 5 turnover each 10 bp a side costs
    # about 3%/yr, so zero flatters every strategy that trades
    slippage_bp: float = Field(10.0, ge=0)
    # the closing call auction trades a minority of the day's amount: an order of 5% of
    # the whole day is already a large share of it
    participation: float | None = Field(0.05, gt=0, le=1)
    initial_cash: float = Field(1e8, gt=0)
    lot_size: int = Field(100, gt=0)
    limit_tolerance: float = Field(LIMIT_TOLERANCE, ge=0)
    benchmark_index: str = "000300.SH"

    @field_validator("stamp_duty_reduced_from")
    @classmethod
    def _day(cls, value: str) -> str:
        return parse_day(value, "stamp_duty_reduced_from")

    @model_validator(mode="after")
    def _drop_within_topk(self) -> "BacktestSettings":
        if self.n_drop > self.topk:
            raise ValueError(f"need n_drop <= topk, got topk={self.topk}, n_drop={self.n_drop}")
        return self

    @property
    def slippage(self) -> float:
        """The slippage as a fraction of the price."""
        return self.slippage_bp / 1e4

    def fee_terms(self, sell: bool, trade_date: str) -> tuple[float, float, float]:
        """(rate, minimum, proportional) of an order's fees on ``trade_date``: fees =
        max(rate x value, minimum) + proportional x value."""
        if self.costs == "qlib":
            return (QLIB_CLOSE_COST if sell else QLIB_OPEN_COST), QLIB_MIN_COST, 0.0
        stamp = 0.0
        if sell:
            stamp = (self.reduced_stamp_duty if trade_date >= self.stamp_duty_reduced_from
                     else self.stamp_duty)
        return self.commission, self.min_commission, self.transfer_fee + stamp


def transaction_costs(notional, sell: bool, trade_date: str,
                      settings: BacktestSettings) -> np.ndarray:
    """Fees of each order of value ``notional`` (CNY), by ``settings.fee_terms``: for A-share
    costs, commission max(rate x value, minimum) + transfer fee rate x value, + stamp duty
    rate x value on sells (the reduced rate from ``stamp_duty_reduced_from``). An order of
    value 0 costs nothing."""
    notional = np.asarray(notional, dtype=float)
    rate, minimum, proportional = settings.fee_terms(sell, trade_date)
    fees = np.maximum(rate * notional, minimum) + proportional * notional
    return np.where(notional > 0, fees, 0.0)


class Account:
    """Cash and per-stock share counts (stocks by position), enforcing T+1: a stock bought
    on day index d can be sold from day d + 1."""

    def __init__(self, stocks: int, settings: BacktestSettings):
        self.settings = settings
        self.cash = float(settings.initial_cash)
        self.shares = np.zeros(stocks)
        self.bought_on = np.full(stocks, -1)

    def sell(self, day: int, trade_date: str, stocks: np.ndarray, price: np.ndarray,
             cap=np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sell the whole position of each of ``stocks`` at ``price`` (before slippage), or
        the whole lots worth at most ``cap`` CNY; returns the shares sold (none of a stock
        bought on ``day``: T+1), each order's cost, slippage included, and whether the cap
        cut it."""
        s = self.settings
        fill = price * (1 - s.slippage)
        held = np.where(self.bought_on[stocks] < day, self.shares[stocks], 0.0)
        capped = held * fill > cap
        allowed = np.floor(np.divide(cap, fill * s.lot_size, out=np.zeros(len(stocks)),
                                     where=capped)) * s.lot_size
        shares = np.where(capped, np.minimum(allowed, held), held)
        return shares, self._sold(trade_date, stocks, shares, fill, price - fill), capped

    def close_out(self, trade_date: str, stocks: np.ndarray,
                  price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sell every share of ``stocks`` at ``price`` with the sell fees and no slippage,
        T+1 aside (a delisted stock's position, at its last traded close)."""
        shares = self.shares[stocks].copy()
        return shares, self._sold(trade_date, stocks, shares, price, 0.0)

    def _sold(self, trade_date: str, stocks: np.ndarray, shares: np.ndarray, fill: np.ndarray,
              slipped) -> np.ndarray:
        notional = shares * fill
        fees = transaction_costs(notional, True, trade_date, self.settings)
        self.cash += float(notional.sum() - fees.sum())
        self.shares[stocks] -= shares
        return fees + shares * slipped

    def buy(self, day: int, trade_date: str, stocks: np.ndarray, price: np.ndarray,
            budget: float, cap=np.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Buy each of ``stocks`` for at most ``budget`` CNY, fees included, and at most
        ``cap`` CNY of shares, in whole lots; returns the shares bought, each order's cost,
        slippage included, and whether the cap cut it."""
        s = self.settings
        fill = price * (1 + s.slippage)
        rate, minimum, proportional = s.fee_terms(False, trade_date)
        # the largest value whose fees fit: value x (1 + proportional + rate) <= budget
        # while the rate is above the minimum, value x (1 + proportional) + minimum otherwise
        value = max(min(budget / (1 + proportional + rate),
                        (budget - minimum) / (1 + proportional)), 0.0)
        capped = np.broadcast_to(cap, np.shape(stocks)) < value
        lots = np.floor(np.minimum(value, cap) / (fill * s.lot_size))
        shares = lots * s.lot_size
        notional = shares * fill
        fees = transaction_costs(notional, False, trade_date, s)
        self.cash -= float(notional.sum() + fees.sum())
        self.shares[stocks] += shares
        self.bought_on[stocks[shares > 0]] = day
        return shares, fees + shares * (fill - price), capped


def topk_dropout_orders(score: np.ndarray, held: np.ndarray, topk: int,
                        n_drop: int) -> tuple[np.ndarray, np.ndarray]:
    """qlib's TopkDropoutStrategy choice for one day: (stocks to sell, stocks to buy, best
    first), as positions into ``score``. Held stocks without a score rank last; ties rank in
    stock order."""
    order = np.argsort(np.where(np.isfinite(score), -score, np.inf), kind="stable")
    rank = np.empty(len(score), dtype=int)
    rank[order] = np.arange(len(score))
    last = order[held[order]]
    unheld = order[~held[order] & np.isfinite(score[order])]
    today = unheld[:max(topk + n_drop - len(last), 0)]
    combined = np.sort(rank[np.concatenate([last, today])])
    worst = order[combined[len(combined) - n_drop:]] if n_drop else np.empty(0, dtype=int)
    sell = last[np.isin(last, worst)]
    return sell, today[:max(len(sell) + topk - len(last), 0)]


@dataclass(frozen=True)
class _Market:
    """The bars as day x stock matrices, on the calendar of days with any bar."""

    days: np.ndarray
    codes: np.ndarray
    price: np.ndarray  # the execution price, NaN where the stock cannot trade at all
    close: np.ndarray  # last close up to each day: a suspended stock's valuation
    cap: np.ndarray  # the most an order may trade (CNY): participation x the day's amount
    one_price: np.ndarray
    limit_up: np.ndarray
    limit_down: np.ndarray
    delisted_from: np.ndarray  # per stock: the first day index on or after its delist date

    @classmethod
    def from_bars(cls, bars: pd.DataFrame, codes: np.ndarray, settings: BacktestSettings,
                  namechange: pd.DataFrame | None,
                  stock_basic: pd.DataFrame | None) -> _Market:
        days = _distinct(bars["trade_date"])
        cell = _cells(days, codes, bars, "bars")
        st = None if namechange is None else _st_days(days, codes, namechange)[cell]
        status = trading_status(bars, settings.execution, settings.limit_tolerance, st)
        flags = {name: _grid(days, codes, cell, status[name].to_numpy(bool), False)
                 for name in ("limit_up", "limit_down", "one_price")}
        close = _grid(days, codes, cell, bars["close"].to_numpy(float), np.nan)
        cap = np.full(close.shape, np.inf)
        if settings.participation is not None:
            if "amount" not in bars.columns:
                raise ValueError("bars lack the amount column the participation cap needs "
                                 "(set participation to None to trade without a cap)")
            # a bar without an amount gives nothing to cap by
            amount = np.nan_to_num(bars["amount"].to_numpy(float), nan=np.inf)
            cap = _grid(days, codes, cell, settings.participation * AMOUNT_UNIT * amount, 0.0)
        delist = np.full(len(codes), _NEVER, dtype="U8")
        if _has_delist_dates(stock_basic):
            dated = stock_basic.dropna(subset=["delist_date"])
            dated = dated[dated["delist_date"].astype(str) != ""]
            where = pd.Index(codes).get_indexer(dated["ts_code"])
            delist[where[where >= 0]] = dated["delist_date"].astype(str).to_numpy()[where >= 0]
        return cls(days=days, codes=codes,
                   price=_grid(days, codes, cell, bars[settings.execution].to_numpy(float),
                               np.nan),
                   close=pd.DataFrame(close).ffill().to_numpy(), cap=cap,
                   delisted_from=np.searchsorted(days, delist), **flags)


def _has_delist_dates(stock_basic: pd.DataFrame | None) -> bool:
    return stock_basic is not None and "delist_date" in stock_basic.columns


def rule_notes(namechange: pd.DataFrame | None,
               stock_basic: pd.DataFrame | None) -> tuple[str, ...]:
    """The rules a backtest given these tables cannot apply, in words."""
    notes = []
    if namechange is None:
        notes.append("no namechange table: ST stocks trade under their board's limit (10%), "
                     "not their own 5%")
    if not _has_delist_dates(stock_basic):
        notes.append("no delist dates (stock_basic's delist_date): a stock that stops trading "
                     "is held at its last close to the end")
    return tuple(notes)


def _cells(days: np.ndarray, codes: np.ndarray, frame: pd.DataFrame,
           what: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's (day, stock) position in the day x stock grid; one row per cell."""
    row = pd.Index(days).get_indexer(frame["trade_date"])
    column = pd.Index(codes).get_indexer(frame["ts_code"])
    if (row < 0).any():
        off = frame["trade_date"].to_numpy()[row < 0]
        raise ValueError(f"{what} on days without bars, e.g. {sorted(set(off))[:3]}")
    if np.bincount(row * len(codes) + column).max(initial=0) > 1:
        raise ValueError(f"{what} hold more than one row for a stock and day")
    return row, column


def _distinct(column: pd.Series) -> np.ndarray:
    return np.sort(np.asarray(column.unique(), dtype=str))


def _grid(days: np.ndarray, codes: np.ndarray, cell: tuple[np.ndarray, np.ndarray],
          values: np.ndarray, empty) -> np.ndarray:
    grid = np.full((len(days), len(codes)), empty, dtype=values.dtype)
    grid[cell] = values
    return grid


@dataclass(frozen=True)
class BacktestResult:
    """daily: one row per execution day; trades: every order, filled or not (``reason``
    says why not, or ``participation`` where the cap cut a filled order, ``delisted`` for
    a position closed at its delisting); summary: see ``summarise``; notes: the rules the
    data could not support."""

    daily: pd.DataFrame
    trades: pd.DataFrame
    summary: dict[str, float]
    notes: tuple[str, ...] = ()


def run_backtest(scores: pd.DataFrame, bars: pd.DataFrame,
                 settings: BacktestSettings = BacktestSettings(),
                 benchmarks: Mapping[str, pd.Series] | None = None,
                 namechange: pd.DataFrame | None = None,
                 stock_basic: pd.DataFrame | None = None) -> BacktestResult:
    """Trade ``scores`` (trade_date, ts_code, score) on ``bars`` (trade_date, ts_code, open,
    high, low, close, pre_close, forward-adjusted, and amount in thousand CNY for the
    participation cap) from the day after the first scored day to the day after the last.
    ``benchmarks`` maps a name to daily returns indexed by trade_date (``index_returns``,
    ``equal_weight_returns``); ``namechange`` (tushare's: ts_code, name, start_date,
    end_date) gives the ST days, ``stock_basic`` (ts_code, delist_date) the delistings.

    The daily frame: value (CNY, at the close), return = value_t / value_{t-1} - 1 (after
    costs), cost = (fees + slippage paid) / value_{t-1}, return_without_cost = return + cost
    (qlib's split), turnover = (bought + sold value) / (2 value_{t-1}), cost_paid, positions, and
    for each benchmark b: benchmark_b, excess_b = return - benchmark_b and
    excess_without_cost_b.
    """
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}")
    scores = scores.dropna(subset=["score"])
    codes = np.union1d(_distinct(bars["ts_code"]), _distinct(scores["ts_code"]))
    market = _Market.from_bars(bars, codes, settings, namechange, stock_basic)
    score = _grid(market.days, codes, _cells(market.days, codes, scores, "scores"),
                  scores["score"].to_numpy(float), np.nan)
    has_score = np.isfinite(score).any(axis=1)
    if not has_score.any():
        raise ValueError("no scores to trade")
    scored = np.flatnonzero(has_score)
    first, stop = scored[0], min(scored[-1] + 1, len(market.days) - 1)

    account = Account(len(codes), settings)
    value_before = account.cash
    rows, orders = [], []
    for day in range(first + 1, stop + 1):
        trade_date = market.days[day]
        cost_paid = traded = 0.0
        gone = np.flatnonzero((market.delisted_from <= day) & (account.shares > 0))
        if len(gone):
            last = market.close[day, gone]
            shares, cost = account.close_out(trade_date, gone, last)
            orders.append((day, gone, "sell", shares, last, cost,
                           np.full(len(gone), "delisted", dtype=object)))
            cost_paid, traded = float(cost.sum()), float(shares @ last)
        signal_day = day - 1
        if (signal_day - first) % settings.rebalance_every == 0 and has_score[signal_day]:
            price, cap = market.price[day], market.cap[day]
            sell, buy = topk_dropout_orders(score[signal_day], account.shares > 0,
                                            settings.topk, settings.n_drop)
            sold, sell_cost, sell_reasons = _fill(
                account.sell, day, trade_date, sell, price, cap,
                _blocked(market, day, sell, market.limit_down, "limit_down"), "t_plus_1")
            budget = account.cash * settings.risk_degree / len(buy) if len(buy) else 0.0
            bought, buy_cost, buy_reasons = _fill(
                partial(account.buy, budget=budget), day, trade_date, buy, price, cap,
                _blocked(market, day, buy, market.limit_up, "limit_up"), "no_cash")
            orders += [(day, sell, "sell", sold, price[sell], sell_cost, sell_reasons),
                       (day, buy, "buy", bought, price[buy], buy_cost, buy_reasons)]
            cost_paid += float(sell_cost.sum() + buy_cost.sum())
            traded += float(np.nansum(sold * price[sell]) + np.nansum(bought * price[buy]))
        held = account.shares > 0
        value = account.cash + float(account.shares[held] @ market.close[day, held])
        rows.append((trade_date, value, value / value_before - 1, cost_paid / value_before,
                     traded / (2 * value_before), cost_paid, int(held.sum())))
        value_before = value

    daily = pd.DataFrame(rows, columns=["trade_date", "value", "return", "cost", "turnover",
                                        "cost_paid", "positions"]).set_index("trade_date")
    daily.insert(2, "return_without_cost", daily["return"] + daily["cost"])
    for name, returns in (benchmarks or {}).items():
        bench = returns.reindex(daily.index).to_numpy(float)
        daily[f"benchmark_{name}"] = bench
        daily[f"excess_{name}"] = daily["return"] - bench
        daily[f"excess_without_cost_{name}"] = daily["return_without_cost"] - bench
    return BacktestResult(daily, _trades(orders, market), summarise(
        daily, settings.initial_cash, list(benchmarks or {})),
        rule_notes(namechange, stock_basic))


def _blocked(market: _Market, day: int, stocks: np.ndarray, at_limit: np.ndarray,
             limit_reason: str) -> np.ndarray:
    """Why each order in ``stocks`` cannot trade on ``day`` ("" where it can)."""
    return np.select([~np.isfinite(market.price[day, stocks]), market.one_price[day, stocks],
                      at_limit[day, stocks]],
                     ["suspended", "one_price", limit_reason], "").astype(object)


def _fill(trade, day: int, trade_date: str, stocks: np.ndarray, price: np.ndarray,
          cap: np.ndarray, reasons: np.ndarray,
          unfilled_reason: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Send the orders the market allows to ``trade`` (an Account's sell or buy) with each
    stock's participation ``cap``; returns shares and cost per order (0 where not traded)
    and each order's reason: ``participation`` where the cap cut it, else
    ``unfilled_reason`` where the account traded nothing."""
    allowed = reasons == ""
    shares, cost, capped = np.zeros(len(stocks)), np.zeros(len(stocks)), np.zeros(len(stocks),
                                                                                    bool)
    chosen = stocks[allowed]
    shares[allowed], cost[allowed], capped[allowed] = trade(day, trade_date, chosen,
                                                            price[chosen], cap=cap[chosen])
    reasons[allowed & (shares == 0)] = unfilled_reason
    reasons[allowed & capped] = "participation"
    return shares, cost, reasons


def _trades(orders: list[tuple], market: _Market) -> pd.DataFrame:
    """The order log: one row per order, filled or not."""
    if not orders:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    day, stocks, side, shares, price, cost, reason = zip(*orders, strict=True)
    sizes = [len(s) for s in stocks]
    shares = np.concatenate(shares)
    return pd.DataFrame(dict(zip(TRADE_COLUMNS, (
        market.days[np.repeat(day, sizes)], market.codes[np.concatenate(stocks)],
        np.repeat(side, sizes), shares > 0, shares, np.concatenate(price),
        np.concatenate(cost), np.concatenate(reason)), strict=True)))


def summarise(daily: pd.DataFrame, initial_cash: float,
              benchmarks: list[str]) -> dict[str, float]:
    """The summary of a daily frame, in qlib's risk_analysis conventions (its "sum" mode,
    252 days a year) where it has them:
    annualised_return = 252 mean(return) (and without cost); compound_annual_return =
    (value_end / initial_cash)^(252 / days) - 1; max_drawdown = min(value / running max
    value - 1) over the value path from initial_cash; per benchmark b, with x = excess_b
    (and excess_without_cost_b): excess_return_[with|without]_cost_b = 252 mean(x),
    information_ratio_[with|without]_cost_b = sqrt(252) mean(x) / std(x) and
    max_drawdown_excess_b = min(cumsum(x) - running max of cumsum(x)) (with cost);
    mean_daily_turnover; total_cost (CNY).
    """
    value = np.r_[initial_cash, daily["value"].to_numpy(float)]
    out = {"days": len(daily),
           "annualised_return": TRADING_DAYS * float(daily["return"].mean()),
           "annualised_return_without_cost":
               TRADING_DAYS * float(daily["return_without_cost"].mean()),
           "compound_annual_return":
               float((value[-1] / value[0]) ** (TRADING_DAYS / max(len(daily), 1)) - 1),
           "max_drawdown": float(np.min(value / np.maximum.accumulate(value) - 1)),
           "mean_daily_turnover": float(daily["turnover"].mean()),
           "total_cost": float(daily["cost_paid"].sum())}
    for name in benchmarks:
        for column, which in ((f"excess_{name}", "with_cost"),
                              (f"excess_without_cost_{name}", "without_cost")):
            excess = daily[column].dropna()
            std = float(excess.std())
            out[f"excess_return_{which}_{name}"] = TRADING_DAYS * float(excess.mean())
            out[f"information_ratio_{which}_{name}"] = (
                math.sqrt(TRADING_DAYS) * float(excess.mean()) / std if std > 0 else math.nan)
        path = daily[f"excess_{name}"].fillna(0.0).cumsum()
        out[f"max_drawdown_excess_{name}"] = float((path - path.cummax()).min())
    return out


def index_returns(index_daily: pd.DataFrame, ts_code: str = "000300.SH") -> pd.Series:
    """Daily close-to-close returns of one index of an index_daily table (e.g. CSI 300)."""
    index = index_daily[index_daily["ts_code"] == ts_code].sort_values("trade_date")
    if index.empty:
        raise ValueError(f"index_daily has no rows for {ts_code}")
    close = pd.Series(index["close"].to_numpy(float), index=index["trade_date"].to_numpy(str))
    return close.pct_change().rename(ts_code)


def equal_weight_returns(bars: pd.DataFrame, members: pd.DataFrame | None = None) -> pd.Series:
    """Each day's mean return of the stocks that were members at the previous trading day's
    close, the portfolio one could form then: close / pre_close - 1 where the stock has a
    bar, 0 where it has none (suspended or delisted since: held at its last close). The
    universe rebalances daily; ``members`` (trade_date, ts_code) default to every stock
    with a bar. Days are those of ``bars``; the first has no return."""
    days = _distinct(bars["trade_date"])
    members = bars if members is None else members
    held = members[["trade_date", "ts_code"]]
    position = np.searchsorted(days, held["trade_date"].to_numpy(str), side="right")
    held = held[position < len(days)].assign(trade_date=days[position[position < len(days)]])
    move = bars[["trade_date", "ts_code"]].assign(
        move=bars["close"].to_numpy(float) / bars["pre_close"].to_numpy(float) - 1)
    held = held.merge(move, on=["trade_date", "ts_code"], how="left")
    returns = held["move"].fillna(0.0).groupby(held["trade_date"].to_numpy(str)).mean()
    return returns.rename("equal_weight")
