"""The run report: one self-contained HTML page per evaluate run and the index of runs,
made from real runs on the shipped sample and rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.config import Config, with_overrides
from stockpred.errors import InputError, MissingInputError
from stockpred.layout import resolve_paths
from stockpred.report.page import per_year, signal_series
from stockpred.stages import report
from stockpred.stages.market import market_bars

SETTINGS = {"compute": {"workers": 0},
            "evaluation": {"test_start": "20180701"},
            "cross_section": {"universe": "top20", "train_days": 400, "validation_days": 80,
                              "retrain_every": 60, "backtest": {"topk": 5, "n_drop": 1}}}
STOCKS = "600036.SH,600519.SH"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_top20):
    """A cross-sectional run on the sample's top20 and a forecast run of two stocks, each
    with its report; returns the paths and {world: run id}."""
    folder = tmp_path_factory.mktemp("report")
    (folder / "config.json").write_text(json.dumps(SETTINGS))
    shutil.copytree(sample_top20, folder / "data")
    common = ["--data-dir", str(folder / "data"), "--results-dir", str(folder / "results"),
              "--config", str(folder / "config.json")]
    for command in (["evaluate", "--cross-section", "--quick", "--models", "lightgbm"],
                    ["features", "--ts-code", STOCKS],
                    ["evaluate", "--quick", "--models", "xgboost", "--ts-code", STOCKS,
                     "--retrain-every", "60"]):
        code, _, err = run_cli(*command, *common)
        assert code == 0, err
    config = with_overrides(Config(), SETTINGS)
    paths = resolve_paths(config, folder / "data", folder / "results")
    cross, single = report.finished_runs(paths)
    lines = report.run(config, paths)
    assert len(lines) == 3 and lines[-1].startswith("index of 2 run(s)")
    return config, paths, {"cross_section": cross, "single_stock": single}


def record(paths, run_id: str) -> dict:
    return json.loads((paths.evaluation_runs / run_id / "metrics.json").read_text())


def test_every_run_gets_one_offline_page_and_the_index_links_them(runs):
    _, paths, ids = runs
    index = paths.report_index.read_text(encoding="utf-8")
    for run_id in ids.values():
        html = paths.report_page(run_id).read_text(encoding="utf-8")
        assert f'href="{run_id}/index.html"' in index
        assert 'href="../index.html"' in html
        # figures inline, nothing to fetch: every source is data, no address anywhere
        sources = re.findall(r'<img src="([^"]*)"', html)
        assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
        assert not re.search(r'(src|href)="(https?:)?//|url\(|@import', html)
        assert "default-src 'none'" in html
    assert "best Rank IC (ret_2)" in index and "persistence" in index


def test_the_series_on_the_page_are_the_leaderboards(runs):
    """The daily Rank IC and quintile spread recomputed from the stored scores average to
    the run's leaderboard figures, and the per-year table covers every backtest day."""
    _, paths, ids = runs
    folder = paths.evaluation_runs / ids["cross_section"]
    board = record(paths, ids["cross_section"])
    predictions = pd.read_parquet(folder / "predictions.parquet")
    _, bars = market_bars(paths, sorted(predictions["ts_code"].unique()))
    series = signal_series(predictions, bars, board["label"])
    for row in board["rows"]:
        if row["label"] != board["label"] or row["rows"] != "all":
            continue
        daily = series.daily[series.daily["model"] == row["model"]]
        spread = series.spread[series.spread["model"] == row["model"]]
        assert len(daily) == row["days"]
        assert daily["rank_ic"].mean() == pytest.approx(row["rank_ic"], rel=1e-9)
        assert spread["spread"].mean() == pytest.approx(row["long_short_mean"], rel=1e-9)
    backtest = pd.read_parquet(folder / "backtest_daily.parquet")
    years = per_year(backtest, series.daily)
    for row in board["backtest"]:
        mine = [y for y in years if y["model"] == row["model"]]
        assert sum(y["days"] for y in mine) == row["days"]
        assert min(y["max_drawdown"] for y in mine) >= row["max_drawdown"] - 1e-12


def test_a_run_without_a_report_gets_one_and_the_others_are_kept(runs):
    config, paths, ids = runs
    page = paths.report_page(ids["single_stock"])
    before = page.stat().st_mtime_ns
    lines = report.run(config, paths)
    assert lines == [f"index of 2 run(s): {paths.report_index}"]
    assert page.stat().st_mtime_ns == before
    lines = report.run(config, paths, ids["single_stock"])
    assert lines[0] == f"report of run {ids['single_stock']}: {page}"


@pytest.mark.parametrize("run_id", ["20000101-000000", "../runs"])
def test_an_unknown_run_is_a_one_line_error(runs, run_id):
    config, paths, ids = runs
    with pytest.raises(InputError) as error:
        report.run(config, paths, run_id)
    message = str(error.value)
    assert "\n" not in message and repr(run_id) in message
    assert f"the latest is {ids['single_stock']}" in message


