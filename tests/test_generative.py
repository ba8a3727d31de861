"""The generative models on real shipped data: the VAE and its latent features, the WGAN-GP
forecaster and its distribution scores, the gradient penalty and CRPS by hand, and no
look-ahead anywhere."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from stockpred.config import Config, quick_config, with_overrides
from stockpred.dataset import Periods, StockData, load_stock, model_features
from stockpred.errors import MissingInputError
from stockpred.generative import vae, wgan
from stockpred.layout import resolve_paths
from stockpred.models.registry import prototype
from stockpred.plots import generative as plots
from stockpred.stages.generative import run_vae, run_wgan, vae_under_cuts
from stockpred.testing import conformance

STOCK = "600036.SH"
CUT = "20180801"  # rows from here on are scrambled in the look-ahead tests


@pytest.fixture(scope="module")
def paths(tmp_path_factory, sample_copy):
    folder = tmp_path_factory.mktemp("generative")
    sample_copy(STOCK, "20120101", folder / "data")
    return resolve_paths(Config(), folder / "data", folder / "results")


@pytest.fixture(scope="module")
def stock(paths) -> StockData:
    return load_stock(paths, STOCK, model_features(paths))


@pytest.fixture(scope="module")
def vae_run(paths):
    return run_vae(Config(), paths, quick=True)


@pytest.fixture(scope="module")
def wgan_run(paths):
    return run_wgan(Config(), paths, quick=True)


def scrambled(stock: StockData, cut: str = CUT) -> StockData:
    """Every row from ``cut`` on replaced: features reversed and scaled, closes reversed."""
    later = stock.dates >= cut
    features = stock.features.copy()
    features.loc[later] = features.loc[later].to_numpy()[::-1] * 1.7
    close = np.where(later, stock.close[::-1] * 1.3, stock.close)
    return StockData(stock.ts_code, stock.dates, close, features, np.append(close[1:], np.nan))


# -- VAE -----------------------------------------------------------------------------------------
def test_the_vae_keeps_the_model_contract(stock, tmp_path):
    train, valid = stock.rows(stock.dates < "20160101"), stock.rows(stock.dates < "20170101")
    conformance.check_model(prototype(quick_config(Config()), "vae"), [train], [valid], valid,
                            "20160101", tmp_path)


def test_vae_trains_saves_and_writes_latent_features(vae_run, paths, stock):
    model, run_dir = vae_run.model, vae_run.run_dir
    for name in ("encoder.keras", "decoder.keras", "vae.json", "metrics.json", "config.json"):
        assert (run_dir / name).exists(), name
    k, w = model.settings["latent_dim"], model.window
    frame = pd.read_parquet(paths.latent_table(STOCK))
    assert list(frame.columns) == ["trade_date"] + [f"vae_z{i}" for i in range(k)]
    assert len(frame) == len(stock) and frame["trade_date"].is_unique
    assert (frame["trade_date"].to_numpy() == stock.dates).all()  # one row per traded day
    z = frame.filter(like="vae_z").to_numpy()
    assert np.isnan(z[:w - 1]).all() and np.isfinite(z[w - 1:]).all()
    # the scaler saw training rows only
    assert model.scaler_.fit_rows == int((stock.dates < "20160101").sum())
    # Gaussian likelihood: every -ELBO is positive and above its constant 0.5 D log 2 pi
    metrics = json.loads((run_dir / "metrics.json").read_text())
    h = metrics["history"]
    assert len(h["neg_elbo"]) == len(h["val_neg_elbo"]) == 2
    assert metrics["checks"]["loss_positive"]
    assert min(h["neg_elbo"] + h["val_neg_elbo"]) > metrics["checks"]["nll_constant"] > 0
    assert h["beta"] == [0.0, 1.0]  # KL warm-up over one epoch at quick sizes
    # fit again under each train/validation cut of the days before the test, each scored
    # on the test windows against the training mean's reconstruction
    known = stock.dates[stock.next_dates < "20170101"]
    cuts = metrics["splits"]
    assert [c["split"] for c in cuts] == ["evaluation.validation_start", "0.9 / 0.1",
                                          "0.98 / 0.02"]
    for cut, share in zip(cuts[1:], (0.9, 0.98)):
        start = known[int(round(share * len(known)))]
        assert cut["validation_start"] == start
        assert cut["train_windows"] == (known < start).sum() - w + 1
    assert cuts[0]["train_windows"] == metrics["train_windows"]
    tested = stock.dates[stock.dates >= "20170101"]
    for cut in cuts:
        assert cut["test_windows"] == len(tested)
        assert cut["dm_days"] == len(tested) and cut["dm_lags"] >= w - 1
        assert 0 < cut["test_mse"] and 0 < cut["dm_pvalue"] <= 1
    # the training stage writes data; the plot stage draws it, loading no model
    plots.run(Config(), paths)
    for name in ("vae_latent.png", "vae_loss.png", "vae_splits.png"):
        assert (paths.results_dir / "generative" / name).stat().st_size > 10_000
    assert any("loss positive: yes" in line for line in vae_run.summary())


def test_a_vae_cut_too_short_for_a_window_is_skipped_and_said(vae_run, stock):
    """0.999 of the days before the test leaves fewer validation days than a window: the
    comparison says so and the codes' VAE is scored all the same."""
    config = with_overrides(Config(), {"experiments": {"train_fractions": [0.999]}})
    model = vae_run.model
    cuts = vae_under_cuts(config, [stock], Periods.from_config(config), model.settings, model)
    assert [c["split"] for c in cuts] == ["evaluation.validation_start", "0.999 / 0.001"]
    assert f"shorter than the {model.window}-day window" in cuts[1]["skipped"]
    assert "test_mse" in cuts[0]


