"""The command-line flags of the stages: each declared once, with where its value goes.

A flag with ``config`` overrides that dotted key of config.json for the run (validated by
the same rules as the file); one without is an argument of the run itself, which the
stage reads from its Job. Parsers turn the text into the value and raise InputError with
one line naming the flag.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stockpred.config import check_ts_code, parse_day
from stockpred.data.catalogue import CATALOGUE, GROUPS
from stockpred.errors import InputError


@dataclass(frozen=True)
class Flag:
    decls: tuple[str, ...]  # click's declarations: ("--ts-code", "ts_codes"), ("model",)
    help: str = ""
    config: str | None = None  # the dotted config key it overrides; None: a run argument
    parse: Callable[[Any, str], Any] | None = None  # (text, flag) -> value
    options: dict = field(default_factory=dict)  # the rest of click's settings
    argument: bool = False  # positional

    @property
    def name(self) -> str:
        return next((d for d in self.decls if not d.startswith("-")),
                    self.decls[0].lstrip("-").replace("-", "_"))

    @property
    def shown(self) -> str:
        """How a message names it."""
        return self.name.upper() if self.argument else self.decls[0]


def split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def ts_codes(value: str, flag: str) -> list[str]:
    codes = [c.upper() for c in split(value)]
    if not codes:
        raise InputError(f"{flag}: give at least one code, e.g. 600036.SH")
    for code in codes:
        try:
            check_ts_code(code)
        except ValueError as exc:
            raise InputError(f"{flag}: {exc}") from None
    return codes


def one_stock(value: str, flag: str) -> str:
    codes = ts_codes(value, flag)
    if len(codes) != 1:
        raise InputError(f"{flag}: give one stock")
    return codes[0]


def day(value: str, flag: str) -> str:
    try:
        return parse_day(value, flag)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def names(value: str, flag: str) -> list[str]:
    return split(value)


def horizons(value: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in split(value)]
    except ValueError:
        raise InputError(f"{flag}: give counts of traded days, e.g. 1,3,7,21") from None


def absolute_path(value: str, flag: str) -> str:
    """A folder given on the command line is relative to the working directory, not to
    config.json's folder as the config key it overrides would be."""
    return str(Path(value).expanduser().absolute())


def _fetch_stocks(value: str, flag: str) -> dict:
    return {"index": None, "ts_codes": ts_codes(value, flag)}


def _interfaces(value: str, flag: str) -> list[str]:
    chosen = split(value)
    unknown = [n for n in chosen if n not in CATALOGUE]
    if unknown or not chosen:
        raise InputError(f"{flag}: unknown interface {', '.join(unknown) or '(none given)'}; "
                         f"the interfaces are listed in doc/interfaces.md")
    return chosen


def _evaluated_stocks(value: str, flag: str) -> list[str]:
    return [] if value == "all" else ts_codes(value, flag)


UNIVERSE_HELP = ("A universe: `all`, `topN` (the N most traded stocks, ranked again every "
                 "day, e.g. top800) or a name from config.json's universes.")
_UNIVERSE = dict(metavar="NAME")

QUICK = Flag(("--quick",), "Tiny model sizes and few epochs (a smoke run, never recorded as "
             "the stage's result).", options=dict(is_flag=True))
STOCKS = Flag(("--ts-code", "ts_codes"), "Stocks (default: every stock with features).",
              parse=ts_codes, options=dict(metavar="A,B"))
SCHEDULER = Flag(("--scheduler",), "A Dask scheduler address (default compute.scheduler; "
                 "none: a LocalCluster on 127.0.0.1 with compute.workers processes).",
                 config="compute.scheduler", options=dict(metavar="ADDRESS"))
UNIVERSE = Flag(("--universe",), UNIVERSE_HELP + " Default cross_section.universe.",
                config="cross_section.universe", options=_UNIVERSE)
UNIVERSE_NAME = Flag(("name",), config="cross_section.universe", argument=True)

FETCH = (
    Flag(("--source",), "Where data comes from. auto (default): tushare when a token is set, "
         "else the shipped sample.", config="fetch.source",
         options=dict(type=("auto", "tushare", "sample"))),
    Flag(("--ts-code", "ts_codes"), "Stocks to fetch instead of the configured universe, e.g. "
         "600036.SH,600000.SH.", config="fetch.universe", parse=_fetch_stocks,
         options=dict(metavar="A,B")),
    Flag(("--universe",), f"{UNIVERSE_HELP} Fetches every stock it can hold on any day "
         f"of the period; `all` and `topN` fetch the whole market by day (one call per "
         f"interface and day).", options=_UNIVERSE),
    Flag(("--start",), "First day (default fetch.start_date).", config="fetch.start_date",
         parse=day, options=dict(metavar="YYYYMMDD")),
    Flag(("--end",), "Last day (default fetch.end_date, else today).", config="fetch.end_date",
         parse=day, options=dict(metavar="YYYYMMDD")),
    Flag(("--only",), f"Only these tushare interfaces (default: the configured groups: "
         f"{', '.join(GROUPS)}).", config="fetch.interfaces", parse=_interfaces,
         options=dict(metavar="API1,API2")),
    Flag(("--repair",), "Move damaged files of the store (unreadable, or short of the rows the "
         "last fetch stored) aside under <data dir>/raw/_damaged/ and fetch their rows again.",
         options=dict(is_flag=True)),
)

