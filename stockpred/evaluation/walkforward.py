"""Walk-forward (rolling-origin) evaluation and the leaderboard rows it produces.

The test period is cut into blocks of ``retrain_every`` trading days. Before each
block the model is refit on the trailing ``train_window_days`` rows that end the day
before the block, so the last training target (the close of the block's first day) is
known when the first forecast of the block is made: a gap of one day, the horizon.
Neural models stop early on the last ``validation_days`` of those rows. No row of the
block, or after it, reaches fitting or scaling.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from tqdm import tqdm

from stockpred.config import Config
from stockpred.evaluation import metrics
from stockpred.evaluation.dataset import StockData
from stockpred.models.base import forecaster_class

NEURAL = ("lstm", "gru", "tcn")
# models that hold back the last days of their training rows: to stop early (neural),
# to monitor (wgan) or to fit the fusion weight
VALIDATED = (*NEURAL, "wgan", "fusion")


def model_settings(config: Config, name: str, quick: bool) -> dict:
    """The settings of ``name`` from config.json (tiny sizes and few epochs with quick)."""
    m = config.models
    if name in NEURAL:
        return (m.quick if quick else getattr(m, name)).model_dump()
    if name == "svr":
        return {"c": m.svr_c, "epsilon": m.svr_epsilon,
                "max_rows": min(m.svr_max_rows, 1000) if quick else m.svr_max_rows}
    if name == "xgboost":
        params = m.xgboost.model_dump(exclude={"early_stopping_rounds"})
        return {**params, "n_estimators": 30} if quick else params
    if name == "arima":
        return {"order": list(m.arima_order)}
    if name == "wgan":
        from stockpred.generative.wgan import forecaster_settings

        return forecaster_settings(config, quick)
    if name == "fusion":
        return {"components": ["lstm", "wgan"], "alpha": None,
                "lstm": model_settings(config, "lstm", quick),
                "wgan": model_settings(config, "wgan", quick)}
    return {}


def tail(stock: StockData, rows: int) -> StockData:
    keep = np.zeros(len(stock), dtype=bool)
    keep[max(0, len(stock) - rows):] = True
    return stock.rows(keep)


def split_validation(train: list[StockData], days: int) -> tuple[list, list]:
    """The last ``days`` rows of each stock validate; the rows before them train."""
    fit, valid = [], []
    for stock in train:
        cut = np.arange(len(stock)) < len(stock) - days
        fit.append(stock.rows(cut))
        valid.append(stock.rows(~cut))
    return fit, valid


def walk_forward(name: str, settings: dict, stocks: list[StockData], config: Config,
                 test_start: str, test_end: str, retrain_every: int,
                 progress: bool = True) -> pd.DataFrame:
    """Forecasts of every test day of every stock, refitting before each block."""
    ev = config.evaluation
    days = sorted({d for s in stocks for d in s.dates if test_start <= d <= test_end})
    blocks = [days[i:i + retrain_every] for i in range(0, len(days), retrain_every)]
    rows = []
    for block in tqdm(blocks, desc=f"{name:12s}", unit="refit", leave=False,
                      disable=None if progress else True):
        first, last = block[0], block[-1]
        # rows whose target is known when the block's first forecast is made (a suspension
        # can push a row's next traded close past the block)
        train = [tail(s.known_by(first), ev.train_window_days) for s in stocks]
        train = [s for s in train if len(s)]
        valid = None
        if name in VALIDATED:
            train, valid = split_validation(train, ev.validation_days)
        model = forecaster_class(name)(settings, ev.seed).fit(train, valid)
        for stock in stocks:
            data = stock.upto(last)
            in_block = data.dates >= first
            if not in_block.any():
                continue
            predicted = model.predict(data)[in_block]
            rows.append(pd.DataFrame({
                "ts_code": stock.ts_code, "trade_date": data.dates[in_block],
                "close": data.close[in_block], "next_close": data.next_close[in_block],
                "predicted_close": predicted, "refit_before": first}))
    return pd.concat(rows, ignore_index=True)


def score(predictions: pd.DataFrame, persistence: pd.DataFrame) -> dict:
    """A leaderboard row: errors, direction and tests against persistence on the same days."""
    frame = predictions.merge(persistence[["ts_code", "trade_date", "predicted_close"]],
                              on=["ts_code", "trade_date"], suffixes=("", "_persistence"))
    frame = frame.dropna(subset=["next_close", "predicted_close"])
    actual_change = frame["next_close"] - frame["close"]
    predicted_change = frame["predicted_close"] - frame["close"]
    actual_return = frame["next_close"] / frame["close"] - 1
    predicted_return = frame["predicted_close"] / frame["close"] - 1
    per_stock = frame.groupby("ts_code")
    pt_stat, pt_p = metrics.pesaran_timmermann(actual_change, predicted_change)
    dm_stat, dm_p = metrics.diebold_mariano(actual_return, predicted_return,
                                            frame["predicted_close_persistence"] / frame["close"]
                                            - 1)
    row = {
        "stocks": int(frame["ts_code"].nunique()),
        "forecasts": int(len(frame)),
        "rmse_price": float(per_stock.apply(
            lambda g: metrics.rmse(g["next_close"], g["predicted_close"])).mean()),
        "mae_price": float(per_stock.apply(
            lambda g: metrics.mae(g["next_close"], g["predicted_close"])).mean()),
        "mape": metrics.mape(frame["next_close"], frame["predicted_close"]),
        "rmse_return": metrics.rmse(actual_return, predicted_return),
        "directional_accuracy": metrics.directional_accuracy(actual_change, predicted_change),
        "pt_stat": pt_stat, "pt_pvalue": pt_p,
        "dm_stat_vs_persistence": dm_stat, "dm_pvalue_vs_persistence": dm_p,
    }
    if row["stocks"] > 1:
        ic = metrics.information_coefficients(pd.DataFrame({
            "trade_date": frame["trade_date"], "predicted_return": predicted_return,
            "actual_return": actual_return}))
        row.update({k: ic[k] for k in ("ic", "rank_ic", "icir")})
    row["beats_persistence"] = bool(not math.isnan(dm_stat) and dm_stat < 0 and dm_p < 0.05)
    return row


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


LEADERBOARD_COLUMNS = ["model", "stocks", "forecasts", "rmse_price", "mae_price", "mape",
                       "rmse_return", "directional_accuracy", "pt_pvalue",
                       "dm_stat_vs_persistence", "dm_pvalue_vs_persistence", "ic", "rank_ic",
                       "icir", "beats_persistence"]


def leaderboard_markdown(rows: list[dict], header: str) -> str:
    columns = [c for c in LEADERBOARD_COLUMNS if any(c in r for r in rows)]
    lines = [header, "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, math.nan)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
