"""Every model on real shipped data: fit, predict, save/load, no test row in fitting, same seed."""

from __future__ import annotations

import json
import signal

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.config import Config, quick_config
from stockpred.dataset import load_stock, model_features
from stockpred.layout import resolve_paths
from stockpred.models.registry import prototype

STOCKS = "600036.SH,600519.SH,601318.SH"


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_copy):
    return sample_copy(STOCKS, "20120101", tmp_path_factory.mktemp("models") / "data")


@pytest.fixture(scope="module")
def stocks(built):
    paths = resolve_paths(Config(), built)
    features = model_features(paths)
    return [load_stock(paths, code, features) for code in STOCKS.split(",")]


def test_train_is_reproducible_and_writes_its_run(built, workdir):
    runs = []
    for _ in range(2):
        code, out, err = run_cli("train", "lstm", "--quick", "--data-dir", str(built),
                                 "--ts-code", "600036.SH")
        assert code == 0, err
        assert "persistence" in out
        # the closing lines say what was fit on what, the sign convention and the verdict
        assert "lstm on 600036.SH: fit before 20160101" in out
        assert "test 20170101..20181231" in out and "features" in out
        assert "early stopping kept epoch" in out and "negative: smaller" in out
        assert "verdict: " in out and "persistence (needs DM < 0 at p < 0.05)" in out
        runs.append(out.split("saved ")[1].split()[0])
    first, second = (pd.read_parquet(f"{r}/predictions.parquet") for r in runs)
    pd.testing.assert_frame_equal(first, second)
    folder = built / "models" / "lstm"
    run = sorted(folder.iterdir())[-1]
    for name in ("model.keras", "forecaster.json", "config.json", "predictions.parquet",
                 "metrics.json"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").rglob("*tfevents*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["persistence"]["rmse_return"] > 0
    assert metrics["test"] == ["20170101", "20181231"]


def test_evaluate_writes_the_leaderboard(built, tmp_path, workdir):
    results = tmp_path / "results"
    code, out, err = run_cli("evaluate", "--data-dir", str(built), "--results-dir",
                             str(results), "--ts-code", STOCKS, "--models", "arima,xgboost",
                             "--test-start", "20180701", "--retrain-every", "60", "--quick")
    assert code == 0, err
    board = json.loads((results / "leaderboard.json").read_text())
    rows = {r["model"]: r for r in board["rows"]}
    assert list(rows) == ["persistence", "drift", "arima", "xgboost"]
    for row in rows.values():
        for key in ("rmse_price", "rmse_return", "directional_accuracy", "pt_pvalue",
                    "dm_pvalue_vs_persistence", "ic", "rank_ic"):
            assert key in row
    assert rows["persistence"]["forecasts"] == rows["xgboost"]["forecasts"] > 200
    assert "| persistence |" in (results / "leaderboard.md").read_text()


def test_evaluate_at_several_horizons(built, tmp_path, workdir):
    """--horizons 1,5: every model, persistence included, has a row at each horizon,
    tested against persistence at the same horizon, and its forecasts say their horizon."""
    results = tmp_path / "results"
    code, out, err = run_cli("evaluate", "--data-dir", str(built), "--results-dir",
                             str(results), "--ts-code", STOCKS, "--models", "arima",
                             "--test-start", "20180701", "--retrain-every", "60",
                             "--horizons", "5,1", "--quick")
    assert code == 0, err
    board = json.loads((results / "leaderboard.json").read_text())
    assert board["horizons"] == [1, 5]
    rows = {(r["model"], r["horizon"]): r for r in board["rows"]}
    assert list(rows) == [(m, h) for h in (1, 5) for m in ("persistence", "drift", "arima")]
    assert all("dm_daily_nw_pvalue" in r and "beats_persistence" in r for r in rows.values())
    # five-day moves are wider than one-day ones, and the Newey-West lags cover the overlap
    assert rows["persistence", 5]["rmse_return"] > 1.5 * rows["persistence", 1]["rmse_return"]
    assert rows["arima", 5]["dm_nw_lags"] >= 4
    assert "| model | horizon |" in (results / "leaderboard.md").read_text()
    predictions = pd.read_parquet(built / "runs" / "evaluate" / board["run_id"]
                                  / "predictions.parquet")
    assert sorted(predictions["horizon"].unique()) == [1, 5]
    code, _, err = run_cli("report", board["run_id"], "--data-dir", str(built),
                           "--results-dir", str(results))
    assert code == 0, err
    page = (results / "report" / board["run_id"] / "index.html").read_text(encoding="utf-8")
    assert "<th>horizon</th>" in page


@pytest.mark.parametrize("args, phrase", [
    (["--horizons", "0,3"], "horizons must be one or more counts of traded days"),
    (["--test-start", "20190101", "--test-end", "20181231"], "is after test end"),
    (["--test-start", "20150101"], "must come after evaluation.validation_start"),
    (["--models", "lstm,prophet"], "unknown model prophet"),
])
def test_evaluate_bad_input(args, phrase, built, workdir):
    code, _, err = run_cli("evaluate", "--data-dir", str(built), *args)
    assert code == 2 and phrase in err and err.count("\n") == 1


def test_train_without_features_names_the_stage(tmp_path, workdir):
    code, _, err = run_cli("train", "arima", "--data-dir", str(tmp_path / "empty"))
    assert code == 5 and "run `stockpred features` first" in err


def test_lstm_experiment_figures(built, tmp_path, workdir):
    results = tmp_path / "results"
    code, _, err = run_cli("plot", "lstm", "--data-dir", str(built), "--results-dir",
                           str(results), "--ts-code", "600519.SH")
    assert code == 5 and "run `stockpred train experiments --ts-code 600519.SH` first" in err
    code, _, err = run_cli("train", "experiments", "--quick", "--data-dir", str(built),
                           "--ts-code", "600519.SH")
    assert code == 0, err
    code, out, err = run_cli("plot", "lstm", "--data-dir", str(built),
                             "--results-dir", str(results), "--ts-code", "600519.SH")
    assert code == 0, err
    made = sorted(p.name for p in (results / "lstm").glob("*.png"))
    assert made == sorted(f"{name}.png" for name in (
        "point_by_point", "full_window", "multiple_sequences", "seq2seq_averaged",
        "global_rectified", "seq2seq_features_n20_m18", "seq2seq_latest",
        "seq2seq_rectified_joins", "global_raw", "global_seq2seq_averaged",
        "train_validation_splits"))
    splits = pd.read_parquet(built / "runs" / "experiments" / "600519.SH.splits.parquet")
    assert list(splits["split"]) == ["0.9 / 0.1", "0.98 / 0.02"]
    assert (splits["validation_start"] < "20170101").all() and splits["quick"].all()
    assert (splits[["rmse_return", "persistence_rmse_return"]] > 0).all().all()
    assert "E0000" not in err and "I0000" not in err  # TensorFlow's chatter goes to the log


def test_experiments_are_causal_and_rectified(stocks):
    from stockpred.dataset import StockData
    from stockpred.evaluation import experiments

    config = quick_config(Config())
    stock = stocks[1]
    networks = experiments.fit(config, stock)  # reads the rows before the test period only
    wild = stock.close * 1.5  # a forecast 50% above the close must be clamped to +10%
    runs = {e.name: e for e in experiments.forecast(config, networks, stock, wild)}
    assert len(runs) == 10
    rectified = runs["global_rectified"]
    np.testing.assert_allclose(rectified.predicted, rectified.previous * 1.1)
    np.testing.assert_allclose(runs["global_raw"].predicted, rectified.previous * 1.5)
    for exp in runs.values():
        assert exp.dates[0] >= "20170101"
        assert np.isfinite(exp.predicted).all()
        np.testing.assert_array_equal(exp.previous[1:], exp.actual[:-1])
    # a new seq-to-seq window starts within the limit of the last true close
    joins = runs["seq2seq_rectified_joins"]
    starts = slice(0, None, config.models.predict_window)
    assert (np.abs(joins.predicted[starts] / joins.previous[starts] - 1) <= 0.1 + 1e-12).all()

    # scramble every close (and feature) after day t: no forecast for t + 1 or before moves
    t = int(np.searchsorted(stock.dates, "20170101")) + 23
    rng = np.random.default_rng(0)
    close = stock.close.copy()
    close[t + 1:] *= rng.uniform(0.5, 1.5, len(close) - t - 1)
    features = stock.features.copy()
    features.iloc[t + 1:] = rng.permutation(features.iloc[t + 1:].to_numpy())
    scrambled = StockData(stock.ts_code, stock.dates, close, features,
                          np.append(close[1:], np.nan))
    for exp in experiments.forecast(config, networks, scrambled, close * 1.5):
        known = runs[exp.name].dates <= stock.dates[t + 1]
        assert known.sum() == 24 and not np.array_equal(exp.actual, runs[exp.name].actual)
        np.testing.assert_array_equal(exp.predicted[known], runs[exp.name].predicted[known],
                                      err_msg=exp.name)
        if exp.name != "full_window":  # (b) reads nothing after its one origin
            assert not np.array_equal(exp.predicted, runs[exp.name].predicted), exp.name


def test_fusion_blends_lstm_and_wgan_with_alpha_fit_on_validation(stocks):
    train = [s.rows(s.dates < "20170101") for s in stocks[:1]]
    valid = [s.rows((s.dates >= "20170101") & (s.dates < "20180101")) for s in stocks[:1]]
    fused = prototype(quick_config(Config()), "fusion").fit(train, valid)
    assert 0.0 <= fused.alpha_ <= 1.0
    lstm, wgan = (c.predict(stocks[0]) for c in fused.components_)
    np.testing.assert_allclose(fused.predict(stocks[0]),
                               fused.alpha_ * lstm + (1 - fused.alpha_) * wgan, equal_nan=True)
    # the chosen alpha is the grid's best on the validation rows
    a = valid[0].next_close / valid[0].close - 1
    z0, z1 = (c.predict(valid[0]) / valid[0].close - 1 for c in fused.components_)
    errors = {w: np.nanmean((a - (w * z0 + (1 - w) * z1)) ** 2) for w in np.linspace(0, 1, 21)}
    assert errors[min(errors, key=errors.get)] == pytest.approx(
        errors[min(errors, key=lambda w: abs(w - fused.alpha_))])


def test_fusion_dqn_sets_one_weight_a_block_from_errors_known_at_its_first_close(stocks):
    """fusion+dqn (drift and ARIMA: seconds to fit) fit on the validation rows of 2016: each
    block of block_days rows from the fit's origin on takes one of the alphas, chosen from
    a state that is each component's RMSE and mean error over the rows whose targets are
    known at the block's first close, and the forecast is that weight's blend."""
    stock = stocks[0]
    train = [stock.rows(stock.dates < "20160101")]
    valid = [stock.rows((stock.dates >= "20160101") & (stock.dates < "20170101"))]
    model = prototype(quick_config(Config()), "fusion+dqn",
                      {"components": ["drift", "arima"]}).fit(train, valid)
    assert model.origin_ == valid[0].next_dates[-1]
    block, lookback = (model.settings["dqn"][k] for k in ("block_days", "lookback_days"))
    p0, p1, where = model._forecasts(stock)
    alpha = model.weights(stock, p0, p1)
    first = int(np.searchsorted(stock.dates, model.origin_))
    blocks = alpha[first:first + 12 * block].reshape(12, block)
    assert (blocks == blocks[:, :1]).all() and set(blocks[:, 0]) <= set(model.alphas)
    np.testing.assert_allclose(model.predict(stock)[first:],
                               (alpha * p0 + (1 - alpha) * p1)[first:])
    # the state of the block starting at row d reads the lookback rows before d: at
    # horizon 1 the target of row d - 1 is d's close, known then
    d = first + 5 * block
    state = model._states(stock, np.array([d]), *model._returns(stock, p0, p1))[0]
    error = stock.next_return[d - lookback:d] - (p1 / stock.close - 1)[d - lookback:d]
    assert state[6] == pytest.approx(np.sqrt(np.mean(error ** 2)) / model.spread_)
    assert state[7] == pytest.approx(np.mean(error) / model.spread_)
    # later closes leave that block's weight as it was
    later = stock.rows(stock.dates <= stock.dates[d])
    np.testing.assert_array_equal(model.weights(later, p0[:d + 1], p1[:d + 1])[first:],
                                  alpha[first:d + 1])
    assert model.spread_ == pytest.approx(np.nanstd(valid[0].next_return))


class CtrlCWhenRead(np.ndarray):
    """Features that send this process SIGINT whenever XGBoost asks for their memory, which
    it does inside the ctypes callbacks that build its training matrix: Ctrl-C at the worst
    moment, every time."""

    reads = 0

    @property
    def __array_interface__(self):
        CtrlCWhenRead.reads += 1
        signal.raise_signal(signal.SIGINT)
        return np.asarray(self).__array_interface__


@pytest.fixture
def python_takes_ctrl_c():
    """Python's own SIGINT handler, as at a terminal, even where the tests run with SIGINT
    ignored (a background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_xgboost_builds_its_matrix_stops_the_fit_cleanly(python_takes_ctrl_c):
    import xgboost

    from stockpred.models.learned import fit_xgboost

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4)).astype("float32").view(CtrlCWhenRead)
    y = rng.standard_normal(300)
    estimator = xgboost.XGBRegressor(tree_method="hist", n_estimators=50, n_jobs=1)
    # a plain fit turns this into an XGBoostError (half a matrix) or a crash
    with pytest.raises(KeyboardInterrupt):
        fit_xgboost(estimator, x, y, eval_set=[(x, y)], verbose=False)
    assert CtrlCWhenRead.reads > 0
    # held until it was safe, then the boosting stopped at its first round
    assert estimator.get_booster().num_boosted_rounds() == 1
    assert estimator.callbacks is None
