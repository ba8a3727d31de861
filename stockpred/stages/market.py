"""The market-wide stages: `stockpred universe NAME`, `stockpred features --universe NAME`
and `stockpred export factors`.

A universe is a built-in name (`all`, `topN`) or one named in config.json's `universes`;
its daily membership is computed point in time from the stored bars. The factor panel of a
universe covers every stock that is ever a member, each stock's factors computed from its
own bars only, on a Dask cluster (compute section) or in this process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from stockpred.config import Config
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore, atomic_write_parquet
from stockpred.data.universe import membership, universe_from_name
from stockpred.errors import ComputeError, InputError, MissingInputError
from stockpred.features.factors import FACTORS, factor_panel
from stockpred.features.panel import PRICE_BASES
from stockpred.layout import Paths
from stockpred.manifest import package_versions, read_manifest, write_manifest
from stockpred.plots.universe import universe_size

# a scheduler that does not answer within this is down or the address is wrong
SCHEDULER_TIMEOUT_S = 5
BAR_COLUMNS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol", "amount"]


def universe_spec(config: Config, name: str):
    """The universe ``name`` stands for: config.json's `universes`, else a built-in name."""
    if name in config.universes:
        return config.universes[name]
    try:
        return universe_from_name(name)
    except ValueError as exc:
        named = f"; config.json names {', '.join(config.universes)}" if config.universes else ""
        raise InputError(f"{exc}{named}") from None


def market_bars(paths: Paths, ts_codes: list[str] | None = None) -> tuple[str, pd.DataFrame]:
    """(price basis, bars) of every stored stock (or of ``ts_codes``): the first stored of
    hfq_daily, qfq_daily and daily. The factors are scale-free, so any constant per-stock
    adjustment gives the same values; unadjusted bars carry dividend gaps, hence last."""
    store = RawStore(paths.raw_dir)
    for basis in PRICE_BASES:
        if store.has(basis):
            bars = store.read(basis, ts_codes, columns=BAR_COLUMNS)
            if ts_codes and bars.empty:
                continue
            # plain text keys, as every factor file holds them, whatever the store's dtype
            return basis, bars.astype({"ts_code": str, "trade_date": str})
    raise MissingInputError(f"no daily bars under {paths.raw_dir}: run `stockpred fetch` first")


def _optional(store: RawStore, name: str) -> pd.DataFrame | None:
    """A table the rules use when it is stored (namechange is not in the catalogue yet)."""
    return store.read(name) if name in CATALOGUE and store.has(name) else None


@dataclass
class UniverseReport:
    name: str
    days: int
    mean_members: float
    excluded: dict[str, int]
    notes: tuple[str, ...]
    figure: object

    def summary(self) -> list[str]:
        reasons = ", ".join(f"{k} {v}" for k, v in self.excluded.items()) or "none"
        return [f"universe {self.name}: {self.days} days, {self.mean_members:.0f} members a "
                f"day on average; exclusions (stock-days) {reasons}",
                *[f"note: {n}" for n in self.notes], f"figure: {self.figure}"]


def run_universe(config: Config, paths: Paths, name: str) -> UniverseReport:
    """Write the daily membership of universe ``name`` and a figure of its size."""
    spec = universe_spec(config, name)
    store = RawStore(paths.raw_dir)
    basis, bars = market_bars(paths)
    result = membership(spec, bars, stock_basic=_optional(store, "stock_basic"),
                        namechange=_optional(store, "namechange"),
                        index_weight=_optional(store, "index_weight"))
    atomic_write_parquet(result.members, paths.universe_members(name))
    atomic_write_parquet(result.exclusions, paths.universe_exclusions(name))
    excluded = result.exclusions["reason"].value_counts().to_dict()
    write_manifest(paths.universe_manifest(name), {
        "stage": "universe", "name": name, "universe": spec.model_dump(mode="json"),
        "price_basis": basis, "rows": len(result.members),
        "stocks": int(result.members["ts_code"].nunique()),
        "days": int(result.members["trade_date"].nunique()),
        "excluded": {k: int(v) for k, v in excluded.items()}, "notes": list(result.notes),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions()})
    figure = universe_size(result.members, result.exclusions,
                           paths.figures_dir("universe") / f"{name}.png",
                           title=f"universe {name}: members per day")
    per_day = result.members.groupby("trade_date").size()
    return UniverseReport(name, len(per_day), float(per_day.mean()) if len(per_day) else 0.0,
                          {k: int(v) for k, v in excluded.items()}, result.notes, figure)


def members(config: Config, paths: Paths, name: str) -> pd.DataFrame:
    """The stored daily membership of universe ``name``; an unknown name is refused first,
    so that the hint never names a `stockpred universe` run that would refuse it too."""
    universe_spec(config, name)
    path = paths.universe_members(name)
    if not path.exists():
        raise MissingInputError(f"no membership of universe {name!r} at {path}: run "
                                f"`stockpred universe {name}` first")
    return pd.read_parquet(path)


