"""The market-wide stages: `stockpred universe NAME`, `stockpred features --universe NAME`,
`stockpred export factors` and `stockpred export qlib`.

A universe is a built-in name (`all`, `topN`) or one named in config.json's `universes`;
its daily membership is computed point in time from the stored bars. The factor panel of a
universe covers every stock that is ever a member, each stock's factors computed from its
own bars only, on a Dask cluster (compute section) or in this process. A nightly run
computes only what the stored bars added since the last one (``run_factors``).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from stockpred.config import Config
from stockpred.data import qlib_provider
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.store import RawStore, atomic_write_parquet
from stockpred.data.universe import membership, universe_from_name
from stockpred.errors import ComputeError, InputError, MissingInputError
from stockpred.features.factors import (
    FACTORS,
    REQUIRED_COLUMNS,
    factor_panel,
)
from stockpred.features.panel import PRICE_BASES
from stockpred.layout import Paths
from stockpred.manifest import package_versions, read_manifest, write_manifest
from stockpred.plots import drawn_from
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
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_manifest(paths.universe_manifest(name), {
        "stage": "universe", "name": name, "universe": spec.model_dump(mode="json"),
        "price_basis": basis, "rows": len(result.members),
        "stocks": int(result.members["ts_code"].nunique()),
        "days": int(result.members["trade_date"].nunique()),
        "excluded": {k: int(v) for k, v in excluded.items()}, "notes": list(result.notes),
        "finished_at": finished, "versions": package_versions()})
    figure = universe_size(result.members, result.exclusions,
                           paths.figures_dir("universe") / f"{name}.png",
                           drawn_from("stockpred universe", config, paths,
                                      paths.universe_members(name), finished),
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
    mode: str  # "full" or "incremental"
    written: list[str]  # the year files this run rewrote

    def summary(self) -> list[str]:
        span = f"years {self.years[0]}..{self.years[-1]}" if self.years else "no years"
        return [f"factors of {self.name}: {self.rows} rows, {self.stocks} stocks, "
                f"{len(FACTORS)} factors, {span}; {self.mode}, rewrote "
                f"{', '.join(self.written) or 'no year file'}"]


def _factor_definition() -> str:
    """A digest of what the factor values depend on besides the bars: the factor list and
    the code that computes them (a fix that keeps every name changes it too)."""
    from stockpred.features import factors, indicators

    text = json.dumps([vars(spec) for spec in FACTORS]) + inspect.getsource(factors) \
        + inspect.getsource(indicators)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bar_digests(bars: pd.DataFrame, through: str) -> dict[str, str]:
    """Per stock, ``rows:sum`` of its bars dated up to ``through``: the row count and the
    sum of the rows' hashes (of the columns the factors read), which changes when any of
    those bars is added, removed or revised (a forward adjustment re-basing the stock)."""
    upto = bars[(bars["trade_date"] <= through).to_numpy(dtype=bool)]
    hashed = pd.util.hash_pandas_object(upto[list(REQUIRED_COLUMNS)], index=False).to_numpy()
    which, codes = pd.factorize(upto["ts_code"])
    sums = np.zeros(len(codes), dtype=np.uint64)
    np.add.at(sums, which, hashed)  # wraps modulo 2**64, as a digest should
    counts = np.bincount(which, minlength=len(codes))
    return {str(c): f"{n}:{h:016x}" for c, n, h in zip(codes, counts, sums)}


@dataclass
class _FactorPlan:
    """What one run computes: ``whole``, the stocks whose factors are computed from their
    first bar; every other stock's rows after ``since`` (None: no other stock); ``years``,
    the year files that may change."""

    since: str | None
    whole: list[str]
    years: set[str]


def _plan(record: dict | None, basis: str, bars: pd.DataFrame, codes: list[str],
          folder: Path) -> _FactorPlan:
    """Incremental when factors.json records the same definition, price basis and package
    versions, every stock it recorded is still a member and every bar it was computed from
    is stored unchanged; else the full recompute. A stock whose earlier bars changed, or
    that is new, is computed from its first bar."""
    bar_years = set(bars["trade_date"].str[:4].unique())
    full = _FactorPlan(None, codes, bar_years | {p.stem for p in folder.glob("*.parquet")}
                       if folder.is_dir() else bar_years)
    if (record is None or "computed_through" not in record
            or record.get("definition") != _factor_definition()
            or record.get("price_basis") != basis
            or record.get("versions") != package_versions()
            or not set(record["bars"]) <= set(codes)
            or any(not (folder / f"{year}.parquet").exists() for year in record["years"])):
        return full
    since = record["computed_through"]
    now = _bar_digests(bars, since)
    whole = [c for c in codes if record["bars"].get(c) != now.get(c)]
    # rows after ``since`` (this run's, or a stopped run's) go wherever they lie
    years = {y for y in bar_years | set(record["years"]) if y >= since[:4]}
    if any(c in record["bars"] for c in whole):  # revised bars: its rows may be in any year
        years |= set(record["years"])
    years |= set(bars.loc[bars["ts_code"].isin(whole).to_numpy(), "trade_date"].str[:4])
    return _FactorPlan(since, whole, years)


def run_factors(config: Config, paths: Paths, name: str, progress: bool = True) -> FactorsReport:
    """The factor panel of every stock that is ever a member of ``name``, one file a year.

    Incremental when it can be (``_plan``): only the rows after the last computed day (and
    the stocks new to the panel or whose stored bars changed) are computed, bit-identical to
    a full recompute, and only the year files whose rows change are rewritten. The year
    files are written before factors.json, which records what they hold: a run stopped
    part way is taken up again from the previous factors.json."""
    codes = sorted(members(config, paths, name)["ts_code"].unique())
    basis, bars = market_bars(paths, codes)
    folder = paths.factors_dir(name)
    plan = _plan(read_manifest(paths.factors_manifest(name)), basis, bars, codes, folder)
    whole = bars["ts_code"].isin(plan.whole).to_numpy()
    # the other stocks with bars after ``since``, each with its whole history
    later = ~whole & bars["ts_code"].isin(
        bars.loc[(bars["trade_date"] > plan.since).to_numpy(), "ts_code"].unique()
    ).to_numpy() if plan.since else np.zeros(len(bars), dtype=bool)
    with compute_client(config) if whole.any() or later.any() else nullcontext() as client:
        # in parts, on the workers or here: the panel is never held whole
        from stockpred.stages.factor_parts import write_in_parts

        written = write_in_parts(client, bars[whole], bars[later], plan,
                                 {y: paths.factors_table(name, y) for y in plan.years},
                                 paths.factor_parts_dir(name), rewrite_year, progress)
    years = sorted(p.stem for p in folder.glob("*.parquet"))
    total = sum(pq.ParquetFile(folder / f"{year}.parquet").metadata.num_rows for year in years)
    through = bars["trade_date"].max() if len(bars) else None
    write_manifest(paths.factors_manifest(name), {
        "stage": "features --universe", "name": name, "price_basis": basis,
        "membership": read_manifest(paths.universe_manifest(name)),
        "rows": total, "stocks": len(codes), "years": years,
        "factors": [vars(spec) for spec in FACTORS], "definition": _factor_definition(),
        "computed_through": through, "bars": _bar_digests(bars, through) if through else {},
        # volatile for staleness: how a run got there does not change what the files hold
        "last_run": {"mode": "incremental" if plan.since else "full", "since": plan.since,
                     "from_first_bar": len(plan.whole), "written": written},
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions()})
    return FactorsReport(name, total, len(codes), years,
                         "incremental" if plan.since else "full", written)


def rewrite_year(path: Path, rows: pd.DataFrame, plan: _FactorPlan) -> bool:
    """Write one year file: the freshly computed ``rows`` of that year beside the stored rows
    the plan keeps, in (ts_code, trade_date) order. False when the file would not change."""
    old = pd.read_parquet(path) if plan.since and path.exists() else None
    if old is not None:
        kept = old[~(old["ts_code"].isin(plan.whole) | (old["trade_date"] > plan.since))
                   .to_numpy()]
        rows = pd.concat([kept, rows], ignore_index=True)
    rows = rows.sort_values(["ts_code", "trade_date"], kind="stable").reset_index(drop=True)
    if old is not None and old.equals(rows):
        return False
    if rows.empty:
        path.unlink(missing_ok=True)
    else:
        atomic_write_parquet(rows, path)
    return True


def read_parquet_files(files: list, start: str | None = None,
                       end: str | None = None) -> pd.DataFrame:
    """The files' rows (dated from ``start`` through ``end``) as one frame, each column
    converted on its own and its Arrow buffer freed as it goes: a market-scale panel is
    never held twice (pd.concat of per-file frames holds the parts and the whole at once)."""
    import pyarrow as pa

    dated = [("trade_date", ">=", start)] if start else []
    dated += [("trade_date", "<=", end)] if end else []
    table = pa.concat_tables([pq.read_table(f, filters=dated or None) for f in files])
    return table.to_pandas(split_blocks=True, self_destruct=True)


def factor_files(config: Config, paths: Paths, name: str) -> list[Path]:
    """The year files of universe ``name``'s stored factor panel, oldest first."""
    universe_spec(config, name)  # before the hint below names it
    files = sorted(paths.factors_dir(name).glob("*.parquet"))
    if not files:
        raise MissingInputError(f"no factors of universe {name!r} under "
                                f"{paths.factors_dir(name)}: run `stockpred features "
                                f"--universe {name}` first")
    return files


