"""Where every stage reads and writes: the data/ and project_results/ trees, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stockpred.config import Config

DATA_DIR_ENV = "STOCKPRED_DATA_DIR"
RESULTS_DIR_ENV = "STOCKPRED_RESULTS_DIR"


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    results_dir: Path

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    def raw_table(self, api_name: str) -> Path:
        return self.raw_dir / api_name

    @property
    def fetch_manifest(self) -> Path:
        return self.raw_dir / "manifest.json"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    def features_table(self, ts_code: str) -> Path:
        return self.features_dir / f"{ts_code}.parquet"

    @property
    def features_manifest(self) -> Path:
        return self.features_dir / "features.json"

    @property
    def selected_features(self) -> Path:
        return self.features_dir / "selected.json"

    @property
    def feature_figures_dir(self) -> Path:
        return self.results_dir / "feature_engineering"

    def model_runs(self, model: str) -> Path:
        return self.data_dir / "models" / model

    @property
    def evaluation_runs(self) -> Path:
        return self.data_dir / "runs" / "evaluate"

    @property
    def leaderboard(self) -> Path:
        return self.results_dir / "leaderboard.md"

    @property
    def model_figures_dir(self) -> Path:
        return self.results_dir / "lstm"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / ".stockpred.lock"


def resolve_paths(config: Config, data_dir: str | Path | None = None,
                  results_dir: str | Path | None = None) -> Paths:
    """Flag beats environment beats config.json; relative config paths follow the config file."""

    def pick(flag, env_name, configured):
        chosen = flag or os.environ.get(env_name)
        if chosen:
            return Path(chosen).expanduser().absolute()
        return (config.base_dir / Path(configured).expanduser()).absolute()

    return Paths(data_dir=pick(data_dir, DATA_DIR_ENV, config.data_dir),
                 results_dir=pick(results_dir, RESULTS_DIR_ENV, config.results_dir))
