"""The train stage: fit one model on the training period, forecast the test period.

Training rows end before evaluation.validation_start; the validation period (targets
before test_start) stops neural models early; the fitted model forecasts every test day
with no refit (`stockpred evaluate` refits walk-forward). Writes
<data dir>/models/<model>/<run id>/: the checkpoint (model.keras or model.joblib with
forecaster.json), config.json, predictions.parquet and metrics.json (next to
persistence's), and TensorBoard logs for neural models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stockpred.config import Config, quick_config
from stockpred.dataset import Periods, load_stocks, with_codes
from stockpred.evaluation.scoring import score, verdict
from stockpred.evaluation.walkforward import forecast_period
from stockpred.layout import Paths, new_run_folder
from stockpred.models.names import check_models
from stockpred.models.registry import prototype
from stockpred.news.forecaster import with_news
from stockpred.stages.runs import write_run


@dataclass
class TrainReport:
    run_dir: Path
    metrics: dict
    persistence: dict
    model: str
    stocks: list[str]
    periods: Periods
    features: int
    best_epoch: tuple[int, int] | None = None  # (kept, run) when early stopping watched

    def summary(self) -> list[str]:
        m, p, cut = self.metrics, self.persistence, self.periods
        stocks = ", ".join(self.stocks[:3]) + (f" and {len(self.stocks) - 3} more"
                                                if len(self.stocks) > 3 else "")
        fit = (f"{self.model} on {stocks}: fit before {cut.validation_start}, stopped on "
               f"{cut.validation_start}..{cut.test_start} (targets before the test), test "
               f"{cut.test_start}..{cut.test_end}; {self.features} features")
        if self.best_epoch is not None:
            kept, ran = self.best_epoch
            fit += (f"; early stopping kept epoch {kept} of {ran}"
                    + (" (validation never improved)" if kept == 1 and ran > 1 else ""))
        pooled = (f"; by day over the {m['dm_days']} test days, Newey-West: "
                  f"{m['dm_daily_nw_stat']:.3g} (p {m['dm_daily_nw_pvalue']:.3g}), the test "
                  f"that decides for several stocks" if m["stocks"] > 1 else "")
        return [f"saved {self.run_dir}", fit,
                f"test rmse_return {m['rmse_return']:.5f} (persistence {p['rmse_return']:.5f}), "
                f"rmse_price {m['rmse_price']:.4f} (persistence {p['rmse_price']:.4f}), "
                f"direction {m['directional_accuracy']:.3f}, DM vs persistence "
                f"{m['dm_stat_vs_persistence']:.3g} (p {m['dm_pvalue_vs_persistence']:.3g}; "
                f"negative: smaller squared return errors than persistence's){pooled}",
                f"verdict: {verdict(m)} (needs DM < 0 at p < 0.05)"]


def run(config: Config, paths: Paths, name: str, ts_codes: list[str] | None = None,
        quick: bool = False, progress: bool = True) -> TrainReport:
    check_models([name])
    if quick:
        config = quick_config(config)
    periods = Periods.from_config(config)
    stocks, features = load_stocks(config, paths, ts_codes)
    model = prototype(config, name)
    if model.reads_news:
        stocks = with_news(stocks, config, paths)
    if model.reads_codes:
        stocks = with_codes(stocks, paths, model.reads_codes, periods.test_start)[0]
    train, valid = periods.split(stocks)
    with new_run_folder(paths.model_runs(name), quick) as run_folder:
        model.fit(train, valid if model.uses_validation else None,
                  log_dir=run_folder.writing / "tensorboard" if model.writes_tensorboard
                  else None,
                  verbose=2 if progress and model.writes_tensorboard else 0)
        model.save(run_folder.writing)
        predictions = forecast_period(model, stocks, periods)
        persistence = predictions.assign(predicted_close=predictions["close"])
        metrics = score(predictions, persistence)
        baseline = score(persistence, persistence)
        write_run(run_folder, config, paths, {
            "model": name, "settings": model.settings, "quick": quick, "features": features,
            "train_until": periods.validation_start,
            "validation": [periods.validation_start, periods.test_start],
            "test": [periods.test_start, periods.test_end],
            "stocks": [s.ts_code for s in stocks], "metrics": metrics,
            "persistence": baseline}, predictions)
    history = getattr(model, "history_", None)
    best = None
    if model.uses_validation and isinstance(history, dict) and history.get("val_loss"):
        losses = history["val_loss"]
        best = (int(min(range(len(losses)), key=losses.__getitem__)) + 1, len(losses))
    return TrainReport(run_folder.final, metrics, baseline, name,
                       [s.ts_code for s in stocks], periods, len(features), best)
