"""The `stockpred` command line: one thin command per stage, no logic of its own."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from stockpred import __version__
from stockpred.config import (Config, check_ts_code, load_config, parse_day, resolve_token,
                              with_overrides)
from stockpred.data import fetch as fetch_stage
from stockpred.data.catalogue import CATALOGUE, GROUPS
from stockpred.data.store import RawStore, remove_temporaries
from stockpred.errors import InputError, StockpredError
from stockpred.layout import DATA_DIR_ENV, Paths, resolve_paths
from stockpred.models.registry import REGISTRY, unknown_model
from stockpred.runtime import data_dir_lock, opened_logs, start_log, stop_log
from stockpred.stages import table as stage_table
from stockpred.tuning.spaces import CROSS_SECTION_SPACES, SPACES

log = logging.getLogger("stockpred.cli")


def _secret() -> str | None:
    try:
        return resolve_token()
    except StockpredError:
        return None


# the commands that fetch first, and so write the fetch manifest before anything reads it
_WRITES_FETCH_MANIFEST = ("fetch", "refresh", "run")


@contextmanager
def _session(paths: Paths, command: str) -> Iterator[None]:
    """Log to <data dir>/logs, hold the data-directory lock, clear temp files of killed runs.
    Inside it the data directory the command resolved (the flag beats the environment beats
    config.json) is also the environment's, so what resolves it from the config alone (the
    news model finds its vectors so) finds the same one."""
    saved_data_dir = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(paths.data_dir)
    handler = start_log(paths, command, _secret())
    log.info("stockpred %s %s: %s", __version__, command, " ".join(sys.argv[1:]))
    log.info("data dir %s, results dir %s", paths.data_dir, paths.results_dir)
    try:
        with data_dir_lock(paths, command):
            removed = remove_temporaries(paths.data_dir) + remove_temporaries(paths.results_dir)
            if removed:
                log.info("removed %d temporary file(s) left by an interrupted run", removed)
            if command not in _WRITES_FETCH_MANIFEST:
                fetch_stage.check_manifest(paths)
            yield
        log.info("%s finished", command)
    except StockpredError as exc:
        log.error("%s", exc)
        raise
    except Exception:
        log.exception("%s failed unexpectedly", command)
        raise
    finally:
        stop_log(handler)
        if saved_data_dir is None:
            os.environ.pop(DATA_DIR_ENV, None)
        else:
            os.environ[DATA_DIR_ENV] = saved_data_dir


def _run_and_echo(paths: Paths, command: str, work, record: tuple[str, Config] | None = None
                  ) -> None:
    """Run ``work`` (returning summary lines) inside a session, then print its lines.
    With ``record`` = (stage, config), the stage table records the run, so that a later
    refresh knows the stage is up to date."""
    with _session(paths, command):
        lines = work()
        if record is not None:
            stage_table.record_run(record[0], record[1], paths)
    for line in lines:
        click.echo(line)


def _common_options(func):
    @click.option("--config", "config_path", type=click.Path(dir_okay=False),
                  help="config.json to use (env STOCKPRED_CONFIG; default ./config.json, "
                       "else built-in defaults).")
    @click.option("--data-dir", type=click.Path(file_okay=False),
                  help="Data directory (env STOCKPRED_DATA_DIR; default data/ beside config.json).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ts_codes(value: str | None) -> list[str] | None:
    """--ts-code A,B as a checked list (None when the flag is absent)."""
    if value is None:
        return None
    codes = [c.upper() for c in _split(value)]
    if not codes:
        raise InputError("--ts-code: give at least one code, e.g. 600036.SH")
    for code in codes:
        try:
            check_ts_code(code)
        except ValueError as exc:
            raise InputError(f"--ts-code: {exc}") from None
    return codes


def _flag_days(*flags: tuple[str, str | None, str]) -> dict[str, str]:
    """Given (flag, value, key) triples, {key: day} for the flags given, each a checked YYYYMMDD."""
    days = {}
    for flag, value, key in flags:
        if value is not None:
            try:
                days[key] = parse_day(value, flag)
            except ValueError as exc:
                raise InputError(str(exc)) from None
    return days


def _one_stock(value: str | None) -> str | None:
    """--ts-code for a figure: one checked code, or None for the configured default."""
    codes = _ts_codes(value)
    if codes is not None and len(codes) != 1:
        raise InputError("--ts-code: give one stock to draw")
    return codes[0] if codes else None


def _universe_or_codes(universe: str | None, ts_codes) -> None:
    if universe is not None and ts_codes is not None:
        raise InputError("give --universe or --ts-code, not both")


def _fetch_overrides(config: Config, source, ts_codes, start, end, only) -> Config:
    """config.json's fetch settings with the command-line flags applied and checked."""
    settings = config.fetch
    update = {}
    if source:
        update["source"] = source
    codes = _ts_codes(ts_codes)
    if codes is not None:
        update["universe"] = {"index": None, "ts_codes": codes}
    update.update(_flag_days(("--start", start, "start_date"), ("--end", end, "end_date")))
    if only is not None:
        names = _split(only)
        unknown = [n for n in names if n not in CATALOGUE]
        if unknown or not names:
            raise InputError(f"--only: unknown interface {', '.join(unknown) or '(none given)'}; "
                             f"the interfaces are listed in doc/interfaces.md")
        update["interfaces"] = names
    first = update.get("start_date", settings.start_date)
    last = update.get("end_date", settings.end_date)
    if last is not None and first > last:
        raise InputError(f"start {first} is after end {last}")
    return with_overrides(config, {"fetch": update})


