"""Figures of the market-wide evaluation, drawn from its stored tables: cumulative excess
return of each model's backtest, monthly Rank IC, and mean returns by score quintile."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred.plots import Provenance, save_figure
from stockpred.plots.features import _finish, _panels


def cumulative_excess(daily: pd.DataFrame, benchmark: str, path: Path,
                      drawn: Provenance) -> Path:
    """Cumulative (summed, as qlib's report) excess return after cost over ``benchmark``,
    one line per model, from the backtests' daily frames (with a ``model`` column)."""
    fig, axes = _panels(1, f"TopK-Dropout excess return over {benchmark}, after cost")
    for model, rows in daily.groupby("model", sort=False):
        x = pd.to_datetime(rows["trade_date"], format="%Y%m%d")
        axes[0].plot(x, rows[f"excess_{benchmark}"].fillna(0).cumsum().to_numpy(), lw=1,
                     label=model)
    axes[0].axhline(0, color="black", lw=0.5)
    axes[0].set_ylabel("cumulative excess return")
    return _finish(fig, axes, Path(path), drawn)


def monthly_rank_ic(monthly: pd.DataFrame, path: Path, drawn: Provenance) -> Path:
    """Monthly mean Rank IC per model (``monthly``: model, month, rank_ic), as grouped bars."""
    table = monthly.pivot(index="month", columns="model", values="rank_ic")
    months, models = table.index.to_list(), list(table.columns)
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        ax.bar(np.arange(len(months)) + i * width, table[model].to_numpy(), width, label=model)
    ax.set_xticks(np.arange(len(months)) + 0.4 - width / 2, months, rotation=90, fontsize=7)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("Rank IC (monthly mean)")
    ax.set_title("Monthly Rank IC of each model's score against the label")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path, drawn)


def quintile_returns(quintiles: pd.DataFrame, path: Path, drawn: Provenance) -> Path:
    """Mean label by score quintile per model (``quintiles``: model, quantile, mean)."""
    table = quintiles.pivot(index="quantile", columns="model", values="mean") * 1e4
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(table.columns), 1)
    for i, model in enumerate(table.columns):
        ax.bar(table.index.to_numpy() + i * width - 0.4, table[model].to_numpy(), width,
               label=model)
    ax.set_xlabel("score quintile (5: highest)")
    ax.set_ylabel("mean label, basis points a day")
    ax.set_title("Mean return by score quintile")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path, drawn)
