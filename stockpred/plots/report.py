"""Figures of the run report (`stockpred report`), drawn from an evaluate run's stored
frames and the series computed from them. Each returns PNG bytes, which the page embeds
inline, so the report is one file that opens from disk with nothing to fetch."""

from __future__ import annotations

import io

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred.plots import PNG_METADATA

DPI = 100
ROLLING_DAYS = 20


def _days(trade_date: pd.Series) -> pd.Series:
    return pd.to_datetime(trade_date, format="%Y%m%d")


def _png(fig, axes=()) -> bytes:
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8, ncol=4)
    if len(axes):
        axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata=PNG_METADATA)
    plt.close(fig)
    return buffer.getvalue()


def _rows(n: int, title: str, height: float = 2.8):
    fig, axes = plt.subplots(n, 1, figsize=(11, height * n + 0.6), sharex=True)
    fig.suptitle(title, fontsize=12)
    return fig, np.atleast_1d(axes)


def benchmark_label(name: str) -> str:
    """How a backtest benchmark (equal_weight, 000300_SH) is named on the page."""
    if name == "equal_weight":
        return "equal-weight universe"
    code, _, market = name.rpartition("_")
    return f"{code}.{market}"


# -- the cross-section ---------------------------------------------------------------------

def rank_ic(daily: pd.DataFrame, label: str) -> bytes:
    """Daily Rank IC per model (``daily``: model, trade_date, rank_ic) with its 20-day mean,
    and its running sum, whose slope is the mean."""
    fig, axes = _rows(2, f"Rank IC of each model's score against {label}, day by day")
    for model, rows in daily.groupby("model", sort=False):
        x = _days(rows["trade_date"])
        line, = axes[0].plot(x, rows["rank_ic"].rolling(ROLLING_DAYS, min_periods=1).mean(),
                             lw=1.2, label=model)
        axes[0].plot(x, rows["rank_ic"], lw=0.4, alpha=0.35, color=line.get_color())
        axes[1].plot(x, rows["rank_ic"].cumsum(), lw=1.2, label=model)
    axes[0].set_ylabel(f"Rank IC (faint: daily,\nbold: {ROLLING_DAYS}-day mean)")
    axes[1].set_ylabel("cumulative Rank IC")
    for ax in axes:
        ax.axhline(0, color="black", lw=0.5)
    return _png(fig, axes)


def monthly_heatmap(monthly: pd.DataFrame) -> bytes:
    """Mean Rank IC per model (rows) and month (columns), coloured around zero."""
    table = monthly.pivot(index="model", columns="month", values="rank_ic")
    table = table.reindex(list(dict.fromkeys(monthly["model"])))
    values = table.to_numpy(float)
    reach = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig, ax = plt.subplots(figsize=(min(max(7, 2 + 0.55 * table.shape[1]), 14),
                                    1.4 + 0.45 * len(table)))
    image = ax.imshow(values, cmap="RdBu", vmin=-reach, vmax=reach, aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=90, fontsize=8)
    ax.set_yticks(range(len(table)), table.index, fontsize=8)
    # numbers in the cells only while they stay legible
    if values.size <= 400:
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(value) > 0.6 * reach else "black")
    fig.colorbar(image, ax=ax, label="mean Rank IC")
    ax.set_title("Monthly mean Rank IC")
    return _png(fig)


def quantiles(means: pd.DataFrame, spread: pd.DataFrame, label: str) -> bytes:
    """Mean label by score quintile per model (``means``: model, quantile, mean) beside the
    running sum of the daily top-minus-bottom spread (``spread``: model, trade_date, spread)."""
    fig = plt.figure(figsize=(11, 4))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    table = means.pivot(index="quantile", columns="model", values="mean") * 1e4
    table = table[list(dict.fromkeys(means["model"]))]
    width = 0.8 / max(len(table.columns), 1)
    for i, model in enumerate(table.columns):
        left.bar(table.index.to_numpy() + i * width - 0.4 + width / 2, table[model].to_numpy(),
                 width, label=model)
    left.set_xlabel("score quintile (5: highest)")
    left.set_ylabel(f"mean {label}, basis points a day")
    left.set_title("Mean return by score quintile")
    left.axhline(0, color="black", lw=0.5)
    for model, rows in spread.groupby("model", sort=False):
        right.plot(_days(rows["trade_date"]), rows["spread"].cumsum(), lw=1.2, label=model)
    right.axhline(0, color="black", lw=0.5)
    right.set_title("Top minus bottom quintile, summed over days")
    right.set_ylabel(f"cumulative spread of {label}")
    right.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    right.tick_params(axis="x", labelrotation=30)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def _benchmarks(daily: pd.DataFrame) -> list[str]:
    return [c.removeprefix("benchmark_") for c in daily.columns if c.startswith("benchmark_")]


