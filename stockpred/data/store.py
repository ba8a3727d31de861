"""The raw parquet store under <data dir>/raw/<api_name>/: atomic upserts by key, one reader.

Each interface's table is split into partition files (one per stock, per year, or
per stock and year, as the catalogue says). A write goes to a temporary file in the
same folder, is flushed to disk and renamed over the old file, so a crash at any
moment leaves either the old or the new file, never a torn one. Beside the data,
``_coverage.json`` records which date range has been asked of tushare for each
subject, so a re-run asks only for what it has not asked before.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stockpred.data.catalogue import CATALOGUE, Interface
from stockpred.errors import MissingInputError

ALL_SUBJECTS = "*"
TMP_MARK = ".tmp-"
_COVERAGE = "_coverage.json"


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


def atomic_write_parquet(frame: pd.DataFrame, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
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


class RawStore:
    def __init__(self, raw_dir: Path):
        self.raw_dir = Path(raw_dir)

    def table_dir(self, name: str) -> Path:
        return self.raw_dir / name

    def files(self, name: str) -> list[Path]:
        folder = self.table_dir(name)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.parquet") if TMP_MARK not in p.name)

    def has(self, name: str) -> bool:
        return bool(self.files(name))

    def remove_temporaries(self) -> int:
        """Delete temp files left by a killed writer; call only while holding the data lock."""
        return remove_temporaries(self.raw_dir)

    # -- partitions -------------------------------------------------------------------------

    @staticmethod
    def _partition_labels(iface: Interface, frame: pd.DataFrame) -> pd.Series:
        def year():
            if iface.date_field is None:
                return pd.Series("all", index=frame.index)
            return frame[iface.date_field].str[:4].fillna("undated")

        if iface.partition == "subject":
            return frame[iface.subject_param].astype(str)
        if iface.partition == "year":
            return year()
        if iface.partition == "subject_year":
            return frame[iface.subject_param].astype(str) + "_" + year()
        return pd.Series("all", index=frame.index)

    def _read_file(self, path: Path, columns=None) -> pd.DataFrame:
        return pq.read_table(path, columns=columns).to_pandas()

    def upsert(self, iface: Interface, frame: pd.DataFrame) -> UpsertResult:
        """Insert new keys, replace rows whose key exists; write only partitions that change."""
        result = UpsertResult()
        if frame.empty:
            return result
        missing = [k for k in iface.keys if k not in frame.columns]
        if missing:
            raise ValueError(f"{iface.name} reply lacks key column(s) {', '.join(missing)}")
        frame = conform(frame, iface).drop_duplicates(list(iface.keys), keep="last")
        folder = self.table_dir(iface.name)
        for label, part in frame.groupby(self._partition_labels(iface, frame), sort=True):
            path = folder / f"{label}.parquet"
            old = conform(self._read_file(path), iface) if path.exists() else None
            if old is None or old.empty:
                merged, before = part, 0
            else:
                merged, before = pd.concat([old, part], ignore_index=True), len(old)
            merged = conform(merged, iface).drop_duplicates(list(iface.keys), keep="last")
            merged = merged.sort_values(list(iface.keys), kind="stable").reset_index(drop=True)
            if old is not None and merged.equals(old):
                continue
            added = len(merged) - before
            result += UpsertResult(added=added, updated=len(part) - added)
            atomic_write_parquet(merged, path)
        return result

    def replace_subject(self, iface: Interface, subject: str, frame: pd.DataFrame) -> UpsertResult:
        """Rewrite one subject's partition of a derived table whole (its rows depend on all)."""
        path = self.table_dir(iface.name) / f"{subject}.parquet"
        new = conform(frame, iface).sort_values(list(iface.keys), kind="stable")
        new = new.reset_index(drop=True)
        old = conform(self._read_file(path), iface) if path.exists() else None
        if old is not None and new.equals(old):
            return UpsertResult()
        atomic_write_parquet(new, path)
        before = 0 if old is None else len(old)
        return UpsertResult(added=max(len(new) - before, 0), updated=min(len(new), before))

    # -- reading ----------------------------------------------------------------------------

    def read(self, name: str, subjects: list[str] | None = None, start: str | None = None,
             end: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """The stored table (optionally some subjects, a YYYYMMDD day range, some columns).

        Raises MissingInputError naming ``stockpred fetch`` when nothing is stored.
        """
        iface = CATALOGUE[name]
        paths = self.files(name)
        if not paths:
            raise MissingInputError(f"no {name} data under {self.table_dir(name)}: "
                                    f"run `stockpred fetch` first")
        if subjects is not None and iface.partition in ("subject", "subject_year"):
            wanted = set(subjects)
            paths = [p for p in paths if p.stem.rsplit("_", 1)[0] in wanted
                     or p.stem in wanted]
        need = None if columns is None else list(dict.fromkeys(
            [*columns, *iface.keys] + ([iface.date_field] if iface.date_field else [])))
        frames = [self._read_file(p, need) for p in paths]
        if not frames:
            return conform(pd.DataFrame(columns=list(iface.keys)), iface)
        table = conform(pd.concat(frames, ignore_index=True), iface)
        if subjects is not None and iface.subject_param in table.columns:
            table = table[table[iface.subject_param].isin(subjects)]
        lo, hi = day_bounds(iface, start, end)
        if iface.date_field and lo:
            table = table[table[iface.date_field] >= lo]
        if iface.date_field and hi:
            table = table[table[iface.date_field] <= hi]
        if columns is not None:
            table = table[[c for c in columns if c in table.columns]]
        return table.reset_index(drop=True)

    # -- coverage ledger --------------------------------------------------------------------

    def coverage(self, name: str) -> dict[str, tuple[str, str]]:
        path = self.table_dir(name) / _COVERAGE
        if not path.exists():
            return {}
        return {k: tuple(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}

    def record_coverage(self, name: str, updates: dict[str, tuple[str, str]]) -> None:
        """Merge asked-for YYYYMMDD ranges into the ledger (ranges assumed to touch or overlap)."""
        if not updates:
            return
        ledger = self.coverage(name)
        for subject, (lo, hi) in updates.items():
            if subject in ledger:
                old_lo, old_hi = ledger[subject]
                lo, hi = min(lo, old_lo), max(hi, old_hi)
            ledger[subject] = (lo, hi)
        atomic_write_text(self.table_dir(name) / _COVERAGE,
                          json.dumps({k: list(v) for k, v in sorted(ledger.items())}, indent=1))
