"""What models learn from: one stock's traded days, its features, the close ``horizon``
traded days ahead, and the periods (train / validation / test) that every stage cuts the
same way.

Row t holds what was known at the close of day t (its features) and, as the target,
the close of the ``horizon``-th next traded day (1, the default: the next). Scalers are
fit on training rows only and say so (``fit_rows``); windows of ``sequence_length`` rows
end at t and reach back, never forward.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.errors import InputError, MissingInputError
from stockpred.features.panel import model_inputs
from stockpred.layout import Paths
from stockpred.manifest import read_manifest


@dataclass(frozen=True)
class DailyNews:
    """The news known by each row's close, a model input beside the features (attached by
    stockpred.news.forecaster.with_news for the models that read it): the mean vector of
    the articles published after the previous row's close and before this one's (zeros
    where none), which rows had any, and the basis (the embed-news run) of the vectors."""

    vectors: np.ndarray
    present: np.ndarray
    basis: dict

    def rows(self, mask: np.ndarray) -> "DailyNews":
        return DailyNews(self.vectors[mask], self.present[mask], self.basis)

    @staticmethod
    def of(data: "StockData", basis: dict, model: str) -> "DailyNews":
        """``data``'s news, refused unless it is made of the vectors ``model`` was fit on."""
        if data.news is None or data.news.basis != basis:
            raise InputError(f"this {model} was fit on the news vectors of {basis}, but its "
                             f"data carry {data.news and data.news.basis} (rebuilt, or never "
                             f"attached by with_news): refit it")
        return data.news


@dataclass
class StockData:
    """One stock's traded days: features at t, the close at t and the target, the close
    ``horizon`` traded days later (``next_close``: the next traded day's at horizon 1),
    and, for a model that reads it, the news known at t."""

    ts_code: str
    dates: np.ndarray  # YYYYMMDD strings
    close: np.ndarray
    features: pd.DataFrame
    next_close: np.ndarray  # NaN on the last ``horizon`` days
    # the day of next_close, the day at whose close the target is known: a suspension can
    # push it far ahead
    next_dates: np.ndarray | None = None
    news: DailyNews | None = None
    horizon: int = 1

    def __post_init__(self):
        if self.next_dates is None:
            self.next_dates = np.append(self.dates[self.horizon:],
                                        ["99999999"] * min(self.horizon, len(self.dates)))

    @property
    def next_return(self) -> np.ndarray:
        return self.next_close / self.close - 1

    def __len__(self) -> int:
        return len(self.dates)

    def upto(self, last_day: str) -> "StockData":
        """Rows up to and including ``last_day``; the target of the last kept row stays."""
        keep = self.dates <= last_day
        return self.rows(keep)

    def rows(self, mask: np.ndarray) -> "StockData":
        return StockData(self.ts_code, self.dates[mask], self.close[mask],
                         self.features.loc[mask].reset_index(drop=True), self.next_close[mask],
                         self.next_dates[mask], self.news and self.news.rows(mask),
                         self.horizon)

    def ahead(self, horizon: int) -> "StockData":
        """The same rows with the target ``horizon`` traded days ahead: the close of the
        ``horizon``-th next row, known at that row's close (NaN, and never known, on the
        last ``horizon`` rows). Taken from the rows themselves, so call it on a stock's
        whole history, before any selection of rows."""
        later = np.full(len(self), np.nan)
        later[:max(len(self) - horizon, 0)] = self.close[horizon:]
        return replace(self, next_close=later, next_dates=None, horizon=horizon)

    def known_by(self, day: str) -> "StockData":
        """Rows whose target (the close ``horizon`` traded days ahead) is known at the close
        of ``day``."""
        return self.rows(self.next_dates <= day)

    def tail(self, rows: int) -> "StockData":
        keep = np.zeros(len(self), dtype=bool)
        keep[max(0, len(self) - rows):] = True
        return self.rows(keep)


