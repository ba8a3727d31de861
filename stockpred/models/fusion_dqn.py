"""Fusion with time-varying weights set by deep RL (`fusion+dqn`): alpha_t * Z0 + (1 -
alpha_t) * Z1, where alpha_t, the weight of the price model for a block of ``block_days``
rows, is chosen by a DQN (stockpred.tuning.dqn) from a few weights (``alphas``).

The state at the close of a block's first row is each component's recent record: its RMSE
and mean error of the return over the last ``block_days`` and the last ``lookback_days``
rows whose targets are known at that close (StockData.next_dates; at horizon h a row's
target is known h rows later), in units of the return's spread. The chosen weight holds
for that row and the next ``block_days - 1``; blocks start at the row of the fit's origin
(the last close its rows read: the first row a walk-forward block forecasts) and every
``block_days`` rows from there. So a forecast reads only errors known by the close of its
block's first day.

Training uses the validation rows alone, which precede every row the walk-forward scores
and which the components' fit did not train on (they only stopped it early): the agent
walks them ``episodes`` times, each pass starting its blocks at another offset; a state
there reads validation errors only (a training row's error is in-sample). Its reward for
a block is the squared return error of equal weights less that of its weight, over the
spread squared. The components, their pair and the news rule are FusionForecaster's.

A weight does not change the next state, which is the components' errors: the task is a
contextual bandit, and ``gamma`` 0 (the default) learns each Q-value as its block's mean
reward; the replay buffer and epsilon-greedy exploration do the work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.data.store import atomic_save
from stockpred.dataset import DailyNews, StockData
from stockpred.models.fusion import FusionForecaster, fused

Q_FILE = "q.keras"
# per component, RMSE and mean error over the short and the long window
STATE_SIZE = 8
# the return's spread when no validation row gives one (about a day's, in A-shares)
DEFAULT_SPREAD = 0.02


def _joined(history: StockData, later: StockData) -> StockData:
    """``history``'s rows followed by ``later``'s (a stock's training then validation
    rows), so that a component's window reaches back past the first validation row."""
    news = None
    if history.news is not None and later.news is not None:
        news = DailyNews(np.concatenate([history.news.vectors, later.news.vectors]),
                         np.concatenate([history.news.present, later.news.present]),
                         history.news.basis)
    return StockData(history.ts_code, np.concatenate([history.dates, later.dates]),
                     np.concatenate([history.close, later.close]),
                     pd.concat([history.features, later.features], ignore_index=True),
                     np.concatenate([history.next_close, later.next_close]),
                     np.concatenate([history.next_dates, later.next_dates]), news,
                     history.horizon)


def _trailing(values: np.ndarray, known: np.ndarray, rows: int) -> np.ndarray:
    """At each decision, the mean of ``values`` over the ``rows`` rows before ``known`` (the
    count of rows whose targets are known then); NaN with fewer, or with a NaN among them."""
    missing = np.concatenate([[0], np.cumsum(np.isnan(values))])
    total = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
    start = known - rows
    means = np.full(len(known), np.nan)
    ok = start >= 0
    ok[ok] = missing[known[ok]] == missing[start[ok]]
    means[ok] = (total[known[ok]] - total[start[ok]]) / rows
    return means


