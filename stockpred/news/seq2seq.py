"""The news encoder-decoder of the original design, trained and judged honestly.

Two kinds of samples, built from the news vectors (`stockpred embed-news`) and the index's
bars (`stockpred fetch`: ``index_daily`` and ``stk_mins`` of news.seq2seq.index_code):

- ``offhours``: the articles published after the close (15:00) of trading day d-1 and
  before ``open_cutoff`` (09:25, when the call auction has fixed the open) of trading day
  d, in ``offhours_steps`` steps of ``offhours_step_minutes`` ending at the cutoff (older
  articles, e.g. of a weekend, fall in the first step) -> the opening gap
  open_d / close_{d-1} - 1. Articles published from the cutoff to 09:30 are used by neither.
- ``insession``: for each minute a with an article between 09:30 and 15:00 of a trading
  day, the articles of the last ``lookback_minutes`` clock minutes up to a, one step a
  minute -> the cumulative return path over the next ``horizon_minutes`` 1-minute bars.
  An article stamped a may appear as late as a:59, so the base price is the close of the
  first bar ending at or after a + 1 minute (a price seen after the article) and the
  targets are the closes of the following bars, all of which start after the article.
  Articles too late in the day to have a full horizon are left out.

A step's input is the mean vector of its articles. Minutes without news are filled with
noise (the original design) or masked (keras Masking skips them): ``news.seq2seq.fill``;
``compare_fill`` trains the network with the other fill too, and the run's metrics say
which fill had the lower validation error for each kind (``fill_won``).

The two kinds train as one network with shared weights, as the original design has it,
on alternating batches of each kind. The kinds differ in length (40 off-hours steps of 30
minutes, 30 in-session steps of one minute) and in output (one gap, a 30-minute path), so
the network shares its encoder and gives each kind its own decoder and output layer,
rather than padding both to one shape: an LSTM's weights do not depend on the sequence
length, so one encoder reads both kinds unpadded, and padding would feed the in-session
samples steps that never hold news and make the off-hours head emit a path of 29
meaningless values. What is shared is what the design wants shared, how news becomes a
state; each kind keeps its own mapping from that state to its own target.

The network is judged against the same network trained on inputs that are pure noise
(news removed, so it can learn only the mean) and the naive forecast (zero gap, zero
return), on a test period that follows training and validation in time.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config, config_as_json
from stockpred.data.store import RawStore, atomic_write_parquet, atomic_write_text
from stockpred.errors import InputError, MissingInputError
from stockpred.evaluation.metrics import directional_accuracy, mae, pesaran_timmermann, rmse
from stockpred.layout import Paths, new_run_folder
from stockpred.manifest import package_versions
from stockpred.news.embed import read_vectors, vector_columns
from stockpred.news.settings import NewsSeq2SeqSettings
from stockpred.runtime import keras_seeded, native_stderr_to_log

log = logging.getLogger(__name__)

KINDS = ("offhours", "insession")
FILLS = ("noise", "mask")
MODEL_FILE = "model.keras"
NETWORK_DIR = "network"  # the run folder's one network, both kinds' heads
STATE_FILE = "news_seq2seq.json"
SESSION_OPEN, SESSION_CLOSE = 9 * 60 + 30, 15 * 60  # minutes after midnight
QUICK = {"units": 4, "epochs": 2, "batch_size": 64, "patience": 1, "lookback_minutes": 10,
         "horizon_minutes": 5, "offhours_steps": 8, "offhours_step_minutes": 120}


def effective_settings(settings: NewsSeq2SeqSettings, quick: bool) -> NewsSeq2SeqSettings:
    return settings.model_copy(update=QUICK) if quick else settings


# -- samples ------------------------------------------------------------------------------------

@dataclass
class SampleSet:
    """Samples of one kind: news sequences (n, steps, d), which steps have news, targets
    (n, horizon) and one row of metadata per sample (times, article count, split)."""

    kind: str
    news: np.ndarray
    has_news: np.ndarray
    target: np.ndarray
    meta: pd.DataFrame = field(repr=False)

    def __len__(self) -> int:
        return len(self.target)

    def subset(self, rows) -> "SampleSet":
        rows = np.asarray(rows)
        return SampleSet(self.kind, self.news[rows], self.has_news[rows], self.target[rows],
                         self.meta[rows].reset_index(drop=True) if rows.dtype == bool
                         else self.meta.iloc[rows].reset_index(drop=True))

    def split(self, name: str) -> "SampleSet":
        return self.subset((self.meta["split"] == name).to_numpy())


def _day_string(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y%m%d")


def _split_of(times: pd.Series, s: NewsSeq2SeqSettings) -> np.ndarray:
    days = times.dt.strftime("%Y%m%d")
    return np.select([days < s.valid_start, days < s.test_start, days <= s.test_end],
                     ["train", "valid", "test"], "after")


def article_times(vectors: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(vectors["datetime"].astype(str), format="%Y-%m-%d %H:%M:%S",
                          errors="coerce").dt.floor("min")


def classify_articles(times: pd.Series, trading_days: pd.DatetimeIndex,
                      s: NewsSeq2SeqSettings) -> np.ndarray:
    """'insession', 'offhours' or 'unused' (between the open cutoff and 09:30) per article."""
    clock = (times.dt.hour * 60 + times.dt.minute).to_numpy()
    cut_h, cut_m = map(int, s.open_cutoff.split(":"))
    cutoff = cut_h * 60 + cut_m
    trading = times.dt.normalize().isin(trading_days).to_numpy()
    kind = np.full(len(times), "offhours", dtype=object)
    kind[trading & (clock >= SESSION_OPEN) & (clock < SESSION_CLOSE)] = "insession"
    kind[trading & (clock >= cutoff) & (clock < SESSION_OPEN)] = "unused"
    kind[times.isna().to_numpy()] = "unused"
    return kind


def step_means(vectors: np.ndarray, step: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean vector of the articles in each step (zeros where none), and which steps had any."""
    seq = np.zeros((steps, vectors.shape[1]), np.float32)
    count = np.zeros(steps)
    np.add.at(seq, step, vectors)
    np.add.at(count, step, 1)
    seq[count > 0] /= count[count > 0, None]
    return seq, count > 0


