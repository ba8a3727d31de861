"""The fine-tuned news encoder (``news.encoder = "finetuned"``): a small transformer trained
on the articles to predict the index's next move; its penultimate layer is the vector.

Text: keras TextVectorization over characters and their n-grams (``news.finetune.ngrams``;
Chinese has no spaces, so characters stand in for words), the ``vocabulary`` most frequent
in the fitted articles, cut or padded to ``sequence_length`` tokens. Network: token and
position embeddings, one self-attention block (residual + layer norm, then a feed-forward
one), the mean over the tokens, ``news_vector`` (``news.dimensions`` tanh units: what is
stored) and ``next_move`` (sigmoid: the index rises).

Target: an article's index row is the first close after it (stockpred.news.forecaster's
``close_rows``: a stamp of 15:00 or later belongs to the next day); it is labelled 1 when
the index closes higher on the following trading day. Fitted articles: published before
``news.fit_end`` with that following close before fit_end too, so neither a later article
nor a later price shapes the encoder; the latest ``validation_fraction`` of them stop the
training early. Every article is then encoded by the fitted network alone (dropout off), so
its vector does not depend on any other article.

Pre-training: ``news.finetune.checkpoint`` names a .keras model trained elsewhere (on a
corpus whose dates its provider knows, like a bert-as-service model). Its TextVectorization
layer, when it has one, brings its vocabulary instead of one adapted here, and each layer of
ours whose name and weight shapes match one of its layers starts from its weights. A missing
file, one Keras cannot read, or one with no matching layer is a one-line InputError.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.data.store import RawStore, atomic_save
from stockpred.errors import InputError, MissingInputError
from stockpred.news.embed import article_texts, before_fit_end
from stockpred.news.samples import article_times
from stockpred.news.settings import FinetuneSettings, NewsSettings

log = logging.getLogger(__name__)

VECTORIZER, VECTOR_LAYER, OUTPUT_LAYER = "vectorizer", "news_vector", "next_move"


@dataclass
class FinetunedEncoding:
    """What the encoder wrote: every article's vector and how it was fit."""

    vectors: np.ndarray
    fit_rows: int
    epochs_run: int
    validation_accuracy: float
    loaded_layers: list[str]


def index_moves(times: pd.Series, index: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per article: whether the index rose over the trading day after its first close (1/0),
    and the day (YYYYMMDD) that move became known; NaN / "" where the index has no such day."""
    from stockpred.news.forecaster import close_rows

    index = index.sort_values("trade_date")
    dates = index["trade_date"].astype(str).to_numpy()
    close = index["close"].to_numpy(float)
    row = close_rows(times.to_numpy().astype("datetime64[m]"), dates)
    known = (row >= 0) & (row + 1 < len(dates))
    up = np.full(len(row), np.nan)
    up[known] = (close[row[known] + 1] > close[row[known]]).astype(float)
    known_on = np.full(len(row), "", dtype=object)
    known_on[known] = dates[row[known] + 1]
    return up, known_on


def read_index(raw_dir: Path, code: str) -> pd.DataFrame:
    """The index's daily closes; MissingInputError naming `stockpred fetch` when absent."""
    store = RawStore(raw_dir)
    index = store.read("index_daily", [code])  # raises MissingInputError naming fetch
    if index.empty:
        raise MissingInputError(f"no index_daily rows of {code} under "
                                f"{store.table_dir('index_daily')}: run `stockpred fetch` "
                                f"first (news.seq2seq.index_code is {code})")
    return index[["trade_date", "close"]]


def _network(keras, finetune: FinetuneSettings, dimensions: int):
    """Token ids -> the probability that the index rises (the vector is VECTOR_LAYER's)."""
    width = finetune.width
    tokens = keras.Input(shape=(finetune.sequence_length,), dtype="int64", name="tokens")
    embedded = keras.layers.Embedding(finetune.vocabulary, width,
                                      name="token_embedding")(tokens)
    # each token's place: 0, 1, ... along the sequence, from the tokens so that the graph
    # (and the saved model) holds the position embedding as a layer
    positions = keras.ops.cumsum(keras.ops.ones_like(tokens), axis=1) - 1
    embedded = embedded + keras.layers.Embedding(finetune.sequence_length, width,
                                                 name="position_embedding")(positions)
    attended = keras.layers.MultiHeadAttention(finetune.heads, max(width // finetune.heads, 1),
                                               dropout=finetune.dropout,
                                               name="attention")(embedded, embedded)
    hidden = keras.layers.LayerNormalization(name="attention_norm")(embedded + attended)
    forward = keras.layers.Dense(2 * width, activation="relu", name="feed_forward")(hidden)
    forward = keras.layers.Dense(width, name="feed_forward_out")(forward)
    hidden = keras.layers.LayerNormalization(name="feed_forward_norm")(hidden + forward)
    pooled = keras.layers.GlobalAveragePooling1D(name="mean_over_tokens")(hidden)
    pooled = keras.layers.Dropout(finetune.dropout, name="dropout")(pooled)
    vector = keras.layers.Dense(dimensions, activation="tanh", name=VECTOR_LAYER)(pooled)
    move = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER)(vector)
    return keras.Model(tokens, move, name="news_encoder")


def _layers(model) -> list:
    """Every layer of ``model``, those of nested models included (the saved encoder is the
    vectorizer followed by the network)."""
    found = []
    for layer in model.layers:
        found += _layers(layer) if hasattr(layer, "layers") else [layer]
    return found


def _read_checkpoint(keras, path: Path):
    if not path.is_file():
        raise InputError(f"news.finetune.checkpoint {path} does not exist")
    if path.suffix != ".keras":
        raise InputError(f"news.finetune.checkpoint {path} is not a .keras model file "
                         f"(Keras 3's format, which keeps each layer's name)")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"news.finetune.checkpoint {path} is not a Keras model Keras can "
                         f"read: {reason}") from None


