"""The files every fitted run leaves in its folder, written one way for every stage."""

from __future__ import annotations

import json

import pandas as pd

from stockpred.config import Config, config_as_json
from stockpred.data.store import atomic_write_parquet, atomic_write_text
from stockpred.layout import Paths, RunFolder
from stockpred.manifest import package_versions, upstream


def write_run(run: RunFolder, config: Config, paths: Paths, metrics: dict,
              predictions: pd.DataFrame | None = None) -> None:
    """config.json (the settings used), predictions.parquet and metrics.json (with the
    upstream features and selection and the package versions) into ``run``."""
    if predictions is not None:
        atomic_write_parquet(predictions, run.writing / "predictions.parquet")
    atomic_write_text(run.writing / "config.json", config_as_json(config))
    record = {**metrics, "run_id": run.run_id, "upstream": upstream(paths),
              "versions": package_versions()}
    atomic_write_text(run.writing / "metrics.json",
                      json.dumps(record, indent=1, default=str) + "\n")
