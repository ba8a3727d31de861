"""The minute-bar day encoder: each trading day's one-minute bars as a short daily vector.

The original design encodes a day's 240 minute bars into a vector that carries the day's
result and feeds those vectors to the daily models. Here a day becomes a grid of 240 bar
slots (tushare labels a bar by its end: 09:31..11:30 and 13:01..15:00) by 6 channels:

- open, high, low and close as log(price / the previous stored day's last close), so a
  history multiplied by a constant gives the same grid (the first stored day has no
  previous close and uses its own first open);
- the bar's share of the day's volume, times 240 (1 on an even day);
- 1 where a bar traded, 0 where the slot is filled.

A day with fewer bars is encoded, not dropped: a missing slot (a 239-bar day; the slots
after the 2016-01-04 and 2016-01-07 circuit breakers, which stopped trading after 142 and
17 bars) keeps the last close as its prices and no volume, and the codes table says how
many bars each day had. The sample's stk_mins has no ``amount``; the volume share carries
what a price-weighted amount share would add.

A dense autoencoder (grid -> units -> code -> units -> grid, squared error on the grid
standardised with statistics of the training days) learns on the days before
evaluation.validation_start only and stops early on the validation days before the test
period, so no day it encodes from the validation period on was ever seen in training.
The code of day t depends on day t's bars (and the previous close) alone: it is known at
the close of day t.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.dataset import Standardizer
from stockpred.generative.common import Autoencoder
from stockpred.generative.settings import MinuteEncoderSettings
from stockpred.runtime import keras_seeded, native_stderr_to_log

CHANNELS = ("open", "high", "low", "close", "volume_share", "traded")
PRICE_CHANNELS = 4


def _slot_labels() -> list[str]:
    """The 240 bar end times of a full day, HH:MM."""
    def span(start: int, end: int) -> list[str]:
        return [f"{m // 60:02d}:{m % 60:02d}" for m in range(start, end + 1)]

    return span(9 * 60 + 31, 11 * 60 + 30) + span(13 * 60 + 1, 15 * 60)


SLOTS = _slot_labels()
SLOT_OF = {label: i for i, label in enumerate(SLOTS)}


CODE_PREFIX = "minute_z"


def code_columns(k: int) -> list[str]:
    return [f"{CODE_PREFIX}{i}" for i in range(k)]


def code_columns_in(columns) -> list[str]:
    """The minute-code columns among ``columns`` (what with_codes joined), in code order."""
    found = [c for c in columns if c.startswith(CODE_PREFIX) and c[len(CODE_PREFIX):].isdigit()]
    return sorted(found, key=lambda c: int(c[len(CODE_PREFIX):]))


def day_grids(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(trade dates YYYYMMDD, bars per day, grids of shape days x 240 x 6) from one code's
    stk_mins rows (trade_time 'YYYY-MM-DD HH:MM:SS', open, high, low, close, vol). Bars
    outside the 240 slots (none in tushare's 1min data) are left out."""
    frame = bars.assign(day=bars["trade_time"].str.slice(0, 10).str.replace("-", ""),
                        slot=bars["trade_time"].str.slice(11, 16).map(SLOT_OF))
    frame = frame.dropna(subset=["slot"]).sort_values("trade_time", kind="stable")
    days = frame["day"].unique()
    grids = np.zeros((len(days), len(SLOTS), len(CHANNELS)), dtype="float64")
    counts = np.zeros(len(days), dtype=int)
    previous_close = np.nan
    for i, (day, rows) in enumerate(frame.groupby("day", sort=True)):
        slots = rows["slot"].to_numpy(int)
        prices = np.full((len(SLOTS), PRICE_CHANNELS), np.nan)
        prices[slots] = rows[["open", "high", "low", "close"]].to_numpy(float)
        # a slot without a bar holds the last traded close; slots before the first bar its open
        first_open = float(rows["open"].iloc[0])
        last_close = pd.Series(prices[:, 3]).ffill().fillna(first_open).to_numpy()
        empty = np.isnan(prices[:, 0])
        prices[empty] = last_close[empty, None]
        anchor = previous_close if np.isfinite(previous_close) else first_open
        grids[i, :, :PRICE_CHANNELS] = np.log(prices / anchor)
        volume = np.zeros(len(SLOTS))
        volume[slots] = rows["vol"].to_numpy(float)
        total = volume.sum()
        grids[i, :, 4] = volume / total * len(SLOTS) if total > 0 else 0.0
        grids[i, slots, 5] = 1.0
        counts[i] = len(slots)
        previous_close = float(rows["close"].iloc[-1])
    return np.asarray(days, dtype=str), counts, grids


