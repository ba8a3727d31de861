"""Point-in-time features of one stock's announced and scheduled events.

Each row of an announced table becomes usable on its *known day*: the first trading day
whose close it may feed. The rules, one per table:

- a row dated by its announcement (``ann_date``) counts from that day, or from the next
  trading day when it falls on a closed day; an announcement with a publication time at
  or after the 15:00 close (``rec_time``, else ``pub_time``) counts from the next trading
  day;
- a dividend plan counts from its ``ann_date``; its implementation (ex-date, final cash)
  from its ``imp_ann_date``; the stages between (the shareholders' approval) carry no date
  of their own and are left out;
- weekly pledge statistics dated by their period end (``end_date``, no announcement date)
  count from the next trading day after it;
- block trades run to 15:30 and are published after the close: a day's trades count from
  the next trading day.

Tables of announced periods (statements, dividends, pledges, audits) give each day the
latest period known by then, in its latest revision (``in_force``); event tables give
each day the events known on it and a trailing ``EVENT_WINDOW``-day sum. A table that is
not stored, or holds no row of the stock, adds no column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from stockpred.config import FeatureSettings
from stockpred.data.store import RawStore
from stockpred.features.indicators import Feature, ratio, scale_free, tsum

MARKET_CLOSE_MINUTE = 15 * 60  # 15:00 Beijing, in minutes after midnight
EVENT_WINDOW = 20  # trading days (about a month) summed by the *_20d event counts
UNLOCK_HORIZON_DAYS = 30  # calendar days ahead that the scheduled-unlock sum looks
STANDARD_OPINION = "标准无保留意见"  # fina_audit's audit_result of a clean opinion
# dividend stages (div_proc) whose date the table holds: the plan and its implementation
PLANNED, IMPLEMENTED = "预案", "实施"


def as_days(values) -> pd.Series:
    """YYYYMMDD text (or longer, e.g. a datetime) as days; NaT where empty."""
    return pd.to_datetime(pd.Series(values, dtype="string").str[:8], format="%Y%m%d")


def known_day(dates: pd.Series, open_days: pd.DatetimeIndex, after_close=False) -> pd.Series:
    """The first trading day a row dated ``dates`` counts from: that day when the market
    is open, else the next open day; the next open day after it where ``after_close``
    (a bool or one per row: published after the 15:00 close). NaT past the calendar."""
    values = pd.Series(dates).astype(open_days.dtype)
    same = open_days.searchsorted(values, side="left")
    later = open_days.searchsorted(values, side="right")
    position = np.where(np.asarray(after_close, dtype=bool), later, same)
    inside = (position < len(open_days)) & values.notna().to_numpy()
    picked = pd.Series(open_days[np.minimum(position, len(open_days) - 1)], index=values.index)
    return picked.where(inside)


def in_force(rows: pd.DataFrame, known: pd.Series, days: pd.DatetimeIndex, prefix: str,
             max_age: int):
    """Each day's latest announced period (latest revision) of one announced table.

    ``known`` is the day each row counts from; every float column of ``rows`` becomes
    ``<prefix>_<column>``, with ``<prefix>_age_days`` (calendar days since the row in
    force became known), empty after ``max_age`` days. Returns (values, days carried
    forward, days expired), or None when no row is ever known."""
    rows = rows.assign(visible=known.to_numpy()).dropna(subset=["visible"])
    if "report_type" in rows.columns and (rows["report_type"] == "1").any():
        rows = rows[rows["report_type"] == "1"]  # consolidated statements
    if rows.empty:
        return None
    rows = rows.sort_values(["visible", "end_date"]).reset_index(drop=True)
    # the row in force after each announcement: latest period, then latest revision
    best, best_key, chosen_rows = -1, None, []
    for i, key in enumerate(zip(rows["end_date"].fillna(""), rows["visible"])):
        if best_key is None or key >= best_key:
            best, best_key = i, key
        chosen_rows.append(best)
    events = pd.DataFrame({"day": rows["visible"], "row": chosen_rows}).drop_duplicates(
        "day", keep="last")
    chosen = pd.merge_asof(pd.DataFrame({"day": days}), events, on="day", direction="backward")
    numeric = [c for c in rows.columns if pd.api.types.is_float_dtype(rows[c])]
    picked = rows.loc[chosen["row"].fillna(-1).astype(int).clip(lower=0), numeric + ["visible"]]
    picked.index = days
    age = (days.to_series() - picked["visible"]).dt.days.where(chosen["row"].notna().to_numpy())
    stale = age > max_age
    values = picked[numeric].where(~stale & age.notna(), np.nan)
    values.columns = [f"{prefix}_{c}" for c in numeric]
    values[f"{prefix}_age_days"] = age.where(~stale)
    filled = int(((age > 0) & ~stale).sum())
    return values, filled, int(stale.sum())


def per_day(known: pd.Series, values, days: pd.DatetimeIndex) -> pd.Series:
    """The sum of ``values`` over the rows known on each of ``days``; 0 on a day without."""
    amounts = np.broadcast_to(np.asarray(values, dtype=float), len(known))
    sums = pd.Series(amounts, index=pd.DatetimeIndex(known)).groupby(level=0).sum()
    return sums.reindex(days, fill_value=0.0)


def _ordinal(days) -> pd.Series:
    """Days as a float count of days (NaN for NaT), so that in_force carries a date."""
    stamps = pd.Series(days)
    return (stamps - pd.Timestamp(0)).dt.days.astype(float)


def unadjusted_close(store: RawStore, code: str, days: pd.DatetimeIndex) -> pd.Series | None:
    """The stock's close as traded (CNY), the last traded one over suspensions: ``daily``'s,
    else daily_basic's. Ratios to it are unit-free whatever the features' price basis and
    never see an adjustment factor. None when neither table holds the stock."""
    for name in ("daily", "daily_basic"):
        if store.has(name):
            rows = store.read(name, subjects=[code], columns=["trade_date", "close"])
            if not rows.empty:
                close = pd.Series(rows["close"].to_numpy(), index=as_days(rows["trade_date"]))
                return close.reindex(days).ffill()
    return None


@dataclass
class StockDays:
    """What the event families of one stock are computed against."""

    days: pd.DatetimeIndex  # the panel's days
    open_days: pd.DatetimeIndex  # the whole trading calendar
    close: pd.Series | None  # unadjusted close on each day (unadjusted_close)
    volume: pd.Series  # the day's traded volume in lots of 100 shares, 0 when suspended
    settings: FeatureSettings


def dividends(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame | None:
    """The dividend year in force: its plan from ``ann_date``, its implementation from
    ``imp_ann_date``. Cash per share over the unadjusted close is a yield; from the
    ex-date on the close is per post-bonus share, so the cash is divided by 1 + stk_div."""
    implemented = ((rows["div_proc"] == IMPLEMENTED) & rows["imp_ann_date"].notna()).fillna(False)
    usable = (implemented | (rows["div_proc"] == PLANNED)).fillna(False).to_numpy(dtype=bool)
    known = as_days(rows["imp_ann_date"].where(implemented, rows["ann_date"]))
    table = pd.DataFrame({"end_date": rows["end_date"], "cash": rows["cash_div_tax"],
                          "stock_ratio": rows["stk_div"],
                          "ex_day": _ordinal(as_days(rows["ex_date"]))})
    result = in_force(table[usable], known[usable], on.days,
                      "div", on.settings.statement_max_age_days)
    if result is None:
        return None
    values = result[0]
    to_ex = values["div_ex_day"] - _ordinal(on.days).to_numpy()
    out = pd.DataFrame({"div_stock_ratio": values["div_stock_ratio"],
                        "div_days_to_ex": to_ex.where(to_ex >= 0)}, index=on.days)
    if on.close is not None:
        # from the ex-date on, the close is that of a share after the bonus shares
        shares = np.where(to_ex <= 0, 1 + values["div_stock_ratio"].fillna(0.0), 1.0)
        out["div_cash_yield"] = ratio(values["div_cash"] / shares, on.close)
    out["div_age_days"] = values["div_age_days"]
    return out


def pledges(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame | None:
    """The latest weekly pledge statistics: share of the stock pledged (%) and pledges."""
    known = known_day(as_days(rows["end_date"]), on.open_days, after_close=True)
    table = pd.DataFrame({"end_date": rows["end_date"], "ratio": rows["pledge_ratio"],
                          "count": rows["pledge_count"]})
    # a weekly series: carried over a missing week no longer than the market series
    result = in_force(table, known, on.days, "pledge", on.settings.market_max_gap_days)
    return None if result is None else result[0]


def block_trades(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame:
    """The day's block-trade volume over its traded volume, and the volume-weighted block
    price over the unadjusted close; both count from the next trading day."""
    day = as_days(rows["trade_date"])
    shares = rows["vol"].to_numpy() * 1e4  # 10k shares
    traded = per_day(day, shares, on.days)
    out = pd.DataFrame({"block_vol_ratio": ratio(traded, on.volume * 100).where(traded > 0, 0.0)},
                       index=on.days)
    if on.close is not None:
        price = ratio(per_day(day, rows["price"].to_numpy() * shares, on.days), traded)
        out["block_premium"] = scale_free(price, on.close, "level")
    return out.shift(1)


def announcements(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame:
    """Announcements counted on the day they become known, and over EVENT_WINDOW days."""
    clock_column = next((c for c in ("rec_time", "pub_time") if c in rows.columns), None)
    late = np.zeros(len(rows), dtype=bool)
    if clock_column is not None:
        clock = rows[clock_column].astype("string").str.extract(r"(\d{1,2}):(\d{2})")
        minutes = clock[0].astype(float) * 60 + clock[1].astype(float)
        late = (minutes >= MARKET_CLOSE_MINUTE).to_numpy()
    known = known_day(as_days(rows["ann_date"]), on.open_days, after_close=late)
    count = per_day(known, 1.0, on.days)
    return pd.DataFrame({"anns_count": count, f"anns_count_{EVENT_WINDOW}d":
                         tsum(count, EVENT_WINDOW)}, index=on.days)


def holder_trades(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame:
    """Major holders' announced net buying, in % of the float, over EVENT_WINDOW days."""
    sign = rows["in_de"].map({"IN": 1.0, "DE": -1.0}).astype(float)
    known = known_day(as_days(rows["ann_date"]), on.open_days)
    net = per_day(known, (sign * rows["change_ratio"]).to_numpy(), on.days)
    return pd.DataFrame({f"holder_net_change_{EVENT_WINDOW}d": tsum(net, EVENT_WINDOW)},
                        index=on.days)