_UNIVERSE_HELP = ("A universe: `all`, `topN` (the N most traded stocks, ranked again every "
                  "day, e.g. top800) or a name from config.json's universes.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stockpred")
def cli():
    """stockpred: a leak-free research pipeline for Chinese A-share prices.

    Each stage reads and writes files under the data directory, so any stage can be
    rerun alone. Start with `stockpred fetch`; run `stockpred refresh` from cron.
    Settings live in config.json (documented in doc/config.md).
    """


@cli.command()
@click.option("--source", type=click.Choice(["auto", "tushare", "sample"]),
              help="Where data comes from. auto (default): tushare when a token is set, "
                   "else the shipped sample.")
@click.option("--ts-code", "ts_codes", metavar="A,B",
              help="Stocks to fetch instead of the configured universe, e.g. 600036.SH,600000.SH.")
@click.option("--universe", metavar="NAME",
              help=f"{_UNIVERSE_HELP} Fetches every stock it can hold on any day of the "
                   f"period; `all` and `topN` fetch the whole market by day (one call per "
                   f"interface and day).")
@click.option("--start", metavar="YYYYMMDD", help="First day (default fetch.start_date).")
@click.option("--end", metavar="YYYYMMDD", help="Last day (default fetch.end_date, else today).")
@click.option("--only", metavar="API1,API2",
              help=f"Only these tushare interfaces (default: the configured groups: "
                   f"{', '.join(GROUPS)}).")
@click.option("--repair", is_flag=True,
              help="Move damaged files of the store (unreadable, or short of the rows the "
                   "last fetch stored) aside under <data dir>/raw/_damaged/ and fetch their "
                   "rows again.")
@_common_options
def fetch(source, ts_codes, universe, start, end, only, repair, config_path, data_dir):
    """Fetch tushare Pro data into <data dir>/raw/<interface>/ (incremental, idempotent).

    The token comes from TUSHARE_TOKEN or ~/.config/stockpred/config.json
    ({"tushare_token": "..."}). Without one, the real sample data shipped with
    stockpred (SSE 50, 2007-2018) is loaded instead. Only what is not stored yet is
    asked for; a re-run adds nothing. A store fetched from tushare stays on tushare:
    without a token it is an error, never the sample. Each run first checks the stored
    files; a damaged one stops it (exit 1) until `stockpred fetch --repair`. Exit codes:
    2 bad input, 3 stopped by tushare's daily quota (rerun tomorrow), 4 another run holds
    the data directory.
    """
    _universe_or_codes(universe, ts_codes)
    config = _fetch_overrides(load_config(config_path), source, ts_codes, start, end, only)
    spec = None
    if universe is not None:
        from stockpred.stages import market
        spec = market.universe_spec(config, universe)
    paths = resolve_paths(config, data_dir)
    with _session(paths, "fetch"):
        report = fetch_stage.run(config, paths, universe=spec, repair=repair)
    if report.source == "sample":
        reason = "as asked" if config.fetch.source == "sample" else "no tushare token found"
        click.echo(f"Loaded the shipped sample ({reason}): real SSE 50 data up to 2018-12-28, "
                   f"into {paths.raw_dir}.")
    for line in report.summary():
        click.echo(line)