def split_validation(train: list[StockData], days: int) -> tuple[list, list]:
    """The last ``days`` rows of each stock validate; the rows before them train."""
    fit, valid = [], []
    for stock in train:
        cut = np.arange(len(stock)) < len(stock) - days
        fit.append(stock.rows(cut))
        valid.append(stock.rows(~cut))
    return fit, valid


class StockSet(list):
    """The forecasters' dataset for walk-forward: stocks (a list of StockData, which is what
    a forecaster fits on), their test days, the training rows of a refit and a block's
    next-close forecasts. FactorPanel is the cross-sectional twin."""

    PREDICTIONS = ["ts_code", "trade_date", "close", "next_close", "predicted_close",
                   "refit_before"]

    def days_between(self, first: str, last: str) -> list[str]:
        return sorted({d for s in self for d in s.dates if first <= d <= last})

    def training(self, first: str, train_days: int, validation_days: int | None):
        """The trailing ``train_days`` rows of each stock whose target is known at ``first``'s
        close (the gap is the stocks' horizon, and a suspension can push a row's target
        further past it); with ``validation_days`` the last of them apart, else None."""
        train = [s for s in (s.known_by(first).tail(train_days) for s in self) if len(s)]
        return split_validation(train, validation_days) if validation_days else (train, None)

    def predictions(self, model, first: str, last: str) -> pd.DataFrame | None:
        """Every stock's forecasts of the days from ``first`` to ``last``, from rows up to
        each day only."""
        frames = []
        for stock in self:
            data = stock.upto(last)
            in_block = data.dates >= first
            if in_block.any():
                frames.append(pd.DataFrame({
                    "ts_code": stock.ts_code, "trade_date": data.dates[in_block],
                    "close": data.close[in_block], "next_close": data.next_close[in_block],
                    "predicted_close": model.predict(data)[in_block], "refit_before": first}))
        return pd.concat(frames, ignore_index=True) if frames else None


@dataclass(frozen=True)
class Periods:
    """The one cut of time every stage uses (qlib's "segments").

    Training rows are the days before ``validation_start``. Validation rows are the days
    from ``validation_start`` whose target (the close ``horizon`` traded days ahead) falls before
    ``test_start``, so early stopping and tuning never read a close of the test period.
    The test period is ``test_start``..``test_end``, both included.
    """

    validation_start: str
    test_start: str
    test_end: str

    @classmethod
    def from_config(cls, config: Config) -> "Periods":
        ev = config.evaluation
        return cls(ev.validation_start, ev.test_start, ev.test_end)

    def train(self, stock: "StockData") -> "StockData":
        return stock.rows(stock.dates < self.validation_start)

    def validation(self, stock: "StockData") -> "StockData":
        return stock.rows((stock.dates >= self.validation_start)
                          & (stock.next_dates < self.test_start))

    def before_test(self, stock: "StockData") -> "StockData":
        """Every row whose target is known before the test period: what tuning may read."""
        return stock.rows(stock.next_dates < self.test_start)

    def in_test(self, dates: np.ndarray) -> np.ndarray:
        dates = np.asarray(dates)
        return (dates >= self.test_start) & (dates <= self.test_end)

    def split(self, stocks: list["StockData"]) -> tuple[list["StockData"], list["StockData"]]:
        """(training, validation) rows of each stock."""
        return [self.train(s) for s in stocks], [self.validation(s) for s in stocks]


def built_features(paths: Paths) -> dict:
    """features.json; MissingInputError naming `stockpred features` when it is absent."""
    built = read_manifest(paths.features_manifest)
    if built is None:
        raise MissingInputError(f"no features under {paths.features_dir}: run "
                                f"`stockpred features` first")
    return built


def model_features(paths: Paths) -> list[str]:
    """selected.json's features when present, else every model input in features.json."""
    inputs = model_inputs(built_features(paths))
    chosen = read_manifest(paths.selected_features)
    if chosen is not None:
        allowed = set(inputs)  # a selection made before the levels were left out
        return [f["name"] for f in chosen["selected"] if f["name"] in allowed]
    return inputs


