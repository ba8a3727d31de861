"""Fusion: alpha * Z0 (a price model's forecast) + (1 - alpha) * Z1 (a partner model's).

The design's final forecast weighs the LSTM's trend against a second model: ``fusion``
pairs it with the WGAN's median, ``fusion+news`` with the news model (stockpred.news.
forecaster). The pair comes from the settings (``components``, price model first). Both
are fit on the training rows. alpha is then chosen on the validation rows (a grid from 0 to
1), which precede anything the fused model is scored on, unless the settings fix it
(tuning searches it). A partner that forecasts only some days (the news model, on days with
articles) says which through ``informed(data)``: on the other days the fusion is the price
model alone, and alpha is fit on the validation days it informs; with no such day, nothing
shows the partner helps and alpha is 1, the price model alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from stockpred.dataset import StockData
from stockpred.errors import InputError
from stockpred.models.base import Forecaster
from stockpred.models.names import STOCK, model_class

ALPHAS = np.linspace(0.0, 1.0, 21)


def fused(alpha, first: np.ndarray, second: np.ndarray, where: np.ndarray) -> np.ndarray:
    """alpha * first + (1 - alpha) * second where the partner informs, else ``first``
    (prices or returns alike: the blend is linear)."""
    return np.where(where, alpha * first + (1 - alpha) * second, first)


class FusionForecaster(Forecaster):
    name = "fusion"
    uses_validation = True  # alpha is fit on the validation rows
    # what settings_from pairs; a fitted or loaded fusion reads settings["components"]
    default_components: ClassVar[tuple[str, str]] = ("lstm", "wgan")
    # the fusion of the same pair whose fixed weight this one's weighting is read against
    # (evaluate tests the two when both are rows); None: this is that fusion
    weighs_against: ClassVar[str | None] = None

    @classmethod
    def settings_from(cls, config):
        return {"components": list(cls.default_components), "alpha": None,
                **{part: model_class(part, STOCK).settings_from(config)
                   for part in cls.default_components}}

    @classmethod
    def config_sections(cls) -> tuple[str, ...]:
        return tuple(s for part in cls.default_components
                     for s in model_class(part, STOCK).config_sections())

    @property
    def parts(self) -> list[str]:
        parts = list(self.settings["components"])
        if len(set(parts)) != 2 or any(issubclass(model_class(p, STOCK), FusionForecaster)
                                       for p in parts):
            raise InputError(f"{self.name}: components must be two models that are not "
                             f"fusions (price model first), got {parts}")
        return parts

    @property
    def reads_news(self) -> bool:
        return any(model_class(part, STOCK).reads_news for part in self.parts)

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        self.components_ = self._fitted_components(train, valid)
        alpha = self.settings.get("alpha")
        self.alpha_ = float(self._best_alpha(valid or []) if alpha is None else alpha)
        return self

    def _fitted_components(self, train, valid) -> list[Forecaster]:
        return [model_class(name, STOCK)(self.settings.get(name, {}), self.seed).fit(train, valid)
                for name in self.parts]

    def _forecasts(self, data: StockData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The price model's and the partner's close forecasts, and where the partner informs."""
        price, partner = self.components_
        informs = getattr(partner, "informed", None)
        where = informs(data) if informs else np.ones(len(data), bool)
        return price.predict(data), partner.predict(data), where

    def _best_alpha(self, valid: list[StockData]) -> float:
        actual, first, second = [], [], []
        for stock in valid:
            p0, p1, where = self._forecasts(stock)
            actual.append((stock.next_close / stock.close - 1)[where])
            first.append((p0 / stock.close - 1)[where])
            second.append((p1 / stock.close - 1)[where])
        if not actual:
            return 1.0
        a, z0, z1 = (np.concatenate(x) for x in (actual, first, second))
        ok = ~(np.isnan(a) | np.isnan(z0) | np.isnan(z1))
        if not ok.any():
            return 1.0
        errors = [np.mean((a[ok] - (w * z0[ok] + (1 - w) * z1[ok])) ** 2) for w in ALPHAS]
        return float(ALPHAS[int(np.argmin(errors))])

    def predict(self, data: StockData) -> np.ndarray:
        p0, p1, where = self._forecasts(data)
        return fused(self.alpha_, p0, p1, where)

    def save(self, folder: Path) -> None:
        super().save(folder)
        for name, component in zip(self.parts, self.components_):
            component.save(Path(folder) / name)

    def _state(self):
        return {"alpha": self.alpha_}

    def _restore(self, state, folder: Path):
        self.alpha_ = state["alpha"]
        self.components_ = [Forecaster.load(folder / name) for name in self.parts]


class NewsFusionForecaster(FusionForecaster):
    """The LSTM with the news model as partner: the design's price and news fusion."""

    name = "fusion+news"
    default_components = ("lstm", "news")


class EqualFusionForecaster(FusionForecaster):
    """``fusion``'s pair at equal weights (alpha 0.5): the naive weighting that a weight fit
    on validation (``fusion``) or set block by block (``fusion+dqn``) has to beat. Its
    components hold back the validation rows as theirs do, so the three differ only by
    their weights."""

    name = "fusion+equal"
    weighs_against = "fusion"

    @classmethod
    def settings_from(cls, config):
        return {**super().settings_from(config), "alpha": 0.5}