def _scheduler_override(scheduler: str | None) -> dict:
    return {"compute": {"scheduler": scheduler}} if scheduler else {}


_SCHEDULER_HELP = ("A Dask scheduler address (default compute.scheduler; none: a "
                   "LocalCluster on 127.0.0.1 with compute.workers processes).")


@cli.command()
@click.option("--ts-code", "ts_codes", metavar="A,B",
              help="Stocks to build (default: the stocks of the last fetch).")
@click.option("--universe", metavar="NAME", help=_UNIVERSE_HELP + " Builds the market-wide "
              "scale-free factors of its stocks instead of the per-stock panels.")
@click.option("--scheduler", metavar="ADDRESS", help=_SCHEDULER_HELP)
@_common_options
def features(ts_codes, universe, scheduler, config_path, data_dir):
    """Build the point-in-time daily feature table of each stock.

    Writes <data dir>/features/<ts_code>.parquet (one row per trading day, a
    trade_date column) and features.json, which lists every feature with its group,
    source and parameters. Every value for day t uses only data available at the
    close of day t: indicators in Chinese charting conventions, causal Fourier and
    ARIMA(5,1,0) features over trailing windows, statements from their announcement
    date. Settings: the "features" section of config.json (doc/features.md).

    With --universe NAME: its daily membership (<data dir>/universe/NAME.parquet), then
    the scale-free factors (doc/factors.md) of every stock ever in it, one file a year
    under <data dir>/factors/NAME/, computed on Dask.
    """
    config = with_overrides(load_config(config_path), _scheduler_override(scheduler))
    paths = resolve_paths(config, data_dir)
    _universe_or_codes(universe, ts_codes)
    if universe is not None:
        from stockpred.stages import market

        _run_and_echo(paths, "features", lambda: [
            *market.run_universe(config, paths, universe).summary(),
            *market.run_factors(config, paths, universe).summary()])
        return
    from stockpred.features import build

    codes = _ts_codes(ts_codes)
    _run_and_echo(paths, "features", lambda: build.run(config, paths, codes).summary(),
                  None if codes else ("features", config))


@cli.command("universe")
@click.argument("name")
@_common_options
def universe_command(name, config_path, data_dir):
    """Write the daily membership of universe NAME, point in time.

    NAME is `all` (every listed stock with at least min_listed_days trading days since
    listing), `topN` (the N stocks with the largest trailing 20-day mean amount, ranked
    again every day from data up to that day) or a universe named in config.json. A
    stock is left out on a day when it is suspended, listed too recently, ST (when
    namechange is stored) or delisted, with the reason recorded. Writes
    <data dir>/universe/NAME.parquet, NAME.excluded.parquet, NAME.json and
    <results dir>/universe/NAME.png.
    """
    from stockpred.stages import market

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir)
    _run_and_echo(paths, "universe", lambda: market.run_universe(config, paths, name).summary())


@cli.group()
def export():
    """Write stored tables to a file of your choice."""


@export.command("factors")
@click.option("--universe", metavar="NAME", help=_UNIVERSE_HELP + " Its stored factor panel "
              "on its member days (after `stockpred features --universe NAME`).")
@click.option("--ts-code", "ts_codes", metavar="A,B", help="These stocks' factors, computed "
              "from their stored bars.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The parquet file to write.")
@click.option("--scheduler", metavar="ADDRESS", help=_SCHEDULER_HELP)
@_common_options
def export_factors(universe, ts_codes, out, scheduler, config_path, data_dir):
    """Write trade_date, ts_code and every factor exactly as the models receive them,
    before the cross-sectional step, to OUT (parquet)."""
    from stockpred.data.store import atomic_write_parquet
    from stockpred.stages import market

    if (universe is None) == (ts_codes is None):
        raise InputError("give one of --universe NAME or --ts-code A,B")
    config = with_overrides(load_config(config_path), _scheduler_override(scheduler))
    paths = resolve_paths(config, data_dir)
    codes = _ts_codes(ts_codes)
    target = Path(out).expanduser().absolute()

    def work():
        frame = market.model_factors(config, paths, universe, codes)
        atomic_write_parquet(frame, target)
        return [f"wrote {len(frame)} rows x {frame.shape[1] - 2} factors to {target}"]

    _run_and_echo(paths, "export", work)


