"""Dask without a gather: on a cluster the workers compute and write the factor year files
(stockpred.stages.factors_on_dask). A real LocalCluster on 127.0.0.1 of one and of two
workers; the files are bit-identical to the in-process run's, full and incremental."""

from __future__ import annotations

import json
import shutil

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
