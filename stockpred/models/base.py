"""One interface for every forecaster, and the registry `stockpred train <name>` reads.

As in scikit-learn: ``__init__`` only stores settings, ``fit`` returns self and learned
state ends in ``_``. A forecaster predicts, for every row t of a stock's data, the close
of the next traded day from rows up to t only; rows it cannot forecast (an incomplete
window) get NaN. ``save``/``load`` round-trip a fitted forecaster through a folder.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from stockpred.errors import InputError
from stockpred.evaluation.dataset import StockData

STATE_FILE = "forecaster.json"

# name -> "module:Class", imported on use so that baselines never import TensorFlow
REGISTRY = {
    "persistence": "stockpred.models.baselines:Persistence",
    "drift": "stockpred.models.baselines:Drift",
    "arima": "stockpred.models.baselines:Arima",
    "svr": "stockpred.models.learned:SupportVectorForecaster",
    "xgboost": "stockpred.models.learned:XGBoostForecaster",
    "lstm": "stockpred.models.neural:LSTMForecaster",
    "gru": "stockpred.models.neural:GRUForecaster",
    "tcn": "stockpred.models.neural:TCNForecaster",
    "wgan": "stockpred.generative.wgan:WGANForecaster",
    "fusion": "stockpred.models.fusion:FusionForecaster",
}


class Forecaster(ABC):
    name: ClassVar[str]

    def __init__(self, settings: dict | None = None, seed: int = 42):
        self.settings = dict(settings or {})
        self.seed = seed

    @abstractmethod
    def fit(self, train: list[StockData], valid: list[StockData] | None = None,
            log_dir: Path | None = None, verbose: int = 0) -> "Forecaster":
        """Learn from the rows of ``train`` (pooled over stocks); ``valid`` may stop training."""

    @abstractmethod
    def predict(self, data: StockData) -> np.ndarray:
        """The next traded day's close forecast at every row of ``data``."""

    def _state(self) -> dict:
        return {}

    def _restore(self, state: dict, folder: Path) -> None:
        """Set learned state from ``state`` (and files in ``folder``)."""

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"name": self.name, "settings": self.settings, "seed": self.seed,
                   "state": self._state()}
        (folder / STATE_FILE).write_text(json.dumps(payload, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Forecaster":
        payload = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
        model = forecaster_class(payload["name"])(payload["settings"], payload["seed"])
        model._restore(payload["state"], Path(folder))
        return model


def forecaster_class(name: str) -> type[Forecaster]:
    if name not in REGISTRY:
        raise InputError(f"unknown model {name!r}; models are {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def check_models(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        raise InputError(f"unknown model {', '.join(unknown) or '(none given)'}; models are "
                         f"{', '.join(REGISTRY)}")
    return names
