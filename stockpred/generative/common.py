"""What the VAE and the WGAN share: where they read and write, the periods, the data.

Training rows end before ``evaluation.validation_start``; the validation period (up to
``test_start``) only monitors; the test period (``test_start``..``test_end``) is scored.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from stockpred.config import Config
from stockpred.errors import InputError
from stockpred.evaluation.dataset import StockData, load_stock, model_features
from stockpred.evaluation.evaluate import stocks_to_use
from stockpred.layout import Paths

LATENT_SUFFIX = ".vae.parquet"


# -- where things go -------------------------------------------------------------------------
def runs_dir(paths: Paths, model: str) -> Path:
    """<data dir>/models/<model>/ ("vae" or "wgan"); one folder per run inside."""
    return paths.data_dir / "models" / model


def figures_dir(paths: Paths) -> Path:
    """<results dir>/generative/: the VAE's and the WGAN's figures."""
    return paths.results_dir / "generative"


def latent_table(paths: Paths, ts_code: str) -> Path:
    """<data dir>/features/<ts_code>.vae.parquet: trade_date + vae_z0..vae_z{k-1}."""
    return paths.features_dir / f"{ts_code}{LATENT_SUFFIX}"


def latent_manifest(paths: Paths) -> Path:
    return paths.features_dir / "vae.json"


def new_run_id(quick: bool) -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if quick else "")


def latest_run(paths: Paths, model: str) -> Path | None:
    folder = runs_dir(paths, model)
    done = sorted(p.parent for p in folder.glob("*/metrics.json")) if folder.is_dir() else []
    return done[-1] if done else None


# -- the data -------------------------------------------------------------------------------
def load_stocks(config: Config, paths: Paths, ts_codes: list[str] | None,
                features: list[str] | None) -> tuple[list[StockData], list[str]]:
    """The stocks with ``features`` (None or empty: the model features). Refuses with
    MissingInputError (naming `stockpred features`) when features were never built."""
    known = model_features(paths)  # raises MissingInputError without a features manifest
    chosen = list(features) if features else known
    built = _built_features(paths)
    unknown = [f for f in chosen if built is not None and f not in built]
    if unknown:
        raise InputError(f"unknown feature(s) {', '.join(unknown)}: not among the features "
                         f"`stockpred features` built (see {paths.features_manifest})")
    stocks = [load_stock(paths, code, chosen) for code in stocks_to_use(config, paths, ts_codes)]
    return stocks, chosen


def _built_features(paths: Paths) -> set[str] | None:
    from stockpred.manifest import read_manifest

    built = read_manifest(paths.features_manifest)
    return None if built is None else {f["name"] for f in built.get("features", [])}


def split_periods(config: Config, stocks: list[StockData]):
    """(train, validation, test masks) per the evaluation periods."""
    ev = config.evaluation
    train = [s.rows(s.dates < ev.validation_start) for s in stocks]
    valid = [s.rows((s.dates >= ev.validation_start) & (s.next_dates <= ev.test_start))
             for s in stocks]
    tests = [(s.dates >= ev.test_start) & (s.dates <= ev.test_end) for s in stocks]
    return train, valid, tests


def check_enough(stocks: list[StockData], rows: int, what: str) -> None:
    if not any(len(s) >= rows for s in stocks):
        raise InputError(f"too few training rows for the {what}: need at least {rows} days "
                         f"before evaluation.validation_start; fetch an earlier start")


def log_returns(close: np.ndarray) -> np.ndarray:
    """log(close_t / close_{t-1}); NaN on the first row."""
    out = np.full(len(close), np.nan)
    with np.errstate(all="ignore"):
        out[1:] = np.log(close[1:] / close[:-1])
    return out
