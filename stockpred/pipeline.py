"""`stockpred refresh`: the nightly job. Fetch what is new, then rerun the later stages."""

from __future__ import annotations

from stockpred.config import Config
from stockpred.data import fetch
from stockpred.layout import Paths


def refresh(config: Config, paths: Paths, progress: bool = False) -> list[str]:
    """Incremental fetch of the configured universe, then each configured later stage.

    No later stage exists in this version; each configured one is reported as skipped.
    """
    report = fetch.run(config, paths, progress=progress)
    return report.summary() + [f"{stage}: skipped, this version has no `stockpred {stage}` yet"
                               for stage in config.refresh.stages]
