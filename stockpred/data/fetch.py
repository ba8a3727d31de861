"""The fetch plan: bring tushare Pro data (or the shipped sample) into <data dir>/raw/.

Incremental by design: the store's coverage ledger says which ranges were already
asked for each (interface, subject), so only the rest is requested. Interfaces that
answer ``trade_date=D`` for the whole market are asked one call per trading day (paged
past the row cap) or one call per stock and missing range, whichever the whole
universe needs fewer calls for: a nightly refresh is one call a day, a backfill of a
universe larger than the number of days asked is by day too, a long backfill of a few
stocks is by stock. A by-day sweep keeps the rows of the universe's stocks. A
whole-market fetch is always by day: only a call by day returns the stocks tushare no
longer lists (delisted ones, which a per-stock backfill of today's list would leave
out); it keeps every row and marks ``*`` (every stock) as asked. At market scale (more
than store.MARKET_SCALE stocks) the per-stock tables move to the store's time layout,
and fetched rows are gathered and written WRITE_ROWS rows, one time partition, at a
time, so a backfill rewrites each file a few times, not once per call.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
from tqdm import tqdm

from stockpred.config import Config, resolve_token, user_config_path
from stockpred.data.adjust import adjust_prices
from stockpred.data.catalogue import CATALOGUE, INTERFACES, Interface
from stockpred.data.client import CallFailed, NoPermission, QuotaExhausted, TushareClient
from stockpred.data.sample import (CALENDAR_INDEX, SAMPLE_INDEX, SAMPLE_TABLES, read_sample,
                                   trade_calendar)
from stockpred.data.store import (ALL_SUBJECTS, REPAIR_HINT, UNCONFIRMED, DamagedStoreError,
                                  RawStore, UpsertResult, day_bounds, format_day, missing_ranges,
                                  parse_day, shift_day)
from stockpred.data.universe import FixedList, IndexMembers, Universe
from stockpred.errors import IncompleteError, InputError, StockpredError
from stockpred.layout import Paths
from stockpred.manifest import (config_hash, package_versions, read_manifest, table_summary,
                                write_manifest)

log = logging.getLogger(__name__)
BEIJING = ZoneInfo("Asia/Shanghai")
# Rows gathered before a write into a time layout: what a kill can lose, and the memory held.
WRITE_ROWS = 1_000_000
# index weights are published monthly (some indexes half-yearly): a year before the first
# day holds the snapshot in force on it
WEIGHTS_LOOKBACK_DAYS = 366


@dataclass
class TableReport:
    added: int = 0
    updated: int = 0
    calls: int = 0
    note: str = ""
    quarantined: list[str] = field(default_factory=list)  # "<code> <day> (<reason>)"

    def remark(self, quarantine: str) -> str:
        """The note, and what was set aside (``quarantine``: where it went)."""
        if not self.quarantined:
            return self.note
        n = len(self.quarantined)
        shown = ", ".join(self.quarantined[:3]) + (", ..." if n > 3 else "")
        aside = (f"{n} row{'s' if n > 1 else ''} that cannot be prices set aside in "
                 f"{quarantine} ({shown})")
        return f"{self.note}; {aside}" if self.note else aside


@dataclass
class FetchReport:
    source: str
    start: str
    end: str
    stocks: list[str]
    tables: dict[str, TableReport] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)  # damaged files set aside, and the like
    quarantine_dir: str = ""

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport())

    def summary(self) -> list[str]:
        lines = [*self.repairs, f"{'table':16s} {'added':>9s} {'updated':>8s} {'calls':>6s}  note"]
        for name, t in self.tables.items():
            note = t.remark(f"{self.quarantine_dir}/{name}.parquet")
            lines.append(f"{name:16s} {t.added:9d} {t.updated:8d} {t.calls:6d}  {note}")
        total = sum(t.added for t in self.tables.values())
        lines.append(f"{len(self.tables)} tables, {total} rows added "
                     f"({self.source}, {self.start}..{self.end})")
        return lines


# -- days ---------------------------------------------------------------------------------

def settled_day(settle_time: str, now: datetime | None = None) -> str:
    """The last day whose data counts as published: today after settle_time (Beijing), else yesterday."""
    now = (now or datetime.now(BEIJING)).astimezone(BEIJING)
    hour, minute = (int(x) for x in settle_time.split(":"))
    today = now.date()
    return format_day(today if (now.hour, now.minute) >= (hour, minute)
                      else today - timedelta(days=1))


# A market-wide day-by-day reply with no rows for a day this old means the day really
# had none where rows are not expected every open day (no CCTV bulletin); a more recent
# one is not published yet.
EMPTY_DAY_FINAL_AFTER_DAYS = 7
# A day of a dense table with fewer rows than this share of the listed stocks is asked
# past its end: a lower row cap the server does not announce looks like that, while even
# the mass suspensions of July 2015 left about half the market trading.
SHORT_DAY_SHARE = 0.5


def coverage_end(lo: str, hi: str, last_returned: str | None, final_day: str) -> str:
    """How far an answered request for [lo, hi] may be marked as asked (before lo: nothing).

    Days up to ``final_day`` (the settled day less the interface's publication lag) are
    final. When the reply has rows, later days count only up
    to the last day it held, so a day published late is asked again by the next run. An
    empty reply to a range reaching back past ``final_day`` means the subject has no data
    there (a new listing, an interface it lacks); an empty reply to a range of recent days
    only is asked again.
    """
    if hi <= final_day:
        return hi
    if last_returned is None:
        return hi if lo <= final_day else shift_day(lo, -1)
    return min(hi, max(final_day, last_returned))


# -- what to fetch ------------------------------------------------------------------------

def selected_interfaces(config: Config) -> list[Interface]:
    wanted = config.fetch.interfaces
    if wanted:
        return [i for i in INTERFACES if i.name in wanted]
    return [i for i in INTERFACES if i.group in config.fetch.groups]


def subjects_for(iface: Interface, config: Config, stocks: list[str]) -> list[str]:
    kind_lists = {
        "stock": stocks,
        "index": config.fetch.indices,
        "minute": config.fetch.minute_codes,
        "future": config.fetch.futures,
        "news_src": config.fetch.news_sources,
    }
    return list(kind_lists[iface.subject]) if iface.subject else [ALL_SUBJECTS]


# The source of a store with rows and no readable record of where they came from
UNKNOWN_SOURCE = "unknown"


def stored_source(paths: Paths, store: RawStore) -> str | None:
    """Where the stored rows come from: the store's own record, else (a store written
    before it kept one) the last fetch manifest's, else UNKNOWN_SOURCE; None for an
    empty store."""
    known = store.source()
    if known or not any(store.has(i.name) for i in INTERFACES):
        return known
    return (read_manifest(paths.fetch_manifest) or {}).get("source") or UNKNOWN_SOURCE


def choose_source(config: Config, paths: Paths, store: RawStore) -> tuple[str, str | None]:
    """The source of this run and the token. ``auto`` keeps a tushare store on tushare: a
    cron job that lost its token must not load the sample over it (and retrain on it)."""
    token = resolve_token()
    stored = stored_source(paths, store)
    source = config.fetch.source
    if source == "auto" and not token and stored == UNKNOWN_SOURCE:
        # it may be a tushare store whose markers a disk fault took: never load the sample
        raise InputError(f"{paths.raw_dir} holds rows of unknown source ({store.source_file} "
                         f"and {paths.fetch_manifest} are unreadable or gone): set TUSHARE_TOKEN "
                         f"if they came from tushare, or pass --source sample if they are the "
                         f"shipped sample")
    if source == "auto":
        source = "tushare" if token or stored == "tushare" else "sample"
    if source == "tushare" and not token:
        if stored == "tushare":
            raise InputError(f"no tushare token, and {paths.raw_dir} was fetched from tushare: "
                             f"put the token in TUSHARE_TOKEN or in {user_config_path()} "
                             f'({{"tushare_token": "..."}})')
        raise InputError(f"no tushare token: set TUSHARE_TOKEN or put tushare_token in "
                         f"{user_config_path()}, or use --source sample")
    if source == "sample" and stored == "tushare":
        raise InputError(f"{paths.raw_dir} was fetched from tushare: the shipped sample is not "
                         f"mixed into it; give the sample its own --data-dir")
    return source, token


def check_store(paths: Paths, store: RawStore, repair: bool) -> list[str]:
    """Look for damaged files before anything reads or writes them: unreadable parquet
    footers and ledgers, and files the last fetch manifest listed that are gone or short
    of rows. Without ``repair`` the first is named in a DamagedStoreError; with it each is
    moved aside and its rows asked again (files are then read whole: a torn page has an
    intact footer). Returns the lines that say what was repaired."""
    manifest = read_manifest(paths.fetch_manifest)
    lines = []
    if manifest is None and paths.fetch_manifest.exists():
        lines.append(f"{paths.fetch_manifest} was corrupt: written again at the end of this "
                     f"fetch (files lost since the last fetch cannot be told)")
        log.warning("%s", lines[-1])
    recorded = (manifest or {}).get("tables", {})
    # a rewritten layout marker shows its files to the next look; a third finding is a
    # store the repair cannot mend, named like any other
    for look in range(3):
        damage = [d for i in INTERFACES if store.table_dir(i.name).is_dir()
                  for d in store.check(i.name, recorded.get(i.name), thorough=repair)]
        if not damage:
            return lines
        if not repair or look == 2:
            more = f" and {len(damage) - 1} more" if len(damage) > 1 else ""
            raise DamagedStoreError(f"damaged store: {damage[0]}{more}: {REPAIR_HINT}, which "
                                    f"moves what is damaged aside and fetches its rows again")
        repaired = store.repair(damage)
        for line in repaired:
            log.warning("%s", line)
        lines += repaired
        recorded = {}  # the files set aside are gone on purpose


def check_manifest(paths: Paths) -> None:
    """For the stages after fetch: a fetch manifest that is there but unreadable is named
    as such, not taken for a fetch that never ran."""
    path = paths.fetch_manifest
    if path.exists() and read_manifest(path) is None:
        raise DamagedStoreError(f"{path} is corrupt (not a JSON manifest): run `stockpred "
                                f"fetch`, which writes it again from what is stored")


# -- the shipped sample -------------------------------------------------------------------

def load_sample(config: Config, store: RawStore) -> FetchReport:
    listed = read_sample("stock_basic")
    universe = config.fetch.universe
    if isinstance(universe, str):  # a universe's name: the sample's whole market
        stocks = sorted(listed["ts_code"])
    elif universe.index and universe.index != SAMPLE_INDEX:
        raise InputError(f"the shipped sample holds the SSE 50 ({SAMPLE_INDEX}) only, "
                         f"not index {universe.index}: set fetch.universe or use tushare")
    else:
        stocks = universe.ts_codes or sorted(listed["ts_code"])
    unknown = sorted(set(stocks) - set(listed["ts_code"]))
    if unknown:
        raise InputError(f"unknown ts_code {', '.join(unknown)}: the shipped sample has the "
                         f"SSE 50 stocks only (see stockpred/data/sample_data)")
    end = config.fetch.end_date or "99991231"
    report = FetchReport("sample", config.fetch.start_date, config.fetch.end_date or "latest",
                         stocks, quarantine_dir=str(store.quarantine_dir))
    if store.source() != "sample":
        store.set_source("sample")
    selected = {i.name for i in selected_interfaces(config)}
    for name in config.fetch.interfaces:
        if name not in SAMPLE_TABLES and name != "trade_cal":
            report.tables[name] = TableReport(note="not in the shipped sample")
    for name in [n for n in SAMPLE_TABLES if n in selected]:
        iface = CATALOGUE[name]
        table = read_sample(name)
        if iface.subject:
            table = table[table[iface.subject_param].isin(subjects_for(iface, config, stocks))]
        if iface.date_field:
            lo, hi = day_bounds(iface, config.fetch.start_date, end)
            table = table[table[iface.date_field].between(lo, hi)]
        result = store.upsert(iface, table)
        report.tables[name] = TableReport(result.added, result.updated, 0, "shipped sample",
                                          result.quarantined)
    if "trade_cal" in selected:
        index = read_sample("index_daily")
        days = sorted(index.loc[index["ts_code"] == CALENDAR_INDEX, "trade_date"])
        calendar = trade_calendar(days)
        calendar = calendar[calendar["cal_date"].between(config.fetch.start_date, end)]
        result = store.upsert(CATALOGUE["trade_cal"], calendar)
        report.tables["trade_cal"] = TableReport(result.added, result.updated, 0,
                                                 f"derived from {CALENDAR_INDEX} trading days")
    return report


# -- tushare ------------------------------------------------------------------------------

class Fetcher:
    def __init__(self, config: Config, store: RawStore, client: TushareClient, progress: bool,
                 universe: Universe | None = None):
        self.config = config
        self.store = store
        self.client = client
        self.progress = progress
        self.universe = universe
        self.whole_market = universe is not None and not isinstance(universe,
                                                                    (IndexMembers, FixedList))
        self.start = config.fetch.start_date
        self.end = config.fetch.end_date or format_day(datetime.now(BEIJING).date())
        self.settled = min(self.end, settled_day(config.fetch.settle_time))
        # a run that ends at day D is treated as run on D's night
        self.empty_day_final = shift_day(self.settled, -EMPTY_DAY_FINAL_AFTER_DAYS)
        self.selected = selected_interfaces(config)
        self.touched: dict[str, set[str]] = {}
        self.failed: dict[str, str] = {}  # interface -> why it is incomplete
        self.market_size = 0  # stocks tushare lists: the rows of one day of the market
        self._calendar: list[str] | None = None  # open days, read once trade_cal is stored
        self._listed: list[str] | None = None  # list dates of stock_basic, read when needed
        self.position = ""  # how far the current interface got, for a stop part way
        self.report = FetchReport("tushare", self.start, self.end, [],
                                  quarantine_dir=str(store.quarantine_dir))
        self._claimed = False  # whether the store is known as a tushare store yet

    # bookkeeping
    def _upsert(self, iface: Interface, frame: pd.DataFrame) -> UpsertResult:
        """Store rows, first marking the store as fetched from tushare (before the rows,
        so a kill never leaves tushare rows in a store that claims to hold the sample)."""
        if not self._claimed and len(frame):
            if self.store.source() != "tushare":
                self.store.set_source("tushare")
            self._claimed = True
        return self.store.upsert(iface, frame)

    def _record(self, iface: Interface, result: UpsertResult, subjects: Iterable[str]) -> None:
        table = self.report.table(iface.name)
        table.added += result.added
        table.updated += result.updated
        if result.quarantined:
            table.quarantined += result.quarantined
            log.warning("%s: %d row(s) that cannot be prices set aside in %s: %s", iface.name,
                        len(result.quarantined), self.store.quarantine_file(iface.name),
                        ", ".join(result.quarantined))
        if result.added or result.updated:
            self.touched.setdefault(iface.name, set()).update(subjects)

    def _steps(self, items: list, iface: Interface, unit: str):
        """Iterate with a progress bar, remembering how far we got."""
        bar = tqdm(items, desc=f"{iface.name:14s}", unit=unit, leave=False,
                   disable=None if self.progress else True)
        for done, item in enumerate(bar):
            self.position = f"{done} of {len(items)} {unit}s done"
            yield item

    def _store(self, iface: Interface, frames: list[pd.DataFrame],
               asked: list[tuple[str, str, str]]) -> None:
        """Write fetched rows, then mark the ranges they answer as asked, in that order: a
        kill in between asks again, and never leaves a range marked without its rows."""
        frames = [f for f in frames if len(f)]
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            subjects = (frame[iface.subject_param].unique()
                        if iface.subject and iface.subject_param in frame.columns else [])
            self._record(iface, self._upsert(iface, frame), subjects)
        self.store.record_coverage(iface.name, asked)

    def _fit_layout(self, iface: Interface, subjects: int) -> None:
        if self.store.fit_layout(iface, subjects):
            self.report.table(iface.name).note = (f"market scale: one file per "
                                                  f"{iface.market_partition} from now on")

    def run(self) -> FetchReport:
        names = [i.name for i in self.selected]
        try:
            stocks = self._universe()
            self.report.stocks = stocks
            if any(i.by_trade_date for i in self.selected) or "trade_cal" in names:
                self._fetch_interface(CATALOGUE["trade_cal"], stocks)
                if self.failed:  # the plans of the rest read the calendar
                    raise self._incomplete()
            for iface in self.selected:
                if iface.name in ("stock_basic", "trade_cal") or not iface.queryable:
                    continue
                self._fetch_interface(iface, stocks)
            for iface in self.selected:
                if not iface.queryable:
                    self._derive(iface, stocks)
        finally:
            for name, count in self.client.calls.items():
                self.report.table(name).calls = count
        if self.failed:
            raise self._incomplete()
        return self.report

    def _incomplete(self) -> StockpredError:
        why = "; ".join(self.failed.values())
        return StockpredError(f"incomplete: {', '.join(self.failed)} ({why}); what was fetched "
                              f"is stored: run again to finish")

    def _universe(self) -> list[str]:
        universe = self.config.fetch.universe
        # a named fetch.universe arrives resolved as self.universe (stages.fetch.run)
        index, codes = (None, []) if isinstance(universe, str) else (universe.index,
                                                                     list(universe.ts_codes))
        if isinstance(self.universe, IndexMembers):
            index, codes = self.universe.index_code, []
        elif isinstance(self.universe, FixedList):
            codes = list(self.universe.ts_codes)
        needs_stocks = any(i.subject == "stock" for i in self.selected)
        if not needs_stocks and "stock_basic" not in {i.name for i in self.selected}:
            return codes
        self._snapshot(CATALOGUE["stock_basic"])
        listed = set(self.store.read("stock_basic", columns=["ts_code"])["ts_code"])
        self.market_size = len(listed)
        if self.whole_market:
            return sorted(listed)
        if codes:
            unknown = sorted(set(codes) - listed)
            if unknown:
                raise InputError(f"unknown ts_code {', '.join(unknown)}: not a listed stock "
                                 f"in tushare's stock_basic")
            return codes
        # a point-in-time universe needs the weights in force on the first day too
        lookback = shift_day(self.start, -WEIGHTS_LOOKBACK_DAYS) if self.universe else None
        self._by_subject(CATALOGUE["index_weight"], [index], lookback)
        members = self.store.read("index_weight", subjects=[index], end=self.end)
        if members.empty:
            raise InputError(f"tushare returned no index_weight rows for {index} "
                             f"up to {self.end}: is it an index with published weights?")
        if self.universe is not None:  # point in time: whoever was a member in the period
            snapshots = members["trade_date"]
            before = snapshots[snapshots <= self.start]
            first = before.max() if len(before) else self.start
            return sorted(set(members.loc[snapshots >= first, "con_code"]))
        latest = members["trade_date"].max()
        return sorted(members.loc[members["trade_date"] == latest, "con_code"])

    def _fetch_interface(self, iface: Interface, stocks: list[str]) -> None:
        subjects = subjects_for(iface, self.config, stocks)
        if iface.subject == "stock":
            self._fit_layout(iface, len(subjects))
        try:
            if iface.date_field is None:
                self._snapshot(iface)
            elif iface.by_trade_date and (self.whole_market or not iface.range_query):
                gaps = self._gaps(iface, [ALL_SUBJECTS])
                self._sweep(iface, gaps, self._days_of(gaps.values(), iface.calendar_days))
            elif iface.by_trade_date:
                self._by_stock_or_day(iface, subjects)
            else:
                self._by_subject(iface, subjects)
        except NoPermission as exc:
            self.report.table(iface.name).note = "skipped: no permission for this account"
            log.warning("%s; skipped", exc)
        except CallFailed as exc:  # what it stored is kept; the other interfaces go on
            self.failed[iface.name] = str(exc)
            self.report.table(iface.name).note = f"incomplete: {exc}"
            log.error("%s; going on with the other interfaces", exc)
        except QuotaExhausted as exc:
            raise IncompleteError(
                f"tushare daily quota reached on {exc.api_name} ({self.position}); everything "
                f"fetched so far is stored: run again tomorrow to continue") from None

    def _snapshot(self, iface: Interface) -> None:
        """Ask for a whole list (stock_basic, index_basic) at most once a settled day: it
        changes by a listing or two a day, and every run needs it. The days it was asked
        are kept in its ledger under ``*``."""
        day = settled_day(self.config.fetch.settle_time)
        asked = self.store.coverage(iface.name).get(ALL_SUBJECTS, [])
        if self.store.has(iface.name) and any(lo <= day <= hi for lo, hi in asked):
            return
        frame = self.client.fetch(iface, {})
        self._record(iface, self._upsert(iface, frame), [])
        self.store.record_coverage(iface.name, [(ALL_SUBJECTS, day, day)])

    # days
    def _open_days(self, lo: str, hi: str, calendar_days: bool = False) -> list[str]:
        if lo > hi:
            return []
        if calendar_days:
            return [format_day(parse_day(lo) + timedelta(n))
                    for n in range((parse_day(hi) - parse_day(lo)).days + 1)]
        if self._calendar is None:
            cal = self.store.read("trade_cal", columns=["cal_date", "is_open"])
            self._calendar = sorted(cal.loc[cal["is_open"] == 1, "cal_date"])
        return self._calendar[bisect_left(self._calendar, lo):bisect_right(self._calendar, hi)]

    def _days_of(self, gaps: Iterable[list[tuple[str, str]]],
                 calendar_days: bool = False) -> list[str]:
        """The open days (every day for ``calendar_days``) inside any of the ranges."""
        return sorted({d for ranges in gaps for lo, hi in ranges
                       for d in self._open_days(lo, hi, calendar_days)})

    def _gaps(self, iface: Interface, subjects: list[str],
              start: str | None = None) -> dict[str, list[tuple[str, str]]]:
        """The ranges of [start (default fetch.start_date), settled] not asked yet, for each
        subject that has some; a range asked for the whole market (``*``) counts for every
        subject."""
        start = start or self.start
        coverage = self.store.coverage(iface.name)
        market = coverage.get(ALL_SUBJECTS, [])
        gaps = {s: missing_ranges(start, self.settled, *coverage.get(s, []), *market)
                for s in subjects}
        return {s: g for s, g in gaps.items() if g}

    # the two ways to ask
    def _by_subject(self, iface: Interface, subjects: list[str], start: str | None = None) -> None:
        """One call per subject and missing range from ``start`` (default fetch.start_date).
        Into a time layout the rows are gathered and written WRITE_ROWS at a time (a write
        rewrites files every subject shares); per-subject files are written as each call
        returns, at no extra cost."""
        gaps = self._gaps(iface, subjects, start)
        work = [(s, gap) for s, ranges in gaps.items() for gap in ranges]
        if not iface.range_query:
            work = [(s, (start or self.start, self.settled)) for s in gaps]
        gather = WRITE_ROWS if self.store.time_layout(iface) else 0
        pending, rows, asked, doubted = [], 0, [], []
        for subject, (lo, hi) in self._steps(work, iface, "call"):
            params = {} if subject == ALL_SUBJECTS else {iface.subject_param: subject}
            if iface.range_query:
                first, last = day_bounds(iface, lo, hi)
                params.update(start_date=first, end_date=last)
            try:
                frame = self.client.fetch(iface, params)
            except BaseException:
                self._store(iface, pending, asked)  # keep what came back before the stop
                raise
            last = None
            if iface.date_field and len(frame):
                last = frame[iface.date_field].astype(str).str.replace("-", "").str[:8].max()
            end = coverage_end(lo, hi, last, shift_day(self.settled, -iface.publication_lag_days))
            pending.append(frame)
            rows += len(frame)
            if frame.empty and end >= lo:
                asked += self._empty_reply(iface, subject, lo, end, doubted)
            elif end >= lo:
                asked.append((subject, lo, end))
            if rows >= gather:
                self._store(iface, pending, asked)
                pending, rows, asked = [], 0, []
        self._store(iface, pending, asked)
        self._note_doubted(iface, doubted)

    def _empty_reply(self, iface: Interface, subject: str, lo: str, hi: str,
                     doubted: list[str]) -> list[tuple[str, str, str]]:
        """The ledger entries for an empty reply about ``subject`` (``*``: the market) over
        [lo, hi]. Where rows are expected (Interface.rows_expected) on its open days, the
        range counts as asked only when it comes back empty a second time: the first time
        it is kept under UNCONFIRMED and the subject, and named in ``doubted``."""
        if not (iface.rows_expected(subject == ALL_SUBJECTS)
                and self._open_days(lo, hi, iface.calendar_days)):
            return [(subject, lo, hi)]
        once = self.store.coverage(iface.name).get(UNCONFIRMED + subject, [])
        first_time = missing_ranges(lo, hi, *once)
        doubted += [f"{subject} {a}..{b}" if a != b else f"{subject} {a}" for a, b in first_time]
        return ([(subject, a, b) for a, b in missing_ranges(lo, hi, *first_time)]
                + [(UNCONFIRMED + subject, a, b) for a, b in first_time])

    def _note_doubted(self, iface: Interface, doubted: list[str]) -> None:
        if doubted:
            n = len(doubted)
            self.report.table(iface.name).note = (
                f"{n} empty repl{'y' if n == 1 else 'ies'} over open days unconfirmed "
                f"(first {doubted[0]}): asked again next run")

    def _sweep(self, iface: Interface, gaps: dict[str, list[tuple[str, str]]],
               days: list[str]) -> None:
        """One call a day (pages past the cap included) for the subjects of ``gaps``: every
        row is kept for the whole market (``*``), else the rows of those subjects. Rows are
        written one time partition (at most WRITE_ROWS rows) at a time; the ledger then
        marks each subject's gaps asked up to the last day written, less the days whose
        empty reply is unconfirmed (see _empty_reply). Stops at a recent day with no rows
        (not published yet)."""
        keep = None if ALL_SUBJECTS in gaps else list(gaps)
        doubted: list[str] = []
        unconfirmed: list[tuple[str, str, str]] = []
        seen: set[str] = set()  # subjects of ``keep`` with rows so far

        def asked(through: str | None) -> list[tuple[str, str, str]]:
            """The ledger entries of the days up to ``through``. A dense table's subject
            without rows in them is kept under UNCONFIRMED too: the days' replies were
            empty for it, and the store's check then expects no file of it."""
            if through is None:
                return []
            holes = [(lo, hi) for _, lo, hi in unconfirmed]
            entries = [(s, a, b) for s, ranges in gaps.items() for lo, hi in ranges
                       if lo <= through for a, b in missing_ranges(lo, min(hi, through), *holes)]
            quiet = [(UNCONFIRMED + s, a, b) for s, a, b in entries
                     if iface.dense and keep is not None and s not in seen]
            return [*unconfirmed, *entries, *quiet]

        pending, rows, through = [], 0, None
        for day in self._steps(days, iface, "day"):
            if pending and (rows >= WRITE_ROWS or self.store.period_of(iface, day)
                            != self.store.period_of(iface, through)):
                self._store(iface, pending, asked(through))
                pending, rows = [], 0
            try:
                frame = self.client.fetch(iface, {iface.day_param: day},
                                          self._day_rows(iface, day))
            except BaseException:
                self._store(iface, pending, asked(through))  # keep the days fetched so far
                raise
            if frame.empty and day > self.empty_day_final:
                self.report.table(iface.name).note = f"no rows yet for {day}; retried next run"
                log.info("%s has no rows for %s yet; stopping there", iface.name, day)
                through = shift_day(day, -1)
                break
            if frame.empty:
                unconfirmed += [e for e in self._empty_reply(iface, ALL_SUBJECTS, day, day,
                                                             doubted) if e[0] != ALL_SUBJECTS]
            if keep is not None:
                frame = frame[frame[iface.subject_param].isin(keep)]
                seen.update(frame[iface.subject_param])
            pending.append(frame)
            rows += len(frame)
            through = day
        else:  # every missing day asked: the gaps are asked to their ends
            through = self.settled
        self._store(iface, pending, asked(through))
        self._note_doubted(iface, doubted)

    def _day_rows(self, iface: Interface, day: str) -> int:
        """The fewest rows a reply for the whole market on ``day`` can plausibly hold: a
        share of the stocks listed by then, for a dense table; 0 for the others. Fewer
        make the client ask past them. A stock without a list date is not counted: its
        listing, and so whether it can trade, is unknown."""
        if not iface.dense:
            return 0
        if self._listed is None:
            basic = self.store.read("stock_basic")
            self._listed = sorted(basic["list_date"].dropna()) if "list_date" in basic else []
        return int(SHORT_DAY_SHARE * bisect_right(self._listed, day))

    def _by_stock_or_day(self, iface: Interface, subjects: list[str]) -> None:
        """The universe's cheapest mix of a sweep by day and calls per subject.

        Subjects missing the same ranges go together. Taking the groups into the sweep in
        order of their first missing day, latest first (the nearly current stocks of a
        nightly refresh before a newcomer's whole history), each prefix costs the days its
        subjects miss, in pages of one day of the market, plus one call per page of every
        missing range of the other subjects; the cheapest prefix (maybe none) wins.
        """
        gaps = self._gaps(iface, subjects)
        groups: dict[tuple, list[str]] = {}
        for subject, ranges in gaps.items():
            groups.setdefault(tuple(ranges), []).append(subject)
        cap = self.client.rows_per_call(iface)
        day_calls = -(-max(self.market_size, 1) // cap)

        def subject_calls(ranges: tuple) -> int:
            per_subject = sum(max(1, -(-len(self._open_days(lo, hi)) // cap))
                              for lo, hi in ranges)
            return per_subject * len(groups[ranges])

        order = sorted(groups, key=lambda ranges: ranges[0][0], reverse=True)
        rest = sum(subject_calls(ranges) for ranges in order)
        best, best_k, best_days, days = rest, 0, [], set()
        for k, ranges in enumerate(order, 1):
            days.update(self._days_of([ranges]))
            rest -= subject_calls(ranges)
            if len(days) * day_calls + rest < best:
                best, best_k, best_days = len(days) * day_calls + rest, k, sorted(days)
        self._by_subject(iface, [s for ranges in order[best_k:] for s in groups[ranges]])
        if best_k:
            self._sweep(iface, {s: list(ranges) for ranges in order[:best_k]
                                for s in groups[ranges]}, best_days)

    # derived tables
    def _derive(self, iface: Interface, stocks: list[str]) -> None:
        """Derive the stocks whose sources changed in this run, and those whose stored
        sources the table does not reflect yet: a run that stored them and then stopped
        derived nothing. Skipped while a source is incomplete in this run: its missing
        rows would be derived as if absent, and the next run sees them as not reflected."""
        sources = iface.derived_from
        failed = [s for s in sources if s in self.failed]
        if failed:
            self.report.table(iface.name).note = f"not derived: {' and '.join(failed)} incomplete"
            return
        if not all(self.store.has(s) for s in sources):
            self.report.table(iface.name).note = f"needs {' and '.join(sources)}"
            return
        changed = set().union(*(self.touched.get(s, set()) for s in sources))
        scope = None if self.whole_market else stocks
        codes = sorted((changed if scope is None else changed & set(stocks))
                       | self._underived(iface, scope))
        if not codes:
            return
        self._fit_layout(iface, len(stocks))
        how = iface.name.split("_")[0]
        factors = dict(tuple(self.store.read("adj_factor", subjects=codes).groupby("ts_code")))
        adjusted = {code: adjust_prices(daily, factors[code], how)
                    for code, daily in self.store.read("daily", subjects=codes).groupby("ts_code")
                    if code in factors}
        if adjusted:
            result = self.store.replace_subjects(iface, list(adjusted),
                                                 pd.concat(adjusted.values(), ignore_index=True))
            self._record(iface, result, adjusted)

    def _underived(self, iface: Interface, subjects: list[str] | None) -> set[str]:
        """Stocks (of ``subjects``, None: all) with a factor whose stored daily bars the
        derived table does not hold one for one: compared by rows and last day, which
        costs a read of two columns."""
        def shape(name: str) -> pd.DataFrame:
            days = self.store.read(name, subjects=subjects, columns=["ts_code", "trade_date"])
            return days.groupby("ts_code")["trade_date"].agg(["size", "max"])

        factored = set(self.store.read("adj_factor", subjects=subjects,
                                       columns=["ts_code"])["ts_code"])
        bars = shape("daily")
        bars = bars[bars.index.isin(factored)]
        derived = (shape(iface.name) if self.store.has(iface.name)
                   else pd.DataFrame(columns=bars.columns)).reindex(bars.index)
        return set(bars.index[~bars.eq(derived).fillna(False).all(axis=1)])


def write_fetch_manifest(paths: Paths, store: RawStore, config: Config,
                         report: FetchReport) -> None:
    """raw/manifest.json: every stored table's files, rows and content hash, its layout
    and each file's rows (what the next fetch checks the store against), and this run."""
    tables = {}
    if store.raw_dir.is_dir():
        for folder in sorted(p for p in store.raw_dir.iterdir() if p.name in CATALOGUE):
            if store.has(folder.name):
                tables[folder.name] = {**table_summary(store, folder.name),
                                       "partition": store.partition(CATALOGUE[folder.name]),
                                       "file_rows": store.file_rows(folder.name)}
    write_manifest(paths.fetch_manifest, {
        "stage": "fetch",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": report.source,
        "range": [report.start, report.end],
        "stocks": report.stocks,
        "config_sha256": config_hash(config),
        "versions": package_versions(),
        "last_run": {name: vars(t) for name, t in report.tables.items()},
        "tables": tables,
    })
