"""Leaderboard rows: a model's next-close forecasts scored against persistence's.

Errors of the price and of the return, the direction with Pesaran-Timmermann, and
Diebold-Mariano against persistence twice: Harvey-Leybourne-Newbold over every forecast,
and on the by-day loss differential with a Newey-West variance; over several stocks the
daily cross-sectional IC, Rank IC and ICIR. Each test's number of observations is a field
of the row, and the rendered board says which is which.
"""

from __future__ import annotations

import math

import pandas as pd

from stockpred.evaluation import metrics
from stockpred.evaluation.leaderboard import markdown, table


def score(predictions: pd.DataFrame, persistence: pd.DataFrame, horizon: int = 1) -> dict:
    """A leaderboard row: errors, direction and tests against persistence on the same days.
    At ``horizon`` h the forecasts of consecutive days share h-1 days of their targets' moves,
    so the Diebold-Mariano variances take h-1 autocovariances (HLN) or lags at least
    (Newey-West)."""
    frame = predictions.merge(persistence[["ts_code", "trade_date", "predicted_close"]],
                              on=["ts_code", "trade_date"], suffixes=("", "_persistence"))
    frame = frame.dropna(subset=["next_close", "predicted_close"])
    actual_change = frame["next_close"] - frame["close"]
    predicted_change = frame["predicted_close"] - frame["close"]
    actual_return = frame["next_close"] / frame["close"] - 1
    predicted_return = frame["predicted_close"] / frame["close"] - 1
    per_stock = frame.groupby("ts_code")
    persistence_return = frame["predicted_close_persistence"] / frame["close"] - 1
    pt_stat, pt_p = metrics.pesaran_timmermann(actual_change, predicted_change)
    dm_stat, dm_p = metrics.diebold_mariano(actual_return, predicted_return, persistence_return,
                                            horizon)
    by_day = metrics.diebold_mariano_by_day(frame["trade_date"], actual_return,
                                            predicted_return, persistence_return, horizon)
    row = {
        "stocks": int(frame["ts_code"].nunique()),
        "forecasts": int(len(frame)),
        "rmse_price": float(per_stock.apply(
            lambda g: metrics.rmse(g["next_close"], g["predicted_close"])).mean()),
        "mae_price": float(per_stock.apply(
            lambda g: metrics.mae(g["next_close"], g["predicted_close"])).mean()),
        # rmse_price's twin in percent of the day's close: qfq prices carry a per-stock
        # constant that a later fetch changes, which rescales rmse_price but not this
        "rmse_price_pct": float(per_stock.apply(
            lambda g: 100 * metrics.rmse(g["next_close"] / g["close"],
                                         g["predicted_close"] / g["close"])).mean()),
        "mape": metrics.mape(frame["next_close"], frame["predicted_close"]),
        "rmse_return": metrics.rmse(actual_return, predicted_return),
        "directional_accuracy": metrics.directional_accuracy(actual_change, predicted_change),
        "pt_stat": pt_stat, "pt_pvalue": pt_p,
        "pt_moves": len(metrics.moves(actual_change, predicted_change)[0]),
        "dm_stat_vs_persistence": dm_stat, "dm_pvalue_vs_persistence": dm_p,
        "dm_daily_nw_stat": by_day["stat"], "dm_daily_nw_pvalue": by_day["pvalue"],
        "dm_days": by_day["days"], "dm_nw_lags": by_day["lags"],
    }
    if row["stocks"] > 1:
        ic = metrics.information_coefficients(pd.DataFrame({
            "trade_date": frame["trade_date"], "predicted_return": predicted_return,
            "actual_return": actual_return}))
        row.update({k: ic[k] for k in ("ic", "rank_ic", "icir")})
    stat, p = deciding_test(row)
    row["beats_persistence"] = bool(not math.isnan(stat) and stat < 0 and p < 0.05)
    return row


