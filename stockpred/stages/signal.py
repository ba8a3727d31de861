"""The nightly signal (`stockpred signal`): tomorrow's scores and TopK-Dropout portfolio.

On the last stored close T, every member of universe cross_section.universe is scored by
cross_section.models[0], fitted as `evaluate --cross-section` fits it (the trailing
train_days whose labels are known at T's close, the last validation_days held back) and
refitted only every retrain_every trading days; in between the stored model is reused.
Each fit is saved under <data dir>/signals/models/<run id>/, and the run id (model, day of
the fit and a digest of what the fit depended on) names the model in every signal it
scores. Writes <data dir>/signals/T.parquet (trade_date, ts_code, score, rank, model) and
T.portfolio.json: the TopK-Dropout target built from the previous night's target, each
stock that could not trade on T (suspended, or one price all day: locked at a limit)
marked, since at T's close that is the last known state of the next day's order.

Nothing after T's close is read. The model is saved before any signal file and the signal
is scored by the model as saved, so a run stopped part way and run again writes the same
files; a second run on the same day writes the same bytes again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.data.store import (
    TMP_MARK,
    atomic_write_parquet,
    atomic_write_text,
)
from stockpred.dataset import FactorPanel, build_factor_panel
from stockpred.errors import MissingInputError
from stockpred.evaluation.backtest import topk_dropout_orders
from stockpred.evaluation.signal import trading_status
from stockpred.layout import Paths
from stockpred.manifest import read_manifest, write_manifest
from stockpred.models.cross_section import CrossSectionalModel
from stockpred.models.registry import prototype
from stockpred.stages.market import (
    compute_client,
    factor_files,
    factor_years,
    market_bars,
    members,
)

FIT_FILE = "fit.json"


@dataclass(frozen=True)
class _Fit:
    """A stored model: its run id, folder and the day at whose close it was fitted."""

    run_id: str
    folder: Path
    day: str


def _fit_key(config: Config, prototype: CrossSectionalModel, factors: dict) -> str:
    """What a fit depends on besides its day: a stored model fitted under another key is
    not reused."""
    cs = config.cross_section
    return hashlib.sha256(json.dumps({
        "universe": cs.universe, "model": prototype.name, "settings": prototype.settings,
        "seed": prototype.seed, "panel": [cs.label, cs.normalise, cs.mad_k, cs.train_days,
                                          cs.validation_days],
        "factors": factors.get("definition")}, sort_keys=True, default=str).encode()
    ).hexdigest()[:12]


def _stored_fit(paths: Paths, model: str, key: str, calendar: np.ndarray, day: str,
                retrain_every: int) -> _Fit | None:
    """The latest stored fit of ``key`` on or before ``day`` while fewer than
    ``retrain_every`` trading days old on ``day``; None when a refit is due."""
    folder = paths.signal_models_dir
    fits = []
    for path in folder.glob(f"{model}-*-{key}/{FIT_FILE}") if folder.is_dir() else []:
        if TMP_MARK not in path.parent.name:
            fit = json.loads(path.read_text(encoding="utf-8"))
            if fit["day"] <= day:
                fits.append(_Fit(path.parent.name, path.parent, fit["day"]))
    if not fits:
        return None
    latest = max(fits, key=lambda f: f.day)
    age = np.searchsorted(calendar, day) - np.searchsorted(calendar, latest.day)
    return latest if age < retrain_every else None


def _refit(config: Config, paths: Paths, prototype: CrossSectionalModel, panel: FactorPanel,
           key: str, day: str) -> _Fit:
    """Fit on ``day``'s close as the walk-forward refits before a block starting on
    ``day``, and store the model under its run id (a folder renamed into place whole)."""
    cs = config.cross_section
    validation = cs.validation_days if prototype.uses_validation else None
    with compute_client(config) if prototype.settings.get("on_dask") else nullcontext():
        fitted = prototype.clone().fit(*panel.training(day, cs.train_days, validation))
    run_id = f"{prototype.name}-{day}-{key}"
    final = paths.signal_models_dir / run_id
    staging = final.with_name(f"{run_id}{TMP_MARK}{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    fitted.save(staging)
    # written last: a folder with it holds a whole model
    atomic_write_text(staging / FIT_FILE, json.dumps({
        "run_id": run_id, "day": day, "model": prototype.name, "key": key,
        "universe": cs.universe, "settings": prototype.settings}, indent=1, default=str))
    os.replace(staging, final)
    return _Fit(run_id, final, day)


def _previous_target(paths: Paths, day: str) -> tuple[str | None, list[str]]:
    """The day and target of the latest portfolio before ``day`` (none: an empty book)."""
    earlier = [d for d in paths.portfolio_days() if d < day]
    if not earlier:
        return None, []
    portfolio = json.loads(paths.portfolio_file(earlier[-1]).read_text(encoding="utf-8"))
    return earlier[-1], [row["ts_code"] for row in portfolio["target"]]


def _blocked(codes: list[str], bars_on_day: pd.DataFrame) -> dict[str, str]:
    """Why each of ``codes`` could not trade on the day of ``bars_on_day``: no bar
    (suspended) or one price all day (locked at a limit); absent when it could."""
    one_price = trading_status(bars_on_day).set_index("ts_code")["one_price"]
    return {c: "suspended" if c not in one_price.index else "one_price"
            for c in codes if c not in one_price.index or one_price[c]}


def run(config: Config, paths: Paths, progress: bool = False) -> list[str]:
    """Score the members of cross_section.universe on the last stored close and write its
    signal and portfolio; returns the summary line."""
    cs = config.cross_section
    name = cs.universe
    member_rows = members(config, paths, name)
    day = str(member_rows["trade_date"].max())
    factors = read_manifest(paths.factors_manifest(name)) or {}
    if factors.get("computed_through", "") < day:
        raise MissingInputError(f"the factors of {name} end before {day}, the last member "
                                f"day: run `stockpred features --universe {name}` first")
    calendar = np.sort(member_rows["trade_date"].unique().astype(str))
    model = prototype(config, cs.models[0])
    key = _fit_key(config, model, factors)
    fit = _stored_fit(paths, model.name, key, calendar, day, cs.retrain_every)
    # a refit reads the trailing train_days, scoring alone the day itself
    start = day if fit else calendar[max(0, np.searchsorted(calendar, day) - cs.train_days)]
    codes = sorted(member_rows["ts_code"].unique())
    _, bars = market_bars(paths, codes)
    bars = bars[(bars["trade_date"] <= day).to_numpy()]
    panel = build_factor_panel(
        factor_years(factor_files(config, paths, name), start),
        member_rows[(member_rows["trade_date"] >= start).to_numpy()], bars, cs.label,
        cs.normalise, cs.mad_k)
    if fit is None:
        fit = _refit(config, paths, model, panel, key, day)
    today = panel.rows(panel.dates == day)
    scores = CrossSectionalModel.load(fit.folder).predict(today)
    signal = today.keys.assign(score=scores)
    # best first, ties in ts_code order as TopK-Dropout breaks them
    signal["rank"] = np.argsort(np.argsort(-scores, kind="stable"), kind="stable") + 1
    signal["model"] = fit.run_id

    settings = config.cross_section.backtest
    previous_day, held = _previous_target(paths, day)
    book = sorted(set(signal["ts_code"]) | set(held))
    score = signal.set_index("ts_code")["score"].reindex(book).to_numpy(float)
    sell, buy = topk_dropout_orders(score, np.isin(book, held), settings.topk,
                                    settings.n_drop)
    sold, bought = {book[i] for i in sell}, [book[i] for i in buy]
    target = [c for c in held if c not in sold] + bought
    blocked = _blocked(target + sorted(sold), bars[(bars["trade_date"] == day).to_numpy()])
    by_code = signal.set_index("ts_code")

    def entry(code: str, **more) -> dict:
        known = code in by_code.index
        return {"ts_code": code, "score": float(by_code.at[code, "score"]) if known else None,
                "rank": int(by_code.at[code, "rank"]) if known else None,
                "blocked": blocked.get(code), **more}

    portfolio = {
        "trade_date": day, "universe": name, "model": model.name, "model_run": fit.run_id,
        "model_fitted_on": fit.day, "topk": settings.topk, "n_drop": settings.n_drop,
        "execution": f"the next trading day's {settings.execution}",
        "blocked": "the stock could not trade on trade_date: suspended (no bar) or one price "
                   "all day (locked at a limit); its order may not fill",
        "previous": previous_day,
        "target": [entry(c, action="buy" if c in bought else "hold") for c in target],
        "sell": [entry(c) for c in held if c in sold]}
    table, book_file = paths.signal_table(day), paths.portfolio_file(day)
    # the same inputs give the same bytes: a second run on the day rewrites what is there
    atomic_write_parquet(signal, table)
    atomic_write_text(book_file, json.dumps(portfolio, indent=1) + "\n")
    write_manifest(paths.signal_manifest, {
        "stage": "signal", "trade_date": day, "universe": name, "model_run": fit.run_id,
        "signal": table.name, "portfolio": book_file.name})
    marked = sum(row["blocked"] is not None for row in portfolio["target"] + portfolio["sell"])
    return [f"signal {day}: {len(signal)} members of {name} scored by {fit.run_id} "
            f"(fitted on {fit.day}); target {len(target)} stocks, {len(bought)} bought, "
            f"{len(sold)} sold, {marked} marked untradeable; {table.name}, {book_file.name}"]
