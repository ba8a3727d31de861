"""The news encoder-decoder of the original design: one network for both sample kinds
(stockpred.news.samples), and its scores.

The two kinds train as one network with shared weights, as the original design has it,
on alternating batches of each kind. The kinds differ in length (40 off-hours steps of 30
minutes, 30 in-session steps of one minute) and in output (one gap, a 30-minute path), so
the network shares its encoder and gives each kind its own decoder and output layer,
rather than padding both to one shape: an LSTM's weights do not depend on the sequence
length, so one encoder reads both kinds unpadded, and padding would feed the in-session
samples steps that never hold news and make the off-hours head emit a path of 29
meaningless values. What is shared is what the design wants shared, how news becomes a
state; each kind keeps its own mapping from that state to its own target.
"""

from __future__ import annotations

import math

import numpy as np

from stockpred.errors import InputError
from stockpred.generative.common import KerasModel
from stockpred.evaluation.metrics import (
    directional_accuracy,
    mae,
    pesaran_timmermann,
    rmse,
)
from stockpred.news.samples import KINDS, SampleSet
from stockpred.news.settings import NewsSeq2SeqSettings
from stockpred.runtime import keras_seeded, native_stderr_to_log

FILLS = ("noise", "mask")
MODEL_FILE = "model.keras"
NETWORK_DIR = "network"  # the run folder's one network, both kinds' heads
STATE_FILE = "news_seq2seq.json"


