"""The experiments stage: the original LSTM experiments on one stock, as a stored table.

Fits the networks (stockpred.evaluation.experiments) and writes every forecast to
<data dir>/runs/experiments/<ts_code>.parquet (experiment, title, trade_date, actual,
predicted, previous), and the feature LSTM under each train/validation split beside it
(<ts_code>.splits.parquet), which `stockpred plot lstm` draws without fitting anything.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stockpred.config import Config, quick_config
from stockpred.data.store import atomic_write_parquet
from stockpred.dataset import Periods, load_stocks
from stockpred.evaluation import experiments
from stockpred.layout import Paths
from stockpred.models.registry import prototype


def run(config: Config, paths: Paths, ts_code: str | None = None,
        quick: bool = False) -> Path:
    if quick:
        config = quick_config(config)
    stocks, _ = load_stocks(config, paths, [ts_code] if ts_code else None)
    stock = stocks[0]
    periods = Periods.from_config(config)
    feature_model = prototype(config, "lstm").fit([periods.train(stock)],
                                                  [periods.validation(stock)])
    results = experiments.run(config, stock, feature_model.predict(stock))
    table = pd.concat([pd.DataFrame({"experiment": e.name, "title": e.title,
                                     "trade_date": e.dates, "actual": e.actual,
                                     "predicted": e.predicted, "previous": e.previous})
                       for e in results], ignore_index=True)
    splits = experiments.compare_splits(config, stock)
    atomic_write_parquet(splits.assign(quick=quick), paths.experiment_splits_table(stock.ts_code))
    path = paths.experiments_table(stock.ts_code)
    atomic_write_parquet(table.assign(quick=quick), path)
    return path
