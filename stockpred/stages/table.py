"""The stage table: every `stockpred` command, declared once, and the one staleness rule.

Each stage names its command and flags (stockpred.stages.flags), the artefacts it reads
and writes (keys of ``ARTEFACTS``, each a manifest in the catalogue), the settings it
depends on (settings classes, each naming its own config section, and the models it runs,
each naming theirs) and its run function. The CLI is generated from this table; `run` and
`refresh` walk its pipeline stages in order. A stage is stale when a section it reads, an
input it reads or the package version changed since it last finished; nothing else.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stockpred import __version__
from stockpred.config import (
    Config,
    CrossSectionSettings,
    EvaluationSettings,
    ExperimentSettings,
    FeatureSettings,
    FetchSettings,
    ImportanceSettings,
    PlotSettings,
    QlibSettings,
    RefreshSettings,
    TushareSettings,
    quick_config,
    with_overrides,
)
from stockpred.errors import InputError, MissingInputError
from stockpred.generative.settings import (
    MinuteEncoderSettings,
    VAESettings,
    WGANSettings,
)
from stockpred.layout import BENCHMARKS, Paths
from stockpred.manifest import read_manifest, write_manifest
from stockpred.models.names import CROSS_SECTION, MODELS, STOCK, names_in
from stockpred.news.settings import NewsSeq2SeqSettings, NewsSettings
from stockpred.stages import flags as F
from stockpred.tuning.spaces import tunable

log = logging.getLogger(__name__)

# artefact key -> its manifest in the catalogue
ARTEFACTS: dict[str, Callable[[Paths, Config], Path]] = {
    "raw": lambda p, c: p.fetch_manifest,
    "features": lambda p, c: p.features_manifest,
    "selection": lambda p, c: p.selected_features,
    "train": lambda p, c: p.stage_record("train"),
    "latent": lambda p, c: p.latent_manifest,
    "minute_codes": lambda p, c: p.minute_codes_manifest,
    "news_vectors": lambda p, c: p.news_vectors_manifest,
    "wgan": lambda p, c: p.stage_record("wgan"),
    "seq2seq": lambda p, c: p.stage_record("seq2seq"),
    "experiments": lambda p, c: p.stage_record("experiments"),
    "tuning": lambda p, c: p.stage_record("tune"),
    "leaderboard": lambda p, c: p.leaderboard_json,
    "universe": lambda p, c: p.universe_manifest(c.cross_section.universe),
    "factors": lambda p, c: p.factors_manifest(c.cross_section.universe),
    "cross_section_tuning": lambda p, c: p.stage_record("tune-cross-section"),
    "signal": lambda p, c: p.signal_manifest,
    "live": lambda p, c: p.live_manifest,
    "cross_section_leaderboard": lambda p, c: p.cross_section_leaderboard_json,
    "backtest": lambda p, c: p.stage_record("backtest"),
    "figures": lambda p, c: p.stage_record("plot"),
    "report": lambda p, c: p.report_index,
    "readme": lambda p, c: p.readme,
    # written by the benchmark scripts, not by a stage
    "peer": lambda p, c: p.peer_comparison,
    **{script: lambda p, c, script=script: p.benchmark_results(script) for script in BENCHMARKS},
}
EXTERNAL = ("peer", *BENCHMARKS)
# what changes with every run although the content does not; a stage depends on config
# through its own sections, never through the config hash an upstream manifest records
_VOLATILE = {"finished_at", "started_at", "last_run", "wall_s", "run_dir", "run_id",
             "config_sha256"}


@dataclass
class Job:
    """One run of a stage: the config with the flags' overrides, the paths, whether to draw
    progress bars, the run arguments (flags without a config key) and what a check that
    fails prints instead of an error (exit 1)."""

    config: Config
    paths: Paths
    progress: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def arg(self, name: str, default=None):
        value = self.args.get(name)
        return default if value is None else value

    @property
    def quick_config(self) -> Config:
        return quick_config(self.config) if self.arg("quick") else self.config


Owner = type | str | Callable[[Config], tuple[str, ...]]


@dataclass(frozen=True)
class Stage:
    name: str
    command: str  # the CLI words: "features", "export factors"
    doc: str  # its --help; the first line is the summary
    run: Callable[[Job], list[str]]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    # settings classes (each names its section), a dotted key no class owns, or a function
    # of the config naming the sections of the models it runs
    settings: tuple[Owner, ...] = ()
    flags: tuple[F.Flag, ...] = ()
    # (flag, value) that picks this stage among its command's stages; True: the flag given
    when: tuple[str, Any] | None = None
    pipeline: bool = False  # `run` and `refresh` may run it (refresh.stages)
    # refresh notes a missing input and goes on instead of failing: the stage's output is
    # optional (figures; codes that only `<model>+minutes` rows read, which then say so)
    optional: bool = False
    session: bool = True  # holds the data-directory lock and logs
    # whether a run is the stage's own result, recorded for staleness (default: no run
    # argument was given on the command line)
    records: Callable[[Job, set[str]], bool] | None = None
    epilog: str = ""
    exclusive: tuple[str, ...] = ()  # flags of which one run may give at most one

    def sections(self, config: Config) -> tuple[str, ...]:
        found: list[str] = []
        for owner in self.settings:
            if isinstance(owner, str):
                found.append(owner)
            elif isinstance(owner, type):
                found.append(owner.section)
            else:
                found += owner(config)
        return tuple(dict.fromkeys(found))

    def is_own_result(self, job: Job, given: set[str]) -> bool:
        if self.records is not None:
            return self.records(job, given)
        return not any(f.name in given for f in self.flags if f.config is None)


def _model_sections(names: list[str]) -> tuple[str, ...]:
    from stockpred.models.names import model_class, split_model_name

    return tuple(s for n in names for s in model_class(split_model_name(n)[0])
                 .config_sections())


def _cross_sectional_sections(config: Config) -> tuple[str, ...]:
    return _model_sections(config.cross_section.models)


# -- run functions: each turns a Job into its stage's call and summary lines ----------------

def _fetch(job: Job) -> list[str]:
    from stockpred.stages import fetch

    spec = None
    configured = job.config.fetch.universe
    # the universe this fetch stands for: the flag's, else a name in fetch.universe
    name = job.arg("universe") or (configured if isinstance(configured, str) else None)
    if job.arg("universe") is not None:
        from stockpred.stages import market
        spec = market.universe_spec(job.config, job.arg("universe"))
    report = fetch.run(job.config, job.paths, progress=job.progress, universe=spec,
                       repair=job.arg("repair", False))
    lines = []
    if report.source == "sample":
        reason = "as asked" if job.config.fetch.source == "sample" else "no tushare token found"
        lines.append(f"Loaded the shipped sample ({reason}): real SSE 50 data up to 2018-12-28, "
                     f"into {job.paths.raw_dir}.")
        if name is not None:
            lines.append(f"note: the sample holds the SSE 50 only, not universe "
                         f"{name}'s market: set TUSHARE_TOKEN to fetch it")
    return lines + report.summary()


def _features(job: Job) -> list[str]:
    from stockpred.stages import features

    return features.run(job.config, job.paths, job.arg("ts_codes"), progress=job.progress).summary()


def _factors(job: Job) -> list[str]:
    from stockpred.stages import market

    name = job.config.cross_section.universe
    if job.config.compute.scheduler is not None:
        # the factors run on it right after: one that does not answer stops the stage
        # before the membership is written
        market.check_scheduler(job.config.compute.scheduler)
    return [*market.run_universe(job.config, job.paths, name).summary(),
            *market.run_factors(job.config, job.paths, name, progress=job.progress).summary()]


def _universe(job: Job) -> list[str]:
    from stockpred.stages import market

    return market.run_universe(job.config, job.paths, job.config.cross_section.universe).summary()


def _export_factors(job: Job) -> list[str]:
    from stockpred.data.store import atomic_write_parquet
    from stockpred.stages import market

    universe, codes = job.arg("universe"), job.arg("ts_codes")
    if (universe is None) == (codes is None):
        raise InputError("give one of --universe NAME or --ts-code A,B")
    target = Path(job.arg("out")).expanduser().absolute()
    frame = market.model_factors(job.config, job.paths, universe, codes)
    atomic_write_parquet(frame, target)
    return [f"wrote {len(frame)} rows x {frame.shape[1] - 2} factors to {target}"]


def _export_qlib(job: Job) -> list[str]:
    from stockpred.stages import market

    if job.config.qlib.dir is None:
        raise InputError("give --out DIR, the qlib provider folder (or set qlib.dir in "
                         "config.json)")
    out = job.config.resolved(job.config.qlib.dir)
    return market.export_qlib(job.config, job.paths, job.config.cross_section.universe, out)


def _importance(job: Job) -> list[str]:
    from stockpred.stages import importance

    return importance.run(job.config, job.paths, job.arg("ts_codes")).summary()


def _embed_news(job: Job) -> list[str]:
    from stockpred.stages import embed_news

    return embed_news.run(job.config, job.paths, quick=job.arg("quick", False)).summary()


# `train NAME` for a name that is not a registered forecaster: a stage of its own
TRAIN_STAGES = ("vae", "minutes", "wgan", "seq2seq", "experiments")


def _train(job: Job) -> list[str]:
    from stockpred.models.names import unknown_model
    from stockpred.stages import train

    model = job.arg("model", job.config.refresh.train_model).lower()
    if model not in names_in(STOCK):
        raise unknown_model(model, [*names_in(STOCK), *TRAIN_STAGES])
    return train.run(job.config, job.paths, model, job.arg("ts_codes"), job.arg("quick", False),
                     progress=job.progress).summary()


def _trains_the_refresh_model(job: Job, given: set[str]) -> bool:
    return (job.arg("model", job.config.refresh.train_model).lower()
            == job.config.refresh.train_model and not given & {"ts_codes", "quick"})


def _generative(function: str, stocks: bool = True) -> Callable[[Job], list[str]]:
    def run(job: Job) -> list[str]:
        from stockpred.stages import generative

        chosen = (job.arg("ts_codes"),) if stocks else ()
        return getattr(generative, function)(job.config, job.paths, *chosen,
                                             quick=job.arg("quick", False),
                                             progress=job.progress).summary()
    return run


def _seq2seq(job: Job) -> list[str]:
    from stockpred.stages import seq2seq

    return seq2seq.run(job.config, job.paths, quick=job.arg("quick", False),
                       progress=job.progress).summary()


def _experiments(job: Job) -> list[str]:
    from stockpred.stages import experiments

    table = experiments.run(job.config, job.paths, job.arg("ts_codes"), job.arg("quick", False))
    return [f"experiments: {table}"]


def _evaluate(job: Job) -> list[str]:
    from stockpred.stages import evaluate

    return evaluate.run(job.config, job.paths, None, job.arg("models"), job.arg("quick", False),
                        progress=job.progress).summary()


def _signal(job: Job) -> list[str]:
    from stockpred.stages import signal

    return signal.run(job.config, job.paths, progress=job.progress)


def _live(job: Job) -> list[str]:
    from stockpred.stages import live

    return live.run(job.config, job.paths, tail=job.arg("tail", 10))


def _evaluate_cross_section(job: Job) -> list[str]:
    from stockpred.stages import cross_section, market

    if job.config.compute.scheduler is not None:
        # the on_dask learners fit on it hours into the walk: one that does not answer
        # stops the stage before it reads or writes anything
        market.check_scheduler(job.config.compute.scheduler)
    return cross_section.run(job.config, job.paths, quick=job.arg("quick", False),
                             progress=job.progress).summary()


def _backtest(job: Job) -> list[str]:
    from stockpred.stages import cross_section

    return cross_section.rerun_backtest(job.config, job.paths, job.arg("run_id"),
                                        job.arg("model"))


def _tune(job: Job) -> list[str]:
    from stockpred.stages import tune

    model = job.arg("model", "lstm")
    if MODELS.get(model, (STOCK,))[0] == CROSS_SECTION:
        return _tune_cross_section(job)
    return tune.run(job.config, job.paths, model, job.arg("agent", "dqn"),
                    job.arg("budget", 20), job.arg("ts_codes"), job.arg("quick", False)
                    ).summary()


def _tune_cross_section(job: Job) -> list[str]:
    from stockpred.stages import tune

    return tune.run_cross_section(job.config, job.paths, job.config.cross_section.universe,
                                    job.arg("model", "lstm"), job.arg("agent", "dqn"),
                                    job.arg("budget", 20), job.arg("quick", False)).summary()


def _plot(job: Job) -> list[str]:
    from stockpred.stages import plot

    family = job.arg("family")
    if family is None:
        return plot.run_all(job.config, job.paths)
    options = {"ts_code": job.arg("ts_code")} if family in ("features", "lstm") else {}
    if family == "tuning":
        options = {"model": job.arg("model")}
    return plot.draw(family, job.config, job.paths, **options)


def _report(job: Job) -> list[str]:
    from stockpred.stages import report

    return report.run(job.config, job.paths, job.arg("run_id"))


def _readme(job: Job) -> list[str]:
    from stockpred.stages import readme

    if job.arg("check"):
        job.failures = readme.check(job.paths)
        return [] if job.failures else [
            f"{job.paths.readme}: every result block matches its result file and every "
            f"figure was drawn from a full run no older than its result"]
    return readme.run(job.paths)


def _refresh(job: Job) -> list[str]:
    return refresh(job.config, job.paths, progress=job.progress, universe=job.arg("universe"))


def markdown(config: Config) -> str:
    """The table as doc/architecture.md shows it (a test keeps the two equal)."""
    rows = ["| stage | command | reads | writes | config sections (default config) | in run |",
            "|---|---|---|---|---|---|"]
    for s in STAGES:
        rows.append(f"| `{s.name}` | `stockpred {usage(s)}` | {', '.join(s.reads) or '-'} | "
                    f"{', '.join(s.writes) or '-'} | {', '.join(s.sections(config)) or '-'} | "
                    f"{'yes' if s.pipeline else '-'} |")
    return "\n".join(rows) + "\n"


def _stages(job: Job) -> list[str]:
    if job.arg("markdown"):
        return [markdown(job.config).rstrip("\n")]
    lines = [f"{'stage':24s} {'command':26s} {'stale':6s} reads -> writes; sections"]
    for stage in STAGES:
        state = "-" if stage.records is _never else (
            "yes" if is_stale(stage, job.config, job.paths) else "no")
        lines.append(f"{stage.name:24s} {usage(stage):26s} {state:6s} "
                     f"{', '.join(stage.reads) or '-'} -> {', '.join(stage.writes) or '-'}; "
                     f"{', '.join(stage.sections(job.config)) or '-'}")
    return lines


def _show(job: Job) -> list[str]:
    from stockpred.data.catalogue import CATALOGUE
    from stockpred.data.store import RawStore

    table = job.arg("table")
    if table not in CATALOGUE:
        close = difflib.get_close_matches(table, list(CATALOGUE), n=2, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise InputError(f"unknown table {table!r}; {hint}the tables are listed in "
                         f"doc/interfaces.md")
    store = RawStore(job.paths.raw_dir)
    frame = (store.quarantined(table) if job.arg("quarantined") else
             store.read(table, job.arg("ts_codes"), job.arg("start"), job.arg("end")))
    asked = [*(job.arg("ts_codes") or []), *(f"{flag} {job.arg(flag)}" for flag in
                                              ("start", "end") if job.arg(flag))]
    if frame.empty and asked and not job.arg("quarantined"):
        raise InputError(f"no stored rows of {table} for {', '.join(asked)}")
    tail = job.arg("tail", 10)
    shown = frame.tail(tail) if tail else frame
    return [shown.to_string(index=False, max_colwidth=40), f"({len(frame)} rows)"]


def _never(job: Job, given: set[str]) -> bool:
    return False


def _unless_quick(job: Job, given: set[str]) -> bool:
    return "quick" not in given


def usage(stage: Stage) -> str:
    if stage.when is None:
        return stage.command
    flag, value = stage.when
    return f"{stage.command} {value}" if value is not True else f"{stage.command} --" + \
        flag.replace("_", "-")


_MODELS_HELP = ("MODEL is one of " + ", ".join([*names_in(STOCK), *TRAIN_STAGES]) + " (any case).")
_RESULTS = (F.Flag(("--check",), "Change nothing; exit 1 with one line naming each block that "
                   "differs from what its result file renders and each figure shown without "
                   "its provenance, from a quick run or from a source older than the result "
                   "beside it.", options=dict(is_flag=True)),)

STAGES: tuple[Stage, ...] = (
    Stage("fetch", "fetch",
          """Fetch tushare Pro data into <data dir>/raw/ (incremental, idempotent).

    The token comes from TUSHARE_TOKEN or ~/.config/stockpred/config.json
    ({"tushare_token": "..."}). Without one, the real sample data shipped with stockpred
    (SSE 50, 2007-2018) is loaded instead. Only what is not stored yet is asked for; a
    re-run adds nothing. A store fetched from tushare stays on tushare: without a token it
    is an error, never the sample. Each run first checks the stored files; a damaged one
    stops it (exit 1) until `stockpred fetch --repair`. Exit codes: 2 bad input, 3 stopped
    by tushare's daily quota (rerun tomorrow), 4 another run holds the data directory.""",
          _fetch, writes=("raw",), settings=(FetchSettings, TushareSettings), flags=F.FETCH,
          exclusive=("universe", "ts_codes")),
    Stage("features", "features", """Build the point-in-time daily feature table of each stock.

    Writes <data dir>/features/<ts_code>.parquet (one row per trading day) and
    features.json, which lists every feature with its group, source and parameters. Every
    value for day t uses only data available at the close of day t: indicators in Chinese
    charting conventions, causal Fourier and ARIMA(5,1,0) features over trailing windows,
    statements from their announcement date (doc/features.md). With --universe NAME: the
    universe's daily membership, then the scale-free factors (doc/factors.md) of every
    stock ever in it, one file a year under <data dir>/factors/NAME/, on Dask.""",
          _features, reads=("raw",), writes=("features",), settings=(FeatureSettings,),
          flags=(F.Flag(("--ts-code", "ts_codes"), "Stocks to build (default: the stocks of "
                        "the last fetch).", parse=F.ts_codes, options=dict(metavar="A,B")),),
          pipeline=True),
    Stage("importance", "importance",
          """Rank features with XGBoost into <data dir>/features/selected.json.

    Pools the stocks' traded days up to importance.train_end (default 20161231), so the
    selection never sees the later test period; the last 20% of those days validate.
    Features that are near-copies of the price (|rho| with close above
    importance.max_abs_corr_with_close) are set aside before ranking. Prints the
    validation error next to a naive forecast's.""",
          _importance, reads=("features",), writes=("selection",),
          settings=(ImportanceSettings, "experiments.train_fractions"), flags=F.IMPORTANCE,
          pipeline=True),
    Stage("train", "train", """Fit MODEL on the training period and forecast the test period.

    Uses the features in selected.json when present, else all. Training ends at
    evaluation.validation_start; neural models stop early on the validation period that
    follows; the test period is forecast with the fitted model. Prints the test errors
    next to persistence's (tomorrow = today) and saves everything under
    <data dir>/models/MODEL/<run id>/. Same seed, same result. vae and wgan train the
    generative models, minutes encodes each day's minute bars of
    generative.minutes.ts_code, seq2seq trains the news model on minute bars, experiments
    runs the original LSTM experiments on one stock (for `plot lstm`).""",
          _train, reads=("features", "selection"), writes=("train",),
          settings=(EvaluationSettings, f"{RefreshSettings.section}.train_model",
                    lambda c: _model_sections([c.refresh.train_model])),
          flags=(F.MODEL, F.TRAIN_STOCKS, F.QUICK), pipeline=True,
          records=_trains_the_refresh_model, epilog=_MODELS_HELP),
    Stage("vae", "train", "The VAE of the evaluated stocks and their latent codes "
          "(`<model>+vae`), and the VAE under each train/validation cut of "
          "experiments.train_fractions.", _generative("run_vae"), reads=("features", "selection"),
          writes=("latent",), settings=(VAESettings, EvaluationSettings,
                                        "experiments.train_fractions"),
          flags=(F.MODEL, F.TRAIN_STOCKS, F.QUICK), when=("model", "vae"), pipeline=True),
    Stage("minutes", "train", "The minute-bar day encoder and its daily codes "
          "(`<model>+minutes`).", _generative("run_minutes", stocks=False), reads=("raw",),
          writes=("minute_codes",), settings=(MinuteEncoderSettings, EvaluationSettings),
          flags=(F.MODEL, F.QUICK), when=("model", "minutes"), pipeline=True, optional=True),
    Stage("wgan", "train", "A WGAN-GP of future paths, scored by CRPS and band coverage.",
          _generative("run_wgan"), reads=("features", "selection"), writes=("wgan",),
          settings=(WGANSettings, EvaluationSettings),
          flags=(F.MODEL, F.TRAIN_STOCKS, F.QUICK), when=("model", "wgan")),
    Stage("seq2seq", "train", "The news seq2seq on minute bars (both sample kinds, one network).",
          _seq2seq, reads=("raw", "news_vectors"), writes=("seq2seq",),
          settings=(NewsSeq2SeqSettings,), flags=(F.MODEL, F.QUICK), when=("model", "seq2seq")),
    Stage("experiments", "train", "The original LSTM experiments on one stock (`plot lstm`).",
          _experiments, reads=("features", "selection"), writes=("experiments",),
          settings=(ExperimentSettings, EvaluationSettings, "models.seq2seq_lambda",
                    "models.predict_window", lambda c: _model_sections(["lstm"])),
          flags=(F.MODEL, F.EXPERIMENT_STOCK, F.QUICK), when=("model", "experiments"),
          records=_unless_quick),
    Stage("embed-news", "embed-news",
          """Encode the stored news into vectors (<data dir>/news/vectors.parquet).

    The offline encoder (character n-gram TF-IDF + SVD, nothing to download) learns only
    from articles before news.fit_end, so no later article shapes an earlier vector;
    bert-service asks a bert-as-service server (news.bert); finetuned trains a small
    Keras transformer on the articles before news.fit_end to predict the index's next
    move (news.finetune; from news.finetune.checkpoint when set) and saves it to
    <data dir>/news/encoder.keras. `stockpred plot news` draws them.""",
          _embed_news, reads=("raw",), writes=("news_vectors",),
          settings=(lambda c: NewsSettings.encoder_sections(),),
          flags=(F.Flag(("--encoder",), "offline (default news.encoder), bert-service or "
                        "finetuned.", config="news.encoder",
                        options=dict(type=("offline", "bert-service", "finetuned"))),
                 F.QUICK), pipeline=True, optional=True),
    Stage("tune", "tune",
          f"""Tune a model's hyperparameters by validation skill, for evaluate to test.

    Each trial fits on rows before evaluation.validation_start and scores on the validation
    year; no row of the test period is read. DQN moves one hyperparameter a step per action
    (reward: the change in skill); Optuna's TPE and random search get the same budget.
    Trials go to <data dir>/runs/tune/<model>/<agent>.parquet; a rerun resumes without
    repeating finished trials. The best goes to <agent>.best.json, and `evaluate` of the
    same stocks tests it as "<model> (tuned by <agent>)". With --universe NAME
    ({', '.join(tunable(CROSS_SECTION))}): one fit per trial on the trailing
    cross_section.train_days, scored by validation Rank IC; `evaluate --cross-section` of
    that universe then adds the tuned row.""",
          _tune, reads=("features", "selection"), writes=("tuning",),
          settings=(EvaluationSettings, lambda c: _model_sections(tunable(STOCK))),
          flags=(*F.tune_flags(f"{', '.join(tunable(STOCK))}; with --universe (or for a "
                               f"cross-sectional model) {', '.join(tunable(CROSS_SECTION))}"),
                 F.Flag(("--ts-code", "ts_codes"), "Stocks (default evaluation.ts_codes).",
                        parse=F.ts_codes, options=dict(metavar="A,B"))),
          records=_unless_quick),
    Stage("tune-cross-section", "tune", "Tune a cross-sectional model by validation Rank IC.",
          _tune_cross_section, reads=("factors",), writes=("cross_section_tuning",),
          settings=(CrossSectionSettings, EvaluationSettings, "compute"),
          flags=(*F.tune_flags(""), F.UNIVERSE), when=("universe", True), records=_unless_quick),
    Stage("evaluate", "evaluate",
          """Walk-forward evaluation over the test period, and the leaderboard.

    Before every block of K test days each model is refit on the trailing
    evaluation.train_window_days ending the day before, then forecasts each day of the
    block from what is known at its close. Reports price and return errors, directional
    accuracy with the Pesaran-Timmermann p-value, Diebold-Mariano (Harvey-Leybourne-
    Newbold) against persistence, the same by day with a Newey-West variance and, over
    several stocks, IC, Rank IC and ICIR. Writes <results dir>/leaderboard.md and
    leaderboard.json. With --cross-section: the market-wide models on a universe, IC, Rank
    IC, ICIR and an A-share TopK-Dropout backtest, into <results dir>/cross_section/. With
    --horizons 1,3,7,21 (evaluation.horizons, cross_section.horizons) every model is walked
    forward at each horizon, against its naive baselines at the same horizon.""",
          _evaluate, reads=("features", "selection", "tuning", "latent", "minute_codes",
                            "news_vectors"),
          writes=("leaderboard",),
          settings=(EvaluationSettings, lambda c: _model_sections(c.evaluation.models)),
          flags=F.EVALUATE, pipeline=True),
    Stage("universe", "universe", """Write the daily membership of universe NAME, point in time.

    NAME is `all` (every listed stock with at least min_listed_days trading days since
    listing), `topN` (the N stocks with the largest trailing 20-day mean amount, ranked
    again every day from data up to that day) or a universe named in config.json. A stock
    is left out on a day when it is suspended, listed too recently, ST (when namechange is
    stored) or delisted, with the reason recorded. Writes <data dir>/universe/NAME.parquet,
    NAME.excluded.parquet, NAME.json and <results dir>/universe/NAME.png.""",
          _universe, reads=("raw",), writes=("universe",), settings=("universes",),
          flags=(F.UNIVERSE_NAME,)),
    Stage("factors", "features", "The universe's membership and scale-free factors.",
          _factors, reads=("raw",), writes=("universe", "factors"),
          settings=("universes", "compute"), flags=(F.UNIVERSE, F.SCHEDULER),
          when=("universe", True), pipeline=True),
    Stage("signal", "signal",
          """Tomorrow's scores and TopK-Dropout portfolio of cross_section.universe.

    Scores every member on the last stored close with cross_section.models[0], refit every
    cross_section.retrain_every trading days on the rows evaluate's walk-forward would use
    (reused in between; the signal names the model run), and builds the TopK-Dropout target
    from the previous night's, marking stocks that could not trade (suspended, one price).
    Writes <data dir>/signals/DAY.parquet and DAY.portfolio.json; a second run on the same
    day changes nothing.""",
          _signal, reads=("factors",), writes=("signal",),
          settings=(CrossSectionSettings, EvaluationSettings, "compute",
                    _cross_sectional_sections), pipeline=True),
    Stage("live", "live",
          """The paper track record of the nightly signals: print it and draw its curve.

    One row per stored signal (`stockpred signal`) whose days have closed: the realised IC
    and Rank IC of its scores against cross_section.label, and the return after costs of
    the TopK-Dropout book it ordered (filled at the next day's cross_section.backtest.
    execution price, held over the day after, the backtest's A-share rules and costs)
    against the equal-weight universe. A signal whose label is not yet known gets its row
    on a later night; a row never changes once written. Writes <results dir>/live/
    track.parquet and track.png.""",
          _live, reads=("signal", "universe", "raw"), writes=("live",),
          settings=("cross_section.universe", "cross_section.label",
                    "cross_section.backtest"),
          flags=(F.Flag(("--tail",), "Print the last N rows.",
                        options=dict(type=int, min=1, default=10, show_default=True)),),
          # --tail only changes what is printed: every run is the stage's own result
          records=lambda job, given: True, pipeline=True),
    Stage("evaluate-cross-section", "evaluate", "The market-wide walk-forward and backtest.",
          _evaluate_cross_section, reads=("factors", "cross_section_tuning"),
          writes=("cross_section_leaderboard",),
          settings=(CrossSectionSettings, EvaluationSettings, "compute",
                    _cross_sectional_sections),
          flags=F.EVALUATE_CROSS_SECTION, when=("cross_section", True), pipeline=True),
    Stage("backtest", "backtest",
          """Rerun the A-share TopK-Dropout backtest on a run's stored scores.

    Orders from day T's scores fill at T+1's close (or open: cross_section.backtest.
    execution); shares bought today are sold tomorrow at the earliest; no buying at
    limit-up, no selling at limit-down, no trading a suspended stock or on a one-price day;
    commission with its minimum, stamp duty on sells. Settings: cross_section.backtest.
    Writes backtest.json into the run folder.""",
          _backtest, reads=("cross_section_leaderboard",), writes=("backtest",),
          settings=("cross_section.backtest",),
          flags=(F.Flag(("--run", "run_id"), "A run of `stockpred evaluate --cross-section` "
                        "(its folder under <data dir>/runs/evaluate/).",
                        options=dict(required=True, metavar="RUN_ID")),
                 F.Flag(("--model",), "One model of the run (default: all).",
                        options=dict(metavar="NAME"))), records=_never),
    Stage("export-factors", "export factors", """Write trade_date, ts_code and every factor
    exactly as the models receive them, before the cross-sectional step, to OUT (parquet).""",
          _export_factors, reads=("factors",), settings=("compute",),
          flags=(F.Flag(("--universe",), F.UNIVERSE_HELP + " Its stored factor panel on its "
                        "member days (after `stockpred features --universe NAME`).",
                        options=dict(metavar="NAME")),
                 F.Flag(("--ts-code", "ts_codes"), "These stocks' factors, computed from their "
                        "stored bars.", parse=F.ts_codes, options=dict(metavar="A,B")),
                 F.Flag(("--out",), "The parquet file to write.",
                        options=dict(required=True, metavar="FILE")),
                 F.SCHEDULER), records=_never, exclusive=("universe", "ts_codes")),
    Stage("export-qlib", "export qlib", """Write universe NAME as a qlib data provider into OUT.

    Fresh A-share data for qlib: calendars/day.txt (the trading days), instruments/NAME.txt
    (the point-in-time membership of `stockpred universe NAME`, one line per run of member
    days) and all.txt, and features/<code>/<field>.day.bin (open, high, low, close as
    stored, adjusted; volume in raw lots; factor 1; change; no VWAP, which raw amount over
    adjusted prices would leak) of every stock ever a member. A rerun appends the new days
    and rewrites only the stocks whose stored history changed (a forward adjustment
    re-basing it): the same bytes as a new export, and qlib never reads a half-written
    provider. With qlib.dir set, every `refresh` does this too.""",
          _export_qlib, reads=("raw", "universe"), settings=(QlibSettings, "universes"),
          flags=(F.UNIVERSE,
                 F.Flag(("--out",), "The provider folder, new or written by this command "
                        "(default qlib.dir).", config="qlib.dir", parse=F.absolute_path,
                        options=dict(metavar="DIR"))),
          pipeline=True, optional=True),
    Stage("plot", "plot", """Regenerate the figures the README shows (into <results dir>/).

    Without FAMILY, every family whose inputs exist. features: price and amount, MACD,
    Bollinger with KDJ, RSI, W%R with CR, CCI/TR/VR, DMI, causal Fourier, autocorrelation,
    ARIMA, and (after `stockpred importance`) XGBoost's errors and importances. lstm: the
    LSTM experiments (after `stockpred train experiments`), each beside persistence's
    errors. tuning: best validation skill so far per agent. generative: VAE, minute codes
    and WGAN. news: the news vectors in 2-D, and their first four dimensions in pairs
    coloured by the index's next move.""",
          _plot, reads=("features", "selection", "leaderboard", "latent", "minute_codes",
                        "experiments", "tuning", "wgan", "news_vectors"),
          writes=("figures",), settings=(PlotSettings,),
          flags=(F.FAMILY, F.PLOT_STOCK, F.Flag(("--model",), "tuning: the tuned model "
                                                "(default: every model with trials).")),
          pipeline=True, optional=True),
    Stage("report", "report", """Write the HTML report of evaluate runs into <results dir>/report/.

    One self-contained page per run, <results dir>/report/RUN_ID/index.html (figures
    inline, nothing fetched: it opens from disk, offline), and report/index.html, which
    lists every run. A cross-sectional run shows its signal leaderboard with 95% intervals,
    daily, cumulative and monthly Rank IC, quintile returns, the backtest's value against
    the equal-weight universe and the CSI 300, drawdown, turnover, holdings and a per-year
    table; a forecast run its leaderboard with the DM and PT tests, forecasts against
    actual prices and errors against persistence's. Without RUN_ID: the pages of the runs
    that have none yet, and the index.""",
          _report, reads=("leaderboard", "cross_section_leaderboard"), writes=("report",),
          flags=(F.Flag(("run_id",), argument=True,
                        options=dict(required=False, metavar="[RUN_ID]")),),
          pipeline=True, optional=True),
    Stage("readme", "readme", """Render the README's result blocks from the result files.

    Each block between <!-- results:NAME --> and <!-- /results:NAME --> is rewritten from
    its result file; text outside the markers is left as it is. `stockpred run` does this
    after the stages that write the files.""",
          _readme, reads=("leaderboard", "peer", *BENCHMARKS), writes=("readme",),
          flags=_RESULTS, pipeline=True),
    Stage("run", "run",
          """Every stage in order on the current config (the shipped sample by default).

    fetch, then each stage of refresh.stages, skipping a stage whose inputs and settings
    have not changed since it last ran; ends with a summary. The same pipeline as
    `refresh`, with progress bars at a terminal.""", _refresh, writes=("raw",),
          records=_never),
    Stage("refresh", "refresh",
          """The nightly job: incremental fetch, then the stages whose inputs changed.

    Each later stage in refresh.stages reruns only when what it reads changed. With
    --universe NAME: the whole market's new days by day, then that universe's membership
    and factors (the new days only), tomorrow's signal (`stockpred signal`) and the paper
    track record (`stockpred live`). Refuses at
    once (exit 4) while another stockpred run holds the data directory. Logs to
    <data dir>/logs/refresh-YYYYMMDD.log. For cron, see the README.""", _refresh,
          writes=("raw",), records=_never,
          flags=(F.Flag(("--universe",), F.UNIVERSE_HELP + " Refresh this universe's market "
                        "path instead of the per-stock stages.", options=dict(metavar="NAME")),)),
    Stage("stages", "stages", "Print this table: each stage's command, whether it is stale, "
          "what it reads and writes, and the config sections it depends on.", _stages,
          session=False, records=_never,
          flags=(F.Flag(("--markdown",), "The table as doc/architecture.md shows it.",
                        options=dict(is_flag=True)),)),
    Stage("show", "show", "Print a stored raw table, e.g. `stockpred show daily --ts-code "
          "600036.SH`, or the rows fetch set aside (`--quarantined`).", _show, session=False,
          records=_never,
          flags=(F.Flag(("table",), argument=True),
                 F.Flag(("--ts-code", "ts_codes"), "Only these subjects.", parse=F.names,
                        options=dict(metavar="A,B")),
                 F.Flag(("--start",), parse=F.day, options=dict(metavar="YYYYMMDD")),
                 F.Flag(("--end",), parse=F.day, options=dict(metavar="YYYYMMDD")),
                 F.Flag(("--quarantined",), "The rows fetch set aside on arrival, each with its "
                        "reason (a price that cannot be one, a conflicting duplicate).",
                        options=dict(is_flag=True)),
                 F.Flag(("--tail",), "Print the last N rows (0: all).",
                        options=dict(type=int, min=0, default=10, show_default=True)))),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES if stage.pipeline)


def stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def _section(config: Config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v
                for k, v in value.items()}
    return value


def _artefact_digest(path: Path) -> str | None:
    if path.suffix != ".json":  # a rendered file (the README): its bytes
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    manifest = read_manifest(path)
    if manifest is None:
        return None
    stable = {k: v for k, v in manifest.items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_parts(entry: Stage, config: Config, paths: Paths) -> dict:
    """What a stage's result depends on: its inputs' manifests, its sections, the version."""
    return {"inputs": {key: _artefact_digest(ARTEFACTS[key](paths, config))
                       for key in entry.reads},
            "sections": {s: hashlib.sha256(json.dumps(_section(config, s), sort_keys=True,
                                                      default=str).encode()).hexdigest()
                         for s in entry.sections(config)},
            "version": __version__}


def _fingerprint(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def is_stale(entry: Stage, config: Config, paths: Paths) -> bool:
    recorded = read_manifest(paths.stage_record(entry.name))
    parts = fingerprint_parts(entry, config, paths)
    return recorded is None or recorded.get("fingerprint") != _fingerprint(parts)


def record_run(entry: Stage, config: Config, paths: Paths, **facts) -> None:
    """Record that ``entry`` finished on the current inputs and config, from refresh and
    from its own command alike, so a later refresh knows."""
    parts = fingerprint_parts(entry, config, paths)
    write_manifest(paths.stage_record(entry.name), {
        "stage": entry.name, "fingerprint": _fingerprint(parts), "parts": parts,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **facts})


def run_stage(entry: Stage, job: Job) -> list[str]:
    """Run ``entry`` for run/refresh: a log line at its start and end (with its wall time),
    so an unattended log shows where a long night is."""
    log.info("%s: started", entry.name)
    start = time.monotonic()
    lines = entry.run(job)
    record_run(entry, job.config, job.paths)
    log.info("%s: finished in %.0f s", entry.name, time.monotonic() - start)
    return lines


# what `refresh --universe NAME` runs after fetching the universe's new days
MARKET_NIGHT = ("factors", "signal", "live")


def refresh(config: Config, paths: Paths, progress: bool = False,
            universe: str | None = None) -> list[str]:
    """Incremental fetch of the configured universe, then each stage of refresh.stages
    that is stale, in the table's order; with ``universe``, the market's new days, then
    that universe's factors, tomorrow's signal and the paper track record."""
    if universe is not None:
        config = with_overrides(config, {"cross_section": {"universe": universe}})
    lines = run_stage(stage("fetch"), Job(config, paths, progress, {"universe": universe}))
    chosen = MARKET_NIGHT if universe is not None else config.refresh.stages
    if config.qlib.dir is not None:
        chosen = (*chosen, "export-qlib")
    for entry in STAGES:
        if not entry.pipeline or entry.name not in chosen:
            continue
        if not is_stale(entry, config, paths):
            lines.append(f"{entry.name}: up to date, inputs unchanged")
            continue
        try:
            lines += run_stage(entry, Job(config, paths, progress))
        except MissingInputError as exc:
            if not entry.optional:
                raise
            lines.append(f"{entry.name}: skipped ({exc})")
    return lines
