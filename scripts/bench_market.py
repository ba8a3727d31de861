"""Benchmark the market-wide work on the shared market data (1,702 stocks, 2008-2018).

For a fixed subset (the 500 stocks with the most bars; ties to the smaller ts_code) and
for every stock, prints wall time, rows per second and peak RSS of
  (a) `stockpred.data.universe.membership` for `top800` and `all`;
  (b) the factor panel `factor_panel`: in process, and on a LocalCluster of 1 and of 2
      worker processes (127.0.0.1, one thread each, as `stockpred features --universe`
      starts it); the cluster's start-up is timed apart;
  (c) `normalise_by_day` (zscore, MAD clip 3) on the factor panel, and `forward_labels`.
Targets (printed beside the figures): every stock's factors in <= 3 min and <= 8 GB peak.

Each case runs in its own subprocess, so its memory is its own. Peak RSS is given three
ways: `ru_maxrss` of the case's process (RUSAGE_SELF, input included), of its largest
child (RUSAGE_CHILDREN: the largest Dask worker), and the sum over the process and its
workers sampled every 0.1 s, floored at the process's own ru_maxrss ("total", what the
8 GB target is about). "input" is the process's RSS after loading its input, before the
timed call. Times are one run each unless --repeat; the machine is shared, so quote
medians (--repeat 3).

Data: <shared data>/market (qfq_daily/<year>.parquet, stock_basic.csv), the shared data
folder being STOCKPRED_SHARED_DATA or ../shared/data beside this checkout.

Usage: python scripts/bench_market.py [--quick] [--stocks N] [--repeat R]
  --quick: 100 stocks, 2017-2018 only, the subset alone (under a minute);
  --repeat R: each case R times, each in a fresh process; medians printed, with the
  range of the wall times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, PeakSampler, Results

TARGET_S = 180.0
TARGET_BYTES = 8e9
PROJECTED_STOCKS = 5000  # the whole A-share market
GB = 1e9


def shared_market_dir() -> Path | None:
    root = Path(os.environ.get("STOCKPRED_SHARED_DATA", REPO.parent / "shared" / "data"))
    folder = root / "market"
    return folder if (folder / "qfq_daily").is_dir() and (folder / "stock_basic.csv").is_file() \
        else None


# -- the parent: choose the stocks, run each case, print ------------------------------------

def year_files(market: Path, years: list[str] | None) -> list[Path]:
    files = sorted((market / "qfq_daily").glob("*.parquet"))
    return [f for f in files if years is None or f.stem in years]


def stocks_by_bars(files: list[Path]) -> list[str]:
    """Every ts_code, most bars first (ties: the smaller ts_code)."""
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for f in files:
        for code, n in pq.read_table(f, columns=["ts_code"]).to_pandas()["ts_code"] \
                .value_counts().items():
            counts[code] = counts.get(code, 0) + int(n)
    return sorted(counts, key=lambda code: (-counts[code], code))


def run_case(case: str, spec: dict, tmp: Path) -> dict:
    """The case run ``spec["repeat"]`` times, each in a fresh process: the median of each
    figure, and the range of the wall times."""
    runs = [run_once(case, spec, tmp) for _ in range(spec["repeat"])]
    good = [r for r in runs if "error" not in r]
    if len(good) < len(runs):
        return next(r for r in runs if "error" in r)
    walls = sorted(r["wall_s"] for r in good)
    result = dict(good[0], runs=len(good), wall_min=walls[0], wall_max=walls[-1])
    for key, value in good[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result[key] = statistics.median(r[key] for r in good)
    result["digest"] = good[0].get("digest") if len({r.get("digest") for r in good}) == 1 \
        else "differs between runs"
    return result


def run_once(case: str, spec: dict, tmp: Path) -> dict:
    spec_path = tmp / f"{case}-{spec['label']}.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, __file__, "--case", case, "--spec", str(spec_path)],
                          check=False, capture_output=True, text=True)
    result = next((json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if done.returncode != 0 or result is None:
        result = {"error": (done.stderr.strip() or done.stdout.strip())[-600:]}
    return result


def gb(n: float | None) -> str:
    return "-" if n is None else f"{n / GB:.2f} GB"


def report(title: str, r: dict, targets: bool = False) -> None:
    if "error" in r:
        print(f"  {title:34s} FAILED: {r['error']}", flush=True)
        return
    spread = (f" ({r['runs']} runs {r['wall_min']:.2f}..{r['wall_max']:.2f})"
              if r["runs"] > 1 else "")
    line = (f"  {title:34s} {r['wall_s']:8.2f} s{spread}  "
            f"{r['rows'] / r['wall_s']:>11,.0f} rows/s  "
            f"peak total {gb(r['peak_total'])} (self {gb(r['peak_self'])}, "
            f"largest worker {gb(r['peak_child'] or None)}; input {gb(r['input_rss'])})")
    print(line, flush=True)
    extras = []
    if "cluster_start_s" in r:
        extras.append(f"cluster start {r['cluster_start_s']:.2f} s (not in the time)")
    if "members" in r:
        extras.append(f"{r['members']:,} member rows, {r['days']} days, "
                      f"{r['mean_members']:.0f} members a day")
    if targets:
        ok_t, ok_m = r["wall_s"] <= TARGET_S, r["peak_total"] <= TARGET_BYTES
        extras.append(f"target <= {TARGET_S:.0f} s: {'met' if ok_t else 'NOT met'}, "
                      f"<= {TARGET_BYTES / GB:.0f} GB: {'met' if ok_m else 'NOT met'}")
    if extras:
        print(f"  {'':34s} " + "; ".join(extras), flush=True)


def bench_scale(label: str, market: Path, codes: list[str] | None, years: list[str] | None,
                tmp: Path, full: bool, repeat: int) -> dict:
    """Every case at this scale, printed as it finishes; returns the stocks, bars and the
    result of each case by title."""
    spec = {"label": label, "market": str(market), "codes": codes, "years": years,
            "repeat": repeat,
            "panel": str(tmp / f"factors-{label}")}
    info = run_once("info", spec, tmp)
    if "error" in info:
        sys.exit(f"could not load the bars: {info['error']}")
    print(f"\n{label}: {info['stocks']} stocks, {info['rows']:,} bars, "
          f"{info['first']}..{info['last']} (bars load in {info['wall_s']:.2f} s, "
          f"not in the times)", flush=True)
    cases = {}
    print("(a) membership", flush=True)
    for name in ("top800", "all"):
        cases[f"universe {name}"] = run_case(f"universe:{name}", spec, tmp)
        report(f"universe {name}", cases[f"universe {name}"])
    print("(b) factor panel (173 factors)", flush=True)
    digests = {}
    for case, title in (("factors:0", "factors in process"),
                        ("factors:1", "factors, LocalCluster of 1 worker"),
                        ("factors:2", "factors, LocalCluster of 2 workers")):
        r = cases[title] = run_case(case, spec, tmp)
        report(title, r, targets=full)
        digests[title] = r.get("digest")
    found = {d for d in digests.values() if d}
    if len(found) > 1:
        print(f"  WARNING: the panels differ: {digests}", flush=True)
    elif found:
        print("  the three panels are bit-for-bit identical", flush=True)
    print("(c) cross-sectional step", flush=True)
    for case, title in (("normalise", "normalise_by_day (zscore, mad 3)"),
                        ("labels", "forward_labels")):
        cases[title] = run_case(case, spec, tmp)
        report(title, cases[title])
    return {"label": label, "stocks": info["stocks"], "bars": info["rows"],
            "identical_panels": len(found) == 1, "cases": cases}


def projected_peak(scales: list[dict], stocks: int, case: str) -> float | None:
    """Peak memory of ``case`` at ``stocks`` stocks, on the line through the two scales."""
    points = [(s["stocks"], s["cases"][case].get("peak_total")) for s in scales]
    if len(points) < 2 or any(p is None for _, p in points):
        return None
    (n0, p0), (n1, p1) = points[0], points[-1]
    return p1 + (p1 - p0) / (n1 - n0) * (stocks - n1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 stocks, 2017-2018")
    parser.add_argument("--stocks", type=int, default=None, help="size of the subset")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each case (medians printed)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args.case, json.loads(Path(args.spec).read_text()))

    market = shared_market_dir()
    if market is None:
        sys.exit("no market data: set STOCKPRED_SHARED_DATA or put shared/data/market "
                 "(qfq_daily/<year>.parquet, stock_basic.csv) beside this checkout")
    years = ["2017", "2018"] if args.quick else None
    n = args.stocks or (100 if args.quick else 500)
    files = year_files(market, years)
    ranked = stocks_by_bars(files)
    print(f"bench_market: {market}, {len(ranked)} stocks in {files[0].stem}..{files[-1].stem}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"targets: all {len(ranked)} stocks' factors in <= {TARGET_S / 60:.0f} min and "
          f"<= {TARGET_BYTES / GB:.0f} GB peak", flush=True)
    started = time.perf_counter()
    results = Results("bench_market", "python scripts/bench_market.py")
    with tempfile.TemporaryDirectory(prefix="bench_market-") as tmp:
        scales = [bench_scale(f"{n} stocks with the most bars", market, sorted(ranked[:n]),
                              years, Path(tmp), full=False, repeat=args.repeat)]
        if not args.quick:
            scales.append(bench_scale(f"all {len(ranked)} stocks", market, None, years,
                                      Path(tmp), full=True, repeat=args.repeat))
    if len(scales) == 2:
        projection = {case: projected_peak(scales, PROJECTED_STOCKS, case)
                      for case in scales[0]["cases"]}
        for case in ("factors in process", "normalise_by_day (zscore, mad 3)"):
            print(f"projected peak at {PROJECTED_STOCKS:,} stocks, {case}: "
                  f"{gb(projection[case])} (the line through {scales[0]['stocks']} and "
                  f"{scales[1]['stocks']} stocks)", flush=True)
        results.data.update(repeat=args.repeat, target_s=TARGET_S, target_bytes=TARGET_BYTES,
                            projected_stocks=PROJECTED_STOCKS,
                            projected_peak_total=projection, scales=scales)
        results.save()
    print(f"\ndone in {time.perf_counter() - started:.0f} s; load now "
          f"{os.getloadavg()[0]:.1f}", flush=True)


# -- a child: one case, its own memory --------------------------------------------------------

def maxrss(who: int) -> int:
    return resource.getrusage(who).ru_maxrss * 1024  # kilobytes on Linux


def load_bars(spec: dict):
    """The spec's bars as `market_bars` hands them (plain str keys), and stock_basic."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stockpred.data.catalogue import CATALOGUE
    from stockpred.data.store import conform
    from stockpred.stages.market import BAR_COLUMNS

    market = Path(spec["market"])
    filters = [("ts_code", "in", spec["codes"])] if spec["codes"] else None
    tables = [pq.read_table(f, columns=BAR_COLUMNS, filters=filters)
              for f in year_files(market, spec["years"])]
    bars = conform(pa.concat_tables(tables).to_pandas(), CATALOGUE["qfq_daily"])
    bars = bars.astype({"ts_code": str, "trade_date": str})
    basic = pd.read_csv(market / "stock_basic.csv", dtype=str, keep_default_na=False,
                        na_values=[""])
    basic = conform(basic, CATALOGUE["stock_basic"])
    if spec["codes"]:
        basic = basic[basic["ts_code"].isin(spec["codes"])].reset_index(drop=True)
    return bars, basic


