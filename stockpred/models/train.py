"""The train stage: fit one model on the training period, forecast the test period.

Training rows end before evaluation.validation_start; the validation period (up to
test_start) stops neural models early; the fitted model forecasts every test day with
no refit (`stockpred evaluate` refits walk-forward). Writes
<data dir>/models/<model>/<run id>/: the checkpoint (model.keras or model.joblib with
forecaster.json), config.json, predictions.parquet and metrics.json (next to
persistence's), and TensorBoard logs for neural models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from stockpred.config import Config, config_as_json
from stockpred.data.store import atomic_write_parquet, atomic_write_text
from stockpred.evaluation.dataset import StockData, load_stock, model_features
from stockpred.evaluation.evaluate import stocks_to_use
from stockpred.evaluation.walkforward import NEURAL, VALIDATED, model_settings, score
from stockpred.layout import Paths
from stockpred.manifest import package_versions, upstream
from stockpred.models.base import check_models, forecaster_class


@dataclass
class TrainReport:
    run_dir: Path
    metrics: dict
    persistence: dict

    def summary(self) -> list[str]:
        m, p = self.metrics, self.persistence
        return [f"saved {self.run_dir}",
                f"test rmse_return {m['rmse_return']:.5f} (persistence {p['rmse_return']:.5f}), "
                f"rmse_price {m['rmse_price']:.4f} (persistence {p['rmse_price']:.4f}), "
                f"direction {m['directional_accuracy']:.3f}, DM vs persistence "
                f"{m['dm_stat_vs_persistence']:.3g} (p {m['dm_pvalue_vs_persistence']:.3g})"]


def forecast_period(model, stocks: list[StockData], start: str, end: str) -> pd.DataFrame:
    """A fitted model's next-close forecasts for every day from ``start`` to ``end``."""
    frames = []
    for stock in stocks:
        days = (stock.dates >= start) & (stock.dates <= end)
        frames.append(pd.DataFrame({
            "ts_code": stock.ts_code, "trade_date": stock.dates[days],
            "close": stock.close[days], "next_close": stock.next_close[days],
            "predicted_close": model.predict(stock)[days]}))
    return pd.concat(frames, ignore_index=True)


def run(config: Config, paths: Paths, name: str, ts_codes: list[str] | None = None,
        quick: bool = False, progress: bool = True) -> TrainReport:
    check_models([name])
    ev = config.evaluation
    features = model_features(paths)
    stocks = [load_stock(paths, c, features) for c in stocks_to_use(config, paths, ts_codes)]
    train = [s.rows(s.dates < ev.validation_start) for s in stocks]
    # validation targets must be known before the first test forecast
    valid = [s.rows((s.dates >= ev.validation_start) & (s.next_dates <= ev.test_start))
             for s in stocks]
    settings = model_settings(config, name, quick)
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if quick else "")
    run_dir = paths.model_runs(name) / run_id
    model = forecaster_class(name)(settings, ev.seed)
    model.fit(train, valid if name in VALIDATED else None,
              log_dir=run_dir / "tensorboard" if name in NEURAL else None,
              verbose=2 if progress and name in NEURAL else 0)
    model.save(run_dir)

    predictions = forecast_period(model, stocks, ev.test_start, ev.test_end)
    persistence = predictions.assign(predicted_close=predictions["close"])
    metrics = score(predictions, persistence)
    baseline = score(persistence, persistence)
    atomic_write_parquet(predictions, run_dir / "predictions.parquet")
    atomic_write_text(run_dir / "config.json", config_as_json(config))
    atomic_write_text(run_dir / "metrics.json", json.dumps({
        "model": name, "settings": settings, "quick": quick, "features": features,
        "train_until": ev.validation_start, "validation": [ev.validation_start, ev.test_start],
        "test": [ev.test_start, ev.test_end], "stocks": [s.ts_code for s in stocks],
        "metrics": metrics, "persistence": baseline, "upstream": upstream(paths),
        "versions": package_versions()},
        indent=1, default=str) + "\n")
    return TrainReport(run_dir, metrics, baseline)
