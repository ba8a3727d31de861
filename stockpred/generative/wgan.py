"""A conditional Wasserstein GAN with gradient penalty for the next days' returns.

The condition at day t is the window of the last ``wgan.window`` daily log returns of the
close (ending at t), standardised with the training rows' mean and standard deviation,
optionally with a few standardised features (``wgan.features``) as extra channels. An
LSTM generator reads the condition and a noise vector and produces the next
``wgan.horizon`` standardised log returns; a 1-D CNN critic scores the whole sequence,
condition then path (feature channels hold their last known value over the path). The
critic is trained ``critic_steps`` times per generator step on

    E[D(fake)] - E[D(real)] + gp_weight E[(||grad D(x_hat)||_2 - 1)^2],

x_hat a random point between a real and a fake sequence (Gulrajani et al., 2017), and
the generator on -E[D(fake)], with tf.GradientTape on the TensorFlow backend. An epoch
is as many generator steps as there are training batches.

`WGANForecaster` (registry name "wgan") forecasts the next close as the median of
sampled next-day closes, so it joins the walk-forward leaderboard; `sample_paths` gives
sampled future paths for fan charts. Noise for a day is drawn from a generator seeded by
(seed, day, stock), so a day's samples do not depend on which other rows are present.

The stage (stockpred.stages.generative.run_wgan) trains on rows before evaluation.validation_start (the validation period is
monitored, not used to pick weights: Wasserstein estimate and next-day CRPS), saves under <data dir>/models/wgan/<run id>/
and scores the sampled distributions on the test period against a Gaussian random walk
with the training mean and volatility: CRPS and the coverage of central 80% and 95%
bands, for the next day and the next ``horizon`` days, and the next-day RMSE of the
sample median against persistence.
"""

from __future__ import annotations

import math
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.data.store import atomic_save
from stockpred.dataset import Standardizer, StockData, windows
from stockpred.errors import InputError
from stockpred.generative import common
from stockpred.generative.settings import WGANSettings
from stockpred.models.base import Forecaster
from stockpred.runtime import keras_seeded, native_stderr_to_log

GENERATOR_FILE = "generator.keras"
CRITIC_FILE = "critic.keras"
BANDS = (0.80, 0.95)


# -- distribution scores ------------------------------------------------------------------------
def crps_sample(samples, observed) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (..., n) at ``observed`` (...):
    E|X - y| - 0.5 E|X - X'|, both means over the n samples (all n^2 pairs, i = j
    included), which is the exact CRPS of the sample's step CDF."""
    x = np.sort(np.asarray(samples, dtype=float), axis=-1)
    y = np.asarray(observed, dtype=float)
    n = x.shape[-1]
    first = np.mean(np.abs(x - y[..., None]), axis=-1)
    weights = 2 * np.arange(1, n + 1) - n - 1  # sum_ij |x_i - x_j| = 2 sum_i (2i-n-1) x_(i)
    spread = 2 * np.sum(weights * x, axis=-1) / n ** 2
    return first - 0.5 * spread


def band_coverage(samples, observed, level: float) -> np.ndarray:
    """Whether ``observed`` lies in the central ``level`` band of ``samples`` (linear
    quantiles), per row (booleans)."""
    lo, hi = np.quantile(np.asarray(samples, dtype=float), [(1 - level) / 2, (1 + level) / 2],
                         axis=-1)
    y = np.asarray(observed, dtype=float)
    return (y >= lo) & (y <= hi)


def distribution_scores(samples: np.ndarray, observed: np.ndarray) -> dict:
    """Mean CRPS, coverage of the central 80% / 95% bands, mean sample std, rows."""
    keep = np.isfinite(observed) & np.isfinite(samples).all(axis=-1)
    x, y = samples[keep], observed[keep]
    if not len(y):
        return {"crps": math.nan, "coverage_80": math.nan, "coverage_95": math.nan,
                "sample_std": math.nan, "origins": 0}
    return {"crps": float(crps_sample(x, y).mean()),
            **{f"coverage_{int(b * 100)}": float(band_coverage(x, y, b).mean()) for b in BANDS},
            "sample_std": float(x.std(axis=-1).mean()), "origins": int(len(y))}


