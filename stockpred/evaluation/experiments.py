"""The original project's LSTM experiments, run without its leaks, on one stock.

The univariate experiments use the original set-up: windows of closes divided by the
window's first close, minus 1 (per-window normalisation), an LSTM fit on the training
period and stopped on the validation period, and forecasts over the test period:
(a) point by point: each day's next close from the true window;
(b) full window: one origin, each forecast fed back as the next input, to the end;
(c) multiple sequences: a new origin every ``predict_window`` days, fed back within it;
(d) seq-to-seq: the first m = lambda n days of an n-day window predict the last n - m
    closes at once; each day's overlapping forecasts are averaged;
(e) globally normalised and rectified: the feature LSTM of the leaderboard (scaler fit
    on training rows), each forecast move clamped to the board's price limit.
The others read those networks another way, or learn from the stock's model inputs
(standardised with statistics of the training rows) instead of its closes alone:
(f) multi-feature seq-to-seq, one per (n, lambda) of experiments.feature_windows: the
    model inputs and the close over the window's first close, m = round(lambda n) days
    of them, predict the next n - m closes over that first close; averaged as (d);
(g) seq-to-seq, not averaged: (d)'s forecasts, each day's from the latest origin only;
(h) seq-to-seq with rectified joins: (d)'s forecasts from a new origin every n - m days;
    a window's first day is clamped to the price limit around the last true close and
    each later day around the day before it, so a new window cannot jump;
(i) globally normalised, not rectified: the feature LSTM's raw forecast;
(j) globally normalised seq-to-seq: (d)'s window shape on the model inputs alone, the
    targets the next closes over the origin's close, z-scored with training statistics;
    averaged as (d).

``fit`` sees only the rows before the test period: training windows end before
validation_start and validation windows' targets before test_start. ``forecast`` then
reads, for day t + 1, closes and features up to t only.

``compare_splits`` refits the feature LSTM under the original project's train/validation
cuts of the rows before the test period (0.9/0.1 and 0.98/0.02).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.dataset import Periods, Standardizer, StockData, rectify, windows
from stockpred.errors import InputError
from stockpred.evaluation.scoring import score
from stockpred.evaluation.walkforward import forecast_period
from stockpred.market_rules import price_limit
from stockpred.models.neural import build_network
from stockpred.models.registry import prototype
from stockpred.runtime import keras_seeded, native_stderr_to_log


@dataclass
class Experiment:
    name: str
    title: str
    dates: np.ndarray  # the day each forecast is for
    actual: np.ndarray
    predicted: np.ndarray
    previous: np.ndarray  # the last true close before each forecast day (persistence)


def _relative(close: np.ndarray, length: int, outputs: int):
    """Windows of ``length`` closes / first - 1, and the next ``outputs`` closes / first - 1."""
    total = length + outputs
    w = windows(close[:, None], total)[:, :, 0]
    rel = w / w[:, :1] - 1
    return rel[:, :length, None].astype("float32"), rel[:, length:].astype("float32")


def _trained(settings: dict, seed: int, x, y, x_valid, y_valid):
    """An LSTM for windows shaped as ``x``, fit on (x, y) and stopped on the validation pair."""
    keras = keras_seeded(seed)
    model = build_network("lstm", settings, x.shape[1], x.shape[2], y.shape[1])
    model.fit(x, y, validation_data=(x_valid, y_valid), epochs=settings["epochs"],
              batch_size=settings["batch_size"], verbose=0, shuffle=True,
              callbacks=[keras.callbacks.EarlyStopping(
                  monitor="val_loss", patience=settings["patience"],
                  restore_best_weights=True)])
    return model


def _fit(close_train, close_valid, settings: dict, length: int, outputs: int, seed: int):
    return _trained(settings, seed, *_relative(close_train, length, outputs),
                    *_relative(close_valid, length, outputs))


def _step(model, recent: np.ndarray) -> np.ndarray:
    """The model's next close(s) from windows of true or fed-back closes (rows x length)."""
    rel = (recent / recent[:, :1] - 1)[:, :, None].astype("float32")
    return recent[:, :1] * (1 + np.asarray(model.predict_on_batch(rel)))


