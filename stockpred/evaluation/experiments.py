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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stockpred.config import Config
from stockpred.dataset import StockData, rectify, windows
from stockpred.market_rules import price_limit
from stockpred.models.neural import _keras, build_network, native_stderr_to_log


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


def _fit(close_train, close_valid, settings: dict, length: int, outputs: int, seed: int):
    keras = _keras(seed)
    x, y = _relative(close_train, length, outputs)
    xv, yv = _relative(close_valid, length, outputs)
    model = build_network("lstm", settings, length, 1, outputs)
    model.fit(x, y, validation_data=(xv, yv), epochs=settings["epochs"],
              batch_size=settings["batch_size"], verbose=0, shuffle=True,
              callbacks=[keras.callbacks.EarlyStopping(
                  monitor="val_loss", patience=settings["patience"],
                  restore_best_weights=True)])
    return model


def _step(model, recent: np.ndarray) -> np.ndarray:
    """The model's next close(s) from windows of true or fed-back closes (rows x length)."""
    rel = (recent / recent[:, :1] - 1)[:, :, None].astype("float32")
    return recent[:, :1] * (1 + np.asarray(model(rel, training=False)))


def run(config: Config, stock: StockData, feature_forecast: np.ndarray) -> list[Experiment]:
    """The five experiments; ``feature_forecast`` is the feature LSTM's forecast per row.
    The networks take the sizes of models.lstm (apply the quick overlay for a smoke run)."""
    with native_stderr_to_log():
        return _run(config, stock, feature_forecast)


def _run(config, stock, feature_forecast):
    ev, m = config.evaluation, config.models
    settings = m.lstm.model_dump()
    length, horizon = settings["sequence_length"], m.predict_window
    close, dates = stock.close, stock.dates
    train_end = int(np.searchsorted(dates, ev.validation_start))
    test_start = int(np.searchsorted(dates, ev.test_start))
    test_end = int(np.searchsorted(dates, ev.test_end, side="right"))
    validation = close[train_end - length:test_start]
    days = np.arange(test_start, test_end - 1)  # forecast made at t for t + 1
    actual, previous = close[days + 1], close[days]
    out = []

    model = _fit(close[:train_end], validation, settings, length, 1, ev.seed)
    x = np.stack([close[t - length + 1:t + 1] for t in days])
    rel = (x / x[:, :1] - 1)[:, :, None].astype("float32")
    point = x[:, 0] * (1 + model.predict(rel, verbose=0)[:, 0])
    out.append(Experiment("point_by_point", "(a) point by point: each day from the true window",
                          dates[days + 1], actual, point, previous))

    window = close[test_start - length + 1:test_start + 1][None, :]
    full = []
    for _ in days:
        full.append(float(_step(model, window[:, -length:])[0, 0]))
        window = np.append(window, [[full[-1]]], axis=1)
    out.append(Experiment("full_window", "(b) full window: one origin, forecasts fed back",
                          dates[days + 1], actual, np.array(full), previous))

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
                          dates[days + 1], actual, multiple, previous))

    first = max(1, int(round(m.seq2seq_lambda * (horizon / (1 - m.seq2seq_lambda)))))
    seq = _fit(close[:train_end], close[train_end - first:test_start], settings, first,
               horizon, ev.seed)
    sums, counts = np.zeros(len(close)), np.zeros(len(close))
    origins = np.arange(test_start - horizon, test_end - 1)
    ends = [t for t in origins if t - first + 1 >= 0]
    xs = np.stack([close[t - first + 1:t + 1] for t in ends])
    forecast = xs[:, :1] * (1 + seq.predict((xs / xs[:, :1] - 1)[:, :, None].astype("float32"),
                                            verbose=0))
    for t, path in zip(ends, forecast):
        for k, value in enumerate(path):
            if t + 1 + k < len(close):
                sums[t + 1 + k] += value
                counts[t + 1 + k] += 1
    averaged = sums[days + 1] / np.where(counts[days + 1] > 0, counts[days + 1], np.nan)
    out.append(Experiment(
        "seq2seq_averaged", f"(d) seq-to-seq: {first} days predict the next {horizon}, "
        f"overlapping forecasts averaged", dates[days + 1], actual, averaged, previous))

    limit = price_limit(stock.ts_code, dates[days + 1])
    rectified = rectify(previous, feature_forecast[days], limit)
    out.append(Experiment("global_rectified",
                          "(e) globally normalised feature LSTM, moves clamped to the price limit",
                          dates[days + 1], actual, rectified, previous))
    return out
