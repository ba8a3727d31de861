"""Figures of the LSTM experiments, each with its errors next to persistence's.

A model that copies yesterday's close draws a price line that looks perfect; the lower
panel of every figure shows the forecast's errors over the errors of tomorrow = today,
with both RMSEs in the legend, so that cannot pass for skill.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.evaluation import experiments
from stockpred.evaluation.dataset import load_stock, model_features
from stockpred.evaluation.evaluate import stocks_to_use
from stockpred.evaluation.walkforward import model_settings
from stockpred.layout import Paths
from stockpred.models.base import forecaster_class
from stockpred.evaluation.metrics import rmse


def _figure(exp: experiments.Experiment, who: str, path: Path) -> Path:
    x = pd.to_datetime(pd.Series(exp.dates), format="%Y%m%d")
    fig, ax = plt.subplots(2, 1, figsize=(11, 6.4), sharex=True,
                           gridspec_kw={"height_ratios": [2, 1]})
    fig.suptitle(f"{who}: {exp.title}", fontsize=12)
    ax[0].plot(x, exp.actual, color="black", lw=1, label="actual close")
    ax[0].plot(x, exp.predicted, lw=1, label="forecast")
    ax[0].set_ylabel("price (CNY, adjusted)")
    model_err, naive_err = exp.predicted - exp.actual, exp.previous - exp.actual
    ax[1].plot(x, naive_err, lw=0.7, color="gray", label=f"persistence error "
               f"(RMSE {rmse(exp.actual, exp.previous):.3f})")
    ax[1].plot(x, model_err, lw=0.8, label=f"forecast error (RMSE "
               f"{rmse(exp.actual, exp.predicted):.3f})")
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


def run(config: Config, paths: Paths, ts_code: str | None = None,
        quick: bool = False) -> list[Path]:
    code = ts_code or stocks_to_use(config, paths, None)[0]
    ev = config.evaluation
    stock = load_stock(paths, code, model_features(paths))
    train = stock.rows(stock.dates < ev.validation_start)
    valid = stock.rows((stock.dates >= ev.validation_start) & (stock.dates < ev.test_start))
    feature_model = forecaster_class("lstm")(model_settings(config, "lstm", quick), ev.seed)
    feature_forecast = feature_model.fit([train], [valid]).predict(stock)
    out = paths.model_figures_dir
    out.mkdir(parents=True, exist_ok=True)
    return [_figure(exp, code, out / f"{exp.name}.png")
            for exp in experiments.run(config, stock, feature_forecast, quick)]
