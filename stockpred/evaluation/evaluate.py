"""The evaluate stage: walk-forward forecasts of several models, and the leaderboard.

Persistence (tomorrow = today) and drift are always rows. Writes
<results dir>/leaderboard.md and leaderboard.json, and every forecast under
<data dir>/runs/evaluate/<run id>/predictions.parquet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from stockpred.config import Config
from stockpred.data.store import atomic_write_parquet, atomic_write_text
from stockpred.errors import InputError
from stockpred.evaluation.dataset import load_stock, model_features
from stockpred.evaluation.walkforward import (leaderboard_markdown, model_settings, score,
                                              walk_forward)
from stockpred.layout import Paths
from stockpred.manifest import (config_hash, package_versions, read_manifest, section_hash,
                                upstream)
from stockpred.models.base import check_models

ALWAYS = ["persistence", "drift"]


@dataclass
class EvaluationReport:
    rows: list[dict]
    run_id: str
    markdown: str

    def summary(self) -> list[str]:
        return self.markdown.strip().splitlines()


def stocks_to_use(config: Config, paths: Paths, ts_codes: list[str] | None) -> list[str]:
    codes = ts_codes or config.evaluation.ts_codes
    if codes:
        return codes
    built = read_manifest(paths.features_manifest) or {}
    if not built.get("stocks"):
        raise InputError("no stocks with features: run `stockpred features` first")
    return sorted(built["stocks"])


def settings_hash(config: Config) -> str:
    """The settings a leaderboard depends on: the evaluation protocol and the models."""
    return section_hash(config.evaluation) + section_hash(config.models)


def run(config: Config, paths: Paths, ts_codes: list[str] | None = None,
        models: list[str] | None = None, quick: bool = False,
        progress: bool = True) -> EvaluationReport:
    ev = config.evaluation
    names = list(dict.fromkeys(ALWAYS + check_models(models or ev.models)))
    features = model_features(paths)
    stocks = [load_stock(paths, code, features) for code in stocks_to_use(config, paths,
                                                                          ts_codes)]
    if not any(((s.dates >= ev.test_start) & (s.dates <= ev.test_end)).any() for s in stocks):
        raise InputError(f"no trading day between test start {ev.test_start} and test end "
                         f"{ev.test_end} in the stored features")
    forecasts = {}
    for name in names:
        forecasts[name] = walk_forward(name, model_settings(config, name, quick), stocks,
                                       config, ev.test_start, ev.test_end, ev.retrain_every,
                                       progress)
    rows = [{"model": name, **score(frame, forecasts["persistence"])}
            for name, frame in forecasts.items()]
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if quick else "")
    header = (f"# Leaderboard\n\nWalk-forward next-day forecasts of {len(stocks)} "
              f"stock(s) ({', '.join(s.ts_code for s in stocks[:5])}"
              f"{', ...' if len(stocks) > 5 else ''}), test period {ev.test_start}.."
              f"{ev.test_end}, refit every {ev.retrain_every} trading days on the trailing "
              f"{ev.train_window_days} days{' (quick sizes)' if quick else ''}. Persistence is "
              f"tomorrow = today; dm_* compares squared return errors with persistence's "
              f"(negative: the model is better; Diebold-Mariano with the Harvey-Leybourne-"
              f"Newbold correction); pt_pvalue is Pesaran-Timmermann's test of the "
              f"direction; beats_persistence needs dm < 0 at p < 0.05.")
    markdown = leaderboard_markdown(rows, header)
    payload = {"run_id": run_id, "test_period": [ev.test_start, ev.test_end],
               "stocks": [s.ts_code for s in stocks], "retrain_every": ev.retrain_every,
               "train_window_days": ev.train_window_days, "quick": quick,
               "features": features, "config_sha256": config_hash(config),
               "settings_sha256": settings_hash(config), "upstream": upstream(paths),
               "versions": package_versions(), "rows": rows}
    folder = paths.evaluation_runs / run_id
    atomic_write_parquet(pd.concat([f.assign(model=n) for n, f in forecasts.items()],
                                   ignore_index=True), folder / "predictions.parquet")
    text = json.dumps(payload, indent=1, default=str) + "\n"
    atomic_write_text(folder / "leaderboard.json", text)
    atomic_write_text(paths.results_dir / "leaderboard.json", text)
    atomic_write_text(paths.leaderboard, markdown)
    return EvaluationReport(rows, run_id, markdown)