@cli.command()
@click.option("--ts-code", "ts_codes", metavar="A,B",
              help="Stocks to pool (default: every stock with features).")
@click.option("--target", type=click.Choice(["next_return", "next_close", "next_direction"]),
              help="What XGBoost predicts (default importance.target: next_return).")
@click.option("--top-k", type=click.IntRange(min=1), help="How many features to keep (25).")
@_common_options
def importance(ts_codes, target, top_k, config_path, data_dir):
    """Rank features with XGBoost and write <data dir>/features/selected.json.

    Pools the stocks' traded days up to importance.train_end (default 20161231), so
    the selection never sees the later test period; the last 20% of those days
    validate. Features that are near-copies of the price (|rho| with close above
    importance.max_abs_corr_with_close) are set aside before ranking. Prints the
    validation error next to a naive forecast's.
    """
    from stockpred.features import importance as importance_stage

    update = {k: v for k, v in (("target", target), ("top_k", top_k)) if v is not None}
    config = with_overrides(load_config(config_path), {"importance": update})
    paths = resolve_paths(config, data_dir)
    codes = _ts_codes(ts_codes)
    _run_and_echo(paths, "importance",
                  lambda: importance_stage.run(config, paths, codes).summary(),
                  None if codes else ("importance", config))


@cli.command("embed-news")
@click.option("--encoder", type=click.Choice(["offline", "bert-service"]),
              help="offline (default news.encoder): character n-gram TF-IDF + SVD, nothing "
                   "to download; bert-service: a bert-as-service server (news.bert).")
@click.option("--quick", is_flag=True, help="Fewer dimensions, for a smoke run.")
@_common_options
def embed_news(encoder, quick, config_path, data_dir):
    """Encode the stored news into vectors: <data dir>/news/vectors.parquet.

    The offline encoder learns only from articles before news.fit_end, so no later
    article shapes an earlier vector. `stockpred plot news` draws them.
    """
    from stockpred.news import embed

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir)
    _run_and_echo(paths, "embed-news",
                  lambda: embed.run(config, paths, encoder, quick).summary())


# the stages that read one market-wide series, not stocks
MARKET_WIDE = ("seq2seq", "minutes")
# what `train` fits besides the forecasters: stages of their own, which report more
# than a forecaster's errors (module, run function)
OWN_STAGES = {"vae": ("stockpred.stages.generative", "run_vae"),
              "minutes": ("stockpred.stages.generative", "run_minutes"),
              "wgan": ("stockpred.stages.generative", "run_wgan"),
              "seq2seq": ("stockpred.news.seq2seq", "run"),
              "experiments": ("stockpred.stages.experiments", "run")}


@cli.command(epilog="MODEL is one of: " + ", ".join(
    [*REGISTRY, *[m for m in OWN_STAGES if m not in REGISTRY]]) + " (any case).")
@click.argument("model", metavar="MODEL")
@click.option("--ts-code", "ts_codes", metavar="A,B",
              help="Stocks to train on, pooled (default evaluation.ts_codes: 600036.SH).")
