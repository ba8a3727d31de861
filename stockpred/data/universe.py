"""Point-in-time stock universes: which stocks are members on each trading day.

Every kind selects stocks in its own way and then keeps only those tradeable that day:
listed, not delisted, with a bar (not suspended), at least ``min_listed_days`` trading
days since listing and not ST. Each rule uses only what was known on the day, so a
universe computed from bars cut at day T equals the full result on every day up to T.

Survivorship bias that remains, by kind:

- ``all``: exact only over the stocks the tables hold. A ``stock_basic`` fetched today
  (list_status L) misses every stock delisted before it was taken, and the bars of a
  fixed subset (such as the shared market data) miss what the subset left out, so the
  early universe is tilted towards companies that survived.
- ``top_liquid``: ranks only the stocks ``all`` holds, so it inherits that bias; the
  ranking itself looks at no later data.
- ``index``: exact when ``index_weight`` is fetched for the whole period, since it
  names the constituents of each day, delisted ones included; it lags a rebalance until
  the next weights are published (tushare publishes them about monthly).
- ``list``: fixed ts_codes chosen with hindsight (for example today's SSE 50 run back
  to 2008): full survivorship bias, use it for single-stock work, not for cross-sections.

The ST rule needs ``namechange`` (the name each stock carried on each day); today's
name in ``stock_basic`` would leak the future, so without ``namechange`` the rule is
skipped and ``Membership.notes`` says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, model_validator

from stockpred.settings_base import Section

REASONS = ("delisted", "suspended", "listed_days", "st")  # a day gets the first that applies
_TOP_N = re.compile(r"^top([1-9]\d*)$")
# about twice the stocks ever listed on the A-share exchanges: a larger N is a typo (a
# topN that large keeps the same stocks as `all`)
MAX_TOP_N = 10_000
_OPEN_END = "99999999"  # after every YYYYMMDD day


class _UniverseBase(Section):
    model_config = ConfigDict(frozen=True)

    min_listed_days: int = Field(60, ge=0, description="trading days since listing before a "
                                                       "stock may join")


class AllStocks(_UniverseBase):
    """Every stock listed that day that passes the tradeable rules."""

    kind: Literal["all"] = "all"


class TopLiquid(_UniverseBase):
    """The ``n`` tradeable stocks with the largest trailing mean ``amount``, ranked daily."""

    kind: Literal["top_liquid"] = "top_liquid"
    n: int = Field(gt=0, le=MAX_TOP_N)
    window: int = Field(20, gt=0, description="trading days of the trailing mean")
    min_periods: int | None = Field(None, gt=0, description="bars needed in the window; "
                                                            "default half the window")

    @model_validator(mode="after")
    def _periods_fit_window(self):
        if self.min_periods is not None and self.min_periods > self.window:
            raise ValueError(f"min_periods {self.min_periods} exceeds window {self.window}")
        return self

    @property
    def periods_needed(self) -> int:
        return self.min_periods if self.min_periods is not None else (self.window + 1) // 2


class IndexMembers(_UniverseBase):
    """Constituents of ``index_code`` from tushare's index_weight, as of each day."""

    kind: Literal["index"] = "index"
    index_code: str = Field(min_length=1)


class FixedList(_UniverseBase):
    """Fixed ts_codes."""

    kind: Literal["list"] = "list"
    ts_codes: tuple[str, ...] = Field(min_length=1)


Universe = Annotated[AllStocks | TopLiquid | IndexMembers | FixedList, Field(discriminator="kind")]


def universe_from_name(name: str) -> AllStocks | TopLiquid:
    """The universe a built-in name stands for: ``all`` or ``topN`` (e.g. ``top800``)."""
    if name == "all":
        return AllStocks()
    top = _TOP_N.match(name)
    # the length first: int() refuses a string of thousands of digits with its own error
    if top and len(top.group(1)) <= len(str(MAX_TOP_N)) and int(top.group(1)) <= MAX_TOP_N:
        return TopLiquid(n=int(top.group(1)))
    raise ValueError(f"unknown universe {name!r}: built-in names are 'all' and 'topN' "
                     f"with N a whole number from 1 to {MAX_TOP_N} (e.g. 'top800')")


@dataclass(frozen=True)
class Membership:
    """Members (trade_date, ts_code), exclusions (trade_date, ts_code, reason), and notes
    on rules that could not be applied as asked."""

    members: pd.DataFrame
    exclusions: pd.DataFrame
    notes: tuple[str, ...]


