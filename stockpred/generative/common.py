"""What the generative models share: the training-rows check, daily log returns, and the
encoders' save/load."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from stockpred.data.store import atomic_save
from stockpred.dataset import Standardizer, StockData
from stockpred.errors import InputError
from stockpred.models.base import Model
from stockpred.models.names import ENCODER
from stockpred.runtime import keras_seeded, native_stderr_to_log


def check_enough(stocks: list[StockData], rows: int, what: str) -> None:
    if not any(len(s) >= rows for s in stocks):
        raise InputError(f"too few training rows for the {what}: need at least {rows} days "
                         f"before evaluation.validation_start; fetch an earlier start")


def log_returns(close: np.ndarray) -> np.ndarray:
    """log(close_t / close_{t-1}); NaN on the first row."""
    out = np.full(len(close), np.nan)
    with np.errstate(all="ignore"):
        out[1:] = np.log(close[1:] / close[:-1])
    return out


class KerasModel(Model):
    """An encoder's save/load: the ``learned`` attributes (each named without its trailing _)
    in the JSON state, and each Keras network of ``networks`` (attribute: file) in its own
    file beside it, written atomically."""

    world = ENCODER
    learned: ClassVar[tuple[str, ...]] = ()
    networks: ClassVar[dict[str, str]]

    def _state(self) -> dict:
        return {name: getattr(self, f"{name}_") for name in self.learned}

    def _restore(self, state: dict, folder: Path) -> None:
        for name in self.learned:
            setattr(self, f"{name}_", state[name])
        keras = keras_seeded(self.seed)
        with native_stderr_to_log():
            for attribute, file in self.networks.items():
                setattr(self, attribute, keras.models.load_model(folder / file))

    def save(self, folder: Path) -> None:
        super().save(folder)
        for attribute, file in self.networks.items():
            atomic_save(Path(folder) / file, getattr(self, attribute).save)


class Autoencoder(KerasModel):
    """The VAE and the minute encoder: a KerasModel with its input scaler (``scaler_``),
    whose prediction is its code."""

    def predict(self, data) -> np.ndarray:
        return self.encode(data)

    def _state(self) -> dict:
        return {"scaler": self.scaler_.to_json(), **super()._state()}

    def _restore(self, state: dict, folder: Path) -> None:
        self.scaler_ = Standardizer.from_json(state["scaler"])
        super()._restore(state, folder)
