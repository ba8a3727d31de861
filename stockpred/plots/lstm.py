"""Figures of the LSTM experiments, each with its errors next to persistence's.

A model that copies yesterday's close draws a price line that looks perfect; the lower
panel of every figure shows the forecast's errors over the errors of tomorrow = today,
with both RMSEs in the legend, so that cannot pass for skill. One more figure sets the
feature LSTM's test errors under each train/validation split beside persistence's.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.dataset import stocks_to_use
from stockpred.errors import MissingInputError
from stockpred.evaluation.metrics import rmse
from stockpred.layout import Paths
from stockpred.manifest import read_manifest
from stockpred.plots import Provenance, drawn_from, save_figure


def _figure(exp: pd.DataFrame, who: str, path: Path, drawn: Provenance) -> Path:
    """One experiment's rows (trade_date, actual, predicted, previous): the forecast over
    the actual close, and its error beside persistence's."""
    x = pd.to_datetime(exp["trade_date"], format="%Y%m%d")
    actual, predicted, previous = (exp[c].to_numpy(float)
                                   for c in ("actual", "predicted", "previous"))
    fig, ax = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True,
                           gridspec_kw={"height_ratios": [2, 1]})
    fig.suptitle(f"{who}: {exp['title'].iloc[0]}", fontsize=12)
    ax[0].plot(x, actual, color="black", lw=1, label="actual close")
    ax[0].plot(x, predicted, lw=1, label="forecast")
    ax[0].set_ylabel("price (CNY, adjusted)")
    model_err, naive_err = predicted - actual, previous - actual
    ax[1].plot(x, naive_err, lw=0.7, color="gray", label=f"persistence error "
               f"(RMSE {rmse(actual, previous):.3f})")
    ax[1].plot(x, model_err, lw=0.8, label=f"forecast error (RMSE "
               f"{rmse(actual, predicted):.3f})")
    ax[1].axhline(0, color="black", lw=0.5)
    ax[1].set_ylabel("forecast - actual")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(loc="upper left", fontsize=8)
    ax[1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    ax[1].set_xlabel("trading day")
    fig.autofmt_xdate()
    return save_figure(fig, path, drawn)


def _splits_figure(splits: pd.DataFrame, who: str, path: Path, drawn: Provenance) -> Path:
    """The test RMSE of the return under each split, beside persistence's, with the epoch
    early stopping kept and Diebold-Mariano against persistence."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    at = np.arange(len(splits))
    ax.bar(at - 0.2, splits["rmse_return"], 0.4, label="feature LSTM")
    ax.bar(at + 0.2, splits["persistence_rmse_return"], 0.4, color="gray",
           label="persistence")
    for x, row in zip(at, splits.itertuples()):
        ax.annotate(f"kept epoch {row.kept_epoch} of {row.epochs}\nvalidation loss "
                    f"{row.validation_loss:.3g} (from {row.validation_start})\nDM vs "
                    f"persistence {row.dm_stat:.2f} (p {row.dm_pvalue:.2g})", (x, row.rmse_return),
                    xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(at, [f"train / validation {s}" for s in splits["split"]])
    ax.set_ylabel("test RMSE of the next-day return")
    ax.set_ylim(0, 1.3 * splits[["rmse_return", "persistence_rmse_return"]].max().max())
    ax.set_title(f"{who}: the feature LSTM under the original train/validation splits "
                 f"of the pre-test rows", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path, drawn)


def run(config: Config, paths: Paths, ts_code: str | None = None) -> list[Path]:
    """Draw the stored experiments of ``ts_code`` (default: the first evaluated stock)."""
    code = ts_code or stocks_to_use(config, paths, None)[0]
    table, splits = paths.experiments_table(code), paths.experiment_splits_table(code)
    if not (table.exists() and splits.exists()):
        raise MissingInputError(f"no LSTM experiments for {code} under {table.parent}: run "
                                f"`stockpred train experiments --ts-code {code}` first")
    out = paths.model_figures_dir
    out.mkdir(parents=True, exist_ok=True)
    frame, split_frame = pd.read_parquet(table), pd.read_parquet(splits)
    # the tables keep no time of their own; the stage's record says when it last finished
    record = read_manifest(paths.stage_record("experiments")) or {}
    drawn = drawn_from("stockpred plot lstm", config, paths, table, record.get("finished_at"),
                       quick=bool(frame["quick"].any() or split_frame["quick"].any()))
    return [*(_figure(rows, code, out / f"{name}.png", drawn)
              for name, rows in frame.groupby("experiment", sort=False)),
            _splits_figure(split_frame, code, out / "train_validation_splits.png", drawn)]
