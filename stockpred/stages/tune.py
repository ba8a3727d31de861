"""The tune stage: DQN, Optuna's TPE or random search over one model's hyperparameters
(stockpred.tuning.search), scored on validation days only.

The best configuration goes to <agent>.best.json with its scope (the stocks or the
universe, and the periods); `evaluate` (or `evaluate --cross-section`) of the same scope
walks it forward over the test period, which tuning never read, as the row
"<model> (tuned by <agent>)" (stockpred.evaluation.leaderboard).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone

from stockpred.config import Config, quick_config
from stockpred.data.store import atomic_write_text
from stockpred.dataset import stocks_to_use
from stockpred.errors import InputError
from stockpred.evaluation.leaderboard import tuning_scope
from stockpred.layout import Paths
from stockpred.models.names import CROSS_SECTION, STOCK
from stockpred.models.registry import prototype
from stockpred.stages.market import compute_client
from stockpred.tuning.objective import Objective, TrialLog
from stockpred.tuning.search import AGENTS, SEARCHES, trial_log
from stockpred.tuning.spaces import SPACES, configurations, tunable


def _trials_line(what: str, trials: int, computed: int, space_size: int, wall_s: float) -> str:
    exhausted = "; that is every configuration the space holds" if trials >= space_size else ""
    return (f"{what}: {trials} trials ({computed} computed now, the rest from the log) in "
            f"{wall_s:.0f} s{exhausted}")


@dataclass
class TuneReport:
    model: str
    agent: str
    trials: int
    computed: int
    best: dict
    best_skill: float
    wall_s: float
    space_size: int

    def summary(self) -> list[str]:
        return [_trials_line(f"tune {self.model} with {self.agent}", self.trials,
                             self.computed, self.space_size, self.wall_s),
                f"  best validation skill {self.best_skill:+.4f} (0 = persistence) with "
                f"{json.dumps(self.best)}",
                f"  `stockpred evaluate` of these stocks now tests it as "
                f"\"{self.model} (tuned by {self.agent})\""]


def _check(agent: str, model: str, world: str) -> None:
    if model not in tunable(world):
        raise InputError(f"no search space for {model!r}; tunable models are "
                         f"{', '.join(tunable(world))}")
    if agent not in AGENTS:
        raise InputError(f"unknown agent {agent!r}; agents are {', '.join(AGENTS)}")


def run(config: Config, paths: Paths, model: str, agent: str, budget: int,
        ts_codes: list[str] | None = None, quick: bool = False) -> TuneReport:
    _check(agent, model, STOCK)
    space_size = configurations(SPACES[model])
    # more trials than distinct configurations would only spin under the data lock
    budget = min(budget, space_size)
    if quick:
        config = quick_config(config)
    ev = config.evaluation
    stocks = stocks_to_use(config, paths, ts_codes)
    folder = paths.tune_dir(model)
    log = trial_log(config, paths, model, agent, stocks)
    objective = Objective(config, paths, model, stocks, agent, log)
    start = time.perf_counter()
    SEARCHES[agent](objective, SPACES[model], budget, ev.seed)
    report = TuneReport(model, agent, objective.trials, objective.computed, *_best_trial(log),
                        time.perf_counter() - start, space_size)
    _write_best(folder, report, budget, quick, SPACES[model],
                tuning_scope(config, stocks=sorted(stocks)))
    return report


@dataclass
class CrossSectionTuneReport:
    model: str
    universe: str
    agent: str
    trials: int
    computed: int
    space_size: int
    best: dict
    best_skill: float  # validation Rank IC
    wall_s: float

    def summary(self) -> list[str]:
        return [_trials_line(f"tune {self.model} on {self.universe} with {self.agent}",
                             self.trials, self.computed, self.space_size, self.wall_s),
                f"  best validation Rank IC {self.best_skill:+.4f} with "
                f"{json.dumps(self.best)}",
                f"  `stockpred evaluate --cross-section --universe {self.universe}` now tests "
                f"it as \"{self.model} (tuned by {self.agent})\""]


def run_cross_section(config: Config, paths: Paths, universe: str, model: str, agent: str,
                      budget: int, quick: bool = False) -> CrossSectionTuneReport:
    """Tune cross-sectional ``model`` on ``universe`` by validation Rank IC (see
    tuning/cross_section.py); the best settings go to its `.best.json`."""
    from stockpred.tuning.cross_section import CrossSectionObjective

    _check(agent, model, CROSS_SECTION)
    space = SPACES[model]
    budget = min(budget, configurations(space))
    if quick:
        config = quick_config(config)
    ev, cs = config.evaluation, config.cross_section
    folder = paths.cross_section_tune_dir(universe, model)
    factors = paths.factors_manifest(universe)
    context = {"periods": [ev.validation_start, ev.test_start], "seed": ev.seed,
               "settings": prototype(config, model).settings,
               "panel": [cs.label, cs.normalise, cs.mad_k, cs.train_days, cs.validation_days],
               "factors": factors.read_text(encoding="utf-8") if factors.exists() else None}
    tag = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()
    log = TrialLog(folder / f"{agent}-{tag[:12]}.parquet")
    start = time.perf_counter()
    objective = CrossSectionObjective(config, paths, universe, model, agent, log)
    on_dask = objective.prototype.settings.get("on_dask", False)
    with compute_client(config) if on_dask else nullcontext():
        SEARCHES[agent](objective, space, budget, ev.seed)
    report = CrossSectionTuneReport(model, universe, agent, objective.trials,
                                    objective.computed, configurations(space),
                                    *_best_trial(log), time.perf_counter() - start)
    _write_best(folder, report, budget, quick, space, tuning_scope(config, universe=universe))
    return report


def _best_trial(log: TrialLog) -> tuple[dict, float]:
    """The settings and score of the log's best trial."""
    trials = log.read()
    best = trials.loc[trials["skill"].astype(float).idxmax()]
    return json.loads(best["params"]), float(best["skill"])


def _write_best(folder, report, budget: int, quick: bool, space: dict, scope: dict) -> None:
    """The agent's choice, and the scope `evaluate` matches it on."""
    atomic_write_text(folder / f"{report.agent}.best.json", json.dumps({
        "model": report.model, "agent": report.agent, "budget": budget, "quick": quick,
        "scope": scope, "best": report.best, "validation_score": report.best_skill,
        "search_space": space, "wall_s": report.wall_s,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        indent=1) + "\n")