def test_no_run_at_all_names_the_stage_to_run(tmp_path):
    paths = resolve_paths(Config(), tmp_path / "data", tmp_path / "results")
    with pytest.raises(MissingInputError, match="run `stockpred evaluate`"):
        report.run(Config(), paths)
    assert not paths.report_index.exists()


# -- in a real browser ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> str:
    """Chromium's binary; asked before the runs are made, so a skip costs nothing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium on PATH under CI: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on PATH (Debian's `chromium` package): the report is not "
                    "rendered in a browser here")
    return found


def browse(browser: str, page: Path, profile: Path,
           *options: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``page`` with a fresh profile, nothing in the background."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", *options, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class Tables(HTMLParser):
    """The rows of each table of a page, by table id: {data-col: cell text} per row."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self._rows = self._row = self._column = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(attrs.get("id") or "", [])
        elif tag == "tr" and self._rows is not None:
            self._row = {}
        elif tag == "td" and self._row is not None:
            self._column = attrs["data-col"]
            self._row[self._column] = ""

    def handle_data(self, data):
        if self._column is not None:
            self._row[self._column] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self._column = None
        elif tag == "tr" and self._row:
            self._rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._rows = None


def shown(value) -> str:
    """A result file's value as the page must show it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if np.isfinite(value) else "n/a"
    return str(value)


def expected_tables(board: dict) -> dict[str, list[dict]]:
    if board["world"] != "cross_section":
        return {"leaderboard": board["rows"]}
    return {"leaderboard": [r for r in board["rows"]
                            if r["label"] == board["label"] and r["rows"] == "all"],
            "backtest": board["backtest"], "signal-rows": board["rows"]}


@pytest.mark.parametrize("world", ["cross_section", "single_stock"])
def test_the_page_renders_in_chromium(browser, runs, world, tmp_path):
    _, paths, ids = runs
    page = paths.report_page(ids[world])
    shot = tmp_path / "page.png"
    browse(browser, page, tmp_path / "shot-profile", f"--screenshot={shot}",
           "--window-size=1280,2000")
    pixels = plt.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    ink = (pixels[..., :3] < 0.9).any(axis=-1)
    assert ink.mean() > 0.03, "the page looks blank"
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 100

    dom = browse(browser, page, tmp_path / "dom-profile", "--virtual-time-budget=5000",
                 "--dump-dom").stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    images = page.read_text(encoding="utf-8").count("<img ")
    assert f'data-images="{images}"' in body and images >= 3
    assert 'data-broken="0"' in body, "a figure did not load"

    parser = Tables()
    parser.feed(dom)
    board = record(paths, ids[world])
    for table_id, rows in expected_tables(board).items():
        cells = parser.tables[table_id]
        assert [c["model"] for c in cells] == [r["model"] for r in rows]
        for cell, row in zip(cells, rows):
            for column, text in cell.items():
                if column in row:
                    assert text == shown(row[column]), (table_id, row["model"], column)
            if "rank_ic_interval" in cell and np.isfinite(row["rank_ic_t_nw"]):
                low, high = map(float, cell["rank_ic_interval"].strip("[]").split(","))
                assert low <= row["rank_ic"] <= high


def test_the_paper_record_joins_the_cross_sectional_page_when_there_is_one(runs):
    """With a track record stored (here the run's own scores replayed as nightly signals by
    the live stage's code), the cross-sectional page shows its last days and its figure."""
    from stockpred.plots import drawn_from
    from stockpred.plots.live import track_figure
    from stockpred.stages import live
    from stockpred.stages.cross_section import reference_tables
    from stockpred.stages.market import members

    config, paths, ids = runs
    folder = paths.evaluation_runs / ids["cross_section"]
    scores = pd.read_parquet(folder / "predictions.parquet")
    signals = scores[scores["model"] == "lightgbm"]
    member_rows = members(config, paths, "top20")
    _, bars = market_bars(paths, sorted(member_rows["ts_code"].unique()))
    track = live.track_record(signals, bars, member_rows, "ret_2",
                              config.cross_section.backtest, **reference_tables(paths))
    assert len(track) > 20
    paths.live_track.parent.mkdir(parents=True, exist_ok=True)
    track.to_parquet(paths.live_track)
    track_figure(track, paths.live_figure, drawn_from(
        "test", config, paths, folder / "predictions.parquet", None))
    try:
        html = report.render(paths, ids["cross_section"])
    finally:
        paths.live_track.unlink()
    assert 'id="paper-record"' in html and f"{len(track)} signal days" in html
    assert track["held_on"].iloc[-1] in html