def _load_matching(network, checkpoint, path: Path) -> list[str]:
    """Copy the weights of every layer of ``checkpoint`` whose name and shapes match one of
    ``network``'s; refuses a checkpoint that matches none."""
    theirs = {layer.name: layer for layer in _layers(checkpoint)}
    loaded = []
    for layer in network.layers:
        other = theirs.get(layer.name)
        if layer.name == VECTORIZER or other is None or not layer.weights:
            continue
        mine, given = layer.get_weights(), other.get_weights()
        if len(mine) == len(given) and all(a.shape == b.shape for a, b in zip(mine, given)):
            layer.set_weights(given)
            loaded.append(layer.name)
        else:
            log.warning("news.finetune.checkpoint: layer %s has weights %s there, %s here: "
                        "trained from scratch", layer.name,
                        [b.shape for b in given], [a.shape for a in mine])
    if not loaded:
        raise InputError(f"news.finetune.checkpoint {path} is incompatible: no layer matches "
                         f"one of the encoder's by name and weight shapes (news.finetune and "
                         f"news.dimensions must be those it was trained with)")
    return loaded


def _vectorizer(keras, finetune: FinetuneSettings, checkpoint, fit_texts: list[str]):
    vectorizer = keras.layers.TextVectorization(
        max_tokens=finetune.vocabulary, standardize="lower", split="character",
        ngrams=finetune.ngrams, output_mode="int",
        output_sequence_length=finetune.sequence_length, name=VECTORIZER)
    given = None
    if checkpoint is not None:
        given = next((layer for layer in _layers(checkpoint)
                      if isinstance(layer, keras.layers.TextVectorization)), None)
    if given is not None:
        vocabulary = given.get_vocabulary(include_special_tokens=False)
        vectorizer.set_vocabulary(vocabulary[:finetune.vocabulary - 2])
    else:
        vectorizer.adapt(np.asarray(fit_texts, dtype=object))
    return vectorizer


def encode_finetuned(news: pd.DataFrame, index: pd.DataFrame, settings: NewsSettings,
                     finetune: FinetuneSettings, dimensions: int, checkpoint: Path | None,
                     save_to: Path) -> FinetunedEncoding:
    """Fit the encoder on the articles (``read_news``) before news.fit_end whose next index
    move is known before it, save it (atomically) to ``save_to``, and return every
    article's vector."""
    from stockpred.runtime import keras_seeded, native_stderr_to_log

    texts = article_texts(news, settings.text_max_chars)
    fit_end = settings.fit_end
    up, known_on = index_moves(article_times(news), index)
    fit = (before_fit_end(news, fit_end) & np.isfinite(up)
           & np.array([day != "" and day < fit_end for day in known_on]))
    order = np.flatnonzero(fit)  # the articles are in time order
    n_valid = int(round(len(order) * finetune.validation_fraction))
    if len(order) - n_valid < finetune.batch_size or n_valid < 2:
        raise InputError(f"only {len(order)} news articles before news.fit_end {fit_end} with "
                         f"the index's next move known before it: too few to "
                         f"fine-tune an encoder; move news.fit_end later or fetch more news")
    train, valid = order[:len(order) - n_valid], order[len(order) - n_valid:]
    keras = keras_seeded(finetune.seed)
    source = _read_checkpoint(keras, checkpoint) if checkpoint is not None else None
    vectorizer = _vectorizer(keras, finetune, source, [texts[i] for i in order])
    tokens = np.asarray(vectorizer(np.asarray(texts)), dtype=np.int64)
    network = _network(keras, finetune, dimensions)
    loaded = _load_matching(network, source, checkpoint) if source is not None else []
    network.compile(optimizer=keras.optimizers.Adam(finetune.learning_rate),
                    loss="binary_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=finetune.patience,
                                         restore_best_weights=True)
    with native_stderr_to_log():
        history = network.fit(tokens[train], up[train], epochs=finetune.epochs,
                              batch_size=finetune.batch_size, shuffle=True,
                              validation_data=(tokens[valid], up[valid]), callbacks=[stop],
                              verbose=0)
    # saved with its vocabulary, so that it can be the checkpoint of a later fine-tuning
    saved = keras.Sequential([keras.Input(shape=(1,), dtype="string"), vectorizer, network],
                             name="news_text_encoder")
    atomic_save(save_to, saved.save)
    encoder = keras.Model(network.input, network.get_layer(VECTOR_LAYER).output)
    with native_stderr_to_log():
        vectors = encoder.predict(tokens, batch_size=256, verbose=0)
    best = int(np.argmin(history.history["val_loss"]))
    return FinetunedEncoding(np.asarray(vectors, np.float32), len(order),
                             len(history.history["loss"]),
                             float(history.history["val_accuracy"][best]), loaded)
