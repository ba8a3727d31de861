"""The embed-news stage: every stored news article as one fixed-size vector, written to
<data dir>/news/vectors.parquet (one row per article: datetime, src, channels, title,
company, v0..v{d-1}) and vectors.json (encoder, dimensions, rows, fit window, input hash,
versions), both atomically. The encoders: stockpred.news.embed."""

from __future__ import annotations

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
    if name == "offline":
        dims = min(settings.dimensions, QUICK_DIMENSIONS) if quick else settings.dimensions
        ngrams = (1, 2) if quick else settings.ngram_range
        vectors, fit_rows = encode_offline(news, settings, dims, ngrams)
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
        "quick": quick, "fit_end": fit_end, "fit_rows": fit_rows,
        "first_article": str(table["datetime"].min()), "last_article": str(table["datetime"].max()),
        "news_settings_hash": section_hash(settings),
        "inputs": {"news": table_summary(RawStore(paths.raw_dir), "news")},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions()})
    return EmbedReport(out, name, len(table), dims, fit_rows, fit_end)