@click.option("--quick", is_flag=True, help="Tiny sizes and few epochs (a smoke run).")
@_common_options
def train(model, ts_codes, quick, config_path, data_dir):
    """Fit MODEL on the training period and forecast the test period.

    Uses the features in selected.json when present, else all. Training ends at
    evaluation.validation_start; neural models stop early on the validation period
    that follows; the test period (evaluation.test_start..test_end) is forecast with
    the fitted model. Prints the test errors next to persistence's (tomorrow = today)
    and saves everything under <data dir>/models/MODEL/<run id>/. Neural models print
    a line per epoch and log to TensorBoard there. Same seed, same result.

    vae and wgan train the generative models (latent features; sampled paths with
    CRPS and band coverage); minutes encodes each day's minute bars of
    generative.minutes.ts_code (daily codes); seq2seq trains the news model on minute bars;
    experiments runs the original LSTM experiments on one stock (for `plot lstm`).
    """
    import importlib

    from stockpred.stages import train as train_stage

    trainable = [*REGISTRY, *[m for m in OWN_STAGES if m not in REGISTRY]]
    model = model.lower()
    if model not in trainable:
        raise unknown_model(model, trainable)
    config = load_config(config_path)
    paths = resolve_paths(config, data_dir)
    codes = _ts_codes(ts_codes)

    def work():
        if model == "experiments":
            code = _one_stock(ts_codes)
            table = importlib.import_module(OWN_STAGES[model][0]).run(config, paths, code, quick)
            return [f"experiments: {table}"]
        if model in OWN_STAGES:
            module, function = OWN_STAGES[model]
            stage = getattr(importlib.import_module(module), function)
            if model in MARKET_WIDE and codes:
                raise InputError(f"train {model} reads one market-wide series: "
                                 f"--ts-code does not apply")
            stocks = () if model in MARKET_WIDE else (codes,)
            return stage(config, paths, *stocks, quick=quick).summary()
        return train_stage.run(config, paths, model, codes, quick).summary()

    is_refresh_stage = model == config.refresh.train_model and not codes and not quick
    record = ("experiments", config) if model == "experiments" and not quick else None
    _run_and_echo(paths, "train", work, ("train", config) if is_refresh_stage else record)


@cli.command()
@click.option("--ts-code", "ts_codes", metavar="A,B|all",
              help="Stocks to evaluate (default evaluation.ts_codes; `all`: every stock "
                   "with features).")
@click.option("--models", metavar="A,B", help="Models (default evaluation.models); "
              "persistence and drift are always added.")
@click.option("--test-start", metavar="YYYYMMDD", help="First test day (20170101).")
@click.option("--test-end", metavar="YYYYMMDD", help="Last test day (20181231).")
@click.option("--retrain-every", type=click.IntRange(min=1), metavar="K",
              help="Refit every K trading days (60).")
@click.option("--quick", is_flag=True, help="Tiny model sizes and few epochs.")
@click.option("--cross-section", "cross_section", is_flag=True,
              help="Score the market-wide models (cross_section.models: lightgbm, xgboost, "
                   "mlp; last_return and random always) on a universe instead.")
@click.option("--universe", metavar="NAME", help="With --cross-section: the universe "
              "(default cross_section.universe), after `stockpred features --universe NAME`.")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where the leaderboard goes (env STOCKPRED_RESULTS_DIR).")
@_common_options
def evaluate(ts_codes, models, test_start, test_end, retrain_every, quick, cross_section,
             universe, results_dir, config_path, data_dir):
    """Walk-forward evaluation over the test period, and the leaderboard.

    Before every block of K test days each model is refit on the trailing
    evaluation.train_window_days ending the day before, then forecasts each day of
    the block from what is known at its close. Reports price and return errors,
    directional accuracy with the Pesaran-Timmermann p-value, Diebold-Mariano
    (Harvey-Leybourne-Newbold) against persistence, the same by day with a Newey-West
    variance (the test that decides over several stocks) and, over several stocks, IC,
    Rank IC and ICIR. Writes <results dir>/leaderboard.md and leaderboard.json.
    """
    from stockpred.stages import evaluate as evaluate_stage

    config = load_config(config_path)
    update = _flag_days(("--test-start", test_start, "test_start"),
                        ("--test-end", test_end, "test_end"))
    if cross_section:
        if ts_codes is not None:
            raise InputError("--ts-code is for the per-stock evaluation; give --universe")
        _check_test_period(config, update)
        overrides = {"evaluation": update}
        if retrain_every is not None:
            overrides["cross_section"] = {"retrain_every": retrain_every}
        if models is not None:
            overrides.setdefault("cross_section", {})["models"] = _split(models)
        config = with_overrides(config, overrides)
        paths = resolve_paths(config, data_dir, results_dir)
        from stockpred.stages import cross_section as cross_stage

        _run_and_echo(paths, "evaluate", lambda: cross_stage.run(
            config, paths, universe, quick=quick).summary())
        return
    if universe is not None:
        raise InputError("--universe needs --cross-section")
    if retrain_every is not None:
        update["retrain_every"] = retrain_every
    _check_test_period(config, update)
    codes = None if ts_codes == "all" else _ts_codes(ts_codes)
    if ts_codes == "all":
        update["ts_codes"] = []
    defaults = not update and codes is None and models is None and not quick
    config = with_overrides(config, {"evaluation": update})
    paths = resolve_paths(config, data_dir, results_dir)
    names = _split(models) if models is not None else None
    _run_and_echo(paths, "evaluate", lambda: evaluate_stage.run(
        config, paths, codes, names, quick).summary(),
        ("evaluate", config) if defaults else None)


