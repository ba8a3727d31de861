"""Benchmark training and the leaderboards.

Prints:
  1. seconds per LSTM epoch through stockpred's LSTMForecaster and through a bare Keras
     model of the same architecture fit on the same tensors (target ratio <= 1.1);
  2. wall time of the README's main job on the shipped sample, in a fresh folder
     (`stockpred fetch && stockpred features && stockpred train lstm`; target <= 3 min);
  3. the walk-forward leaderboard for 600036.SH, and for the SSE 50 over 2017-2018.

Usage: python scripts/bench_train.py [--sse50-retrain-every K] [--skip-sse50]
The SSE 50 run pools all stocks into one model per refit; with the default yearly refit
it takes several minutes on 2 cores.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import Results, say, stockpred



def epoch_seconds(history_times):
    return float(np.median(history_times[1:]))  # the first epoch traces the graph


def epochs_compared(data_dir: Path, results: Results) -> None:
    from stockpred.config import Config
    from stockpred.dataset import load_stock, model_features
    from stockpred.layout import resolve_paths
    from stockpred.models.neural import LSTMForecaster
    from stockpred.runtime import keras_seeded, native_stderr_to_log

    config = Config()
    paths = resolve_paths(config, data_dir)
    stock = load_stock(paths, "600036.SH", model_features(paths))
    train = stock.rows(stock.dates < config.evaluation.validation_start)
    settings = {**config.models.lstm.model_dump(), "epochs": 8, "patience": 100}
    keras = keras_seeded(7)

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    ours = LSTMForecaster(settings, 7)
    clock = Clock()
    original_fit = keras.Model.fit

    def timed_fit(model, *args, **kwargs):  # the same fit call, with a clock attached
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), clock]
        return original_fit(model, *args, **kwargs)

    keras.Model.fit = timed_fit
    try:
        ours.fit([train])
    finally:
        keras.Model.fit = original_fit
    ours_epoch = epoch_seconds(clock.times)

    x, y = ours._dataset([train])
    layers = keras.layers
    with native_stderr_to_log():
        bare = keras.Sequential([keras.Input(shape=x.shape[1:])]
                                + [layer for width in settings["units"]
                                   for layer in (layers.LSTM(width, return_sequences=True),
                                                 layers.Dropout(settings["dropout"]))]
                                + [layers.Flatten(), layers.Dropout(settings["dropout"]),
                                   layers.Dense(1)])
        bare.compile(optimizer=keras.optimizers.Adam(settings["learning_rate"]), loss="mse")
        bare_clock = Clock()
        bare.fit(x, y, epochs=settings["epochs"], batch_size=settings["batch_size"],
                 verbose=0, shuffle=True, callbacks=[bare_clock])
    bare_epoch = epoch_seconds(bare_clock.times)
    say(f"1. LSTM epoch on 600036.SH ({len(x)} windows of {x.shape[1]} days x {x.shape[2]} "
        f"features, batch {settings['batch_size']})")
    results.add("LSTM epoch through stockpred", ours_epoch, "s", digits=3)
    results.add("the same epoch in bare Keras", bare_epoch, "s", digits=3)
    results.add("their ratio", ours_epoch / bare_epoch, "", "<= 1.1",
                ours_epoch / bare_epoch <= 1.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sse50-retrain-every", type=int, default=250)
    parser.add_argument("--skip-sse50", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        stockpred("fetch", cwd=folder)
        stockpred("features", cwd=folder)
        trained = stockpred("train", "lstm", cwd=folder)
        wall = time.perf_counter() - start
        results = Results("bench_train", "python scripts/bench_train.py")
        epochs_compared(folder / "data", results)
        say("2. README main job (fetch, features, train lstm) on the sample")
        results.add("its wall time", wall, "s", "<= 180 s", wall <= 180, digits=1)
        say("   " + trained.strip().splitlines()[-1])
        stockpred("importance", cwd=folder)
        runs = [("600036.SH", ["--ts-code", "600036.SH"])]
        if not args.skip_sse50:
            runs.append((f"SSE 50, refit every {args.sse50_retrain_every} days",
                         ["--ts-code", "all", "--retrain-every",
                          str(args.sse50_retrain_every)]))
        for title, extra in runs:
            start = time.perf_counter()
            stockpred("evaluate", *extra, "--results-dir", str(folder / "results"), cwd=folder)
            wall = time.perf_counter() - start
            board = json.loads((folder / "results" / "leaderboard.json").read_text())
            heading = (f"{title}, {board['test_period'][0]}..{board['test_period'][1]} "
                       f"({wall:.0f} s)")
            say(f"\n3. leaderboard, {heading}:")
            say((folder / "results" / "leaderboard.md").read_text().split("\n\n", 2)[2])
            results.leaderboard(heading, board["rows"])
        results.save()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
