"""The news model (`news`, the partner of `fusion+news`): the articles known by a day's
close -> the next day's return.

Row t of a stock (day t's close) reads the articles published after the close of its
previous row and before 15:00 of day t; a stamp of 15:00 or later belongs to the next row.
tushare stamps to the minute, so an article stamped 14:59 was out before the close. A
stock's first row reads the day before it. A stock reads the articles whose tushare
``company`` tag names it (its name from ``stock_basic``; the sample tags SSE 50 companies),
an index of ``fetch.indices`` every article (``news.forecaster.stock_articles = "all"``
gives every code every article). A day's input is the mean vector of its articles
(`stockpred embed-news`), which the stage building the model's dataset attaches as
StockData.news (``with_news``): the model never reads the store. A ridge regression fit on
the training days with articles maps it to the next day's return. Its intercept, the mean
return of those few days, is drift rather than news and is dropped: the forecast is what
the day's news says beyond the training days' average news. A day without articles gets a
zero return, "no information", as does every day when fewer than ``min_days`` training days
had articles; ``informed`` says which days carry a news forecast, so that a fusion falls
back to its price model on the others.

Leakage: the offline encoder's vocabulary and SVD basis (the fine-tuned encoder's
vocabulary and weights) are fit on the articles published before ``news.fit_end``
(vectors.json records it). A vector holds text only, never a price,
but an encoder fit on articles up to fit_end writes their vocabulary and topics into the
vector of every earlier article, so a model that uses the vectors at a time before fit_end
reads text from its future. The model is therefore fit only when the last close it is
handed (the latest target among its training and validation rows, the fit's origin) falls
on or after fit_end; an earlier fit has no model. A forecast for a day after the origin is
then made from text known by that day; forecasts for days before the origin are backcasts
of a model from their future, as any model's predictions of its own training rows, and
walk-forward never scores them. The fine-tuned encoder also learned the index's moves
known before fit_end, so the vectors of earlier days were trained on those days' outcomes:
a fit whose validation days fall before fit_end (fusion+news's alpha) validates on them
optimistically, though no test day after the origin is touched. A bert-service encoder was
trained elsewhere, on a corpus whose dates its provider knows: vectors.json has no fit_end
and the rule does not apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.data.store import RawStore
from stockpred.dataset import DailyNews, StockData
from stockpred.errors import MissingInputError
from stockpred.layout import Paths
from stockpred.models.base import Forecaster
from stockpred.news.embed import read_vectors, vector_columns
from stockpred.news.samples import article_times, step_means

log = logging.getLogger(__name__)

CLOSE = np.timedelta64(15 * 60, "m")
# what identifies the embed-news run that made the vectors: a model fit on one basis
# cannot read the vectors of another
BASIS = ("encoder", "dimensions", "fit_end", "finished_at")


@dataclass(frozen=True)
class Articles:
    """Stored news vectors in time order: minute stamps, vectors, each one's company tags."""

    times: np.ndarray  # datetime64[m]
    vectors: np.ndarray
    companies: np.ndarray  # frozensets of company names
    basis: dict

    def naming(self, company: str) -> "Articles":
        keep = np.array([company in tags for tags in self.companies], dtype=bool)
        return Articles(self.times[keep], self.vectors[keep], self.companies[keep], self.basis)


def read_articles(paths: Paths) -> Articles:
    """The stored news vectors; MissingInputError naming `stockpred embed-news`."""
    vectors, manifest = read_vectors(paths)
    times = article_times(vectors)
    dated = times.notna().to_numpy()
    vectors, times = vectors[dated], times[dated].to_numpy().astype("datetime64[m]")
    order = np.argsort(times, kind="stable")
    tags = vectors["company"].fillna("").astype(str).str.split("|")
    return Articles(times[order], vectors[vector_columns(vectors)].to_numpy(np.float64)[order],
                    np.array([frozenset(filter(None, t)) for t in tags], dtype=object)[order],
                    {key: manifest.get(key) for key in BASIS})


