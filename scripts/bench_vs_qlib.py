"""stockpred against qlib's LightGBM/Alpha158 benchmark, side by side on the same bars.

    .venv-peer/bin/python scripts/bench_vs_qlib.py [--universe top800] [--split a|b|both]
        [--protocol once|monthly|both] [--models lightgbm,xgboost_cs] [--reuse] [--concurrent]

Runs in the peer venv (``pip install -e '.[peer]'``: pyqlib 0.9.7, pandas < 3); see
doc/peer.md. Steps:

1. ``scripts/qlib_data.py`` converts ../shared/data/market to qlib's binary format
   (stockpred.data.qlib_provider: no vwap, see there) with the point-in-time universe as a
   qlib instruments file.
2. qlib (a child process, absolute paths, cwd = the work folder, PYTHONHASHSEED fixed,
   MLFLOW_ALLOW_FILE_STORE=true): Alpha158 handler with its default processors (learn:
   DropnaLabel + CSZScoreNorm on the label, no infer processors; label
   Ref($close,-2)/Ref($close,-1)-1) and LGBModel with the settings of
   workflow_config_lightgbm_Alpha158.yaml (threads cut to this machine), fit on train with
   early stopping on valid, predictions on test.
3. stockpred (this process): factor_panel, build_factor_panel (label ret_2), walk_forward
   of lightgbm, xgboost_cs, last_return and random; protocol ``once`` fits one model per
   learner on the same train / valid days as qlib (retrain_every longer than the test,
   train_days back to the first train day, validation_days the valid days), ``monthly`` the
   config's default refit (every 21 days on the trailing 1250, the last 250 stopping early).
4. Both are scored by the same code (score_rows: stockpred.evaluation.signal) on exactly the
   same (day, stock) rows, the intersection of qlib's and stockpred's test rows, on the same
   labels (ret_1, ret_2 from the traded closes), and traded by the same backtest
   (backtest_row: TopK 50 / drop 5 at the next close, A-share rules and costs).

Splits: ``a`` train 2010-2014, valid 2015-2016, test 2017-2018; ``b`` ("train to 2015")
train 2010-2014, valid 2015, test 2016-2018. Outputs go under data/peer/<universe>/<split>/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import qlib_data  # noqa: E402

from stockpred.data.qlib_provider import ts_code_of  # noqa: E402

SPLITS = {
    "a": {"train": ("2010-01-01", "2014-12-31"), "valid": ("2015-01-01", "2016-12-31"),
          "test": ("2017-01-01", "2018-12-31")},
    "b": {"train": ("2010-01-01", "2014-12-31"), "valid": ("2015-01-01", "2015-12-31"),
          "test": ("2016-01-01", "2018-12-31")},
}
# workflow_config_lightgbm_Alpha158.yaml (qlib 0.9.7 benchmarks), num_threads cut to 2
QLIB_LGB = {"loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.2,
            "subsample": 0.8789, "lambda_l1": 205.6999, "lambda_l2": 580.9768,
            "max_depth": 8, "num_leaves": 210, "num_threads": 2}
# workflow_config_doubleensemble_Alpha158.yaml (qlib 0.9.7 benchmarks), num_threads cut to 2
# and without its feature selection: DEnsembleModel.feature_selection predicts the whole
# train set (about 1M rows x 158 features) once per feature and fitted sub-model, 158 x
# (1 + ... + 5) = 2,370 predictions, about 40 minutes of two cores per split; the sample
# re-weighting and the six-model ensemble stay
QLIB_DENS = {"base_model": "gbm", "loss": "mse", "num_models": 6, "enable_sr": True,
             "enable_fs": False, "alpha1": 1, "alpha2": 1, "bins_sr": 10, "bins_fs": 5,
             "decay": 0.5, "sample_ratios": [0.8, 0.7, 0.6, 0.5, 0.4],
             "sub_weights": [1, 0.2, 0.2, 0.2, 0.2, 0.2], "epochs": 28,
             "colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789,
             "lambda_l1": 205.6999, "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210,
             "num_threads": 2, "verbosity": -1}
# qlib's rows: name -> (processors, model); the two YAMLs name Alpha158's default processors
QLIB_ROWS = {  # in the order they run: the two on the YAML's processors first
    "qlib_lgb_alpha158": ("yaml", {"class": "LGBModel", "module_path": "qlib.contrib.model.gbdt",
                                   "kwargs": QLIB_LGB}),
    "qlib_dens_alpha158_nofs": ("yaml", {"class": "DEnsembleModel",
                                         "module_path": "qlib.contrib.model.double_ensemble",
                                         "kwargs": QLIB_DENS}),
    "qlib_lgb_alpha158_strong": ("strong", {"class": "LGBModel",
                                            "module_path": "qlib.contrib.model.gbdt",
                                            "kwargs": QLIB_LGB}),
}
TOPK, N_DROP = 50, 5
# port_analysis_config of qlib's benchmark YAMLs (the benchmark index aside: see
# run_qlib_backtest)
QLIB_BACKTEST = {"topk": TOPK, "n_drop": N_DROP, "account": 100_000_000,
                 "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
                 "close_cost": 0.0015, "min_cost": 5}
# stockpred's backtest of every row: qlib's cost preset on stockpred's fills (A-share rules),
# with the default slippage (10 bp) and no cap on an order's share of the day's amount
STOCKPRED_BACKTEST = {"topk": TOPK, "n_drop": N_DROP, "costs": "qlib", "participation": None}
# the naive row: the random score over these seeds, its mean and spread
RANDOM_SEEDS = range(20)


def log(*parts) -> None:
    print(*parts, flush=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def _plain(day: str) -> str:
    return day.replace("-", "")


# -- qlib's side (a child process) -----------------------------------------------------------

def _processors(kind: str, seg: dict) -> tuple[list, list]:
    """(infer, learn) processors: ``yaml`` is Alpha158's default, the one of
    workflow_config_lightgbm_Alpha158.yaml and of the DoubleEnsemble YAML (no infer
    processors; DropnaLabel + CSZScoreNorm on the label); ``strong`` is the set of qlib's
    Alpha360 and deep-model YAMLs (ProcessInf, RobustZScoreNorm with clip_outlier fit on the
    train period and Fillna on the features; DropnaLabel + CSRankNorm on the label)."""
    from qlib.data.dataset import processor as P

    if kind == "yaml":
        return [], [P.DropnaLabel(), P.CSZScoreNorm(fields_group="label")]
    return ([P.ProcessInf(),
             P.RobustZScoreNorm(fit_start_time=seg["train"][0], fit_end_time=seg["train"][1],
                                fields_group="feature", clip_outlier=True),
             P.Fillna(fields_group="feature")],
            [P.DropnaLabel(), P.CSRankNorm(fields_group="label")])


def _qlib_frame(pred: pd.Series, segment: str) -> pd.DataFrame:
    frame = pred.rename("score").reset_index()
    frame.columns = ["datetime", "instrument", "score"]
    return pd.DataFrame({
        "trade_date": pd.to_datetime(frame["datetime"]).dt.strftime("%Y%m%d"),
        "ts_code": [ts_code_of(c) for c in frame["instrument"]],
        "score": frame["score"].to_numpy(np.float64), "segment": segment})


def _init_qlib(data: Path, out: Path) -> None:
    import qlib
    from qlib.constant import REG_CN

    qlib.init(provider_uri=str(data.resolve()), region=REG_CN, kernels=2,
              exp_manager={"class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
                           "kwargs": {"uri": "file:" + str((out / "mlruns").resolve()),
                                      "default_exp_name": "bench_vs_qlib"}})


def run_qlib(data: Path, universe: str, split: str, out: Path, rows: list[str]) -> None:
    """qlib's rows (QLIB_ROWS) on one Alpha158 load: each row's processors are applied to
    the loaded raw features again (DataHandlerLP.process_data), as the load dominates;
    writes out/qlib_<row>.parquet (valid and test predictions) as each row finishes."""
    from qlib.utils import init_instance_by_config
    from qlib.workflow import R

    started = time.perf_counter()
    seg = SPLITS[split]
    _init_qlib(data, out)
    handler = {"class": "Alpha158", "module_path": "qlib.contrib.data.handler",
               "kwargs": {"start_time": seg["train"][0], "end_time": seg["test"][1],
                          "fit_start_time": seg["train"][0], "fit_end_time": seg["train"][1],
                          "instruments": universe}}
    dataset = init_instance_by_config({
        "class": "DatasetH", "module_path": "qlib.data.dataset",
        "kwargs": {"handler": handler, "segments": {k: tuple(v) for k, v in seg.items()}}})
    loaded = time.perf_counter()
    stats_file = out / "qlib_stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    stats |= {"load_s": loaded - started, "peak_rss_gb": peak_rss_gb()}
    log(f"[qlib] Alpha158 loaded in {loaded - started:.0f}s, peak RSS {peak_rss_gb():.2f} GB")
    processed = "yaml"  # what the handler's learn/infer frames hold now
    for row in sorted(rows, key=list(QLIB_ROWS).index):
        kind, model_config = QLIB_ROWS[row]
        t = time.perf_counter()
        if kind != processed:
            h = dataset.handler
            h.infer_processors, h.learn_processors = _processors(kind, seg)
            h.process_data(with_fit=True)
            processed = kind
        model = init_instance_by_config(model_config)
        fit_start = time.perf_counter()
        with R.start(experiment_name="bench_vs_qlib"):
            model.fit(dataset)
            fitted = time.perf_counter()
            frame = pd.concat([_qlib_frame(model.predict(dataset, segment=s), s)
                               for s in ("valid", "test")], ignore_index=True)
        frame.to_parquet(out / f"qlib_{row}.parquet", index=False)
        stats[row] = {"process_s": fit_start - t, "fit_s": fitted - fit_start,
                      "predict_s": time.perf_counter() - fitted,
                      "test_rows": int((frame["segment"] == "test").sum()),
                      "peak_rss_gb": peak_rss_gb()}
        stats_file.write_text(json.dumps(stats, indent=1))
        log(f"[qlib] {row}: processors {kind} ({fit_start - t:.0f}s), fit "
            f"{fitted - fit_start:.0f}s, {stats[row]['test_rows']} test predictions, "
            f"peak RSS {peak_rss_gb():.2f} GB")
    log(f"[qlib] wall {time.perf_counter() - started:.0f}s")


def run_qlib_backtest(data: Path, split: str, out: Path) -> None:
    """Every row of out/qlib_backtest_in.parquet (trade_date, ts_code, score, model) through
    qlib's own exchange and TopkDropoutStrategy with the benchmark YAML's settings
    (QLIB_BACKTEST); the benchmark is the equal-weight universe of
    out/qlib_backtest_bench.parquet, as in stockpred's backtest. Writes
    out/qlib_backtest.json (qlib's risk_analysis of the excess with and without cost: its
    annualised return is 238 x the daily mean) and the daily excess with cost."""
    from qlib.backtest import backtest, executor
    from qlib.backtest.exchange import Exchange
    from qlib.contrib.evaluate import risk_analysis
    from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.data import D

    from stockpred.data.qlib_provider import qlib_code

    _init_qlib(data, out)
    seg = SPLITS[split]
    scores = pd.read_parquet(out / "qlib_backtest_in.parquet")
    bench = pd.read_parquet(out / "qlib_backtest_bench.parquet")
    bench = pd.Series(bench["return"].to_numpy(float),
                      index=pd.to_datetime(bench["trade_date"]), name="bench")
    settings = {k: v for k, v in QLIB_BACKTEST.items() if k not in ("topk", "n_drop", "account")}
    # qlib's backtest steps to the trading day after its end, so it cannot end on the
    # calendar's last day (split a and b end there): its last step is the day before
    calendar = D.calendar(end_time=seg["test"][1])
    full = D.calendar()
    end = calendar[-2] if calendar[-1] == full[-1] else calendar[-1]
    # quotes of every stock, as qlib's get_exchange defaults to: a universe's instruments
    # give a stock's quotes only on its member days, so a holding that left the universe
    # reads as suspended and can never be sold
    exchange = Exchange(freq="day", start_time=seg["test"][0], end_time=seg["test"][1],
                        codes="all", **settings)
    results, daily = {}, []
    for name, frame in scores.groupby("model", sort=False):
        t = time.perf_counter()
        signal = pd.Series(frame["score"].to_numpy(float), index=pd.MultiIndex.from_arrays(
            [pd.to_datetime(frame["trade_date"]), [qlib_code(c) for c in frame["ts_code"]]],
            names=["datetime", "instrument"])).sort_index()
        strategy = TopkDropoutStrategy(signal=signal, topk=QLIB_BACKTEST["topk"],
                                       n_drop=QLIB_BACKTEST["n_drop"])
        report, _ = backtest(start_time=seg["test"][0], end_time=end,
                             strategy=strategy,
                             executor=executor.SimulatorExecutor(time_per_step="day",
                                                                 generate_portfolio_metrics=True),
                             benchmark=bench, account=QLIB_BACKTEST["account"],
                             exchange_kwargs={"exchange": exchange})
        report = report["1day"][0]
        excess = report["return"] - report["bench"] - report["cost"]
        with_cost = risk_analysis(excess, freq="day")["risk"]
        without = risk_analysis(report["return"] - report["bench"], freq="day")["risk"]
        results[name] = {"excess_cost": float(with_cost["annualized_return"]),
                         "ir_cost": float(with_cost["information_ratio"]),
                         "max_dd_cost": float(with_cost["max_drawdown"]),
                         "excess_no_cost": float(without["annualized_return"]),
                         "turnover": float(report["turnover"].mean()),
                         "days": len(report), "wall_s": time.perf_counter() - t}
        daily.append(pd.DataFrame({"trade_date": report.index.strftime("%Y%m%d"),
                                   "model": name, "excess_cost": excess.to_numpy(float)}))
        log(f"[qlib backtest] {name}: excess with cost {results[name]['excess_cost']:+.4f}, "
            f"IR {results[name]['ir_cost']:+.3f} ({results[name]['wall_s']:.0f}s)")
    (out / "qlib_backtest.json").write_text(json.dumps(results, indent=1))
    pd.concat(daily, ignore_index=True).to_parquet(out / "qlib_backtest_daily.parquet",
                                                   index=False)


def start_qlib(data: Path, universe: str, split: str, out: Path, part: str = "qlib",
               rows: list[str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONHASHSEED="0")
    command = [sys.executable, str(Path(__file__).resolve()), "--part", part,
               "--universe", universe, "--split", split, "--data", str(data.resolve()),
               "--qlib-rows", ",".join(rows or [])]
    return subprocess.Popen(command, cwd=str(out.resolve()), env=env)


# -- stockpred's side --------------------------------------------------------------------------

class Timed:
    """A cross-sectional model behind walk_forward that counts rows and seconds."""

    def __init__(self, inner, tally: dict):
        self.inner, self.tally = inner, tally
        self.name, self.uses_validation = inner.name, inner.uses_validation

    def clone(self):
        return Timed(self.inner.clone(), self.tally)

    def fit(self, train, valid=None):
        t = time.perf_counter()
        self.inner.fit(train, valid)
        self.tally["fit_s"] += time.perf_counter() - t
        self.tally["fit_rows"] += int(np.isfinite(train.y).sum())
        if valid is not None:
            self.tally["fit_rows"] += int(np.isfinite(valid.y).sum())
        self.tally["fits"] += 1
        return self

    def predict(self, panel):
        t = time.perf_counter()
        scores = self.inner.predict(panel)
        self.tally["predict_s"] += time.perf_counter() - t
        self.tally["predict_rows"] += len(panel)
        return scores


def protocol_for(panel, split: str, kind: str):
    from stockpred.config import Config
    from stockpred.evaluation.walkforward import WalkForward

    seg = {k: (_plain(a), _plain(b)) for k, (a, b) in SPLITS[split].items()}
    calendar = np.unique(panel.dates)
    test_start, test_end = seg["test"]
    if kind == "monthly":
        cs = Config().cross_section
        return WalkForward(test_start, test_end, cs.retrain_every, cs.train_days,
                                       cs.validation_days)
    first = int(np.searchsorted(calendar, test_start))
    train_days = first - int(np.searchsorted(calendar, seg["train"][0]))
    validation_days = first - int(np.searchsorted(calendar, seg["valid"][0]))
    test_days = int(((calendar >= test_start) & (calendar <= test_end)).sum())
    return WalkForward(test_start, test_end, test_days + 1, train_days,
                                   validation_days)


def stockpred_panel(bars: pd.DataFrame, members: pd.DataFrame):
    from stockpred.dataset import build_factor_panel
    from stockpred.features.factors import factor_panel

    t = time.perf_counter()
    codes = members["ts_code"].unique()
    own = bars[bars["ts_code"].isin(codes)]
    factors = factor_panel(own)
    t_factors = time.perf_counter() - t
    panel = build_factor_panel(factors, members, own, "ret_2", "zscore", 3.0)
    del factors
    log(f"[stockpred] factors {t_factors:.0f}s, panel {time.perf_counter() - t - t_factors:.0f}s:"
        f" {len(panel)} rows x {len(panel.features)} factors, peak RSS {peak_rss_gb():.2f} GB")
    return panel


def run_stockpred(panel, split: str, kind: str, models: list[str], out: Path) -> dict:
    """Each learner's test scores by walk_forward, and (protocol once) its validation days'
    scores from the same fitted model, which pick stockpred's best row; the random score
    once per RANDOM_SEEDS seed (random_<seed>)."""
    from stockpred.config import Config
    from stockpred.evaluation.walkforward import walk_forward
    from stockpred.models.names import model_class
    from stockpred.models.registry import prototype

    protocol = protocol_for(panel, split, kind)
    log(f"[stockpred] protocol {kind}: {protocol}")
    config = Config()
    first, last = (_plain(d) for d in SPLITS[split]["valid"])
    dates = panel.dates
    valid_panel = panel.rows((dates >= first) & (dates <= last))
    random = model_class("random")
    learners = {"last_return": prototype(config, "last_return"),
                **{f"random_{seed}": random(random.settings_from(config), seed)
                   for seed in RANDOM_SEEDS},
                **{name: prototype(config, name) for name in models}}
    scores, valid, tallies = {}, {}, {}
    for name, learner in learners.items():
        tally = {"fit_s": 0.0, "fit_rows": 0, "predict_s": 0.0, "predict_rows": 0, "fits": 0}
        t = time.perf_counter()

        def on_refit(model, first_day, last_day, name=name):
            if kind == "once" and not name.startswith("random_"):
                valid[name] = valid_panel.keys.assign(score=model.inner.predict(valid_panel))

        scores[name] = walk_forward(Timed(learner, tally), panel, protocol, progress=False,
                                    on_refit=on_refit)
        tally["wall_s"] = time.perf_counter() - t
        tallies[name] = tally
        if name in models:
            log(f"[stockpred] {name} ({kind}): {tally['fits']} fits, train "
                f"{tally['fit_rows'] / max(tally['fit_s'], 1e-9):,.0f} rows/s "
                f"({tally['fit_rows']:,} rows, {tally['fit_s']:.0f}s), predict "
                f"{tally['predict_rows'] / max(tally['predict_s'], 1e-9):,.0f} rows/s "
                f"({tally['predict_rows']:,} rows), peak RSS {peak_rss_gb():.2f} GB")
    frame = pd.concat([f[["trade_date", "ts_code", "score"]].assign(model=m)
                       for m, f in scores.items()], ignore_index=True)
    frame.to_parquet(out / f"stockpred_{kind}.parquet", index=False)
    if valid:
        pd.concat([f[["trade_date", "ts_code", "score"]].assign(model=m)
                   for m, f in valid.items()], ignore_index=True).to_parquet(
            out / f"stockpred_{kind}_valid.parquet", index=False)
    (out / f"stockpred_{kind}_stats.json").write_text(json.dumps(tallies, indent=1))
    return scores


# -- the comparison ------------------------------------------------------------------------------

KEYS = ["trade_date", "ts_code"]


def labelled(panel, scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` on the panel's rows with both labels (ret_1, ret_2), as score_rows reads
    them."""
    from stockpred.evaluation.cross_section import LABELS

    frame = panel.keys.assign(**{label: panel.returns[label].to_numpy() for label in LABELS})
    return frame.merge(scores[["trade_date", "ts_code", "score"]], on=KEYS, how="inner")