def _check_test_period(config: Config, update: dict) -> None:
    first = update.get("test_start", config.evaluation.test_start)
    last = update.get("test_end", config.evaluation.test_end)
    if first > last:
        raise InputError(f"test start {first} is after test end {last}")
    if first <= config.evaluation.validation_start:
        raise InputError(f"test start {first} must come after evaluation.validation_start "
                         f"{config.evaluation.validation_start}")
    if first <= config.importance.train_end:
        raise InputError(f"test start {first} must come after importance.train_end "
                         f"{config.importance.train_end}: the feature selection read those days")


@cli.command()
@click.option("--run", "run_id", required=True, metavar="RUN_ID",
              help="A run of `stockpred evaluate --cross-section` (its folder under "
                   "<data dir>/runs/evaluate/).")
@click.option("--model", metavar="NAME", help="One model of the run (default: all).")
@_common_options
def backtest(run_id, model, config_path, data_dir):
    """Rerun the A-share TopK-Dropout backtest on a run's stored scores.

    Orders from day T's scores fill at T+1's close (or open: cross_section.backtest.
    execution); shares bought today are sold tomorrow at the earliest; no buying at
    limit-up, no selling at limit-down, no trading a suspended stock or on a one-price
    day; commission with its minimum, stamp duty on sells. Settings:
    cross_section.backtest. Writes backtest.json into the run folder.
    """
    from stockpred.stages import cross_section as cross_stage

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir)
    _run_and_echo(paths, "backtest",
                  lambda: cross_stage.rerun_backtest(config, paths, run_id, model))


@cli.command()
@click.option("--agent", type=click.Choice(["dqn", "optuna", "random"]), default="dqn",
              show_default=True, help="Who searches: a DQN agent, Optuna's TPE, or random.")
@click.option("--model", default="lstm", show_default=True,
              help=f"The model to tune: {', '.join(SPACES)}; with --universe (or for a model "
                   f"only the cross-section has) {', '.join(CROSS_SECTION_SPACES)}.")
@click.option("--universe", metavar="NAME", help="Tune the cross-sectional model on this "
              "universe (after `stockpred features --universe NAME`), by validation Rank IC.")
@click.option("--budget", type=click.IntRange(min=1), default=20, show_default=True,
              help="Distinct configurations to try (at most what the model's space holds).")
@click.option("--ts-code", "ts_codes", metavar="A,B", help="Stocks (default "
              "evaluation.ts_codes).")
@click.option("--quick", is_flag=True, help="Tiny model sizes and few epochs.")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where the leaderboard goes (env STOCKPRED_RESULTS_DIR).")
@_common_options
def tune(agent, model, budget, universe, ts_codes, quick, results_dir, config_path, data_dir):
    """Tune a model's hyperparameters by validation skill, then test the best walk-forward.

    Each trial fits on rows before evaluation.validation_start and scores on the
    validation year; no row of the test period is read. DQN moves one hyperparameter
    a step per action (reward: the change in skill); Optuna's TPE and random search get
    the same budget. Trials go to <data dir>/runs/tune/<model>/<agent>.parquet; a
    rerun resumes without repeating finished trials. The best configuration is then
    evaluated walk-forward on the test period and enters the leaderboard as
    "<model> (tuned by <agent>)".

    With --universe NAME (lightgbm, xgboost, mlp): one fit per trial on the trailing
    cross_section.train_days before evaluation.validation_start, scored by the mean daily
    Rank IC of the validation days whose labels are known before the test period. The
    best settings go to <data dir>/runs/tune/cross_section/NAME/<model>/<agent>.best.json,
    and `evaluate --cross-section` of that universe then adds "<model> (tuned by <agent>)".
    """
    from stockpred.tuning import search

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    codes = _ts_codes(ts_codes)
    if universe is None and model in CROSS_SECTION_SPACES and model not in SPACES:
        universe = config.cross_section.universe
    _universe_or_codes(universe, codes)
    if universe is not None:
        _run_and_echo(paths, "tune", lambda: search.run_cross_section(
            config, paths, universe, model, agent, budget, quick).summary())
        return
    _run_and_echo(paths, "tune", lambda: search.run(config, paths, model, agent, budget, codes,
                                                    quick).summary(), ("tune", config))