IMPORTANCE = (
    STOCKS,
    Flag(("--target",), "What XGBoost predicts (default importance.target: next_return).",
         config="importance.target",
         options=dict(type=("next_return", "next_close", "next_direction"))),
    Flag(("--top-k",), "How many features to keep (25).", config="importance.top_k",
         options=dict(type=int, min=1)),
)

MODEL = Flag(("model",), argument=True, options=dict(metavar="MODEL"))
TRAIN_STOCKS = Flag(("--ts-code", "ts_codes"), "Stocks to train on, pooled (default "
                    "evaluation.ts_codes: 600036.SH).", parse=ts_codes,
                    options=dict(metavar="A,B"))
EXPERIMENT_STOCK = Flag(("--ts-code", "ts_codes"), TRAIN_STOCKS.help, parse=one_stock,
                        options=dict(metavar="A,B"))

_TEST_PERIOD = (
    Flag(("--test-start",), "First test day (20170101).", config="evaluation.test_start",
         parse=day, options=dict(metavar="YYYYMMDD")),
    Flag(("--test-end",), "Last test day (20181231).", config="evaluation.test_end", parse=day,
         options=dict(metavar="YYYYMMDD")),
)
_RETRAIN_HELP = "Refit every K trading days (evaluation.retrain_every: 60; with " \
                "--cross-section cross_section.retrain_every: 21)."
_HORIZONS_HELP = "Forecast horizons in traded days, each its own leaderboard rows, e.g. " \
                 "1,3,7,21 (evaluation.horizons; with --cross-section cross_section.horizons: " \
                 "the label close T+1 -> T+1+h). Default 1."
CROSS_SECTION = Flag(("--cross-section", "cross_section"), "Score the market-wide models "
                     "(cross_section.models: lightgbm, xgboost, mlp; last_return and random "
                     "always) on a universe instead.", options=dict(is_flag=True))
EVALUATE = (
    Flag(("--ts-code", "ts_codes"), "Stocks to evaluate (default evaluation.ts_codes; `all`: "
         "every stock with features).", config="evaluation.ts_codes", parse=_evaluated_stocks,
         options=dict(metavar="A,B|all")),
    Flag(("--models",), "Models (default evaluation.models); persistence and drift are always "
         "added.", parse=names, options=dict(metavar="A,B")),
    *_TEST_PERIOD,
    Flag(("--retrain-every",), _RETRAIN_HELP, config="evaluation.retrain_every",
         options=dict(type=int, min=1, metavar="K")),
    Flag(("--horizons",), _HORIZONS_HELP, config="evaluation.horizons", parse=horizons,
         options=dict(metavar="H,H")),
    QUICK,
)
EVALUATE_CROSS_SECTION = (
    CROSS_SECTION,
    Flag(("--universe",), "With --cross-section: the universe (default cross_section.universe), "
         "after `stockpred features --universe NAME`.", config="cross_section.universe",
         options=_UNIVERSE),
    Flag(("--models",), EVALUATE[1].help, config="cross_section.models", parse=names,
         options=dict(metavar="A,B")),
    *_TEST_PERIOD,
    Flag(("--retrain-every",), _RETRAIN_HELP, config="cross_section.retrain_every",
         options=dict(type=int, min=1, metavar="K")),
    Flag(("--horizons",), _HORIZONS_HELP, config="cross_section.horizons", parse=horizons,
         options=dict(metavar="H,H")),
    SCHEDULER,
    QUICK,
)


def tune_flags(spaces: str) -> tuple[Flag, ...]:
    return (
        Flag(("--agent",), "Who searches: a DQN agent, Optuna's TPE, or random.",
             options=dict(type=("dqn", "optuna", "random"), default="dqn", show_default=True)),
        Flag(("--model",), f"The model to tune: {spaces}.",
             options=dict(default="lstm", show_default=True)),
        Flag(("--budget",), "Distinct configurations to try (at most what the model's space "
             "holds).", options=dict(type=int, min=1, default=20, show_default=True)),
        QUICK,
    )


PLOT_STOCK = Flag(("--ts-code", "ts_code"), "The stock to draw (default plot.ts_code; for "
                  "lstm the first of evaluation.ts_codes).", parse=one_stock,
                  options=dict(metavar="CODE"))
FAMILY = Flag(("family",), argument=True, options=dict(
    required=False, type=("features", "lstm", "tuning", "generative", "news")))
