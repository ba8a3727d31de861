"""The news seq2seq stage (`stockpred train seq2seq`): the network trained and judged
honestly.

The network is judged against the same network trained on inputs that are pure noise
(news removed, so it can learn only the mean) and the naive forecast (zero gap, zero
return), on a test period that follows training and validation in time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config, config_as_json
from stockpred.data.store import atomic_write_parquet, atomic_write_text
from stockpred.errors import InputError
from stockpred.layout import Paths, new_run_folder
from stockpred.manifest import package_versions
from stockpred.news.samples import KINDS, SampleSet, build_samples, load_inputs
from stockpred.news.seq2seq import (
    FILLS,
    NETWORK_DIR,
    NewsSeq2Seq,
    model_settings,
    score,
)
from stockpred.news.settings import NewsSeq2SeqSettings

log = logging.getLogger(__name__)
QUICK = {"units": 4, "epochs": 2, "batch_size": 64, "patience": 1, "lookback_minutes": 10,
         "horizon_minutes": 5, "offhours_steps": 8, "offhours_step_minutes": 120}


def effective_settings(settings: NewsSeq2SeqSettings, quick: bool) -> NewsSeq2SeqSettings:
    return settings.model_copy(update=QUICK) if quick else settings


@dataclass
class Seq2SeqReport:
    run_dir: Path
    metrics: dict

    def summary(self) -> list[str]:
        def num(value, fmt):
            return "n/a" if value is None else format(value, fmt)

        lines = [f"saved {self.run_dir}"]
        for kind in KINDS:
            m = self.metrics[kind]
            n = m["samples"]
            lines.append(f"{kind}: {n['train']} train / {n['valid']} valid / {n['test']} test "
                         f"samples, fill {m['fill']}")
            if m["fill_won"] is not None:
                lines.append("  validation rmse by fill: " + ", ".join(
                    f"{fill} {num(v['rmse'], '.5f')}" for fill, v in m["fill_comparison"].items())
                    + f" (naive {num(m['valid']['naive']['rmse'], '.5f')}): "
                    f"{m['fill_won']} won")
            for name in ("with_news", "without_news", "naive"):
                t = m["test"][name]
                lines.append(f"  test {name:12s} rmse {num(t['rmse'], '.5f')}  direction "
                             f"{num(t['directional_accuracy'], '.3f')}")
        return lines


def _check_splits(samples: SampleSet, s: NewsSeq2SeqSettings) -> dict[str, int]:
    counts = {name: int((samples.meta["split"] == name).sum()) if len(samples) else 0
              for name in ("train", "valid", "test")}
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise InputError(f"no {samples.kind} news samples in the {' and '.join(empty)} period "
                         f"(valid_start {s.valid_start}, test_start {s.test_start}, test_end "
                         f"{s.test_end}; {counts}): adjust news.seq2seq or fetch more news")
    return counts


def run(config: Config, paths: Paths, quick: bool = False, progress: bool = False
        ) -> Seq2SeqReport:
    s = effective_settings(config.news.seq2seq, quick)
    vectors, manifest, index, minutes = load_inputs(config, paths, s)
    sets = build_samples(vectors, index, minutes, s)
    counts = {kind: _check_splits(sets[kind], s) for kind in KINDS}
    train, valid, test = ({kind: sets[kind].split(name) for kind in KINDS}
                          for name in ("train", "valid", "test"))
    fills = [s.fill] + ([f for f in FILLS if f != s.fill] if s.compare_fill else [])
    verbose = 1 if progress else 0
    networks = {}
    for fill in fills:
        log.info("news seq2seq: fill %s", fill)
        networks[fill] = NewsSeq2Seq(model_settings(s, fill), s.seed).fit(train, valid, verbose)
    chosen = networks[s.fill]
    control = NewsSeq2Seq(model_settings(s, s.fill, with_news=False), s.seed).fit(
        train, valid, verbose)
    with new_run_folder(paths.model_runs("seq2seq"), quick) as run_folder:
        run_dir = run_folder.writing
        chosen.save(run_dir / NETWORK_DIR)
        metrics, frames = {}, []
        for kind in KINDS:
            comparison = {fill: score(valid[kind].target, networks[fill].predict(valid[kind]))
                          for fill in fills}
            predicted = {"with_news": chosen.predict(test[kind]),
                         "without_news": control.predict(test[kind]),
                         "naive": np.zeros(test[kind].target.shape)}
            metrics[kind] = {
                "samples": counts[kind], "fill": s.fill, "fill_comparison": comparison,
                "fill_won": (min(comparison, key=lambda f: comparison[f]["rmse"])
                             if len(comparison) > 1 else None),
                "epochs_run": len(chosen.history_["loss"]),
                "horizon": int(test[kind].target.shape[1]),
                "steps": int(test[kind].news.shape[1]),
                "valid": {"with_news": comparison[s.fill],
                          "without_news": score(valid[kind].target,
                                                control.predict(valid[kind])),
                          "naive": score(valid[kind].target,
                                         np.zeros(valid[kind].target.shape))},
                "test": {name: score(test[kind].target, p) for name, p in predicted.items()}}
            samples = test[kind]
            for i in range(len(samples)):
                frames.append({"kind": kind, "time": samples.meta["time"].iloc[i],
                               "articles": int(samples.meta["articles"].iloc[i]),
                               **{f"actual_{h + 1}": samples.target[i, h]
                                  for h in range(samples.target.shape[1])},
                               **{f"{name}_{h + 1}": p[i, h] for name, p in predicted.items()
                                  if name != "naive" for h in range(samples.target.shape[1])}})
        atomic_write_parquet(pd.DataFrame(frames), run_dir / "predictions.parquet")
        atomic_write_text(run_dir / "config.json", config_as_json(config))
        atomic_write_text(run_dir / "metrics.json", json.dumps({
            "model": "news-seq2seq", "quick": quick, "settings": s.model_dump(mode="json"),
            "network": "one network for both kinds: a shared encoder LSTM, a decoder and "
                       "output layer per kind, trained on alternating batches",
            "vectors": {k: manifest.get(k) for k in ("encoder", "dimensions", "rows", "fit_end",
                                                     "finished_at")},
            "split": {"train": f"before {s.valid_start}", "valid": [s.valid_start, s.test_start],
                      "test": [s.test_start, s.test_end]},
            "metrics": metrics, "versions": package_versions()}, indent=1, default=str) + "\n")
    return Seq2SeqReport(run_folder.final, metrics)
