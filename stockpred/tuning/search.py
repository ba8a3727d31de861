"""The searches over one model's hyperparameters: DQN, Optuna's TPE or random, and their
trial logs (the `tune` stage that runs them: stockpred.stages.tune).

Every agent gets the same budget of distinct configurations, scored by the same
objective (validation skill before the test period, see objective.py), and logs its
trials to <data dir>/runs/tune/<model>/<agent>.parquet.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.dataset import model_features
from stockpred.layout import Paths
from stockpred.models.registry import prototype
from stockpred.tuning.objective import Objective, TrialLog

AGENTS = ("dqn", "optuna", "random")


def search_random(objective: Objective, space: dict, budget: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(20 * budget):
        if objective.trials >= budget:
            return
        objective({n: v[int(rng.integers(len(v)))] for n, v in space.items()})


def search_optuna(objective: Objective, space: dict, budget: int, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    grid = {n: optuna.distributions.CategoricalDistribution(list(range(len(v))))
            for n, v in space.items()}
    for _ in range(20 * budget):
        if objective.trials >= budget:
            return
        trial = study.ask(grid)
        study.tell(trial, objective({n: space[n][trial.params[n]] for n in space}))


def search_dqn(objective: Objective, space: dict, budget: int, seed: int) -> None:
    from stockpred.tuning.dqn import DQNAgent, DQNSettings
    from stockpred.tuning.env import TuningEnv

    env = TuningEnv(space, objective)
    agent = DQNAgent(env.observation_space.shape[0], int(env.action_space.n),
                     DQNSettings(epsilon_decay_steps=max(10, 2 * budget)), seed)
    observation, _ = env.reset(seed=seed)
    for _ in range(20 * budget):
        if objective.trials >= budget:
            return
        action = agent.act(observation)
        after, reward, terminated, truncated, _ = env.step(action)
        agent.remember(observation, action, reward, after, terminated)
        observation = after
        if terminated or truncated:
            observation, _ = env.reset()


SEARCHES = {"dqn": search_dqn, "optuna": search_optuna, "random": search_random}


def trial_log(config: Config, paths: Paths, model: str, agent: str,
              stocks: list[str]) -> TrialLog:
    """The agent's log for this exact setting: a score depends on the stocks, the features,
    the periods and the model's base settings, so each combination has its own log and a
    rerun after any of them changed starts afresh instead of reusing stale scores."""
    ev = config.evaluation
    context = {"stocks": stocks, "features": model_features(paths),
               "periods": [ev.validation_start, ev.test_start, ev.validation_days, ev.seed],
               "settings": prototype(config, model).settings}
    tag = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode()).hexdigest()
    return TrialLog(paths.tune_dir(model) / f"{agent}-{tag[:12]}.parquet")


def trial_curves(paths: Paths, model: str) -> dict[str, pd.Series]:
    """Best validation skill so far after each trial, per agent (its latest log)."""
    curves = {}
    for agent in AGENTS:
        logs = sorted(paths.tune_dir(model).glob(f"{agent}-*.parquet"),
                      key=lambda p: p.stat().st_mtime)
        if logs:
            log = TrialLog(logs[-1]).read()
            curves[agent] = log["skill"].astype(float).cummax().reset_index(drop=True)
    return curves
