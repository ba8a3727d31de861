"""The news encoders: every stored news article as one fixed-size vector (the stage that
runs them: stockpred.stages.embed_news).

Two encoders:

- ``offline`` (default, nothing to download): character n-gram TF-IDF over the article's
  text (Chinese has no spaces, so characters and their 2- and 3-grams stand in for words),
  reduced with TruncatedSVD to ``news.dimensions`` and L2-normalised. The vocabulary, the
  IDF weights and the SVD basis are fit only on articles published before
  ``news.fit_end``; every article (before or after) is then transformed with that fixed
  encoder, one at a time. So no vector depends on an article published on or after
  fit_end: adding, removing or editing later articles leaves every vector unchanged, and
  a model validated and tested after fit_end sees inputs built only from earlier text.
  Keep fit_end at or before the seq2seq validation start (`stockpred train seq2seq`
  refuses otherwise).
- ``bert-service``: a bert-as-service server reached with bert-serving-client; the
  server's sentence vectors are stored as they come (their size is the server's).
- ``finetuned``: a small transformer trained in Keras on the articles before fit_end to
  predict the index's next move, from scratch or from a user's pre-trained checkpoint
  (stockpred.news.finetune); fit_end binds it as it binds the offline encoder.

The stage writes <data dir>/news/vectors.parquet (one row per article: datetime, src,
channels, title, company, v0..v{d-1}) and vectors.json; read_vectors reads them back.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from stockpred.data.store import RawStore
from stockpred.errors import InputError, MissingInputError
from stockpred.layout import Paths
from stockpred.news.settings import BertServiceSettings, NewsSettings

log = logging.getLogger(__name__)

META_COLUMNS = ["datetime", "src", "channels", "title", "company"]
ENCODERS = ("offline", "bert-service", "finetuned")
QUICK_DIMENSIONS = 8


def vector_columns(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in frame.columns if c.startswith("v") and c[1:].isdigit()]
    return sorted(cols, key=lambda c: int(c[1:]))


def article_texts(news: pd.DataFrame, max_chars: int) -> list[str]:
    """Each article's title, then the start of its content (the title carries the topic)."""
    title = news["title"].fillna("").astype(str).str.strip()
    content = news["content"].fillna("").astype(str).str.strip() if "content" in news else ""
    if max_chars <= 0:
        text = title
    else:
        text = (title + " " + content.str.slice(0, max_chars)).str.strip()
    return [t if t else "-" for t in text.tolist()]


# -- encoders ----------------------------------------------------------------------------------