def repurchases(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame:
    """Repurchase announcements (plans and progress reports) over EVENT_WINDOW days."""
    known = known_day(as_days(rows["ann_date"]), on.open_days)
    count = per_day(known, 1.0, on.days)
    return pd.DataFrame({f"repurchase_anns_{EVENT_WINDOW}d": tsum(count, EVENT_WINDOW)},
                        index=on.days)


def share_unlocks(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame:
    """Restricted shares announced to unlock within UNLOCK_HORIZON_DAYS after the day, in %
    of the total shares: a row adds its float_ratio from its known day until its float_date."""
    known = known_day(as_days(rows["ann_date"]), on.open_days)
    unlock = as_days(rows["float_date"])
    first = np.maximum(known, unlock - pd.Timedelta(days=UNLOCK_HORIZON_DAYS))
    start = on.days.searchsorted(first.to_numpy(dtype="datetime64[ns]"), side="left")
    stop = on.days.searchsorted(unlock.to_numpy(dtype="datetime64[ns]"), side="left")
    share = rows["float_ratio"].fillna(0.0).to_numpy()
    counted = first.notna().to_numpy() & unlock.notna().to_numpy() & (start < stop)
    steps = np.zeros(len(on.days) + 1)
    np.add.at(steps, start[counted], share[counted])
    np.add.at(steps, stop[counted], -share[counted])
    return pd.DataFrame({f"float_unlock_next_{UNLOCK_HORIZON_DAYS}d": np.cumsum(steps)[:-1]},
                        index=on.days)


def audits(rows: pd.DataFrame, on: StockDays) -> pd.DataFrame | None:
    """Whether the latest audit opinion announced is other than a clean one (1) or not (0)."""
    opinion = rows["audit_result"]
    modified = (opinion != STANDARD_OPINION).fillna(False).to_numpy(dtype=float)
    table = pd.DataFrame({"end_date": rows["end_date"],
                          "modified": np.where(opinion.isna(), np.nan, modified)})
    result = in_force(table, as_days(rows["ann_date"]), on.days, "audit",
                      on.settings.statement_max_age_days)
    return None if result is None else result[0]


@dataclass(frozen=True)
class EventFamily:
    table: str
    group: str
    build: Callable[[pd.DataFrame, StockDays], pd.DataFrame | None]
    params: dict


FAMILIES = (
    EventFamily("dividend", "dividend", dividends, {"known_from": "ann_date, imp_ann_date"}),
    EventFamily("pledge_stat", "pledge", pledges, {"known_from": "next trading day"}),
    EventFamily("block_trade", "block_trade", block_trades, {"known_from": "next trading day"}),
    EventFamily("anns", "announcements", announcements, {"window": EVENT_WINDOW}),
    EventFamily("stk_holdertrade", "holder_trade", holder_trades, {"window": EVENT_WINDOW}),
    EventFamily("repurchase", "repurchase", repurchases, {"window": EVENT_WINDOW}),
    EventFamily("share_float", "share_float", share_unlocks,
                {"horizon_days": UNLOCK_HORIZON_DAYS}),
    EventFamily("fina_audit", "audit", audits, {}),
)


def stock_events(store: RawStore, code: str, days: pd.DatetimeIndex,
                 open_days: pd.DatetimeIndex, volume: pd.Series, settings: FeatureSettings,
                 ) -> tuple[list[pd.DataFrame], list[Feature]]:
    """The event families of one stock whose table holds rows of it."""
    parts, features = [], []
    stored = [f for f in FAMILIES if store.has(f.table)]
    if not stored:
        return parts, features
    on = StockDays(days, open_days, unadjusted_close(store, code, days), volume, settings)
    for family in stored:
        rows = store.read(family.table, subjects=[code])
        if rows.empty:
            continue
        values = family.build(rows, on)
        if values is None:
            continue
        parts.append(values)
        features += [Feature(c, family.group, family.table, family.params)
                     for c in values.columns]
    return parts, features
