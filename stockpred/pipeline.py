"""`stockpred refresh`: the nightly job. Fetch what is new, then rerun the later stages."""

from __future__ import annotations

from collections.abc import Callable

from stockpred.config import Config
from stockpred.data import fetch
from stockpred.features import build as features
from stockpred.features import importance
from stockpred.layout import Paths
from stockpred.evaluation import evaluate
from stockpred.models import train
from stockpred.manifest import read_manifest, section_hash, upstream
from stockpred.plots import features as feature_figures


def _features_stale(config: Config, paths: Paths) -> bool:
    built = read_manifest(paths.features_manifest)
    if built is None:
        return True
    stocks = set(built.get("stocks", {})) | set(built.get("skipped", {}))
    return (built.get("inputs") != features.input_hashes(paths)
            or built.get("features_config_sha256") != section_hash(config.features)
            or stocks != set(features.universe(paths, None)))


def _importance_stale(config: Config, paths: Paths) -> bool:
    chosen = read_manifest(paths.selected_features)
    built = read_manifest(paths.features_manifest) or {}
    return (chosen is None
            or chosen.get("features_manifest_finished_at") != built.get("finished_at")
            or chosen.get("importance_config_sha256") != section_hash(config.importance))


def _plot_stale(config: Config, paths: Paths) -> bool:
    drawn = read_manifest(paths.feature_figures_dir / feature_figures.MANIFEST)
    return drawn is None or drawn.get("upstream") != upstream(paths)


def _train_stale(config: Config, paths: Paths) -> bool:
    folder = paths.model_runs(config.refresh.train_model)
    runs = sorted(folder.glob("*/metrics.json")) if folder.is_dir() else []
    last = read_manifest(runs[-1]) if runs else None
    return last is None or last.get("quick") or last.get("upstream") != upstream(paths)


def _evaluate_stale(config: Config, paths: Paths) -> bool:
    board = read_manifest(paths.results_dir / "leaderboard.json")
    return (board is None or board.get("quick") or board.get("upstream") != upstream(paths)
            or board.get("settings_sha256") != evaluate.settings_hash(config))


# stage -> (is it stale?, run it and return summary lines)
STAGES: dict[str, tuple[Callable[[Config, Paths], bool], Callable[[Config, Paths], list[str]]]] = {
    "features": (_features_stale,
                 lambda config, paths: features.run(config, paths, progress=False).summary()),
    "importance": (_importance_stale,
                   lambda config, paths: importance.run(config, paths).summary()),
    "train": (_train_stale, lambda config, paths: train.run(
        config, paths, config.refresh.train_model, progress=False).summary()),
    "evaluate": (_evaluate_stale,
                 lambda config, paths: evaluate.run(config, paths, progress=False).summary()),
    "plot": (_plot_stale,
             lambda config, paths: [f"plot: {len(feature_figures.run(config, paths))} figures in "
                                    f"{paths.feature_figures_dir}"]),
}


def refresh(config: Config, paths: Paths, progress: bool = False) -> list[str]:
    """Incremental fetch of the configured universe, then each configured later stage.

    A stage reruns only when the inputs or settings it last used have changed.
    """
    lines = fetch.run(config, paths, progress=progress).summary()
    for stage in config.refresh.stages:
        stale, run = STAGES[stage]
        if stale(config, paths):
            lines += run(config, paths)
        else:
            lines.append(f"{stage}: up to date, inputs unchanged")
    return lines
