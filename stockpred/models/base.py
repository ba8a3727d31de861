"""One interface for every forecaster: fit, predict, save, load, with typed settings and traits.

As in scikit-learn: ``__init__`` only stores settings, ``fit`` returns self and learned
state ends in ``_``. A forecaster predicts, for every row t of a stock's data, the close
of the next traded day from rows up to t only; rows it cannot forecast (an incomplete
window) get NaN. ``save``/``load`` round-trip a fitted forecaster through a folder. The
registry of names is stockpred.models.registry.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from stockpred.data.store import atomic_write_text
from stockpred.dataset import StockData
from stockpred.models.names import STOCK, model_class

if TYPE_CHECKING:
    from stockpred.config import Config

STATE_FILE = "forecaster.json"


class Model(ABC):
    """What every model shares, forecaster or cross-sectional: settings and seed stored by
    ``__init__``, ``settings_from(config)``, ``clone``, and a save/load round trip through
    a folder (every file written atomically). ``uses_validation`` (a trait): it holds back
    the last days of its training rows, to stop early, to monitor, or to fit a weight."""

    name: ClassVar[str]
    # the config.json keys ``settings_from`` reads (a test edits every key to hold this true)
    sections: ClassVar[tuple[str, ...]] = ()
    uses_validation: ClassVar[bool] = False
    state_file: ClassVar[str] = STATE_FILE

    def __init__(self, settings: dict | None = None, seed: int = 42):
        self.settings = dict(settings or {})
        self.seed = seed

    @classmethod
    def settings_from(cls, config: "Config") -> dict:
        """This model's settings from its section of config.json (typed there)."""
        return {}

    @classmethod
    def config_sections(cls) -> tuple[str, ...]:
        """What a stage running this model depends on in config.json."""
        return cls.sections

    def clone(self):
        """An unfitted copy with the same settings and seed (walk-forward refits clones)."""
        return type(self)(self.settings, self.seed)

    def _state(self) -> dict:
        return {}

    def _restore(self, state: dict, folder: Path) -> None:
        """Set learned state from ``state`` (and files in ``folder``)."""

    def save(self, folder: Path) -> None:
        """Write the fitted model into ``folder``; every file is written atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"name": self.name, "settings": self.settings, "seed": self.seed,
                   "state": self._state()}
        atomic_write_text(folder / self.state_file, json.dumps(payload, indent=1))

    @classmethod
    def load(cls, folder: Path):
        payload = json.loads((Path(folder) / cls.state_file).read_text(encoding="utf-8"))
        model = model_class(payload["name"])(payload["settings"], payload["seed"])
        model._restore(payload["state"], Path(folder))
        return model


class Forecaster(Model):
    """A model of one stock's next close. ``writes_tensorboard`` (a trait): it logs
    training to TensorBoard; ``reads_news``: its data must carry StockData.news;
    ``reads_codes``: the encoders (stockpred.dataset.CODE_FAMILIES) whose codes its data
    must carry beside its features, as a ``<model>+<family>`` name gives any model;
    ``samples_returns``: it samples next-day log returns (``sample_returns``), which
    evaluate scores by CRPS and band coverage."""

    writes_tensorboard: ClassVar[bool] = False
    reads_news: ClassVar[bool] = False
    reads_codes: ClassVar[tuple[str, ...]] = ()
    samples_returns: ClassVar[bool] = False
    world: ClassVar[str] = STOCK

    @abstractmethod
    def fit(self, train: list[StockData], valid: list[StockData] | None = None,
            log_dir: Path | None = None, verbose: int = 0) -> "Forecaster":
        """Learn from the rows of ``train`` (pooled over stocks); ``valid`` may stop training."""

    @abstractmethod
    def predict(self, data: StockData) -> np.ndarray:
        """The next traded day's close forecast at every row of ``data``."""
