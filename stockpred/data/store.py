"""The raw parquet store under <data dir>/raw/<api_name>/: atomic upserts by key, one reader.

Layouts. Each interface's table is split into files as the catalogue says: one per
subject (a stock, an index, a news source; or per subject and year), or, for
market-wide tables, one per year. A per-subject table moves to its time layout
(``Interface.market_partition``: one file per year, or per month for minute bars, every
subject in it, rows sorted by the keys, so by code then date) once it is to hold more
than MARKET_SCALE subjects: one file per stock costs a rewrite per stock on every
nightly refresh (5,000 at market scale), a time partition one, whatever the number
of stocks. Smaller universes keep one file per subject, where reading a stock is one
file and a per-stock backfill writes each file once, as its call returns.

Reading. ``read`` is the one reader, whatever the layout. In a time layout it picks the
files of the asked days by name; in each file it reads only the row groups whose min/max
statistics (in the parquet footer) admit a wanted subject and day, then filters their
rows exactly. Files sorted by code and written in row groups of ROW_GROUP_ROWS rows keep
one stock's rows of a year in one or two row groups, so a stock costs a few small
row-group reads per file. Row-group statistics read by hand rather than a pyarrow
dataset filter or DuckDB: the dataset scanner skips the same row groups but took 5x
longer per file here (1,702 stocks: 300 against 65 ms for one stock's 11 years, on two
busy cores), and DuckDB would add a dependency for the same skipping. Rows come back in
key order in every layout, so a caller sees the same frame before and after a migration.

Migration. ``migrate`` moves a per-subject table to its time layout: it writes the
period files beside the subject files, which stay the table while the layout marker
(``_layout.json``) is absent, then writes the marker atomically (the commit: readers see
the period files from then on), then deletes the subject files. A kill at any moment
leaves one whole layout readable; a rerun (``resume_migrations``, which every fetch
calls) redoes the first step or finishes the last.

Every write goes to a temporary file in the same folder, is flushed to disk and
renamed over the old file, so a crash at any moment leaves either the old or the new
file, never a torn one; a write that fails (a full disk) removes its temporary. Beside
the data, ``_coverage.json`` records which date ranges have been asked of tushare for
each subject (``*``: every row of the market on those days), so a re-run asks only for
what it has not asked before.

Damage. A file that cannot be read (torn by a disk fault, truncated by hand) raises
DamagedStoreError naming it, never a bare pyarrow or JSON error. ``check`` finds such
files cheaply (parquet footers, row counts against those the last fetch recorded) and
``repair`` moves each aside under ``_damaged/`` (nothing stored is deleted) and takes its
ranges out of the ledger, so the next fetch asks for them again. Bars whose prices are
NaN or infinite are kept out of the table, in ``_quarantine/<table>.parquet``.
"""

from __future__ import annotations

import calendar
import errno
import json
import operator
import os
import re
import shutil
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpred.data.catalogue import CATALOGUE, INTERFACES, Interface
from stockpred.errors import MissingInputError, StockpredError

ALL_SUBJECTS = "*"
TMP_MARK = ".tmp-"
_COVERAGE = "_coverage.json"
_LAYOUT = "_layout.json"
_SOURCE = "_source.json"  # in raw/: where the store's rows come from (tushare, sample)
# Ledger key prefix, before a subject (``*``: the market), of the ranges whose reply came
# back empty where rows were expected (Interface.rows_expected): asked again once before
# they count as asked, and known to hold no rows.
UNCONFIRMED = "unconfirmed:"
DAMAGED_DIR = "_damaged"
QUARANTINE_DIR = "_quarantine"
REPAIR_HINT = "run `stockpred fetch --repair`"
# Bars that cannot be prices are set aside on arrival, with the reason: a NaN, inf, zero or
# negative price, a high below the low, an open or close outside them, a negative volume,
# a high past ten times the limit price, or two rows of one key that disagree. Any of them
# reaches every feature and model downstream (a close of 0 gives a qfq pct_chg of -117%).
PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMNS = ("vol", "amount")
BAR_TABLES = ("daily", "index_daily")
# a stock's daily limit is 10%, 20% on STAR (688) and on ChiNext (300, 301) from this day,
# 30% on the Beijing exchange. Listing days and some resumption days have none, and real
# bars rose 169% and 221% on such days (600703.SH 20080708, 603993.SH 20121009), so only a
# high past ABSURD_MULTIPLE times the limit price (pre_close x (1 + limit)) is no price.
CHINEXT_20PCT_FROM = "20200824"
ABSURD_MULTIPLE = 10
# A per-subject table moves to its time layout when it is to hold more subjects than this.
MARKET_SCALE = 100
# Small enough that one stock's rows of a year sit in one or two groups of a code-sorted
# file (a read decompresses little), large enough to keep the footers small.
ROW_GROUP_ROWS = 8192
# Rows a migration holds in memory before merging them into the period files.
MIGRATION_BATCH_ROWS = 1_000_000
_PERIOD_FILE = re.compile(r"^(\d{4}|\d{6}|all|undated)$")  # stems of time-layout files
_PERIOD_LAYOUTS = (None, "year", "month")  # one file, or one per period


