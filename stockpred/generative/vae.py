"""A variational autoencoder of multivariate windows, and its latent codes as features.

A window is the last ``vae.window`` days (ending at t, never later) of one stock's
features, standardised with statistics of the training rows only (median imputation,
z-scores clipped at +-10). A GRU encoder maps it to q(z | window) = N(mean, diag var); a
GRU decoder maps z back to the window. The likelihood is Gaussian with unit variance,
fit for standardised data, so the loss per window is

    -ELBO = sum 0.5 (x - x_hat)^2 + 0.5 D log(2 pi)  +  beta KL(q(z | x) || N(0, I))

(D = window x features), which is positive; beta rises linearly from 0 to 1 over
``kl_warmup_epochs`` (KL warm-up). The original project used binary cross-entropy on
data that is not in [0, 1], which is not a likelihood of it and went negative.

The stage (stockpred.stages.generative.run_vae) trains on rows before
evaluation.validation_start, monitors the validation period (the weights of the epoch
with the lowest validation -ELBO at beta = 1 are kept), saves the model and scaler under
<data dir>/models/vae/<run id>/ and writes, per stock, <data dir>/latent/<ts_code>.parquet:
trade_date and vae_z0..vae_z{k-1}, the mean of q(z | window ending at t), NaN while the
window is incomplete.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from stockpred.dataset import Standardizer, StockData, windows
from stockpred.generative.common import Autoencoder
from stockpred.generative.settings import VAESettings
from stockpred.runtime import keras_seeded, native_stderr_to_log

LOG_2PI = math.log(2 * math.pi)


def latent_columns(k: int) -> list[str]:
    return [f"vae_z{i}" for i in range(k)]


class WindowVAE(Autoencoder):
    """A VAE of feature windows. ``__init__`` stores settings; ``fit`` returns self and
    keeps learned state in attributes ending in ``_``; ``encode`` gives the latent means."""

    name = "vae"
    sections = ("generative.vae",)
    uses_validation = True
    state_file = "vae.json"
    learned = ("features", "history", "best_epoch", "train_windows")
    networks = {"encoder_": "encoder.keras", "decoder_": "decoder.keras"}

    def __init__(self, settings: dict | None = None, seed: int = 42):
        super().__init__({**VAESettings().model_dump(), **(settings or {})}, seed)

    @classmethod
    def settings_from(cls, config):
        return config.generative.vae.model_dump()

    @property
    def window(self) -> int:
        return int(self.settings["window"])

    # -- tensors ----------------------------------------------------------------------------
    def _windows(self, stock: StockData) -> np.ndarray:
        x = self.scaler_.transform(stock.features[self.features_].to_numpy(float))
        return windows(x, self.window).astype("float32")

    def _dataset(self, stocks: list[StockData]) -> np.ndarray:
        parts = [self._windows(s) for s in stocks if len(s) >= self.window]
        if not parts:
            return np.zeros((0, self.window, len(self.features_)), dtype="float32")
        return np.concatenate(parts)

    def _build(self, features: int):
        import keras
        from keras import layers

        s, k = self.settings, int(self.settings["latent_dim"])
        source = keras.Input(shape=(self.window, features), name="window")
        h = layers.GRU(s["units"], name="encoder_gru")(source)
        encoder = keras.Model(source, [layers.Dense(k, name="z_mean")(h),
                                       layers.Dense(k, name="z_log_var")(h)], name="encoder")
        code = keras.Input(shape=(k,), name="z")
        y = layers.Dense(s["units"], activation="tanh", name="decoder_in")(code)
        y = layers.RepeatVector(self.window)(y)
        y = layers.GRU(s["units"], return_sequences=True, name="decoder_gru")(y)
        decoder = keras.Model(code, layers.Dense(features, name="x_mean")(y), name="decoder")
        return encoder, decoder

    # -- learning ---------------------------------------------------------------------------
    def fit(self, train: list[StockData], valid: list[StockData] | None = None,
            verbose: int = 0) -> "WindowVAE":
        keras = keras_seeded(self.seed)
        import tensorflow as tf

        s = self.settings
        self.features_ = list(train[0].features.columns)
        self.scaler_ = Standardizer().fit(np.vstack([t.features[self.features_].to_numpy(float)
                                                     for t in train]))
        x = self._dataset(train)
        if not len(x):
            raise ValueError(f"no training window of {self.window} days")
        xv = self._dataset(valid) if valid else x[:0]
        k, dims = int(s["latent_dim"]), x.shape[1] * x.shape[2]
        with native_stderr_to_log():
            self.encoder_, self.decoder_ = self._build(x.shape[2])
        optimizer = keras.optimizers.Adam(s["learning_rate"])
        const = tf.constant(0.5 * dims * LOG_2PI, tf.float32)

        def terms(xb, eps, training):
            mean, log_var = self.encoder_(xb, training=training)
            z = mean + tf.exp(0.5 * log_var) * eps
            x_hat = self.decoder_(z, training=training)
            sq = tf.reduce_sum(tf.square(xb - x_hat), axis=[1, 2])
            kl = -0.5 * tf.reduce_sum(1 + log_var - tf.square(mean) - tf.exp(log_var), axis=1)
            return 0.5 * sq + const, kl, sq / dims

        @tf.function(reduce_retracing=True)
        def train_step(xb, eps, beta):
            with tf.GradientTape() as tape:
                nll, kl, mse = terms(xb, eps, True)
                loss = tf.reduce_mean(nll + beta * kl)
            variables = self.encoder_.trainable_variables + self.decoder_.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return tf.reduce_sum(nll), tf.reduce_sum(kl), tf.reduce_sum(mse)

        @tf.function(reduce_retracing=True)
        def eval_step(xb, eps):
            nll, kl, mse = terms(xb, eps, False)
            return tf.reduce_sum(nll), tf.reduce_sum(kl), tf.reduce_sum(mse)

        rng = np.random.default_rng(self.seed)
        batch, warmup = int(s["batch_size"]), int(s["kl_warmup_epochs"])
        history: dict[str, list[float]] = {key: [] for key in (
            "beta", "loss", "neg_elbo", "nll", "kl", "mse", "val_neg_elbo", "val_nll",
            "val_kl", "val_mse", "seconds")}
        best, best_weights = math.inf, None
        for epoch in range(int(s["epochs"])):
            started = time.perf_counter()
            beta = 1.0 if warmup == 0 else min(1.0, epoch / warmup)
            order = rng.permutation(len(x))
            sums = np.zeros(3)
            with native_stderr_to_log():
                for i in range(0, len(x), batch):
                    xb = x[order[i:i + batch]]
                    eps = rng.standard_normal((len(xb), k)).astype("float32")
                    sums += [float(v) for v in train_step(xb, eps, tf.constant(beta, tf.float32))]
                nll, kl, mse = sums / len(x)
                history["beta"].append(beta)
                history["loss"].append(nll + beta * kl)
                history["neg_elbo"].append(nll + kl)
                history["nll"].append(nll)
                history["kl"].append(kl)
                history["mse"].append(mse)
                if len(xv):
                    vr = np.random.default_rng(self.seed + 1)  # the same noise every epoch
                    vsums = np.zeros(3)
                    for i in range(0, len(xv), 1024):
                        xb = xv[i:i + 1024]
                        eps = vr.standard_normal((len(xb), k)).astype("float32")
                        vsums += [float(v) for v in eval_step(xb, eps)]
                    vnll, vkl, vmse = vsums / len(xv)
                    for key, value in (("val_neg_elbo", vnll + vkl), ("val_nll", vnll),
                                       ("val_kl", vkl), ("val_mse", vmse)):
                        history[key].append(value)
                    if beta >= 1.0 and vnll + vkl < best:
                        best = vnll + vkl
                        best_weights = (self.encoder_.get_weights(), self.decoder_.get_weights())
                        self.best_epoch_ = epoch
            history["seconds"].append(time.perf_counter() - started)
            if verbose:
                print(f"vae epoch {epoch + 1}/{s['epochs']}: beta {beta:.2f} -ELBO "
                      f"{nll + kl:.2f}" + (f" val {history['val_neg_elbo'][-1]:.2f}"
                                           if len(xv) else ""), flush=True)
        if best_weights is not None:
            self.encoder_.set_weights(best_weights[0])
            self.decoder_.set_weights(best_weights[1])
        else:
            self.best_epoch_ = int(s["epochs"]) - 1
        self.history_ = history
        self.train_windows_ = int(len(x))
        return self

    # -- using it ---------------------------------------------------------------------------
    def encode(self, stock: StockData) -> np.ndarray:
        """(rows, latent_dim): the mean of q(z | window ending at t); NaN before a full window."""
        k = int(self.settings["latent_dim"])
        out = np.full((len(stock), k), np.nan)
        if len(stock) < self.window:
            return out
        with native_stderr_to_log():
            mean, _ = self.encoder_.predict(self._windows(stock), verbose=0, batch_size=1024)
        out[self.window - 1:] = mean
        return out

    def reconstruct(self, stock: StockData) -> np.ndarray:
        """(windows, window, features): the decoder's mean at each window's latent mean."""
        z = self.encode(stock)[self.window - 1:].astype("float32")
        with native_stderr_to_log():
            return self.decoder_.predict(z, verbose=0, batch_size=1024)

    def window_errors(self, stock: StockData) -> pd.DataFrame:
        """Per window, by the day it ends (``trade_date``): the reconstruction's mean
        squared error per standardised value (``mse``) and the training mean's
        (``mse_training_mean``: the naive reconstruction, 0 in standardised units)."""
        if len(stock) < self.window:
            return pd.DataFrame(columns=["trade_date", "mse", "mse_training_mean"])
        x = self._windows(stock)
        return pd.DataFrame({"trade_date": stock.dates[self.window - 1:].astype(str),
                             "mse": ((x - self.reconstruct(stock)) ** 2).mean(axis=(1, 2)),
                             "mse_training_mean": (x ** 2).mean(axis=(1, 2))})

    def latent_frame(self, stock: StockData) -> pd.DataFrame:
        z = self.encode(stock)
        frame = pd.DataFrame(z, columns=latent_columns(z.shape[1]))
        frame.insert(0, "trade_date", stock.dates.astype(str))
        return frame