def _articles(vectors: pd.DataFrame, index: pd.DataFrame, s: NewsSeq2SeqSettings):
    """Vector columns, vectors, publication times, the index's trading days, and each
    article's kind (off-hours or in-session) — what both sample builders start from."""
    cols = vector_columns(vectors)
    times = article_times(vectors)
    days = pd.to_datetime(index["trade_date"], format="%Y%m%d")
    kind = classify_articles(times, pd.DatetimeIndex(days), s)
    return cols, vectors[cols].to_numpy(np.float32), times, days, kind


def build_offhours(vectors: pd.DataFrame, index: pd.DataFrame,
                   s: NewsSeq2SeqSettings) -> SampleSet:
    cols, values, times, days, kind = _articles(vectors, index, s)
    cut = pd.Timedelta(hours=int(s.open_cutoff[:2]), minutes=int(s.open_cutoff[3:]))
    opens_at = (days + cut).to_numpy()
    steps, width = s.offhours_steps, s.offhours_step_minutes
    chosen = np.flatnonzero(kind == "offhours")
    # the target day: the first trading day whose cutoff comes after the article
    target = np.searchsorted(opens_at, times.to_numpy()[chosen], side="right")
    keep = (target >= 1) & (target < len(days))
    chosen, target = chosen[keep], target[keep]
    news, has, ys, rows = [], [], [], []
    open_, close = index["open"].to_numpy(float), index["close"].to_numpy(float)
    for day in np.unique(target):
        members = chosen[target == day]
        end = pd.Timestamp(opens_at[day])
        offset = (end - times.iloc[members]).dt.total_seconds().to_numpy() / 60.0
        step = np.clip(steps - np.ceil(offset / width).astype(int), 0, steps - 1)
        seq, present = step_means(values[members], step, steps)
        news.append(seq)
        has.append(present)
        ys.append([open_[day] / close[day - 1] - 1])
        rows.append({"time": end, "target_day": _day_string(days.iloc[day]),
                     "previous_day": _day_string(days.iloc[day - 1]),
                     "first_article": times.iloc[members].min(),
                     "last_article": times.iloc[members].max(), "articles": len(members)})
    return _sample_set("offhours", news, has, ys, rows, steps, len(cols), 1, s)


