"""Dask without a gather: on a cluster the workers compute and write the factor year files
(stockpred.stages.factor_parts). A real LocalCluster on 127.0.0.1 of one and of two
workers; the files are bit-identical to the in-process run's, full and incremental."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster

from conftest import run_cli, tree_digest

CUT, END = "20171215", "20180131"


def _cli(folder, *args):
    code, out, err = run_cli(*args, "--data-dir", str(folder / "data"), "--config",
                             str(folder / "config.json"))
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A sample store cut at CUT with its in-process factors of top20, and the same store
    fetched on to END and computed again in process (incrementally)."""
    root = tmp_path_factory.mktemp("nogather")
    first, second = root / "first", root / "second"
    first.mkdir()
    (first / "config.json").write_text(json.dumps({"compute": {"workers": 0}}))
    _cli(first, "fetch", "--source", "sample", "--start", "20150101", "--end", CUT)
    _cli(first, "universe", "top20")
    shutil.copytree(first, root / "bare")
    _cli(first, "features", "--universe", "top20")
    shutil.copytree(first, second)
    _cli(second, "fetch", "--source", "sample", "--start", "20150101", "--end", END)
    _cli(second, "universe", "top20")
    shutil.copytree(second, root / "bare-second", ignore=shutil.ignore_patterns("factors"))
    _cli(second, "features", "--universe", "top20")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_write_the_in_process_files(stores, workers, tmp_path):
    here = tmp_path / "cluster"
    shutil.copytree(stores / "bare", here)
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster:
        out = _cli(here, "features", "--universe", "top20", "--scheduler",
                   cluster.scheduler_address)
        assert "; full," in out, out
        assert tree_digest(here / "data" / "factors") == \
            tree_digest(stores / "first" / "data" / "factors") != {}
        # the next night: the bars fetched on, the factors of the new days only
        shutil.rmtree(here / "data" / "raw")
        shutil.rmtree(here / "data" / "universe")
        shutil.copytree(stores / "bare-second" / "data" / "raw", here / "data" / "raw")
        shutil.copytree(stores / "bare-second" / "data" / "universe",
                        here / "data" / "universe")
        out = _cli(here, "features", "--universe", "top20", "--scheduler",
                   cluster.scheduler_address)
        assert "incremental, rewrote 2017, 2018" in out, out
    assert tree_digest(here / "data" / "factors") == \
        tree_digest(stores / "second" / "data" / "factors")
    # the parts folder went with the run
    assert not list((here / "data").glob("factors.tmp-*"))


# -- the cross-sectional step and the learners on the workers --------------------------------

@pytest.fixture(scope="module")
def market(tmp_path_factory, sample_top20):
    """A sample store from 2015 with the in-process factors of top20, and the quick
    cross-sectional settings of tests/test_cross_section.py."""
    folder = tmp_path_factory.mktemp("nogather-market")
    (folder / "config.json").write_text(json.dumps(CROSS))
    shutil.copytree(sample_top20, folder / "data")
    return folder


CROSS = {"compute": {"workers": 0}, "evaluation": {"test_start": "20180701"},
         "cross_section": {"universe": "top20", "train_days": 400, "validation_days": 80,
                           "retrain_every": 60, "models": ["lightgbm", "xgboost_cs"],
                           "backtest": {"topk": 5, "n_drop": 1}}}


