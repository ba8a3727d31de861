"""The stage table: every stage after fetch, declared once, and the one staleness rule.

Each stage names the artefacts it reads (keys of ``ARTEFACTS``, each a manifest in the
catalogue), the config sections it depends on (dotted paths into config.json) and its
run function. A stage is stale when the fingerprint of its inputs' manifests, its
sections and the package version differs from the one recorded when it last finished.
`refresh` and `run` walk the table in order with that rule; nothing else decides.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from stockpred import __version__
from stockpred.config import Config
from stockpred.errors import MissingInputError
from stockpred.layout import BENCHMARKS, Paths
from stockpred.manifest import read_manifest, write_manifest

# artefact key -> its manifest in the catalogue
ARTEFACTS: dict[str, Callable[[Paths], Path]] = {
    "raw": lambda p: p.fetch_manifest,
    "features": lambda p: p.features_manifest,
    "selection": lambda p: p.selected_features,
    "leaderboard": lambda p: p.leaderboard_json,
    "train": lambda p: p.stage_record("train"),
    "latent": lambda p: p.latent_manifest,
    "minute_codes": lambda p: p.minute_codes_manifest,
    "news_vectors": lambda p: p.news_vectors_manifest,
    "experiments": lambda p: p.stage_record("experiments"),
    "tuning": lambda p: p.stage_record("tune"),
    "peer": lambda p: p.peer_comparison,
    **{script: lambda p, script=script: p.benchmark_results(script) for script in BENCHMARKS},
}
# what changes with every run although the content does not
_VOLATILE = {"finished_at", "started_at", "last_run", "wall_s", "run_dir", "run_id"}


@dataclass(frozen=True)
class Stage:
    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    sections: tuple[str, ...]
    run: Callable[[Config, Paths, bool], list[str]]  # (config, paths, progress) -> summary
    doc: str
    # refresh notes a missing input and goes on instead of failing: the stage's output is
    # optional (figures; codes that only `<model>+minutes` rows read, which then say so)
    optional: bool = False


def _features(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.features import build

    return build.run(config, paths, progress=progress).summary()


def _importance(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.features import importance

    return importance.run(config, paths).summary()


def _train(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.stages import train

    return train.run(config, paths, config.refresh.train_model, progress=progress).summary()


def _vae(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.stages import generative

    return generative.run_vae(config, paths, progress=progress).summary()


def _minutes(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.stages import generative

    return generative.run_minutes(config, paths, progress=progress).summary()


def _embed_news(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.news import embed

    return embed.run(config, paths).summary()


def _evaluate(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.stages import evaluate

    return evaluate.run(config, paths, progress=progress).summary()


def _plot(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.stages import plot

    return plot.run_all(config, paths)


def _readme(config: Config, paths: Paths, progress: bool) -> list[str]:
    from stockpred.stages import readme

    return readme.run(paths)


# what the news vectors depend on: the encoder's settings, not the models that read them
EMBEDDING_SECTIONS = ("news.encoder", "news.dimensions", "news.fit_end", "news.ngram_range",
                      "news.text_max_chars", "news.bert")

STAGES: tuple[Stage, ...] = (
    Stage("features", ("raw",), ("features",), ("features",), _features,
          "the point-in-time feature panel of every fetched stock"),
    Stage("importance", ("features",), ("selection",), ("importance",), _importance,
          "XGBoost importance on days before the test period; selected.json"),
    Stage("train", ("features", "selection"), ("train",),
          ("models", "evaluation", "refresh.train_model"), _train,
          "one fit of refresh.train_model, forecasting the test period"),
    Stage("vae", ("features", "selection"), ("latent",), ("generative.vae", "evaluation"),
          _vae, "the VAE of the evaluated stocks and their latent codes (`<model>+vae`)"),
    Stage("minutes", ("raw",), ("minute_codes",), ("generative.minutes", "evaluation"),
          _minutes, "the minute-bar day encoder and its daily codes (`<model>+minutes`)",
          optional=True),
    Stage("embed-news", ("raw",), ("news_vectors",), EMBEDDING_SECTIONS, _embed_news,
          "the news vectors the news model (`fusion+news`) and the seq2seq read",
          optional=True),
    Stage("evaluate", ("features", "selection", "tuning", "latent", "minute_codes",
                       "news_vectors"),
          ("leaderboard",), ("models", "evaluation", "news.forecaster"), _evaluate,
          "walk-forward forecasts of evaluation.models and the leaderboard"),
    Stage("plot", ("features", "selection", "leaderboard", "latent", "minute_codes",
                   "experiments", "tuning"),
          (), ("plot",), _plot, "every figure family whose inputs exist", optional=True),
    Stage("readme", ("leaderboard", "peer", *BENCHMARKS), ("readme",), (), _readme,
          "the README's result blocks, rendered from the result files"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def _section(config: Config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _artefact_digest(path: Path) -> str | None:
    manifest = read_manifest(path)
    if manifest is None:
        return None
    stable = {k: v for k, v in manifest.items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_parts(entry: Stage, config: Config, paths: Paths) -> dict:
    """What a stage's result depends on: its inputs' manifests, its sections, the version."""
    return {"inputs": {key: _artefact_digest(ARTEFACTS[key](paths)) for key in entry.reads},
            "sections": {s: hashlib.sha256(json.dumps(_section(config, s), sort_keys=True)
                                           .encode()).hexdigest() for s in entry.sections},
            "version": __version__}


def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def is_stale(entry: Stage, config: Config, paths: Paths) -> bool:
    recorded = read_manifest(paths.stage_record(entry.name))
    parts = fingerprint_parts(entry, config, paths)
    return recorded is None or recorded.get("fingerprint") != _fingerprint(parts)


def record_run(name: str, config: Config, paths: Paths, **facts) -> None:
    """Record that stage ``name`` finished on the current inputs and config. Every stage
    calls it, from refresh and from its own command alike, so a later refresh knows."""
    entry = next((s for s in STAGES if s.name == name), None)
    parts = fingerprint_parts(entry, config, paths) if entry else {"version": __version__}
    write_manifest(paths.stage_record(name), {
        "stage": name, "fingerprint": _fingerprint(parts), "parts": parts,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **facts})


def run_stage(entry: Stage, config: Config, paths: Paths, progress: bool) -> list[str]:
    lines = entry.run(config, paths, progress)
    record_run(entry.name, config, paths)
    return lines


def refresh(config: Config, paths: Paths, progress: bool = False) -> list[str]:
    """Incremental fetch of the configured universe, then each stage of refresh.stages
    that is stale, in the table's order."""
    from stockpred.data import fetch

    lines = fetch.run(config, paths, progress=progress).summary()
    for entry in STAGES:
        if entry.name not in config.refresh.stages:
            continue
        if not is_stale(entry, config, paths):
            lines.append(f"{entry.name}: up to date, inputs unchanged")
            continue
        try:
            lines += run_stage(entry, config, paths, progress)
        except MissingInputError as exc:
            if not entry.optional:
                raise
            lines.append(f"{entry.name}: skipped ({exc})")
    return lines
