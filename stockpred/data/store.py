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
file, never a torn one. Beside the data, ``_coverage.json`` records which date ranges
have been asked of tushare for each subject (``*``: every row of the market on those
days), so a re-run asks only for what it has not asked before.
"""

from __future__ import annotations

import json
import operator
import os
import re
import shutil
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpred.data.catalogue import CATALOGUE, INTERFACES, Interface
from stockpred.errors import MissingInputError

ALL_SUBJECTS = "*"
TMP_MARK = ".tmp-"
_COVERAGE = "_coverage.json"
_LAYOUT = "_layout.json"
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


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so that readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_save(path: Path, write) -> None:
    """Replace ``path`` with what ``write(temporary_path)`` writes (a library's own saver,
    such as Keras' ``model.save``), flushed to disk, so a kill never leaves a torn file.
    The temporary keeps the suffix, which some savers insist on (".keras")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")
    write(tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


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

    def __iadd__(self, other: "UpsertResult") -> "UpsertResult":
        self.added += other.added
        self.updated += other.updated
        return self


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
        if marker.exists():
            return json.loads(marker.read_text(encoding="utf-8"))["partition"]
        return iface.partition

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
        _fsync_dir(folder)
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
        return conform(pq.read_table(path).to_pandas(), iface) if path.exists() else None

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
        frame = conform(frame, iface).drop_duplicates(list(iface.keys), keep="last")
        return self._merge(iface, frame, self.partition(iface))

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
                _fsync_dir(folder)
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
        ledger = json.loads(path.read_text(encoding="utf-8"))
        # a ledger written before subjects could have several ranges holds one [lo, hi] each
        return {k: [tuple(v)] if isinstance(v[0], str) else [tuple(r) for r in v]
                for k, v in ledger.items()}

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
            atomic_write_text(self.table_dir(name) / _COVERAGE, json.dumps(
                {k: [list(r) for r in v] for k, v in sorted(ledger.items())}, indent=1))