def panel_digest(panel) -> str:
    from stockpred.features.factors import FACTOR_NAMES

    digest = hashlib.blake2b(digest_size=16)
    for name in FACTOR_NAMES:
        digest.update(panel[name].to_numpy())
    return digest.hexdigest()


def save_panel(panel, stem: str) -> None:
    """The in-process panel for the normalising case: keys in parquet, factors as one
    (factor, row) float32 array, the layout `factor_panel` returns them in."""
    import numpy as np

    from stockpred.features.factors import FACTOR_NAMES

    panel[["trade_date", "ts_code"]].to_parquet(f"{stem}-keys.parquet", index=False)
    block = np.lib.format.open_memmap(f"{stem}.npy", mode="w+", dtype=np.float32,
                                      shape=(len(FACTOR_NAMES), len(panel)))
    for k, name in enumerate(FACTOR_NAMES):
        block[k] = panel[name].to_numpy()
    block.flush()


def load_panel(stem: str):
    """The saved panel, laid out as `factor_panel` returns it (a reader of parquet would
    leave gigabytes of its own buffers in the peak)."""
    import numpy as np
    import pandas as pd

    from stockpred.features.factors import FACTOR_NAMES

    keys = pd.read_parquet(f"{stem}-keys.parquet")
    panel = pd.DataFrame(np.load(f"{stem}.npy").T, columns=FACTOR_NAMES, copy=False)
    panel.insert(0, "ts_code", keys["ts_code"])
    panel.insert(0, "trade_date", keys["trade_date"])
    return panel


