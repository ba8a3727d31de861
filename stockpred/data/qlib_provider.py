"""A qlib data provider (qlib's binary layout) written from stored daily bars.

Under the provider folder:

- ``calendars/day.txt``: the trading days, ``YYYY-MM-DD`` a line;
- ``instruments/<universe>.txt``: the point-in-time universe, one line per contiguous run
  of member days, ``CODE<TAB>start<TAB>end`` (qlib's own layout), and ``instruments/all.txt``:
  each exported stock from its first to its last bar. Codes are qlib's: ``SH600000`` in the
  instruments files, ``sh600000`` as the folder;
- ``features/<code>/<field>.day.bin``: float32 little-endian; the first value is the calendar
  index of the stock's first bar, then one value per calendar day up to its last bar, NaN on
  the days it did not trade (qlib's dump_bin layout);
- ``stockpred.json``: what the files hold, which lets the next export append instead of
  rewriting (qlib reads only the three folders).

Fields: open, high, low, close (the stored adjusted prices, as they are), volume (``vol``,
lots, raw: see below), factor (1: the prices are already adjusted) and change
(close / pre_close - 1, what qlib's exchange reads for the daily limits).

VWAP is left out, on purpose. tushare's qfq bars adjust prices only: ``vol`` and ``amount``
stay raw, so ``amount / vol`` is a raw-price VWAP, and beside a qfq close its ratio moves with
every later dividend (a look-ahead leak about 50x larger than the real VWAP/close signal).
With no ``vwap.day.bin`` qlib reads ``$vwap`` as NaN, so Alpha158's VWAP0 is an all-NaN column
(LightGBM ignores it); stockpred's factors have no VWAP0 for the same reason. Volume stays
raw lots: Alpha158's volume features are ratios of volumes over at most 60 days, which a bonus
issue inside the window moves for both sides alike (stockpred's factors read the same raw
volume).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.data.store import TMP_MARK, atomic_write_text
from stockpred.errors import InputError

FIELDS = ("open", "high", "low", "close", "volume", "factor", "change")
BAR_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol"]
RECORD = "stockpred.json"
# the layout this module writes; another one in a provider's record means a full export
LAYOUT = {"version": 1, "fields": list(FIELDS)}


def qlib_code(ts_code: str) -> str:
    """600000.SH -> SH600000 (qlib's instrument name; its folder is the lower case)."""
    number, exchange = ts_code.split(".")
    return f"{exchange.upper()}{number}"


def ts_code_of(code: str) -> str:
    """SH600000 (or sh600000) -> 600000.SH."""
    return f"{code[2:]}.{code[:2].upper()}"


def _dash(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def membership_intervals(members: pd.DataFrame, calendar: np.ndarray) -> pd.DataFrame:
    """(code, start, end) per contiguous run of member days on ``calendar``."""
    position = pd.Index(calendar).get_indexer(members["trade_date"].astype(str))
    frame = pd.DataFrame({"ts_code": members["ts_code"].to_numpy(str), "pos": position})
    frame = frame.sort_values(["ts_code", "pos"], kind="stable")
    new_run = (frame["ts_code"] != frame["ts_code"].shift()) | (frame["pos"].diff() != 1)
    frame["run"] = new_run.cumsum()
    runs = frame.groupby("run").agg(ts_code=("ts_code", "first"), start=("pos", "min"),
                                    end=("pos", "max"))
    return pd.DataFrame({"code": [qlib_code(c) for c in runs["ts_code"]],
                         "start": [_dash(calendar[p]) for p in runs["start"]],
                         "end": [_dash(calendar[p]) for p in runs["end"]]})


def _instruments_text(intervals: pd.DataFrame) -> str:
    return "".join(f"{c}\t{s}\t{e}\n" for c, s, e in
                   zip(intervals["code"], intervals["start"], intervals["end"]))


def _calendar_text(calendar: np.ndarray) -> str:
    return "".join(f"{_dash(d)}\n" for d in calendar)


@dataclass
class StockBins:
    """One stock's field files: ``values[i]`` is FIELDS[i] from calendar day ``first`` on."""

    ts_code: str
    first: int
    values: np.ndarray  # float32, (len(FIELDS), days)

    @property
    def folder(self) -> str:
        return qlib_code(self.ts_code).lower()

    def file_bytes(self, field: int, start: int = 0) -> bytes:
        """The bytes of FIELDS[field]'s file from its value ``start`` on (0: with the header)."""
        tail = self.values[field, start:].astype("<f4").tobytes()
        return np.float32(self.first).astype("<f4").tobytes() + tail if start == 0 else tail

    def digest(self, days: int) -> str:
        """A hash of what the files hold when they end after ``days`` values."""
        h = hashlib.sha256()
        for field in range(len(FIELDS)):
            h.update(StockBins(self.ts_code, self.first, self.values[:, :days]).file_bytes(field))
        return h.hexdigest()


def stock_bins(bars: pd.DataFrame, calendar: np.ndarray) -> Iterator[StockBins]:
    """Each stock's fields on the calendar days from its first bar to its last, in code order."""
    day = pd.Index(calendar).get_indexer(bars["trade_date"].astype(str))
    if (day < 0).any():
        raise ValueError("bars on a day the calendar does not hold")
    close, pre_close = bars["close"].to_numpy(np.float64), bars["pre_close"].to_numpy(np.float64)
    values = np.stack([bars["open"].to_numpy(np.float64), bars["high"].to_numpy(np.float64),
                       bars["low"].to_numpy(np.float64), close,
                       bars["vol"].to_numpy(np.float64), np.ones(len(bars)),
                       close / pre_close - 1])
    which, names = pd.factorize(bars["ts_code"].astype(str), sort=True)
    order = np.lexsort((day, which))
    which, day, values = which[order], day[order], values[:, order]
    starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]]) if len(which) else []
    stops = np.r_[starts[1:], len(which)]
    for a, b in zip(starts, stops):
        first, last = int(day[a]), int(day[b - 1])
        series = np.full((len(FIELDS), last - first + 1), np.nan, dtype=np.float32)
        series[:, day[a:b] - first] = values[:, a:b]
        yield StockBins(str(names[which[a]]), first, series)


