"""config.json: loading, validation and defaults, plus the tushare token.

The defaults below are the project's documented defaults; the config.json at the
repository root spells every one of them out (a test keeps the two equal), and
doc/config.md explains each key.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from stockpred.data.catalogue import CATALOGUE, GROUPS
from stockpred.data.universe import Universe as UniverseSpec, universe_from_name
from stockpred.errors import InputError
from stockpred.evaluation.backtest import BacktestSettings
from stockpred.generative.settings import GenerativeSettings
from stockpred.models.names import (CROSS_SECTION, STOCK, WORLD_NAMES, is_model_name,
                                    model_names_hint)
from stockpred.news.settings import NewsSettings
from stockpred.settings_base import Section, parse_day

CONFIG_ENV = "STOCKPRED_CONFIG"
TOKEN_ENV = "TUSHARE_TOKEN"
API_URL_ENV = "TUSHARE_API_URL"
USER_CONFIG_ENV = "STOCKPRED_USER_CONFIG"
TUSHARE_DEFAULT_URL = "http://api.waditu.com/dataapi"

# The stages after fetch that `stockpred refresh` may rerun, in the stage table's order
# (stockpred.stages.table; a test keeps the two equal). The market-wide ones run when
# refresh.stages names them.
LATER_STAGES = ("features", "importance", "train", "vae", "minutes", "embed-news", "evaluate",
                "factors", "signal", "live", "evaluate-cross-section", "export-qlib", "plot",
                "report", "readme")
# what refresh runs by default: the per-stock pipeline
DEFAULT_REFRESH = ("features", "importance", "train", "vae", "minutes", "embed-news", "evaluate",
                   "plot", "report", "readme")

# keys under which a token may be put into config.json by mistake
_TOKEN_KEYS = ("tushare_token", "token", "ts_token")
_TS_CODE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")
def _all_known(names: list[str], known, what: str, hint: str) -> list[str]:
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {what} {name!r}; {hint}")
    return names


def _models_of(world: str, names: list[str]) -> list[str]:
    for name in names:
        if not is_model_name(name, world):
            raise ValueError(f"unknown {WORLD_NAMES[world]} {name!r}; {model_names_hint(world)}")
    return names


def check_ts_code(code: str) -> str:
    if not _TS_CODE.match(code):
        raise ValueError(f"{code!r} is not a ts_code such as 600036.SH")
    return code


class TushareSettings(Section):
    section: ClassVar[str] = "tushare"
    api_url: str = TUSHARE_DEFAULT_URL
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(6, ge=0)
    backoff_base_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    calls_per_minute: int | None = Field(None, gt=0)
    rows_per_call: dict[str, int] = Field(default_factory=dict)

    @field_validator("rows_per_call")
    @classmethod
    def _known_interfaces(cls, caps: dict[str, int]) -> dict[str, int]:
        _all_known(list(caps), CATALOGUE, "interface", "see doc/interfaces.md")
        for name, cap in caps.items():
            if cap < 1:
                raise ValueError(f"rows per call for {name} must be at least 1")
        return caps


class Universe(Section):
    index: str | None = "000016.SH"
    ts_codes: list[str] = Field(default_factory=list)

    @field_validator("ts_codes")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        return [check_ts_code(c) for c in codes]

    @model_validator(mode="after")
    def _one_source(self) -> "Universe":
        if bool(self.index) == bool(self.ts_codes):
            raise ValueError("give either an index or a list of ts_codes, not both or neither")
        if self.index:
            check_ts_code(self.index)
        return self


class FetchSettings(Section):
    section: ClassVar[str] = "fetch"
    source: Literal["auto", "tushare", "sample"] = "auto"
    # an index or a stock list, or a universe's name (`all`, `topN`, a name in
    # `universes`): then fetch runs as `stockpred fetch --universe NAME` does
    universe: Universe | str = Field(default_factory=Universe)
    indices: list[str] = Field(default_factory=lambda: ["000001.SH", "000300.SH", "000016.SH"])
    minute_codes: list[str] = Field(default_factory=lambda: ["000001.SH"])
    futures: list[str] = Field(default_factory=list)
    news_sources: list[str] = Field(default_factory=lambda: ["sina"])
    start_date: str = "20080101"
    end_date: str | None = None
    groups: list[str] = Field(default_factory=lambda: [g for g in GROUPS if g != "futures"])
    interfaces: list[str] = Field(default_factory=list)
    settle_time: str = "20:00"

    @field_validator("indices", "minute_codes")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        return [check_ts_code(c) for c in codes]

    @field_validator("start_date")
    @classmethod
    def _start(cls, value: str) -> str:
        return parse_day(value, "start_date")

    @field_validator("end_date")
    @classmethod
    def _end(cls, value: str | None) -> str | None:
        return None if value is None else parse_day(value, "end_date")

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        return _all_known(groups, GROUPS, "group", f"groups are {', '.join(GROUPS)}")

    @field_validator("interfaces")
    @classmethod
    def _interfaces(cls, names: list[str]) -> list[str]:
        return _all_known(names, CATALOGUE, "interface", "see doc/interfaces.md")

    @field_validator("settle_time")
    @classmethod
    def _settle(cls, value: str) -> str:
        if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", value):
            raise ValueError(f"settle_time must be HH:MM (Beijing time), got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "FetchSettings":
        if self.end_date is not None and self.start_date > self.end_date:
            raise ValueError(f"start {self.start_date} is after end {self.end_date}")
        return self


class _Window(Section):
    window: int = Field(gt=1)
    ma: int = Field(gt=0)


class CRSettings(Section):
    window: int = Field(26, gt=1)
    ma: list[int] = Field(default_factory=lambda: [10, 20, 40, 62])


class DMISettings(Section):
    window: int = Field(14, gt=1)
    adx: int = Field(6, gt=0)


class DMASettings(Section):
    short: int = Field(10, gt=0)
    long: int = Field(50, gt=1)
    ma: int = Field(10, gt=0)


class IndicatorSettings(Section):
    ma: list[int] = Field(default_factory=lambda: [7, 21])
    ema: list[int] = Field(default_factory=lambda: [12, 26])
    macd: tuple[int, int, int] = (12, 26, 9)
    boll: tuple[int, float] = (20, 2.0)
    kdj: tuple[int, int, int] = (9, 3, 3)
    wr: list[int] = Field(default_factory=lambda: [10, 6])
    rsi: list[int] = Field(default_factory=lambda: [6, 12, 24])
    cr: CRSettings = Field(default_factory=CRSettings)
    cci: list[int] = Field(default_factory=lambda: [14, 20])
    vr: _Window = Field(default_factory=lambda: _Window(window=26, ma=6))
    atr: int = Field(14, gt=0)
    dmi: DMISettings = Field(default_factory=DMISettings)
    trix: _Window = Field(default_factory=lambda: _Window(window=12, ma=9))
    dma: DMASettings = Field(default_factory=DMASettings)
    momentum: list[int] = Field(default_factory=lambda: [1, 5, 10, 20])
    volume: list[int] = Field(default_factory=lambda: [5, 20])

    def longest_window(self) -> int:
        cr_lag = max((int(m / 2.5 + 1) + m for m in self.cr.ma), default=0)
        return max([*self.ma, self.macd[1] + self.macd[2], self.boll[0], self.kdj[0],
                    *self.wr, *self.rsi, self.cr.window + cr_lag, *self.cci,
                    self.vr.window + self.vr.ma, self.atr, self.dmi.window + 2 * self.dmi.adx,
                    self.trix.window + self.trix.ma, self.dma.long + self.dma.ma,
                    *self.momentum, *self.volume])


class FourierSettings(Section):
    window: int = Field(250, gt=8)
    components: list[int] = Field(default_factory=lambda: [3, 6, 9])
    harmonics: int = Field(8, ge=0)

    @model_validator(mode="after")
    def _fits(self) -> "FourierSettings":
        if any(k < 1 or 2 * k >= self.window for k in self.components):
            raise ValueError("each of components must be at least 1 and below window / 2")
        return self


class ArimaSettings(Section):
    order: tuple[int, int, int] = (5, 1, 0)
    window: int = Field(250, gt=10)

    @field_validator("order")
    @classmethod
    def _supported(cls, order: tuple[int, int, int]) -> tuple[int, int, int]:
        if order[0] < 1 or order[1:] != (1, 0):
            raise ValueError("only ARIMA(p,1,0) with p >= 1 is supported, e.g. [5, 1, 0]")
        return order


class FeatureSettings(Section):
    section: ClassVar[str] = "features"
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)
    fourier: FourierSettings = Field(default_factory=FourierSettings)
    arima: ArimaSettings = Field(default_factory=ArimaSettings)
    statement_max_age_days: int = Field(400, gt=0)
    market_max_gap_days: int = Field(10, ge=0)

    def longest_window(self) -> int:
        return max(self.indicators.longest_window(), self.fourier.window,
                   self.arima.window + self.arima.order[0] + 1)


class XGBoostSettings(Section):
    n_estimators: int = Field(300, gt=0)
    max_depth: int = Field(4, gt=0)
    learning_rate: float = Field(0.05, gt=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    early_stopping_rounds: int = Field(30, gt=0)


class ImportanceSettings(Section):
    section: ClassVar[str] = "importance"
    target: Literal["next_return", "next_close", "next_direction"] = "next_return"
    train_end: str = "20161231"
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    max_abs_corr_with_close: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(25, gt=0)
    seed: int = 42
    xgboost: XGBoostSettings = Field(default_factory=XGBoostSettings)

    @field_validator("train_end")
    @classmethod
    def _day(cls, value: str) -> str:
        return parse_day(value, "train_end")


class PlotSettings(Section):
    section: ClassVar[str] = "plot"
    ts_code: str = "600036.SH"
    days: int = Field(500, gt=20)

    @field_validator("ts_code")
    @classmethod
    def _code(cls, value: str) -> str:
        return check_ts_code(value)


class NeuralSettings(Section):
    """A Keras sequence model (LSTM, GRU, TCN): architecture and training."""

    sequence_length: int = Field(20, gt=1)
    units: list[int] = Field(default_factory=lambda: [64, 64])
    dropout: float = Field(0.2, ge=0, lt=1)
    kernel_size: int = Field(3, gt=0)  # TCN only
    dilations: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])  # TCN only
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(5, gt=0)
    normalisation: Literal["global", "window"] = "global"


class FusionDQNSettings(Section):
    """`fusion+dqn` (models.fusion_dqn): the weight of its two components for each coming
    block of ``block_days`` rows, chosen by a DQN from ``alphas`` given their errors over
    the last ``block_days`` and ``lookback_days`` rows whose targets are known; the agent
    walks the validation rows ``episodes`` times (stockpred.models.fusion_dqn)."""

    section: ClassVar[str] = "models.fusion_dqn"
    alphas: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    block_days: int = Field(5, gt=0)
    lookback_days: int = Field(20, gt=1)
    episodes: int = Field(40, gt=0)
    hidden: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    # a weight does not move the next state (the components' errors), so the coming
    # block's reward is the whole value of an action: 0 keeps the target of a Q-value free
    # of another network's noisy estimate
    gamma: float = Field(0.0, ge=0, lt=1)
    epsilon_end: float = Field(0.05, ge=0, le=1)

    @field_validator("alphas")
    @classmethod
    def _weights(cls, alphas: list[float]) -> list[float]:
        if len(set(alphas)) < 2 or any(not 0 <= a <= 1 for a in alphas):
            raise ValueError("alphas must be two or more distinct weights from 0 to 1")
        return sorted(set(alphas))

    @model_validator(mode="after")
    def _windows(self) -> "FusionDQNSettings":
        if self.lookback_days < self.block_days:
            raise ValueError("lookback_days must be at least block_days")
        return self


class ModelSettings(Section):
    lstm: NeuralSettings = Field(default_factory=NeuralSettings)
    gru: NeuralSettings = Field(default_factory=NeuralSettings)
    tcn: NeuralSettings = Field(default_factory=lambda: NeuralSettings(units=[32]))
    svr_c: float = Field(1.0, gt=0)
    svr_epsilon: float = Field(0.1, ge=0)
    svr_max_rows: int = Field(4000, gt=10)
    xgboost: XGBoostSettings = Field(default_factory=XGBoostSettings)
    arima_order: tuple[int, int, int] = (5, 1, 0)
    predict_window: int = Field(10, gt=0)
    seq2seq_lambda: float = Field(0.5, gt=0, lt=1)
    fusion_dqn: FusionDQNSettings = Field(default_factory=FusionDQNSettings)
    quick: NeuralSettings = Field(default_factory=lambda: NeuralSettings(
        sequence_length=10, units=[8], epochs=2, batch_size=128, patience=1))

    @field_validator("arima_order")
    @classmethod
    def _arima(cls, order: tuple[int, int, int]) -> tuple[int, int, int]:
        return ArimaSettings._supported(order)

    def quick_sizes(self) -> "ModelSettings":
        """The sequence models at the `quick` sizes, fewer trees and rows: a smoke run."""
        return self.model_copy(update={
            "lstm": self.quick, "gru": self.quick, "tcn": self.quick,
            "svr_max_rows": min(self.svr_max_rows, 1000),
            "fusion_dqn": self.fusion_dqn.model_copy(update={"episodes": 5}),
            "xgboost": self.xgboost.model_copy(update={"n_estimators": 30})})


def _horizons(horizons: list[int]) -> list[int]:
    if not horizons or any(h < 1 for h in horizons):
        raise ValueError(f"horizons must be one or more counts of traded days from 1 on, "
                         f"not {horizons}")
    return sorted(set(horizons))


class EvaluationSettings(Section):
    section: ClassVar[str] = "evaluation"
    ts_codes: list[str] = Field(default_factory=lambda: ["600036.SH"])
    validation_start: str = "20160101"
    test_start: str = "20170101"
    test_end: str = "20181231"
    train_window_days: int = Field(1500, gt=50)
    validation_days: int = Field(120, gt=5)
    retrain_every: int = Field(60, gt=0)
    # the forecast horizons in traded days, each its own rows of the leaderboard: a row of
    # horizon h forecasts the close h traded days ahead and learns from rows whose such
    # close is known (1: the next close)
    horizons: list[int] = Field(default_factory=lambda: [1])
    models: list[str] = Field(default_factory=lambda: [
        "persistence", "drift", "arima", "svr", "xgboost", "lstm", "xgboost+vae", "lstm+vae",
        "xgboost+minutes", "lstm+minutes", "fusion+news"])
    seed: int = 42

    @field_validator("validation_start", "test_start", "test_end")
    @classmethod
    def _days(cls, value: str, info) -> str:
        return parse_day(value, info.field_name)

    @field_validator("ts_codes")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        return [check_ts_code(c) for c in codes]

    @field_validator("models")
    @classmethod
    def _models(cls, names: list[str]) -> list[str]:
        return _models_of(STOCK, names)

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, horizons: list[int]) -> list[int]:
        return _horizons(horizons)

    @model_validator(mode="after")
    def _ordered(self) -> "EvaluationSettings":
        if self.test_start > self.test_end:
            raise ValueError(f"test start {self.test_start} is after test end {self.test_end}")
        if self.test_start <= self.validation_start:
            raise ValueError(f"test start {self.test_start} must come after "
                             f"evaluation.validation_start {self.validation_start}")
        return self


class LightGBMSettings(Section):
    """qlib's LightGBM/Alpha158 benchmark settings, with early stopping on validation."""

    objective: Literal["regression", "lambdarank"] = "regression"
    n_estimators: int = Field(1000, gt=0)
    early_stopping_rounds: int = Field(50, gt=0)
    learning_rate: float = Field(0.2, gt=0)
    num_leaves: int = Field(210, gt=1)
    max_depth: int = 8
    colsample_bytree: float = Field(0.8879, gt=0, le=1)
    subsample: float = Field(0.8789, gt=0, le=1)
    reg_alpha: float = Field(205.6999, ge=0)
    reg_lambda: float = Field(580.9768, ge=0)
    min_child_samples: int = Field(20, gt=0)
    rank_bins: int = Field(10, gt=1)  # lambdarank: the label's relevance levels per day
    topk_eval: int = Field(50, gt=0)  # lambdarank: NDCG@k on validation
    threads: int = Field(2, gt=0)
    # for panels larger than one process holds: fit on the compute section's Dask cluster
    on_dask: bool = False


