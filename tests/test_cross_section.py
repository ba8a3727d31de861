"""Cross-sectional models on the shipped sample: walk-forward without look-ahead, the
contract of every model, the evaluate --cross-section artefacts and the backtest rerun."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.config import Config, quick_config, with_overrides
from stockpred.dataset import build_factor_panel
from stockpred.evaluation.walkforward import WalkForward
from stockpred.layout import resolve_paths
from stockpred.models.names import CROSS_SECTION, names_in
from stockpred.models.registry import prototype
from stockpred.testing import conformance
from stockpred.stages.market import market_bars, members, model_factors

SETTINGS = {"compute": {"workers": 0},
            "evaluation": {"test_start": "20180701"},
            "cross_section": {"universe": "top20", "train_days": 400, "validation_days": 80,
                              "retrain_every": 60,
                              "backtest": {"topk": 5, "n_drop": 1}}}


@pytest.fixture(scope="module")
def market(tmp_path_factory, sample_top20):
    folder = tmp_path_factory.mktemp("cross")
    (folder / "config.json").write_text(json.dumps(SETTINGS))
    shutil.copytree(sample_top20, folder / "data")
    return folder, ["--data-dir", str(folder / "data"), "--config", str(folder / "config.json")]


@pytest.fixture(scope="module")
def panel(market):
    folder, _ = market
    config = quick_config(with_overrides(Config(), SETTINGS))
    paths = resolve_paths(config, folder / "data")
    rows = members(config, paths, "top20")
    _, bars = market_bars(paths, sorted(rows["ts_code"].unique()))
    return config, build_factor_panel(model_factors(config, paths, "top20"), rows, bars), bars


def test_labels_become_known_two_traded_days_later(panel):
    _, data, bars = panel
    code = data.keys["ts_code"].iloc[0]
    days = np.sort(bars.loc[bars["ts_code"] == code, "trade_date"].to_numpy(str))
    mine = data.keys["ts_code"] == code
    for day, known in zip(data.dates[mine][:50], data.known_on[mine][:50]):
        assert known == days[np.searchsorted(days, day) + 2]


def test_labels_of_a_longer_horizon(panel):
    """At horizon 3 ret_2 is close T+1 -> T+4, known at the close of T+4; ret_1 close T ->
    T+3; the naive score looks back three days; horizon 1 is the panel as built."""
    _, data, bars = panel
    same = data.ahead(bars, 1)
    for field in ("y", "known_on", "last_return"):
        np.testing.assert_array_equal(getattr(same, field), getattr(data, field))
    pd.testing.assert_frame_equal(same.returns, data.returns)
    longer = data.ahead(bars, 3)
    code = data.keys["ts_code"].iloc[0]
    own = bars[bars["ts_code"] == code].sort_values("trade_date")
    days, close = own["trade_date"].to_numpy(str), own["close"].to_numpy(float)
    mine = np.flatnonzero((data.keys["ts_code"] == code).to_numpy())[5:50]
    for row in mine:
        t = np.searchsorted(days, data.dates[row])
        assert longer.known_on[row] == days[t + 4]
        assert longer.returns["ret_2"][row] == pytest.approx(close[t + 4] / close[t + 1] - 1,
                                                             rel=1e-5)
        assert longer.returns["ret_1"][row] == pytest.approx(close[t + 3] / close[t] - 1,
                                                             rel=1e-5)
        assert longer.last_return[row] == pytest.approx(close[t] / close[t - 3] - 1)


REFIT, CUT = "20180702", "20180815"  # the first refit of the test period; bars scrambled after
LAST_BAR = "20180227"  # the suspended stock's last bar before the cut


def _panel_from_bars(config, paths, bars: pd.DataFrame):
    """The top20 factor panel rebuilt from ``bars`` as the stages build it: membership,
    factors of the members' bars, the cross-sectional step and the labels."""
    from stockpred.data.store import RawStore
    from stockpred.data.universe import membership
    from stockpred.features.factors import factor_panel
    from stockpred.stages.market import _optional, universe_spec

    rows = membership(universe_spec(config, "top20"), bars,
                      stock_basic=_optional(RawStore(paths.raw_dir), "stock_basic")).members
    own = bars[bars["ts_code"].isin(set(rows["ts_code"]))]
    return build_factor_panel(factor_panel(own), rows, own)