@dataclass
class ProviderReport:
    out: Path
    universe: str
    days: int
    through: str | None
    stocks: int
    mode: str  # "full" or "incremental"
    rewritten: int  # stocks whose files were written whole
    appended: int  # stocks whose files gained days

    def summary(self) -> list[str]:
        span = f"{self.days} days to {_dash(self.through)}" if self.through else "no days"
        work = (f"rewrote {self.rewritten} stocks, appended to {self.appended}"
                if self.mode == "incremental" else "written whole")
        return [f"qlib provider of {self.universe}: {span}, {self.stocks} stocks; "
                f"{self.mode}, {work} -> {self.out}"]


def _write_stock(stock: StockBins, folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, name in enumerate(FIELDS):
        (folder / f"{name}.day.bin").write_bytes(stock.file_bytes(i))


def _append(stock: StockBins, folder: Path, kept: int) -> None:
    """Write the values after the first ``kept`` over whatever follows them in the files
    (a stopped run's tail included), in place: the bytes a reader of the current calendar
    reads do not change."""
    for i, name in enumerate(FIELDS):
        with open(folder / f"{name}.day.bin", "r+b") as f:
            f.seek(4 * (1 + kept))
            f.write(stock.file_bytes(i, kept))
            f.truncate()


def _record(universe: str, source: dict, calendar: np.ndarray, stocks: dict) -> str:
    return json.dumps({**LAYOUT, "universe": universe, **source, "days": len(calendar),
                       "calendar_sha256": hashlib.sha256(_calendar_text(calendar).encode())
                       .hexdigest(), "stocks": stocks}, indent=1, sort_keys=True) + "\n"


def _previous(out: Path, calendar: np.ndarray) -> dict | None:
    """The record of the provider at ``out`` when this export can update it in place: same
    layout and the calendar it was written on is the start of this one. None: a full
    export. A folder with files but no record is refused, never overwritten."""
    if not out.exists() or not any(out.iterdir()):
        return None
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"{out} holds files but no stockpred qlib export ({RECORD}): give an "
                         f"empty or new folder") from None
    days = record.get("days", -1)
    if ({k: record.get(k) for k in LAYOUT} != LAYOUT or not 0 < days <= len(calendar)
            or hashlib.sha256(_calendar_text(calendar[:days]).encode()).hexdigest()
            != record.get("calendar_sha256")):
        return None
    return record


