"""The market-wide commands on the shipped sample: universe, features --universe, export."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import run_cli
from stockpred.features.factors import FACTOR_NAMES


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    folder = tmp_path_factory.mktemp("market")
    data = folder / "data"
    code, _, err = run_cli("fetch", "--source", "sample", "--data-dir", str(data))
    assert code == 0, err
    # in-process factors keep this fixture quick; the cluster paths are tested below
    (folder / "config.json").write_text(json.dumps({"compute": {"workers": 0}}))
    code, out, err = run_cli("features", "--universe", "top20", "--data-dir", str(data),
                             "--config", str(folder / "config.json"))
    assert code == 0, err
    assert "universe top20:" in out and "factors of top20:" in out
    return folder


def _export(folder, *args) -> pd.DataFrame:
    out = folder / "export.parquet"
    code, _, err = run_cli("export", "factors", *args, "--out", str(out), "--data-dir",
                           str(folder / "data"), "--config", str(folder / "config.json"))
    assert code == 0, err
    return pd.read_parquet(out)


def test_universe_membership_and_its_figure(market):
    members = pd.read_parquet(market / "data" / "universe" / "top20.parquet")
    per_day = members.groupby("trade_date").size()
    assert per_day.max() == 20 and (per_day == 20).mean() > 0.9
    excluded = pd.read_parquet(market / "data" / "universe" / "top20.excluded.parquet")
    assert set(excluded["reason"]) <= {"suspended", "listed_days", "st", "delisted"}
    assert not excluded.merge(members, on=["trade_date", "ts_code"]).shape[0]


def test_export_is_the_panel_on_member_days(market):
    exported = _export(market, "--universe", "top20")
    assert list(exported.columns) == ["trade_date", "ts_code", *FACTOR_NAMES]
    members = pd.read_parquet(market / "data" / "universe" / "top20.parquet")
    assert len(exported) == len(members)
    assert (exported[FACTOR_NAMES].dtypes == "float32").all()
    # a stock's factors do not depend on the universe: the same values from its bars alone
    code = exported["ts_code"].value_counts().index[0]
    alone = _export(market, "--ts-code", code)
    mine = exported[exported["ts_code"] == code].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        mine, alone[alone["trade_date"].isin(mine["trade_date"])].reset_index(drop=True))


def test_an_existing_scheduler_gives_the_same_factors(market):
    from distributed import LocalCluster

    local = _export(market, "--ts-code", "600036.SH,600519.SH")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster:
        remote = _export(market, "--ts-code", "600036.SH,600519.SH", "--scheduler",
                         cluster.scheduler_address)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)


@pytest.mark.parametrize("args, code, phrase", [
    (["universe", "top0"], 2, "unknown universe 'top0'"),
    (["features", "--universe", "all", "--ts-code", "600036.SH"], 2, "not both"),
    (["export", "factors", "--out", "x.parquet"], 2, "give one of --universe"),
    (["export", "factors", "--universe", "top5", "--out", "x.parquet"], 5,
     "run `stockpred features --universe top5` first"),
])
def test_bad_input_is_one_line(args, code, phrase, market, workdir):
    got, _, err = run_cli(*args, "--data-dir", str(market / "data"))
    assert got == code and phrase in err and err.count("\n") == 1, err


def test_features_universe_before_fetch_names_the_stage(tmp_path, workdir):
    code, _, err = run_cli("features", "--universe", "top10", "--data-dir", str(tmp_path))
    assert code == 5 and "run `stockpred fetch` first" in err
