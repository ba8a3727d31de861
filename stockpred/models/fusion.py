"""Fusion: alpha * Z0 (the LSTM's trend forecast) + (1 - alpha) * Z1 (another model's).

Both components are fit on the training rows. alpha is then chosen on the validation
rows (a grid from 0 to 1), which precede anything the fused model is scored on, unless
the settings fix it (tuning searches it). With alpha = 1 the fusion is the LSTM alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stockpred.dataset import StockData
from stockpred.models.base import Forecaster
from stockpred.models.registry import forecaster_class

ALPHAS = np.linspace(0.0, 1.0, 21)


class FusionForecaster(Forecaster):
    name = "fusion"
    uses_validation = True  # alpha is fit on the validation rows

    @classmethod
    def settings_from(cls, config):
        parts = ["lstm", "wgan"]
        return {"components": parts, "alpha": None,
                **{part: forecaster_class(part).settings_from(config) for part in parts}}

    @property
    def parts(self) -> tuple[str, str]:
        return tuple(self.settings.get("components", ("lstm", "wgan")))

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        self.components_ = [
            forecaster_class(name)(self.settings.get(name, {}), self.seed).fit(train, valid)
            for name in self.parts]
        alpha = self.settings.get("alpha")
        if alpha is None:
            alpha = self._best_alpha(valid) if valid else 0.5
        self.alpha_ = float(alpha)
        return self

    def _best_alpha(self, valid: list[StockData]) -> float:
        actual, first, second = [], [], []
        for stock in valid:
            p0, p1 = (c.predict(stock) for c in self.components_)
            actual.append(stock.next_close / stock.close - 1)
            first.append(p0 / stock.close - 1)
            second.append(p1 / stock.close - 1)
        a, z0, z1 = (np.concatenate(x) for x in (actual, first, second))
        ok = ~(np.isnan(a) | np.isnan(z0) | np.isnan(z1))
        if not ok.any():
            return 0.5
        errors = [np.mean((a[ok] - (w * z0[ok] + (1 - w) * z1[ok])) ** 2) for w in ALPHAS]
        return float(ALPHAS[int(np.argmin(errors))])

    def predict(self, data: StockData) -> np.ndarray:
        p0, p1 = (c.predict(data) for c in self.components_)
        return self.alpha_ * p0 + (1 - self.alpha_) * p1

    def save(self, folder: Path) -> None:
        super().save(folder)
        for name, component in zip(self.parts, self.components_):
            component.save(Path(folder) / name)

    def _state(self):
        return {"alpha": self.alpha_}

    def _restore(self, state, folder: Path):
        self.alpha_ = state["alpha"]
        self.components_ = [Forecaster.load(folder / name) for name in self.parts]
