"""Cross-sectional models: one score per (day, stock) of a universe, learned pooled over
stocks and days from factors normalised day by day (stockpred.dataset.FactorPanel).

The same contract as the forecasters (scikit-learn's): ``__init__`` stores settings, ``fit``
returns self and learned state ends in ``_``, ``clone`` gives an unfitted copy for
walk-forward, ``save``/``load`` round-trip through a folder with atomic writes. Settings
come from config.json's cross_section section (``settings_from``). A higher score means a
higher expected return over the label's horizon; only the order within a day matters.
The naive scores are models too: the last day's return and a random score.
"""

from __future__ import annotations

import threading
import time
import zlib
from abc import abstractmethod
from pathlib import Path

import numpy as np

from stockpred.data.store import atomic_save
from stockpred.dataset import RANK_TO_UNIT_VARIANCE, FactorPanel, matrix_runs
from stockpred.errors import ComputeError, InputError
from stockpred.models.base import Model
from stockpred.models.learned import fit_xgboost
from stockpred.models.names import CROSS_SECTION
from stockpred.runtime import keras_seeded, native_stderr_to_log


# how often a distributed fit's watcher asks the scheduler whether a worker died
WATCH_S = 0.5


class CrossSectionalModel(Model):
    """A model of one score per (day, stock) of a universe."""

    state_file = "model.json"
    world = CROSS_SECTION

    @abstractmethod
    def fit(self, train: FactorPanel, valid: FactorPanel | None = None
            ) -> "CrossSectionalModel":
        """Learn scores from the rows of ``train`` whose label is known."""

    @abstractmethod
    def predict(self, panel: FactorPanel) -> np.ndarray:
        """One score per row of ``panel``."""


def _known(panel: FactorPanel) -> FactorPanel:
    """The rows with a label; the panel itself when all have one (walk-forward hands over
    only such rows), so a market-scale fit holds no second copy of its factors."""
    known = np.isfinite(panel.y)
    return panel if known.all() else panel.rows(known)


class LastReturn(CrossSectionalModel):
    """The cross-sectional twin of persistence: today's return as the score (momentum;
    a negative IC means short-term reversal)."""

    name = "last_return"

    def fit(self, train, valid=None):
        return self

    def predict(self, panel):
        return panel.last_return.astype(np.float64)


class RandomScore(CrossSectionalModel):
    """A score drawn from (seed, day, stock) alone, whatever other rows are present."""

    name = "random"

    def fit(self, train, valid=None):
        return self

    def predict(self, panel):
        keys = panel.keys["trade_date"] + panel.keys["ts_code"]
        seeds = [zlib.crc32(f"{self.seed}:{k}".encode()) for k in keys]
        return np.array([np.random.default_rng(s).random() for s in seeds])