class CrossXGBoostSettings(Section):
    objective: Literal["regression", "rank:pairwise"] = "regression"
    n_estimators: int = Field(500, gt=0)
    early_stopping_rounds: int = Field(50, gt=0)
    max_depth: int = Field(6, gt=0)
    learning_rate: float = Field(0.05, gt=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    threads: int = Field(2, gt=0)
    # for panels larger than one process holds: fit on the compute section's Dask cluster
    on_dask: bool = False


class MLPSettings(Section):
    units: list[int] = Field(default_factory=lambda: [256, 128])
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(1e-3, gt=0)
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(4096, gt=0)
    patience: int = Field(3, gt=0)


class SequenceSettings(Section):
    """The LSTM over each stock's last ``window`` traded days (models.sequence), trained on
    ``days_per_step`` whole days a step, stopped when the validation Rank IC has not risen
    for ``patience`` epochs."""

    window: int = Field(60, gt=1)
    units: list[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.0, ge=0, lt=1)
    learning_rate: float = Field(1e-3, gt=0)
    epochs: int = Field(20, gt=0)
    patience: int = Field(3, gt=0)
    # whole days per training step, each day its own correlation in the loss
    days_per_step: int = Field(1, gt=0)


class EnsembleSettings(Section):
    """The rank average of other cross-sectional models (models.ensemble), each with its
    own section's settings."""

    members: list[str] = Field(default_factory=lambda: ["lightgbm", "mlp", "lstm_cs"])

    @field_validator("members")
    @classmethod
    def _members(cls, names: list[str]) -> list[str]:
        names = _models_of(CROSS_SECTION, names)
        if "ensemble" in names or len(set(names)) != len(names) or len(names) < 2:
            raise ValueError("an ensemble needs two or more distinct models other than itself")
        return names


class CrossSectionSettings(Section):
    """The market-wide walk-forward: models pooled over a universe, refit every
    ``retrain_every`` trading days on the trailing ``train_days`` whose labels are known,
    the last ``validation_days`` of them stopping the learners early."""

    section: ClassVar[str] = "cross_section"
    universe: str = "top800"
    models: list[str] = Field(default_factory=lambda: ["lightgbm", "xgboost_cs", "mlp"])
    label: Literal["ret_1", "ret_2"] = "ret_2"
    # the label's horizons in traded days, each its own rows of the leaderboard: at horizon
    # h ret_1 is close T -> T+h and ret_2 close T+1 -> T+1+h (1: qlib's labels)
    horizons: list[int] = Field(default_factory=lambda: [1])
    normalise: Literal["zscore", "rank"] = "zscore"
    mad_k: float = Field(3.0, gt=0)
    retrain_every: int = Field(21, gt=0)
    train_days: int = Field(1250, gt=20)
    validation_days: int = Field(250, gt=0)
    lightgbm: LightGBMSettings = Field(default_factory=LightGBMSettings)
    xgboost: CrossXGBoostSettings = Field(default_factory=CrossXGBoostSettings)
    mlp: MLPSettings = Field(default_factory=MLPSettings)
    sequence: SequenceSettings = Field(default_factory=SequenceSettings)
    ensemble: EnsembleSettings = Field(default_factory=EnsembleSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)

    @field_validator("models")
    @classmethod
    def _models(cls, names: list[str]) -> list[str]:
        return _models_of(CROSS_SECTION, names)

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, horizons: list[int]) -> list[int]:
        return _horizons(horizons)

    @model_validator(mode="after")
    def _window(self) -> "CrossSectionSettings":
        if self.validation_days >= self.train_days:
            raise ValueError("validation_days must be fewer than train_days")
        return self

    def quick_sizes(self) -> "CrossSectionSettings":
        return self.model_copy(update={
            # qlib's strong L1/L2 penalties allow no split on a smoke run's few rows
            "lightgbm": self.lightgbm.model_copy(update={"n_estimators": 20, "num_leaves": 15,
                                                         "reg_alpha": 0.0, "reg_lambda": 1.0}),
            "xgboost": self.xgboost.model_copy(update={"n_estimators": 20, "max_depth": 3}),
            "mlp": self.mlp.model_copy(update={"units": [16], "epochs": 2}),
            "sequence": self.sequence.model_copy(update={"window": 10, "units": [8],
                                                         "epochs": 2, "days_per_step": 8})})


