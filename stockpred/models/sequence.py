"""A deep cross-sectional model: an LSTM over each row's window of the stock's last N traded
days (qlib's Alpha360 shape, rebuilt per batch from the panel's BarHistory), trained day by
day on a loss that rewards the day's ordering, stopped early on the validation days' Rank IC.

Why day by day with the negative correlation: only the order of a day's scores is used
(Rank IC, TopK trading), so each step's batch is whole days (``days_per_step``, one on a
market, a few on a small universe whose days are too small a batch) and the loss is minus
the Pearson correlation of each day's scores with its ranked labels; a day's level and
spread of scores cost nothing, as they cost nothing in use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stockpred.data.store import atomic_save
from stockpred.dataset import BarHistory, FactorPanel
from stockpred.errors import InputError
from stockpred.evaluation.signal import daily_ic
from stockpred.models.cross_section import CrossSectionalModel, _known
from stockpred.runtime import keras_seeded, native_stderr_to_log

# rows scored per network call: windows are built chunk by chunk, never for a whole panel
CHUNK_ROWS = 8192
# rows whose windows set the per-channel scaling (a seeded sample of the training rows)
SCALING_ROWS = 20_000


def _history(panel: FactorPanel) -> BarHistory:
    if panel.history is None:
        raise InputError("the sequence model reads each row's past bars: build the panel with "
                         "stockpred.dataset.build_factor_panel, which carries them")
    return panel.history


def _days(dates: np.ndarray) -> list[np.ndarray]:
    """The row positions of each day, days in order."""
    order = np.argsort(dates, kind="stable")
    edges = np.flatnonzero(dates[order][1:] != dates[order][:-1]) + 1
    return np.split(order, edges)


def _negative_correlation(y_true, y_pred):
    """Minus the mean over a step's days of the Pearson correlation of the day's scores with
    its labels; ``y_true`` holds (label, the row's day within the step)."""
    from keras import ops

    label, day = y_true[:, 0], ops.cast(y_true[:, 1], "int32")

    def centred(values):
        means = ops.segment_sum(values, day) / ops.segment_sum(ops.ones_like(values), day)
        return values - ops.take(means, day)

    t, p = centred(label), centred(y_pred[:, 0])
    spread = ops.segment_sum(t * t, day) * ops.segment_sum(p * p, day)
    return -ops.mean(ops.segment_sum(t * p, day) / ops.sqrt(spread + 1e-12))


class SequenceModel(CrossSectionalModel):
    """An LSTM on windows of ``window`` days of each stock's close, open, high and low over
    today's close and volume over today's (in logs), scaled per channel by the training
    windows' mean and deviation."""

    name = "lstm_cs"
    sections = ("cross_section.sequence",)
    uses_validation = True
    MODEL_FILE = "model.keras"

    @classmethod
    def settings_from(cls, config):
        return config.cross_section.sequence.model_dump()

    def _windows(self, history: BarHistory, positions: np.ndarray) -> np.ndarray:
        windows = history.windows(positions, self.settings["window"])
        return (windows - self.scale_[0]) / self.scale_[1]

    def fit(self, train, valid=None):
        keras = keras_seeded(self.seed)
        s = self.settings
        train = _known(train)
        history = _history(train)
        positions = history.positions(train.keys)
        rng = np.random.default_rng(self.seed)
        sample = rng.choice(len(train), min(len(train), SCALING_ROWS), replace=False)
        windows = history.windows(positions[np.sort(sample)], s["window"])
        spread = windows.std(axis=(0, 1))
        self.scale_ = (windows.mean(axis=(0, 1)).astype(np.float32),
                       np.where(spread > 0, spread, 1.0).astype(np.float32))
        with native_stderr_to_log():
            network = self._network(keras)
            days = _days(train.dates)
            valid = _known(valid) if valid is not None else None
            best, best_weights, waited = -np.inf, network.get_weights(), 0
            step = s["days_per_step"]
            for _ in range(s["epochs"]):
                order = rng.permutation(len(days))
                for first in range(0, len(order), step):
                    chosen = [days[d] for d in order[first:first + step]]
                    rows = np.concatenate(chosen)
                    day = np.repeat(np.arange(len(chosen)), [len(c) for c in chosen])
                    network.train_on_batch(self._windows(history, positions[rows]),
                                           np.stack([train.y[rows], day], axis=1))
                if valid is None or not len(valid):
                    best_weights = network.get_weights()
                    continue
                skill = self._rank_ic(network, valid)
                if skill > best:
                    best, best_weights, waited = skill, network.get_weights(), 0
                else:
                    waited += 1
                    if waited >= s["patience"]:
                        break
            network.set_weights(best_weights)
        self.network_ = network
        return self

    def _network(self, keras):
        s = self.settings
        inputs = keras.Input((s["window"], len(BarHistory.CHANNELS)))
        h = inputs
        for k, width in enumerate(s["units"]):
            h = keras.layers.LSTM(width, return_sequences=k < len(s["units"]) - 1)(h)
            h = keras.layers.Dropout(s["dropout"])(h)
        network = keras.Model(inputs, keras.layers.Dense(1)(h))
        network.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]),
                        loss=_negative_correlation)
        return network

    def _rank_ic(self, network, valid: FactorPanel) -> float:
        """The validation days' mean Rank IC (NaN scores as the worst)."""
        scores = self._scores(network, valid)
        frame = valid.keys.assign(score=scores, label=valid.y)
        rank_ic = daily_ic(frame)["rank_ic"].mean()
        return float(rank_ic) if np.isfinite(rank_ic) else -np.inf

    def _scores(self, network, panel: FactorPanel) -> np.ndarray:
        history = _history(panel)
        positions = history.positions(panel.keys)
        out = np.empty(len(panel))
        for first in range(0, len(panel), CHUNK_ROWS):
            chunk = positions[first:first + CHUNK_ROWS]
            out[first:first + len(chunk)] = np.asarray(
                network.predict_on_batch(self._windows(history, chunk)))[:, 0]
        return out

    def predict(self, panel):
        with native_stderr_to_log():
            return self._scores(self.network_, panel)

    def _state(self):
        return {"scale": [v.tolist() for v in self.scale_]}

    def save(self, folder):
        super().save(folder)
        atomic_save(Path(folder) / self.MODEL_FILE, self.network_.save)

    def _restore(self, state, folder):
        keras = keras_seeded(self.seed)
        self.scale_ = tuple(np.asarray(v, dtype=np.float32) for v in state["scale"])
        with native_stderr_to_log():
            self.network_ = keras.models.load_model(
                folder / self.MODEL_FILE,
                custom_objects={"_negative_correlation": _negative_correlation})
