"""The naive baselines every model is judged against, and ARIMA."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stockpred.dataset import StockData
from stockpred.models.base import Forecaster


class Persistence(Forecaster):
    """Tomorrow's close = today's close (the random walk)."""

    name = "persistence"

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        return self

    def predict(self, data: StockData) -> np.ndarray:
        return data.close.copy()


class Drift(Forecaster):
    """Today's close grown by the stock's mean daily log return over the training rows."""

    name = "drift"

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        self.drift_ = {}
        for stock in train:
            returns = np.log(stock.next_close / stock.close)
            self.drift_[stock.ts_code] = float(np.nanmean(returns)) if len(stock) else 0.0
        return self

    def predict(self, data: StockData) -> np.ndarray:
        return data.close * np.exp(self.drift_.get(data.ts_code, 0.0))

    def _state(self):
        return {"drift": self.drift_}

    def _restore(self, state, folder: Path):
        self.drift_ = state["drift"]


class Arima(Forecaster):
    """ARIMA(p,1,0): an AR(p) without constant on daily differences, fit once per stock.

    Fit by conditional least squares on the training rows (statsmodels' AutoReg with
    trend='n' gives the same coefficients); the forecast at t uses differences up to t, and
    reaches the data's horizon by feeding its own forecast differences back in.
    """

    name = "arima"
    sections = ("models.arima_order",)

    @classmethod
    def settings_from(cls, config):
        return {"order": list(config.models.arima_order)}

    @property
    def lags(self) -> int:
        return int(self.settings.get("order", (5, 1, 0))[0])

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        self.coefficients_ = {}
        p = self.lags
        for stock in train:
            d = np.diff(stock.close)
            if len(d) <= 2 * p:
                continue
            x = np.column_stack([d[p - i - 1:len(d) - i - 1] for i in range(p)])
            phi, *_ = np.linalg.lstsq(x, d[p:], rcond=None)
            self.coefficients_[stock.ts_code] = phi.tolist()
        return self

    def predict(self, data: StockData) -> np.ndarray:
        phi = np.asarray(self.coefficients_.get(data.ts_code, [0.0] * self.lags))
        d = np.diff(data.close, prepend=np.nan)
        recent = np.column_stack([np.roll(d, i) for i in range(self.lags)])
        recent[:self.lags] = np.nan  # rows without p past differences
        change = step = recent @ phi
        for _ in range(data.horizon - 1):
            recent = np.column_stack([step, recent[:, :-1]])
            step = recent @ phi
            change = change + step
        return data.close + change

    def _state(self):
        return {"coefficients": self.coefficients_}

    def _restore(self, state, folder: Path):
        self.coefficients_ = state["coefficients"]