class ExperimentSettings(Section):
    """The LSTM experiments' own settings (`stockpred train experiments`); the networks take
    the sizes of models.lstm, the univariate seq-to-seq models.seq2seq_lambda and
    models.predict_window."""

    section: ClassVar[str] = "experiments"
    # multi-feature seq-to-seq: windows of n days, the first m = round(lambda n) predicting
    # the remaining n - m closes
    feature_windows: list[tuple[int, float]] = Field(
        default_factory=lambda: [(100, 0.9), (50, 0.9), (200, 0.95)])
    # the original project's train/validation cuts of the rows before the test period
    train_fractions: list[float] = Field(default_factory=lambda: [0.9, 0.98])
    # what `--quick` runs instead of feature_windows: one short window, one fit
    quick_feature_windows: list[tuple[int, float]] = Field(default_factory=lambda: [(20, 0.9)])

    @field_validator("feature_windows", "quick_feature_windows")
    @classmethod
    def _windows(cls, windows: list[tuple[int, float]]) -> list[tuple[int, float]]:
        for n, share in windows:
            m = round(share * n)
            if not 0 < m < n:
                raise ValueError(f"window ({n}, {share}): m = round(lambda n) = {m} must be "
                                 f"at least 1 and below n")
        return windows

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if not fractions or any(not 0 < f < 1 for f in fractions):
            raise ValueError("each fraction must lie strictly between 0 and 1")
        return fractions

    def quick_sizes(self) -> "ExperimentSettings":
        return self.model_copy(update={"feature_windows": self.quick_feature_windows})