def test_vae_round_trips(vae_run, paths, stock):
    again = vae.WindowVAE.load(vae_run.run_dir)
    np.testing.assert_allclose(again.encode(stock), vae_run.model.encode(stock), rtol=1e-6,
                               atol=1e-7, equal_nan=True)
    stored = pd.read_parquet(paths.latent_table(STOCK)).filter(like="vae_z").to_numpy()
    np.testing.assert_allclose(again.encode(stock), stored, rtol=1e-6, atol=1e-7,
                               equal_nan=True)
    recon = again.reconstruct(stock)
    assert recon.shape == (len(stock) - again.window + 1, again.window, len(again.features_))
    assert np.isfinite(recon).all()


def test_vae_latent_code_has_no_look_ahead(vae_run, stock):
    clean, dirty = vae_run.model.encode(stock), vae_run.model.encode(scrambled(stock))
    before = stock.dates < CUT
    assert before.sum() > 500
    np.testing.assert_array_equal(clean[before], dirty[before])
    assert not np.allclose(clean[~before], dirty[~before])
    # a stock cut at any day encodes its earlier days as the whole stock does
    cut = stock.upto("20170630")
    np.testing.assert_allclose(vae_run.model.encode(cut), clean[:len(cut)], rtol=1e-6,
                               atol=1e-7, equal_nan=True)
    # so the test windows' errors, which the cuts' comparison scores, end before the cut
    # as they were
    clean, dirty = (vae_run.model.window_errors(s) for s in (stock, scrambled(stock)))
    ended = clean["trade_date"] < CUT
    pd.testing.assert_frame_equal(clean[ended], dirty[ended])
    assert not np.allclose(clean.loc[~ended, "mse"], dirty.loc[~ended, "mse"])


