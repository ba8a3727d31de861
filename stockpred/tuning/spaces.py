"""The values each tunable model's hyperparameters may take.

Kept apart from the objective so that the command line can name the tunable models
without importing what tuning needs.
"""

from __future__ import annotations

import math

# each list in index order "down" to "up", the DQN agent's two moves
SPACES: dict[str, dict[str, list]] = {
    **{name: {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
              "sequence_length": [5, 10, 20, 40],
              "dropout": [0.0, 0.1, 0.2, 0.4],
              "units": [[8], [16], [32], [64], [64, 64]]} for name in ("lstm", "gru", "tcn")},
    "xgboost": {"learning_rate": [0.01, 0.03, 0.1, 0.3],
                "max_depth": [2, 3, 4, 6, 8],
                "n_estimators": [25, 50, 100, 200],
                "subsample": [0.5, 0.8, 1.0]},
    "svr": {"c": [0.01, 0.1, 1.0, 10.0], "epsilon": [0.01, 0.1, 0.5, 1.0]},
    # the WGAN's loss weights: the gradient penalty and the critic/generator balance
    "wgan": {"gp_weight": [1.0, 5.0, 10.0, 20.0], "critic_steps": [1, 3, 5, 8],
             "generator_learning_rate": [3e-5, 1e-4, 3e-4, 1e-3],
             "critic_learning_rate": [3e-5, 1e-4, 3e-4, 1e-3]},
    "fusion": {"alpha": [0.0, 0.25, 0.5, 0.75, 1.0]},
    # the cross-sectional models (`tune --universe`), scored by validation Rank IC
    "lightgbm": {"learning_rate": [0.02, 0.05, 0.1, 0.2],
                 "num_leaves": [31, 63, 127, 210],
                 "min_child_samples": [20, 100, 500],
                 "colsample_bytree": [0.5, 0.8879]},
    "xgboost_cs": {"learning_rate": [0.03, 0.1, 0.3],
                   "max_depth": [4, 6, 8],
                   "subsample": [0.6, 0.9],
                   "colsample_bytree": [0.5, 0.8]},
    "mlp": {"learning_rate": [3e-4, 1e-3, 3e-3],
            "units": [[64], [128, 64], [256, 128]],
            "dropout": [0.0, 0.1, 0.3]},
    "lstm_cs": {"learning_rate": [3e-4, 1e-3, 3e-3],
                "units": [[16], [32], [64]],
                "window": [20, 40, 60]},
}


def configurations(space: dict[str, list]) -> int:
    """How many distinct configurations ``space`` holds."""
    return math.prod(len(values) for values in space.values())


def tunable(world: str) -> list[str]:
    from stockpred.models.names import MODELS

    return [name for name in SPACES if MODELS[name][0] == world]