def parse_day(day: str) -> date:
    return date(int(day[:4]), int(day[4:6]), int(day[6:8]))


def format_day(d: date) -> str:
    return d.strftime("%Y%m%d")


def shift_day(day: str, n: int) -> str:
    """The YYYYMMDD day ``n`` calendar days after ``day``."""
    return format_day(parse_day(day) + timedelta(days=n))


class DamagedStoreError(StockpredError):
    """A stored file cannot be read; the message names it and the repair."""


class NoSpaceError(StockpredError):
    """A write ran out of disk space; what was stored before it is intact."""


def damaged(path: Path, why: str) -> DamagedStoreError:
    return DamagedStoreError(f"{path} is damaged ({why}): {REPAIR_HINT}, which moves it "
                             f"aside and fetches its rows again")


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_with(tmp: Path, path: Path, write) -> None:
    """Run ``write(tmp)``, flush it to disk and rename it over ``path``. A failure removes
    the temporary; a full disk says so (the bare OSError names neither the folder nor
    that the store is intact)."""
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpaceError(f"no space left on {path.parent} (writing {path.name}): free "
                               f"some and run again; what was stored before is intact") from None
        raise
    _fsync(path.parent)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(payload)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    _replace_with(path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}"), path, write)


def atomic_save(path: Path, write) -> None:
    """Replace ``path`` with what ``write(temporary_path)`` writes (a library's own saver,
    such as Keras' ``model.save``), flushed to disk, so a kill never leaves a torn file.
    The temporary keeps the suffix, which some savers insist on (".keras")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_with(path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}"), path,
                  write)


def remove_temporaries(folder: Path) -> int:
    """Delete the temporaries that killed writers left anywhere under ``folder`` (files and
    unfinished run folders); call only while holding the data lock."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.rglob(f"*{TMP_MARK}*")
             if not any(TMP_MARK in parent.name for parent in p.parents)]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(frame: pd.DataFrame, path: Path,
                         row_group_size: int | None = None) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd",
                   row_group_size=row_group_size)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def conform(frame: pd.DataFrame, iface: Interface) -> pd.DataFrame:
    """Give a table the store's dtypes whatever its origin (tushare JSON, CSV, parquet).

    Codes, dates and labels are text; every other column is float64 when all its
    values are numbers (tushare sends ints and floats alike as JSON numbers).
    """
    out = {}
    text = iface.text_columns
    for col in frame.columns:
        values = frame[col]
        if col in text:
            out[col] = values.astype("string")
        elif pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            out[col] = values.astype("float64")
        else:
            try:
                out[col] = pd.to_numeric(values, errors="raise").astype("float64")
            except (ValueError, TypeError):
                out[col] = values.astype("string")
    result = pd.DataFrame(out, index=frame.index)
    return result.reset_index(drop=True)


