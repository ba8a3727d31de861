"""The tune stage: DQN, Optuna's TPE or random search over one model's hyperparameters
(stockpred.tuning.search), then the best configuration walked forward.

The best configuration is evaluated walk-forward on the test period, which tuning never
read, and its row enters the leaderboard labelled with the agent that found it. For a
cross-sectional model the score is validation Rank IC on a universe, and `evaluate
--cross-section` adds the tuned row.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass

from stockpred.config import Config, quick_config
from stockpred.data.store import atomic_write_text
from stockpred.dataset import load_stock, model_features, stocks_to_use
from stockpred.errors import InputError
from stockpred.evaluation.leaderboard import write_leaderboard
from stockpred.evaluation.scoring import score
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.layout import Paths
from stockpred.models.registry import prototype
from stockpred.stages.market import compute_client
from stockpred.tuning.objective import Objective, TrialLog, key
from stockpred.tuning.search import AGENTS, SEARCHES, trial_log
from stockpred.tuning.spaces import CROSS_SECTION_SPACES, SPACES, configurations


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
    test_row: dict
    test_skill: float
    wall_s: float
    space_size: int

    def summary(self) -> list[str]:
        row = self.test_row
        return [_trials_line(f"tune {self.model} with {self.agent}", self.trials,
                             self.computed, self.space_size, self.wall_s),
                f"  best validation skill {self.best_skill:+.4f} (0 = persistence) with "
                f"{json.dumps(self.best)}",
                f"  test period, walk-forward: skill {self.test_skill:+.4f}, "
                f"rmse_return {row['rmse_return']:.5f}, "
                f"DM vs persistence {row['dm_stat_vs_persistence']:.3g} "
                f"(p {row['dm_pvalue_vs_persistence']:.3g})"]


def _check(agent: str, model: str, spaces: dict, kind: str) -> None:
    if model not in spaces:
        raise InputError(f"no search space for {model!r}; tunable {kind} are "
                         f"{', '.join(spaces)}")
    if agent not in AGENTS:
        raise InputError(f"unknown agent {agent!r}; agents are {', '.join(AGENTS)}")


def run(config: Config, paths: Paths, model: str, agent: str, budget: int,
        ts_codes: list[str] | None = None, quick: bool = False,
        progress: bool = True) -> TuneReport:
    _check(agent, model, SPACES, "models")
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
    trials = log.read()
    best_row = trials.loc[trials["skill"].astype(float).idxmax()]
    best = json.loads(best_row["params"])

    features = model_features(paths)
    data = [load_stock(paths, code, features) for code in stocks]
    protocol = WalkForward.from_config(config)
    forecasts = walk_forward(prototype(config, model, best), data, protocol, progress)
    persistence = walk_forward(prototype(config, "persistence"), data, protocol, False)
    row = {"model": f"{model} (tuned by {agent})", **score(forecasts, persistence)}
    naive = score(persistence, persistence)["rmse_return"]
    report = TuneReport(model, agent, objective.trials, objective.computed, best,
                        float(best_row["skill"]), row, 1 - row["rmse_return"] / naive,
                        time.perf_counter() - start, space_size)
    atomic_write_text(folder / f"{agent}.best.json", json.dumps({
        "model": model, "agent": agent, "budget": budget, "quick": quick, "stocks": stocks,
        "test_period": [ev.test_start, ev.test_end],
        "best": best, "validation_skill": report.best_skill, "test": row,
        "test_skill": report.test_skill, "wall_s": report.wall_s,
        "search_space": SPACES[model], "best_key": key(best)}, indent=1, default=str))
    write_leaderboard(paths)
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
    best_rank_ic: float
    wall_s: float

    def summary(self) -> list[str]:
        return [_trials_line(f"tune {self.model} on {self.universe} with {self.agent}",
                             self.trials, self.computed, self.space_size, self.wall_s),
                f"  best validation Rank IC {self.best_rank_ic:+.4f} with "
                f"{json.dumps(self.best)}",
                f"  `stockpred evaluate --cross-section --universe {self.universe}` now tests "
                f"it as \"{self.model} (tuned by {self.agent})\""]


def run_cross_section(config: Config, paths: Paths, universe: str, model: str, agent: str,
                      budget: int, quick: bool = False) -> CrossSectionTuneReport:
    """Tune cross-sectional ``model`` on ``universe`` by validation Rank IC (see
    tuning/cross_section.py); the best settings go to its `.best.json`."""
    from stockpred.tuning.cross_section import CrossSectionObjective

    _check(agent, model, CROSS_SECTION_SPACES, "cross-sectional models")
    space = CROSS_SECTION_SPACES[model]
    budget = min(budget, configurations(space))
    if quick:
        config = quick_config(config)
    ev, cs = config.evaluation, config.cross_section
    folder = paths.cross_section_tune_dir(universe, model)
    factors = paths.factors_manifest(universe)
    context = {"periods": [ev.validation_start, ev.test_start], "seed": ev.seed,
               "settings": getattr(cs, model).model_dump(mode="json"),
               "panel": [cs.label, cs.normalise, cs.mad_k, cs.train_days, cs.validation_days],
               "factors": factors.read_text(encoding="utf-8") if factors.exists() else None}
    tag = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()
    log = TrialLog(folder / f"{agent}-{tag[:12]}.parquet")
    start = time.perf_counter()
    objective = CrossSectionObjective(config, paths, universe, model, agent, log)
    on_dask = objective.prototype.settings.get("on_dask", False)
    with compute_client(config) if on_dask else nullcontext():
        SEARCHES[agent](objective, space, budget, ev.seed)
    trials = log.read()
    best_row = trials.loc[trials["skill"].astype(float).idxmax()]
    report = CrossSectionTuneReport(model, universe, agent, objective.trials,
                                    objective.computed, configurations(space),
                                    json.loads(best_row["params"]), float(best_row["skill"]),
                                    time.perf_counter() - start)
    atomic_write_text(folder / f"{agent}.best.json", json.dumps({
        "model": model, "universe": universe, "agent": agent, "budget": budget, "quick": quick,
        "periods": context["periods"], "best": report.best,
        "validation_rank_ic": report.best_rank_ic, "search_space": space,
        "wall_s": report.wall_s}, indent=1) + "\n")
    return report