def membership(universe: Universe, bars: pd.DataFrame, stock_basic: pd.DataFrame | None = None,
               namechange: pd.DataFrame | None = None,
               index_weight: pd.DataFrame | None = None) -> Membership:
    """Daily members of ``universe`` on the market calendar (the days ``bars`` has).

    ``bars`` has tushare ``daily`` columns (trade_date, ts_code and, for top_liquid,
    amount). ``stock_basic`` gives list_date and delist_date where it has them;
    ``namechange`` (ts_code, name, start_date, end_date) the ST days; ``index_weight``
    (index_code, con_code, trade_date, weight) the constituents of an index universe.
    Exclusions list the selected stocks that are listed on a day but not members, with
    the first reason of ``REASONS`` that applies; a top_liquid universe selects every
    stock, so its exclusions are those of ``all``.
    """
    if bars.empty:
        raise ValueError("membership needs bars: the market calendar is the days they have")
    notes = []
    day_of_bar, calendar = pd.factorize(bars["trade_date"], sort=True)
    calendar = np.asarray(calendar, dtype=str)
    bar_stock, bar_codes = pd.factorize(bars["ts_code"], sort=True)
    bar_codes = np.asarray(bar_codes, dtype=str)
    codes = np.unique(np.concatenate([bar_codes, _dated_codes(stock_basic, "list_date"),
                                      _selected_codes(universe, index_weight)]))
    stock_of_bar = np.searchsorted(codes, bar_codes)[bar_stock]
    has_bar = np.zeros((len(calendar), len(codes)), dtype=bool)
    has_bar[day_of_bar, stock_of_bar] = True

    listing_pos, days_before_calendar, unknown = _listing(calendar, codes, has_bar, stock_basic)
    if unknown.any():
        notes.append(f"no bars and no list_date, never members: {', '.join(codes[unknown])}")
    if stock_basic is None or "list_date" not in stock_basic:
        notes.append("no list_date in stock_basic: listing taken as each stock's first bar, "
                     "so stocks trading on the data's first day count as new")
    day = np.arange(len(calendar))[:, None]
    listed = day >= listing_pos[None, :]
    listed_days = day - listing_pos[None, :] + days_before_calendar[None, :]

    reason = np.zeros(has_bar.shape, dtype=np.int8)  # 0: tradeable, else 1 + REASONS index
    rules = [("delisted", day >= _delisting_pos(calendar, codes, stock_basic)[None, :]),
             ("suspended", ~has_bar),
             ("listed_days", listed_days < universe.min_listed_days)]
    if namechange is None:
        notes.append("st rule not applied: no namechange table (today's stock_basic name "
                     "would leak the future)")
    else:
        rules.append(("st", _st_days(calendar, codes, namechange)))
    for name, applies in reversed(rules):  # the earliest rule in REASONS wins
        reason[applies] = 1 + REASONS.index(name)
    reason[~listed] = -1  # not yet listed: neither member nor excluded
    tradeable = reason == 0

    if isinstance(universe, TopLiquid):
        members = _most_traded(universe, bars, day_of_bar, stock_of_bar, tradeable)
        selected = np.ones(has_bar.shape, dtype=bool)
    else:
        selected = _selection(universe, calendar, codes, index_weight, notes)
        members = tradeable & selected
    excluded = selected & (reason > 0)
    return Membership(_day_stock_frame(members, calendar, codes),
                      _exclusion_frame(excluded, reason, calendar, codes), tuple(notes))


def _selected_codes(universe, index_weight) -> np.ndarray:
    if isinstance(universe, FixedList):
        return np.array(universe.ts_codes, dtype=str)
    if isinstance(universe, IndexMembers):
        return _index_rows(universe, index_weight)["con_code"].to_numpy(dtype=str)
    return np.array([], dtype=str)


def _index_rows(universe: IndexMembers, index_weight: pd.DataFrame | None) -> pd.DataFrame:
    if index_weight is None:
        raise ValueError(f"universe index {universe.index_code} needs the index_weight table")
    rows = index_weight[index_weight["index_code"] == universe.index_code]
    if rows.empty:
        raise ValueError(f"index_weight has no rows for {universe.index_code}")
    return rows


def _dated_codes(table: pd.DataFrame | None, column: str) -> np.ndarray:
    if table is None or column not in table:
        return np.array([], dtype=str)
    return table.loc[table[column].notna(), "ts_code"].to_numpy(dtype=str)


def _dates_by_code(table: pd.DataFrame | None, column: str, codes: np.ndarray) -> np.ndarray:
    """``column`` of ``table`` for each of ``codes``, "" where it has none."""
    if table is None or column not in table:
        return np.full(len(codes), "", dtype="U8")
    dates = table.dropna(subset=[column]).drop_duplicates("ts_code").set_index("ts_code")[column]
    return dates.reindex(codes).fillna("").to_numpy(dtype="U8")