def day_bounds(iface: Interface, start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """YYYYMMDD days in the format of the interface's date column, end day inclusive."""
    if not iface.datetime_params:
        return start, end

    def fmt(day, clock):
        return None if day is None else f"{day[:4]}-{day[4:6]}-{day[6:]} {clock}"

    return fmt(start, "00:00:00"), fmt(end, "23:59:59")


@dataclass
class UpsertResult:
    added: int = 0
    updated: int = 0
    quarantined: list[str] = field(default_factory=list)  # "<subject> <day> (<reason>)" set aside

    def __iadd__(self, other: "UpsertResult") -> "UpsertResult":
        self.added += other.added
        self.updated += other.updated
        self.quarantined += other.quarantined
        return self


@dataclass
class Damage:
    """A stored file that cannot be trusted: unreadable, missing or short of rows."""
    table: str
    path: Path
    why: str

    def __str__(self) -> str:
        return f"{self.path} ({self.why})"


def partition_labels(partition: str | None, iface: Interface, frame: pd.DataFrame) -> pd.Series:
    """The file (stem) each row of ``frame`` belongs to under ``partition``."""
    if partition == "subject":
        return frame[iface.subject_param].astype(str)
    if partition == "subject_year":
        return frame[iface.subject_param].astype(str) + "_" + partition_labels("year", iface, frame)
    if partition is None or iface.date_field is None:
        return pd.Series("all", index=frame.index)
    dates = frame[iface.date_field]
    period = dates.str[:4] if partition == "year" else dates.str.replace("-", "").str[:6]
    return period.fillna("undated")


def _period_overlaps(stem: str, start: str | None, end: str | None) -> bool:
    """Whether the time-layout file ``stem`` (YYYY, YYYYMM, all, undated) may hold days of
    [start, end] (YYYYMMDD, either open)."""
    if not stem.isdigit():
        return True
    n = len(stem)
    return (start is None or stem >= start[:n]) and (end is None or stem <= end[:n])


def _holds_subject(path: Path, wanted: set[str]) -> bool:
    """Whether the per-subject file ``path`` (<subject>, <subject>_<year>) is of ``wanted``."""
    return path.stem in wanted or path.stem.rsplit("_", 1)[0] in wanted


def _without(ranges: list[tuple[str, str]], lo: str, hi: str) -> list[tuple[str, str]]:
    """``ranges`` less the days of [lo, hi]."""
    rest = []
    for first, last in ranges:
        if first < lo:
            rest.append((first, min(last, shift_day(lo, -1))))
        if last > hi:
            rest.append((max(first, shift_day(hi, 1)), last))
    return [r for r in rest if r[0] <= r[1]]


def missing_ranges(start: str, end: str, *covered: tuple[str, str]) -> list[tuple[str, str]]:
    """The parts of [start, end] outside every covered range, in day order."""
    gaps = [(start, end)] if start <= end else []
    for lo, hi in covered:
        gaps = [(a, b) for first, last in gaps for a, b in _without([(first, last)], lo, hi)]
    return gaps


def _file_days(partition: str | None, stem: str) -> tuple[str | None, str | None, str | None]:
    """(subject, first day, last day) of what the file ``stem`` holds under ``partition``;
    None for every subject, or for every day."""
    if partition == "subject":
        return stem, None, None
    if partition == "subject_year":
        subject, year = stem.rsplit("_", 1)
        return subject, f"{year}0101", f"{year}1231"
    if partition == "year" and stem.isdigit():
        return None, f"{stem}0101", f"{stem}1231"
    if partition == "month" and stem.isdigit():
        days = calendar.monthrange(int(stem[:4]), int(stem[4:]))[1]
        return None, f"{stem}01", f"{stem}{days:02d}"
    return None, None, None


def _pieces(partition: str | None, subject: str, lo: str,
            hi: str) -> list[tuple[str | None, str, str]]:
    """[lo, hi] of ``subject`` split by the file (stem) that holds each part under
    ``partition``; None for a part whose file a market-wide key cannot tell (``*`` in a
    per-subject layout)."""
    if partition in ("subject", "subject_year") and subject == ALL_SUBJECTS:
        return [(None, lo, hi)]
    if partition == "subject":
        return [(subject, lo, hi)]
    if partition is None:
        return [("all", lo, hi)]
    pieces = []
    for year in range(int(lo[:4]), int(hi[:4]) + 1):
        first, last = max(lo, f"{year}0101"), min(hi, f"{year}1231")
        if partition == "subject_year":
            pieces.append((f"{subject}_{year}", first, last))
        elif partition == "year":
            pieces.append((str(year), first, last))
        else:  # month
            for month in range(int(first[4:6]), int(last[4:6]) + 1):
                stem = f"{year}{month:02d}"
                end = calendar.monthrange(year, month)[1]
                pieces.append((stem, max(first, f"{stem}01"), min(last, f"{stem}{end:02d}")))
    return pieces


def _date_span(meta: pq.FileMetaData, date_field: str | None) -> tuple[str, str] | None:
    """The first and last value of the date column, from the row groups' statistics."""
    names = meta.schema.names
    if date_field not in names:
        return None
    stats = [meta.row_group(g).column(names.index(date_field)).statistics
             for g in range(meta.num_row_groups)]
    if not stats or any(s is None or not s.has_min_max for s in stats):
        return None
    return str(min(s.min for s in stats)), str(max(s.max for s in stats))


def _join_ranges(ranges: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Day ranges as sorted disjoint ranges, those that overlap or touch made one."""
    joined: list[tuple[str, str]] = []
    for lo, hi in sorted(ranges):
        if joined and lo <= shift_day(joined[-1][1], 1):
            joined[-1] = (joined[-1][0], max(joined[-1][1], hi))
        else:
            joined.append((lo, hi))
    return joined


class RawStore:
    def __init__(self, raw_dir: Path):
        self.raw_dir = Path(raw_dir)

    def table_dir(self, name: str) -> Path:
        return self.raw_dir / name

    def _parquet_files(self, name: str) -> list[Path]:
        folder = self.table_dir(name)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.parquet") if TMP_MARK not in p.name)

    def files(self, name: str) -> list[Path]:
        """The files that hold the table (not those an unfinished migration left beside them)."""
        periods = self.partition(CATALOGUE[name]) in _PERIOD_LAYOUTS
        return [p for p in self._parquet_files(name)
                if bool(_PERIOD_FILE.match(p.stem)) == periods]

    def has(self, name: str) -> bool:
        return bool(self.files(name))

    def remove_temporaries(self) -> int:
        """Delete temp files left by a killed writer; call only while holding the data lock."""
        return remove_temporaries(self.raw_dir)

    # -- layouts ----------------------------------------------------------------------------

    def partition(self, iface: Interface) -> str | None:
        """How the table's files are split now: its time layout once migrated, else the
        catalogue's ``partition``."""
        marker = self.table_dir(iface.name) / _LAYOUT
        if not marker.exists():
            return iface.partition
        try:
            partition = json.loads(marker.read_text(encoding="utf-8"))["partition"]
        except (ValueError, KeyError, TypeError) as exc:
            raise damaged(marker, f"not a layout marker: {_reason(exc)}") from None
        if partition not in (iface.partition, iface.market_partition):
            raise damaged(marker, f"unknown layout {partition!r}")
        return partition

    def time_layout(self, iface: Interface) -> bool:
        """Whether the table's files each hold a period of every subject (or all of it)."""
        return self.partition(iface) in _PERIOD_LAYOUTS

    def period_of(self, iface: Interface, day: str) -> str | None:
        """The file that holds the rows of YYYYMMDD ``day`` in a time layout; None when the
        table is split by subject."""
        partition = self.partition(iface)
        if partition not in _PERIOD_LAYOUTS:
            return None
        return {"year": day[:4], "month": day[:6]}.get(partition, "all")

    def fit_layout(self, iface: Interface, subjects: int) -> bool:
        """Move the table to its time layout before it is to hold ``subjects`` subjects,
        when that is more than MARKET_SCALE; returns whether it moved now."""
        if iface.market_partition is None or subjects <= MARKET_SCALE or self.time_layout(iface):
            return False
        return self.migrate(iface.name)

    def migrate(self, name: str) -> bool:
        """Move a per-subject table to its time layout (see the module notes); idempotent.
        Call only while holding the data lock. Returns whether it moved the rows now."""
        iface = CATALOGUE[name]
        target = iface.market_partition
        if target is None:
            raise ValueError(f"{name} has no time layout to move to")
        folder = self.table_dir(name)
        marker = folder / _LAYOUT
        moved = not marker.exists()
        if moved:
            for path in self._parquet_files(name):
                if _PERIOD_FILE.match(path.stem):  # an unfinished migration's: redone below
                    path.unlink()
            batch, rows = [], 0
            for path in self.files(name):
                batch.append(self._load(path, iface))
                rows += len(batch[-1])
                if rows >= MIGRATION_BATCH_ROWS:
                    self._merge(iface, conform(pd.concat(batch, ignore_index=True), iface), target)
                    batch, rows = [], 0
            if batch:
                self._merge(iface, conform(pd.concat(batch, ignore_index=True), iface), target)
            atomic_write_text(marker, json.dumps({"partition": target}) + "\n")
        for path in self._parquet_files(name):
            if not _PERIOD_FILE.match(path.stem):
                path.unlink()
        _fsync(folder)
        return moved

    def resume_migrations(self) -> list[str]:
        """Finish the migrations a kill interrupted; call only while holding the data lock.
        Returns the tables finished."""
        finished = []
        for iface in INTERFACES:
            files = self._parquet_files(iface.name)
            periods = sum(bool(_PERIOD_FILE.match(p.stem)) for p in files)
            migrated = (self.table_dir(iface.name) / _LAYOUT).exists()
            if iface.market_partition and (periods < len(files) if migrated else periods):
                self.migrate(iface.name)
                finished.append(iface.name)
        return finished

    # -- writing ----------------------------------------------------------------------------

    def _load(self, path: Path, iface: Interface) -> pd.DataFrame | None:
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise damaged(path, _reason(exc)) from None
        return conform(table.to_pandas(), iface)

    @staticmethod
    def _write(frame: pd.DataFrame, path: Path) -> None:
        atomic_write_parquet(frame, path, row_group_size=ROW_GROUP_ROWS)

    def upsert(self, iface: Interface, frame: pd.DataFrame) -> UpsertResult:
        """Insert new keys, replace rows whose key exists; write only partitions that change."""
        if frame.empty:
            return UpsertResult()
        missing = [k for k in iface.keys if k not in frame.columns]
        if missing:
            raise ValueError(f"{iface.name} reply lacks key column(s) {', '.join(missing)}")
        frame = conform(frame, iface)
        frame, quarantined = self._quarantine(iface, frame)
        frame = frame.drop_duplicates(list(iface.keys), keep="last")
        result = self._merge(iface, frame, self.partition(iface)) if len(frame) else UpsertResult()
        result.quarantined = quarantined
        return result

    @property
    def quarantine_dir(self) -> Path:
        return self.raw_dir / QUARANTINE_DIR

    def quarantine_file(self, name: str) -> Path:
        return self.quarantine_dir / f"{name}.parquet"

    def quarantined(self, name: str) -> pd.DataFrame:
        """The rows of table ``name`` set aside on arrival, each with its ``reason``."""
        iface = CATALOGUE[name]
        rows = self._load(self.quarantine_file(name), iface)
        return conform(pd.DataFrame(columns=[*iface.keys, "reason"]), iface) if rows is None else rows

    def _quarantine(self, iface: Interface, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
        """The bars of ``frame`` that can be prices; the others go to the table's quarantine
        file with their reason (kept for a look by hand), described as "<subject> <day>
        (<reason>)"."""
        if iface.name not in BAR_TABLES or not any(c in frame.columns for c in PRICE_COLUMNS):
            return frame, []
        reason = self._not_prices(iface, frame)
        bad = reason.notna().to_numpy()
        if not bad.any():
            return frame, []
        rows = frame[bad].assign(reason=reason[bad])
        path = self.quarantine_file(iface.name)
        kept = self._load(path, iface)
        atomic_write_parquet(conform(pd.concat([kept, rows], ignore_index=True), iface)
                             .drop_duplicates(), path)
        where = rows[iface.subject_param] + " " + rows[iface.date_field] + " (" + rows["reason"] + ")"
        return frame[~bad].reset_index(drop=True), list(where)

    def _not_prices(self, iface: Interface, frame: pd.DataFrame) -> pd.Series:
        """Why each bar of ``frame`` cannot be a price (the first reason found), NA where it can."""
        def column(name: str) -> pd.Series:
            if name not in frame.columns:
                return pd.Series(np.nan, index=frame.index)
            return pd.to_numeric(frame[name], errors="coerce").astype("float64")

        price = {c: column(c) for c in PRICE_COLUMNS}
        low, high = price["low"], price["high"]
        values = pd.DataFrame({c: v for c, v in price.items() if c in frame.columns})
        keys = list(iface.keys)
        conflicting = frame.duplicated(keys, keep=False)
        if conflicting.any():
            distinct = frame[conflicting].drop_duplicates()
            disagree = distinct.loc[distinct.duplicated(keys, keep=False), keys]
            conflicting &= pd.MultiIndex.from_frame(frame[keys]).isin(
                pd.MultiIndex.from_frame(disagree))
        checks = [
            (conflicting, "rows of one key that disagree"),
            (~np.isfinite(values).all(axis=1), "NaN/inf price"),
            ((values <= 0).any(axis=1), "price <= 0"),
            (high < low, "high < low"),
            (((price["open"] < low) | (price["open"] > high)
              | (price["close"] < low) | (price["close"] > high)), "open or close outside low..high"),
            ((pd.DataFrame({c: column(c) for c in VOLUME_COLUMNS}) < 0).any(axis=1),
             "negative volume"),
        ]
        if iface.subject == "stock":
            checks.append((self._absurd_rise(frame, high, column("pre_close")),
                           f"high past {ABSURD_MULTIPLE}x the limit price"))
        reason = pd.Series(pd.NA, index=frame.index, dtype="string")
        for failed, why in reversed(checks):  # the first check's reason wins
            reason = reason.mask(failed.to_numpy(), why)
        return reason

    def _absurd_rise(self, frame: pd.DataFrame, high: pd.Series, pre_close: pd.Series) -> pd.Series:
        """Bars whose high lies past ABSURD_MULTIPLE times the limit price, listing days
        (stock_basic's list_date, where stored) aside."""
        code, day = frame["ts_code"].astype(str), frame["trade_date"].astype(str)
        limit = pd.Series(0.10, index=frame.index)
        limit[code.str.startswith("688")
              | (code.str[:3].isin(["300", "301"]) & (day >= CHINEXT_20PCT_FROM))] = 0.20
        limit[code.str.endswith(".BJ")] = 0.30
        rise = (pre_close > 0) & (high > ABSURD_MULTIPLE * pre_close * (1 + limit))
        if rise.any() and self.has("stock_basic"):
            basic = self.read("stock_basic")
            if "list_date" in basic:
                listed = code.map(dict(zip(basic["ts_code"], basic["list_date"])))
                rise &= listed.ne(day).fillna(True).astype(bool)
        return rise

    def _merge(self, iface: Interface, frame: pd.DataFrame, partition: str | None) -> UpsertResult:
        """Upsert ``frame`` (conformed, one row per key) into the files of ``partition``."""
        result = UpsertResult()
        keys = list(iface.keys)
        folder = self.table_dir(iface.name)
        for label, part in frame.groupby(partition_labels(partition, iface, frame), sort=True):
            path = folder / f"{label}.parquet"
            old = self._load(path, iface)
            if old is None or old.empty:
                merged, before = part, 0
            else:
                merged, before = pd.concat([old, part], ignore_index=True), len(old)
            merged = conform(merged, iface).drop_duplicates(keys, keep="last")
            merged = merged.sort_values(keys, kind="stable").reset_index(drop=True)
            if old is not None and merged.equals(old):
                continue
            added = len(merged) - before
            result += UpsertResult(added=added, updated=len(part) - added)
            self._write(merged, path)
        return result

    def replace_subjects(self, iface: Interface, subjects: list[str],
                         frame: pd.DataFrame) -> UpsertResult:
        """Rewrite every row of ``subjects`` in a derived table whole (each row depends on
        all of its subject's); write only the files that change."""
        new = conform(frame, iface)
        labels = partition_labels(self.partition(iface), iface, new)
        folder = self.table_dir(iface.name)
        wanted = set(subjects)
        periods = self.time_layout(iface)  # then any file may hold old rows of theirs
        paths = {folder / f"{label}.parquet" for label in labels.unique()}
        paths.update(p for p in self.files(iface.name) if periods or _holds_subject(p, wanted))
        result = UpsertResult()
        for path in sorted(paths):
            old = self._load(path, iface)
            kept = None if old is None else old[~old[iface.subject_param].isin(wanted)]
            part = new[labels == path.stem]
            merged = conform(pd.concat([kept, part], ignore_index=True), iface)
            merged = merged.sort_values(list(iface.keys), kind="stable").reset_index(drop=True)
            if old is not None and merged.equals(old):
                continue
            before = 0 if old is None else len(old) - len(kept)
            result += UpsertResult(added=max(len(part) - before, 0),
                                   updated=min(len(part), before))
            if merged.empty:
                path.unlink()
                _fsync(folder)
            else:
                self._write(merged, path)
        return result

    # -- reading ----------------------------------------------------------------------------

    def read(self, name: str, subjects: list[str] | None = None, start: str | None = None,
             end: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The stored table (optionally some subjects, a YYYYMMDD day range, some columns),
        in key order.

        Raises MissingInputError naming ``stockpred fetch`` when nothing is stored.
        """
        iface = CATALOGUE[name]
        paths = self.files(name)
        if not paths:
            raise MissingInputError(f"no {name} data under {self.table_dir(name)}: "
                                    f"run `stockpred fetch` first")
        periods = self.time_layout(iface)
        if periods:
            paths = [p for p in paths if _period_overlaps(p.stem, start, end)]
        elif subjects is not None and iface.partition in ("subject", "subject_year"):
            paths = [p for p in paths if _holds_subject(p, set(subjects))]
        need = None if columns is None else list(dict.fromkeys(
            [*columns, *iface.keys] + ([iface.date_field] if iface.date_field else [])))
        lo, hi = day_bounds(iface, start, end)
        frames = [self._scan(p, iface, need, subjects, lo, hi) for p in paths]
        frames = [f for f in frames if len(f)] or frames[:1]
        if not frames:
            return conform(pd.DataFrame(columns=list(iface.keys)), iface)
        table = conform(pd.concat(frames, ignore_index=True), iface)
        if periods and len(frames) > 1:
            table = table.sort_values(list(iface.keys), kind="stable")
        if columns is not None:
            table = table[[c for c in columns if c in table.columns]]
        return table.reset_index(drop=True)

    @staticmethod
    def _scan(path: Path, iface: Interface, columns: list[str] | None,
              subjects: list[str] | None, lo: str | None, hi: str | None) -> pd.DataFrame:
        try:
            return RawStore._scan_file(path, iface, columns, subjects, lo, hi)
        except (pa.ArrowException, OSError) as exc:
            raise damaged(path, _reason(exc)) from None

    @staticmethod
    def _scan_file(path: Path, iface: Interface, columns: list[str] | None,
                   subjects: list[str] | None, lo: str | None, hi: str | None) -> pd.DataFrame:
        """One file's rows of ``subjects`` dated ``lo`` to ``hi``, reading only the row
        groups whose statistics admit them."""
        file = pq.ParquetFile(path)
        names = file.metadata.schema.names
        wanted = None
        if subjects is not None and iface.subject_param in names:
            wanted = (iface.subject_param, sorted(subjects))
        dated = iface.date_field if iface.date_field in names and (lo or hi) else None

        def admits(group: int) -> bool:
            meta = file.metadata.row_group(group)
            if wanted:
                stats = meta.column(names.index(wanted[0])).statistics
                if stats is not None and stats.has_min_max:
                    first = bisect_left(wanted[1], stats.min)
                    if first == len(wanted[1]) or wanted[1][first] > stats.max:
                        return False
            if dated:
                stats = meta.column(names.index(dated)).statistics
                if stats is not None and stats.has_min_max:
                    return (lo is None or stats.max >= lo) and (hi is None or stats.min <= hi)
            return True

        read = None if columns is None else [
            c for c in dict.fromkeys([*columns, *([wanted[0]] if wanted else []),
                                      *([dated] if dated else [])]) if c in names]
        table = file.read_row_groups([g for g in range(file.metadata.num_row_groups)
                                      if admits(g)], columns=read)
        where = [pc.field(wanted[0]).isin(wanted[1])] if wanted else []
        where += [pc.field(dated) >= lo] if dated and lo else []
        where += [pc.field(dated) <= hi] if dated and hi else []
        return (table.filter(reduce(operator.and_, where)) if where else table).to_pandas()

    # -- coverage ledger --------------------------------------------------------------------

    def coverage(self, name: str) -> dict[str, list[tuple[str, str]]]:
        """The YYYYMMDD ranges asked for each subject: sorted, disjoint, not touching."""
        path = self.table_dir(name) / _COVERAGE
        if not path.exists():
            return {}
        try:
            ledger = json.loads(path.read_text(encoding="utf-8"))
            # a ledger written before subjects could have several ranges holds one [lo, hi] each
            return {k: [tuple(v)] if isinstance(v[0], str) else [tuple(r) for r in v]
                    for k, v in ledger.items()}
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise damaged(path, f"not a coverage ledger: {_reason(exc)}") from None

    def record_coverage(self, name: str, asked: Iterable[tuple[str, str, str]]) -> None:
        """Add (subject, first, last) asked-for YYYYMMDD ranges to the ledger."""
        added: dict[str, list[tuple[str, str]]] = {}
        for subject, lo, hi in asked:
            added.setdefault(subject, []).append((lo, hi))
        if not added:
            return
        ledger = self.coverage(name)
        changed = False
        for subject, ranges in added.items():
            joined = _join_ranges([*ledger.get(subject, []), *ranges])
            changed |= joined != ledger.get(subject)
            ledger[subject] = joined
        if changed:
            self._write_ledger(name, ledger)

    def _write_ledger(self, name: str, ledger: dict[str, list[tuple[str, str]]]) -> None:
        atomic_write_text(self.table_dir(name) / _COVERAGE, json.dumps(
            {k: [list(r) for r in v] for k, v in sorted(ledger.items()) if v}, indent=1))

    def forget(self, name: str, subject: str | None, lo: str | None, hi: str | None) -> None:
        """Take [lo, hi] (None: every day) of ``subject`` (None: every subject) out of the
        ledger, so the next fetch asks for those days again."""
        ledger = self.coverage(name)
        kept = dict(ledger)
        for key, ranges in ledger.items():
            if subject is None or key == subject:
                kept[key] = [] if lo is None else _without(ranges, lo, hi)
        if kept != ledger:
            self._write_ledger(name, kept)

    # -- the store's source -------------------------------------------------------------------

    @property
    def source_file(self) -> Path:
        return self.raw_dir / _SOURCE

    def source(self) -> str | None:
        """Where the stored rows come from ("tushare", "sample"), as the first fetch that
        wrote them recorded it; None when unknown (an empty store, or an older one)."""
        try:
            return json.loads(self.source_file.read_text(encoding="utf-8"))["source"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError):
            return None  # rewritten by the next fetch that writes; the manifest tells until then

    def set_source(self, source: str) -> None:
        atomic_write_text(self.source_file, json.dumps({"source": source}) + "\n")

    # -- damage -------------------------------------------------------------------------------

    def file_rows(self, name: str) -> dict[str, int]:
        """The rows of each file of the table, from the parquet footers."""
        return {p.name: pq.ParquetFile(p).metadata.num_rows for p in self.files(name)}

    def check(self, name: str, recorded: dict | None = None,
              thorough: bool = False) -> list[Damage]:
        """The table's damaged files: each unreadable footer (``thorough``: any unreadable
        row), and, given what the last fetch ``recorded`` (its "partition" and "file_rows"),
        each file it listed that is gone or holds fewer rows now. Costs a footer read a file."""
        iface = CATALOGUE[name]
        folder = self.table_dir(name)
        try:
            partition = self.partition(iface)
        except DamagedStoreError:  # what its files hold is unknown until it is rewritten
            return [Damage(name, folder / _LAYOUT, "not a layout marker")]
        found = []
        rows, spans = {}, {}
        for path in self.files(name):
            try:
                meta = pq.ParquetFile(path).metadata
                rows[path.name] = meta.num_rows
                spans[path.stem] = _date_span(meta, iface.date_field)
                if thorough:
                    pq.read_table(path)
            except (pa.ArrowException, OSError) as exc:
                found.append(Damage(name, path, _reason(exc)))
        if recorded and recorded.get("partition") == partition and iface.queryable:
            for file, stored in recorded.get("file_rows", {}).items():
                if file in rows and rows[file] < stored:
                    found.append(Damage(name, folder / file, f"{rows[file]} rows; the last "
                                                             f"fetch stored {stored}"))
                elif not (folder / file).exists() and stored:
                    found.append(Damage(name, folder / file, f"missing; the last fetch "
                                                             f"stored {stored} rows in it"))
        if (folder / _COVERAGE).exists():
            try:
                ledger = self.coverage(name)
            except DamagedStoreError:
                return [*found, Damage(name, folder / _COVERAGE, "not a coverage ledger")]
            named = {d.path for d in found}
            found += [d for d in self._against_ledger(iface, partition, ledger, spans)
                      if d.path not in named]
        return found

    def _against_ledger(self, iface: Interface, partition: str | None,
                        ledger: dict[str, list[tuple[str, str]]],
                        spans: dict[str, tuple[str, str] | None]) -> list[Damage]:
        """The files the ledger says must hold rows but are gone, and the time-layout files
        that end short of the market's days it says were asked: what a lost or stale
        manifest no longer tells. Rows are due on each open day asked where the catalogue
        expects them (Interface.rows_expected), less the ranges that came back empty
        (UNCONFIRMED); only the market's rows (``*``) fill every open day, so only they
        bound a file's first and last day. Costs the footers already read and the calendar."""
        keys = [k for k in ledger if not k.startswith(UNCONFIRMED)
                and iface.rows_expected(k == ALL_SUBJECTS)]
        if not keys or not self.has("trade_cal"):
            return []
        try:
            cal = self.read("trade_cal", columns=["cal_date", "is_open"])
        except DamagedStoreError:  # named by trade_cal's own check
            return []
        days = sorted(cal.loc[cal["is_open"] == 1, "cal_date"])
        due: dict[str, list] = {}  # file stem -> [first day due, last day due, bounded]
        for key in keys:
            empty = [*ledger.get(UNCONFIRMED + key, []),
                     *ledger.get(UNCONFIRMED + ALL_SUBJECTS, [])]
            for lo, hi in ledger[key]:
                for a, b in missing_ranges(lo, hi, *empty):
                    for stem, first, last in _pieces(partition, key, a, b):
                        i, j = bisect_left(days, first), bisect_right(days, last)
                        if i == j or stem is None:
                            continue
                        was = due.get(stem, [days[i], days[j - 1], False])
                        due[stem] = [min(was[0], days[i]), max(was[1], days[j - 1]),
                                     was[2] or key == ALL_SUBJECTS]
        folder = self.table_dir(iface.name)
        found = []
        for stem, (first, last, bounded) in sorted(due.items()):
            asked = f"the ledger says {first}..{last} were asked"
            if stem not in spans:
                found.append(Damage(iface.name, folder / f"{stem}.parquet", f"missing; {asked}"))
            elif bounded and spans[stem] and (spans[stem][0] > first or spans[stem][1] < last):
                held = "..".join(spans[stem])
                found.append(Damage(iface.name, folder / f"{stem}.parquet",
                                    f"holds {held} only; {asked}"))
        return found

    def repair(self, damage: list[Damage]) -> list[str]:
        """Move each damaged file aside under raw/_damaged/<time>/<table>/ and take what it
        held out of the ledger, so the next fetch asks for it again; a damaged ledger is
        moved aside whole (its table is then asked again from the start). Call only while
        holding the data lock. Returns a line per file."""
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        aside = self.raw_dir / DAMAGED_DIR / stamp
        n = 1
        while aside.exists():
            aside, n = self.raw_dir / DAMAGED_DIR / f"{stamp}-{n}", n + 1
        lines = []
        # the marker decides what a file holds, and a ledger set aside need not be edited
        order = {_LAYOUT: 0, _COVERAGE: 1}
        for item in sorted(damage, key=lambda d: order.get(d.path.name, 2)):
            iface = CATALOGUE[item.table]
            moved = ""
            if item.path.exists():
                target = aside / item.table / item.path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(item.path, target)
                moved = f"; moved to {target}"
            if item.path.name == _LAYOUT:
                self._rewrite_layout(iface)
            elif item.path.name != _COVERAGE:
                self.forget(item.table, *_file_days(self.partition(iface), item.path.stem))
            lines.append(f"repaired {item}{moved}: asked again")
        return lines

    def _rewrite_layout(self, iface: Interface) -> None:
        """Write the layout marker again after a damaged one was set aside: period files
        and no subject files mean the table had moved to its time layout. Without the
        marker the next fetch would take those files for an unfinished migration's."""
        files = self._parquet_files(iface.name)
        if files and all(_PERIOD_FILE.match(p.stem) for p in files) and iface.market_partition:
            atomic_write_text(self.table_dir(iface.name) / _LAYOUT,
                              json.dumps({"partition": iface.market_partition}) + "\n")
