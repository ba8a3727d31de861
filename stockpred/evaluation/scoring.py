"""Leaderboard rows: a model's next-close forecasts scored against persistence's.

Errors of the price and of the return, the direction with Pesaran-Timmermann, and
Diebold-Mariano (Harvey-Leybourne-Newbold) against persistence; over several stocks the
daily cross-sectional IC, Rank IC and ICIR.
"""

from __future__ import annotations

import math

import pandas as pd

from stockpred.evaluation import metrics


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
