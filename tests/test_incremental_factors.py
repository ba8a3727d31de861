"""Incremental factors (`stockpred features --universe` on a store that gained days): the
panel is bit-identical to a full recompute, and only the year files that change are
rewritten."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.config import Config, with_overrides
from stockpred.features.factors import compute_factors
from stockpred.layout import resolve_paths
from stockpred.stages import market

SETTINGS = {"compute": {"workers": 0}}
# the first night's store ends here; the next fetch adds days of 2017 and 2018
CUT, END = "20171215", "20180131"


def _cli(folder, *args):
    code, out, err = run_cli(*args, "--data-dir", str(folder / "data"), "--config",
                             str(folder / "config.json"))
    assert code == 0, err
    return out


def _store(folder, end: str):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(SETTINGS))
    _cli(folder, "fetch", "--source", "sample", "--start", "20150101", "--end", end)


def _panel(folder) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p)
            for p in sorted((folder / "data" / "factors" / "top20").glob("*.parquet"))}


def _record(folder) -> dict:
    return json.loads((folder / "data" / "factors" / "top20" / "factors.json").read_text())


def _same(left: dict, right: dict) -> None:
    assert list(left) == list(right)
    for year in left:
        pd.testing.assert_frame_equal(left[year], right[year], check_exact=True)


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """(incremental, full): a store cut at CUT with its factors, then fetched to END and
    computed again; and the store fetched to END at once, computed in full."""
    root = tmp_path_factory.mktemp("incremental")
    incremental, full = root / "incremental", root / "full"
    _store(incremental, CUT)
    assert "; full," in _cli(incremental, "features", "--universe", "top20")
    _cli(incremental, "fetch", "--source", "sample", "--start", "20150101", "--end", END)
    _store(full, END)
    _cli(full, "features", "--universe", "top20")
    return incremental, full


def _copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def test_added_days_give_the_full_recompute_bit_for_bit(nights, tmp_path):
    incremental, full = nights
    night = _copy(incremental, tmp_path)
    before = {p.name: p.stat().st_mtime_ns
              for p in (night / "data" / "factors" / "top20").glob("*.parquet")}
    out = _cli(night, "features", "--universe", "top20")
    assert "incremental, rewrote 2017, 2018" in out, out
    _same(_panel(night), _panel(full))
    run = _record(night)["last_run"]
    assert run["mode"] == "incremental" and run["since"] == CUT
    after = {p.name: p.stat().st_mtime_ns
             for p in (night / "data" / "factors" / "top20").glob("*.parquet")}
    assert after["2015.parquet"] == before["2015.parquet"]  # untouched
    # a second run on the same store computes and writes nothing
    assert "rewrote no year file" in _cli(night, "features", "--universe", "top20")
    assert _record(night)["bars"] == _record(full)["bars"]


def test_a_run_stopped_before_its_record_is_taken_up_again(nights, tmp_path, monkeypatch):
    incremental, full = nights
    night = _copy(incremental, tmp_path)
    config = with_overrides(Config(), SETTINGS)
    paths = resolve_paths(config, night / "data")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # after every year file, before factors.json

    monkeypatch.setattr(market, "write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        market.run_factors(config, paths, "top20", progress=False)
    monkeypatch.undo()
    assert _record(night)["computed_through"] == CUT
    report = market.run_factors(config, paths, "top20", progress=False)
    assert report.mode == "incremental"
    _same(_panel(night), _panel(full))


def test_revised_bars_recompute_that_stock_from_its_first_bar(nights, tmp_path,
                                                              monkeypatch):
    """A vendor re-base (forward adjustment after a dividend) moves every earlier bar of
    one stock: only that stock is computed again, from its first bar."""
    _, full = nights
    night = _copy(full, tmp_path)
    config = with_overrides(Config(), SETTINGS)
    paths = resolve_paths(config, night / "data")
    basis, bars = market.market_bars(paths, sorted(market.members(
        config, paths, "top20")["ts_code"].unique()))
    code = bars["ts_code"].iloc[0]
    revised = bars.copy()
    mine = (revised["ts_code"] == code).to_numpy()
    for column in ("open", "high", "low", "close", "pre_close"):
        revised.loc[mine, column] = np.round(revised.loc[mine, column] / 0.8828, 4)
    monkeypatch.setattr(market, "market_bars", lambda *args: (basis, revised))
    report = market.run_factors(config, paths, "top20", progress=False)
    assert report.mode == "incremental" and _record(night)["last_run"]["from_first_bar"] == 1
    got = pd.concat(_panel(night).values()).sort_values(["ts_code", "trade_date"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), compute_factors(revised),
                                  check_exact=True, check_dtype=False)


def test_a_changed_definition_recomputes_everything(nights, tmp_path):
    _, full = nights
    night = _copy(full, tmp_path)
    path = night / "data" / "factors" / "top20" / "factors.json"
    record = _record(night)
    path.write_text(json.dumps({**record, "definition": "an older factors.py"}))
    assert "; full, rewrote 2015, 2016, 2017, 2018" in _cli(night, "features", "--universe",
                                                              "top20")
    _same(_panel(night), _panel(full))


def test_a_build_in_many_parts_writes_the_files_of_one_part(nights, tmp_path):
    """In process, the factors are computed a run of stocks at a time and each year merged
    from the runs' parts (so no process holds the panel): with parts of a few stocks the
    year files are those of the run that computed every stock at once."""
    from stockpred.stages.factor_parts import write_in_parts

    _, full = nights
    config = with_overrides(Config(), SETTINGS)
    paths = resolve_paths(config, full / "data")
    codes = sorted(market.members(config, paths, "top20")["ts_code"].unique())
    _, bars = market.market_bars(paths, codes)
    plan = market._plan(None, "qfq", bars, codes, tmp_path / "none")
    files = {year: tmp_path / "parts" / f"{year}.parquet" for year in plan.years}
    (tmp_path / "parts").mkdir()
    write_in_parts(None, bars, bars.iloc[:0], plan, files, tmp_path / "scratch",
                   market.rewrite_year, part_rows=2_000)
    assert len(bars) > 4 * 2_000 and not (tmp_path / "scratch").exists()
    _same({y: pd.read_parquet(files[y]) for y in sorted(files)}, _panel(full))