def write_provider(out: Path, calendar: np.ndarray, bars: pd.DataFrame,
                   members: pd.DataFrame, universe: str, source: dict) -> ProviderReport:
    """Write (or bring up to date) the qlib provider at ``out``: ``calendar`` the trading
    days (YYYYMMDD, sorted), ``bars`` the exported stocks' bars on those days, ``members``
    the universe's daily membership, ``source`` what the record says the data came from.

    The result is byte for byte what a full export of the same inputs writes. A reader
    (qlib) never reads a wrong value from it, even when this is killed part way:

    - in place, when the record says the provider was written on the start of this
      calendar. A stock whose files still hold what this export would write gets the new
      days appended past the end of the current calendar (qlib maps a file's values onto the
      calendar and reads only what a query's days need: at most a forward-looking
      expression such as ``Ref($close, -2)`` on the last days sees the true next bars);
      any other stock (new, or re-based by a forward adjustment) is written whole into a
      folder of its own and renamed in, so its fields never mix two versions (between the
      two renames the stock is absent, which qlib reads as NaN). Then the instruments, then
      the calendar, which makes the new days visible, then the record. A rerun after a
      kill appends from the record's lengths again, over the stopped run's tails;
    - else (no provider yet, another layout, or a calendar whose past changed, which moves
      every stock's positions at once) into a new folder beside ``out``, renamed in whole:
      while the old one is renamed away ``out`` is briefly absent (qlib then fails to open
      it; it cannot misread it) and a rerun after a kill there starts again.
    Files are flushed to disk once (os.sync) before anything refers to them. One stock's
    series is held at a time."""
    out = Path(out)
    for leftover in [*out.parent.glob(f"{out.name}{TMP_MARK}*"),
                     *(out / "features").glob(f"*{TMP_MARK}*")]:
        shutil.rmtree(leftover)
    previous = _previous(out, calendar)
    update = previous is not None
    target = out if update else out.with_name(f"{out.name}{TMP_MARK}{os.getpid()}")
    report = ProviderReport(out, universe, len(calendar),
                            str(calendar[-1]) if len(calendar) else None, 0,
                            "incremental" if update else "full", 0, 0)
    record, swaps = {}, []
    for stock in stock_bins(bars, calendar):
        days = stock.values.shape[1]
        record[stock.ts_code] = [stock.first, days, stock.digest(days)]
        folder = target / "features" / stock.folder
        old = previous["stocks"].get(stock.ts_code) if update else None
        if (old is not None and old[0] == stock.first and old[1] <= days and folder.is_dir()
                and stock.digest(old[1]) == old[2]):
            # a stopped run may have left a longer tail, even of days not stored any more
            if days > old[1] or any((folder / f"{name}.day.bin").stat().st_size
                                    != 4 * (1 + days) for name in FIELDS):
                _append(stock, folder, old[1])
                report.appended += 1
            continue
        if update:
            fresh = folder.with_name(f"{folder.name}{TMP_MARK}{os.getpid()}")
            _write_stock(stock, fresh)
            swaps.append((fresh, folder))
        else:
            _write_stock(stock, folder)
        report.rewritten += 1
    report.stocks = len(record)
    instruments = {f"{universe}.txt": _instruments_text(membership_intervals(members, calendar))}
    if universe != "all":
        instruments["all.txt"] = "".join(
            f"{qlib_code(code)}\t{_dash(calendar[first])}\t{_dash(calendar[first + days - 1])}\n"
            for code, (first, days, _) in record.items())
    text = _record(universe, source, calendar, record)

    if not update:
        (target / "instruments").mkdir(parents=True)
        for name, lines in instruments.items():
            (target / "instruments" / name).write_text(lines, encoding="utf-8")
        (target / "calendars").mkdir()
        (target / "calendars" / "day.txt").write_text(_calendar_text(calendar),
                                                      encoding="utf-8")
        (target / RECORD).write_text(text, encoding="utf-8")
        os.sync()
        _swap_in(target, out)
        return report
    os.sync()
    for fresh, folder in swaps:
        _swap_in(fresh, folder)
    for name, lines in instruments.items():
        atomic_write_text(out / "instruments" / name, lines)
    for stale in set((out / "instruments").glob("*.txt")) - {out / "instruments" / n
                                                            for n in instruments}:
        stale.unlink()
    atomic_write_text(out / "calendars" / "day.txt", _calendar_text(calendar))
    # stocks no instrument names any more: removed once no file refers to them
    exported = {qlib_code(code).lower() for code in record}
    for folder in (out / "features").iterdir():
        if folder.name not in exported:
            shutil.rmtree(folder)
    atomic_write_text(out / RECORD, text)
    return report


def _swap_in(new: Path, path: Path) -> None:
    """Rename the folder ``new`` to ``path``; an old ``path`` is renamed away first (a
    folder that is not empty cannot be renamed over) and removed after."""
    if not path.exists():
        os.rename(new, path)
        return
    replaced = path.with_name(f"{path.name}{TMP_MARK}replaced")
    os.rename(path, replaced)
    os.rename(new, path)
    shutil.rmtree(replaced)