def test_one_worker_normalises_and_learns_as_this_process_does(market):
    """The panel normalised by the workers from the year files is the in-process one, bit
    for bit, and on one worker lightgbm.dask and xgboost.dask walk forward to the
    in-process scores. (On two, the normalised factors are still identical, the fits are
    not: each worker bins, samples and sums over its own rows; see bench_dask.)"""
    from distributed import Client

    from stockpred.config import Config, quick_config, with_overrides
    from stockpred.dataset import build_factor_panel
    from stockpred.dataset_on_dask import factor_panel_on_dask
    from stockpred.evaluation.walkforward import WalkForward, walk_forward
    from stockpred.layout import resolve_paths
    from stockpred.models.names import CROSS_SECTION
    from stockpred.models.registry import prototype
    from stockpred.stages.market import factor_files, market_bars, members, model_factors

    config = quick_config(with_overrides(Config(), CROSS))
    paths = resolve_paths(config, market / "data")
    rows = members(config, paths, "top20")
    _, bars = market_bars(paths, sorted(rows["ts_code"].unique()))
    here = build_factor_panel(model_factors(config, paths, "top20"),
                              rows, bars)
    protocol = WalkForward.from_config(config, CROSS_SECTION)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        there = factor_panel_on_dask(client, factor_files(config, paths, "top20"), rows, bars)
        assert there.x.chunks[0] == tuple(here.keys["trade_date"].str[:4].value_counts()
                                          .sort_index())  # one chunk a year file
        np.testing.assert_array_equal(there.x.compute(), here.x)
        pd.testing.assert_frame_equal(there.keys, here.keys)
        np.testing.assert_array_equal(there.y, here.y)
        for name in ("lightgbm", "xgboost_cs"):
            model = prototype(config, name)
            on_dask = type(model)({**model.settings, "on_dask": True}, model.seed)
            pd.testing.assert_frame_equal(walk_forward(on_dask, there, protocol, False),
                                          walk_forward(model, here, protocol, False),
                                          check_exact=True)


def test_lightgbm_on_dask_without_a_cluster_says_what_to_set(market):
    from stockpred.config import Config, quick_config, with_overrides
    from stockpred.dataset import build_factor_panel
    from stockpred.errors import InputError
    from stockpred.layout import resolve_paths
    from stockpred.models.registry import prototype
    from stockpred.stages.market import market_bars, members, model_factors

    config = quick_config(with_overrides(Config(), CROSS))
    paths = resolve_paths(config, market / "data")
    rows = members(config, paths, "top20")
    _, bars = market_bars(paths, sorted(rows["ts_code"].unique()))
    panel = build_factor_panel(model_factors(config, paths, "top20"), rows, bars)
    model = prototype(config, "lightgbm")
    with pytest.raises(InputError, match="lightgbm.on_dask needs a Dask cluster"):
        type(model)({**model.settings, "on_dask": True}, model.seed).fit(panel)
    with pytest.raises(InputError, match="fits the regression only"):
        type(model)({**model.settings, "on_dask": True, "objective": "lambdarank"},
                    model.seed).fit(panel)


def test_evaluate_on_one_worker_writes_the_in_process_scores(market, tmp_path):
    """`evaluate --cross-section` with every learner on_dask reads the factors on the
    workers (universe_panel_on_dask) and scores as the in-process run does."""
    def evaluate(tag: str, settings: dict) -> pd.DataFrame:
        config = tmp_path / f"{tag}.json"
        config.write_text(json.dumps(settings))
        code, out, err = run_cli("evaluate", "--cross-section", "--quick", "--data-dir",
                                 str(market / "data"), "--config", str(config),
                                 "--results-dir", str(tmp_path / tag))
        assert code == 0, err
        run = json.loads((tmp_path / tag / "cross_section" / "leaderboard.json")
                         .read_text())["run_id"]
        return pd.read_parquet(market / "data" / "runs" / "evaluate" / run
                               / "predictions.parquet")

    here = evaluate("here", CROSS)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster:
        on_dask = {**CROSS, "compute": {"scheduler": cluster.scheduler_address},
                   "cross_section": {**CROSS["cross_section"], "lightgbm": {"on_dask": True},
                                     "xgboost": {"on_dask": True}}}
        there = evaluate("there", on_dask)
    assert set(here["model"]) == {"last_return", "random", "lightgbm", "xgboost_cs"}
    pd.testing.assert_frame_equal(there, here, check_exact=True)