class LightGBMModel(CrossSectionalModel):
    """LightGBM on the factors: a regression on the ranked label (qlib's Alpha158 anchor), or
    LambdaRank with each day a query (``objective: lambdarank``, label in ``rank_bins``)."""

    name = "lightgbm"
    sections = ("cross_section.lightgbm",)
    uses_validation = True
    MODEL_FILE = "model.lgb.txt"

    @classmethod
    def settings_from(cls, config):
        return config.cross_section.lightgbm.model_dump()

    def _params(self) -> dict:
        s = self.settings
        params = {k: s[k] for k in ("learning_rate", "num_leaves", "max_depth",
                                    "colsample_bytree", "subsample", "reg_alpha",
                                    "reg_lambda", "min_child_samples")}
        params.update(objective=s["objective"], subsample_freq=1, random_state=self.seed,
                      n_jobs=s["threads"], verbose=-1, deterministic=True, force_col_wise=True)
        return params

    def _target(self, panel: FactorPanel):
        if self.settings["objective"] != "lambdarank":
            return panel.y, None
        bins = int(self.settings["rank_bins"])
        levels = np.clip((panel.y / RANK_TO_UNIT_VARIANCE + 0.5) * bins, 0, bins - 1)
        # rows come sorted by day, so each day's rows are one query group
        return levels.astype(int), np.unique(panel.dates, return_counts=True)[1]

    def fit(self, train, valid=None):
        import lightgbm

        train = _known(train)
        if self.settings["on_dask"]:
            self.model_ = self._fit_on_dask(train, valid)
            return self
        y, group = self._target(train)
        valid = _known(valid) if valid is not None else None
        if valid is not None and not len(valid):
            valid = None
        # the estimator's own fit would gather the training rows into one matrix beside
        # the panel: its parameters go to lightgbm.train instead, with Datasets built from
        # views of the panel's rows (lightgbm.Dataset over a list of matrices is the one
        # over their concatenation: LGBM_DatasetCreateFromMat is CreateFromMats of one)
        estimator = (lightgbm.LGBMRanker if group is not None else lightgbm.LGBMRegressor)(
            n_estimators=self.settings["n_estimators"], **self._params())
        if group is not None:  # what LGBMRanker.fit sets before its parameters are read
            estimator._eval_at = (1, 2, 3, 4, 5) if valid is None else \
                [self.settings["topk_eval"]]
        params = estimator._process_params(stage="fit")
        metric = params["metric"]
        params["metric"] = [m for m in (metric if isinstance(metric, list) else [metric])
                            if m is not None]
        train_set = lightgbm.Dataset(matrix_runs(train.x), label=y, group=group,
                                     params=params)
        valid_sets, callbacks = [], []
        if valid is not None:
            vy, vgroup = self._target(valid)
            valid_sets.append(lightgbm.Dataset(matrix_runs(valid.x), label=vy, group=vgroup,
                                               params=params))
            callbacks.append(lightgbm.early_stopping(self.settings["early_stopping_rounds"],
                                                     verbose=False))
        booster = lightgbm.train(params, train_set, self.settings["n_estimators"],
                                 valid_sets=valid_sets, feval=[], callbacks=callbacks)
        booster.free_dataset()  # the binned rows, once the trees are grown
        self.model_ = _BoosterScores(booster)
        return self

    def _fit_on_dask(self, train, valid):
        """The same regression fit by lightgbm.dask on the current Dask client's workers,
        each on the rows it holds; returns the in-process estimator holding its trees."""
        import lightgbm
        import lightgbm.dask

        if self.settings["objective"] == "lambdarank":
            raise InputError("cross_section.lightgbm.on_dask fits the regression only; set "
                             "objective to regression or on_dask to false")
        client = _dask_client("cross_section.lightgbm.on_dask")
        # a worker trains with its own threads (lightgbm.dask sets them, warning of n_jobs)
        params = {k: v for k, v in self._params().items() if k != "n_jobs"}
        estimator = lightgbm.dask.DaskLGBMRegressor(
            client=client, n_estimators=self.settings["n_estimators"], **params)
        fit_args, callbacks = {}, []
        if valid is not None and len(valid := _known(valid)):
            vx, vy = _on_cluster(valid, client)
            fit_args.update(eval_X=(vx,), eval_y=(vy,))
            callbacks.append(lightgbm.early_stopping(self.settings["early_stopping_rounds"],
                                                     verbose=False))
        _fit_watched(client, "lightgbm", lambda: estimator.fit(
            *_on_cluster(train, client), callbacks=callbacks, **fit_args))
        return estimator.to_local()

    def predict(self, panel):
        return _scores(self.model_, panel.x)

    def save(self, folder):
        super().save(folder)
        atomic_save(Path(folder) / self.MODEL_FILE,
                    lambda path: self.model_.booster_.save_model(str(path)))

    def _restore(self, state, folder):
        import lightgbm

        self.model_ = _BoosterScores(lightgbm.Booster(model_file=str(folder / self.MODEL_FILE)))


class _BoosterScores:
    """A fitted or loaded booster behind the estimator's predict (which is the booster's,
    up to its best iteration)."""

    def __init__(self, booster):
        self.booster_ = booster

    def predict(self, x):
        return self.booster_.predict(x)