@pytest.fixture(scope="module")
def scrambled(market, panel):
    """(clean, dirty, suspended stock, clean bars, dirty bars) panels from the stored
    bars: one member stock
    suspended from the day after 2018-02-27 (a training day, before the validation days)
    to 2018-08-20, across the refit of 2018-07-02 and the cut, so its labels of its last
    two days become known only after the cut; the
    dirty panel's bars have each stock's k-th close after the cut raised by 1.2^k (every
    return after the cut 20 points higher, enough to carry the suspended stock from the
    bottom of its day's labels to the top)."""
    folder, _ = market
    config, data, _ = panel
    paths = resolve_paths(config, folder / "data")
    _, bars = market_bars(paths)
    suspended = sorted(data.keys.loc[data.dates == LAST_BAR, "ts_code"])[0]
    gap = (bars["ts_code"] == suspended) & bars["trade_date"].between("20180228", "20180820")
    bars = bars[~gap].sort_values(["ts_code", "trade_date"]).reset_index(drop=True)
    after = bars["trade_date"] > CUT
    dirty = bars.copy()
    dirty.loc[after, "close"] *= 1.2 ** (dirty[after].groupby("ts_code").cumcount() + 1)
    return (_panel_from_bars(config, paths, bars), _panel_from_bars(config, paths, dirty),
            suspended, bars, dirty)


def test_a_refit_learns_nothing_of_the_bars_after_the_cut(scrambled):
    """The training rows of the refit at 2018-07-02 (keys, factors and ranked labels) are
    the same whatever the bars after the cut; a stock suspended across the refit has a
    label then unknown, which must move no other stock's rank."""
    clean, dirty, suspended, _, _ = scrambled
    mine = (clean.keys["ts_code"] == suspended) & (clean.dates == LAST_BAR)
    assert mine.sum() == 1 and clean.known_on[mine][0] > CUT
    # ranked among every label of its day, as if all were known, the stock moves
    assert clean.y[mine.to_numpy()] != dirty.y[mine.to_numpy()]
    learned = clean.training(REFIT, 400, 80)
    on_day = learned[0].dates == LAST_BAR
    assert on_day.sum() >= 10 and suspended not in set(learned[0].keys["ts_code"][on_day])
    for before, after in zip(learned, dirty.training(REFIT, 400, 80), strict=True):
        pd.testing.assert_frame_equal(before.keys, after.keys)
        np.testing.assert_array_equal(before.x, after.x)
        np.testing.assert_array_equal(before.y, after.y)


# The ensemble's own code (members fit on the same rows, the per-day rank average, the
# members saved in its folder) is the same whatever its members, each checked alone: here
# it ranks lightgbm and mlp (a Keras member) without lstm_cs, the slowest fit of the three.
ENSEMBLE_MEMBERS = {"cross_section": {"ensemble": {"members": ["lightgbm", "mlp"]}}}


def checked(config, name: str):
    """The prototype of ``name`` that the checks below run (the ensemble of two members)."""
    return prototype(with_overrides(config, ENSEMBLE_MEMBERS) if name == "ensemble" else config,
                     name)


@pytest.mark.parametrize("name", ["lightgbm", "xgboost_cs", "mlp", "lstm_cs", "ensemble"])
def test_scores_before_a_cut_ignore_the_bars_after_it(name, panel, scrambled):
    """Scrambling every close after 2018-08-15 in the bars leaves every earlier score
    bit-identical, and changes later ones."""
    config, _, _ = panel
    clean, dirty, _, _, _ = scrambled
    assert ((clean.dates >= "20180701") & (clean.dates <= CUT)).sum() > 100
    later = clean.days_between(CUT, "99999999")
    # One refit, at 2018-07-02, its block of 40 days ending 2018-08-24, after the cut: the
    # later refits saw the scrambled bars and forecast only days after the cut, which the
    # first block's last days already check.
    protocol = WalkForward("20180701", "20180824", 40, 400, 80)
    assert len(clean.days_between(protocol.test_start, protocol.test_end)) == 40
    # the first day whose bars differ is the one after the cut
    conformance.check_no_look_ahead(checked(config, name), clean, dirty, protocol,
                                    later[later > CUT][0])