# -- WGAN ----------------------------------------------------------------------------------------
def test_wgan_trains_scores_and_saves(wgan_run, paths):
    run_dir = wgan_run.run_dir
    for name in ("generator.keras", "critic.keras", "forecaster.json", "metrics.json",
                 "predictions.parquet", "config.json"):
        assert (run_dir / name).exists(), name
    stored = json.loads((run_dir / "metrics.json").read_text())
    k = stored["settings"]["horizon"]
    assert set(stored["distribution"]) == {"next_day", f"{k}_day"}
    for scores in stored["distribution"].values():
        for who in ("wgan", "random_walk"):
            s = scores[who]
            assert 0 < s["crps"] < 0.2
            assert 0 <= s["coverage_80"] <= s["coverage_95"] <= 1
            assert s["origins"] > 400
    assert stored["forecast"]["forecasts"] == stored["persistence"]["forecasts"] > 400
    assert stored["persistence"]["rmse_return"] > 0
    h = stored["history"]
    for key in ("critic_loss", "generator_loss", "gradient_penalty", "val_crps"):
        assert len(h[key]) == 2 and np.isfinite(h[key]).all()
    fan = pd.read_parquet(run_dir / "fan.parquet")
    assert set(fan["path"]) >= {-1, -2, 0} and fan["step"].max() == k
    plots.run(Config(), paths)
    for name in ("wgan_training.png", "wgan_fan.png"):
        assert (paths.results_dir / "generative" / name).stat().st_size > 10_000
    assert any("random walk" in line for line in wgan_run.summary())


def test_wgan_samples_and_forecasts_have_the_right_shape(wgan_run, stock):
    model = wgan_run.model
    n, k, w = 7, model.horizon, model.window
    paths_ = model.sample_paths(stock, n)
    assert paths_.shape == (len(stock), n, k)
    assert np.isnan(paths_[:w]).all() and np.isfinite(paths_[w:]).all()  # row w: first full
    predicted = model.predict(stock)
    assert predicted.shape == (len(stock),)
    assert np.isfinite(predicted[w:]).all()
    assert np.all(np.abs(predicted[w:] / stock.close[w:] - 1) < 0.2)
    # the median of the sampled next-day closes
    closes = model.sample_paths(stock)[:, :, 0]
    np.testing.assert_allclose(predicted[w:], np.median(closes[w:], axis=1), rtol=1e-6)


def test_wgan_round_trips(wgan_run, stock):
    model = wgan_run.model
    again = wgan.WGANForecaster.load(wgan_run.run_dir)
    np.testing.assert_allclose(again.sample_paths(stock, 5, seed=3),
                               model.sample_paths(stock, 5, seed=3), rtol=1e-6, equal_nan=True)
    assert not np.allclose(model.sample_paths(stock, 5, seed=3)[-1],
                           model.sample_paths(stock, 5, seed=4)[-1])
    predicted = again.predict(stock)
    np.testing.assert_allclose(predicted, model.predict(stock), rtol=1e-6, equal_nan=True)
    stored = pd.read_parquet(wgan_run.run_dir / "predictions.parquet")
    test = np.isin(stock.dates, stored["trade_date"].to_numpy())
    np.testing.assert_allclose(stored["predicted_close"].to_numpy(), predicted[test], rtol=1e-6)


def test_wgan_forecast_has_no_look_ahead(wgan_run, stock):
    model = wgan_run.model
    clean, dirty = model.predict(stock), model.predict(scrambled(stock))
    before = stock.dates < CUT
    np.testing.assert_array_equal(clean[before], dirty[before])
    assert not np.allclose(clean[~before], dirty[~before], equal_nan=True)
    # a day's samples do not depend on the rows present after it
    cut = stock.upto("20170630")
    np.testing.assert_allclose(model.predict(cut), clean[:len(cut)], rtol=1e-6,
                               equal_nan=True)