class DQNFusionForecaster(FusionForecaster):
    """Settings: FusionForecaster's pair (``components`` and each one's settings) and
    ``dqn``, the models.fusion_dqn section."""

    name = "fusion+dqn"
    weighs_against = "fusion"

    @classmethod
    def settings_from(cls, config):
        settings = super().settings_from(config)
        settings.pop("alpha")
        return {**settings, "dqn": config.models.fusion_dqn.model_dump()}

    @classmethod
    def config_sections(cls) -> tuple[str, ...]:
        return (*super().config_sections(), "models.fusion_dqn")

    @property
    def alphas(self) -> np.ndarray:
        return np.asarray(self.settings["dqn"]["alphas"], dtype=float)

    def _returns(self, data: StockData, p0: np.ndarray, p1: np.ndarray):
        """Actual and forecast returns (the price model's, the partner's) of every row."""
        return data.next_return, p0 / data.close - 1, p1 / data.close - 1

    def _states(self, data: StockData, decisions: np.ndarray, actual, z0, z1,
                first_known: int = 0) -> np.ndarray:
        """The state at each decision row: per component and window, RMSE and mean error
        over the rows whose targets are known at that row's close, from row ``first_known``
        on; NaN where a window lacks them."""
        s = self.settings["dqn"]
        known = np.searchsorted(data.next_dates, data.dates[decisions], side="right")
        columns = []
        for z in (z0, z1):
            error = actual - z
            error[:first_known] = np.nan
            for rows in (s["block_days"], s["lookback_days"]):
                columns.append(np.sqrt(_trailing(error ** 2, known, rows)))
                columns.append(_trailing(error, known, rows))
        return np.column_stack(columns) / self.spread_

    def fit(self, train, valid=None, log_dir=None, verbose=0):
        from stockpred.tuning.dqn import DQNAgent, DQNSettings

        s = self.settings["dqn"]
        self.components_ = self._fitted_components(train, valid)
        self.origin_ = max((str(stock.next_dates[-1]) for stock in [*train, *(valid or [])]
                            if len(stock)), default="")
        walks = self._validation_walks(train, valid or [])
        passes = [walks[episode % len(walks)] for episode in range(s["episodes"])] if walks \
            else []
        agent = DQNAgent(STATE_SIZE, len(self.alphas), DQNSettings(
            hidden=s["hidden"], learning_rate=s["learning_rate"], gamma=s["gamma"],
            epsilon_end=s["epsilon_end"],
            # epsilon reaches its floor after three quarters of the steps
            epsilon_decay_steps=max(1, sum(len(w[0]) for w in passes) * 3 // 4)), self.seed)
        for states, rewards in passes:
            for i, state in enumerate(states):
                action = agent.act(state)
                last = i == len(states) - 1
                agent.remember(state, action, float(rewards[i, action]),
                               states[i if last else i + 1], last)
        self.q_ = agent.q
        return self

    def _validation_walks(self, train, valid) -> list[tuple[np.ndarray, np.ndarray]]:
        """(states, each weight's reward) of the blocks of every validation stock, one walk
        per stock and offset of the first block; sets ``spread_``, the validation returns'
        standard deviation."""
        block = self.settings["dqn"]["block_days"]
        history = {stock.ts_code: stock for stock in train}
        series = []
        for stock in valid:
            data = _joined(history[stock.ts_code], stock) if stock.ts_code in history else stock
            p0, p1, where = self._forecasts(data)
            series.append((data, len(data) - len(stock), *self._returns(data, p0, p1), where))
        actual = np.concatenate([v[2][v[1]:] for v in series]) if series else np.array([])
        actual = actual[np.isfinite(actual)]
        self.spread_ = float(np.std(actual)) if len(actual) > 1 else DEFAULT_SPREAD
        walks = []
        for offset in range(block):
            for data, first, actual, z0, z1, where in series:
                rows = np.arange(first + offset, len(data) - block + 1, block)
                states = self._states(data, rows, actual, z0, z1, first)
                rewards = np.array([self._rewards(*(v[row:row + block]
                                                    for v in (actual, z0, z1, where)))
                                    for row in rows]).reshape(len(rows), len(self.alphas))
                usable = np.isfinite(states).all(axis=1) & np.isfinite(rewards).all(axis=1)
                if usable.any():
                    walks.append((states[usable], rewards[usable]))
        return walks

    def _rewards(self, actual, z0, z1, where) -> list[float]:
        """Each weight's reward over one block: equal weights' mean squared return error
        less its own, over the spread squared."""
        equal = np.mean((actual - fused(0.5, z0, z1, where)) ** 2)
        return [(equal - np.mean((actual - fused(alpha, z0, z1, where)) ** 2))
                / self.spread_ ** 2 for alpha in self.alphas]

    def weights(self, data: StockData, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
        """The weight of the price model at every row of ``data``, given the components'
        forecasts ``p0`` and ``p1`` (NaN where the state at its block's first row is not
        known yet)."""
        block = self.settings["dqn"]["block_days"]
        anchor = np.searchsorted(data.dates, self.origin_, side="left")
        row = np.arange(len(data))
        decision = np.maximum(row - (row - anchor) % block, 0)
        rows = np.unique(decision)
        states = self._states(data, rows, *self._returns(data, p0, p1))
        ready = np.isfinite(states).all(axis=1)
        chosen = np.full(len(rows), np.nan)
        if ready.any():
            values = np.asarray(self.q_(states[ready].astype("float32"), training=False))
            chosen[ready] = self.alphas[np.argmax(values, axis=1)]
        return chosen[np.searchsorted(rows, decision)]

    def predict(self, data: StockData) -> np.ndarray:
        p0, p1, where = self._forecasts(data)
        alpha = self.weights(data, p0, p1)
        return np.where(np.isnan(alpha), np.nan, fused(alpha, p0, p1, where))

    def save(self, folder: Path) -> None:
        super().save(folder)
        atomic_save(Path(folder) / Q_FILE, self.q_.save)

    def _state(self):
        return {"spread": self.spread_, "origin": self.origin_}

    def _restore(self, state, folder: Path):
        from stockpred.runtime import keras_seeded, native_stderr_to_log

        self.spread_, self.origin_ = state["spread"], state["origin"]
        self.components_ = [FusionForecaster.load(folder / name) for name in self.parts]
        keras = keras_seeded(self.seed)
        with native_stderr_to_log():
            self.q_ = keras.models.load_model(folder / Q_FILE)