# at horizon 3 ret_2 is known at T+4: with blocks of 31 days the second refit is on
# 2018-08-14, so the labels of 2018-08-08 (closes to 2018-08-14) are the last it may
# learn; a next-day gap would add those of 2018-08-09 and 2018-08-10, the latter ending
# on the scrambled close of 2018-08-16, and change its scores of 2018-08-14 and
# 2018-08-15, before the first scrambled close
SECOND_REFIT, FIRST_DIRTY = "20180814", "20180816"


def test_a_refit_at_a_longer_horizon_learns_nothing_after_the_cut(scrambled):
    """The training rows of a refit at horizon 3 two days before the first scrambled close
    are the same whatever the bars after the cut, and reach labels of the day before."""
    clean, dirty, _, bars, dirty_bars = scrambled
    learned = clean.ahead(bars, 3).training(SECOND_REFIT, 400, 80)
    assert max(learned[1].known_on) == SECOND_REFIT and max(learned[1].dates) == "20180808"
    for before, after in zip(learned, dirty.ahead(dirty_bars, 3).training(SECOND_REFIT, 400,
                                                                          80), strict=True):
        pd.testing.assert_frame_equal(before.keys, after.keys)
        np.testing.assert_array_equal(before.y, after.y)


def test_scores_at_a_longer_horizon_ignore_the_bars_after_the_cut(panel, scrambled):
    """The scramble test at horizon 3 (lightgbm, the default model)."""
    config, _, _ = panel
    clean, dirty, _, bars, dirty_bars = scrambled
    protocol = WalkForward("20180701", "20181228", 31, 400, 80)
    assert clean.days_between(protocol.test_start, "99999999")[31] == SECOND_REFIT
    conformance.check_no_look_ahead(prototype(config, "lightgbm"), clean.ahead(bars, 3),
                                    dirty.ahead(dirty_bars, 3), protocol, FIRST_DIRTY)


@pytest.mark.parametrize("name", names_in(CROSS_SECTION))
def test_every_cross_sectional_model_keeps_the_contract(name, panel, tmp_path):
    config, data, _ = panel
    train, test = data.rows(data.dates < "20180101"), data.rows(data.dates >= "20180101")
    conformance.check_model(checked(config, name),
                            train.rows(train.dates < "20170701"),
                            train.rows(train.dates >= "20170701"), test, "20180101",
                            tmp_path / name)


def test_evaluate_cross_section_and_backtest_rerun(market):
    folder, common = market
    results = folder / "results"
    code, out, err = run_cli("evaluate", "--cross-section", "--quick", "--models",
                             "lightgbm,xgboost_cs", "--results-dir", str(results), *common)
    assert code == 0, err
    board = json.loads((results / "cross_section" / "leaderboard.json").read_text())
    models = ["last_return", "random", "lightgbm", "xgboost_cs"]
    assert board["models"] == models
    signal = pd.DataFrame(board["rows"])
    assert len(signal) == len(models) * 2 * 2  # labels ret_1, ret_2; all and tradeable rows
    assert signal[["ic", "rank_ic", "icir", "rank_icir", "coverage"]].notna().all().all()
    # every row but the reversal's own is paired with it, day by day
    paired = signal["model"] != "last_return"
    assert signal.loc[paired, ["rank_ic_vs_reversal", "vs_reversal_pvalue"]].notna().all().all()
    assert signal.loc[~paired, "rank_ic_vs_reversal"].isna().all()
    assert [r["model"] for r in board["backtest"]] == models
    predictions = pd.read_parquet(folder / "data" / "runs" / "evaluate" / board["run_id"]
                                  / "predictions.parquet")
    assert list(predictions.columns) == ["trade_date", "ts_code", "model", "score"]
    assert not predictions.duplicated(["trade_date", "ts_code", "model"]).any()
    assert predictions["trade_date"].min() >= "20180701"
    for figure in ("cumulative_excess.png", "monthly_rank_ic.png", "quintiles.png"):
        assert (results / "cross_section" / figure).stat().st_size > 10_000
    # the sample has no namechange: the board says the ST limit was left out
    board_text = (results / "cross_section" / "leaderboard.md").read_text()
    assert "Note: no namechange table" in board_text
    code, out, err = run_cli("backtest", "--run", board["run_id"], "--model", "lightgbm",
                             *common)
    assert code == 0, err
    again = json.loads((folder / "data" / "runs" / "evaluate" / board["run_id"]
                        / "backtest.json").read_text())
    assert again == [r for r in board["backtest"] if r["model"] == "lightgbm"]
    code, _, err = run_cli("backtest", "--run", board["run_id"], "--model", "svr", *common)
    assert code == 2 and "has no model svr" in err


