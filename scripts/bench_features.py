"""Benchmark the features stage on the shipped SSE 50 sample (about 120k rows).

Prints, in one run:
  - wall time and rows per second of `stockpred features` over the whole sample
    (a subprocess, start-up included; target: at most 10 s on 2 cores);
  - the same indicator set computed by stockpred's indicator code and by the bare
    stockstats library on the same bars, rows per second and the ratio
    (target: stockpred at most 1.5x the bare library).
stockstats' keys for the set: close_7_sma close_21_sma close_12_ema close_26_ema macd
boll kdjk kdjd kdjj wr_10 wr_6 rsi_6 rsi_12 rsi_24 cr cci_14 cci_20 vr vr_6_sma tr
atr_14 pdi ndi adx adxr trix trix_9_sma dma, plus momentum and volume ratios in pandas.

Usage: python scripts/bench_features.py
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from stockstats import wrap

from benchlib import Results, say
from stockpred.config import IndicatorSettings
from stockpred.data.sample import read_sample
from stockpred.features.indicators import technical

STOCKSTATS_KEYS = ["close_7_sma", "close_21_sma", "close_12_ema", "close_26_ema", "macd",
                   "boll", "kdjk", "kdjd", "kdjj", "wr_10", "wr_6", "rsi_6", "rsi_12", "rsi_24",
                   "cr", "cci_14", "cci_20", "vr", "vr_6_sma", "tr", "atr_14", "pdi", "ndi",
                   "adx", "adxr", "trix", "trix_9_sma", "dma"]


def bare_library(stocks: list[pd.DataFrame]) -> None:
    for bars in stocks:
        frame = wrap(bars[["open", "high", "low", "close", "vol"]].rename(
            columns={"vol": "volume"}).reset_index(drop=True))
        for key in STOCKSTATS_KEYS:
            frame.get(key)
        for n in (1, 5, 10, 20):
            frame[f"mom{n}"] = frame["close"].pct_change(n)
        for n in (5, 20):
            frame[f"vr{n}"] = frame["volume"] / frame["volume"].rolling(n).mean()


def ours(stocks: list[pd.DataFrame]) -> None:
    settings = IndicatorSettings()
    for bars in stocks:
        technical(bars, settings)


def timed(func, *args, repeat=3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func(*args)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    bars = read_sample("qfq_daily")
    stocks = [g.reset_index(drop=True) for _, g in bars.groupby("ts_code")]
    rows = len(bars)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cli = [sys.executable, "-m", "stockpred"]
        subprocess.run([*cli, "fetch", "--source", "sample", "--data-dir", str(data)],
                       check=True, capture_output=True)
        start = time.perf_counter()
        done = subprocess.run([*cli, "features", "--data-dir", str(data)], capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(done.stderr)
    results = Results("bench_features", "python scripts/bench_features.py")
    say(f"stockpred features, SSE 50 sample ({rows:,} bars, {len(stocks)} stocks; "
        f"{done.stdout.strip().splitlines()[0]})")
    results.add(f"`stockpred features` on the SSE 50 sample ({rows:,} bars), wall", wall, "s",
                "<= 10 s", wall <= 10)
    results.add("its rows per second", rows / wall, digits=0)
    bare = timed(bare_library, stocks)
    mine = timed(ours, stocks)
    results.add("the indicator set, best of 3: stockpred's time over bare stockstats'",
                mine / bare, "x", "<= 1.5x", mine / bare <= 1.5)
    results.save()


if __name__ == "__main__":
    main()