def check_scheduler(address: str) -> None:
    """Raise unless a Dask scheduler answers at ``address`` within SCHEDULER_TIMEOUT_S: a
    wrong address stops a stage before it writes anything, instead of failing when the
    work is under way, after distributed's connect retries (90 s for a closed port)."""
    from distributed.comm import connect

    async def knock() -> None:
        comm = await connect(address, timeout=SCHEDULER_TIMEOUT_S)
        await comm.close()

    try:
        asyncio.run(knock())
    except ValueError as exc:
        raise InputError(f"scheduler {address!r} is not a Dask address ({exc}); give one "
                         f"like tcp://10.0.0.5:8786") from None
    except OSError as exc:
        raise ComputeError(f"no Dask scheduler answers at {address}: {exc}") from None


@contextmanager
def compute_client(config: Config) -> Iterator[object | None]:
    """A Dask client for the compute section: the named scheduler, else a LocalCluster on
    127.0.0.1 (one single-threaded worker process per core); None when workers is 0."""
    settings = config.compute
    if settings.scheduler is None and settings.workers == 0:
        yield None
        return
    from distributed import Client, LocalCluster

    if settings.scheduler is not None:
        check_scheduler(settings.scheduler)
        with Client(settings.scheduler, timeout=SCHEDULER_TIMEOUT_S) as client:
            yield client
        return
    with LocalCluster(n_workers=settings.workers or os.cpu_count() or 1, threads_per_worker=1,
                      host="127.0.0.1", dashboard_address=None, processes=True,
                      memory_limit=settings.memory_limit) as cluster, Client(cluster) as client:
        yield client


@dataclass
class FactorsReport:
    name: str
    rows: int
    stocks: int
    years: list[str]

    def summary(self) -> list[str]:
        return [f"factors of {self.name}: {self.rows} rows, {self.stocks} stocks, "
                f"{len(FACTORS)} factors, years {self.years[0]}..{self.years[-1]}"]


def run_factors(config: Config, paths: Paths, name: str, progress: bool = True) -> FactorsReport:
    """The factor panel of every stock that is ever a member of ``name``, one file a year."""
    codes = sorted(members(config, paths, name)["ts_code"].unique())
    basis, bars = market_bars(paths, codes)
    with compute_client(config) as client:
        panel = factor_panel(bars, client, progress=progress)
    years = sorted(panel["trade_date"].str[:4].unique())
    folder = paths.factors_dir(name)
    for stale in folder.glob("*.parquet") if folder.is_dir() else []:
        if stale.stem not in years:
            stale.unlink()
    for year in years:
        rows = panel[panel["trade_date"].str[:4] == year]
        atomic_write_parquet(rows.sort_values(["ts_code", "trade_date"], kind="stable"),
                             paths.factors_table(name, year))
    write_manifest(paths.factors_manifest(name), {
        "stage": "features --universe", "name": name, "price_basis": basis,
        "membership": read_manifest(paths.universe_manifest(name)),
        "rows": len(panel), "stocks": len(codes), "years": years,
        "factors": [vars(spec) for spec in FACTORS],
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions()})
    return FactorsReport(name, len(panel), len(codes), years)


def read_parquet_files(files: list) -> pd.DataFrame:
    """The files' rows as one frame, each column converted on its own and its Arrow buffer
    freed as it goes: a market-scale panel is never held twice (pd.concat of per-file
    frames holds the parts and the whole at once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f) for f in files])
    return table.to_pandas(split_blocks=True, self_destruct=True)


def model_factors(config: Config, paths: Paths, name: str | None = None,
                  ts_codes: list[str] | None = None,
                  member_days_only: bool = True) -> pd.DataFrame:
    """trade_date, ts_code and every factor exactly as the models receive them, before the
    cross-sectional step: a universe's stored panel on its member days (every stored day of
    its stocks with ``member_days_only=False``, for a caller that keeps the member days by
    itself), or the factors of ``ts_codes`` computed from their stored bars."""
    if ts_codes:
        _, bars = market_bars(paths, ts_codes)
        found = set(bars["ts_code"])
        missing = [c for c in ts_codes if c not in found]
        if missing:
            raise InputError(f"no stored bars for {', '.join(missing)}: fetch them first")
        with compute_client(config) as client:
            return factor_panel(bars, client)
    universe_spec(config, name)  # before the hint below names it
    files = sorted(paths.factors_dir(name).glob("*.parquet"))
    if not files:
        raise MissingInputError(f"no factors of universe {name!r} under "
                                f"{paths.factors_dir(name)}: run `stockpred features "
                                f"--universe {name}` first")
    panel = read_parquet_files(files)
    if not member_days_only:  # the caller keeps the member days by their keys
        return panel
    return panel.merge(members(config, paths, name), on=["trade_date", "ts_code"], how="inner")
