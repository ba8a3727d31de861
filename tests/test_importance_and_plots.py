"""XGBoost importance never reads the test period; the feature figures regenerate."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import run_cli, sample_features

STOCKS = "600036.SH,600519.SH,601318.SH,600000.SH"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return sample_features(tmp_path_factory.mktemp("imp"), STOCKS)


def selection(folder):
    chosen = json.loads((folder / "features" / "selected.json").read_text())
    return {k: v for k, v in chosen.items() if k != "finished_at"}


def test_selection_ranks_features_without_near_copies_of_price(built, workdir):
    code, out, err = run_cli("importance", "--data-dir", str(built), "--top-k", "10")
    assert code == 0, err
    assert "validation rmse: xgboost" in out and "naive" in out
    chosen = selection(built)
    assert len(chosen["selected"]) == 10
    names = [f["name"] for f in chosen["selected"]]
    manifest = json.loads((built / "features" / "features.json").read_text())
    levels = {f["name"] for f in manifest["features"] if not f["model_input"]}
    assert {"ma7", "ema12", "boll_mid", "arima_next", "open", "close"} <= levels
    ranked = {f["name"] for f in chosen["ranking"]} | set(chosen["excluded_near_price"])
    assert not ranked & levels  # columns in the price's unit are no candidates
    assert not set(names) & set(chosen["excluded_near_price"]) and "close" not in names
    assert chosen["train_days"][1] < chosen["validation_days"][0] <= "20161231"
    assert chosen["validation_days"][1] <= "20161231"
    assert len(chosen["curves"]["train"]) == len(chosen["curves"]["validation"]) > 1
    shares = [f["gain_share"] for f in chosen["selected"]]
    assert shares == sorted(shares, reverse=True)
    # the original design's cuts rank the same candidates, validating ever later
    cuts = chosen["splits"]
    assert [c["train_fraction"] for c in cuts] == [0.9, 0.98]
    assert chosen["validation_days"][0] < cuts[0]["validation_days"][0] \
        < cuts[1]["validation_days"][0] <= cuts[1]["validation_days"][1] <= "20161231"
    for cut in cuts:
        assert cut["train_days"][1] < cut["validation_days"][0]
        assert len(cut["ranking"]) == 10
        assert {f["name"] for f in cut["ranking"]} <= {f["name"] for f in chosen["ranking"]}


def test_selection_never_reads_rows_after_train_end(built, tmp_path, workdir):
    """Scrambling every feature after importance.train_end changes nothing in selected.json."""
    assert run_cli("importance", "--data-dir", str(built))[0] == 0
    before = selection(built)
    for path in (built / "features").glob("*.parquet"):
        table = pd.read_parquet(path)
        later = table["trade_date"] > "20161231"
        numeric = table.columns.drop("trade_date")
        table.loc[later, numeric] = table.loc[later, numeric].to_numpy()[::-1] * 3.0 + 1.0
        table.to_parquet(path)
    assert run_cli("importance", "--data-dir", str(built))[0] == 0
    after = selection(built)
    assert after == before


def test_direction_target_and_missing_features(built, tmp_path, workdir):
    code, out, err = run_cli("importance", "--data-dir", str(built), "--target",
                             "next_direction")
    assert code == 0, err
    assert "validation logloss" in out
    code, _, err = run_cli("importance", "--data-dir", str(tmp_path / "nothing"))
    assert code == 5 and "run `stockpred features` first" in err


def test_feature_figures_regenerate(built, tmp_path, workdir):
    assert run_cli("importance", "--data-dir", str(built))[0] == 0
    results = tmp_path / "results"
    code, out, err = run_cli("plot", "features", "--data-dir", str(built), "--results-dir",
                             str(results), "--ts-code", "600519.SH")
    assert code == 0, err
    made = sorted(p.name for p in (results / "feature_engineering").glob("*.png"))
    assert made == sorted(["price_amount.png", "macd.png", "bollinger_kdj.png", "open_rsi.png",
                           "wr_cr.png", "cci_tr_vr.png", "dmi.png", "fourier.png",
                           "fourier_spectrum.png", "autocorrelation.png", "arima.png",
                           "training_validation.png", "feature_importance.png",
                           "importance_splits.png"])
    assert all((results / "feature_engineering" / m).stat().st_size > 20_000 for m in made)
    code, _, err = run_cli("plot", "features", "--data-dir", str(built), "--results-dir",
                           str(results), "--ts-code", "601988.SH")
    assert code == 5 and "no features for 601988.SH" in err
