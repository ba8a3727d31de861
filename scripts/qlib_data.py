"""Convert the shared market bars (../shared/data/market) into qlib's binary data format.

    python scripts/qlib_data.py [--market DIR] [--out DIR] [--universe top800]

Writes, under ``--out`` (default ``data/peer/qlib_cn``):

- ``calendars/day.txt``: every trading day any stock traded, ``YYYY-MM-DD`` a line;
- ``instruments/all.txt`` (each stock from its first to its last bar) and
  ``instruments/<universe>.txt``: the point-in-time universe of
  ``stockpred.data.universe.membership(universe_from_name(name), bars)``, one line per
  contiguous membership interval, ``CODE<TAB>start<TAB>end`` (qlib's own layout);
- ``features/<code>/<field>.day.bin``: float32 little-endian; the first value is the calendar
  index of the stock's first bar, then one value per calendar day up to its last bar, NaN on
  the days it did not trade (qlib's dump_bin layout). Codes are qlib's: ``SH600000`` in the
  instruments files, ``sh600000`` as the folder.

Fields: open, high, low, close (tushare's qfq prices, as they are), volume (``vol``, lots, raw:
see below), factor (1: the prices are already adjusted) and change (close / pre_close - 1,
what qlib's exchange reads for the daily limits).

VWAP is left out, on purpose. tushare's qfq bars adjust prices only: ``vol`` and ``amount`` stay
raw, so ``amount / vol`` is a raw-price VWAP, and beside a qfq close its ratio moves with every
later dividend (a look-ahead leak about 50x larger than the real VWAP/close signal). The raw
price (hence the adjustment factor that would turn vol into qfq shares) is not in these files,
so the volume cannot be adjusted either. With no ``vwap.day.bin`` qlib reads ``$vwap`` as NaN,
so Alpha158's VWAP0 is an all-NaN column (LightGBM ignores it); stockpred's factors have no
VWAP0 for the same reason. Volume stays raw lots: Alpha158's volume features are ratios of
volumes over at most 60 days, which a bonus issue inside the window moves for both sides alike
(stockpred's factors read the same raw volume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MARKET = ROOT.parent / "shared" / "data" / "market"
DEFAULT_OUT = ROOT / "data" / "peer" / "qlib_cn"
FIELDS = ("open", "high", "low", "close", "volume", "factor", "change")
BAR_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol",
               "amount"]


def read_market(market: Path = DEFAULT_MARKET) -> pd.DataFrame:
    """Every yearly qfq file, keys as plain str, sorted by (trade_date, ts_code)."""
    files = sorted((Path(market) / "qfq_daily").glob("*.parquet"))
    if not files:
        raise SystemExit(f"no qfq_daily/*.parquet under {market}")
    bars = pd.concat([pd.read_parquet(f, columns=BAR_COLUMNS) for f in files], ignore_index=True)
    bars = bars.astype({"ts_code": object, "trade_date": object})
    bars["ts_code"] = bars["ts_code"].astype(str)
    bars["trade_date"] = bars["trade_date"].astype(str)
    return bars.sort_values(["trade_date", "ts_code"], kind="stable").reset_index(drop=True)


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
    """(code, start, end) per contiguous run of member days (on the market calendar)."""
    position = np.searchsorted(calendar, members["trade_date"].to_numpy(str))
    frame = pd.DataFrame({"ts_code": members["ts_code"].to_numpy(str), "pos": position})
    frame = frame.sort_values(["ts_code", "pos"], kind="stable")
    new_run = (frame["ts_code"] != frame["ts_code"].shift()) | (frame["pos"].diff() != 1)
    frame["run"] = new_run.cumsum()
    runs = frame.groupby("run").agg(ts_code=("ts_code", "first"), start=("pos", "min"),
                                    end=("pos", "max"))
    return pd.DataFrame({"code": [qlib_code(c) for c in runs["ts_code"]],
                         "start": [_dash(calendar[p]) for p in runs["start"]],
                         "end": [_dash(calendar[p]) for p in runs["end"]]})


def write_instruments(path: Path, intervals: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    intervals[["code", "start", "end"]].to_csv(path, sep="\t", header=False, index=False)


def write_features(bars: pd.DataFrame, calendar: np.ndarray, out: Path) -> int:
    day = np.searchsorted(calendar, bars["trade_date"].to_numpy(str))
    values = {
        "open": bars["open"].to_numpy(np.float64), "high": bars["high"].to_numpy(np.float64),
        "low": bars["low"].to_numpy(np.float64), "close": bars["close"].to_numpy(np.float64),
        "volume": bars["vol"].to_numpy(np.float64),
        "factor": np.ones(len(bars)),
        "change": bars["close"].to_numpy(np.float64) / bars["pre_close"].to_numpy(np.float64) - 1,
    }
    codes = bars["ts_code"].to_numpy(str)
    order = np.lexsort((day, codes))
    codes, day = codes[order], day[order]
    values = {k: v[order] for k, v in values.items()}
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    stops = np.r_[starts[1:], len(codes)]
    for a, b in zip(starts, stops):
        folder = out / "features" / qlib_code(codes[a]).lower()
        folder.mkdir(parents=True, exist_ok=True)
        first, last = int(day[a]), int(day[b - 1])
        for field in FIELDS:
            series = np.full(last - first + 1, np.nan, dtype="<f4")
            series[day[a:b] - first] = values[field][a:b]
            np.r_[np.float32(first), series].astype("<f4").tofile(folder / f"{field}.day.bin")
    return len(starts)


def convert(market: Path = DEFAULT_MARKET, out: Path = DEFAULT_OUT,
            universes: tuple[str, ...] = ("top800",), bars: pd.DataFrame | None = None) -> Path:
    from stockpred.data.universe import membership, universe_from_name

    out = Path(out)
    bars = read_market(market) if bars is None else bars
    calendar = np.unique(bars["trade_date"].to_numpy(str))
    (out / "calendars").mkdir(parents=True, exist_ok=True)
    (out / "calendars" / "day.txt").write_text("".join(f"{_dash(d)}\n" for d in calendar))
    span = bars.groupby("ts_code")["trade_date"].agg(["min", "max"])
    write_instruments(out / "instruments" / "all.txt",
                      pd.DataFrame({"code": [qlib_code(c) for c in span.index],
                                    "start": [_dash(d) for d in span["min"]],
                                    "end": [_dash(d) for d in span["max"]]}))
    for name in universes:
        members = membership(universe_from_name(name), bars).members
        write_instruments(out / "instruments" / f"{name}.txt",
                          membership_intervals(members, calendar))
        members.to_parquet(out / f"members_{name}.parquet", index=False)
    stocks = write_features(bars, calendar, out)
    print(f"qlib data: {len(calendar)} days, {stocks} stocks, universes {', '.join(universes)}"
          f" -> {out}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=Path, default=DEFAULT_MARKET)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--universe", action="append", default=None,
                        help="universe names (top800, top300, all); repeatable")
    args = parser.parse_args(argv)
    convert(args.market, args.out, tuple(args.universe or ["top800"]))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
