"""The importance stage: XGBoost feature importance and the selected feature list.

Only rows up to ``importance.train_end`` are used, so the selection never sees the
period that later stages test on; within them the last ``validation_fraction`` of days
is the validation set, one day apart from the training rows so no target overlaps. The
ranking is repeated under each of the original design's cuts (experiments.train_fractions,
0.9 / 0.1 and 0.98 / 0.02, the cuts the LSTM is compared on) into selected.json's
``splits``, to show how much the ranking owes to where validation starts.
The candidates are the model inputs (no column in the stock's price unit); of them,
near-copies of the price (median |rho| with close across stocks above
``max_abs_corr_with_close``) are set aside first, so price does not swamp the ranking. Writes <data dir>/features/selected.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.dataset import built_features
from stockpred.errors import InputError, MissingInputError
from stockpred.features.panel import model_inputs
from stockpred.layout import Paths
from stockpred.manifest import section_hash, write_manifest


@dataclass
class ImportanceReport:
    selected: list[str]
    validation_error: float
    naive_error: float
    metric: str
    rows: dict

    def summary(self) -> list[str]:
        return [f"importance: {len(self.selected)} features selected from "
                f"{self.rows['train']} training and {self.rows['validation']} validation rows",
                f"  validation {self.metric}: xgboost {self.validation_error:.6g}, "
                f"naive {self.naive_error:.6g}",
                f"  top: {', '.join(self.selected[:8])}"]


def _target(panel: pd.DataFrame, kind: str) -> pd.Series:
    nxt = panel["close"].shift(-1)
    if kind == "next_close":
        return nxt
    ret = nxt / panel["close"] - 1
    return (ret > 0).astype(float).where(ret.notna()) if kind == "next_direction" else ret


def load_rows(paths: Paths, stocks: list[str], config: Config) -> pd.DataFrame:
    """Traded days up to train_end of every stock, with the target (next traded day's)."""
    settings = config.importance
    frames = []
    for code in stocks:
        path = paths.features_table(code)
        if not path.exists():
            continue
        panel = pd.read_parquet(path)
        panel = panel[(panel["trade_date"] <= settings.train_end) & (panel["suspended"] == 0)]
        panel = panel.reset_index(drop=True)
        panel["target"] = _target(panel, settings.target)
        frames.append(panel.assign(ts_code=code).dropna(subset=["target"]))
    if not frames:
        raise MissingInputError(f"no feature tables under {paths.features_dir}: run "
                                f"`stockpred features` first")
    return pd.concat(frames, ignore_index=True)


def near_price(rows: pd.DataFrame, candidates: list[str], limit: float) -> list[str]:
    """Features whose median |correlation| with close, stock by stock, exceeds ``limit``."""
    per_stock = rows.groupby("ts_code")[candidates + ["close"]].corr()
    with_close = per_stock.xs("close", level=1)[candidates].abs()
    median = with_close.median()
    return sorted(median.index[median > limit])


def _cut(rows: pd.DataFrame, days: np.ndarray, split: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows before day ``split`` and validation rows from it on; the last training
    day's target is the first validation day's close, so that day is left out."""
    return rows[rows["trade_date"] < days[split - 1]], rows[rows["trade_date"] >= days[split]]


def _rank(train: pd.DataFrame, valid: pd.DataFrame, features: list[str], settings) -> dict:
    """XGBoost fit on ``train``, stopped early on ``valid``: the features by share of total
    gain, the curves, and the validation error beside the naive forecast's."""
    import xgboost

    xgb = settings.xgboost
    common = dict(n_estimators=xgb.n_estimators, max_depth=xgb.max_depth,
                  learning_rate=xgb.learning_rate, subsample=xgb.subsample,
                  colsample_bytree=xgb.colsample_bytree, random_state=settings.seed,
                  early_stopping_rounds=xgb.early_stopping_rounds, n_jobs=2,
                  tree_method="hist")
    classify = settings.target == "next_direction"
    model = (xgboost.XGBClassifier(eval_metric="logloss", **common) if classify
             else xgboost.XGBRegressor(eval_metric="rmse", **common))
    model.fit(train[features], train["target"],
              eval_set=[(train[features], train["target"]), (valid[features], valid["target"])],
              verbose=False)
    curves = model.evals_result()
    metric = "logloss" if classify else "rmse"
    train_curve, valid_curve = curves["validation_0"][metric], curves["validation_1"][metric]
    best = int(model.best_iteration)
    gain = model.get_booster().get_score(importance_type="gain")
    total = sum(gain.values()) or 1.0
    ranking = sorted(((name, gain.get(name, 0.0) / total) for name in features),
                     key=lambda item: -item[1])
    if classify:
        p = np.clip(train["target"].mean(), 1e-6, 1 - 1e-6)
        naive = float(-np.mean(valid["target"] * np.log(p) + (1 - valid["target"]) * np.log(1 - p)))
    elif settings.target == "next_close":
        naive = float(np.sqrt(np.mean((valid["target"] - valid["close"]) ** 2)))
    else:
        naive = float(np.sqrt(np.mean(valid["target"] ** 2)))
    return {"metric": metric, "best_iteration": best, "ranking": ranking,
            "curves": {"train": [float(x) for x in train_curve],
                       "validation": [float(x) for x in valid_curve]},
            "validation_error": float(valid_curve[best]), "naive_validation_error": naive}


def run(config: Config, paths: Paths, ts_codes: list[str] | None = None) -> ImportanceReport:
    settings = config.importance
    built = built_features(paths)
    stocks = ts_codes or sorted(built["stocks"])
    rows = load_rows(paths, stocks, config)
    days = np.sort(rows["trade_date"].unique())
    if len(days) < 60:
        raise InputError(f"only {len(days)} trading days up to importance.train_end "
                         f"{settings.train_end}: move train_end later or fetch more history")
    split = int(len(days) * (1 - settings.validation_fraction))
    train, valid = _cut(rows, days, split)
    inputs = set(model_inputs(built))
    candidates = [c for c in rows.columns if c in inputs
                  and pd.api.types.is_numeric_dtype(rows[c])]
    excluded = near_price(train, candidates, settings.max_abs_corr_with_close)
    features = [c for c in candidates if c not in excluded]
    fit = _rank(train, valid, features, settings)
    ranking, metric, naive = fit["ranking"], fit["metric"], fit["naive_validation_error"]
    # the original design's train/validation cuts (experiments.train_fractions, which the
    # LSTM compares too), each ranking the same candidates
    splits = []
    for share in config.experiments.train_fractions:
        cut = int(len(days) * share)
        if not 1 < cut < len(days):
            raise InputError(f"experiments.train_fractions: {share} of {len(days)} days "
                             f"leaves no training or validation day")
        at_cut = _rank(*_cut(rows, days, cut), features, settings)
        splits.append({"split": f"{share:g} / {1 - share:g}", "train_fraction": share,
                       "train_days": [str(days[0]), str(days[cut - 2])],
                       "validation_days": [str(days[cut]), str(days[-1])],
                       "validation_error": at_cut["validation_error"],
                       "naive_validation_error": at_cut["naive_validation_error"],
                       "best_iteration": at_cut["best_iteration"],
                       "ranking": [{"name": n, "gain_share": g}
                                   for n, g in at_cut["ranking"][:settings.top_k]]})
    selected = [name for name, _ in ranking[:settings.top_k]]

    report = ImportanceReport(selected, fit["validation_error"], naive, metric,
                              {"train": len(train), "validation": len(valid)})
    write_manifest(paths.selected_features, {
        "stage": "importance",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features_manifest_finished_at": built.get("finished_at"),
        "importance_config_sha256": section_hash(settings),
        "target": settings.target,
        "train_days": [str(days[0]), str(days[split - 2])],
        "validation_days": [str(days[split]), str(days[-1])],
        "rows": report.rows,
        "stocks": sorted(rows["ts_code"].unique()),
        "excluded_near_price": excluded,
        "metric": metric,
        "best_iteration": fit["best_iteration"],
        "validation_error": report.validation_error,
        "naive_validation_error": naive,
        "naive": {"next_return": "predict a zero return", "next_close": "tomorrow = today",
                  "next_direction": "the training share of up days"}[settings.target],
        "curves": fit["curves"],
        "selected": [{"name": n, "gain_share": g, "rank": i + 1}
                     for i, (n, g) in enumerate(ranking[:settings.top_k])],
        "ranking": [{"name": n, "gain_share": g} for n, g in ranking],
        "splits": splits,
    })
    return report
