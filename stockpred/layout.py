"""The artefact catalogue: the only module that knows where a stage reads and writes.

Every artefact under data/ and project_results/ has one method here; stages and their
table (stockpred.stages) name artefacts by these methods, never by a path of their own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stockpred.config import Config
from stockpred.data.store import TMP_MARK

DATA_DIR_ENV = "STOCKPRED_DATA_DIR"
RESULTS_DIR_ENV = "STOCKPRED_RESULTS_DIR"


# the benchmark scripts (scripts/<name>.py) that record their figures for the README
BENCHMARKS = ("bench_market", "bench_cross_section", "bench_nightly", "bench_fetch",
              "bench_features", "bench_train", "bench_tune", "bench_generative")


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    results_dir: Path

    # -- fetch --------------------------------------------------------------------------------
    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def fetch_manifest(self) -> Path:
        return self.raw_dir / "manifest.json"

    # -- features -----------------------------------------------------------------------------
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

    # -- market-wide: universes and factor panels -----------------------------------------------
    def universe_members(self, name: str) -> Path:
        """trade_date, ts_code of universe ``name``, day by day."""
        return self.data_dir / "universe" / f"{name}.parquet"

    def universe_exclusions(self, name: str) -> Path:
        """trade_date, ts_code, reason: who was left out of ``name`` on each day, and why."""
        return self.data_dir / "universe" / f"{name}.excluded.parquet"

    def universe_manifest(self, name: str) -> Path:
        return self.data_dir / "universe" / f"{name}.json"

    def factors_dir(self, name: str) -> Path:
        """The factor panel of universe ``name``: one file per year, all its stocks."""
        return self.data_dir / "factors" / name

    def factors_table(self, name: str, year: str) -> Path:
        return self.factors_dir(name) / f"{year}.parquet"

    def factors_manifest(self, name: str) -> Path:
        return self.factors_dir(name) / "factors.json"

    def factor_parts_dir(self, name: str) -> Path:
        """Where the Dask workers of one `features --universe` run leave each partition's
        rows of each year before the year files are merged from them; removed when the run
        ends, swept as a temporary if the run was killed."""
        return self.data_dir / f"factors{TMP_MARK}{name}.{os.getpid()}"

    # -- the nightly signal: tomorrow's scores and portfolio --------------------------------
    @property
    def signals_dir(self) -> Path:
        return self.data_dir / "signals"

    def signal_table(self, day: str) -> Path:
        """trade_date, ts_code, score, rank, model: every member scored on day's close."""
        return self.signals_dir / f"{day}.parquet"

    def portfolio_file(self, day: str) -> Path:
        """The TopK-Dropout target built on day's close, to trade on the next day."""
        return self.signals_dir / f"{day}.portfolio.json"

    def portfolio_days(self) -> list[str]:
        """The days with a portfolio file, oldest first."""
        folder = self.signals_dir
        found = folder.glob("*.portfolio.json") if folder.is_dir() else []
        return sorted(p.name.removesuffix(".portfolio.json") for p in found)

    def signal_days(self) -> list[str]:
        """The days with a signal table, oldest first."""
        folder = self.signals_dir
        found = folder.glob("[0-9]*.parquet") if folder.is_dir() else []
        return sorted(p.stem for p in found if p.stem.isdigit())

    @property
    def signal_models_dir(self) -> Path:
        """One folder per model the signal fitted, named by its run id."""
        return self.signals_dir / "models"

    @property
    def signal_manifest(self) -> Path:
        """The last signal written: its day, files and model run."""
        return self.signals_dir / "signal.json"

    # -- latent codes of the VAE: features of their own, beside (not inside) the panel ---------
    @property
    def latent_dir(self) -> Path:
        return self.data_dir / "latent"

    def latent_table(self, ts_code: str) -> Path:
        """trade_date + vae_z0..vae_z{k-1} of one stock."""
        return self.latent_dir / f"{ts_code}.parquet"

    @property
    def latent_manifest(self) -> Path:
        return self.latent_dir / "vae.json"

    # -- minute-bar day codes: one row per trading day of a code with stored stk_mins ---------
    @property
    def minute_codes_dir(self) -> Path:
        return self.data_dir / "minutes"

    def minute_codes_table(self, ts_code: str) -> Path:
        """trade_date, bars, minute_z0..minute_z{k-1} of ``ts_code``'s days."""
        return self.minute_codes_dir / f"{ts_code}.parquet"

    @property
    def minute_codes_manifest(self) -> Path:
        return self.minute_codes_dir / "encoder.json"

    # -- news ---------------------------------------------------------------------------------
    @property
    def news_dir(self) -> Path:
        return self.data_dir / "news"

    @property
    def news_vectors(self) -> Path:
        return self.news_dir / "vectors.parquet"

    @property
    def news_vectors_manifest(self) -> Path:
        return self.news_dir / "vectors.json"

    @property
    def news_encoder(self) -> Path:
        """The fine-tuned news encoder (TextVectorization + network), a reusable checkpoint."""
        return self.news_dir / "encoder.keras"

    # -- runs ---------------------------------------------------------------------------------
    def model_runs(self, model: str) -> Path:
        """<data dir>/models/<model>/: one folder per `stockpred train <model>` run."""
        if model == "seq2seq":
            return self.news_dir / "seq2seq"
        return self.data_dir / "models" / model

    def latest_run(self, model: str) -> Path | None:
        """The newest finished run of ``model`` (one with its metrics.json)."""
        folder = self.model_runs(model)
        done = sorted(p.parent for p in folder.glob("*/metrics.json")) if folder.is_dir() else []
        return done[-1] if done else None

    @property
    def evaluation_runs(self) -> Path:
        return self.data_dir / "runs" / "evaluate"

    def experiments_table(self, ts_code: str) -> Path:
        """The LSTM experiments' forecasts of one stock (what `plot lstm` draws)."""
        return self.data_dir / "runs" / "experiments" / f"{ts_code}.parquet"

    def experiment_splits_table(self, ts_code: str) -> Path:
        """The feature LSTM under each train/validation split of one stock's pre-test rows."""
        return self.data_dir / "runs" / "experiments" / f"{ts_code}.splits.parquet"

    @property
    def tune_root(self) -> Path:
        return self.data_dir / "runs" / "tune"

    def tune_dir(self, model: str) -> Path:
        """Trial logs and the best configuration of each agent that tuned ``model``."""
        return self.tune_root / model

    def cross_section_tune_dir(self, universe: str, model: str) -> Path:
        """The same for the cross-sectional ``model`` tuned on ``universe``."""
        return self.tune_root / "cross_section" / universe / model

    # -- results ------------------------------------------------------------------------------
    @property
    def leaderboard(self) -> Path:
        return self.results_dir / "leaderboard.md"

    @property
    def leaderboard_json(self) -> Path:
        return self.results_dir / "leaderboard.json"

    @property
    def cross_section_leaderboard(self) -> Path:
        """The market-wide leaderboard (markdown; the .json beside it holds every figure)."""
        return self.figures_dir("cross_section") / "leaderboard.md"

    @property
    def cross_section_leaderboard_json(self) -> Path:
        return self.figures_dir("cross_section") / "leaderboard.json"

    @property
    def peer_comparison(self) -> Path:
        """stockpred against qlib's LightGBM/Alpha158 on the same rows, every split and
        protocol run so far (scripts/bench_vs_qlib.py)."""
        return self.figures_dir("peer") / "vs_qlib.json"

    def benchmark_results(self, script: str) -> Path:
        """The figures scripts/<script>.py printed last, for the README."""
        return self.figures_dir("benchmarks") / f"{script}.json"

    @property
    def readme(self) -> Path:
        """The README whose result blocks `stockpred readme` renders: beside the results
        folder, because its links name the figures by paths relative to it."""
        return self.results_dir.parent / "README.md"

    def report_page(self, run_id: str) -> Path:
        """The self-contained HTML report of evaluate run ``run_id`` (`stockpred report`)."""
        return self.results_dir / "report" / run_id / "index.html"

    @property
    def report_index(self) -> Path:
        """The page that lists every evaluate run and links its report."""
        return self.results_dir / "report" / "index.html"

    @property
    def live_track(self) -> Path:
        """The paper track record of the nightly signals: one row per signal day whose
        label and paper-portfolio day have closed (`stockpred live`)."""
        return self.figures_dir("live") / "track.parquet"

    @property
    def live_figure(self) -> Path:
        return self.figures_dir("live") / "track.png"

    @property
    def live_manifest(self) -> Path:
        return self.figures_dir("live") / "track.json"

    def figures_dir(self, family: str) -> Path:
        """<results dir>/<family>/: one figure family (features, lstm, tuning, ...)."""
        return self.results_dir / family

    @property
    def feature_figures_dir(self) -> Path:
        return self.figures_dir("feature_engineering")

    @property
    def model_figures_dir(self) -> Path:
        return self.figures_dir("lstm")

    # -- bookkeeping --------------------------------------------------------------------------
    def stage_record(self, stage: str) -> Path:
        """What a stage last ran on (the fingerprint `refresh` compares)."""
        return self.data_dir / "stages" / f"{stage}.json"

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
        return config.resolved(configured)

    return Paths(data_dir=pick(data_dir, DATA_DIR_ENV, config.data_dir),
                 results_dir=pick(results_dir, RESULTS_DIR_ENV, config.results_dir))


@dataclass(frozen=True)
class RunFolder:
    """A run being written: files go to ``writing``; ``final`` is where they are once the
    run has finished."""

    writing: Path
    final: Path

    @property
    def run_id(self) -> str:
        return self.final.name


@contextmanager
def new_run_folder(runs: Path, quick: bool = False) -> Iterator[RunFolder]:
    """A fresh run folder under ``runs``, named by the time (-quick for smoke runs; -2, -3
    on a same-second clash). Everything is written into a temporary twin that is renamed
    into place only when the block ends without error, so a killed or failed run leaves no
    half-written run folder behind (the next run under the data lock deletes the twin)."""
    base = datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if quick else "")
    runs.mkdir(parents=True, exist_ok=True)
    final, n = runs / base, 1
    while final.exists():
        n += 1
        final = runs / f"{base}-{n}"
    staging = runs / f"{final.name}{TMP_MARK}{os.getpid()}"
    staging.mkdir()
    try:
        yield RunFolder(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(staging, final)