def alternating_batches(sizes: dict[str, int], batch_size: int,
                        rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """One epoch's batches: one of each kind in turn, for as many rounds as the larger kind
    has batches. The smaller kind is reshuffled whenever it runs out, so both kinds give
    the shared encoder the same number of updates whatever their sample counts."""
    rounds = max(math.ceil(n / batch_size) for n in sizes.values())
    batches = {}
    for kind, n in sizes.items():
        chunks: list[np.ndarray] = []
        while len(chunks) < rounds:
            chunks += np.array_split(rng.permutation(n), math.ceil(n / batch_size))
        batches[kind] = chunks[:rounds]
    return [(kind, batches[kind][r]) for r in range(rounds) for kind in sizes]


class NewsSeq2Seq(KerasModel):
    """Both kinds in one network: a shared encoder LSTM reads either kind's news steps, and
    its final state starts that kind's own decoder LSTM and output layer, which emit the
    kind's horizon. Trained on alternating batches of the two kinds with one optimizer,
    each kind's targets standardised on its training samples; early stopping watches the
    mean of the two kinds' standardised validation errors. The setting ``with_news`` False
    is the control: every step is noise."""

    name = "news_seq2seq"
    sections = ("news.seq2seq",)
    uses_validation = True
    state_file = STATE_FILE
    learned = ("noise_std", "target_mean", "target_std")
    networks = {"network_": MODEL_FILE}

    @classmethod
    def settings_from(cls, config):
        s = config.news.seq2seq
        return model_settings(s, s.fill)

    @property
    def with_news(self) -> bool:
        return self.settings.get("with_news", True)

    @property
    def masked(self) -> bool:
        return self.with_news and self.settings["fill"] == "mask"

    def _tensor(self, samples: SampleSet) -> np.ndarray:
        x = samples.news.astype(np.float32, copy=True)
        empty = ~samples.has_news if self.with_news else np.ones(samples.has_news.shape, bool)
        if self.masked:
            x[empty] = 0.0
        else:
            rng = np.random.default_rng([self.seed, *x.shape])
            x[empty] = rng.normal(0.0, self.noise_std_, (int(empty.sum()), x.shape[2]))
        return x

    def _scaled(self, samples: SampleSet) -> np.ndarray:
        kind = samples.kind
        return ((samples.target - self.target_mean_[kind]) / self.target_std_[kind]
                ).astype(np.float32)

    def _network(self, shapes: dict[str, tuple[int, int, int]]):
        """shapes: kind -> (steps, dimensions, horizon)."""
        import keras
        from keras import layers

        units = int(self.settings["units"])
        # the one layer both kinds share: an LSTM's weights do not depend on the length
        # of the sequence, so 40 off-hours steps and 30 in-session minutes both fit it
        encoder = layers.LSTM(units, dropout=self.settings["dropout"], return_state=True,
                              name="encoder")
        inputs, outputs = [], []
        for kind in KINDS:
            steps, dims, horizon = shapes[kind]
            source = keras.Input(shape=(steps, dims), name=kind)
            x = layers.Masking(mask_value=0.0, name=f"{kind}_mask")(source) if self.masked \
                else source
            _, h, c = encoder(x)
            y = layers.RepeatVector(horizon, name=f"{kind}_repeat")(h)
            y = layers.LSTM(units, return_sequences=True, name=f"{kind}_decoder")(
                y, initial_state=[h, c])
            y = layers.TimeDistributed(layers.Dense(1), name=f"{kind}_head")(y)
            inputs.append(source)
            outputs.append(layers.Reshape((horizon,), name=f"{kind}_forecast")(y))
        return keras.Model(inputs, outputs, name="news_seq2seq")

    def _heads(self) -> dict:
        """kind -> the part of the network that forecasts it (sharing the encoder)."""
        import keras

        return {kind: keras.Model(self.network_.inputs[i], self.network_.outputs[i])
                for i, kind in enumerate(KINDS)}

    def fit(self, train: dict[str, SampleSet], valid: dict[str, SampleSet] | None = None,
            verbose: int = 0) -> "NewsSeq2Seq":
        for kind in KINDS:
            if len(train[kind]) == 0:
                raise InputError(f"no {kind} samples to train on")
        keras = keras_seeded(self.seed)
        import tensorflow as tf

        filled = np.concatenate([train[k].news[train[k].has_news].ravel() for k in KINDS])
        self.noise_std_ = float(self.settings["noise_scale"] * (filled.std() if filled.size
                                                                 else 1.0) or 1.0)
        self.target_mean_ = {k: float(train[k].target.mean()) for k in KINDS}
        self.target_std_ = {k: float(train[k].target.std() or 1.0) for k in KINDS}
        x = {k: self._tensor(train[k]) for k in KINDS}
        y = {k: self._scaled(train[k]) for k in KINDS}
        checked = {k: (self._tensor(valid[k]), self._scaled(valid[k])) for k in KINDS} \
            if valid is not None and all(len(valid[k]) for k in KINDS) else None
        rng = np.random.default_rng(self.seed)
        with native_stderr_to_log():
            self.network_ = self._network({k: (x[k].shape[1], x[k].shape[2], y[k].shape[1])
                                           for k in KINDS})
            heads = self._heads()
            optimizer = keras.optimizers.Adam(self.settings["learning_rate"])
            optimizer.build(self.network_.trainable_variables)

            def step_of(head):
                @tf.function(reduce_retracing=True)
                def step(inputs, targets):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean(tf.square(head(inputs, training=True) - targets))
                    variables = head.trainable_variables
                    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                    return loss
                return step

            steps = {k: step_of(heads[k]) for k in KINDS}
            history: dict[str, list[float]] = {"loss": [], "val_loss": []}
            best, best_weights, waited = math.inf, None, 0
            for epoch in range(self.settings["epochs"]):
                losses = [float(steps[kind](x[kind][rows], y[kind][rows])) for kind, rows in
                          alternating_batches({k: len(train[k]) for k in KINDS},
                                              self.settings["batch_size"], rng)]
                history["loss"].append(float(np.mean(losses)))
                if checked is None:
                    continue
                history["val_loss"].append(float(np.mean([
                    np.mean((heads[k](vx, training=False).numpy() - vy) ** 2)
                    for k, (vx, vy) in checked.items()])))
                if verbose:
                    print(f"epoch {epoch + 1}: loss {history['loss'][-1]:.4f}, "
                          f"val_loss {history['val_loss'][-1]:.4f}")
                if history["val_loss"][-1] < best:
                    best, best_weights, waited = (history["val_loss"][-1],
                                                  self.network_.get_weights(), 0)
                else:
                    waited += 1
                    if waited >= self.settings["patience"]:
                        break
            if best_weights is not None:
                self.network_.set_weights(best_weights)
        self.history_ = history
        return self

    def predict(self, samples: SampleSet) -> np.ndarray:
        kind = samples.kind
        if len(samples) == 0:
            return np.zeros(samples.target.shape)
        with native_stderr_to_log():
            z = self._heads()[kind].predict(self._tensor(samples), verbose=0, batch_size=1024)
        return z.astype(float) * self.target_std_[kind] + self.target_mean_[kind]


def model_settings(s: NewsSeq2SeqSettings, fill: str, with_news: bool = True) -> dict:
    return {"fill": fill, "with_news": with_news, "noise_scale": s.noise_scale,
            "units": s.units, "dropout": s.dropout, "epochs": s.epochs,
            "batch_size": s.batch_size, "learning_rate": s.learning_rate,
            "patience": s.patience}


# -- scoring -------------------------------------------------------------------------------------

def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def score(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE and MAE over every target (each gap, or each minute of each path); the direction
    of the last target (the gap, or the return at the horizon's end)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    end_a, end_p = actual[:, -1], predicted[:, -1]
    calls = len(actual) and bool(np.any(end_p != 0))  # the naive forecast calls no direction
    pt = pesaran_timmermann(end_a, end_p) if calls else (math.nan, math.nan)
    return {"samples": int(len(actual)),
            "rmse": _finite(rmse(actual.ravel(), predicted.ravel())),
            "mae": _finite(mae(actual.ravel(), predicted.ravel())),
            "rmse_end": _finite(rmse(end_a, end_p)),
            "directional_accuracy": _finite(directional_accuracy(end_a, end_p)),
            "pt_pvalue": _finite(pt[1]),
            "up_share": _finite(float(np.mean(end_a > 0))) if len(actual) else None}
