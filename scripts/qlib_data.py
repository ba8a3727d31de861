"""Convert the shared market bars (../shared/data/market) into qlib's binary data format.

    python scripts/qlib_data.py [--market DIR] [--out DIR] [--universe top800]

The benchmark's own provider (scripts/bench_vs_qlib.py): the layout, the fields and why there
is no VWAP are stockpred.data.qlib_provider's, which `stockpred export qlib` writes from the
store. Here the bars come from the market files instead, every stock of them gets its
feature files (``instruments/all.txt`` lists them all), the universe's point-in-time
membership is ``membership(universe_from_name(name), bars)`` and is also kept as
``members_<universe>.parquet`` for the benchmark's own side.
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
BAR_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol",
               "amount"]


def read_market(market: Path = DEFAULT_MARKET) -> pd.DataFrame:
    """Every yearly qfq file, keys as plain str, sorted by (trade_date, ts_code)."""
    from stockpred.data.sample import read_market_tree

    if not any((Path(market) / "qfq_daily").glob("*.parquet")):
        raise SystemExit(f"no qfq_daily/*.parquet under {market}")
    bars = read_market_tree(market)["qfq_daily"][BAR_COLUMNS]
    bars = bars.astype({"ts_code": str, "trade_date": str})
    return bars.sort_values(["trade_date", "ts_code"], kind="stable").reset_index(drop=True)


def convert(market: Path = DEFAULT_MARKET, out: Path = DEFAULT_OUT, universe: str = "top800",
            bars: pd.DataFrame | None = None) -> Path:
    from stockpred.data.qlib_provider import write_provider
    from stockpred.data.universe import membership, universe_from_name

    out = Path(out)
    bars = read_market(market) if bars is None else bars
    calendar = np.sort(bars["trade_date"].unique().astype(str))
    members = membership(universe_from_name(universe), bars).members
    report = write_provider(out, calendar, bars, members, universe, {"source": str(market)})
    members.to_parquet(out / f"members_{universe}.parquet", index=False)
    print(*report.summary(), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=Path, default=DEFAULT_MARKET)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--universe", default="top800", help="a universe name (top800, all)")
    args = parser.parse_args(argv)
    convert(args.market, args.out, args.universe)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
