"""The `news` section of config.json (kept here so the news code owns its settings)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from stockpred.settings_base import Section, parse_day

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class BertServiceSettings(Section):
    host: str = "localhost"
    port: int = Field(5555, gt=0)
    port_out: int = Field(5556, gt=0)
    timeout_ms: int = Field(30000, gt=0)
    batch_size: int = Field(256, gt=0)


class NewsSeq2SeqSettings(Section):
    """The news encoder-decoder: samples, split, architecture and training."""

    section: ClassVar[str] = "news.seq2seq"
    index_code: str = "000001.SH"
    # in-session samples: news of the last `lookback_minutes` clock minutes (one step a
    # minute) -> the index's cumulative return over the next `horizon_minutes` bars
    lookback_minutes: int = Field(30, gt=0)
    horizon_minutes: int = Field(30, gt=0)
    # off-hours samples: news after the previous close and before `open_cutoff` on the
    # target day, in `offhours_steps` steps of `offhours_step_minutes` ending at the
    # cutoff (older articles fall in the first step) -> the day's opening gap
    offhours_steps: int = Field(40, gt=0)
    offhours_step_minutes: int = Field(30, gt=0)
    open_cutoff: str = "09:25"
    # minutes without news: "noise" (Gaussian noise, std = noise_scale x the training
    # vectors' component std) or "mask" (zeros skipped by keras Masking)
    fill: Literal["noise", "mask"] = "mask"
    noise_scale: float = Field(1.0, gt=0)
    compare_fill: bool = True
    # split by the time a forecast is made: train before valid_start, validate before
    # test_start, test up to test_end
    valid_start: str = "20180701"
    test_start: str = "20180801"
    test_end: str = "20181231"
    units: int = Field(32, gt=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(60, gt=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(10, gt=0)
    seed: int = 42

    @field_validator("valid_start", "test_start", "test_end")
    @classmethod
    def _days(cls, value: str, info) -> str:
        return parse_day(value, info.field_name)

    @field_validator("open_cutoff")
    @classmethod
    def _cutoff(cls, value: str) -> str:
        if not _CLOCK.match(value) or not "09:15" <= value <= "09:30":
            raise ValueError(f"open_cutoff must be HH:MM between 09:15 and 09:30, got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "NewsSeq2SeqSettings":
        if not self.valid_start < self.test_start <= self.test_end:
            raise ValueError("need valid_start < test_start <= test_end")
        return self


class NewsForecasterSettings(Section):
    """The daily news model (`news` in the model registry, the partner of `fusion+news`):
    the mean vector of the articles known by a day's close -> the next day's return."""

    section: ClassVar[str] = "news.forecaster"
    # the articles a stock's forecast reads: those whose tushare `company` tag names it, or
    # every article (the market's news, which a code in fetch.indices always reads)
    stock_articles: Literal["company", "all"] = "company"
    ridge_alpha: float = Field(1.0, gt=0)
    # fewer training days with articles than this: no model, zero return on every day
    min_days: int = Field(20, ge=2)


class FinetuneSettings(Section):
    """The fine-tuned encoder: a small transformer over character n-gram tokens, trained on
    the articles before news.fit_end to tell whether the index (news.seq2seq.index_code)
    rises over the trading day after each article's first close; its vectors are the
    activations of the layer before that prediction."""

    section: ClassVar[str] = "news.finetune"
    # keras TextVectorization: characters (Chinese has no spaces), with their n-grams up to
    # `ngrams` after them, the `vocabulary` most frequent in the fitted articles, the first
    # `sequence_length` tokens of the article's text (title first)
    vocabulary: int = Field(6000, gt=2)
    ngrams: int = Field(1, ge=1, le=3)
    sequence_length: int = Field(128, gt=1)
    width: int = Field(32, gt=0)
    heads: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    # the latest `validation_fraction` of the fitted articles stop the training early
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    patience: int = Field(4, gt=0)
    seed: int = 42
    # a user-supplied pre-trained .keras model (relative to config.json's folder): its
    # layers are loaded by name where their weights' shapes match, and its TextVectorization
    # layer, if it has one, brings its vocabulary; nothing is downloaded
    checkpoint: str | None = None


class NewsSettings(Section):
    section: ClassVar[str] = "news"
    encoder: Literal["offline", "bert-service", "finetuned"] = "offline"
    dimensions: int = Field(64, gt=1)
    # offline encoder: character n-gram TF-IDF + TruncatedSVD, fit only on articles
    # published before fit_end (no later article shapes any vector)
    fit_end: str = "20180701"
    ngram_range: tuple[int, int] = (1, 3)
    # an article's text: its title, then the first text_max_chars characters of its content
    text_max_chars: int = Field(1000, ge=0)
    bert: BertServiceSettings = Field(default_factory=BertServiceSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    seq2seq: NewsSeq2SeqSettings = Field(default_factory=NewsSeq2SeqSettings)
    forecaster: NewsForecasterSettings = Field(default_factory=NewsForecasterSettings)

    @classmethod
    def encoder_sections(cls) -> tuple[str, ...]:
        """What the news vectors depend on: every key of the section but the models that
        read the vectors."""
        # the fine-tuned encoder learns the moves of the seq2seq's index
        return (*(f"{cls.section}.{key}" for key in cls.model_fields
                  if key not in ("seq2seq", "forecaster")),
                f"{NewsSeq2SeqSettings.section}.index_code")

    @field_validator("fit_end")
    @classmethod
    def _fit_end(cls, value: str) -> str:
        return parse_day(value, "fit_end")

    @field_validator("ngram_range")
    @classmethod
    def _ngrams(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1] <= 6:
            raise ValueError(f"ngram_range must be [low, high] with 1 <= low <= high <= 6, "
                             f"got {list(value)}")
        return value