def _listing(calendar, codes, has_bar, stock_basic):
    """Calendar position of each listing day, weekdays listed before the calendar starts,
    and which stocks have no listing day at all.

    Before the calendar's first day the trading days are not known: weekdays stand in,
    which overcounts the holidays in between.
    """
    list_date = _dates_by_code(stock_basic, "list_date", codes)
    has_list_date = list_date != ""
    listing_pos = np.where(has_list_date, np.searchsorted(calendar, list_date),
                           np.where(has_bar.any(axis=0), has_bar.argmax(axis=0), len(calendar)))
    before = has_list_date & (list_date < calendar[0])
    days_before = np.zeros(len(codes), dtype=np.int64)
    days_before[before] = np.busday_count(_as_datetime64(list_date[before]),
                                          _as_datetime64(calendar[:1]))
    unknown = ~has_list_date & ~has_bar.any(axis=0)
    return listing_pos, days_before, unknown


def _as_datetime64(dates: np.ndarray) -> np.ndarray:
    return pd.to_datetime(dates, format="%Y%m%d").to_numpy().astype("datetime64[D]")


def _delisting_pos(calendar, codes, stock_basic) -> np.ndarray:
    """First calendar position after each delist_date; past the end when none."""
    delist_date = _dates_by_code(stock_basic, "delist_date", codes)
    return np.where(delist_date != "", np.searchsorted(calendar, delist_date, side="right"),
                    len(calendar))


def _st_days(calendar, codes, namechange) -> np.ndarray:
    """Days each stock's name held ST: the name of a day is that of the latest start_date on
    or before it, until its end_date."""
    names = namechange[namechange["ts_code"].isin(codes)].sort_values(["ts_code", "start_date"])
    next_start = names.groupby("ts_code")["start_date"].shift(-1)
    is_st = names["name"].str.contains("ST", regex=False, na=False)
    names = names.assign(next_start=next_start)[is_st]
    start = np.searchsorted(calendar, names["start_date"].to_numpy(dtype="U8"))
    # the row ends at its end_date or where the next name starts, whichever comes first
    until_end = np.searchsorted(calendar, _day_or_open_end(names["end_date"]), side="right")
    until_next = np.searchsorted(calendar, _day_or_open_end(names["next_start"]))
    stop = np.maximum(np.minimum(until_end, until_next), start)
    stock = pd.Index(codes).get_indexer(names["ts_code"])
    change = np.zeros((len(calendar) + 1, len(codes)), dtype=np.int32)
    np.add.at(change, (start, stock), 1)
    np.add.at(change, (stop, stock), -1)
    return np.cumsum(change[:-1], axis=0) > 0


def _day_or_open_end(column: pd.Series) -> np.ndarray:
    return column.fillna(_OPEN_END).to_numpy(dtype="U8")


def _most_traded(universe: TopLiquid, bars, day_of_bar, stock_of_bar, tradeable) -> np.ndarray:
    """The top ``n`` tradeable stocks of each day by trailing mean amount; ties go to the
    smaller ts_code."""
    amount = np.full(tradeable.shape, np.nan, dtype=np.float32)
    amount[day_of_bar, stock_of_bar] = bars["amount"].to_numpy(dtype=np.float32)
    trailing = (pd.DataFrame(amount).rolling(universe.window, min_periods=universe.periods_needed)
                .mean().to_numpy())
    trailing = np.where(tradeable, trailing, np.nan)
    top = np.argsort(-trailing, axis=1, kind="stable")[:, :universe.n]  # NaN sorts last
    members = np.zeros(tradeable.shape, dtype=bool)
    rows = np.arange(len(top))[:, None]
    members[rows, top] = ~np.isnan(trailing[rows, top])
    return members


def _selection(universe, calendar, codes, index_weight, notes) -> np.ndarray:
    """Which stocks the universe picks on each day, before the tradeable rules."""
    if isinstance(universe, AllStocks):
        return np.ones((len(calendar), len(codes)), dtype=bool)
    if isinstance(universe, FixedList):
        return np.broadcast_to(np.isin(codes, universe.ts_codes), (len(calendar), len(codes)))
    rows = _index_rows(universe, index_weight)
    published = np.unique(rows["trade_date"].to_numpy(dtype="U8"))
    constituents = np.zeros((len(published), len(codes)), dtype=bool)
    constituents[np.searchsorted(published, rows["trade_date"].to_numpy(dtype="U8")),
                 pd.Index(codes).get_indexer(rows["con_code"])] = True
    latest = np.searchsorted(published, calendar, side="right") - 1
    if latest[0] < 0:
        notes.append(f"{universe.index_code} has no weights before {published[0]}: "
                     f"no members until then")
    return np.where((latest >= 0)[:, None], constituents[np.maximum(latest, 0)], False)


def _day_stock_frame(mask: np.ndarray, calendar: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    day, stock = np.nonzero(mask)  # row-major: sorted by trade_date, then ts_code
    return pd.DataFrame({"trade_date": pd.Index(calendar).take(day),
                         "ts_code": pd.Index(codes).take(stock)})


def _exclusion_frame(excluded, reason, calendar, codes) -> pd.DataFrame:
    frame = _day_stock_frame(excluded, calendar, codes)
    frame["reason"] = pd.Index(REASONS).take(reason[excluded] - 1)
    return frame
