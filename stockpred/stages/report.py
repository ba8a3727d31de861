"""The report stage (`stockpred report [RUN_ID]`): the HTML page of evaluate runs.

Each finished run under <data dir>/runs/evaluate/ gets
<results dir>/report/<run id>/index.html, one file with its figures inline that opens from
disk with no network, and <results dir>/report/index.html lists every run. Given a run
id, that run's page is written (again); without one, the page of every run that has none
yet, so the nightly refresh adds the new run's page and leaves the older ones alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from stockpred.config import Config
from stockpred.data.store import TMP_MARK, atomic_write_text
from stockpred.errors import InputError, MissingInputError
from stockpred.evaluation.leaderboard import METRICS_FILE
from stockpred.layout import Paths
from stockpred.models.names import CROSS_SECTION
from stockpred.stages.market import market_bars


def finished_runs(paths: Paths) -> list[str]:
    """The ids of the evaluate runs that finished, oldest first (a run still being
    written lives in a temporary twin of its folder)."""
    folder = paths.evaluation_runs
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob(f"*/{METRICS_FILE}")
                  if TMP_MARK not in p.parent.name)


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def render(paths: Paths, run_id: str) -> str:
    """The page of run ``run_id``, from its stored files (and, for a cross-sectional run,
    its stocks' stored closes, which its labels come from)."""
    from stockpred.report import page

    folder = paths.evaluation_runs / run_id
    record = _read_json(folder / METRICS_FILE)
    predictions = pd.read_parquet(folder / "predictions.parquet")
    index_href = _relative(paths.report_index, paths.report_page(run_id))
    if record["world"] != CROSS_SECTION:
        return page.single_stock(record, predictions, index_href)
    _, bars = market_bars(paths, sorted(predictions["ts_code"].unique()))
    daily = folder / "backtest_daily.parquet"
    rerun = folder / "backtest.json"
    paper = (pd.read_parquet(paths.live_track), paths.live_figure.read_bytes()) \
        if paths.live_track.exists() and paths.live_figure.exists() else None
    return page.cross_section(record, predictions, bars,
                              pd.read_parquet(daily) if daily.exists() else None,
                              _read_json(rerun) if rerun.exists() else None, index_href, paper)


def run(config: Config, paths: Paths, run_id: str | None = None) -> list[str]:
    """Write the report of ``run_id`` (default: of every run without one) and the index.
    ``config`` is not read: a run's page shows the settings the run itself recorded."""
    from stockpred.report import page

    runs = finished_runs(paths)
    if run_id is not None and run_id not in runs:
        latest = f"; the latest is {runs[-1]}" if runs else "; run `stockpred evaluate` first"
        raise InputError(f"no finished evaluate run {run_id!r} under "
                         f"{paths.evaluation_runs}{latest}")
    if not runs:
        raise MissingInputError(f"no evaluate run under {paths.evaluation_runs}: run "
                                f"`stockpred evaluate` (or `evaluate --cross-section`) first")
    chosen = [run_id] if run_id else [r for r in runs if not paths.report_page(r).exists()]
    lines = []
    for name in chosen:
        atomic_write_text(paths.report_page(name), render(paths, name))
        lines.append(f"report of run {name}: {paths.report_page(name)}")
    records = [_read_json(paths.evaluation_runs / r / METRICS_FILE) for r in reversed(runs)]
    links = {r: _relative(paths.report_page(r), paths.report_index) for r in runs
             if paths.report_page(r).exists()}
    atomic_write_text(paths.report_index,
                      page.index(records, links, str(paths.evaluation_runs)))
    lines.append(f"index of {len(runs)} run(s): {paths.report_index}")
    return lines