def close_rows(times: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """For each article, the row of ``dates`` (YYYYMMDD, ascending) whose 15:00 close is the
    first after it, or -1: published after the last close, or over a day before the first."""
    closes = pd.to_datetime(dates, format="%Y%m%d").to_numpy().astype("datetime64[m]") + CLOSE
    if not len(closes):
        return np.full(len(times), -1)
    row = np.searchsorted(closes, times, side="right")
    row[(row == len(closes)) | (times < closes[0] - np.timedelta64(1, "D"))] = -1
    return row


def _company_names(paths: Paths) -> dict[str, str]:
    try:
        names = RawStore(paths.raw_dir).read("stock_basic", columns=["ts_code", "name"])
    except MissingInputError:
        return {}
    return dict(zip(names["ts_code"], names["name"].astype(str)))


def with_news(stocks: list[StockData], config, paths: Paths) -> list[StockData]:
    """Each stock with the news its close reads (StockData.news), for the models that read
    it: whoever builds their dataset attaches it, so a model never reads the store. Without
    stored vectors the stocks come back as they were, and the news model forecasts no
    change."""
    try:
        articles = read_articles(paths)
    except MissingInputError as exc:
        log.warning("news model: %s; it forecasts a zero return on every day", exc)
        return stocks
    tagged = config.news.forecaster.stock_articles != "all"
    market_wide = {*config.fetch.indices, config.news.seq2seq.index_code}
    names = _company_names(paths) if tagged else {}
    attached = []
    for stock in stocks:
        own = articles
        if tagged and stock.ts_code not in market_wide:
            if stock.ts_code not in names:
                log.warning("news model: no stock_basic name for %s, so no company-tagged "
                            "articles: zero return forecasts (run `stockpred fetch`)",
                            stock.ts_code)
            own = articles.naming(names.get(stock.ts_code))
        row = close_rows(own.times, stock.dates)
        means, present = step_means(own.vectors[row >= 0], row[row >= 0], len(stock))
        attached.append(replace(stock, news=DailyNews(means.astype(np.float64), present,
                                                      articles.basis)))
    return attached


class NewsForecaster(Forecaster):
    name = "news"
    reads_news = True
    # fetch.indices and news.seq2seq.index_code: the stocks that read every article
    sections = ("news.forecaster", "fetch.indices", "news.seq2seq.index_code")

    @classmethod
    def settings_from(cls, config):
        return config.news.forecaster.model_dump(mode="json")

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        self.origin_ = max((str(day) for s in [*train, *(valid or [])]
                            for day in s.next_dates[np.isfinite(s.next_close)]), default=None)
        self.coef_ = self.center_ = self.basis_ = None
        self.fit_days_ = 0
        if not train or any(stock.news is None for stock in train):
            return self  # no stored vectors: with_news said so
        self.basis_ = train[0].news.basis
        fit_end = self.basis_["fit_end"]
        if self.basis_["encoder"] is None:
            log.warning("news model: no vectors.json beside the news vectors, so no telling "
                        "which articles fit their encoder: zero return forecasts")
            return self
        if fit_end and (self.origin_ is None or self.origin_ < fit_end):
            log.info("news model: its last known close %s is before news.fit_end %s, the end "
                     "of the encoder's articles: no model", self.origin_, fit_end)
            return self
        usable = [s.news.present & np.isfinite(s.next_return) for s in train]
        x = np.concatenate([s.news.vectors[rows] for s, rows in zip(train, usable)])
        y = np.concatenate([s.next_return[rows] for s, rows in zip(train, usable)])
        self.fit_days_ = len(y)
        if len(y) < self.settings["min_days"]:
            return self
        # ridge on centred inputs and returns: the intercept (their mean return) is dropped
        self.center_ = x.mean(axis=0)
        centred = x - self.center_
        penalty = self.settings["ridge_alpha"] * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(centred.T @ centred + penalty, centred.T @ (y - y.mean()))
        return self

    def _forecast(self, data: StockData) -> tuple[np.ndarray, np.ndarray]:
        """The next-day return of every row and which rows the news informs."""
        returns, present = np.zeros(len(data)), np.zeros(len(data), bool)
        if self.coef_ is None:
            return returns, present
        news = DailyNews.of(data, self.basis_, "news model")
        present = news.present
        returns[present] = (news.vectors[present] - self.center_) @ self.coef_
        return returns, present

    def informed(self, data: StockData) -> np.ndarray:
        """Which rows have a news forecast (the others forecast no change)."""
        return self._forecast(data)[1]

    def predict(self, data: StockData) -> np.ndarray:
        return data.close * (1 + self._forecast(data)[0])

    def _state(self):
        as_list = (lambda v: None if v is None else v.tolist())
        return {"origin": self.origin_, "fit_days": self.fit_days_, "basis": self.basis_,
                "coef": as_list(self.coef_), "center": as_list(self.center_)}

    def _restore(self, state, folder: Path):
        self.origin_, self.fit_days_, self.basis_ = (state["origin"], state["fit_days"],
                                                     state["basis"])
        self.coef_, self.center_ = (None if state[k] is None else np.asarray(state[k])
                                    for k in ("coef", "center"))
