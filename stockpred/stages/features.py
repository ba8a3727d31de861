"""The features stage: one point-in-time parquet table per stock, and a manifest of every
feature."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from stockpred import runtime
from stockpred.config import Config
from stockpred.data.store import RawStore, atomic_write_parquet
from stockpred.errors import InputError, MissingInputError
from stockpred.features.events import FAMILIES as EVENT_FAMILIES
from stockpred.features.panel import RATE_TABLES, build_panel, load_market
from stockpred.layout import Paths
from stockpred.manifest import (
    config_hash,
    package_versions,
    read_manifest,
    section_hash,
    write_manifest,
)

log = logging.getLogger(__name__)
# every raw table a panel reads: a change in any of them makes the features stale
INPUT_TABLES = tuple(dict.fromkeys((
    "trade_cal", "hfq_daily", "qfq_daily", "daily", "daily_basic", "moneyflow", "index_daily",
    "moneyflow_hsgt", "margin", "income", "balancesheet", "cashflow", "fina_indicator",
    "express", "forecast", "libor", *(table for table, *_ in RATE_TABLES),
    *(family.table for family in EVENT_FAMILIES))))


@dataclass
class FeaturesReport:
    built: dict[str, int] = field(default_factory=dict)  # stock -> rows
    skipped: dict[str, str] = field(default_factory=dict)
    features: int = 0

    def summary(self) -> list[str]:
        lines = [f"features: {len(self.built)} stocks, {sum(self.built.values())} rows, "
                 f"{self.features} features"]
        lines += [f"  skipped {code}: {why}" for code, why in self.skipped.items()]
        return lines


def universe(paths: Paths, ts_codes: list[str] | None) -> list[str]:
    """The stocks to build: --ts-code, else those the last fetch fetched."""
    fetched = read_manifest(paths.fetch_manifest)
    if fetched is None:
        raise MissingInputError(f"no fetch manifest at {paths.fetch_manifest}: "
                                f"run `stockpred fetch` first")
    if ts_codes:
        return ts_codes
    if not fetched.get("stocks"):
        raise InputError("the last fetch recorded no stocks: give --ts-code")
    return list(fetched["stocks"])


def input_hashes(paths: Paths) -> dict[str, str]:
    tables = (read_manifest(paths.fetch_manifest) or {}).get("tables", {})
    return {name: tables[name]["sha256"] for name in INPUT_TABLES if name in tables}


def run(config: Config, paths: Paths, ts_codes: list[str] | None = None,
        progress: bool = True) -> FeaturesReport:
    stocks = universe(paths, ts_codes)
    store = RawStore(paths.raw_dir)
    if not store.has("trade_cal"):
        raise MissingInputError(f"no trade_cal under {paths.raw_dir}: run `stockpred fetch` "
                                f"first (it fetches the trading calendar)")
    settings = config.features
    market = load_market(store, settings, config.fetch.indices)
    report = FeaturesReport()
    catalogue, per_stock = {}, {}
    for code in runtime.progress(stocks, "features", "stock", progress):
        panel = build_panel(store, code, market, settings)
        if isinstance(panel, str):
            report.skipped[code] = panel
            log.warning("skipped %s: %s", code, panel)
            continue
        atomic_write_parquet(panel.frame, paths.features_table(code))
        report.built[code] = len(panel.frame)
        catalogue.update({f.name: asdict(f) for f in panel.features})
        per_stock[code] = {
            "rows": len(panel.frame),
            "first_day": panel.frame["trade_date"].iloc[0],
            "last_day": panel.frame["trade_date"].iloc[-1],
            "price_basis": panel.price_basis,
            "suspended_days": int(panel.frame["suspended"].sum()),
            "dropped_columns": panel.dropped,
            "statement_days_filled": panel.filled,
            "statement_days_expired": panel.expired,
        }
    if not report.built:
        raise InputError("no stock had enough data to build features: "
                         + "; ".join(f"{c}: {w}" for c, w in report.skipped.items()))
    report.features = len(catalogue)
    write_manifest(paths.features_manifest, {
        "stage": "features",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": input_hashes(paths),
        "config_sha256": config_hash(config),
        "features_config_sha256": section_hash(config.features),
        "versions": package_versions(),
        "stocks": per_stock,
        "skipped": report.skipped,
        "features": list(catalogue.values()),
    })
    return report