@cli.group(invoke_without_command=True)
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
@_common_options
@click.pass_context
def plot(ctx, results_dir, config_path, data_dir):
    """Regenerate the figures the README shows (into project_results/).

    Without a subcommand, every family whose inputs exist: features, lstm, tuning,
    generative, news.
    """
    if ctx.invoked_subcommand is not None:
        return
    from stockpred.stages import plot as plot_stage

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    _run_and_echo(paths, "plot", lambda: plot_stage.run_all(config, paths), ("plot", config))


@plot.command("features")
@click.option("--ts-code", metavar="CODE", help="The stock to draw (default plot.ts_code).")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
@_common_options
def plot_features(ts_code, results_dir, config_path, data_dir):
    """The feature-engineering figures, into <results dir>/feature_engineering/.

    Price and amount, MACD, Bollinger with KDJ, open with RSI, W%R with CR,
    CCI/TR/VR, DMI, causal Fourier reconstructions and spectrum, autocorrelation,
    ARIMA forecasts with their errors next to persistence's, and (after
    `stockpred importance`) XGBoost's training vs validation error and importances.
    """
    from stockpred.stages import plot as plot_stage

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    code = _one_stock(ts_code)
    _run_and_echo(paths, "plot", lambda: plot_stage.draw("features", config, paths,
                                                         ts_code=code))


@plot.command("lstm")
@click.option("--ts-code", metavar="CODE", help="The stock (default: the first of "
              "evaluation.ts_codes).")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
@_common_options
def plot_lstm(ts_code, results_dir, config_path, data_dir):
    """The LSTM experiments, into <results dir>/lstm/ (after `stockpred train experiments`).

    Point by point, full window, multiple sequences, seq-to-seq averaged, from the
    latest origin only and with rectified joins, multi-feature seq-to-seq for each of
    experiments.feature_windows, the globally normalised feature LSTM raw, rectified and
    averaged, and the 0.9 / 0.98 train/validation split. Each figure shows the
    forecast's errors next to persistence's (tomorrow = today).
    """
    from stockpred.stages import plot as plot_stage

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    code = _one_stock(ts_code)
    _run_and_echo(paths, "plot", lambda: plot_stage.draw("lstm", config, paths, ts_code=code))