def load_stock(paths: Paths, ts_code: str, features: list[str]) -> StockData:
    path = paths.features_table(ts_code)
    if not path.exists():
        built = built_features(paths)
        why = built.get("skipped", {}).get(ts_code)
        if why:
            raise InputError(f"{ts_code} has no features: `stockpred features` skipped it "
                             f"({why})")
        raise MissingInputError(f"{ts_code} has no features: it is not among the "
                                f"{len(built['stocks'])} stocks they were built for: run "
                                f"`stockpred fetch --ts-code {ts_code}`, then `stockpred "
                                f"features --ts-code {ts_code}`")
    panel = pd.read_parquet(path)
    panel = panel[panel["suspended"] == 0].reset_index(drop=True)
    close = panel["close"].to_numpy(dtype=float)
    columns = {name: panel[name] if name in panel.columns else np.nan for name in features}
    return StockData(ts_code, panel["trade_date"].to_numpy(dtype=str), close,
                     pd.DataFrame(columns, index=panel.index).astype(float),
                     np.append(close[1:], np.nan))


@dataclass
class Standardizer:
    """Median imputation then z-scores, learned from the rows it is fit on."""

    medians_: np.ndarray | None = None
    means_: np.ndarray | None = None
    stds_: np.ndarray | None = None
    fit_rows: int = 0

    def fit(self, x: np.ndarray) -> "Standardizer":
        # a feature with no value in the rows (all-NaN) gets median 0; numpy warns of it
        # through warnings, not its error state, onto the user's stderr
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(x, axis=0)
        self.medians_ = np.where(np.isnan(medians), 0.0, medians)
        filled = np.where(np.isnan(x), self.medians_, x)
        self.means_ = filled.mean(axis=0)
        stds = filled.std(axis=0)
        self.stds_ = np.where(stds > 0, stds, 1.0)
        self.fit_rows = len(x)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(x), self.medians_, x)
        return np.clip((filled - self.means_) / self.stds_, -10, 10)

    def to_json(self) -> str:
        return json.dumps({"medians": self.medians_.tolist(), "means": self.means_.tolist(),
                           "stds": self.stds_.tolist(), "fit_rows": self.fit_rows})

    @classmethod
    def from_json(cls, text: str) -> "Standardizer":
        raw = json.loads(text)
        return cls(np.array(raw["medians"]), np.array(raw["means"]), np.array(raw["stds"]),
                   raw["fit_rows"])


def windows(x: np.ndarray, length: int) -> np.ndarray:
    """(rows - length + 1, length, columns): the window ending at each row from length-1 on."""
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=0)
    return np.moveaxis(view, -1, 1)


def rectify(previous_close: np.ndarray, predicted_close: np.ndarray, limit: float) -> np.ndarray:
    """Clamp a predicted day-on-day move to the board's limit."""
    return np.clip(predicted_close, previous_close * (1 - limit), previous_close * (1 + limit))


def stocks_to_use(config: Config, paths: Paths, ts_codes: list[str] | None) -> list[str]:
    """``ts_codes``, else evaluation.ts_codes, else (an empty list) every stock with features."""
    codes = ts_codes or config.evaluation.ts_codes
    if codes:
        return codes
    built = read_manifest(paths.features_manifest) or {}
    if not built.get("stocks"):
        raise InputError("no stocks with features: run `stockpred features` first")
    return sorted(built["stocks"])


@dataclass(frozen=True)
class CodeFamily:
    """Daily codes that an encoder writes and models may read beside their features."""

    manifest: Callable[[Paths], Path]
    table: Callable[[Paths, dict, str], Path]  # (paths, manifest, ts_code) -> its codes
    command: str  # what writes them


# `<model>+vae`, `<model>+minutes`: both encoders fit on days before evaluation.
# validation_start and stop early on days before test_start, once, not per walk-forward
# block; their manifests say where that ends (seen_before), and no test period may start
# earlier.
CODE_FAMILIES = {
    "vae": CodeFamily(lambda p: p.latent_manifest,
                      lambda p, manifest, code: p.latent_table(code), "stockpred train vae"),
    "minutes": CodeFamily(lambda p: p.minute_codes_manifest,
                          lambda p, manifest, code: p.minute_codes_table(manifest["ts_code"]),
                          "stockpred train minutes"),
}


