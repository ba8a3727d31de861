"""A TopK-Dropout backtest of a daily score on A-share bars, after qlib's TopkDropoutStrategy
(method_sell="bottom", method_buy="top", only_tradable=False).

Each rebalancing day T the strategy ranks day T's scores: it keeps the held stocks, adds the
best ``topk + n_drop - held`` unheld ones, sells the held stocks among the ``n_drop`` worst of
that union and buys as many of the best new ones as keep ``topk`` names; the orders execute at
day T+1's close (or open). A-share rules on the execution day: no trade in a stock without a
bar (suspended) or on a one-price day (high == low: locked at a limit); no buy at the
limit up, no sell at the limit down (``signal.trading_status``); shares bought on a day are
sold on a later day only (T+1). An order that cannot fill is dropped; the next rebalancing
day ranks afresh, so a blocked sell is retried only if the stock still ranks among the worst
(qlib's behaviour). Buys share ``cash x risk_degree`` (cash after the day's sells) equally
among the intended buys, the blocked ones included, as qlib does; a buy is a whole number of
lots and a sell the whole position. As in qlib, the number of buys counts the intended sells,
so a blocked sell leaves more than ``topk`` names until a later day sells the extra ones.

Prices are forward-adjusted, so share counts and lots are in adjusted shares, an
approximation of real lot sizes. A stock's position is valued at its last close while it
has no bar (suspended, or delisted: it then stays at that value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from stockpred.evaluation.signal import LIMIT_TOLERANCE, trading_status

TRADING_DAYS = 252
BAR_COLUMNS = ("trade_date", "ts_code", "open", "high", "low", "close", "pre_close")
TRADE_COLUMNS = ("trade_date", "ts_code", "side", "filled", "shares", "price", "cost",
                 "reason")


@dataclass(frozen=True)
class BacktestSettings:
    """Strategy, execution and A-share costs. ``rebalance_every``: trade on every k-th
    trading day counted from the first scored day; ``execution``: fill at the next day's
    "close" or "open"; ``risk_degree``: the share of cash spent on each day's buys (qlib's
    default 0.95); rates are fractions of the traded value; ``slippage`` moves the fill
    price against the order (buy higher, sell lower) and counts as a cost."""

    topk: int = 50
    n_drop: int = 5
    rebalance_every: int = 1
    execution: str = "close"
    risk_degree: float = 0.95
    commission: float = 0.0003
    min_commission: float = 5.0
    stamp_duty: float = 0.001
    reduced_stamp_duty: float = 0.0005
    stamp_duty_reduced_from: str = "20230828"
    transfer_fee: float = 0.00001
    slippage: float = 0.0
    initial_cash: float = 1e8
    lot_size: int = 100
    limit_tolerance: float = LIMIT_TOLERANCE

    def __post_init__(self):
        if self.topk < 1 or not 0 <= self.n_drop <= self.topk:
            raise ValueError(f"need topk >= 1 and 0 <= n_drop <= topk, got topk={self.topk}, "
                             f"n_drop={self.n_drop}")
        if self.rebalance_every < 1 or self.lot_size < 1:
            raise ValueError("rebalance_every and lot_size must be at least 1")
        if self.execution not in ("close", "open"):
            raise ValueError(f"execution must be 'close' or 'open', got {self.execution!r}")
        if not 0 < self.risk_degree <= 1:
            raise ValueError(f"risk_degree must be in (0, 1], got {self.risk_degree}")
        rates = (self.commission, self.min_commission, self.stamp_duty,
                 self.reduced_stamp_duty, self.transfer_fee, self.slippage)
        if min(rates) < 0 or self.initial_cash <= 0:
            raise ValueError("costs must be non-negative and initial_cash positive")


def transaction_costs(notional, sell: bool, trade_date: str,
                      settings: BacktestSettings) -> np.ndarray:
    """Fees of each order of value ``notional`` (CNY): commission max(rate x value, minimum)
    + transfer fee rate x value, + stamp duty rate x value on sells (the reduced rate from
    ``stamp_duty_reduced_from``). An order of value 0 costs nothing."""
    notional = np.asarray(notional, dtype=float)
    commission = np.maximum(settings.commission * notional, settings.min_commission)
    fees = np.where(notional > 0, commission + settings.transfer_fee * notional, 0.0)
    if sell:
        stamp = (settings.reduced_stamp_duty if trade_date >= settings.stamp_duty_reduced_from
                 else settings.stamp_duty)
        fees = fees + stamp * notional
    return fees


class Account:
    """Cash and per-stock share counts (stocks by position), enforcing T+1: a stock bought
    on day index d can be sold from day d + 1."""

    def __init__(self, stocks: int, settings: BacktestSettings):
        self.settings = settings
        self.cash = float(settings.initial_cash)
        self.shares = np.zeros(stocks)
        self.bought_on = np.full(stocks, -1)

    def sell(self, day: int, trade_date: str, stocks: np.ndarray,
             price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sell the whole position of each of ``stocks`` at ``price`` (before slippage);
        returns the shares sold (none of a stock bought on ``day``: T+1) and each order's
        cost, slippage included."""
        s = self.settings
        shares = np.where(self.bought_on[stocks] < day, self.shares[stocks], 0.0)
        notional = shares * price * (1 - s.slippage)
        fees = transaction_costs(notional, True, trade_date, s)
        self.cash += float(notional.sum() - fees.sum())
        self.shares[stocks] -= shares
        return shares, fees + shares * price * s.slippage

    def buy(self, day: int, trade_date: str, stocks: np.ndarray, price: np.ndarray,
            budget: float) -> tuple[np.ndarray, np.ndarray]:
        """Buy each of ``stocks`` for at most ``budget`` CNY, fees included, in whole lots;
        returns the shares bought and each order's cost, slippage included."""
        s = self.settings
        fill = price * (1 + s.slippage)
        # the largest value whose fees fit: value x (1 + transfer + commission) <= budget
        # while the commission is proportional, value x (1 + transfer) + minimum otherwise
        value = min(budget / (1 + s.transfer_fee + s.commission),
                    (budget - s.min_commission) / (1 + s.transfer_fee))
        lots = np.floor(max(value, 0.0) / (fill * s.lot_size))
        shares = lots * s.lot_size
        notional = shares * fill
        fees = transaction_costs(notional, False, trade_date, s)
        self.cash -= float(notional.sum() + fees.sum())
        self.shares[stocks] += shares
        self.bought_on[stocks[shares > 0]] = day
        return shares, fees + shares * price * s.slippage


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
    one_price: np.ndarray
    limit_up: np.ndarray
    limit_down: np.ndarray

    @classmethod
    def from_bars(cls, bars: pd.DataFrame, codes: np.ndarray,
                  settings: BacktestSettings) -> _Market:
        days = _distinct(bars["trade_date"])
        cell = _cells(days, codes, bars, "bars")
        status = trading_status(bars, settings.execution, settings.limit_tolerance)
        flags = {name: _grid(days, codes, cell, status[name].to_numpy(bool), False)
                 for name in ("limit_up", "limit_down", "one_price")}
        close = _grid(days, codes, cell, bars["close"].to_numpy(float), np.nan)
        return cls(days=days, codes=codes,
                   price=_grid(days, codes, cell, bars[settings.execution].to_numpy(float),
                               np.nan),
                   close=pd.DataFrame(close).ffill().to_numpy(), **flags)


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
    says why not); summary: see ``summarise``."""

    daily: pd.DataFrame
    trades: pd.DataFrame
    summary: dict[str, float]


def run_backtest(scores: pd.DataFrame, bars: pd.DataFrame,
                 settings: BacktestSettings = BacktestSettings(),
                 benchmarks: Mapping[str, pd.Series] | None = None) -> BacktestResult:
    """Trade ``scores`` (trade_date, ts_code, score) on ``bars`` (trade_date, ts_code, open,
    high, low, close, pre_close, forward-adjusted) from the day after the first scored day
    to the day after the last. ``benchmarks`` maps a name to daily returns indexed by
    trade_date (``index_returns``, ``equal_weight_returns``).

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
    market = _Market.from_bars(bars, codes, settings)
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
        signal_day = day - 1
        if (signal_day - first) % settings.rebalance_every == 0 and has_score[signal_day]:
            price = market.price[day]
            sell, buy = topk_dropout_orders(score[signal_day], account.shares > 0,
                                            settings.topk, settings.n_drop)
            sold, sell_cost, sell_reasons = _fill(
                account.sell, day, trade_date, sell, price,
                _blocked(market, day, sell, market.limit_down, "limit_down"), "t_plus_1")
            budget = account.cash * settings.risk_degree / len(buy) if len(buy) else 0.0
            bought, buy_cost, buy_reasons = _fill(
                partial(account.buy, budget=budget), day, trade_date, buy, price,
                _blocked(market, day, buy, market.limit_up, "limit_up"), "no_cash")
            orders += [(day, sell, "sell", sold, price[sell], sell_cost, sell_reasons),
                       (day, buy, "buy", bought, price[buy], buy_cost, buy_reasons)]
            cost_paid = float(sell_cost.sum() + buy_cost.sum())
            traded = float(np.nansum(sold * price[sell]) + np.nansum(bought * price[buy]))
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
        daily, settings.initial_cash, list(benchmarks or {})))