def test_evaluate_cross_section_at_two_horizons(market, tmp_path):
    """--horizons 1,5: the baselines and the model each have their rows at both horizons,
    the predictions and the backtest rerun keep the horizons apart."""
    folder, common = market
    results = tmp_path / "results"
    code, out, err = run_cli("evaluate", "--cross-section", "--quick", "--models", "lightgbm",
                             "--horizons", "1,5", "--results-dir", str(results), *common)
    assert code == 0, err
    board = json.loads((results / "cross_section" / "leaderboard.json").read_text())
    assert board["horizons"] == [1, 5]
    signal = pd.DataFrame(board["rows"])
    models = ["last_return", "random", "lightgbm"]
    assert list(signal.drop_duplicates(["horizon", "model"])[["horizon", "model"]]
                .itertuples(index=False, name=None)) == [(h, m) for h in (1, 5) for m in models]
    assert signal[["rank_ic", "rank_ic_t_nw", "rank_ic_lo90"]].notna().all().all()
    assert [(r["horizon"], r["model"]) for r in board["backtest"]] == \
        [(h, m) for h in (1, 5) for m in models]
    assert "| model | horizon | label |" in (results / "cross_section" / "leaderboard.md") \
        .read_text()
    runs = folder / "data" / "runs" / "evaluate" / board["run_id"]
    predictions = pd.read_parquet(runs / "predictions.parquet")
    assert not predictions.duplicated(["trade_date", "ts_code", "model", "horizon"]).any()
    code, _, err = run_cli("backtest", "--run", board["run_id"], "--model", "lightgbm",
                           *common)
    assert code == 0, err
    again = json.loads((runs / "backtest.json").read_text())
    assert again == [r for r in board["backtest"] if r["model"] == "lightgbm"]
    code, _, err = run_cli("report", board["run_id"], "--results-dir", str(results), *common)
    assert code == 0, err
    page = (results / "report" / board["run_id"] / "index.html").read_text(encoding="utf-8")
    assert "This page shows horizon 1 " in page


def test_tune_on_a_universe_reads_nothing_of_the_test_period(market, tmp_path):
    """Rank IC trials on the validation days; scrambling the factors and closes from the
    test period on leaves every trial's score as it was; evaluate picks the best up."""

    from stockpred.evaluation.leaderboard import tuned_models

    folder, common = market
    tune = ["tune", "--universe", "top20", "--model", "lightgbm", "--agent", "random",
            "--budget", "2", "--quick"]
    code, out, err = run_cli(*tune, *common)
    assert code == 0, err
    assert "2 trials" in out and "best validation Rank IC" in out
    tuned = folder / "data" / "runs" / "tune" / "cross_section" / "top20" / "lightgbm"
    best = json.loads((tuned / "random.best.json").read_text())
    assert best["scope"] == {"universe": "top20", "periods": ["20160101", "20180701"]}
    trials = pd.concat([pd.read_parquet(p) for p in tuned.glob("random-*.parquet")])

    scrambled = tmp_path / "data"
    shutil.copytree(folder / "data", scrambled, ignore=shutil.ignore_patterns("tune"))
    rng = np.random.default_rng(0)
    for table in [*scrambled.glob("factors/top20/*.parquet"),
                  *scrambled.glob("raw/*daily/**/*.parquet")]:
        frame = pd.read_parquet(table)
        if "trade_date" not in frame.columns:
            continue
        later = frame["trade_date"].astype(str) >= "20180701"
        numbers = [c for c in frame.columns if c not in ("trade_date", "ts_code")
                   and pd.api.types.is_float_dtype(frame[c])]
        for column in numbers:
            noise = rng.uniform(0.5, 1.5, int(later.sum()))
            frame.loc[later, column] = (frame.loc[later, column] * noise).astype(
                frame[column].dtype)
        frame.to_parquet(table, index=False)
    config = folder / "config.json"
    code, _, err = run_cli(*tune, "--data-dir", str(scrambled), "--config", str(config))
    assert code == 0, err
    again = pd.concat([pd.read_parquet(p) for p in (scrambled / tuned.relative_to(
        folder / "data")).glob("random-*.parquet")])
    assert list(again["params"]) == list(trials["params"])
    np.testing.assert_array_equal(again["skill"].to_numpy(float), trials["skill"].to_numpy(float))

    run_config = quick_config(with_overrides(Config(), SETTINGS))
    paths = resolve_paths(run_config, folder / "data")
    found = tuned_models(run_config, {m: paths.cross_section_tune_dir("top20", m)
                                      for m in ("lightgbm", "xgboost_cs")}, best["scope"])
    assert list(found) == ["lightgbm (tuned by random) [quick]"]
    assert found["lightgbm (tuned by random) [quick]"].settings.items() >= best["best"].items()
    assert tuned_models(run_config, {"lightgbm": tuned}, {**best["scope"], "universe": "all"}) \
        == {}