class XGBoostModel(CrossSectionalModel):
    """XGBoost (hist) on the factors, regression on the ranked label, or ``rank:pairwise``
    with each day a query group."""

    name = "xgboost_cs"
    sections = ("cross_section.xgboost",)
    uses_validation = True
    MODEL_FILE = "model.xgb.json"

    @classmethod
    def settings_from(cls, config):
        return config.cross_section.xgboost.model_dump()

    def _params(self) -> dict:
        s = self.settings
        return dict(n_estimators=s["n_estimators"], max_depth=s["max_depth"],
                    learning_rate=s["learning_rate"], subsample=s["subsample"],
                    colsample_bytree=s["colsample_bytree"], tree_method="hist",
                    random_state=self.seed, n_jobs=s["threads"],
                    early_stopping_rounds=s["early_stopping_rounds"])

    def _estimator(self, ranking: bool):
        import xgboost

        if ranking:
            return xgboost.XGBRanker(objective="rank:pairwise", **self._params())
        return xgboost.XGBRegressor(**self._params())

    def fit(self, train, valid=None):
        ranking = self.settings["objective"] == "rank:pairwise"
        train = _known(train)
        valid = _known(valid) if valid is not None else None
        if valid is None or not len(valid):
            valid = train  # no early-stopping rows: stop on the training rows' own fit
        if self.settings["on_dask"]:
            self.model_ = self._fit_on_dask(train, valid, ranking)
            return self
        self.model_ = self._estimator(ranking)
        extra = {}
        if ranking:
            extra = {"qid": _day_ids(train), "eval_qid": [_day_ids(valid)]}
        # gathered once: xgboost reuses the training matrix for an eval set of that object
        x = np.asarray(train.x)
        fit_xgboost(self.model_, x, train.y,
                    eval_set=[(x if valid is train else np.asarray(valid.x), valid.y)],
                    verbose=False, **extra)
        return self

    def _fit_on_dask(self, train, valid, ranking: bool):
        """The same regression fit by xgboost.dask on the current Dask client's workers;
        returns an in-process estimator holding its trees."""
        import xgboost.dask

        if ranking:
            raise InputError("cross_section.xgboost.on_dask fits the regression only; set "
                             "objective to regression or on_dask to false")
        client = _dask_client("cross_section.xgboost.on_dask")
        estimator = xgboost.dask.DaskXGBRegressor(**self._params())
        estimator.client = client
        _fit_watched(client, "xgboost_cs", lambda: estimator.fit(
            *_on_cluster(train, client), eval_set=[_on_cluster(valid, client)], verbose=False))
        local = self._estimator(ranking)
        local.load_model(bytearray(estimator.get_booster().save_raw("json")))
        return local

    def predict(self, panel):
        return _scores(self.model_, panel.x)

    def save(self, folder):
        super().save(folder)
        atomic_save(Path(folder) / self.MODEL_FILE, lambda path: self.model_.save_model(path))

    def _restore(self, state, folder):
        self.model_ = self._estimator(self.settings["objective"] == "rank:pairwise")
        self.model_.load_model(folder / self.MODEL_FILE)


def _dask_client(setting: str):
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise InputError(f"{setting} needs a Dask cluster: set compute.workers above 0 or "
                         f"compute.scheduler") from None


def _fit_watched(client, model: str, fit) -> None:
    """Run ``fit()`` (a distributed fit) and end it in one ComputeError naming the worker
    should one die meanwhile. A fit is one collective over the workers (their learners talk
    to each other directly), so distributed cannot rerun a dead worker's share alone, and
    the survivors wait for it on their sockets (lightgbm for its time_out, two hours by
    default): the fit is watched from here instead of waited for. Its own errors pass."""
    from distributed.scheduler import KilledWorker

    before = _workers(client)
    outcome: dict = {}

    def run() -> None:
        try:
            fit()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc
        outcome["done"] = True

    # a daemon: a fit abandoned for a dead worker must not hold the process open
    thread = threading.Thread(target=run, name=f"{model}-fit", daemon=True)
    thread.start()
    while not outcome.get("done"):
        thread.join(WATCH_S)
        gone = sorted(before - _workers(client))
        if gone and not outcome.get("done"):
            raise _lost(model, gone)
    error = outcome.get("error")
    if error is None:
        return
    gone = [error.last_worker.address] if isinstance(error, KilledWorker) else []
    # a survivor's socket can hear of a death before the scheduler does
    for _ in range(int(4 / WATCH_S)):
        gone = gone or sorted(before - _workers(client))
        if gone:
            raise _lost(model, gone) from None
        time.sleep(WATCH_S)
    raise error