# -- the gradient penalty -------------------------------------------------------------------------
def gradient_penalty(critic, real, fake, weight: float = 1.0, epsilon=None, seed=None):
    """``weight`` * mean over the batch of (||d critic / d x_hat||_2 - 1)^2, where
    x_hat = epsilon * real + (1 - epsilon) * fake and the norm runs over every axis but the
    batch. ``epsilon``: one number in [0, 1] per row (shape (batch,) or broadcastable);
    drawn uniformly when None."""
    import tensorflow as tf

    real = tf.convert_to_tensor(real)
    fake = tf.cast(tf.convert_to_tensor(fake), real.dtype)
    shape = [tf.shape(real)[0]] + [1] * (len(real.shape) - 1)
    if epsilon is None:
        epsilon = tf.random.uniform(shape, dtype=real.dtype, seed=seed)
    else:
        epsilon = tf.reshape(tf.cast(epsilon, real.dtype), shape)
    mixed = epsilon * real + (1 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = critic(mixed, training=True)
    grads = tape.gradient(scores, mixed)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=list(range(1, len(real.shape))))
                    + tf.constant(1e-12, real.dtype))
    return tf.cast(weight, real.dtype) * tf.reduce_mean(tf.square(norms - 1))


# -- networks -----------------------------------------------------------------------------------
def build_generator(window: int, channels: int, horizon: int, noise_dim: int, units: int):
    """LSTM over the condition; its state and the noise start an LSTM that unrolls the path."""
    import keras
    from keras import layers

    condition = keras.Input(shape=(window, channels), name="condition")
    noise = keras.Input(shape=(noise_dim,), name="noise")
    state = layers.LSTM(units, name="g_encoder")(condition)
    path = _decode(state, noise, horizon, units)
    return keras.Model([condition, noise], path, name="generator")


_DECODER_LAYERS = ("g_concat", "g_start", "g_decoder", "g_out")


def _decode(state, noise, steps: int, units: int, model=None):
    """The path's first ``steps`` days; with ``model``, its trained layers (the first steps
    of a path do not depend on how many follow: every step reads the same input)."""
    from keras import layers

    if model is None:
        concat, start, lstm, out = (
            layers.Concatenate(name="g_concat"),
            layers.Dense(units, activation="tanh", name="g_start"),
            layers.LSTM(units, return_sequences=True, name="g_decoder"),
            layers.Dense(1, name="g_out"))
    else:
        concat, start, lstm, out = (model.get_layer(name) for name in _DECODER_LAYERS)
    y = layers.RepeatVector(steps)(start(concat([state, noise])))
    return layers.Reshape((steps,))(out(lstm(y)))


def _generator_parts(generator, steps: int):
    """(encoder, decoder) sharing the generator's layers: condition -> state once per day,
    then (state, noise) -> the first ``steps`` days of the path for each sample."""
    import keras

    window, channels = generator.inputs[0].shape[1:]
    noise_dim = generator.inputs[1].shape[1]
    condition = keras.Input(shape=(window, channels))
    encoder = keras.Model(condition, generator.get_layer("g_encoder")(condition))
    units = generator.get_layer("g_encoder").units
    state, noise = keras.Input(shape=(units,)), keras.Input(shape=(noise_dim,))
    decoder = keras.Model([state, noise], _decode(state, noise, steps, units, generator))
    return encoder, decoder


def build_critic(steps: int, channels: int, filters: int):
    """1-D convolutions over condition + path; no normalisation layers (they would break
    the per-sample gradient penalty)."""
    import keras
    from keras import layers

    source = keras.Input(shape=(steps, channels), name="sequence")
    y = layers.Conv1D(filters, 5, padding="same", name="c_conv1")(source)
    y = layers.LeakyReLU(0.2)(y)
    y = layers.Conv1D(2 * filters, 5, strides=2, padding="same", name="c_conv2")(y)
    y = layers.LeakyReLU(0.2)(y)
    y = layers.Flatten()(y)
    return keras.Model(source, layers.Dense(1, name="c_score")(y), name="critic")


def critic_sequence(condition, path):
    """The critic's input: (batch, window + horizon, channels). Channel 0 is the returns,
    condition then path; feature channels keep their last known value over the path."""
    import tensorflow as tf

    condition = tf.convert_to_tensor(condition)
    path = tf.cast(path, condition.dtype)
    horizon = path.shape[1]
    returns = tf.concat([condition[:, :, :1], path[:, :, None]], axis=1)
    if condition.shape[2] == 1:
        return returns
    last = tf.repeat(condition[:, -1:, 1:], horizon, axis=1)
    return tf.concat([returns, tf.concat([condition[:, :, 1:], last], axis=1)], axis=2)