def test_xgboost_on_dask_fits_the_same_trees_on_one_worker(panel):
    """cross_section.xgboost.on_dask: the fit on a real LocalCluster (127.0.0.1) of one
    worker is the in-process fit; without a cluster it says what to set."""
    from distributed import Client, LocalCluster

    from stockpred.errors import InputError

    config, data, _ = panel
    train, test = data.rows(data.dates < "20180101"), data.rows(data.dates >= "20180101")
    valid = train.rows(train.dates >= "20170701")
    train = train.rows(train.dates < "20170701")
    in_process = prototype(config, "xgboost_cs")
    on_dask = type(in_process)({**in_process.settings, "on_dask": True}, in_process.seed)
    with pytest.raises(InputError, match="needs a Dask cluster"):
        on_dask.clone().fit(train, valid)
    expected = in_process.clone().fit(train, valid).predict(test)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        got = on_dask.clone().fit(train, valid).predict(test)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("objective", ["regression", "lambdarank"])
def test_lightgbm_fits_the_estimators_trees_from_views_of_the_panel(objective, panel):
    """LightGBMModel trains through lightgbm.train on views of the panel's rows (issue 23:
    no gathered copy): the same booster, parameters included, as LGBMRegressor/LGBMRanker's
    own fit on the gathered rows, and the same scores."""
    import lightgbm

    config, data, _ = panel
    train, valid = data.training("20180102", 300, 60)
    # one stock left out (as a suspension would): each day's rows are a view of their own
    left_out = data.keys["ts_code"].iloc[0]
    train, valid = (p.rows((p.keys["ts_code"] != left_out).to_numpy()) for p in (train, valid))
    assert len(train.x.runs()) > 10
    model = prototype(config, "lightgbm")
    model = type(model)({**model.settings, "objective": objective}, model.seed)
    got = model.clone().fit(train, valid)
    y, group = model._target(train)
    vy, vgroup = model._target(valid)
    estimator = (lightgbm.LGBMRanker if group is not None else lightgbm.LGBMRegressor)(
        n_estimators=model.settings["n_estimators"], **model._params())
    ranking = {} if group is None else dict(group=group, eval_group=[vgroup],
                                            eval_at=[model.settings["topk_eval"]])
    estimator.fit(np.asarray(train.x), y, eval_X=(np.asarray(valid.x),), eval_y=(vy,),
                  callbacks=[lightgbm.early_stopping(
                      model.settings["early_stopping_rounds"], verbose=False)], **ranking)
    assert got.model_.booster_.model_to_string() == estimator.booster_.model_to_string()
    test = data.rows(data.dates >= "20180102")
    np.testing.assert_array_equal(got.predict(test), estimator.predict(np.asarray(test.x)))


def test_the_windowed_panel_holds_the_whole_historys_rows(market, panel):
    """evaluate's panel holds only the days its walk-forward reads, from the first refit's
    trailing train_days through the test end, each row as the whole history's panel has it
    (factors normalised a year at a time equal those normalised at once)."""
    from stockpred.stages.cross_section import universe_panel

    folder, _ = market
    config, whole, _ = panel
    protocol = WalkForward.from_config(config, CROSS_SECTION)
    windowed, _, _ = universe_panel(config, resolve_paths(config, folder / "data"), "top20",
                                    protocol.test_start, protocol.test_end)
    calendar = np.unique(whole.dates)
    first = calendar[np.searchsorted(calendar, protocol.test_start) - protocol.train_days]
    assert first > calendar[0]  # the window leaves days out
    kept = whole.rows((whole.dates >= first) & (whole.dates <= protocol.test_end))
    pd.testing.assert_frame_equal(windowed.keys, kept.keys)
    for name in ("x", "y", "known_on", "last_return"):
        np.testing.assert_array_equal(getattr(windowed, name), getattr(kept, name))
    pd.testing.assert_frame_equal(windowed.returns, kept.returns)