@dataclass
class FeatureSeq2Seq:
    """A seq-to-seq LSTM over windows of the stock's standardised model inputs, ending at
    an origin t, forecasting the closes of t + 1 .. t + outputs."""

    network: object
    scaler: Standardizer  # fit on training rows
    length: int
    outputs: int
    # True: the close over the window's first is an input and, for the days ahead, the
    # target (the original's per-window normalisation); False: the days ahead over the
    # origin's close, z-scored with training statistics per step (global normalisation)
    by_window: bool
    target_mean: np.ndarray | float = 0.0
    target_std: np.ndarray | float = 1.0

    def inputs(self, stock: StockData, ends: np.ndarray) -> np.ndarray:
        rows = ends[:, None] + np.arange(1 - self.length, 1)
        x = self.scaler.transform(stock.features.to_numpy(float)).astype("float32")[rows]
        if self.by_window:
            close = stock.close[rows]
            x = np.concatenate([x, (close / close[:, :1] - 1)[:, :, None].astype("float32")],
                               axis=2)
        return x

    def _base(self, close: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return close[ends - self.length + 1] if self.by_window else close[ends]

    def relative(self, close: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The ``outputs`` closes after each origin over the base close, minus 1."""
        ahead = close[ends[:, None] + np.arange(1, self.outputs + 1)]
        return ahead / self._base(close, ends)[:, None] - 1

    def targets(self, close: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return ((self.relative(close, ends) - self.target_mean) / self.target_std
                ).astype("float32")

    def paths(self, stock: StockData, ends: np.ndarray) -> np.ndarray:
        """(origins x outputs) forecast closes."""
        z = self.network.predict(self.inputs(stock, ends), verbose=0, batch_size=1024)
        return self._base(stock.close, ends)[:, None] * (
            1 + z * self.target_std + self.target_mean)

    @property
    def title(self) -> str:
        count = len(self.scaler.means_) + self.by_window
        return f"{self.length} days of {count} inputs predict the next {self.outputs}"


def _fit_features(known: StockData, train_end: int, scaler: Standardizer, settings: dict,
                  seed: int, length: int, outputs: int, by_window: bool) -> FeatureSeq2Seq:
    """Training windows' targets end before row ``train_end``; validation windows' within
    ``known`` (the rows before the test period)."""
    train_ends = np.arange(length - 1, train_end - outputs)
    valid_ends = np.arange(max(train_end - 1, length - 1), len(known) - outputs)
    if not len(train_ends) or not len(valid_ends):
        raise InputError(f"a seq-to-seq window of {length + outputs} days does not fit in "
                         f"{known.ts_code}'s {train_end} training rows and the validation "
                         f"period: shorten experiments.feature_windows")
    model = FeatureSeq2Seq(None, scaler, length, outputs, by_window)
    if not by_window:
        ahead = model.relative(known.close, train_ends)
        spread = ahead.std(axis=0)
        model.target_mean, model.target_std = ahead.mean(axis=0), np.where(spread > 0, spread, 1.0)
    model.network = _trained(
        settings, seed, model.inputs(known, train_ends), model.targets(known.close, train_ends),
        model.inputs(known, valid_ends), model.targets(known.close, valid_ends))
    return model


@dataclass
class Networks:
    """The experiments' networks, every one fit on rows before the test period."""

    point: object  # (a)-(c): a window of closes -> the next close
    seq2seq: object  # (d), (g), (h): m closes -> the next predict_window closes
    features: list[FeatureSeq2Seq]  # (f), one per experiments.feature_windows
    global_seq2seq: FeatureSeq2Seq  # (j)


def _seq2seq_shape(config: Config) -> tuple[int, int]:
    """(m, n - m) of the univariate seq-to-seq, from predict_window and seq2seq_lambda."""
    share, horizon = config.models.seq2seq_lambda, config.models.predict_window
    return max(1, int(round(share * (horizon / (1 - share))))), horizon


def fit(config: Config, stock: StockData) -> Networks:
    """Every network of the experiments; the networks take the sizes of models.lstm (apply
    the quick overlay for a smoke run)."""
    with native_stderr_to_log():
        return _fit_all(config, stock)


def _fit_all(config, stock):
    ev, settings = config.evaluation, config.models.lstm.model_dump()
    known = stock.rows(stock.dates < ev.test_start)  # nothing of the test period is fit
    close, length = known.close, settings["sequence_length"]
    train_end = int(np.searchsorted(known.dates, ev.validation_start))
    point = _fit(close[:train_end], close[train_end - length:], settings, length, 1, ev.seed)
    first, horizon = _seq2seq_shape(config)
    seq = _fit(close[:train_end], close[train_end - first:], settings, first, horizon, ev.seed)
    scaler = Standardizer().fit(known.features.to_numpy(float)[:train_end])
    features = []
    for n, share in config.experiments.feature_windows:
        m = int(round(share * n))
        features.append(_fit_features(known, train_end, scaler, settings, ev.seed, m, n - m,
                                      by_window=True))
    return Networks(point, seq, features, _fit_features(
        known, train_end, scaler, settings, ev.seed, first, horizon, by_window=False))


def _averaged(ends: np.ndarray, paths: np.ndarray, days: np.ndarray) -> np.ndarray:
    """For each day t + 1 of ``days`` + 1, the forecasts of it from every origin, averaged."""
    sums, counts = np.zeros(days[-1] + 2), np.zeros(days[-1] + 2)
    for k in range(paths.shape[1]):
        target = ends + 1 + k
        ok = target < len(sums)
        np.add.at(sums, target[ok], paths[ok, k])
        np.add.at(counts, target[ok], 1)
    return sums[days + 1] / np.where(counts[days + 1] > 0, counts[days + 1], np.nan)


def _rectified_joins(close: np.ndarray, ends: np.ndarray, paths: np.ndarray,
                     days: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, int]:
    """The paths from every ``outputs``-th origin of ``days``, each day clamped to the limit
    around the day before (a window's first day: the last true close); and on how many
    days the clamp bound."""
    horizon = paths.shape[1]
    starts = days[::horizon]
    raw = paths[starts - ends[0]]
    limits = np.pad(limit, (0, raw.size - len(days)), mode="edge").reshape(raw.shape)
    clamped, anchor = np.empty_like(raw), close[starts]
    for k in range(horizon):
        clamped[:, k] = anchor = rectify(anchor, raw[:, k], limits[:, k])
    bound = int((clamped != raw).ravel()[:len(days)].sum())
    return clamped.ravel()[:len(days)], bound


def forecast(config: Config, networks: Networks, stock: StockData,
             feature_forecast: np.ndarray) -> list[Experiment]:
    """Every experiment over the test period; ``feature_forecast`` is the feature LSTM's
    forecast per row of ``stock``."""
    with native_stderr_to_log():
        return _forecast(config, networks, stock, feature_forecast)


def _forecast(config, networks, stock, feature_forecast):
    ev = config.evaluation
    length, horizon = config.models.lstm.sequence_length, config.models.predict_window
    close, dates = stock.close, stock.dates
    test_start = int(np.searchsorted(dates, ev.test_start))
    test_end = int(np.searchsorted(dates, ev.test_end, side="right"))
    days = np.arange(test_start, test_end - 1)  # forecast made at t for t + 1
    on, actual, previous = dates[days + 1], close[days + 1], close[days]
    limit = price_limit(stock.ts_code, on)
    out = []

    model = networks.point
    x = np.stack([close[t - length + 1:t + 1] for t in days])
    rel = (x / x[:, :1] - 1)[:, :, None].astype("float32")
    point = x[:, 0] * (1 + model.predict(rel, verbose=0)[:, 0])
    out.append(Experiment("point_by_point", "(a) point by point: each day from the true window",
                          on, actual, point, previous))

    window = close[test_start - length + 1:test_start + 1][None, :]
    full = []
    for _ in days:
        full.append(float(_step(model, window[:, -length:])[0, 0]))
        window = np.append(window, [[full[-1]]], axis=1)
    out.append(Experiment("full_window", "(b) full window: one origin, forecasts fed back",
                          on, actual, np.array(full), previous))

    # every origin steps forward together: one batch per step of the horizon
    starts = np.arange(0, len(days), horizon)
    window = np.stack([close[days[s] - length + 1:days[s] + 1] for s in starts])
    multiple = np.full(len(days), np.nan)
    for k in range(horizon):
        step = _step(model, window[:, -length:])[:, 0]
        target = starts + k
        ok = target < len(days)
        multiple[target[ok]] = step[ok]
        window = np.concatenate([window, step[:, None]], axis=1)
    out.append(Experiment("multiple_sequences",
                          f"(c) multiple sequences: a new origin every {horizon} days",
                          on, actual, multiple, previous))

    first, _ = _seq2seq_shape(config)
    # origins from a horizon before the test, so each test day has all its forecasts
    ends = np.arange(max(test_start - horizon, first - 1), test_end - 1)
    paths = _step(networks.seq2seq, np.stack([close[t - first + 1:t + 1] for t in ends]))
    out.append(Experiment(
        "seq2seq_averaged", f"(d) seq-to-seq: {first} days predict the next {horizon}, "
        f"overlapping forecasts averaged", on, actual, _averaged(ends, paths, days), previous))

    out.append(Experiment("global_rectified",
                          "(e) globally normalised feature LSTM, moves clamped to the price limit",
                          on, actual, rectify(previous, feature_forecast[days], limit), previous))

    for net in networks.features:
        feature_ends = np.arange(max(test_start - net.outputs, net.length - 1), test_end - 1)
        averaged = _averaged(feature_ends, net.paths(stock, feature_ends), days)
        out.append(Experiment(
            f"seq2seq_features_n{net.length + net.outputs}_m{net.length}",
            f"(f) multi-feature seq-to-seq: {net.title}, overlapping forecasts averaged",
            on, actual, averaged, previous))

    out.append(Experiment("seq2seq_latest", f"(g) seq-to-seq: {first} days predict the next "
                          f"{horizon}, each day from the latest origin only", on, actual,
                          paths[days - ends[0], 0], previous))

    joined, bound = _rectified_joins(close, ends, paths, days, limit)
    out.append(Experiment("seq2seq_rectified_joins", f"(h) seq-to-seq, a new window every "
                          f"{horizon} days, its joins and moves clamped to the price limit "
                          f"(bound on {bound} of {len(days)} days)", on, actual, joined,
                          previous))

    out.append(Experiment("global_raw", "(i) globally normalised feature LSTM, not rectified",
                          on, actual, feature_forecast[days], previous))

    net = networks.global_seq2seq
    global_ends = np.arange(max(test_start - net.outputs, net.length - 1), test_end - 1)
    out.append(Experiment(
        "global_seq2seq_averaged", f"(j) globally normalised seq-to-seq: {net.title}, "
        f"overlapping forecasts averaged", on, actual,
        _averaged(global_ends, net.paths(stock, global_ends), days), previous))
    return out


def run(config: Config, stock: StockData, feature_forecast: np.ndarray) -> list[Experiment]:
    """Fit every network on the rows before the test period, then forecast it."""
    return forecast(config, fit(config, stock), stock, feature_forecast)


def compare_splits(config: Config, stock: StockData) -> pd.DataFrame:
    """The feature LSTM fit on the first share (each of experiments.train_fractions) of the
    rows before the test period and stopped early on the rest, as the original project cut
    them; each scored on the test period against persistence."""
    periods = Periods.from_config(config)
    known = periods.before_test(stock)
    order, length = np.arange(len(known)), config.models.lstm.sequence_length
    rows = []
    for share in config.experiments.train_fractions:
        cut = int(round(share * len(known)))
        if min(cut, len(known) - cut) < length:
            raise InputError(f"experiments.train_fractions: {share} of {known.ts_code}'s "
                             f"{len(known)} rows before the test leaves a part shorter than "
                             f"the {length}-day window")
        with native_stderr_to_log():
            model = prototype(config, "lstm").fit([known.rows(order < cut)],
                                                  [known.rows(order >= cut)])
            predictions = forecast_period(model, [stock], periods)
        losses = model.history_["val_loss"]
        kept = int(np.argmin(losses))
        naive = predictions.assign(predicted_close=predictions["close"])
        scored, persistence = score(predictions, naive), score(naive, naive)
        rows.append({"split": f"{share:g} / {1 - share:g}", "train_fraction": share,
                     "validation_start": known.dates[cut], "kept_epoch": kept + 1,
                     "epochs": len(losses), "validation_loss": float(losses[kept]),
                     "rmse_return": scored["rmse_return"],
                     "persistence_rmse_return": persistence["rmse_return"],
                     "dm_stat": scored["dm_stat_vs_persistence"],
                     "dm_pvalue": scored["dm_pvalue_vs_persistence"]})
    return pd.DataFrame(rows)
