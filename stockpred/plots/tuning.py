"""Best validation skill so far against trials, for each tuning agent of a model."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from stockpred.config import Config
from stockpred.errors import MissingInputError
from stockpred.layout import Paths
from stockpred.manifest import read_manifest
from stockpred.plots import Provenance, drawn_from, save_figure
from stockpred.tuning.search import AGENTS, trial_curves
from stockpred.tuning.spaces import SPACES


def _drawn(config: Config, paths: Paths, model: str) -> Provenance:
    """The searches of ``model`` as its agents' best.json record them: finished when the
    last of them finished, quick when any was."""
    folder = paths.tune_dir(model)
    bests = [b for b in (read_manifest(folder / f"{agent}.best.json") for agent in AGENTS) if b]
    finished = [b["finished_at"] for b in bests if b.get("finished_at")]
    return drawn_from("stockpred plot tuning", config, paths, folder,
                      max(finished) if finished else None,
                      quick=any(b.get("quick") for b in bests))


def run(config: Config, paths: Paths, model: str | None = None) -> list[Path]:
    models = [model] if model else [m for m in SPACES if trial_curves(paths, m)]
    made = []
    out = paths.figures_dir("tuning")
    for name in models:
        curves = trial_curves(paths, name)
        if not curves:
            raise MissingInputError(f"no tuning trials for {name}: run `stockpred tune "
                                    f"--model {name}` first")
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(9, 4.2))
        for agent, curve in curves.items():
            ax.step(range(1, len(curve) + 1), curve, where="post", label=agent)
        ax.axhline(0, color="gray", ls="--", lw=0.8, label="persistence")
        ax.set_xlabel("trial (distinct configurations)")
        ax.set_ylabel("best validation skill so far\n(1 - RMSE / persistence RMSE)")
        ax.set_title(f"Tuning {name}: DQN, Optuna TPE and random search at equal budgets "
                     f"(validation {config.evaluation.validation_start[:4]})")
        ax.grid(alpha=0.3)
        ax.legend()
        made.append(save_figure(fig, out / f"{name}_best_so_far.png",
                                _drawn(config, paths, name)))
    return made