def with_codes(stocks: list[StockData], paths: Paths, families: tuple[str, ...],
               test_start: str) -> tuple[list[StockData], list[str]]:
    """Each stock with the codes of ``families`` as extra feature columns, joined by day, and
    the names of those columns. A day without a code (before the minute bars begin, or a
    VAE window not yet full) is NaN, which models impute like any missing feature."""
    added: list[str] = []
    tables: dict[str, dict[str, pd.DataFrame]] = {s.ts_code: {} for s in stocks}
    for name in families:
        family = CODE_FAMILIES[name]
        manifest = read_manifest(family.manifest(paths))
        if manifest is None:
            raise MissingInputError(f"no {name} codes: run `{family.command}` first")
        if manifest.get("seen_before", "99999999") > test_start:
            raise InputError(f"the {name} codes come from an encoder that saw days up to "
                             f"{manifest.get('seen_before', '(not recorded)')}, after the "
                             f"test start {test_start}: rerun `{family.command}`")
        for stock in stocks:
            path = family.table(paths, manifest, stock.ts_code)
            if not path.exists():
                raise MissingInputError(f"no {name} codes for {stock.ts_code} at {path}: run "
                                        f"`{family.command}` for it")
            tables[stock.ts_code][name] = pd.read_parquet(path, columns=["trade_date",
                                                                         *manifest["columns"]])
        added += manifest["columns"]
    joined = []
    for stock in stocks:
        days = pd.DataFrame({"trade_date": stock.dates})
        for codes in tables[stock.ts_code].values():
            days = days.merge(codes.astype({"trade_date": str}), on="trade_date", how="left")
        features = pd.concat([stock.features, days[added].astype(float)], axis=1)
        joined.append(replace(stock, features=features))
    return joined, added


def load_stocks(config: Config, paths: Paths, ts_codes: list[str] | None,
                features: list[str] | None = None) -> tuple[list[StockData], list[str]]:
    """The stocks with ``features`` (None or empty: the model features). Refuses with
    MissingInputError (naming `stockpred features`) when features were never built."""
    built = built_features(paths)
    known = model_features(paths)
    chosen = list(features) if features else known
    built_names = {f["name"] for f in built["features"]}
    unknown = [f for f in chosen if f not in built_names]
    if unknown:
        raise InputError(f"unknown feature(s) {', '.join(unknown)}: not among the features "
                         f"`stockpred features` built (see {paths.features_manifest})")
    inputs = set(model_inputs(built))
    levels = [f for f in chosen if f not in inputs]
    if levels:
        twins = [f"{f}_rel" for f in levels if f"{f}_rel" in inputs]
        raise InputError(f"feature(s) {', '.join(levels)} are in the stock's price unit, "
                         f"which a later re-basing of qfq prices rescales: no model input"
                         + (f" (use {', '.join(twins)})" if twins else ""))
    stocks = [load_stock(paths, code, chosen) for code in stocks_to_use(config, paths, ts_codes)]
    return stocks, chosen


