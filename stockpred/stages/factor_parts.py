"""`stockpred features --universe` in parts: no process ever holds the whole panel. On a Dask
cluster the workers compute the factors and write the year files (the client sends bars
and receives file names and row counts, never the panel); in process the parts run one
after another, so the peak is one part's factors or one year's rows, not the history's.

Two rounds of tasks. Each partition (a run of whole stocks, ``factors._balanced_parts``)
computes its factors and writes its rows of each year to a parts folder, one file per
(year, partition), atomically. Once every partition is done, one task per year merges that
year's parts with the stored rows the plan keeps (``market.rewrite_year``, the same code as
in process) and replaces the year file. A partition is a function of its stocks' bars alone
and a year's rows are sorted by their unique keys, so the files are bit-identical to the
in-process ones, whatever the number of workers.

Faults: a partition's bars ride inside its task (the scheduler keeps a task's inputs), so
a worker that dies is replaced by a rerun of its tasks elsewhere; a rerun rewrites the same
part files atomically. No year file is touched before every partition has succeeded, so a
run that loses partitions beyond distributed's retries ends in one line and leaves the
year files as they were. The workers must see the data folder (a LocalCluster does; a
remote cluster needs it on a shared filesystem).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from stockpred.data.store import atomic_write_parquet
from stockpred.features.factors import (_balanced_parts, _bounded_runs, _sorted,
                                        compute_factors, partitions_lost_end_in_one_line)

# bars of one in-process part: its factors (173 float32 a row) are about 0.35 GB
PART_ROWS = 500_000


def write_in_parts(client, whole: pd.DataFrame, later: pd.DataFrame, plan,
                   year_files: dict[str, Path], parts_dir: Path, rewrite_year,
                   progress: bool = False, part_rows: int = PART_ROWS) -> list[str]:
    """Compute the factors of ``whole`` (from each stock's first bar) and of ``later`` (the
    rows after ``plan.since``) on the client's workers (in this process when ``client`` is
    None) and rewrite ``year_files`` (year -> path) from them with
    ``rewrite_year(path, rows, plan)`` (``market.rewrite_year``, handed in so this module
    does not import the stage back); returns the years rewritten, sorted. In process, a
    part holds whole stocks of at most ``part_rows`` bars (or one stock)."""
    # the columns and dtypes of a year no partition has rows of
    empty = compute_factors(whole.iloc[:0])
    inputs = [(_sorted(bars), since, tag)
              for bars, since, tag in ((whole, None, "whole"), (later, plan.since, "later"))
              if len(bars)]
    if client is None:
        try:
            written = [_factor_part(bars.iloc[start:stop], since, parts_dir)
                       for bars, since, _ in inputs
                       for start, stop in tqdm(_bounded_runs(bars["ts_code"], part_rows),
                                               desc="factors", unit="part", leave=False,
                                               disable=None if progress else True)]
            changed = [_merge_year(year_files[year], plan,
                                   sorted(p for done in written for p in done.get(year, [])),
                                   empty, rewrite_year) for year in sorted(year_files)]
        finally:
            shutil.rmtree(parts_dir, ignore_errors=True)
        return [year for year, rewritten in zip(sorted(year_files), changed) if rewritten]
    return _write_on_workers(client, inputs, plan, year_files, parts_dir, rewrite_year,
                             empty, progress)


def _write_on_workers(client, inputs: list, plan, year_files: dict[str, Path],
                      parts_dir: Path, rewrite_year, empty: pd.DataFrame,
                      progress: bool) -> list[str]:
    import dask

    threads = sum(client.nthreads().values())
    run = uuid.uuid4().hex[:8]  # keys of their own, should another run share the scheduler
    try:
        # Bars ride inside their tasks (see the module's note on faults): the graph is large
        # on purpose, hence distributed's large-graph warning is lifted here.
        with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1PB"}):
            parts = [client.submit(_factor_part, bars.iloc[start:stop], since, parts_dir,
                                   key=f"factor-part-{tag}-{n}-{run}", pure=False)
                     for bars, since, tag in inputs
                     for n, (start, stop) in enumerate(_balanced_parts(bars["ts_code"],
                                                                       2 * threads))]
            written = _wait(client, parts, "factors", progress)
        years = [client.submit(_merge_year, year_files[year], plan,
                               sorted(p for done in written for p in done.get(year, [])),
                               empty, rewrite_year, key=f"factor-year-{year}-{run}", pure=False)
                 for year in sorted(year_files)]
        changed = _wait(client, years, "years", progress)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return [year for year, rewritten in zip(sorted(year_files), changed) if rewritten]


def _wait(client, futures: list, what: str, progress: bool) -> list:
    """The futures' results in their order (partitions_lost_end_in_one_line)."""
    from distributed import as_completed

    with partitions_lost_end_in_one_line():
        for future in tqdm(as_completed(futures), total=len(futures), desc=what,
                           unit="task", leave=False, disable=None if progress else True):
            future.result()  # raises the task's error here, in the order tasks finish
        return client.gather(futures)


def _factor_part(bars: pd.DataFrame, since: str | None, parts_dir: Path
                 ) -> dict[str, list[str]]:
    """On a worker: the factors of a run of whole stocks, written one file per year;
    returns year -> [that file]."""
    frame = compute_factors(bars, since)
    if frame.empty:
        return {}
    # a part's name is its first stock and whether it is of whole stocks or of later rows,
    # so that a rerun of the task writes the same files
    name = f"{bars['ts_code'].iloc[0]}.{'all' if since is None else 'since' + since}"
    year = frame["trade_date"].str[:4].to_numpy()
    out = {}
    for y in pd.unique(year):
        path = parts_dir / y / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(frame[year == y], path)
        out[str(y)] = [str(path)]
    return out


def _merge_year(path: Path, plan, parts: list[str], empty: pd.DataFrame,
                rewrite_year) -> bool:
    """On a worker: rewrite one year file from its parts; whether it changed."""
    rows = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts \
        else empty
    return rewrite_year(Path(path), rows, plan)
