"""The plot stage: every figure family, each a pure drawing of stored tables."""

from __future__ import annotations

import importlib

from stockpred.config import Config
from stockpred.errors import MissingInputError
from stockpred.layout import Paths

# family -> (module whose run(config, paths) draws it, its folder under the results dir)
FAMILIES = {"features": ("stockpred.plots.features", "feature_engineering"),
            "lstm": ("stockpred.plots.lstm", "lstm"),
            "tuning": ("stockpred.plots.tuning", "tuning"),
            "generative": ("stockpred.plots.generative", "generative"),
            "news": ("stockpred.plots.news", "news")}


def draw(family: str, config: Config, paths: Paths, **options) -> list[str]:
    module, folder = FAMILIES[family]
    made = importlib.import_module(module).run(config, paths, **options)
    return [f"{family}: {len(made)} figures in {paths.figures_dir(folder)}"]


def run_all(config: Config, paths: Paths) -> list[str]:
    """Every family whose inputs exist; refuses (MissingInputError) when none could be drawn."""
    lines, drawn = [], 0
    for family in FAMILIES:
        try:
            lines += draw(family, config, paths)
            drawn += 1
        except MissingInputError as exc:
            lines.append(f"{family}: skipped ({exc})")
    if not drawn:
        raise MissingInputError("no figure could be drawn: " + "; ".join(lines))
    return lines