def child(case: str, spec: dict) -> None:
    start = time.perf_counter()
    if case == "normalise":
        data = load_panel(spec["panel"])
    else:
        data, basic = load_bars(spec)
    loaded = time.perf_counter() - start
    result = {"rows": len(data), "input_rss": PeakSampler()._total()}
    if case == "info":
        print("RESULT " + json.dumps({**result, "wall_s": loaded,
                                      "stocks": int(data["ts_code"].nunique()),
                                      "first": data["trade_date"].min(),
                                      "last": data["trade_date"].max()}))
        return

    kind, _, arg = case.partition(":")
    extra, after = {}, None
    with PeakSampler() as sampler:
        if kind == "universe":
            from stockpred.data.universe import membership, universe_from_name

            start = time.perf_counter()
            out = membership(universe_from_name(arg), data, stock_basic=basic)
            wall = time.perf_counter() - start
            per_day = out.members.groupby("trade_date").size()
            extra = {"members": len(out.members), "days": len(per_day),
                     "mean_members": float(per_day.mean())}
        elif kind == "factors":
            from stockpred.features.factors import factor_panel

            workers = int(arg)
            if workers == 0:
                start = time.perf_counter()
                panel = factor_panel(data)
                wall = time.perf_counter() - start
                after = panel
            else:
                from distributed import Client, LocalCluster

                start = time.perf_counter()
                with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, processes=True,
                                  memory_limit="auto") as cluster, Client(cluster) as client:
                    client.wait_for_workers(workers)
                    extra["cluster_start_s"] = time.perf_counter() - start
                    start = time.perf_counter()
                    panel = factor_panel(data, client)
                    wall = time.perf_counter() - start
        elif kind == "normalise":
            from stockpred.features.cross_section import normalise_by_day

            start = time.perf_counter()
            normalise_by_day(data)
            wall = time.perf_counter() - start
        elif kind == "labels":
            from stockpred.features.cross_section import forward_labels

            start = time.perf_counter()
            forward_labels(data)
            wall = time.perf_counter() - start
        else:
            raise SystemExit(f"unknown case {case}")
    self_peak = maxrss(resource.RUSAGE_SELF)
    # sampling can miss a short peak of this process: its own ru_maxrss is a floor
    result.update(wall_s=wall, peak_total=max(sampler.peak, self_peak), peak_self=self_peak,
                  peak_child=maxrss(resource.RUSAGE_CHILDREN), **extra)
    if kind == "factors":  # after the measurements: neither is timed or in the peaks
        result["digest"] = panel_digest(panel)
        if after is not None:
            save_panel(after, spec["panel"])
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