def factor_years(files: list[Path], start: str | None = None,
                 end: str | None = None) -> Iterator[pd.DataFrame]:
    """The rows of ``files`` (factor_files) dated ``start`` through ``end``, one year at a
    time in date order; the files of other years are never opened. A caller done with a
    year before it takes the next holds one year of raw factors at most."""
    for path in files:
        if (start is None or path.stem >= start[:4]) and (end is None or path.stem <= end[:4]):
            yield read_parquet_files([path], start, end)


def first_window_day(files: list[Path], member_rows: pd.DataFrame, day: str,
                     count: int) -> str:
    """The first of the last ``count`` days before ``day`` on which a member (of
    ``member_rows``) has stored factors in ``files`` (the first such day when there are
    fewer; ``day`` when none): where the trailing window of a refit on ``day``'s close
    starts, counted on the days a FactorPanel of those files holds. Reads only the key
    columns, year by year back from ``day``'s, and stops once it has counted enough."""
    keys = ["trade_date", "ts_code"]
    dates = member_rows["trade_date"].to_numpy(dtype=str)
    found = np.array([], dtype=str)
    for path in reversed([f for f in files if f.stem <= day[:4]]):
        year = pq.read_table(path, columns=keys, filters=[("trade_date", "<", day)]
                             ).to_pandas()
        mine = member_rows[(dates >= f"{path.stem}0101") & (dates <= f"{path.stem}1231")]
        held = year.astype(str).merge(mine[keys].astype(str), on=keys)["trade_date"]
        found = np.union1d(found, held.unique().astype(str))
        if len(found) >= count:
            return str(found[-count])
    return str(found[0]) if len(found) else day