def _workers(client) -> set[str]:
    """The addresses of the scheduler's workers, asked now. Not client.scheduler_info():
    it returns the client's shared copy, which a distributed fit running in another thread
    (xgboost.dask) refreshes with the totals alone, no workers."""
    return set(client.sync(client.scheduler.identity, n_workers=-1)["workers"])


def _lost(model: str, workers: list[str]) -> ComputeError:
    return ComputeError(f"{model}: the Dask worker {', '.join(workers)} died during a fit, "
                        f"which cannot go on without it; see its log")


def _on_cluster(panel: FactorPanel, client):
    """(x, y) of ``panel`` as dask arrays, one chunk of consecutive rows per worker, each
    pinned to its worker. Factors already on the workers (``factor_panel_on_dask``) move
    between workers, never through this process; factors held here are sent.

    One chunk per worker because the learners concatenate a worker's chunks in the order
    distributed lists them, not in row order, and row order moves their row subsampling:
    with one chunk the fit on one worker is the in-process fit. Pinned (loosely: another
    worker takes over a dead one's) because lightgbm.dask stops early only when every
    worker holding training rows holds validation rows too."""
    import dask.array as da

    x, y = panel.x, panel.y
    if not isinstance(x, da.Array):
        x = np.asarray(x)
        x = da.from_array(x, chunks=(-1, x.shape[1]))
    y = da.from_array(y, chunks=(x.chunks[0],))
    workers = sorted(_workers(client))
    bounds = np.linspace(0, len(y), len(workers) + 1).astype(int)
    pieces = [client.persist([x[a:b].rechunk((b - a, x.shape[1])), y[a:b].rechunk(b - a)],
                             workers=[w], allow_other_workers=True)
              for w, a, b in zip(workers, bounds[:-1], bounds[1:]) if b > a]
    return (da.concatenate([px for px, _ in pieces]),
            da.concatenate([py for _, py in pieces]))


def _scores(model, x) -> np.ndarray:
    """The fitted estimator's scores of ``x``; of a dask array, predicted chunk by chunk on
    the workers (the estimator travels, the factors stay)."""
    import dask.array as da

    if isinstance(x, da.Array):
        return x.map_blocks(lambda block: model.predict(block).astype(np.float64),
                            drop_axis=1, dtype=np.float64).compute()
    return model.predict(np.asarray(x)).astype(np.float64)


def _day_ids(panel: FactorPanel) -> np.ndarray:
    return np.unique(panel.dates, return_inverse=True)[1]


class MLPModel(CrossSectionalModel):
    """A Keras 3 MLP on the factors (dense layers with dropout), early-stopped on the
    validation days, mean squared error on the ranked label."""

    name = "mlp"
    sections = ("cross_section.mlp",)
    uses_validation = True
    MODEL_FILE = "model.keras"

    @classmethod
    def settings_from(cls, config):
        return config.cross_section.mlp.model_dump()

    def fit(self, train, valid=None):
        keras = keras_seeded(self.seed)
        s = self.settings
        train = _known(train)
        with native_stderr_to_log():
            inputs = keras.Input((train.x.shape[1],))
            h = inputs
            for width in s["units"]:
                h = keras.layers.Dense(width, activation="relu")(h)
                h = keras.layers.Dropout(s["dropout"])(h)
            network = keras.Model(inputs, keras.layers.Dense(1)(h))
            network.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]), loss="mse")
            callbacks, validation = [], None
            if valid is not None and len(valid := _known(valid)):
                validation = (np.asarray(valid.x), valid.y)
                callbacks.append(keras.callbacks.EarlyStopping(
                    patience=s["patience"], restore_best_weights=True))
            network.fit(np.asarray(train.x), train.y, validation_data=validation,
                        epochs=s["epochs"], batch_size=s["batch_size"], callbacks=callbacks,
                        verbose=0, shuffle=True)
        self.network_ = network
        return self

    def predict(self, panel):
        with native_stderr_to_log():
            scores = self.network_.predict(np.asarray(panel.x), verbose=0, batch_size=8192)
            return scores[:, 0].astype(np.float64)

    def save(self, folder):
        super().save(folder)
        atomic_save(Path(folder) / self.MODEL_FILE, self.network_.save)

    def _restore(self, state, folder):
        keras = keras_seeded(self.seed)
        with native_stderr_to_log():
            self.network_ = keras.models.load_model(folder / self.MODEL_FILE)