def _figure_family(name: str, what: str) -> None:
    """`stockpred plot NAME`: a figure family with no options of its own."""

    @plot.command(name, help=f"{what}, into <results dir>/{name}/.")
    @click.option("--results-dir", type=click.Path(file_okay=False),
                  help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
    @_common_options
    def command(results_dir, config_path, data_dir):
        from stockpred.stages import plot as plot_stage

        config = load_config(config_path)
        paths = resolve_paths(config, data_dir, results_dir)
        _run_and_echo(paths, "plot", lambda: plot_stage.draw(name, config, paths))


_figure_family("generative", "VAE latent space and losses, the minute-bar day codes, WGAN "
               "training curves and fan charts, from the latest `stockpred train vae`, "
               "`train minutes` and `train wgan` runs")
_figure_family("news", "The news vectors projected to 2-D, coloured by channel and by month")


@plot.command("tuning")
@click.option("--model", help="The tuned model (default: every model with trials).")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
@_common_options
def plot_tuning(model, results_dir, config_path, data_dir):
    """Best validation skill so far against trials, per agent, into <results dir>/tuning/."""
    from stockpred.stages import plot as plot_stage

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    _run_and_echo(paths, "plot", lambda: plot_stage.draw("tuning", config, paths, model=model))


@cli.command()
@click.option("--check", is_flag=True,
              help="Change nothing; exit 1 with one line naming each block that differs from "
                   "what its result file renders.")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where the result files are (env STOCKPRED_RESULTS_DIR; default "
                   "project_results/); the README is the one beside it.")
@_common_options
@click.pass_context
def readme(ctx, check, results_dir, config_path, data_dir):
    """Render the README's result blocks from the result files under project_results/.

    Each block between <!-- results:NAME --> and <!-- /results:NAME --> is rewritten
    from its result file (the leaderboard from leaderboard.json); text outside the
    markers is left as it is. `stockpred run` does this after the stages that write
    the files.
    """
    from stockpred.stages import readme as readme_stage

    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    if check:
        stale = readme_stage.stale_blocks(paths)
        for line in stale:
            click.echo(line, err=True)
        if stale:
            ctx.exit(1)
        click.echo(f"{paths.readme}: every result block matches its result file")
        return
    _run_and_echo(paths, "readme", lambda: readme_stage.run(paths), ("readme", config))


@cli.command("run")
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
@_common_options
def run_all(results_dir, config_path, data_dir):
    """Every stage in order on the current config (the shipped sample by default).

    fetch, then each stage of refresh.stages (features, importance, train, evaluate,
    plot, readme), skipping a stage whose inputs and settings have not changed since it last
    ran; ends with a summary. The same pipeline as `refresh`, with progress bars.
    """
    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    # bars and Keras' epoch lines for a person at a terminal, not for a log
    _run_and_echo(paths, "run", lambda: stage_table.refresh(config, paths,
                                                            progress=sys.stderr.isatty()))


@cli.command()
@click.option("--results-dir", type=click.Path(file_okay=False),
              help="Where figures go (env STOCKPRED_RESULTS_DIR; default project_results/).")
@_common_options
def refresh(results_dir, config_path, data_dir):
    """The nightly job: incremental fetch of the configured universe, then later stages.

    Each later stage in refresh.stages reruns only when what it reads changed.
    Refuses at once (exit 4) while another stockpred run holds the data directory.
    Logs to <data dir>/logs/refresh-YYYYMMDD.log. For cron, see the README.
    """
    config = load_config(config_path)
    paths = resolve_paths(config, data_dir, results_dir)
    def work():
        lines = stage_table.refresh(config, paths)
        for line in lines:
            log.info("%s", line)
        return lines

    _run_and_echo(paths, "refresh", work)


@cli.command()
@click.argument("table")
@click.option("--ts-code", "ts_codes", metavar="A,B", help="Only these subjects.")
@click.option("--start", metavar="YYYYMMDD")
@click.option("--end", metavar="YYYYMMDD")
@click.option("--tail", default=10, show_default=True, type=click.IntRange(min=0),
              help="Print the last N rows (0: all).")
@_common_options
def show(table, ts_codes, start, end, tail, config_path, data_dir):
    """Print a stored raw table, e.g. `stockpred show daily --ts-code 600036.SH`."""
    if table not in CATALOGUE:
        raise InputError(f"unknown table {table!r}; the tables are listed in doc/interfaces.md")
    _flag_days(("--start", start, "start"), ("--end", end, "end"))
    paths = resolve_paths(load_config(config_path), data_dir)
    frame = RawStore(paths.raw_dir).read(table, _split(ts_codes) if ts_codes else None,
                                         start, end)
    shown = frame.tail(tail) if tail else frame
    click.echo(shown.to_string(index=False, max_colwidth=40))
    click.echo(f"({len(frame)} rows)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure becomes one line on stderr and a non-zero exit code."""
    logs_before = len(opened_logs)
    try:
        code = cli.main(args=argv, prog_name="stockpred", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except StockpredError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, the traceback goes to the log
        message = str(exc).splitlines()[0] if str(exc) else ""
        secret = _secret()
        if secret:
            message = message.replace(secret, "***")
        logged = opened_logs[logs_before:]
        where = f" (details in {logged[-1]})" if logged else ""
        click.echo(f"error: unexpected {type(exc).__name__}: {message}{where}", err=True)
        sys.exit(1)
    sys.exit(code or 0)