def build_insession(vectors: pd.DataFrame, index: pd.DataFrame, minutes: pd.DataFrame,
                    s: NewsSeq2SeqSettings) -> SampleSet:
    cols, values, times, days, kind = _articles(vectors, index, s)
    ends = pd.to_datetime(minutes["trade_time"].astype(str), format="%Y-%m-%d %H:%M:%S")
    bars = pd.DataFrame({"end": ends, "close": minutes["close"].to_numpy(float)})
    bars = bars.sort_values("end").drop_duplicates("end")
    by_day = {day: (g["end"].to_numpy(), g["close"].to_numpy())
              for day, g in bars.groupby(bars["end"].dt.normalize())}
    order = np.argsort(times.to_numpy(), kind="stable")
    sorted_times = times.to_numpy()[order]
    lookback, horizon = s.lookback_minutes, s.horizon_minutes
    minute = np.timedelta64(1, "m")
    news, has, ys, rows = [], [], [], []
    for origin in np.unique(times.to_numpy()[kind == "insession"]):
        day = pd.Timestamp(origin).normalize()
        if day not in by_day:
            continue
        end_times, closes = by_day[day]
        base = int(np.searchsorted(end_times, origin + minute, side="left"))
        if base + horizon >= len(end_times):
            continue  # no full horizon left in the day
        lo = np.searchsorted(sorted_times, origin - (lookback - 1) * minute, side="left")
        hi = np.searchsorted(sorted_times, origin, side="right")
        members = order[lo:hi]
        step = lookback - 1 - ((origin - times.to_numpy()[members]) // minute).astype(int)
        seq, present = step_means(values[members], step, lookback)
        news.append(seq)
        has.append(present)
        ys.append(closes[base + 1:base + 1 + horizon] / closes[base] - 1)
        rows.append({"time": pd.Timestamp(origin), "base_bar_end": pd.Timestamp(end_times[base]),
                     "first_target_start": pd.Timestamp(end_times[base + 1] - minute),
                     "last_target_end": pd.Timestamp(end_times[base + horizon]),
                     "first_article": pd.Timestamp(times.to_numpy()[members].min()),
                     "last_article": pd.Timestamp(times.to_numpy()[members].max()),
                     "articles": len(members)})
    return _sample_set("insession", news, has, ys, rows, lookback, len(cols), horizon, s)


def _sample_set(kind, news, has, ys, rows, steps, dims, horizon, s) -> SampleSet:
    meta = pd.DataFrame(rows, columns=None if rows else ["time"])
    if rows:
        meta["split"] = _split_of(meta["time"], s)
    else:
        meta["split"] = pd.Series(dtype=object)
    return SampleSet(kind,
                     np.stack(news) if news else np.zeros((0, steps, dims), np.float32),
                     np.stack(has) if has else np.zeros((0, steps), bool),
                     np.asarray(ys, float).reshape(-1, horizon), meta)


def build_samples(vectors: pd.DataFrame, index: pd.DataFrame, minutes: pd.DataFrame,
                  s: NewsSeq2SeqSettings) -> dict[str, SampleSet]:
    index = index.sort_values("trade_date").reset_index(drop=True)
    return {"offhours": build_offhours(vectors, index, s),
            "insession": build_insession(vectors, index, minutes, s)}


def load_inputs(config: Config, paths: Paths, settings: NewsSeq2SeqSettings | None = None
                ) -> tuple[pd.DataFrame, dict, pd.DataFrame, pd.DataFrame]:
    """News vectors (+ manifest), daily and 1-minute bars of the index; refuses when absent."""
    s = settings or config.news.seq2seq
    vectors, manifest = read_vectors(paths)  # MissingInputError naming `stockpred embed-news`
    if vectors.empty or not vector_columns(vectors):
        raise MissingInputError(f"the news vectors under {paths.news_dir} are empty: run "
                                f"`stockpred embed-news` first")
    if manifest.get("fit_end") and manifest["fit_end"] > s.valid_start:
        raise InputError(f"the news vectors were fit on articles up to {manifest['fit_end']}, "
                         f"after news.seq2seq.valid_start {s.valid_start}: set news.fit_end at "
                         f"or before it and rerun `stockpred embed-news`")
    store = RawStore(paths.raw_dir)
    stamps = pd.to_datetime(vectors["datetime"].astype(str), errors="coerce").dropna()
    first = (stamps.min() - pd.Timedelta(days=30)).strftime("%Y%m%d")
    last = (stamps.max() + pd.Timedelta(days=30)).strftime("%Y%m%d")
    code = s.index_code
    tables = []
    for name in ("index_daily", "stk_mins"):
        table = store.read(name, [code], first, last)  # MissingInputError naming fetch
        if table.empty:
            raise MissingInputError(f"no {name} rows of {code} from {first} to {last} under "
                                    f"{store.table_dir(name)}: run `stockpred fetch` first "
                                    f"(news.seq2seq.index_code is {code})")
        tables.append(table)
    return vectors, manifest, tables[0], tables[1]


# -- the model ------------------------------------------------------------------------------------

def alternating_batches(sizes: dict[str, int], batch_size: int,
                        rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """One epoch's batches: one of each kind in turn, for as many rounds as the larger kind
    has batches. The smaller kind is reshuffled whenever it runs out, so both kinds give
    the shared encoder the same number of updates whatever their sample counts."""
    rounds = max(math.ceil(n / batch_size) for n in sizes.values())
    batches = {}
    for kind, n in sizes.items():
        chunks: list[np.ndarray] = []
        while len(chunks) < rounds:
            chunks += np.array_split(rng.permutation(n), math.ceil(n / batch_size))
        batches[kind] = chunks[:rounds]
    return [(kind, batches[kind][r]) for r in range(rounds) for kind in sizes]


class NewsSeq2Seq:
    """Both kinds in one network: a shared encoder LSTM reads either kind's news steps, and
    its final state starts that kind's own decoder LSTM and output layer, which emit the
    kind's horizon. Trained on alternating batches of the two kinds with one optimizer,
    each kind's targets standardised on its training samples; early stopping watches the
    mean of the two kinds' standardised validation errors. ``with_news=False`` is the
    control: every step is noise."""

    def __init__(self, settings: dict, seed: int = 42, with_news: bool = True):
        self.settings = dict(settings)
        self.seed = seed
        self.with_news = with_news

    @property
    def masked(self) -> bool:
        return self.with_news and self.settings["fill"] == "mask"

    def _tensor(self, samples: SampleSet) -> np.ndarray:
        x = samples.news.astype(np.float32, copy=True)
        empty = ~samples.has_news if self.with_news else np.ones(samples.has_news.shape, bool)
        if self.masked:
            x[empty] = 0.0
        else:
            rng = np.random.default_rng([self.seed, *x.shape])
            x[empty] = rng.normal(0.0, self.noise_std_, (int(empty.sum()), x.shape[2]))
        return x

    def _scaled(self, samples: SampleSet) -> np.ndarray:
        kind = samples.kind
        return ((samples.target - self.target_mean_[kind]) / self.target_std_[kind]
                ).astype(np.float32)

    def _network(self, shapes: dict[str, tuple[int, int, int]]):
        """shapes: kind -> (steps, dimensions, horizon)."""
        import keras
        from keras import layers

        units = int(self.settings["units"])
        # the one layer both kinds share: an LSTM's weights do not depend on the length
        # of the sequence, so 40 off-hours steps and 30 in-session minutes both fit it
        encoder = layers.LSTM(units, dropout=self.settings["dropout"], return_state=True,
                              name="encoder")
        inputs, outputs = [], []
        for kind in KINDS:
            steps, dims, horizon = shapes[kind]
            source = keras.Input(shape=(steps, dims), name=kind)
            x = layers.Masking(mask_value=0.0, name=f"{kind}_mask")(source) if self.masked \
                else source
            _, h, c = encoder(x)
            y = layers.RepeatVector(horizon, name=f"{kind}_repeat")(h)
            y = layers.LSTM(units, return_sequences=True, name=f"{kind}_decoder")(
                y, initial_state=[h, c])
            y = layers.TimeDistributed(layers.Dense(1), name=f"{kind}_head")(y)
            inputs.append(source)
            outputs.append(layers.Reshape((horizon,), name=f"{kind}_forecast")(y))
        return keras.Model(inputs, outputs, name="news_seq2seq")

    def _heads(self) -> dict:
        """kind -> the part of the network that forecasts it (sharing the encoder)."""
        import keras

        return {kind: keras.Model(self.network_.inputs[i], self.network_.outputs[i])
                for i, kind in enumerate(KINDS)}

    def fit(self, train: dict[str, SampleSet], valid: dict[str, SampleSet] | None = None,
            verbose: int = 0) -> "NewsSeq2Seq":
        for kind in KINDS:
            if len(train[kind]) == 0:
                raise InputError(f"no {kind} samples to train on")
        keras = keras_seeded(self.seed)
        import tensorflow as tf

        filled = np.concatenate([train[k].news[train[k].has_news].ravel() for k in KINDS])
        self.noise_std_ = float(self.settings["noise_scale"] * (filled.std() if filled.size
                                                                 else 1.0) or 1.0)
        self.target_mean_ = {k: float(train[k].target.mean()) for k in KINDS}
        self.target_std_ = {k: float(train[k].target.std() or 1.0) for k in KINDS}
        x = {k: self._tensor(train[k]) for k in KINDS}
        y = {k: self._scaled(train[k]) for k in KINDS}
        checked = {k: (self._tensor(valid[k]), self._scaled(valid[k])) for k in KINDS} \
            if valid is not None and all(len(valid[k]) for k in KINDS) else None
        rng = np.random.default_rng(self.seed)
        with native_stderr_to_log():
            self.network_ = self._network({k: (x[k].shape[1], x[k].shape[2], y[k].shape[1])
                                           for k in KINDS})
            heads = self._heads()
            optimizer = keras.optimizers.Adam(self.settings["learning_rate"])
            optimizer.build(self.network_.trainable_variables)

            def step_of(head):
                @tf.function(reduce_retracing=True)
                def step(inputs, targets):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean(tf.square(head(inputs, training=True) - targets))
                    variables = head.trainable_variables
                    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
                    return loss
                return step

            steps = {k: step_of(heads[k]) for k in KINDS}
            history: dict[str, list[float]] = {"loss": [], "val_loss": []}
            best, best_weights, waited = math.inf, None, 0
            for epoch in range(self.settings["epochs"]):
                losses = [float(steps[kind](x[kind][rows], y[kind][rows])) for kind, rows in
                          alternating_batches({k: len(train[k]) for k in KINDS},
                                              self.settings["batch_size"], rng)]
                history["loss"].append(float(np.mean(losses)))
                if checked is None:
                    continue
                history["val_loss"].append(float(np.mean([
                    np.mean((heads[k](vx, training=False).numpy() - vy) ** 2)
                    for k, (vx, vy) in checked.items()])))
                if verbose:
                    print(f"epoch {epoch + 1}: loss {history['loss'][-1]:.4f}, "
                          f"val_loss {history['val_loss'][-1]:.4f}")
                if history["val_loss"][-1] < best:
                    best, best_weights, waited = (history["val_loss"][-1],
                                                  self.network_.get_weights(), 0)
                else:
                    waited += 1
                    if waited >= self.settings["patience"]:
                        break
            if best_weights is not None:
                self.network_.set_weights(best_weights)
        self.history_ = history
        return self

    def predict(self, samples: SampleSet) -> np.ndarray:
        kind = samples.kind
        if len(samples) == 0:
            return np.zeros(samples.target.shape)
        with native_stderr_to_log():
            z = self._heads()[kind].predict(self._tensor(samples), verbose=0, batch_size=1024)
        return z.astype(float) * self.target_std_[kind] + self.target_mean_[kind]

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {"settings": self.settings, "seed": self.seed, "with_news": self.with_news,
                 "noise_std": self.noise_std_, "target_mean": self.target_mean_,
                 "target_std": self.target_std_}
        atomic_write_text(folder / STATE_FILE, json.dumps(state, indent=1) + "\n")
        with warnings.catch_warnings():  # Keras' own np.array(Variable) under numpy 2
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="keras")
            self.network_.save(folder / MODEL_FILE)

    @classmethod
    def load(cls, folder: Path) -> "NewsSeq2Seq":
        folder = Path(folder)
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        model = cls(state["settings"], state["seed"], state["with_news"])
        model.noise_std_ = state["noise_std"]
        model.target_mean_, model.target_std_ = state["target_mean"], state["target_std"]
        keras = keras_seeded(model.seed)
        with native_stderr_to_log():
            model.network_ = keras.models.load_model(folder / MODEL_FILE)
        return model


def model_settings(s: NewsSeq2SeqSettings, fill: str) -> dict:
    return {"fill": fill, "noise_scale": s.noise_scale, "units": s.units, "dropout": s.dropout,
            "epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate,
            "patience": s.patience}


# -- scoring -------------------------------------------------------------------------------------

def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def score(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE and MAE over every target (each gap, or each minute of each path); the direction
    of the last target (the gap, or the return at the horizon's end)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    end_a, end_p = actual[:, -1], predicted[:, -1]
    calls = len(actual) and bool(np.any(end_p != 0))  # the naive forecast calls no direction
    pt = pesaran_timmermann(end_a, end_p) if calls else (math.nan, math.nan)
    return {"samples": int(len(actual)),
            "rmse": _finite(rmse(actual.ravel(), predicted.ravel())),
            "mae": _finite(mae(actual.ravel(), predicted.ravel())),
            "rmse_end": _finite(rmse(end_a, end_p)),
            "directional_accuracy": _finite(directional_accuracy(end_a, end_p)),
            "pt_pvalue": _finite(pt[1]),
            "up_share": _finite(float(np.mean(end_a > 0))) if len(actual) else None}


# -- the stage -------------------------------------------------------------------------------------

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
    control = NewsSeq2Seq(model_settings(s, s.fill), s.seed, with_news=False).fit(
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