def net_asset_value(daily: pd.DataFrame) -> bytes:
    """Each model's backtest value over its starting cash (after cost) against the
    benchmarks the backtest was given, all from 1 on the first day (``daily``: the
    backtests' daily frames with a model column)."""
    fig, axes = _rows(1, "TopK-Dropout net asset value after cost", height=4)
    first = None
    for model, rows in daily.groupby("model", sort=False):
        first = rows if first is None else first
        axes[0].plot(_days(rows["trade_date"]), (1 + rows["return"]).cumprod(), lw=1.2,
                     label=model)
    # every model trades the same days, so the benchmarks are drawn once
    for name, style in zip(_benchmarks(first), ("--", ":", "-.")):
        axes[0].plot(_days(first["trade_date"]),
                     (1 + first[f"benchmark_{name}"].fillna(0)).cumprod(), color="black",
                     lw=1, ls=style, label=benchmark_label(name))
    axes[0].axhline(1, color="grey", lw=0.5)
    axes[0].set_ylabel("net asset value")
    return _png(fig, axes)


def drawdown(daily: pd.DataFrame) -> bytes:
    """Each model's net asset value below its running peak."""
    fig, axes = _rows(1, "Drawdown of the backtest, after cost", height=3)
    for model, rows in daily.groupby("model", sort=False):
        value = (1 + rows["return"]).cumprod()
        axes[0].plot(_days(rows["trade_date"]), value / value.cummax().clip(lower=1) - 1,
                     lw=1.2, label=model)
    axes[0].set_ylabel("drawdown")
    return _png(fig, axes)


def trading(daily: pd.DataFrame) -> bytes:
    """Daily turnover and the number of stocks held, per model."""
    fig, axes = _rows(2, "Trading of the backtest")
    for model, rows in daily.groupby("model", sort=False):
        x = _days(rows["trade_date"])
        axes[0].plot(x, rows["turnover"], lw=0.8, label=model)
        axes[1].step(x, rows["positions"], lw=1, where="post", label=model)
    axes[0].set_ylabel("turnover\n(traded / 2 x value)")
    axes[1].set_ylabel("stocks held")
    return _png(fig, axes)


# -- one stock at a time -------------------------------------------------------------------

def forecasts(predictions: pd.DataFrame, ts_code: str) -> bytes:
    """One stock's next close, as it came, against each model's forecast of it
    (``predictions``: that stock's rows, with a model column)."""
    fig, axes = _rows(1, f"{ts_code}: next close against each model's forecast", height=3.6)
    actual = predictions.drop_duplicates("trade_date").sort_values("trade_date")
    axes[0].plot(_days(actual["trade_date"]), actual["next_close"], color="black", lw=1.6,
                 label="actual next close")
    for i, (model, rows) in enumerate(predictions.groupby("model", sort=False)):
        axes[0].plot(_days(rows["trade_date"]), rows["predicted_close"], lw=0.9, label=model,
                     color=f"C{i}")
    axes[0].set_ylabel("price (forward-adjusted)")
    axes[0].set_xlabel("day the forecast was made (at its close)")
    return _png(fig, axes)


def errors(losses: pd.DataFrame) -> bytes:
    """Per model: the running sum of the daily mean (model - persistence) squared return
    error, below zero while the model beats persistence, and a 20-day RMSE of the return
    beside persistence's (``losses``: model, trade_date, squared_error, differential)."""
    fig, axes = _rows(2, "Errors against persistence's (tomorrow = today)")
    # each model keeps the colour it has in the forecast figures (persistence's: C0)
    for i, (model, rows) in enumerate(losses.groupby("model", sort=False)):
        x = _days(rows["trade_date"])
        rmse = np.sqrt(rows["squared_error"].rolling(ROLLING_DAYS, min_periods=1).mean())
        if model != "persistence":
            axes[0].plot(x, rows["differential"].cumsum(), lw=1.2, label=model, color=f"C{i}")
        axes[1].plot(x, rmse, lw=1.6 if model == "persistence" else 0.9, label=model,
                     color=f"C{i}")
    axes[0].axhline(0, color="black", lw=0.5)
    axes[0].set_ylabel("cumulative squared return\nerror minus persistence's")
    axes[1].set_ylabel(f"{ROLLING_DAYS}-day RMSE of the\nnext-day return")
    return _png(fig, axes)
