"""The fetch stage: tushare Pro data (or the shipped sample) into <data dir>/raw/, and its
manifest (the store, the client and the plan that fetch: stockpred.data)."""

from __future__ import annotations

import logging

from stockpred.config import Config, api_url
from stockpred.data.client import TushareClient
from stockpred.data.fetch import (
    Fetcher,
    FetchReport,
    check_store,
    choose_source,
    load_sample,
    write_fetch_manifest,
)
from stockpred.data.store import RawStore
from stockpred.data.universe import Universe
from stockpred.layout import Paths
from stockpred.stages.market import universe_spec

log = logging.getLogger("stockpred.data.fetch")


def run(config: Config, paths: Paths, progress: bool = True,
        universe: Universe | None = None, repair: bool = False) -> FetchReport:
    """Fetch what config.json asks for into <data dir>/raw and write its manifest.

    ``universe``: the stocks that universe can hold on any day of the period instead of
    fetch.universe (a fetch.universe that names a universe stands for it by default). For the market-wide kinds (`all`, `top_liquid`) that is every stock
    tushare lists, and every row a by-day call returns; for an index, every stock in its
    index_weight at any time in the period, not only the latest members.
    Call while holding the data lock: it first checks the store for damaged files (see
    check_store; ``repair`` moves them aside and asks for their rows again) and finishes
    a store migration a kill cut short.
    """
    if universe is None and isinstance(config.fetch.universe, str):
        universe = universe_spec(config, config.fetch.universe)
    store = RawStore(paths.raw_dir)
    repairs = check_store(paths, store, repair)
    source, token = choose_source(config, paths, store)
    for name in store.resume_migrations():
        log.info("finished moving %s to its time layout", name)
    if source == "sample":
        report = load_sample(config, store)
        report.repairs = repairs
        write_fetch_manifest(paths, store, config, report)
        return report
    fetcher = Fetcher(config, store, TushareClient(token, config.tushare, api_url(config)),
                      progress, universe)
    fetcher.report.repairs = repairs
    try:
        return fetcher.run()
    finally:
        # also after a stop part way, so the manifest describes what is stored
        if paths.raw_dir.is_dir():
            write_fetch_manifest(paths, store, config, fetcher.report)