def model_factors(config: Config, paths: Paths, name: str | None = None,
                  ts_codes: list[str] | None = None) -> pd.DataFrame:
    """trade_date, ts_code and every factor exactly as the models receive them, before the
    cross-sectional step: a universe's stored panel on its member days, or the factors of
    ``ts_codes`` computed from their stored bars."""
    if ts_codes:
        _, bars = market_bars(paths, ts_codes)
        found = set(bars["ts_code"])
        missing = [c for c in ts_codes if c not in found]
        if missing:
            raise InputError(f"no stored bars for {', '.join(missing)}: fetch them first")
        with compute_client(config) as client:
            return factor_panel(bars, client)
    panel = read_parquet_files(factor_files(config, paths, name))
    return panel.merge(members(config, paths, name), on=["trade_date", "ts_code"], how="inner")


def export_qlib(config: Config, paths: Paths, name: str, out: Path) -> list[str]:
    """The qlib provider of universe ``name`` at ``out`` (stockpred.data.qlib_provider),
    from the stored adjusted bars (market_bars' basis) and the stored membership: every
    stock ever a member with all its bars, on the market's trading days up to the
    membership's last day."""
    daily = members(config, paths, name)
    if daily.empty:
        raise InputError(f"universe {name!r} has no members: nothing to export")
    basis, bars = market_bars(paths)
    if basis == "daily":  # qlib takes $close for an adjusted price: dividends would be gaps
        raise MissingInputError(f"no adjusted bars (hfq_daily or qfq_daily) under "
                                f"{paths.raw_dir}: run `stockpred fetch` with adj_factor, "
                                f"from which it derives them")
    through = daily["trade_date"].max()
    known = (bars["trade_date"] <= through).to_numpy()
    calendar = np.sort(bars.loc[known, "trade_date"].unique().astype(str))
    own = bars[known & bars["ts_code"].isin(daily["ts_code"].unique()).to_numpy()]
    report = qlib_provider.write_provider(out, calendar, own, daily, name,
                                          {"price_basis": basis})
    lines = report.summary()
    if bars["trade_date"].max() > through:
        lines.append(f"note: the stored bars go on to {bars['trade_date'].max()}; run "
                     f"`stockpred universe {name}` to export those days too")
    return lines