def versus(predictions: pd.DataFrame, reference: pd.DataFrame, horizon: int = 1) -> dict:
    """score's tests of ``predictions`` against another model's forecasts of the same days
    (a fusion's weighting against the fixed weight of the same pair) in persistence's place:
    negative statistics, the model is the better."""
    row = score(predictions, reference, horizon)
    return {"forecasts": row["forecasts"], "rmse_return": row["rmse_return"],
            "dm_stat_vs_reference": row["dm_stat_vs_persistence"],
            "dm_pvalue_vs_reference": row["dm_pvalue_vs_persistence"],
            "dm_daily_nw_stat": row["dm_daily_nw_stat"],
            "dm_daily_nw_pvalue": row["dm_daily_nw_pvalue"],
            "beats_reference": row["beats_persistence"]}


VERSUS_COLUMNS = ["model", "reference", "forecasts", "rmse_return", "dm_stat_vs_reference",
                  "dm_pvalue_vs_reference", "dm_daily_nw_stat", "dm_daily_nw_pvalue",
                  "beats_reference"]


def deciding_test(row: dict) -> tuple[float, float]:
    """(statistic, p) of the DM test that decides against persistence. Pooled forecasts of
    one day share the market's move, so only the by-day test counts their evidence
    honestly; one stock keeps the HLN test (R's dm.test), and its Newey-West twin is the
    sensitivity shown beside it."""
    if row["stocks"] == 1:
        return row["dm_stat_vs_persistence"], row["dm_pvalue_vs_persistence"]
    return row["dm_daily_nw_stat"], row["dm_daily_nw_pvalue"]


def verdict(row: dict) -> str:
    """A row's verdict against persistence in words: a significant loss is said as such,
    not as a tie."""
    if row["beats_persistence"]:
        return "beats persistence"
    stat, p = deciding_test(row)
    if not math.isnan(stat) and stat > 0 and p < 0.05:
        return "significantly worse than persistence"
    return "does not beat, no significant difference from persistence"


LEADERBOARD_COLUMNS = ["model", "stocks", "forecasts", "rmse_price", "rmse_price_pct",
                       "mae_price", "mape",
                       "rmse_return", "directional_accuracy", "pt_pvalue", "pt_moves",
                       "dm_stat_vs_persistence", "dm_pvalue_vs_persistence",
                       "dm_daily_nw_stat", "dm_daily_nw_pvalue", "dm_days", "dm_nw_lags",
                       "ic", "rank_ic", "icir", "beats_persistence"]


def leaderboard_columns(rows: list[dict]) -> list[str]:
    """LEADERBOARD_COLUMNS, with the horizon after the model when ``rows`` have one (a
    board of several horizons; a next-day board keeps the columns it always had)."""
    if any("horizon" in r for r in rows):
        return ["model", "horizon", *LEADERBOARD_COLUMNS[1:]]
    return LEADERBOARD_COLUMNS


def _counts(rows: list[dict], key: str, pvalue: str) -> str:
    """The range of ``key`` over the rows whose test gave a p-value (persistence against
    itself gives none)."""
    values = sorted({r[key] for r in rows if key in r and isinstance(r.get(pvalue), float)
                     and not math.isnan(r[pvalue])})
    if not values:
        return "n/a"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def observations_note(rows: list[dict]) -> str:
    """How many observations each test of ``rows`` rests on, and which test decides."""
    hln, daily = "dm_pvalue_vs_persistence", "dm_daily_nw_pvalue"
    return (f"Observations per test: dm_*_vs_persistence (Harvey-Leybourne-Newbold) counts "
            f"each of the {_counts(rows, 'forecasts', hln)} forecasts as independent; "
            f"dm_daily_nw_* has dm_days = {_counts(rows, 'dm_days', daily)} observations, one "
            f"per trading day (the mean over stocks of the squared-error difference), with a "
            f"Newey-West variance at dm_nw_lags = {_counts(rows, 'dm_nw_lags', daily)} lags "
            f"(floor(4 (days/100)^(2/9)); a next-day forecast asks for no more); pt_pvalue "
            f"counts each of the pt_moves = {_counts(rows, 'pt_moves', 'pt_pvalue')} forecasts "
            f"whose actual and predicted moves are both non-zero as independent (zero moves "
            f"are left out). beats_persistence takes dm_daily_nw on several stocks and the "
            f"HLN test on one.")


def leaderboard_markdown(rows: list[dict], header: str) -> str:
    """The single-stock leaderboard of ``rows`` under ``header``."""
    return markdown({"header": header, "tables": [table(rows, leaderboard_columns(rows))],
                     "notes": [observations_note(rows)]})