def pick_best(panel, valid: dict[str, pd.DataFrame]) -> dict:
    """Each side's best row by its mean daily Rank IC on ret_2 over the validation days
    (never the test days), every candidate scored on the validation rows they all have."""
    from stockpred.evaluation.signal import daily_ic

    common = None
    for frame in valid.values():
        keys = frame.dropna(subset=["score"])[KEYS]
        common = keys if common is None else common.merge(keys, on=KEYS)
    rank_ic = {name: float(daily_ic(labelled(panel, f.merge(common, on=KEYS)), "ret_2")
                           ["rank_ic"].mean())
               for name, f in valid.items()}
    best = {side: max((n for n in rank_ic if n.startswith(side)), key=rank_ic.get)
            for side in ("qlib_", "stockpred_")}
    return {"rule": "highest mean daily Rank IC on ret_2 over the validation days, on the "
                    "validation rows every candidate scored; the test days play no part",
            "valid_rows": len(common), "valid_rank_ic_ret_2": rank_ic,
            "qlib_best": best["qlib_"], "stockpred_best": best["stockpred_"]}


def compare(panel, bars, members, entries: dict[str, pd.DataFrame], kind: str,
            split: str) -> tuple[list[dict], dict, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Every entry scored and traded (stockpred's backtest) on the rows all of them have:
    the table's rows (random_<seed> aside), the naive row (the random seeds' mean and
    spread), the daily series of each entry (IC, Rank IC, excess with cost) and the
    scores on the common rows (what qlib's backtest trades next)."""
    from stockpred.evaluation.backtest import BacktestSettings, equal_weight_returns, index_returns
    from stockpred.evaluation.cross_section import backtest_row, score_rows
    from stockpred.evaluation.signal import daily_ic

    common = None
    for frame in entries.values():
        keys = frame.dropna(subset=["score"])[KEYS]
        common = keys if common is None else common.merge(keys, on=KEYS)
    log(f"[compare {split}/{kind}] same rows: {len(common):,} "
        f"({', '.join(f'{n} {len(f):,}' for n, f in entries.items() if 'random_' not in n)})")
    marks = {"equal_weight": equal_weight_returns(bars, members)}
    index_file = ROOT.parent / "shared" / "data" / "tushare" / "index_daily" / "000300.SH.csv"
    if index_file.exists():
        index = pd.read_csv(index_file, dtype={"trade_date": str})
        marks["000300_SH"] = index_returns(index, "000300.SH")
    settings = BacktestSettings(**STOCKPRED_BACKTEST)
    rows, naive, daily, same_rows = [], [], [], {}
    for name, frame in entries.items():
        same = frame.merge(common, on=KEYS)[["trade_date", "ts_code", "score"]]
        same_rows[name] = same
        bt, bt_daily = backtest_row(name, same, bars, settings, marks)
        series = {"excess_cost": bt_daily.set_index("trade_date")["excess_equal_weight"]}
        for label in ("ret_2", "ret_1"):
            ic = daily_ic(labelled(panel, same), label)
            series |= {f"ic_{label}": ic["ic"], f"rank_ic_{label}": ic["rank_ic"]}
        daily.append(pd.DataFrame(series).rename_axis("trade_date").reset_index()
                     .assign(model=name))
        if name.startswith("stockpred_random_"):
            naive.append({"seed": int(name.rsplit("_", 1)[1]),
                          "rank_ic_ret_2": float(series["rank_ic_ret_2"].mean()),
                          "rank_ic_ret_1": float(series["rank_ic_ret_1"].mean()),
                          "excess_cost": bt["excess_return_with_cost_equal_weight"]})
            continue
        signal = {(r["label"], r["rows"]): r for r in score_rows(name, same, panel, bars, "close")}
        row = {"model": name}
        for label in ("ret_2", "ret_1"):
            row[f"ic_{label}"] = signal[(label, "all")]["ic"]
            row[f"rank_ic_{label}"] = signal[(label, "all")]["rank_ic"]
            row[f"rank_ic_{label}_lo90"] = signal[(label, "all")]["rank_ic_lo90"]
            row[f"rank_ic_{label}_hi90"] = signal[(label, "all")]["rank_ic_hi90"]
            row[f"rank_icir_{label}"] = signal[(label, "all")]["rank_icir"]
            row[f"rank_ic_{label}_tradeable"] = signal[(label, "tradeable")]["rank_ic"]
        row["excess_cost"] = bt["excess_return_with_cost_equal_weight"]
        row["ir_cost"] = bt["information_ratio_with_cost_equal_weight"]
        row["excess_no_cost"] = bt["excess_return_without_cost_equal_weight"]
        row["excess_cost_csi300"] = bt.get("excess_return_with_cost_000300_SH", float("nan"))
        row["turnover"] = bt["mean_daily_turnover"]
        row["max_dd"] = bt["max_drawdown"]
        rows.append(row)
        log(f"[compare {split}/{kind}] " + _line(row))
    seeds = pd.DataFrame(naive)
    spread = {"seeds": len(seeds)}
    for column in ("rank_ic_ret_2", "rank_ic_ret_1", "excess_cost"):
        spread |= {f"{column}_mean": float(seeds[column].mean()),
                   f"{column}_sd": float(seeds[column].std()),
                   f"{column}_min": float(seeds[column].min()),
                   f"{column}_max": float(seeds[column].max())}
    log(f"[compare {split}/{kind}] naive (random, {len(seeds)} seeds): "
        + " ".join(f"{k}={v:+.4f}" for k, v in spread.items() if k != "seeds"))
    return rows, spread, pd.concat(daily, ignore_index=True), same_rows


def qlib_backtest(data: Path, universe: str, split: str, out: Path, bars, members,
                  same_rows: dict[str, pd.DataFrame], seeds: int,
                  reuse: bool) -> tuple[dict, pd.DataFrame]:
    """Every row's scores (stockpred's included, the first ``seeds`` random seeds) through
    qlib's own backtest in a child process (run_qlib_backtest); ``reuse`` keeps a stored
    result that covers every row."""
    from stockpred.evaluation.backtest import equal_weight_returns

    wanted = [n for n in same_rows if not n.startswith("stockpred_random_")
              or int(n.rsplit("_", 1)[1]) < seeds]
    stored = out / "qlib_backtest.json"
    if reuse and stored.exists() and set(wanted) <= set(json.loads(stored.read_text())):
        return (json.loads(stored.read_text()),
                pd.read_parquet(out / "qlib_backtest_daily.parquet"))
    pd.concat([same_rows[n].assign(model=n) for n in wanted], ignore_index=True).to_parquet(
        out / "qlib_backtest_in.parquet", index=False)
    bench = equal_weight_returns(bars, members).dropna()
    pd.DataFrame({"trade_date": bench.index.astype(str), "return": bench.to_numpy(float)}
                 ).to_parquet(out / "qlib_backtest_bench.parquet", index=False)
    if start_qlib(data, universe, split, out, part="qlib_backtest").wait() != 0:
        raise SystemExit(f"qlib's backtest of split {split} failed")
    return (json.loads((out / "qlib_backtest.json").read_text()),
            pd.read_parquet(out / "qlib_backtest_daily.parquet"))


def error_bars(daily: pd.DataFrame, qlib_daily: pd.DataFrame | None, best: dict) -> dict:
    """stockpred's best row against qlib's (both picked on the validation days): the
    ratio of their mean Rank IC on ret_2 and the difference of their excess with cost
    (annualised: x 252 in stockpred's backtest, x 238 in qlib's), each with its 90%
    month-block bootstrap interval (signal.compare_means)."""
    from stockpred.evaluation.backtest import TRADING_DAYS
    from stockpred.evaluation.signal import BOOTSTRAP_DRAWS, INTERVAL_LEVEL, compare_means

    ours, theirs = best["stockpred_best"], best["qlib_best"]
    out = {"draws": BOOTSTRAP_DRAWS, "level": INTERVAL_LEVEL, "seed": 0,
           "blocks": "calendar months, drawn with replacement, as many as the test spans",
           "stockpred": ours, "qlib": theirs}
    wide = daily.pivot(index="trade_date", columns="model")
    for label in ("ret_2", "ret_1"):
        c = compare_means(wide[f"rank_ic_{label}"], ours, theirs)
        out[f"rank_ic_{label}_ratio"] = {k: c[k] for k in ("ratio", "ratio_low", "ratio_high",
                                                            "days")}
    c = compare_means(wide["excess_cost"], ours, theirs)
    out["excess_cost_difference"] = {k: c[k] * TRADING_DAYS for k in
                                     ("difference", "difference_low", "difference_high")}
    if qlib_daily is not None:
        c = compare_means(qlib_daily.pivot(index="trade_date", columns="model")["excess_cost"],
                          ours, theirs)
        out["qlib_backtest_excess_cost_difference"] = {
            k: c[k] * QLIB_DAYS for k in ("difference", "difference_low", "difference_high")}
    return out


# qlib's risk_analysis annualises a daily mean with 238 trading days
QLIB_DAYS = 238
COLUMNS = ["ic_ret_2", "rank_ic_ret_2", "rank_icir_ret_2", "rank_ic_ret_2_tradeable", "ic_ret_1",
           "rank_ic_ret_1", "rank_icir_ret_1", "rank_ic_ret_1_tradeable", "excess_cost",
           "ir_cost", "excess_no_cost", "excess_cost_csi300", "turnover", "max_dd",
           "qlib_bt_excess_cost", "qlib_bt_ir_cost"]


def _line(row: dict) -> str:
    return f"{row['model']:26s} " + " ".join(f"{c}={row.get(c, np.nan):+.4f}" for c in COLUMNS)


def table(rows: list[dict], naive: dict, best: dict | None, bars_: dict | None,
          title: str) -> str:
    head = "| model | " + " | ".join(COLUMNS) + " |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(COLUMNS) + 1)]
    lines += ["| " + r["model"] + " | " + " | ".join(f"{r.get(c, np.nan):.4f}" for c in COLUMNS)
              + " |" for r in rows]
    lines += ["", f"naive row (random score, {naive['seeds']} seeds): Rank IC ret_2 mean "
              f"{naive['rank_ic_ret_2_mean']:+.4f} (sd {naive['rank_ic_ret_2_sd']:.4f}, "
              f"{naive['rank_ic_ret_2_min']:+.4f}..{naive['rank_ic_ret_2_max']:+.4f}); excess "
              f"after cost mean {naive['excess_cost_mean']:+.4f} (sd "
              f"{naive['excess_cost_sd']:.4f}, {naive['excess_cost_min']:+.4f}.."
              f"{naive['excess_cost_max']:+.4f})"]
    lines += ["", "Rank IC ret_2 with its 90% month-block interval:"]
    lines += [f"- {r['model']}: {r['rank_ic_ret_2']:.4f} [{r['rank_ic_ret_2_lo90']:.4f}, "
              f"{r['rank_ic_ret_2_hi90']:.4f}]" for r in rows]
    if best is not None:
        valid = ", ".join(f"{n} {v:.4f}" for n, v in best["valid_rank_ic_ret_2"].items())
        lines += ["", f"best rows by the validation days' Rank IC ret_2 ({valid}): qlib "
                  f"{best['qlib_best']}, stockpred {best['stockpred_best']}"]
    if bars_ is not None:
        r2, ex = bars_["rank_ic_ret_2_ratio"], bars_["excess_cost_difference"]
        lines.append(f"- Rank IC ret_2 ratio {r2['ratio']:.2f}x [{r2['ratio_low']:.2f}, "
                     f"{r2['ratio_high']:.2f}]; excess after cost difference (stockpred's "
                     f"backtest) {ex['difference']:+.4f} [{ex['difference_low']:+.4f}, "
                     f"{ex['difference_high']:+.4f}]")
        if "qlib_backtest_excess_cost_difference" in bars_:
            qx = bars_["qlib_backtest_excess_cost_difference"]
            lines.append(f"- excess after cost difference (qlib's backtest) "
                         f"{qx['difference']:+.4f} [{qx['difference_low']:+.4f}, "
                         f"{qx['difference_high']:+.4f}]")
    return "\n".join(lines)


def record_comparison(universe: str, split: str, kind: str, entry: dict,
                      daily: pd.DataFrame) -> None:
    """Keep this comparison in the results file the README's peer block is rendered from,
    beside the others (one entry per universe, split and protocol), and its daily series
    in the parquet beside it."""
    from stockpred.config import load_config
    from stockpred.data.store import atomic_write_text
    from stockpred.layout import resolve_paths

    paths = resolve_paths(load_config(ROOT / "config.json"), ROOT / "data")
    target = paths.peer_comparison
    series_file = target.with_name("vs_qlib_daily.parquet")
    runs = json.loads(target.read_text(encoding="utf-8"))["runs"] if target.exists() else []
    this = (universe, split, kind)
    entry = {"universe": universe, "split": split, "protocol": kind, **SPLITS[split],
             "topk": TOPK, "n_drop": N_DROP, **entry, "daily_series": series_file.name}
    runs = [r for r in runs if (r["universe"], r["split"], r["protocol"]) != this]
    runs = sorted([*runs, entry], key=lambda r: (r["universe"], r["split"], r["protocol"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    stored = pd.read_parquet(series_file) if series_file.exists() else None
    daily = daily.assign(universe=universe, split=split, protocol=kind)
    if stored is not None:
        keep = ~((stored["universe"] == universe) & (stored["split"] == split)
                 & (stored["protocol"] == kind))
        daily = pd.concat([stored[keep], daily], ignore_index=True)
    daily.to_parquet(series_file, index=False)
    atomic_write_text(target, json.dumps({"runs": runs}, indent=1) + "\n")
    log(f"recorded in {target} and {series_file}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="stockpred vs qlib's strongest Alpha158 rows")
    p.add_argument("--universe", default="top800")
    p.add_argument("--split", choices=["a", "b", "both"], default="a")
    p.add_argument("--protocol", choices=["once", "monthly", "both"], default="once")
    p.add_argument("--models", default="lightgbm,xgboost_cs")
    p.add_argument("--qlib-rows", default=",".join(QLIB_ROWS),
                   help="qlib's rows to run (default all: " + ", ".join(QLIB_ROWS) + ")")
    p.add_argument("--qlib-backtest-seeds", type=int, default=len(RANDOM_SEEDS),
                   help="random seeds also traded by qlib's backtest (0: none)")
    p.add_argument("--no-qlib-backtest", action="store_true",
                   help="leave out qlib's backtest of every row")
    p.add_argument("--data", type=Path, default=qlib_data.DEFAULT_OUT)
    p.add_argument("--reuse", action="store_true", help="reuse stored qlib predictions")
    p.add_argument("--reuse-stockpred", action="store_true",
                   help="reuse stored stockpred predictions (scores them again; no timings)")
    p.add_argument("--concurrent", action="store_true",
                   help="run qlib's child while stockpred computes (timings then share the CPUs)")
    p.add_argument("--part", choices=["all", "qlib", "qlib_backtest"], default="all",
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    splits = ["a", "b"] if args.split == "both" else [args.split]
    qlib_rows = [r for r in args.qlib_rows.split(",") if r]
    if args.part == "qlib":
        run_qlib(args.data, args.universe, splits[0], Path.cwd(), qlib_rows)
        return 0
    if args.part == "qlib_backtest":
        run_qlib_backtest(args.data, splits[0], Path.cwd())
        return 0

    started = time.perf_counter()
    bars = qlib_data.read_market()
    members_file = args.data / f"members_{args.universe}.parquet"
    if not (args.data / "instruments" / f"{args.universe}.txt").exists() or not members_file.exists():
        qlib_data.convert(out=args.data, universe=args.universe, bars=bars)
    members = pd.read_parquet(members_file).astype({"trade_date": str, "ts_code": str})
    outs = {s: ROOT / "data" / "peer" / args.universe / s for s in splits}
    children = {}
    for s in splits:
        outs[s].mkdir(parents=True, exist_ok=True)
        missing = [r for r in qlib_rows
                   if not (args.reuse and (outs[s] / f"qlib_{r}.parquet").exists())]
        if missing:
            children[s] = start_qlib(args.data, args.universe, s, outs[s], rows=missing)
            if not args.concurrent:
                if children[s].wait() != 0:
                    raise SystemExit(f"qlib's run of split {s} failed")
    t_sp = time.perf_counter()
    kinds = ["once", "monthly"] if args.protocol == "both" else [args.protocol]
    stored = {(s, k): outs[s] / f"stockpred_{k}.parquet" for s in splits for k in kinds}
    reuse = args.reuse_stockpred and all(f.exists() for f in stored.values())
    if reuse:  # the labels and keys only: score_rows reads panel.keys and panel.returns
        from stockpred.dataset import build_factor_panel
        own = bars[bars["ts_code"].isin(members["ts_code"].unique())]
        panel = build_factor_panel(own[["trade_date", "ts_code"]].assign(none=0.0), members,
                                   own, "ret_2", "zscore", 3.0)
    else:
        panel = stockpred_panel(bars, members)
    models = [m for m in args.models.split(",") if m]
    for s in splits:
        for kind in kinds:
            t = time.perf_counter()
            if reuse:
                stored_scores = pd.read_parquet(stored[(s, kind)])
                ours = {m: f.drop(columns="model") for m, f in stored_scores.groupby("model")}
            else:
                ours = run_stockpred(panel, s, kind, models, outs[s])
            log(f"[stockpred] split {s} / {kind}: walk-forward {time.perf_counter() - t:.0f}s; "
                f"stockpred so far {time.perf_counter() - t_sp:.0f}s wall, "
                f"peak RSS {peak_rss_gb():.2f} GB")
            if s in children and children[s].wait() != 0:
                raise SystemExit(f"qlib's run of split {s} failed")
            theirs = {r: pd.read_parquet(outs[s] / f"qlib_{r}.parquet") for r in qlib_rows
                      if (outs[s] / f"qlib_{r}.parquet").exists()}
            entries = {**{r: f[f["segment"] == "test"] for r, f in theirs.items()},
                       **{f"stockpred_{m}": f for m, f in ours.items()}}
            # the test days' bars (and a month before, for the first day's return and its
            # limits) are all the scoring and the backtests read: a fraction of the history
            since = (pd.Timestamp(SPLITS[s]["test"][0]) - pd.Timedelta(days=40)).strftime("%Y%m%d")
            recent = bars[bars["trade_date"] >= since]
            recent_members = members[members["trade_date"] >= since]
            rows, naive, daily, same_rows = compare(panel, recent, recent_members, entries,
                                                    kind, s)
            best = bars_ = None
            valid_file = outs[s] / f"stockpred_{kind}_valid.parquet"
            if kind == "once" and valid_file.exists():
                valid = {**{r: f[f["segment"] == "valid"] for r, f in theirs.items()},
                         **{f"stockpred_{m}": f.drop(columns="model") for m, f in
                            pd.read_parquet(valid_file).groupby("model")}}
                best = pick_best(panel, valid)
            qlib_bt = qlib_daily = None
            if not args.no_qlib_backtest:
                qlib_bt, qlib_daily = qlib_backtest(args.data, args.universe, s, outs[s], recent,
                                                    recent_members, same_rows,
                                                    args.qlib_backtest_seeds, args.reuse)
                for row in rows:
                    row["qlib_bt_excess_cost"] = qlib_bt[row["model"]]["excess_cost"]
                    row["qlib_bt_ir_cost"] = qlib_bt[row["model"]]["ir_cost"]
                seeds = [v["excess_cost"] for n, v in qlib_bt.items()
                         if n.startswith("stockpred_random_")]
                if seeds:
                    naive |= {"qlib_bt_seeds": len(seeds),
                              "qlib_bt_excess_cost_mean": float(np.mean(seeds)),
                              "qlib_bt_excess_cost_sd": float(np.std(seeds, ddof=1)),
                              "qlib_bt_excess_cost_min": float(np.min(seeds)),
                              "qlib_bt_excess_cost_max": float(np.max(seeds))}
            if best is not None:
                bars_ = error_bars(daily, qlib_daily, best)
            seg = SPLITS[s]
            text = table(rows, naive, best, bars_,
                         f"{args.universe}, split {s}: train {seg['train'][0]}.."
                         f"{seg['train'][1]}, valid {seg['valid'][0]}..{seg['valid'][1]},"
                         f" test {seg['test'][0]}..{seg['test'][1]}; stockpred {kind}")
            log("\n" + text + "\n")
            (outs[s] / f"table_{kind}.md").write_text(text + "\n")
            stats_file = outs[s] / f"stockpred_{kind}_stats.json"
            from stockpred.evaluation.backtest import BacktestSettings
            backtest = BacktestSettings(**STOCKPRED_BACKTEST)
            entry = {"backtest": {"costs": backtest.costs, "slippage_bp": backtest.slippage_bp},
                     "qlib_backtest_settings": QLIB_BACKTEST, "rows": rows, "naive": naive, "selection": best, "error_bars": bars_,
                     "qlib_backtest": qlib_bt,
                     "qlib_stats": json.loads((outs[s] / "qlib_stats.json").read_text()),
                     "stockpred_stats": (json.loads(stats_file.read_text())
                                         if stats_file.exists() else None)}
            record_comparison(args.universe, s, kind, entry, daily)
    log(f"total wall {time.perf_counter() - started:.0f}s; stockpred part "
        f"{time.perf_counter() - t_sp:.0f}s wall (incl. scoring), peak RSS of this process "
        f"{peak_rss_gb():.2f} GB (qlib ran in a child)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