class MinuteDayEncoder(Autoencoder):
    """An autoencoder of day grids. ``__init__`` stores settings; ``fit`` returns self and
    keeps learned state in attributes ending in ``_``; ``encode`` gives each day's code."""

    name = "minute_encoder"
    sections = ("generative.minutes",)
    uses_validation = True
    state_file = "minute_encoder.json"
    learned = ("history", "best_epoch", "train_days", "seconds_per_epoch")
    networks = {"model_": "autoencoder.keras"}

    def __init__(self, settings: dict | None = None, seed: int = 42):
        super().__init__({**MinuteEncoderSettings().model_dump(), **(settings or {})}, seed)

    @classmethod
    def settings_from(cls, config):
        return config.generative.minutes.model_dump()

    def _standardised(self, grids: np.ndarray) -> np.ndarray:
        flat = self.scaler_.transform(grids.reshape(-1, grids.shape[-1]))
        return flat.reshape(len(grids), -1).astype("float32")

    def _build(self):
        import keras
        from keras import layers

        s = self.settings
        size = len(SLOTS) * len(CHANNELS)
        grid = keras.Input(shape=(size,), name="day")
        h = layers.Dense(s["units"], activation="relu", name="encoder_hidden")(grid)
        encoder = keras.Model(grid, layers.Dense(s["code_dim"], name="code")(h), name="encoder")
        code = keras.Input(shape=(s["code_dim"],), name="z")
        y = layers.Dense(s["units"], activation="relu", name="decoder_hidden")(code)
        decoder = keras.Model(code, layers.Dense(size, name="grid")(y), name="decoder")
        source = keras.Input(shape=(size,), name="grid_in")
        return keras.Model(source, decoder(encoder(source)), name="autoencoder")

    def fit(self, train: np.ndarray, valid: np.ndarray | None = None,
            verbose: int = 0) -> "MinuteDayEncoder":
        """``train``, ``valid``: day grids (days x 240 x 6)."""
        keras = keras_seeded(self.seed)
        s = self.settings
        if not len(train):
            raise ValueError("no training day of minute bars")
        self.scaler_ = Standardizer().fit(train.reshape(-1, train.shape[-1]))
        x = self._standardised(train)
        self.mean_day_ = x.mean(axis=0)
        xv = self._standardised(valid) if valid is not None and len(valid) else None
        with native_stderr_to_log():
            self.model_ = self._build()
            self.model_.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]), loss="mse")
            started = time.perf_counter()
            watched = "val_loss" if xv is not None else "loss"
            fitted = self.model_.fit(
                x, x, validation_data=(xv, xv) if xv is not None else None,
                epochs=s["epochs"], batch_size=s["batch_size"], shuffle=True, verbose=verbose,
                callbacks=[keras.callbacks.EarlyStopping(monitor=watched, patience=s["patience"],
                                                         restore_best_weights=True)])
        self.history_ = {k: [float(v) for v in values] for k, values in fitted.history.items()}
        losses = self.history_[watched]
        self.best_epoch_ = int(np.argmin(losses))
        self.seconds_per_epoch_ = (time.perf_counter() - started) / max(1, len(losses))
        self.train_days_ = int(len(train))
        return self

    def encode(self, grids: np.ndarray) -> np.ndarray:
        """(days, code_dim): each day's code."""
        with native_stderr_to_log():
            return self.model_.get_layer("encoder").predict(self._standardised(grids),
                                                            verbose=0, batch_size=1024)

    def validation_errors(self, grids: np.ndarray) -> dict:
        """Mean squared errors of the standardised ``grids``: against their reconstruction,
        and against the mean training day (the naive encoder that knows nothing of a day)."""
        if not len(grids):
            return {"validation_mse": float("nan"), "validation_mse_mean_day": float("nan")}
        x = self._standardised(grids)
        with native_stderr_to_log():
            rebuilt = self.model_.predict(x, verbose=0, batch_size=1024)
        return {"validation_mse": float(np.mean((rebuilt - x) ** 2)),
                "validation_mse_mean_day": float(np.mean((self.mean_day_ - x) ** 2))}

    def code_frame(self, days: np.ndarray, counts: np.ndarray, grids: np.ndarray) -> pd.DataFrame:
        codes = self.encode(grids)
        frame = pd.DataFrame(codes, columns=code_columns(codes.shape[1]))
        frame.insert(0, "bars", counts)
        frame.insert(0, "trade_date", days)
        return frame

    def _state(self) -> dict:
        return {**super()._state(), "mean_day": self.mean_day_.tolist()}

    def _restore(self, state: dict, folder: Path) -> None:
        super()._restore(state, folder)
        self.mean_day_ = np.asarray(state["mean_day"], dtype="float32")
