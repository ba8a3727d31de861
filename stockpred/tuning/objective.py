"""What tuning optimises: validation skill, from rows before the test period only.

The objective loads each stock and keeps only rows whose target (the next traded
close) falls before evaluation.test_start, so no test or later row is ever read. A configuration is fit on rows before evaluation.validation_start
(neural models stop early on the last ``validation_days`` of those) and scored on the
validation period: skill = 1 - RMSE(next-day return) / RMSE(persistence), so 0 is
persistence and above 0 beats it.

Trials are logged (parquet, rewritten atomically after each one) and the objective is
memoised by that log: a rerun with the same seed repeats the agents' choices, finds
finished trials in the log and computes only the rest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.data.store import atomic_write_parquet
from stockpred.dataset import Periods, load_stock, model_features, split_validation
from stockpred.evaluation import metrics
from stockpred.layout import Paths
from stockpred.models.registry import prototype

def key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


@dataclass
class TrialLog:
    path: Path

    def read(self) -> pd.DataFrame:
        if self.path.exists():
            return pd.read_parquet(self.path)
        return pd.DataFrame(columns=["trial", "agent", "params", "skill", "wall_s"])

    def append(self, row: dict) -> None:
        frame = pd.concat([self.read(), pd.DataFrame([row])], ignore_index=True)
        atomic_write_parquet(frame, self.path)


class MemoisedObjective:
    """A configuration's validation skill, computed once: the trial log is the memo, so a
    rerun finds finished trials there. Subclasses say what skill is."""

    def __init__(self, agent: str, log: TrialLog):
        self.agent, self.log = agent, log
        done = log.read()
        self.cache = {p: float(s) for p, s in zip(done["params"], done["skill"])}
        self.computed = 0

    @property
    def trials(self) -> int:
        return len(self.cache)

    def __call__(self, params: dict) -> float:
        name = key(params)
        if name in self.cache:
            return self.cache[name]
        start = time.perf_counter()
        skill = self.skill(params)
        self.cache[name] = skill
        self.computed += 1
        self.log.append({"trial": len(self.cache), "agent": self.agent, "params": name,
                         "skill": skill, "wall_s": time.perf_counter() - start})
        return skill

    def skill(self, params: dict) -> float:
        raise NotImplementedError


class Objective(MemoisedObjective):
    """Skill of a single-stock forecaster: 1 - RMSE / persistence's on the validation days."""

    def __init__(self, config: Config, paths: Paths, model: str, stocks: list[str],
                 agent: str, log: TrialLog):
        super().__init__(agent, log)
        self.prototype = prototype(config, model)
        self.periods = Periods.from_config(config)
        features = model_features(paths)
        self.data = [self.periods.before_test(load_stock(paths, c, features)) for c in stocks]
        self.validation_days = config.evaluation.validation_days

    def skill(self, params: dict) -> float:
        train = [self.periods.train(s) for s in self.data]
        valid = None
        if self.prototype.uses_validation:
            train, valid = split_validation(train, self.validation_days)
        base = self.prototype
        fitted = type(base)({**base.settings, **params}, base.seed).fit(train, valid)
        actual, predicted, naive = [], [], []
        for stock in self.data:
            scored = stock.dates >= self.periods.validation_start
            forecast = fitted.predict(stock)[scored]
            actual.append(stock.next_return[scored])
            predicted.append(forecast / stock.close[scored] - 1)
            naive.append(np.zeros(scored.sum()))
        a, p, n = (np.concatenate(x) for x in (actual, predicted, naive))
        scored = ~np.isnan(p)  # persistence is scored on the same rows as the model
        model_error, naive_error = metrics.rmse(a, p), metrics.rmse(a[scored], n[scored])
        skill = 1 - model_error / naive_error
        return float(skill) if np.isfinite(skill) else -1.0