# -- the gradient penalty by hand -----------------------------------------------------------------
def test_gradient_penalty_of_a_linear_critic():
    import keras

    w = np.array([0.3, -1.2, 0.5, 2.0, 0.1, -0.7], dtype="float32")
    critic = keras.Sequential([keras.Input((3, 2)), keras.layers.Flatten(),
                               keras.layers.Dense(1)])
    critic.layers[-1].set_weights([w[:, None], np.array([0.4], dtype="float32")])
    rng = np.random.default_rng(0)
    real, fake = (rng.standard_normal((5, 3, 2)).astype("float32") for _ in range(2))
    expected = 10.0 * (np.linalg.norm(w) - 1) ** 2  # grad = w at every interpolate
    for eps in (None, rng.uniform(size=5)):
        got = float(wgan.gradient_penalty(critic, real, fake, weight=10.0, epsilon=eps))
        assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_of_a_nonlinear_critic_matches_finite_differences():
    import keras

    critic = keras.Sequential([
        keras.Input((3, 2), dtype="float64"), keras.layers.Flatten(dtype="float64"),
        keras.layers.Dense(4, activation="tanh", dtype="float64"),
        keras.layers.Dense(1, dtype="float64")])
    rng = np.random.default_rng(1)
    critic.set_weights([rng.normal(size=v.shape) for v in critic.get_weights()])
    real, fake = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    eps = np.array([0.0, 0.25, 0.6, 1.0])
    mixed = eps[:, None, None] * real + (1 - eps[:, None, None]) * fake
    h, norms = 1e-6, []
    for x in mixed:
        grad = np.zeros(x.size)
        for i in range(x.size):
            up, down = x.copy().ravel(), x.copy().ravel()
            up[i] += h
            down[i] -= h
            score = critic(np.stack([up.reshape(x.shape), down.reshape(x.shape)])).numpy()
            grad[i] = (score[0, 0] - score[1, 0]) / (2 * h)
        norms.append(np.linalg.norm(grad))
    expected = 2.5 * np.mean((np.array(norms) - 1) ** 2)
    got = float(wgan.gradient_penalty(critic, real, fake, weight=2.5, epsilon=eps))
    assert got == pytest.approx(expected, rel=1e-6)


# -- CRPS and coverage by hand --------------------------------------------------------------------
def test_crps_matches_hand_computations():
    # E|X - 2.5| = (1.5 + .5 + .5 + 1.5) / 4 = 1; E|X - X'| = 20 / 16 over all 16 pairs
    assert wgan.crps_sample([1.0, 2.0, 3.0, 4.0], 2.5) == pytest.approx(1 - 0.5 * 1.25)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 9)), rng.normal(size=3)
    brute = [np.mean(np.abs(xi - yi)) - 0.5 * np.mean(
        [abs(a - b) for a, b in itertools.product(xi, xi)]) for xi, yi in zip(x, y)]
    np.testing.assert_allclose(wgan.crps_sample(x, y), brute)
    # the integral of (F(z) - 1{z >= y})^2 for the sample's step CDF F
    grid = np.linspace(-8, 8, 400_001)
    step = (x[0][:, None] <= grid).mean(axis=0)
    integral = np.sum((step - (grid >= y[0])) ** 2) * (grid[1] - grid[0])
    assert wgan.crps_sample(x[0], y[0]) == pytest.approx(integral, abs=1e-3)


def test_band_coverage_matches_hand_computations():
    samples = np.tile(np.arange(101.0), (5, 1))  # central 80%: [10, 90]; 95%: [2.5, 97.5]
    observed = np.array([5.0, 10.0, 50.0, 90.0, 97.0])
    assert wgan.band_coverage(samples, observed, 0.80).tolist() == [False, True, True, True,
                                                                    False]
    assert wgan.band_coverage(samples, observed, 0.95).tolist() == [True] * 5
    scores = wgan.distribution_scores(samples, np.append(observed[:4], np.nan))
    assert scores["origins"] == 4 and scores["coverage_80"] == 0.75
    assert scores["coverage_95"] == 1.0
    # a well-specified Gaussian covers about its nominal share
    walk = wgan.random_walk_returns(4000, 200, 1, 0.0, 1.0, seed=5)[:, :, 0]
    truth = np.random.default_rng(6).standard_normal(4000)
    assert wgan.band_coverage(walk, truth, 0.80).mean() == pytest.approx(0.80, abs=0.03)


# -- refusals ------------------------------------------------------------------------------------
def test_missing_features_name_the_stage(tmp_path, paths):
    empty = resolve_paths(Config(), tmp_path / "data", tmp_path / "results")
    for stage in (run_vae, run_wgan):
        with pytest.raises(MissingInputError, match="stockpred features"):
            stage(Config(), empty, quick=True)
        with pytest.raises(MissingInputError, match="stockpred features"):
            stage(Config(), paths, ts_codes=["600000.SH"], quick=True)  # never built