class ComputeSettings(Section):
    """Where the market-wide work runs: an existing Dask scheduler, or a LocalCluster on
    127.0.0.1 sized to the machine (``workers`` processes, one thread each)."""

    section: ClassVar[str] = "compute"
    scheduler: str | None = None  # e.g. "tcp://10.0.0.5:8786"; None: a local cluster
    # local cluster processes; None: the CPU count; 0: no cluster, compute in this process
    workers: int | None = Field(None, ge=0)
    memory_limit: str = "auto"  # per local worker, as Dask spells it ("4GB", "auto")


class QlibSettings(Section):
    """`stockpred export qlib`: with ``dir`` set, every `refresh` also brings the qlib
    provider of cross_section.universe there up to date (relative to this config's
    folder); unset, the default, refresh leaves qlib alone."""

    section: ClassVar[str] = "qlib"
    dir: str | None = None


class RefreshSettings(Section):
    section: ClassVar[str] = "refresh"
    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_REFRESH))
    train_model: str = "lstm"

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: list[str]) -> list[str]:
        return _all_known(stages, LATER_STAGES, "stage", f"stages are {', '.join(LATER_STAGES)}")

    @field_validator("train_model")
    @classmethod
    def _model(cls, name: str) -> str:
        return _models_of(STOCK, [name])[0]