# -- the market-wide dataset: one row per (day, stock) of a universe --------------------------
@dataclass(frozen=True)
class BarHistory:
    """Each stock's daily bars as a few scale-free series, from which a sequence model's
    window of the last N traded days is rebuilt for any (day, stock) row on demand.

    Why not 60 lagged columns per row (qlib's Alpha360): 5 series x 60 lags x 1,702
    stocks x 2,500 days is 5 GB of float32, and every lag of a stock repeats in 60 rows.
    Here each bar is held once (5 float32), so the market costs about 90 MB, and a window
    is gathered per batch. Per bar, in this order: log close / previous traded close
    (0 on a stock's first bar), log open, high and low / close, log volume / previous
    traded volume (0 where either is not positive). Each is a ratio within one stock, so
    multiplying a stock's prices (a forward adjustment) or its volume unit changes none.
    Bars in (ts_code, trade_date) order.
    """

    codes: np.ndarray  # the stocks, sorted
    bar_keys: np.ndarray  # per bar, its stock's place in ``codes`` and its day: increasing
    starts: np.ndarray  # per bar, its stock's first bar's position
    series: np.ndarray  # (bars, 5) float32, the five series above

    # the window's channels (qlib's Alpha360 without VWAP, in logs): each lag's close, open,
    # high and low over today's close, its volume over today's
    CHANNELS = ("close", "open", "high", "low", "volume")

    def positions(self, keys: pd.DataFrame) -> np.ndarray:
        """The bar of each (trade_date, ts_code) row of ``keys``."""
        codes = keys["ts_code"].to_numpy(dtype=str)
        stock = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        wanted = _bar_keys(stock, keys["trade_date"].to_numpy(dtype=str))
        at = np.minimum(np.searchsorted(self.bar_keys, wanted), len(self.bar_keys) - 1)
        missing = (self.codes[stock] != codes) | (self.bar_keys[at] != wanted)
        if missing.any():
            raise InputError(f"{int(missing.sum())} rows have no bar in the panel's history, "
                             f"the first {codes[missing][0]}")
        return at

    def windows(self, positions: np.ndarray, length: int) -> np.ndarray:
        """(rows, length, CHANNELS) float32: the ``length`` bars ending at each position,
        oldest first, as ratios to the last bar's close and volume; the lags before a
        stock's first bar are 0 (as if flat). Reads no bar after a row's own."""
        lags = positions[:, None] - np.arange(length - 1, -1, -1)[None, :]
        present = lags >= self.starts[positions][:, None]
        raw = self.series[np.where(present, lags, 0)] * present[..., None]
        # log x_lag / x_today = -(the changes after the lag): cumulative sums from the right
        close = np.cumsum(raw[..., 0], axis=1, dtype=np.float64)
        close -= close[:, -1:]
        volume = np.cumsum(raw[..., 4], axis=1, dtype=np.float64)
        volume -= volume[:, -1:]
        out = np.stack([close, raw[..., 1] + close, raw[..., 2] + close, raw[..., 3] + close,
                        volume], axis=-1)
        return (out * present[..., None]).astype(np.float32)


def bar_history(bars: pd.DataFrame) -> BarHistory:
    """The BarHistory of ``bars`` (trade_date, ts_code, open, high, low, close, vol)."""
    bars = bars.sort_values(["ts_code", "trade_date"], kind="stable").reset_index(drop=True)
    codes = bars["ts_code"].to_numpy(dtype=str)
    new_stock = np.ones(len(bars), dtype=bool)
    new_stock[1:] = codes[1:] != codes[:-1]
    first_bar = np.flatnonzero(new_stock)
    starts = np.repeat(first_bar, np.diff(np.append(first_bar, len(bars))))
    o, h, low, c, v = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close",
                                                               "vol"))

    def change(x: np.ndarray) -> np.ndarray:
        previous = np.roll(x, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(x / previous)
        out[new_stock | ~np.isfinite(out)] = 0.0
        return out

    with np.errstate(divide="ignore", invalid="ignore"):
        series = np.stack([change(c), np.log(o / c), np.log(h / c), np.log(low / c), change(v)],
                          axis=1)
    series[~np.isfinite(series)] = 0.0
    stock = np.cumsum(new_stock) - 1
    return BarHistory(codes[first_bar], _bar_keys(stock, bars["trade_date"].to_numpy(dtype=str)),
                      starts, series.astype(np.float32))


class DeferredHistory:
    """The BarHistory of ``bars``, built when a model first reads it (only a sequence model
    does) and then shared by every panel cut from the one that holds it: building it sorts
    the market's bars, which no other model's run should pay for in time or memory."""

    def __init__(self, bars: pd.DataFrame):
        self._bars, self._built = bars, None

    def get(self) -> BarHistory:
        if self._built is None:
            self._built, self._bars = bar_history(self._bars), None
        return self._built


class TakenRows:
    """The rows at increasing positions ``at`` of a float matrix, gathered only when read
    (``np.asarray``): a refit's training rows are most of the panel's, and gathering them
    beside the panel was the largest block of a market-wide walk-forward's memory.
    ``runs()`` gives them as views of the matrix's contiguous runs (a window of whole days
    less the few rows whose label is unknown), which a learner taking a list of matrices
    (lightgbm.Dataset) reads without any copy."""

    def __init__(self, matrix: np.ndarray, at: np.ndarray):
        self.matrix, self.at = matrix, at

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.at), self.matrix.shape[1]

    @property
    def dtype(self):
        return self.matrix.dtype

    def __len__(self) -> int:
        return len(self.at)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.matrix[self.at] if dtype is None else self.matrix[self.at].astype(dtype)

    def __getitem__(self, mask: np.ndarray) -> "TakenRows":
        return TakenRows(self.matrix, self.at[mask])

    def runs(self) -> list[np.ndarray]:
        cut = np.flatnonzero(np.diff(self.at) != 1) + 1
        firsts = self.at[np.r_[0, cut]] if len(self.at) else []
        lasts = self.at[np.r_[cut - 1, len(self.at) - 1]] if len(self.at) else []
        return [self.matrix[a:b + 1] for a, b in zip(firsts, lasts)]