class OfflineEncoder:
    """Character n-gram TF-IDF -> TruncatedSVD -> L2 norm; fit once, then transform any text.

    n-grams seen in fewer than two fitted articles are dropped (they cannot relate two
    articles and would only slow the SVD); ARPACK with a seeded start vector makes the
    basis, and so every vector, the same on every run.
    """

    def __init__(self, dimensions: int = 64, ngram_range: tuple[int, int] = (1, 3),
                 seed: int = 0):
        self.dimensions = dimensions
        self.ngram_range = tuple(ngram_range)
        self.seed = seed

    def fit(self, texts: list[str]) -> "OfflineEncoder":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range,
                                           sublinear_tf=True, min_df=2, max_features=50_000,
                                           dtype=np.float64)
        matrix = self.vectorizer_.fit_transform(texts)
        limit = min(matrix.shape) - 1
        if self.dimensions > limit:
            raise InputError(f"news.dimensions {self.dimensions} is too many for the "
                             f"{len(texts)} articles before news.fit_end (at most {limit}); "
                             f"lower news.dimensions or move news.fit_end later")
        self.svd_ = TruncatedSVD(self.dimensions, algorithm="arpack",
                                 random_state=self.seed).fit(matrix)
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        reduced = self.svd_.transform(self.vectorizer_.transform(texts))
        norms = np.linalg.norm(reduced, axis=1, keepdims=True)
        return (reduced / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def bert_service_encode(texts: list[str], settings: BertServiceSettings) -> np.ndarray:
    """Sentence vectors from a bert-as-service server; a one-line InputError if it fails."""
    import zmq
    from bert_serving.client import BertClient
    from bert_serving.client import __version__ as client_version

    where = f"{settings.host}:{settings.port}/{settings.port_out}"
    try:
        # the checks BertClient would run in its constructor are done below, so that a
        # server that does not answer still lets the client close its sockets
        client = BertClient(ip=settings.host, port=settings.port, port_out=settings.port_out,
                            timeout=settings.timeout_ms, check_length=False,
                            ignore_all_checks=True)
    except zmq.ZMQError as exc:
        raise InputError(f"cannot reach the bert-as-service server at {where}: {exc} "
                         f"(see news.bert in config.json)") from None
    try:
        server = client.server_config
        version = server.get("server_version")
        if version != client_version:
            raise InputError(f"the bert-as-service server at {where} runs version {version}, "
                             f"bert-serving-client is {client_version}")
        parts = []
        for start in range(0, len(texts), settings.batch_size):
            parts.append(np.asarray(client.encode(texts[start:start + settings.batch_size]),
                                    dtype=np.float32))
    except TimeoutError:
        raise InputError(f"the bert-as-service server at {where} did not answer within "
                         f"{settings.timeout_ms} ms: start it or fix news.bert in config.json "
                         f"(or use --encoder offline)") from None
    except zmq.ZMQError as exc:
        raise InputError(f"bert-as-service at {where} failed: {exc}") from None
    finally:
        client.close()
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
        raise InputError(f"the bert-as-service server at {where} sent {vectors.shape} vectors "
                         f"for {len(texts)} texts (or non-finite values)")
    return vectors


# -- the stage ---------------------------------------------------------------------------------

def read_news(paths: Paths) -> pd.DataFrame:
    """The stored news table in time order; MissingInputError naming `stockpred fetch`."""
    store = RawStore(paths.raw_dir)
    news = store.read("news")  # raises MissingInputError naming `stockpred fetch`
    if news.empty:
        raise MissingInputError(f"the news table under {store.table_dir('news')} is empty: "
                                f"run `stockpred fetch` (with the news group) first")
    news = news.copy()
    stamp = pd.to_datetime(news["datetime"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad = int(stamp.isna().sum())
    if bad:
        log.warning("embed-news: %d articles without a readable datetime left out", bad)
    news = news[stamp.notna()].assign(_t=stamp[stamp.notna()])
    news = news.sort_values(["_t", "src", "title"], kind="stable").drop(columns="_t")
    for col in META_COLUMNS:
        if col not in news.columns:
            news[col] = pd.NA
    return news.reset_index(drop=True)


def before_fit_end(news: pd.DataFrame, fit_end: str) -> np.ndarray:
    """Which articles were published before the day ``fit_end`` (YYYYMMDD) began."""
    cutoff = f"{fit_end[:4]}-{fit_end[4:6]}-{fit_end[6:]} 00:00:00"
    return (news["datetime"].astype(str) < cutoff).to_numpy()


def encode_offline(news: pd.DataFrame, settings: NewsSettings, dimensions: int,
                   ngram_range: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Vectors for every article from an encoder fit on those before settings.fit_end."""
    texts = article_texts(news, settings.text_max_chars)
    fit_mask = before_fit_end(news, settings.fit_end)
    fit_texts = [t for t, keep in zip(texts, fit_mask) if keep]
    if len(fit_texts) <= dimensions:
        raise InputError(f"only {len(fit_texts)} news articles before news.fit_end "
                         f"{settings.fit_end}: need more than news.dimensions ({dimensions}); "
                         f"move news.fit_end later or fetch more news")
    encoder = OfflineEncoder(dimensions, ngram_range, seed=0).fit(fit_texts)
    return encoder.transform(texts), len(fit_texts)


def read_vectors(paths: Paths) -> tuple[pd.DataFrame, dict]:
    """vectors.parquet and its manifest; MissingInputError naming `stockpred embed-news`."""
    path = paths.news_vectors
    if not path.exists():
        raise MissingInputError(f"no news vectors at {path}: run `stockpred embed-news` first")
    manifest = {}
    try:
        manifest = json.loads(paths.news_vectors_manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("no readable %s beside the news vectors", paths.news_vectors_manifest)
    return pd.read_parquet(path), manifest