def _blocked(market: _Market, day: int, stocks: np.ndarray, at_limit: np.ndarray,
             limit_reason: str) -> np.ndarray:
    """Why each order in ``stocks`` cannot trade on ``day`` ("" where it can)."""
    return np.select([~np.isfinite(market.price[day, stocks]), market.one_price[day, stocks],
                      at_limit[day, stocks]],
                     ["suspended", "one_price", limit_reason], "").astype(object)


def _fill(trade, day: int, trade_date: str, stocks: np.ndarray, price: np.ndarray,
          reasons: np.ndarray, unfilled_reason: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Send the orders the market allows to ``trade`` (an Account's sell or buy); returns
    shares and cost per order (0 where not traded) and each order's reason,
    ``unfilled_reason`` where the account traded nothing."""
    allowed = reasons == ""
    shares, cost = np.zeros(len(stocks)), np.zeros(len(stocks))
    shares[allowed], cost[allowed] = trade(day, trade_date, stocks[allowed],
                                           price[stocks[allowed]])
    reasons[allowed & (shares == 0)] = unfilled_reason
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


def equal_weight_returns(bars: pd.DataFrame) -> pd.Series:
    """Each day's mean close / pre_close - 1 over the stocks with a bar: the equal-weight
    universe, rebalanced daily."""
    move = bars["close"].to_numpy(float) / bars["pre_close"].to_numpy(float) - 1
    returns = pd.Series(move).groupby(bars["trade_date"].to_numpy(str)).mean()
    return returns.rename("equal_weight")
