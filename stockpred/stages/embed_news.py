"""The embed-news stage: every stored news article as one fixed-size vector, written to
<data dir>/news/vectors.parquet (one row per article: datetime, src, channels, title,
company, v0..v{d-1}) and vectors.json (encoder, dimensions, rows, fit window, input hash,
versions), both atomically; the fine-tuned encoder also saves itself to
<data dir>/news/encoder.keras. The encoders: stockpred.news.embed and
stockpred.news.finetune."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.data.store import RawStore, atomic_write_parquet
from stockpred.errors import InputError
from stockpred.layout import Paths
from stockpred.manifest import package_versions, section_hash, table_summary, write_manifest
from stockpred.news import finetune
from stockpred.news.embed import (ENCODERS, META_COLUMNS, QUICK_DIMENSIONS, article_texts,
                                  bert_service_encode, encode_offline, read_news)


@dataclass
class EmbedReport:
    path: Path
    encoder: str
    rows: int
    dimensions: int
    fit_rows: int | None
    fit_end: str | None

    def summary(self) -> list[str]:
        fitted = ("" if self.fit_rows is None else
                  f", fit on the {self.fit_rows} articles before {self.fit_end}")
        return [f"{self.rows} articles -> {self.dimensions}-dimensional vectors "
                f"({self.encoder}{fitted})", f"saved {self.path}"]


def run(config: Config, paths: Paths, encoder: str | None = None,
        quick: bool = False) -> EmbedReport:
    settings = config.news
    name = encoder or settings.encoder
    if name not in ENCODERS:
        raise InputError(f"unknown news encoder {name!r}; encoders are {', '.join(ENCODERS)}")
    news = read_news(paths)
    fit_rows = fit_end = None
    trained = {}
    dims = min(settings.dimensions, QUICK_DIMENSIONS) if quick else settings.dimensions
    if name == "offline":
        ngrams = (1, 2) if quick else settings.ngram_range
        vectors, fit_rows = encode_offline(news, settings, dims, ngrams)
        fit_end = settings.fit_end
    elif name == "finetuned":
        vectors, fit_rows, trained = _finetuned(config, paths, news, dims, quick)
        fit_end = settings.fit_end
    else:
        vectors = bert_service_encode(article_texts(news, settings.text_max_chars),
                                      settings.bert)
    dims = vectors.shape[1]
    table = news[META_COLUMNS].astype("string").reset_index(drop=True)
    table = pd.concat([table, pd.DataFrame(vectors.astype(np.float64),
                                           columns=[f"v{i}" for i in range(dims)])], axis=1)
    out = paths.news_vectors
    atomic_write_parquet(table, out)
    write_manifest(paths.news_vectors_manifest, {
        "stage": "embed-news", "encoder": name, "dimensions": dims, "rows": len(table),
        "quick": quick, "fit_end": fit_end, "fit_rows": fit_rows, **trained,
        "first_article": str(table["datetime"].min()), "last_article": str(table["datetime"].max()),
        "news_settings_hash": section_hash(settings),
        "inputs": {"news": table_summary(RawStore(paths.raw_dir), "news")},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions()})
    return EmbedReport(out, name, len(table), dims, fit_rows, fit_end)


def _finetuned(config: Config, paths: Paths, news: pd.DataFrame, dimensions: int,
               quick: bool) -> tuple[np.ndarray, int, dict]:
    """The fine-tuned encoder's vectors, its fitted article count and what its manifest
    records of the training: the index, the checkpoint (path and sha256), the layers
    loaded from it, epochs run and validation accuracy."""
    settings = config.news.finetune
    if quick:
        settings = settings.model_copy(update=dict(epochs=2, width=8, sequence_length=32,
                                                   vocabulary=min(settings.vocabulary, 500)))
    checkpoint = config.resolved(settings.checkpoint) if settings.checkpoint else None
    code = config.news.seq2seq.index_code
    index = finetune.read_index(paths.raw_dir, code)
    done = finetune.encode_finetuned(news, index, config.news, settings, dimensions,
                                     checkpoint, paths.news_encoder)
    return done.vectors, done.fit_rows, {"finetune": {
        "index_code": code, "model": paths.news_encoder.name,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_sha256": (None if checkpoint is None else
                              hashlib.sha256(checkpoint.read_bytes()).hexdigest()),
        "loaded_layers": done.loaded_layers, "epochs_run": done.epochs_run,
        "validation_accuracy": round(done.validation_accuracy, 4)}}