class Config(Section):
    data_dir: str = "data"
    results_dir: str = "project_results"
    tushare: TushareSettings = Field(default_factory=TushareSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    importance: ImportanceSettings = Field(default_factory=ImportanceSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    news: NewsSettings = Field(default_factory=NewsSettings)
    generative: GenerativeSettings = Field(default_factory=GenerativeSettings)
    plot: PlotSettings = Field(default_factory=PlotSettings)
    refresh: RefreshSettings = Field(default_factory=RefreshSettings)
    qlib: QlibSettings = Field(default_factory=QlibSettings)
    # named universes beside the built-in `all` and `topN` (stockpred.data.universe)
    universes: dict[str, UniverseSpec] = Field(default_factory=dict)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    cross_section: CrossSectionSettings = Field(default_factory=CrossSectionSettings)
    experiments: ExperimentSettings = Field(default_factory=ExperimentSettings)
    @model_validator(mode="after")
    def _fetch_universe_named(self) -> "Config":
        name = self.fetch.universe
        if isinstance(name, str) and name not in self.universes:
            universe_from_name(name)  # its ValueError names the built-in names
        return self

    @model_validator(mode="after")
    def _selection_before_test(self) -> "Config":
        if self.importance.train_end >= self.evaluation.test_start:
            raise ValueError(f"importance.train_end {self.importance.train_end} must come "
                             f"before evaluation.test_start {self.evaluation.test_start}: "
                             f"feature selection may not read the test period")
        return self

    # where relative paths in this config are anchored (the file's folder, or the cwd)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def resolved(self, configured: str | Path) -> Path:
        """A path written in this config, absolute: a relative one follows base_dir."""
        return (self.base_dir / Path(configured).expanduser()).absolute()


def quick_config(config: Config) -> Config:
    """The one "quick" overlay (`--quick`): every model section at smoke-run sizes. Runs made
    with it say so and never enter the real leaderboard unmarked."""
    return config.model_copy(update={"models": config.models.quick_sizes(),
                                     "generative": config.generative.quick_sizes(),
                                     "cross_section": config.cross_section.quick_sizes(),
                                     "experiments": config.experiments.quick_sizes()})


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def with_overrides(config: Config, overrides: dict) -> Config:
    """``config`` with ``overrides`` (nested, as in config.json; command-line flags land
    here) merged in and validated by the same rules as config.json itself."""
    if not overrides:
        return config
    raw = _merge(config.model_dump(mode="json"), overrides)
    try:
        return Config(**raw, base_dir=config.base_dir)
    except ValidationError as exc:
        raise InputError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
        if err["loc"] and err["loc"][-1] in _TOKEN_KEYS:
            msg = (f"the token does not belong in config.json (it is shared with the "
                   f"project): put it in {TOKEN_ENV} or in {user_config_path()} as "
                   f'{{"tushare_token": "..."}}')
    return f"{where}: {msg}"


def find_project_config(start: Path | None = None) -> Path | None:
    """The config.json of the project this folder is in: the first one in ``start`` (the
    working directory) or a folder above it, so a command run from a subfolder (the
    package's, say) reads and writes the project's data, not a new ./data beside it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "config.json").is_file():
            return folder / "config.json"
    return None


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate config.json.

    ``path`` (or env STOCKPRED_CONFIG) must exist when given; otherwise the project's
    config.json (found from the working directory upwards) is used, else the built-in
    defaults (data/ under the working directory).
    """
    explicit = path or os.environ.get(CONFIG_ENV)
    file = Path(explicit) if explicit else find_project_config()
    if file is None or not file.exists():
        if explicit:
            raise InputError(f"config file {file} does not exist")
        return Config()
    try:
        raw = json.loads(read_utf8(file))
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{file}: the top level must be a JSON object")
    try:
        return Config(**raw, base_dir=file.resolve().parent)
    except ValidationError as exc:
        raise InputError(f"{file}: {_first_error(exc)}") from None


def config_as_json(config: Config) -> str:
    return json.dumps(config.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def read_utf8(file: Path) -> str:
    """The file's text; one that is not UTF-8 is an input error naming the first bad byte."""
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}): save it as UTF-8") from None


# user configs already warned of in this process: the token is looked up by every stage
_WARNED_READABLE: set[Path] = set()


def _warn_if_others_can_read(file: Path) -> None:
    if file.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH) and file not in _WARNED_READABLE:
        _WARNED_READABLE.add(file)
        print(f"warning: {file} holds the tushare token and other users can read it: "
              f"run `chmod 600 {file}`", file=sys.stderr)


def user_config_path() -> Path:
    if os.environ.get(USER_CONFIG_ENV):
        return Path(os.environ[USER_CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "stockpred" / "config.json"


def resolve_token() -> str | None:
    """The tushare token from TUSHARE_TOKEN, else from the user config outside the repo."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    file = user_config_path()
    if not file.exists():
        return None
    try:
        token = json.loads(read_utf8(file)).get("tushare_token", "")
    except (json.JSONDecodeError, OSError, AttributeError):
        raise InputError(f"{file}: cannot read tushare_token from it (expected "
                         '{"tushare_token": "..."})') from None
    token = str(token).strip()
    if token:
        _warn_if_others_can_read(file)
    return token or None


def api_url(config: Config) -> str:
    return os.environ.get(API_URL_ENV) or config.tushare.api_url
