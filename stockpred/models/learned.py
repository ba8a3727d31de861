"""Feature-based forecasters: SVR and XGBoost on the day's features, predicting the next return.

Features are median-imputed and standardised, and the return target z-scored, with
statistics of the training rows only; the forecast close is close_t (1 + return).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from stockpred.data.store import atomic_save
from stockpred.dataset import Standardizer, StockData
from stockpred.models.base import Forecaster
from stockpred.runtime import interrupt_held, interrupt_pending

MODEL_FILE = "model.joblib"


def training_matrix(stocks: list[StockData]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and next returns of rows whose target is known, oldest day first."""
    x = np.vstack([s.features.to_numpy(float) for s in stocks])
    y = np.concatenate([s.next_return for s in stocks])
    days = np.concatenate([s.dates for s in stocks])
    order = np.argsort(days, kind="stable")
    x, y = x[order], y[order]
    keep = ~np.isnan(y)
    return x[keep], y[keep]


def fit_xgboost(estimator, x, y, **fit_args):
    """``estimator.fit(x, y, **fit_args)`` that Ctrl-C ends cleanly: held back while XGBoost
    builds its matrices through Python callbacks (runtime.interrupt_held says why), and
    ending the boosting at the next round, so the interrupt waits one tree, not the fit."""
    import xgboost

    class StopOnInterrupt(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            return interrupt_pending()

    estimator.callbacks = [StopOnInterrupt()]
    try:
        with interrupt_held():
            estimator.fit(x, y, **fit_args)
    finally:
        estimator.callbacks = None  # the saved estimator holds no callback of this run
    return estimator


class _FeatureRegressor(Forecaster):
    def _estimator(self):
        raise NotImplementedError

    def _fit_estimator(self, x: np.ndarray, y: np.ndarray):
        return self._estimator().fit(x, y)

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        x, y = training_matrix(train)
        limit = self.settings.get("max_rows")
        if limit and len(x) > limit:  # the most recent rows, across stocks
            x, y = x[-limit:], y[-limit:]
        self.scaler_ = Standardizer().fit(x)
        self.target_mean_, self.target_std_ = float(y.mean()), float(y.std() or 1.0)
        self.estimator_ = self._fit_estimator(self.scaler_.transform(x),
                                              (y - self.target_mean_) / self.target_std_)
        return self

    def predict(self, data: StockData) -> np.ndarray:
        z = self.estimator_.predict(self.scaler_.transform(data.features.to_numpy(float)))
        return data.close * (1 + z * self.target_std_ + self.target_mean_)

    def save(self, folder: Path) -> None:
        super().save(folder)
        atomic_save(Path(folder) / MODEL_FILE, lambda path: joblib.dump(self.estimator_, path))

    def _state(self):
        return {"scaler": self.scaler_.to_json(), "target_mean": self.target_mean_,
                "target_std": self.target_std_}

    def _restore(self, state, folder: Path):
        self.scaler_ = Standardizer.from_json(state["scaler"])
        self.target_mean_, self.target_std_ = state["target_mean"], state["target_std"]
        self.estimator_ = joblib.load(folder / MODEL_FILE)


class SupportVectorForecaster(_FeatureRegressor):
    name = "svr"
    sections = ("models.svr_c", "models.svr_epsilon", "models.svr_max_rows")

    @classmethod
    def settings_from(cls, config):
        m = config.models
        return {"c": m.svr_c, "epsilon": m.svr_epsilon, "max_rows": m.svr_max_rows}

    def _estimator(self):
        from sklearn.svm import SVR

        return SVR(C=self.settings.get("c", 1.0), epsilon=self.settings.get("epsilon", 0.1))


class XGBoostForecaster(_FeatureRegressor):
    name = "xgboost"
    sections = ("models.xgboost",)

    @classmethod
    def settings_from(cls, config):
        return config.models.xgboost.model_dump(exclude={"early_stopping_rounds"})

    def _estimator(self):
        import xgboost

        params = {k: v for k, v in self.settings.items()
                  if k in ("n_estimators", "max_depth", "learning_rate", "subsample",
                           "colsample_bytree")}
        return xgboost.XGBRegressor(random_state=self.seed, n_jobs=2, tree_method="hist",
                                    **params)

    def _fit_estimator(self, x, y):
        return fit_xgboost(self._estimator(), x, y)
