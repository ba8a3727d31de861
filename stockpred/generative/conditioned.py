"""The WGAN conditioned on more than prices: `wgan+minutes` and `wgan+news`.

Each is the WGAN (stockpred.generative.wgan) whose condition window carries, beside the
standardised log returns, context channels known by each row's close; the generator reads
them in its window and the critic in its sequence (holding the last day's value over the
path), so both learn the paths that follow a kind of day:

- `wgan+minutes`: the minute-bar day codes of generative.minutes.ts_code (`stockpred train
  minutes`), which the stage joins onto the features as for any `<model>+minutes`
  (stockpred.dataset.with_codes); standardised with the training rows' statistics, a day
  without a code (before the minute bars begin) reading the training median.
- `wgan+news`: a news mood, the day's mean article vector (StockData.news, attached by
  stockpred.news.forecaster.with_news) projected on the first ``news_dims`` principal
  directions of the days with articles among the rows handed to fit (training and
  validation: their inputs, no target), each scaled to unit variance on them; a
  day without articles reads 0, the training days' mean mood. As for the news model, the
  offline encoder's vectors carry the vocabulary of every article before news.fit_end, so
  a fit whose last known close is before fit_end learns no projection: its mood is 0 on
  every day and it is the plain WGAN with a constant channel.

The same seed draws the same noise as `wgan`'s, so a row's three forecasts differ only by
what conditions them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stockpred.dataset import DailyNews, Standardizer, StockData
from stockpred.errors import InputError
from stockpred.generative.minutes import code_columns_in
from stockpred.generative.wgan import WGANForecaster

log = logging.getLogger(__name__)


class MinuteWGAN(WGANForecaster):
    name = "wgan+minutes"
    reads_codes = ("minutes",)

    def _fit_context(self, train: list[StockData], valid: list[StockData]) -> None:
        self.code_columns_ = code_columns_in(train[0].features.columns)
        if not self.code_columns_:
            raise InputError("wgan+minutes conditions on the minute-bar day codes, but its "
                             "data carry none: run `stockpred train minutes`, then evaluate "
                             "(which joins them)")
        self.code_scaler_ = Standardizer().fit(np.vstack(
            [t.features[self.code_columns_].to_numpy(float) for t in train]))

    def _context(self, stock: StockData) -> np.ndarray:
        missing = [c for c in self.code_columns_ if c not in stock.features.columns]
        if missing:
            raise InputError(f"wgan+minutes was fit on the minute codes {self.code_columns_}; "
                             f"the data of {stock.ts_code} lack {', '.join(missing)}")
        return self.code_scaler_.transform(stock.features[self.code_columns_].to_numpy(float))

    def _state(self) -> dict:
        return {**super()._state(), "code_columns": self.code_columns_,
                "code_scaler": self.code_scaler_.to_json()}

    def _restore(self, state: dict, folder: Path) -> None:
        super()._restore(state, folder)
        self.code_columns_ = state["code_columns"]
        self.code_scaler_ = Standardizer.from_json(state["code_scaler"])


class NewsWGAN(WGANForecaster):
    name = "wgan+news"
    reads_news = True
    # with_news reads these to decide which articles a stock's close reads
    sections = ("generative.wgan", "news.forecaster.stock_articles", "fetch.indices",
                "news.seq2seq.index_code")

    def _fit_context(self, train: list[StockData], valid: list[StockData]) -> None:
        # the projection is unsupervised: it reads the articles of the validation rows too
        # (known before the first day forecast), which the sample's short news history needs
        seen = [*train, *valid]
        if any(t.news is None for t in seen):
            raise InputError("wgan+news conditions on the news known by each close, but its "
                             "data carry none: run `stockpred embed-news` (evaluate attaches "
                             "the vectors)")
        self.basis_ = train[0].news.basis
        dims = int(self.settings["news_dims"])
        self.center_ = self.components_ = None
        origin = max((str(d) for t in seen for d in t.next_dates[np.isfinite(t.next_close)]),
                     default="")
        fit_end = self.basis_.get("fit_end")
        if fit_end and origin < fit_end:
            log.info("wgan+news: its last known close %s is before news.fit_end %s, the end of "
                     "the encoder's articles: no news mood", origin, fit_end)
            self.mood_dims_ = dims
            return
        x = np.concatenate([t.news.vectors[t.news.present] for t in seen])
        if len(x) <= dims:
            raise InputError(f"wgan+news needs more than {dims} training days with articles "
                             f"to fit its news mood; it has {len(x)}")
        self.center_ = x.mean(axis=0)
        _, _, directions = np.linalg.svd(x - self.center_, full_matrices=False)
        components = directions[:dims].T
        scale = ((x - self.center_) @ components).std(axis=0)
        self.components_ = components / np.where(scale > 0, scale, 1.0)
        self.mood_dims_ = dims

    def _context(self, stock: StockData) -> np.ndarray:
        mood = np.zeros((len(stock), self.mood_dims_))
        if self.components_ is None:
            return mood
        news = DailyNews.of(stock, self.basis_, "wgan+news")
        present = news.present
        mood[present] = (news.vectors[present] - self.center_) @ self.components_
        return mood

    def _state(self) -> dict:
        as_list = (lambda v: None if v is None else v.tolist())
        return {**super()._state(), "basis": self.basis_, "mood_dims": self.mood_dims_,
                "center": as_list(self.center_), "components": as_list(self.components_)}

    def _restore(self, state: dict, folder: Path) -> None:
        super()._restore(state, folder)
        self.basis_, self.mood_dims_ = state["basis"], state["mood_dims"]
        self.center_, self.components_ = (None if state[k] is None else np.asarray(state[k])
                                          for k in ("center", "components"))
