"""Figures of the LSTM experiments, each with its errors next to persistence's.

A model that copies yesterday's close draws a price line that looks perfect; the lower
panel of every figure shows the forecast's errors over the errors of tomorrow = today,
with both RMSEs in the legend, so that cannot pass for skill.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

from stockpred.config import Config
from stockpred.dataset import stocks_to_use
from stockpred.errors import MissingInputError
from stockpred.evaluation.metrics import rmse
from stockpred.layout import Paths


def _figure(exp: pd.DataFrame, who: str, path: Path) -> Path:
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(config: Config, paths: Paths, ts_code: str | None = None) -> list[Path]:
    """Draw the stored experiments of ``ts_code`` (default: the first evaluated stock)."""
    code = ts_code or stocks_to_use(config, paths, None)[0]
    table = paths.experiments_table(code)
    if not table.exists():
        raise MissingInputError(f"no LSTM experiments for {code} under {table.parent}: run "
                                f"`stockpred train experiments --ts-code {code}` first")
    out = paths.model_figures_dir
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.read_parquet(table)
    return [_figure(rows, code, out / f"{name}.png")
            for name, rows in frame.groupby("experiment", sort=False)]
