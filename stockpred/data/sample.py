"""The real market data shipped inside the package, loaded as if tushare had sent it.

The sample is a compact copy (zstd parquet) of the tushare-shaped CSV tree in the
project's shared data folder: SSE 50 forward-adjusted bars, China Merchants Bank
(600036.SH) unadjusted bars and daily indicators, the SSE Composite and CSI 300,
Shibor, Sina news and SSE Composite 1-minute bars, all up to 2018-12-28.
``qfq_daily`` holds the SSE 50 bars exactly as ``pro_bar(adj='qfq')`` returned
them. ``trade_cal`` is not shipped: it is derived from the SSE Composite's days.
The readers of the shared data folder are here too: its CSV tree, which the sample
copies, and its market-scale bars, which are too large to ship.
"""

from __future__ import annotations

from datetime import date, timedelta
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import conform

SAMPLE_TABLES = ("stock_basic", "daily", "daily_basic", "qfq_daily", "index_daily", "shibor",
                 "news", "stk_mins")
SAMPLE_INDEX = "000016.SH"  # the sample's stock_basic is the SSE 50 list
CALENDAR_INDEX = "000001.SH"


def sample_dir() -> Path:
    return Path(str(resources.files("stockpred.data") / "sample_data"))


def read_sample(name: str) -> pd.DataFrame:
    return conform(pq.read_table(sample_dir() / f"{name}.parquet").to_pandas(), CATALOGUE[name])


def read_sample_tables() -> dict[str, pd.DataFrame]:
    """Every shipped table, by the name of the interface it is shaped as."""
    return {name: read_sample(name) for name in SAMPLE_TABLES}


def read_tushare_csv_tree(root: Path) -> dict[str, pd.DataFrame]:
    """The shared CSV tree (``<root>/<api>/*.csv[.gz]``, ``<root>/stock_basic.csv``) by table."""
    root = Path(root)
    tables = {}
    for name in SAMPLE_TABLES:
        files = ([root / "stock_basic.csv"] if name == "stock_basic"
                 else sorted((root / name).glob("*.csv*")))
        frames = [pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""])
                  for f in files]
        tables[name] = conform(pd.concat(frames, ignore_index=True), CATALOGUE[name])
    return tables


def trade_calendar(open_days: list[str], exchange: str = "SSE") -> pd.DataFrame:
    """tushare's trade_cal layout for every calendar day between the first and last open day."""
    open_set = sorted(set(open_days))
    first = date(int(open_set[0][:4]), int(open_set[0][4:6]), int(open_set[0][6:]))
    last = date(int(open_set[-1][:4]), int(open_set[-1][4:6]), int(open_set[-1][6:]))
    days = [(first + timedelta(n)).strftime("%Y%m%d") for n in range((last - first).days + 1)]
    opened = set(open_set)
    rows, previous = [], None
    for day in days:
        rows.append({"exchange": exchange, "cal_date": day, "is_open": float(day in opened),
                     "pretrade_date": previous})
        if day in opened:
            previous = day
    return conform(pd.DataFrame(rows), CATALOGUE["trade_cal"])


def read_market_tree(root: Path) -> dict[str, pd.DataFrame]:
    """The market-scale data (``<root>/qfq_daily/<year>.parquet``, ``<root>/stock_basic.csv``).

    It is not shipped (about 100 MB); the bars are forward-adjusted prices beside raw
    ``vol`` and ``amount``, in ``daily``'s columns.
    """
    root = Path(root)
    years = sorted((root / "qfq_daily").glob("*.parquet"))
    bars = pa.concat_tables(pq.read_table(f) for f in years).to_pandas()
    basic = pd.read_csv(root / "stock_basic.csv", dtype=str, keep_default_na=False,
                        na_values=[""])
    return {"qfq_daily": conform(bars, CATALOGUE["qfq_daily"]),
            "stock_basic": conform(basic, CATALOGUE["stock_basic"])}
