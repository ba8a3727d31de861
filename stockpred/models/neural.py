"""Keras 3 sequence forecasters: the original stacked LSTM, a GRU and a temporal CNN.

Each sees the window of the last ``sequence_length`` days ending at t and predicts the
next day. Two normalisations, both learned from training rows only:
- "global": the day's features standardised with training statistics; the target is
  the next return, z-scored with the training mean and std;
- "window" (the original project's): close and volume divided by the window's first
  value, minus 1; the target is the next close over the window's first close, minus 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stockpred.data.store import atomic_save
from stockpred.dataset import Standardizer, StockData, windows
from stockpred.models.base import Forecaster
from stockpred.runtime import keras_seeded, native_stderr_to_log

MODEL_FILE = "model.keras"


def build_network(kind: str, settings: dict, length: int, inputs: int, outputs: int = 1):
    """The architecture of ``kind`` ("lstm", "gru" or "tcn") for windows of ``length`` x ``inputs``."""
    with native_stderr_to_log():  # the first layer starts TensorFlow's devices
        return _network(kind, settings, length, inputs, outputs)


def _network(kind: str, settings: dict, length: int, inputs: int, outputs: int):
    import keras
    from keras import layers

    units, dropout = settings["units"], settings["dropout"]
    x = source = keras.Input(shape=(length, inputs))
    if kind in ("lstm", "gru"):
        recurrent = layers.LSTM if kind == "lstm" else layers.GRU
        for width in units:
            x = recurrent(width, return_sequences=True)(x)
            x = layers.Dropout(dropout)(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(dropout)(x)
    else:
        filters = units[0]
        for rate in settings["dilations"]:
            y = layers.Conv1D(filters, settings["kernel_size"], padding="causal",
                              dilation_rate=rate, activation="relu")(x)
            y = layers.Dropout(dropout)(y)
            if x.shape[-1] != filters:
                x = layers.Conv1D(filters, 1)(x)
            x = layers.Add()([x, y])
        x = layers.Flatten()(layers.Cropping1D((length - 1, 0))(x))  # the last step
    model = keras.Model(source, layers.Dense(outputs)(x), name=kind)
    model.compile(optimizer=keras.optimizers.Adam(settings["learning_rate"]), loss="mse")
    return model


class _SequenceForecaster(Forecaster):
    kind: str
    uses_validation = True  # early stopping
    writes_tensorboard = True

    @classmethod
    def settings_from(cls, config):
        return getattr(config.models, cls.kind).model_dump()

    @property
    def length(self) -> int:
        return int(self.settings["sequence_length"])

    @property
    def by_window(self) -> bool:
        return self.settings.get("normalisation") == "window"

    # -- tensors ----------------------------------------------------------------------------
    def _inputs(self, data: StockData) -> np.ndarray:
        if self.by_window:
            raw = np.column_stack([data.close, data.features["vol"].to_numpy(float)
                                   if "vol" in data.features else np.ones(len(data))])
            w = windows(raw, self.length)
            return w / np.where(w[:, :1, :] == 0, 1.0, w[:, :1, :]) - 1
        return windows(self.scaler_.transform(data.features.to_numpy(float)), self.length)

    def _targets(self, data: StockData) -> np.ndarray:
        if self.by_window:
            first = data.close[:len(data) - self.length + 1]
            return data.next_close[self.length - 1:] / first - 1
        return (data.next_return[self.length - 1:] - self.target_mean_) / self.target_std_

    def _dataset(self, stocks: list[StockData]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for stock in stocks:
            if len(stock) < self.length:
                continue
            x, y = self._inputs(stock), self._targets(stock)
            keep = ~np.isnan(y) & ~np.isnan(x).any(axis=(1, 2))
            xs.append(x[keep])
            ys.append(y[keep])
        return np.concatenate(xs).astype("float32"), np.concatenate(ys).astype("float32")

    # -- the interface --------------------------------------------------------------------
    def fit(self, train, valid=None, log_dir=None, verbose=0):
        keras = keras_seeded(self.seed)
        if not self.by_window:
            self.scaler_ = Standardizer().fit(np.vstack([s.features.to_numpy(float)
                                                         for s in train]))
            returns = np.concatenate([s.next_return for s in train])
            self.target_mean_ = float(np.nanmean(returns))
            self.target_std_ = float(np.nanstd(returns) or 1.0)
        x, y = self._dataset(train)
        self.network_ = build_network(self.kind, self.settings, self.length, x.shape[2])
        callbacks = []
        validation = None
        if valid:
            validation = self._dataset(valid)
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.settings["patience"],
                restore_best_weights=True))
        if log_dir is not None:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
        with native_stderr_to_log():
            self.history_ = self.network_.fit(
                x, y, validation_data=validation, epochs=self.settings["epochs"],
                batch_size=self.settings["batch_size"], callbacks=callbacks, verbose=verbose,
                shuffle=True).history
        return self

    def predict(self, data: StockData) -> np.ndarray:
        out = np.full(len(data), np.nan)
        if len(data) < self.length:
            return out
        x = self._inputs(data).astype("float32")
        ok = ~np.isnan(x).any(axis=(1, 2))
        z = np.full(len(x), np.nan)
        if ok.any():
            with native_stderr_to_log():
                z[ok] = self.network_.predict(x[ok], verbose=0, batch_size=1024)[:, 0]
        if self.by_window:
            forecast = data.close[:len(x)] * (1 + z)
        else:
            forecast = data.close[self.length - 1:] * (1 + z * self.target_std_
                                                       + self.target_mean_)
        out[self.length - 1:] = forecast
        return out

    def save(self, folder: Path) -> None:
        super().save(folder)
        atomic_save(Path(folder) / MODEL_FILE, self.network_.save)

    def _state(self):
        if self.by_window:
            return {}
        return {"scaler": self.scaler_.to_json(), "target_mean": self.target_mean_,
                "target_std": self.target_std_}

    def _restore(self, state, folder: Path):
        keras = keras_seeded(self.seed)
        if state:
            self.scaler_ = Standardizer.from_json(state["scaler"])
            self.target_mean_, self.target_std_ = state["target_mean"], state["target_std"]
        with native_stderr_to_log():
            self.network_ = keras.models.load_model(folder / MODEL_FILE)


class LSTMForecaster(_SequenceForecaster):
    name = kind = "lstm"
    sections = ("models.lstm",)


class GRUForecaster(_SequenceForecaster):
    name = kind = "gru"
    sections = ("models.gru",)


class TCNForecaster(_SequenceForecaster):
    name = kind = "tcn"
    sections = ("models.tcn",)
