"""The news encoder-decoder's samples, built from the news vectors (`stockpred
embed-news`) and the index's bars (`stockpred fetch`: ``index_daily`` and ``stk_mins`` of
news.seq2seq.index_code). The network: stockpred.news.seq2seq; the stage:
stockpred.stages.seq2seq.

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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.data.store import RawStore
from stockpred.errors import InputError, MissingInputError
from stockpred.layout import Paths
from stockpred.news.embed import read_vectors, vector_columns
from stockpred.news.settings import NewsSeq2SeqSettings

KINDS = ("offhours", "insession")
SESSION_OPEN, SESSION_CLOSE = 9 * 60 + 30, 15 * 60  # minutes after midnight


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