def matrix_runs(x) -> list[np.ndarray]:
    """``x`` (a FactorPanel's) as a list of row blocks, in order, copying nothing."""
    return x.runs() if isinstance(x, TakenRows) else [x]


def _bar_keys(stock: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """(stock, day) as one int64 that sorts as the pair does (days are YYYYMMDD)."""
    return stock.astype(np.int64) * 100_000_000 + dates.astype(np.int64)


@dataclass
class FactorPanel:
    """A universe's rows with what cross-sectional models learn from and are scored on.

    ``x``: the factors, normalised day by day (float32; in a panel cut by ``rows``, the
    TakenRows of its parent's matrix: ``np.asarray`` gathers them, ``matrix_runs`` views
    them); ``y``: the training label, the
    day's rank of ``label`` scaled to unit variance (qlib's CSRankNorm), NaN while unknown,
    ranked among every label of the day as seen once all are known; a refit ranks among
    the labels known at its close instead (``known_at``); ``known_on``: the day at whose
    close ``label`` becomes known (the stock's second next traded day for ret_2), which
    walk-forward compares with each block's first day; ``returns``: the raw labels ret_1
    and ret_2 for scoring; ``last_return``: close t over the previous traded close, the
    naive score; ``history``: the stocks' bars as scale-free series, from which a sequence
    model rebuilds each row's window of past days (shared, never cut by ``rows``, built
    when first read: ``DeferredHistory``). ``ahead`` gives the labels, their days and the
    naive score of a longer ``horizon``.
    """

    keys: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    known_on: np.ndarray
    returns: pd.DataFrame
    last_return: np.ndarray
    features: list[str]
    label: str
    deferred_history: DeferredHistory | None = None
    horizon: int = 1  # the traded days the labels span (build_factor_panel's: 1)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def history(self) -> BarHistory | None:
        return None if self.deferred_history is None else self.deferred_history.get()

    @property
    def dates(self) -> np.ndarray:
        return self.keys["trade_date"].to_numpy(dtype=str)

    def rows(self, mask: np.ndarray) -> "FactorPanel":
        # a dask array or TakenRows selects lazily; a matrix is not copied until read
        x = TakenRows(self.x, np.flatnonzero(mask)) if isinstance(self.x, np.ndarray) \
            else self.x[mask]
        return FactorPanel(self.keys.loc[mask].reset_index(drop=True), x,
                           self.y[mask], self.known_on[mask],
                           self.returns.loc[mask].reset_index(drop=True),
                           self.last_return[mask], self.features, self.label,
                           self.deferred_history, self.horizon)

    PREDICTIONS = ["trade_date", "ts_code", "score", "refit_before"]

    def days_between(self, first: str, last: str) -> np.ndarray:
        calendar = np.unique(self.dates)
        return calendar[(calendar >= first) & (calendar <= last)]

    def training(self, first: str, train_days: int, validation_days: int | None):
        """What a refit before the block starting on ``first`` learns from: the rows of the
        trailing ``train_days`` whose label is known at ``first``'s close, each day's labels
        ranked among those known ones (``known_at``); with ``validation_days`` the last of
        them apart, else None."""
        dates = self.dates
        calendar = np.unique(dates)
        position = int(np.searchsorted(calendar, first))
        window = (dates >= calendar[max(0, position - train_days)]) & (dates < first)
        if not validation_days:
            return self.known_at(first, window), None
        held = calendar[max(0, position - validation_days)]
        return (self.known_at(first, window & (dates < held)),
                self.known_at(first, window & (dates >= held)))

    def predictions(self, model, first: str, last: str) -> pd.DataFrame:
        """Every row's score from ``first`` to ``last``, in one batched call."""
        scored = self.rows((self.dates >= first) & (self.dates <= last))
        return scored.keys.assign(score=model.predict(scored), refit_before=first)

    def ahead(self, bars: pd.DataFrame, horizon: int) -> "FactorPanel":
        """The same rows and factors with the labels, the days they become known and the
        naive score of ``horizon`` traded days (``stock_labels``), from ``bars`` (the
        stocks' traded closes, the ones the panel was built from); the panel itself when its
        labels already span ``horizon``."""
        from stockpred.features.cross_section import KEYS

        if horizon == self.horizon:
            return self

        labels = self.keys.merge(stock_labels(bars, self.label, horizon).astype(
            {"trade_date": str, "ts_code": str}), on=list(KEYS), how="left")
        return replace(self, y=ranked_by_day(self.dates, labels[self.label].to_numpy()),
                       known_on=labels["known_on"].fillna("99999999").to_numpy(dtype=str),
                       returns=labels[["ret_1", "ret_2"]],
                       last_return=labels["last_return"].to_numpy(np.float64), horizon=horizon)

    def known_at(self, day: str, mask: np.ndarray) -> "FactorPanel":
        """The rows of ``mask`` whose label is known at the close of ``day``, with ``y``
        ranked on each day among those rows alone: a stock whose label is still unknown
        then (suspended across ``day``) moves no other stock's rank. ``mask`` selects
        whole days, so the ranks of a day do not depend on how the days are split."""
        label = self.returns[self.label].to_numpy()
        known = self.rows(mask & (self.known_on <= day) & np.isfinite(label))
        return replace(known, y=ranked_by_day(known.dates,
                                              known.returns[self.label].to_numpy()))


RANK_TO_UNIT_VARIANCE = float(np.sqrt(12.0))  # a uniform rank in (-0.5, 0.5) has variance 1/12


def ranked_by_day(dates: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's rank among its day's finite values, centred and scaled to unit
    variance (float32); NaN where the value is NaN."""
    by_day = pd.Series(values).groupby(dates)
    ranked = by_day.rank(pct=True, method="average")
    counts = by_day.transform("count")
    return (((ranked - 0.5 / counts) - 0.5) * RANK_TO_UNIT_VARIANCE).to_numpy(np.float32)


def stock_labels(bars: pd.DataFrame, label: str = "ret_2", horizon: int = 1) -> pd.DataFrame:
    """Per bar of ``bars`` (the stocks' traded closes), in (ts_code, trade_date) order:
    trade_date, ts_code, the forward labels ret_1 and ret_2 of ``horizon`` traded days
    (``forward_labels``), known_on (the day at whose close ``label`` becomes known: the
    stock's (1 + horizon)-th next traded day for ret_2, its horizon-th for ret_1; 99999999
    while the bars do not reach it) and last_return (close over the close ``horizon``
    traded days before: the naive score looks back as far as the label looks ahead)."""
    from stockpred.features.cross_section import forward_labels

    closes = bars[["trade_date", "ts_code", "close"]].sort_values(["ts_code", "trade_date"],
                                                                   kind="stable")
    labels = forward_labels(closes, horizon)[["trade_date", "ts_code", "ret_1", "ret_2"]]
    by_stock = closes.groupby("ts_code", sort=False)
    ahead = horizon + 1 if label == "ret_2" else horizon
    labels["known_on"] = by_stock["trade_date"].shift(-ahead).fillna("99999999").to_numpy()
    labels["last_return"] = (closes["close"] / by_stock["close"].shift(horizon)
                             - 1).to_numpy()
    return labels


def build_factor_panel(factors: pd.DataFrame | Iterable[pd.DataFrame], members: pd.DataFrame,
                       bars: pd.DataFrame, label: str = "ret_2", method: str = "zscore",
                       mad_k: float | None = 3.0) -> FactorPanel:
    """The member rows of ``factors`` (trade_date, ts_code, factor columns), normalised on
    each day's members, with labels and the bar history from ``bars`` (the stocks' daily
    bars).

    ``factors`` is one frame, or frames in date order that share no day (a universe's year
    files, read one at a time): each is normalised and let go before the next is taken, so
    the raw factors of only one of them are ever held beside the normalised matrix. A day
    is normalised on its own rows alone, so the parts give the values the whole would."""
    from stockpred.features.cross_section import KEYS, normalised_matrix

    keys = list(KEYS)
    parts, part_keys, features = [], [], None
    for frame in [factors] if isinstance(factors, pd.DataFrame) else factors:
        features = features or [c for c in frame.columns if c not in keys]
        # the member rows found by their keys alone: the factor values are gathered once,
        # block by block, as they are normalised, never copied whole by a merge or a sort
        rows = (members[keys]
                .merge(frame[keys].assign(factor_row=np.arange(len(frame))), on=keys,
                       how="inner")
                .sort_values(keys, kind="stable").reset_index(drop=True))
        parts.append(normalised_matrix(frame, features, method, mad_k,
                                       rows["factor_row"].to_numpy()))
        part_keys.append(rows[keys])
        del frame
    if features is None:
        raise ValueError("no factor frame to build a panel from")
    rows = pd.concat(part_keys, ignore_index=True)
    if len(part_keys) > 1 and not _in_key_order(rows, keys):
        raise ValueError("factor parts must come in date order and share no day")
    x = _stacked(parts, len(features))
    return labelled_panel(rows.merge(stock_labels(bars, label), on=keys, how="left"), x,
                          features, label, bars)


def labelled_panel(rows: pd.DataFrame, x, features: list[str], label: str,
                   bars: pd.DataFrame) -> FactorPanel:
    """The FactorPanel of member ``rows`` (in key order, with ``stock_labels``' columns of
    ``bars``) and their normalised factors ``x`` (in process, or a dask array)."""
    from stockpred.features.cross_section import KEYS

    y = ranked_by_day(rows["trade_date"].to_numpy(), rows[label].to_numpy())
    return FactorPanel(rows[list(KEYS)].astype(str), x, y,
                       rows["known_on"].fillna("99999999").to_numpy(dtype=str),
                       rows[["ret_1", "ret_2"]].reset_index(drop=True),
                       rows["last_return"].to_numpy(np.float64), features, label,
                       DeferredHistory(bars))


def _in_key_order(rows: pd.DataFrame, keys: list[str]) -> bool:
    dates = rows[keys[0]].to_numpy()
    if len(dates) < 2:
        return True
    later, same = dates[1:] > dates[:-1], dates[1:] == dates[:-1]
    codes = rows[keys[1]].to_numpy()
    return bool(np.all(later | (same & (codes[1:] > codes[:-1]))))


def _stacked(parts: list[np.ndarray], width: int) -> np.ndarray:
    """The parts one under another, each freed once copied: the result's pages are taken
    as they are written, so the whole and all the parts are never held at once."""
    if len(parts) == 1:
        return parts.pop()
    out = np.empty((sum(len(p) for p in parts), width), dtype=np.float32)
    start = 0
    while parts:
        part = parts.pop(0)
        out[start:start + len(part)] = part
        start += len(part)
        del part
    return out