# -- the forecaster -------------------------------------------------------------------------------
class WGANForecaster(Forecaster):
    """Next close (the data's horizon ahead) = median of sampled closes; ``sample_paths`` for
    fan charts."""

    name = "wgan"
    sections = ("generative.wgan",)
    uses_validation = True  # monitored (Wasserstein estimate, next-day CRPS), not selected on
    samples_returns = True

    @classmethod
    def settings_from(cls, config):
        return config.generative.wgan.model_dump()

    def __init__(self, settings: dict | None = None, seed: int = 42):
        super().__init__({**WGANSettings().model_dump(), **(settings or {})}, seed)

    @property
    def window(self) -> int:
        return int(self.settings["window"])

    @property
    def horizon(self) -> int:
        return int(self.settings["horizon"])

    # -- tensors ----------------------------------------------------------------------------
    def _check_features(self, stock: StockData) -> None:
        missing = [f for f in self.settings["features"] if f not in stock.features.columns]
        if missing:
            raise InputError(f"wgan.features {', '.join(missing)} not among the loaded "
                             f"features of {stock.ts_code}")

    def _scaled(self, stock: StockData) -> np.ndarray:
        """(rows, channels): standardised log return, the standardised features, then the
        context channels of a conditioned WGAN."""
        r = (common.log_returns(stock.close) - self.return_mean_) / self.return_std_
        columns = [r[:, None]]
        if self.settings["features"]:
            self._check_features(stock)
            columns.append(self.scaler_.transform(
                stock.features[self.settings["features"]].to_numpy(float)))
        columns.append(self._context(stock))
        return np.hstack(columns)

    # -- the condition beyond prices (wgan+minutes, wgan+news) ---------------------------------
    def _fit_context(self, train: list[StockData], valid: list[StockData]) -> None:
        """Learn, from the rows handed to fit (whose targets are all known before any day
        it forecasts), how to turn a row's other inputs into context channels."""

    def _context(self, stock: StockData) -> np.ndarray:
        """(rows, context channels), each row known by its close: none for the plain WGAN."""
        return np.zeros((len(stock), 0))

    def _conditions(self, stock: StockData) -> np.ndarray:
        """(rows, window, channels): the window ending at each row; NaN rows first."""
        out = np.full((len(stock), self.window, self.channels_), np.nan, dtype="float32")
        if len(stock) >= self.window:
            out[self.window - 1:] = windows(self._scaled(stock), self.window)
        return out

    def _targets(self, stock: StockData) -> np.ndarray:
        """(rows, horizon): the next ``horizon`` standardised log returns after each row."""
        r = (common.log_returns(stock.close) - self.return_mean_) / self.return_std_
        padded = np.append(r, np.full(self.horizon, np.nan))
        return windows(padded[1:, None], self.horizon)[:len(stock), :, 0]

    def _pairs(self, stocks: list[StockData]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for stock in stocks:
            x, y = self._conditions(stock), self._targets(stock)
            keep = np.isfinite(x).all(axis=(1, 2)) & np.isfinite(y).all(axis=1)
            xs.append(x[keep])
            ys.append(y[keep])
        if not xs:
            return (np.zeros((0, self.window, self.channels_), "float32"),
                    np.zeros((0, self.horizon), "float32"))
        return np.concatenate(xs).astype("float32"), np.concatenate(ys).astype("float32")

    # -- learning ---------------------------------------------------------------------------
    def fit(self, train, valid=None, log_dir=None, verbose=0):
        keras = keras_seeded(self.seed)
        import tensorflow as tf

        s = self.settings
        self.__dict__.pop("_parts_cache", None)
        returns = np.concatenate([common.log_returns(t.close) for t in train])
        self.return_mean_ = float(np.nanmean(returns))
        self.return_std_ = float(np.nanstd(returns)) or 1.0
        if s["features"]:
            for t in train:
                self._check_features(t)
            self.scaler_ = Standardizer().fit(np.vstack([t.features[s["features"]].to_numpy(
                float) for t in train]))
        self._fit_context(train, valid or [])
        self.channels_ = self._scaled(train[0]).shape[1]
        x, y = self._pairs(train)
        if not len(x):
            raise ValueError(f"no training window of {self.window} + {self.horizon} days")
        xv, yv = self._pairs(valid) if valid else (x[:0], y[:0])
        with native_stderr_to_log():
            self.generator_ = build_generator(self.window, self.channels_, self.horizon,
                                              s["noise_dim"], s["generator_units"])
            self.critic_ = build_critic(self.window + self.horizon, self.channels_,
                                        s["critic_filters"])
        g_opt = keras.optimizers.Adam(s["generator_learning_rate"], beta_1=0.5, beta_2=0.9)
        c_opt = keras.optimizers.Adam(s["critic_learning_rate"], beta_1=0.5, beta_2=0.9)
        gp_weight = float(s["gp_weight"])
        generator, critic = self.generator_, self.critic_

        @tf.function(reduce_retracing=True)
        def critic_step(cond, path, noise, eps):
            fake_path = generator([cond, noise], training=True)
            real, fake = critic_sequence(cond, path), critic_sequence(cond, fake_path)
            with tf.GradientTape() as tape:
                distance = (tf.reduce_mean(critic(real, training=True))
                            - tf.reduce_mean(critic(fake, training=True)))
                penalty = gradient_penalty(critic, real, fake, gp_weight, eps)
                loss = -distance + penalty
            variables = critic.trainable_variables
            c_opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss, distance, penalty

        @tf.function(reduce_retracing=True)
        def generator_step(cond, noise):
            with tf.GradientTape() as tape:
                fake = critic_sequence(cond, generator([cond, noise], training=True))
                loss = -tf.reduce_mean(critic(fake, training=True))
            variables = generator.trainable_variables
            g_opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        @tf.function(reduce_retracing=True)
        def distance_on(cond, path, noise):
            fake = critic_sequence(cond, generator([cond, noise], training=False))
            return (tf.reduce_mean(critic(critic_sequence(cond, path), training=False))
                    - tf.reduce_mean(critic(fake, training=False)))

        rng = np.random.default_rng(self.seed)
        batch, noise_dim = int(s["batch_size"]), int(s["noise_dim"])
        steps = max(1, math.ceil(len(x) / batch))
        names = ("critic_loss", "wasserstein", "gradient_penalty", "generator_loss",
                 "val_wasserstein", "val_crps", "val_crps_random_walk", "seconds")
        history: dict[str, list[float]] = {n: [] for n in names}
        if len(xv):  # the Gaussian random walk's validation CRPS, the line to beat
            walk = np.random.default_rng(self.seed + 2).standard_normal((len(yv), 50))
            history["val_crps_random_walk"] = [float(crps_sample(walk, yv[:, 0]).mean())]
        for epoch in range(int(s["epochs"])):
            started = time.perf_counter()
            sums = np.zeros(4)
            with native_stderr_to_log():
                for _ in range(steps):
                    for _ in range(int(s["critic_steps"])):
                        idx = rng.integers(0, len(x), min(batch, len(x)))
                        noise = rng.standard_normal((len(idx), noise_dim)).astype("float32")
                        eps = rng.uniform(size=len(idx)).astype("float32")
                        sums[:3] += [float(v) for v in critic_step(x[idx], y[idx], noise, eps)]
                    idx = rng.integers(0, len(x), min(batch, len(x)))
                    noise = rng.standard_normal((len(idx), noise_dim)).astype("float32")
                    sums[3] += float(generator_step(x[idx], noise))
                c = steps * int(s["critic_steps"])
                for key, value in zip(names[:4], [sums[0] / c, sums[1] / c, sums[2] / c,
                                                  sums[3] / steps]):
                    history[key].append(value)
                if len(xv):
                    vr = np.random.default_rng(self.seed + 1)  # the same noise every epoch
                    noise = vr.standard_normal((len(xv), noise_dim)).astype("float32")
                    history["val_wasserstein"].append(float(distance_on(xv, yv, noise)))
                    draws = self._draw(xv, vr.standard_normal((len(xv), 50, noise_dim)), 1)
                    history["val_crps"].append(float(crps_sample(draws[:, :, 0],
                                                                 yv[:, 0]).mean()))
            history["seconds"].append(time.perf_counter() - started)
            if verbose:
                print(f"wgan epoch {epoch + 1}/{s['epochs']}: critic {history['critic_loss'][-1]:.4f}"
                      f" W {history['wasserstein'][-1]:.4f} GP "
                      f"{history['gradient_penalty'][-1]:.4f} generator "
                      f"{history['generator_loss'][-1]:.4f}" +
                      (f" val CRPS {history['val_crps'][-1]:.4f}" if len(xv) else ""),
                      flush=True)
        self.history_ = history
        self.train_pairs_ = int(len(x))
        return self

    # -- sampling ---------------------------------------------------------------------------
    def _parts(self, steps: int):
        cache = self.__dict__.setdefault("_parts_cache", {})
        if steps not in cache:
            with native_stderr_to_log():
                cache[steps] = _generator_parts(self.generator_, steps)
        return cache[steps]

    def _draw(self, conditions: np.ndarray, noise: np.ndarray,
              steps: int | None = None) -> np.ndarray:
        """Standardised paths (rows, n, steps) from conditions (rows, window, channels) and
        noise (rows, n, noise_dim): the first ``steps`` days (default: the horizon)."""
        steps = steps or self.horizon
        encoder, decoder = self._parts(steps)
        rows, n = noise.shape[:2]
        if not rows:
            return np.zeros((0, n, steps), dtype="float32")
        state = encoder.predict(conditions.astype("float32"), verbose=0, batch_size=4096)
        state = np.repeat(state, n, axis=0)
        flat = noise.reshape(rows * n, -1).astype("float32")
        paths = decoder.predict([state, flat], verbose=0, batch_size=16384)
        return paths.reshape(rows, n, steps)

    def _noise(self, stock: StockData, rows: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Noise for each chosen row, from a generator seeded by (seed, day, stock)."""
        code = zlib.crc32(stock.ts_code.encode())
        return np.stack([np.random.default_rng([seed, int(stock.dates[i]), code])
                         .standard_normal((n, int(self.settings["noise_dim"])))
                         for i in rows]) if len(rows) else \
            np.zeros((0, n, int(self.settings["noise_dim"])))

    def sample_returns(self, stock: StockData, n: int | None = None, rows=None,
                       seed: int | None = None, steps: int | None = None) -> np.ndarray:
        """(rows of stock, n, steps) sampled daily log returns for days t+1..t+steps (steps
        up to the horizon, its default) from what is known at t; NaN where the window is
        incomplete or the row not chosen (``rows``: a boolean mask or indices; None: all)."""
        n = int(n or self.settings["samples"])
        steps = min(int(steps or self.horizon), self.horizon)
        seed = self.seed if seed is None else seed
        chosen = np.zeros(len(stock), dtype=bool)
        chosen[np.arange(len(stock)) if rows is None else rows] = True
        out = np.full((len(stock), n, steps), np.nan)
        cond = self._conditions(stock)
        chosen &= np.isfinite(cond).all(axis=(1, 2))
        index = np.flatnonzero(chosen)
        with native_stderr_to_log():
            paths = self._draw(cond[index], self._noise(stock, index, n, seed), steps)
        out[index] = paths * self.return_std_ + self.return_mean_
        return out

    def sample_paths(self, stock: StockData, n: int | None = None, rows=None,
                     seed: int | None = None, steps: int | None = None) -> np.ndarray:
        """(rows of stock, n, steps) sampled closes of days t+1..t+steps (default: horizon)."""
        r = self.sample_returns(stock, n, rows, seed, steps)
        return stock.close[:, None, None] * np.exp(np.cumsum(r, axis=2))

    def predict(self, data: StockData) -> np.ndarray:
        if data.horizon > self.horizon:
            raise InputError(f"wgan samples paths of at most generative.wgan.horizon = "
                             f"{self.horizon} days, not the {data.horizon} of this forecast")
        closes = self.sample_paths(data, steps=data.horizon)[:, :, -1]
        out = np.full(len(data), np.nan)
        ok = np.isfinite(closes).all(axis=1)
        out[ok] = np.median(closes[ok], axis=1)
        return out

    # -- saving -----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        super().save(folder)
        atomic_save(Path(folder) / GENERATOR_FILE, self.generator_.save)
        atomic_save(Path(folder) / CRITIC_FILE, self.critic_.save)

    def _state(self) -> dict:
        return {"return_mean": self.return_mean_, "return_std": self.return_std_,
                "channels": self.channels_, "history": self.history_,
                "train_pairs": self.train_pairs_,
                "scaler": self.scaler_.to_json() if self.settings["features"] else None}

    def _restore(self, state: dict, folder: Path) -> None:
        keras = keras_seeded(self.seed)
        self.__dict__.pop("_parts_cache", None)
        self.return_mean_, self.return_std_ = state["return_mean"], state["return_std"]
        self.channels_, self.history_ = state["channels"], state["history"]
        self.train_pairs_ = state["train_pairs"]
        if state["scaler"]:
            self.scaler_ = Standardizer.from_json(state["scaler"])
        with native_stderr_to_log():
            self.generator_ = keras.models.load_model(folder / GENERATOR_FILE)
            self.critic_ = keras.models.load_model(folder / CRITIC_FILE)


# -- scoring on the test period ---------------------------------------------------------------------
def future_log_returns(stock: StockData, horizon: int) -> np.ndarray:
    """(rows, horizon): the actual log returns of days t+1..t+horizon (NaN past the end)."""
    r = np.append(common.log_returns(stock.close), np.full(horizon, np.nan))
    return windows(r[1:, None], horizon)[:len(stock), :, 0]


def random_walk_returns(rows: int, n: int, horizon: int, mean: float, std: float,
                        seed: int) -> np.ndarray:
    """(rows, n, horizon) i.i.d. Gaussian daily log returns: the naive baseline."""
    rng = np.random.default_rng(seed)
    return mean + std * rng.standard_normal((rows, n, horizon))


def fan_origins(dates: np.ndarray, mask: np.ndarray, count: int, horizon: int) -> np.ndarray:
    """``count`` rows spread evenly over the masked period, each with ``horizon`` days after it."""
    rows = np.flatnonzero(mask)
    rows = rows[rows + horizon < len(dates)]
    if not len(rows):
        return rows
    return rows[np.unique(np.linspace(0, len(rows) - 1, count + 2).round().astype(int)[1:-1])]


FAN_FILE = "fan.parquet"  # in a WGAN run folder: what `plot generative` draws, no model needed
WALK_LOW, WALK_HIGH = -1, -2  # the random walk's 2.5% and 97.5% closes in the fan table


def fan_table(model: "WGANForecaster", stock: StockData, test_mask: np.ndarray) -> pd.DataFrame:
    """origin, path, step, close at ``fan_origins`` test days: step 0 is the origin's close,
    each sampled path has its index (0, 1, ...), and the Gaussian random walk's 2.5% and
    97.5% closes have WALK_LOW and WALK_HIGH."""
    k = model.horizon
    origins = fan_origins(stock.dates, test_mask, int(model.settings["fan_origins"]), k)
    sampled = model.sample_paths(stock, rows=origins)
    frames = []
    for t in origins:
        base = stock.close[t]
        walk = random_walk_returns(1, 4000, k, model.return_mean_, model.return_std_,
                                   model.seed)[0]
        walk = base * np.exp(np.cumsum(walk, axis=1))
        closes = np.vstack([sampled[t], np.percentile(walk, (2.5, 97.5), axis=0)])
        closes = np.hstack([np.full((len(closes), 1), base), closes])
        labels = [*range(len(sampled[t])), WALK_LOW, WALK_HIGH]
        frames.append(pd.DataFrame({
            "origin": stock.dates[t], "path": np.repeat(labels, k + 1),
            "step": np.tile(np.arange(k + 1), len(labels)), "close": closes.ravel()}))
    return pd.concat(frames, ignore_index=True)


def score_distributions(model: WGANForecaster, stocks: list[StockData], masks: list[np.ndarray],
                        seed: int) -> dict:
    """CRPS and band coverage of the sampled next-day and next-``horizon``-day log returns
    on the rows in ``masks``, the model's and the Gaussian random walk's (training mean
    and volatility), with the same number of samples."""
    k, n = model.horizon, int(model.settings["samples"])
    gan, walk, actual = [], [], []
    for i, (stock, mask) in enumerate(zip(stocks, masks)):
        rows = np.flatnonzero(mask)
        gan.append(model.sample_returns(stock, n, rows)[rows])
        walk.append(random_walk_returns(len(rows), n, k, model.return_mean_,
                                        model.return_std_, seed + 17 + i))
        actual.append(future_log_returns(stock, k)[rows])
    gan, walk, actual = (np.concatenate(a) for a in (gan, walk, actual))
    out = {}
    for label, days in (("next_day", 1), (f"{k}_day", k)):
        y = actual[:, :days].sum(axis=1)
        y[~np.isfinite(actual[:, :days]).all(axis=1)] = np.nan
        out[label] = {"wgan": distribution_scores(gan[:, :, :days].sum(axis=2), y),
                      "random_walk": distribution_scores(walk[:, :, :days].sum(axis=2), y)}
    return out
