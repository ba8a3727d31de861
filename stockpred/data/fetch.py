"""The fetch stage: bring tushare Pro data (or the shipped sample) into <data dir>/raw/.

Incremental by design: the store's coverage ledger says which range was already
asked for each (interface, subject), so only the rest is requested. Interfaces that
answer ``trade_date=D`` for the whole market are fetched one call per trading day
when that is cheaper than one call per stock (a nightly refresh), and one call per
stock otherwise (a backfill); the plan picks whichever needs fewer calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from tqdm import tqdm

from stockpred.config import Config, api_url, resolve_token, user_config_path
from stockpred.data.adjust import adjust_prices
from stockpred.data.catalogue import CATALOGUE, INTERFACES, Interface
from stockpred.data.client import NoPermission, QuotaExhausted, TushareClient
from stockpred.data.sample import (CALENDAR_INDEX, SAMPLE_INDEX, SAMPLE_TABLES, read_sample,
                                   trade_calendar)
from stockpred.data.store import ALL_SUBJECTS, RawStore, UpsertResult, day_bounds
from stockpred.errors import IncompleteError, InputError
from stockpred.layout import Paths
from stockpred.manifest import (config_hash, package_versions, table_summary,
                                write_manifest)

log = logging.getLogger(__name__)
BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass
class TableReport:
    added: int = 0
    updated: int = 0
    calls: int = 0
    note: str = ""


@dataclass
class FetchReport:
    source: str
    start: str
    end: str
    stocks: list[str]
    tables: dict[str, TableReport] = field(default_factory=dict)

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport())

    def summary(self) -> list[str]:
        lines = [f"{'table':16s} {'added':>9s} {'updated':>8s} {'calls':>6s}  note"]
        for name, t in self.tables.items():
            lines.append(f"{name:16s} {t.added:9d} {t.updated:8d} {t.calls:6d}  {t.note}")
        total = sum(t.added for t in self.tables.values())
        lines.append(f"{len(self.tables)} tables, {total} rows added "
                     f"({self.source}, {self.start}..{self.end})")
        return lines


# -- days ---------------------------------------------------------------------------------

def _as_date(day: str) -> date:
    return date(int(day[:4]), int(day[4:6]), int(day[6:8]))


def _day(d: date) -> str:
    return d.strftime("%Y%m%d")


def _shift(day: str, n: int) -> str:
    return _day(_as_date(day) + timedelta(days=n))


def settled_day(settle_time: str, now: datetime | None = None) -> str:
    """The last day whose data counts as published: today after settle_time (Beijing), else yesterday."""
    now = (now or datetime.now(BEIJING)).astimezone(BEIJING)
    hour, minute = (int(x) for x in settle_time.split(":"))
    today = now.date()
    return _day(today if (now.hour, now.minute) >= (hour, minute) else today - timedelta(days=1))


# A market-wide day-by-day reply with no rows for a day this old means the day really
# had none (no CCTV bulletin, no futures report); a more recent one is not published yet.
EMPTY_DAY_FINAL_AFTER_DAYS = 7


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
        return hi if lo <= final_day else _shift(lo, -1)
    return min(hi, max(final_day, last_returned))


def missing_ranges(start: str, end: str, covered: tuple[str, str] | None) -> list[tuple[str, str]]:
    """The parts of [start, end] outside the covered range (at most one before, one after)."""
    if start > end:
        return []
    if covered is None:
        return [(start, end)]
    lo, hi = covered
    gaps = []
    if start < lo:
        gaps.append((start, min(end, _shift(lo, -1))))
    if end > hi:
        gaps.append((max(start, _shift(hi, 1)), end))
    return [g for g in gaps if g[0] <= g[1]]


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


def choose_source(config: Config) -> tuple[str, str | None]:
    token = resolve_token()
    source = config.fetch.source
    if source == "auto":
        source = "tushare" if token else "sample"
    if source == "tushare" and not token:
        raise InputError(f"no tushare token: set TUSHARE_TOKEN or put tushare_token in "
                         f"{user_config_path()}, or use --source sample")
    return source, token


def run(config: Config, paths: Paths, progress: bool = True) -> FetchReport:
    """Fetch what config.json asks for into <data dir>/raw and write its manifest."""
    source, token = choose_source(config)
    store = RawStore(paths.raw_dir)
    if source == "sample":
        report = _load_sample(config, store)
        write_fetch_manifest(paths, store, config, report)
        return report
    fetcher = _Fetcher(config, store, TushareClient(token, config.tushare, api_url(config)),
                       progress)
    try:
        return fetcher.run()
    finally:
        # also after a stop part way, so the manifest describes what is stored
        if paths.raw_dir.is_dir():
            write_fetch_manifest(paths, store, config, fetcher.report)


# -- the shipped sample -------------------------------------------------------------------

def _load_sample(config: Config, store: RawStore) -> FetchReport:
    listed = read_sample("stock_basic")
    universe = config.fetch.universe
    if universe.index and universe.index != SAMPLE_INDEX:
        raise InputError(f"the shipped sample holds the SSE 50 ({SAMPLE_INDEX}) only, "
                         f"not index {universe.index}: set fetch.universe or use tushare")
    stocks = universe.ts_codes or sorted(listed["ts_code"])
    unknown = sorted(set(stocks) - set(listed["ts_code"]))
    if unknown:
        raise InputError(f"unknown ts_code {', '.join(unknown)}: the shipped sample has the "
                         f"SSE 50 stocks only (see stockpred/data/sample_data)")
    end = config.fetch.end_date or "99991231"
    report = FetchReport("sample", config.fetch.start_date, config.fetch.end_date or "latest",
                         stocks)
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
        report.tables[name] = TableReport(result.added, result.updated, 0, "shipped sample")
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

class _Fetcher:
    def __init__(self, config: Config, store: RawStore, client: TushareClient, progress: bool):
        self.config = config
        self.store = store
        self.client = client
        self.progress = progress
        self.start = config.fetch.start_date
        self.end = config.fetch.end_date or _day(datetime.now(BEIJING).date())
        self.settled = min(self.end, settled_day(config.fetch.settle_time))
        # a run that ends at day D is treated as run on D's night
        self.empty_day_final = _shift(self.settled, -EMPTY_DAY_FINAL_AFTER_DAYS)
        self.selected = selected_interfaces(config)
        self.touched: dict[str, set[str]] = {}
        self.position = ""  # how far the current interface got, for a stop part way
        self.report = FetchReport("tushare", self.start, self.end, [])

    # bookkeeping
    def _record(self, iface: Interface, result: UpsertResult, subjects: Iterable[str]) -> None:
        table = self.report.table(iface.name)
        table.added += result.added
        table.updated += result.updated
        if result.added or result.updated:
            self.touched.setdefault(iface.name, set()).update(subjects)

    def _steps(self, items: list, iface: Interface, unit: str):
        """Iterate with a progress bar, remembering how far we got."""
        bar = tqdm(items, desc=f"{iface.name:14s}", unit=unit, leave=False,
                   disable=None if self.progress else True)
        for done, item in enumerate(bar):
            self.position = f"{done} of {len(items)} {unit}s done"
            yield item

    def run(self) -> FetchReport:
        names = [i.name for i in self.selected]
        try:
            stocks = self._universe()
            self.report.stocks = stocks
            if any(i.by_trade_date for i in self.selected) or "trade_cal" in names:
                self._fetch_interface(CATALOGUE["trade_cal"], stocks)
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
        return self.report

    def _universe(self) -> list[str]:
        universe = self.config.fetch.universe
        needs_stocks = any(i.subject == "stock" for i in self.selected)
        if not needs_stocks and "stock_basic" not in {i.name for i in self.selected}:
            return list(universe.ts_codes)
        self._snapshot(CATALOGUE["stock_basic"])
        listed = set(self.store.read("stock_basic", columns=["ts_code"])["ts_code"])
        if universe.ts_codes:
            unknown = sorted(set(universe.ts_codes) - listed)
            if unknown:
                raise InputError(f"unknown ts_code {', '.join(unknown)}: not a listed stock "
                                 f"in tushare's stock_basic")
            return list(universe.ts_codes)
        weights = CATALOGUE["index_weight"]
        self._by_subject(weights, [universe.index], self.start)
        members = self.store.read("index_weight", subjects=[universe.index], end=self.end)
        if members.empty:
            raise InputError(f"tushare returned no index_weight rows for {universe.index} "
                             f"up to {self.end}: is it an index with published weights?")
        latest = members["trade_date"].max()
        return sorted(members.loc[members["trade_date"] == latest, "con_code"])

    def _fetch_interface(self, iface: Interface, stocks: list[str]) -> None:
        subjects = subjects_for(iface, self.config, stocks)
        try:
            if iface.date_field is None:
                self._snapshot(iface)
            elif iface.by_trade_date and not iface.range_query:
                self._by_day(iface, subjects, self._days_needed(iface, ALL_SUBJECTS))
            elif iface.by_trade_date:
                self._mixed(iface, subjects)
            else:
                self._by_subject(iface, subjects, self.start)
        except NoPermission as exc:
            self.report.table(iface.name).note = "skipped: no permission for this account"
            log.warning("%s; skipped", exc)
        except QuotaExhausted as exc:
            raise IncompleteError(
                f"tushare daily quota reached on {exc.api_name} ({self.position}); everything "
                f"fetched so far is stored: run again tomorrow to continue") from None

    def _snapshot(self, iface: Interface) -> None:
        frame = self.client.fetch(iface, {})
        self._record(iface, self.store.upsert(iface, frame), [])

    def _open_days(self, lo: str, hi: str, calendar_days: bool = False) -> list[str]:
        if lo > hi:
            return []
        if calendar_days:
            return [_day(_as_date(lo) + timedelta(n))
                    for n in range((_as_date(hi) - _as_date(lo)).days + 1)]
        cal = self.store.read("trade_cal", start=lo, end=hi, columns=["cal_date", "is_open"])
        return sorted(cal.loc[cal["is_open"] == 1, "cal_date"])

    def _days_needed(self, iface: Interface, subject: str) -> list[str]:
        covered = self.store.coverage(iface.name).get(subject)
        days = []
        for lo, hi in missing_ranges(self.start, self.settled, covered):
            days += self._open_days(lo, hi, iface.calendar_days)
        return days

    def _by_subject(self, iface: Interface, subjects: list[str], start: str) -> None:
        coverage = self.store.coverage(iface.name)
        work = [(s, gap) for s in subjects
                for gap in missing_ranges(start, self.settled, coverage.get(s))]
        if not iface.range_query:
            work = [(s, (start, self.settled)) for s in dict.fromkeys(s for s, _ in work)]
        for subject, (lo, hi) in self._steps(work, iface, "call"):
            params = {} if subject == ALL_SUBJECTS else {iface.subject_param: subject}
            if iface.range_query:
                first, last = day_bounds(iface, lo, hi)
                params.update(start_date=first, end_date=last)
            frame = self.client.fetch(iface, params)
            self._record(iface, self.store.upsert(iface, frame), [subject])
            last = None
            if iface.date_field and len(frame):
                last = frame[iface.date_field].astype(str).str.replace("-", "").str[:8].max()
            end = coverage_end(lo, hi, last, _shift(self.settled, -iface.publication_lag_days))
            if end >= lo:
                self.store.record_coverage(iface.name, {subject: (lo, end)})

    def _by_day(self, iface: Interface, subjects: list[str], days: list[str]) -> None:
        """One call per day for the whole market, kept for ``subjects``; stops at a recent day
        with no rows (not published yet), skips an old one (a day that really had none)."""
        wanted = None if subjects == [ALL_SUBJECTS] else set(subjects)
        for day in self._steps(days, iface, "day"):
            frame = self.client.fetch(iface, {iface.day_param: day})
            if frame.empty and day > self.empty_day_final:
                self.report.table(iface.name).note = f"no rows yet for {day}; retried next run"
                log.info("%s has no rows for %s yet; stopping there", iface.name, day)
                return
            if wanted is not None:
                frame = frame[frame[iface.subject_param].isin(wanted)]
            self._record(iface, self.store.upsert(iface, frame), wanted or [])
            self.store.record_coverage(iface.name, {s: (day, day) for s in subjects})

    def _mixed(self, iface: Interface, subjects: list[str]) -> None:
        """Per trading day for the subjects that are nearly current, per subject for the rest."""
        coverage = self.store.coverage(iface.name)
        current = []  # (first missing day, subject) for subjects missing only recent days
        behind = []
        for s in subjects:
            gaps = missing_ranges(self.start, self.settled, coverage.get(s))
            if len(gaps) == 1 and s in coverage and gaps[0][0] > coverage[s][0]:
                current.append((gaps[0][0], s))
            elif gaps:
                behind.append(s)
        current.sort(reverse=True)
        best_k, best_cost, best_days = 0, len(current), []
        for k in range(1, len(current) + 1):
            days = self._open_days(current[k - 1][0], self.settled)
            cost = len(days) + len(current) - k
            if cost < best_cost:
                best_k, best_cost, best_days = k, cost, days
        by_day = [s for _, s in current[:best_k]]
        self._by_subject(iface, behind + [s for _, s in current[best_k:]], self.start)
        if by_day:
            self._by_day(iface, by_day, best_days)

    # derived tables
    def _derive(self, iface: Interface, stocks: list[str]) -> None:
        sources = iface.derived_from
        changed = set().union(*(self.touched.get(s, set()) for s in sources))
        if not all(self.store.has(s) for s in sources):
            self.report.table(iface.name).note = f"needs {' and '.join(sources)}"
            return
        how = iface.name.split("_")[0]
        for code in sorted(changed & set(stocks)):
            daily = self.store.read("daily", subjects=[code])
            factors = self.store.read("adj_factor", subjects=[code])
            if daily.empty or factors.empty:
                continue
            result = self.store.replace_subject(iface, code, adjust_prices(daily, factors, how))
            self._record(iface, result, [code])


def write_fetch_manifest(paths: Paths, store: RawStore, config: Config,
                         report: FetchReport) -> None:
    """raw/manifest.json: every stored table's files, rows and content hash, and this run."""
    tables = {}
    if store.raw_dir.is_dir():
        for folder in sorted(p for p in store.raw_dir.iterdir() if p.is_dir()):
            if store.has(folder.name):
                tables[folder.name] = table_summary(store, folder.name)
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