def test_evaluate_reads_no_factor_year_outside_its_window(market, panel, tmp_path):
    """With the factor file of a year before the first refit's window corrupted, evaluate
    --cross-section writes the predictions and leaderboard rows of a walk-forward over the
    whole history's panel, as it did when it read every year."""

    from stockpred.evaluation.cross_section import score_rows
    from stockpred.evaluation.walkforward import walk_forward

    folder, _ = market
    config, whole, bars = panel
    shutil.copytree(folder / "data", tmp_path / "data")
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    outside = resolve_paths(config, tmp_path / "data").factors_table("top20", "2015")
    outside.write_bytes(b"not a parquet file")
    common = ["--data-dir", str(tmp_path / "data"), "--config", str(tmp_path / "config.json")]
    code, _, err = run_cli("evaluate", "--cross-section", "--quick", "--models", "lightgbm",
                           "--results-dir", str(tmp_path / "results"), *common)
    assert code == 0, err
    board = json.loads((tmp_path / "results" / "cross_section" / "leaderboard.json")
                       .read_text())
    stored = pd.read_parquet(tmp_path / "data" / "runs" / "evaluate" / board["run_id"]
                             / "predictions.parquet")
    protocol = WalkForward.from_config(config, CROSS_SECTION)
    rows, models = [], ["last_return", "random", "lightgbm"]  # a tuned model may be there too
    reversal = None  # every row after last_return's is paired with it, as the stage does
    for name in models:
        scores = walk_forward(prototype(config, name), whole, protocol, progress=False)
        mine = stored[stored["model"] == name].drop(columns="model").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, scores[["trade_date", "ts_code", "score"]])
        rows += score_rows(name, scores, whole, bars, config.cross_section.backtest.execution,
                           reference=reversal)
        reversal = scores if name == "last_return" else reversal
    assert json.loads(json.dumps(rows)) == [r for r in board["rows"] if r["model"] in models]


def test_a_window_is_the_alpha360_ratios_of_past_bars_alone_and_scale_free():
    """BarHistory rebuilds each row's window from its stock's bars up to that row: the
    log of each lag's close, open, high, low over today's close and volume over today's;
    a stock's prices (or volume unit) times a constant, or its later bars changed, leave
    it as it was; lags before the first bar are 0."""
    from stockpred.dataset import bar_history

    rng = np.random.default_rng(0)
    days = [f"201801{d:02d}" for d in range(1, 13)]
    bars = pd.DataFrame({"trade_date": days * 2, "ts_code": ["A.SH"] * 12 + ["B.SZ"] * 12,
                         "close": rng.uniform(9, 11, 24), "vol": rng.uniform(1e3, 2e3, 24)})
    bars["open"], bars["high"], bars["low"] = (bars["close"] * f for f in (0.99, 1.03, 0.97))
    keys = pd.DataFrame({"trade_date": ["20180105", "20180112"], "ts_code": ["B.SZ", "B.SZ"]})
    history = bar_history(bars.sample(frac=1, random_state=0))
    got = history.windows(history.positions(keys), 6)
    b = bars[bars["ts_code"] == "B.SZ"].reset_index(drop=True)
    today = b.iloc[4]
    expected = np.log(np.stack([b.loc[:4, "close"] / today["close"],
                                b.loc[:4, "open"] / today["close"],
                                b.loc[:4, "high"] / today["close"],
                                b.loc[:4, "low"] / today["close"],
                                b.loc[:4, "vol"] / today["vol"]], axis=1))
    np.testing.assert_allclose(got[0, 1:], expected, atol=1e-5)
    assert (got[0, 0] == 0).all()  # before B.SZ's first bar

    scaled = bars.copy()
    mine = scaled["ts_code"] == "B.SZ"
    scaled.loc[mine, ["open", "high", "low", "close"]] *= 1024.0
    scaled.loc[mine, "vol"] *= 100.0
    later = mine & (scaled["trade_date"] > "20180105")
    scaled.loc[later, "close"] *= 3.0
    again = bar_history(scaled)
    np.testing.assert_array_equal(again.windows(again.positions(keys[:1]), 6), got[:1])
    assert not np.array_equal(again.windows(again.positions(keys[1:]), 6), got[1:])
