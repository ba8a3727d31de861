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
TOPK, N_DROP = 50, 5


def log(*parts) -> None:
    print(*parts, flush=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def _plain(day: str) -> str:
    return day.replace("-", "")


# -- qlib's side (a child process) -----------------------------------------------------------

def run_qlib(data: Path, universe: str, split: str, out: Path) -> None:
    """Alpha158 + LGBModel as qlib's benchmark YAML; writes out/qlib_pred.parquet."""
    import qlib
    from qlib.constant import REG_CN
    from qlib.utils import init_instance_by_config
    from qlib.workflow import R

    started = time.perf_counter()
    seg = SPLITS[split]
    qlib.init(provider_uri=str(data.resolve()), region=REG_CN, kernels=2,
              exp_manager={"class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
                           "kwargs": {"uri": "file:" + str((out / "mlruns").resolve()),
                                      "default_exp_name": "bench_vs_qlib"}})
    handler = {"class": "Alpha158", "module_path": "qlib.contrib.data.handler",
               "kwargs": {"start_time": seg["train"][0], "end_time": seg["test"][1],
                          "fit_start_time": seg["train"][0], "fit_end_time": seg["train"][1],
                          "instruments": universe}}
    dataset = init_instance_by_config({
        "class": "DatasetH", "module_path": "qlib.data.dataset",
        "kwargs": {"handler": handler, "segments": {k: tuple(v) for k, v in seg.items()}}})
    loaded = time.perf_counter()
    log(f"[qlib] Alpha158 loaded in {loaded - started:.0f}s, peak RSS {peak_rss_gb():.2f} GB")
    model = init_instance_by_config({"class": "LGBModel",
                                     "module_path": "qlib.contrib.model.gbdt",
                                     "kwargs": QLIB_LGB})
    with R.start(experiment_name="bench_vs_qlib"):
        model.fit(dataset)
        fitted = time.perf_counter()
        pred = model.predict(dataset, segment="test")
    log(f"[qlib] LGBModel fit in {fitted - loaded:.0f}s ({model.model.best_iteration} trees)")
    frame = pred.rename("score").reset_index()
    frame.columns = ["datetime", "instrument", "score"]
    frame = pd.DataFrame({
        "trade_date": pd.to_datetime(frame["datetime"]).dt.strftime("%Y%m%d"),
        "ts_code": [ts_code_of(c) for c in frame["instrument"]],
        "score": frame["score"].to_numpy(np.float64)})
    frame.to_parquet(out / "qlib_pred.parquet", index=False)
    stats = {"wall_s": time.perf_counter() - started, "load_s": loaded - started,
             "fit_s": fitted - loaded, "peak_rss_gb": peak_rss_gb(), "rows": len(frame)}
    (out / "qlib_stats.json").write_text(json.dumps(stats, indent=1))
    log(f"[qlib] {len(frame)} test predictions, wall {stats['wall_s']:.0f}s, "
        f"peak RSS {stats['peak_rss_gb']:.2f} GB")


def start_qlib(data: Path, universe: str, split: str, out: Path) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONHASHSEED="0")
    command = [sys.executable, str(Path(__file__).resolve()), "--part", "qlib",
               "--universe", universe, "--split", split, "--data", str(data.resolve())]
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
    from stockpred.config import Config
    from stockpred.evaluation.walkforward import walk_forward
    from stockpred.models.registry import prototype

    protocol = protocol_for(panel, split, kind)
    log(f"[stockpred] protocol {kind}: {protocol}")
    config = Config()
    scores, tallies = {}, {}
    for name in ["last_return", "random", *models]:
        tally = {"fit_s": 0.0, "fit_rows": 0, "predict_s": 0.0, "predict_rows": 0, "fits": 0}
        t = time.perf_counter()
        scores[name] = walk_forward(Timed(prototype(config, name), tally),
                                          panel, protocol, progress=False)
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
    (out / f"stockpred_{kind}_stats.json").write_text(json.dumps(tallies, indent=1))
    return scores


# -- the comparison ------------------------------------------------------------------------------

def compare(panel, bars, members, qlib_scores: pd.DataFrame, ours: dict[str, pd.DataFrame],
            kind: str, split: str) -> list[dict]:
    from stockpred.evaluation.backtest import BacktestSettings, equal_weight_returns, index_returns
    from stockpred.evaluation.cross_section import backtest_row, score_rows

    keys = ["trade_date", "ts_code"]
    common = qlib_scores.dropna(subset=["score"])[keys]
    for frame in ours.values():
        common = common.merge(frame.dropna(subset=["score"])[keys], on=keys)
    log(f"[compare {split}/{kind}] same rows: {len(common):,} (qlib {len(qlib_scores):,}, "
        f"stockpred {len(next(iter(ours.values()))):,})")
    marks = {"equal_weight": equal_weight_returns(bars, members)}
    index_file = ROOT.parent / "shared" / "data" / "tushare" / "index_daily" / "000300.SH.csv"
    if index_file.exists():
        index = pd.read_csv(index_file, dtype={"trade_date": str})
        marks["000300_SH"] = index_returns(index, "000300.SH")
    # qlib's own cost preset and fills, so the backtest is not what differs between the rows
    settings = BacktestSettings(topk=TOPK, n_drop=N_DROP, costs="qlib", slippage_bp=0,
                                participation=None)
    rows = []
    entries = [("qlib_lgb_alpha158", qlib_scores), *[(f"stockpred_{m}", f) for m, f in ours.items()]]
    for name, frame in entries:
        same = frame.merge(common, on=keys)[["trade_date", "ts_code", "score"]]
        signal = {(r["label"], r["rows"]): r for r in score_rows(name, same, panel, bars, "close")}
        bt, _ = backtest_row(name, same, bars, settings, marks)
        row = {"model": name}
        for label in ("ret_2", "ret_1"):
            row[f"ic_{label}"] = signal[(label, "all")]["ic"]
            row[f"rank_ic_{label}"] = signal[(label, "all")]["rank_ic"]
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
    return rows


COLUMNS = ["ic_ret_2", "rank_ic_ret_2", "rank_icir_ret_2", "rank_ic_ret_2_tradeable", "ic_ret_1",
           "rank_ic_ret_1", "rank_icir_ret_1", "rank_ic_ret_1_tradeable", "excess_cost",
           "ir_cost", "excess_no_cost", "excess_cost_csi300", "turnover", "max_dd"]


def _line(row: dict) -> str:
    return f"{row['model']:26s} " + " ".join(f"{c}={row[c]:+.4f}" for c in COLUMNS)


def table(rows: list[dict], title: str) -> str:
    head = "| model | " + " | ".join(COLUMNS) + " |"
    lines = [f"### {title}", "", head, "|" + "---|" * (len(COLUMNS) + 1)]
    lines += ["| " + r["model"] + " | " + " | ".join(f"{r[c]:.4f}" for c in COLUMNS) + " |"
              for r in rows]
    q = next(r for r in rows if r["model"] == "qlib_lgb_alpha158")
    lines += ["", "stockpred / qlib (same rows): Rank IC ret_2, Rank IC ret_1, "
              "excess after cost (difference, per year)"]
    for r in rows:
        if r is q:
            continue
        lines.append(f"- {r['model']}: {r['rank_ic_ret_2'] / q['rank_ic_ret_2']:.2f}x, "
                     f"{r['rank_ic_ret_1'] / q['rank_ic_ret_1']:.2f}x, "
                     f"{r['excess_cost']:+.4f} vs {q['excess_cost']:+.4f} "
                     f"({r['excess_cost'] - q['excess_cost']:+.4f})")
    return "\n".join(lines)


def record_comparison(universe: str, split: str, kind: str, rows: list[dict],
                      out: Path) -> None:
    """Keep this comparison in the results file the README's peer block is rendered from,
    beside the others (one entry per universe, split and protocol)."""
    from stockpred.config import load_config
    from stockpred.data.store import atomic_write_text
    from stockpred.layout import resolve_paths

    paths = resolve_paths(load_config(ROOT / "config.json"), ROOT / "data")
    target = paths.peer_comparison
    runs = json.loads(target.read_text(encoding="utf-8"))["runs"] if target.exists() else []
    entry = {"universe": universe, "split": split, "protocol": kind, **SPLITS[split],
             "topk": TOPK, "n_drop": N_DROP, "rows": rows,
             "qlib_stats": json.loads((out / "qlib_stats.json").read_text()),
             "stockpred_stats": json.loads((out / f"stockpred_{kind}_stats.json").read_text())}
    runs = [r for r in runs if (r["universe"], r["split"], r["protocol"]) != (universe, split, kind)]
    runs = sorted([*runs, entry], key=lambda r: (r["universe"], r["split"], r["protocol"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps({"runs": runs}, indent=1) + "\n")
    log(f"recorded in {target}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="stockpred vs qlib LightGBM/Alpha158")
    p.add_argument("--universe", default="top800")
    p.add_argument("--split", choices=["a", "b", "both"], default="a")
    p.add_argument("--protocol", choices=["once", "monthly", "both"], default="once")
    p.add_argument("--models", default="lightgbm,xgboost_cs")
    p.add_argument("--data", type=Path, default=qlib_data.DEFAULT_OUT)
    p.add_argument("--reuse", action="store_true", help="reuse stored qlib predictions")
    p.add_argument("--reuse-stockpred", action="store_true",
                   help="reuse stored stockpred predictions (scores them again; no timings)")
    p.add_argument("--concurrent", action="store_true",
                   help="run qlib's child while stockpred computes (timings then share the CPUs)")
    p.add_argument("--part", choices=["all", "qlib"], default="all", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    splits = ["a", "b"] if args.split == "both" else [args.split]
    if args.part == "qlib":
        run_qlib(args.data, args.universe, splits[0], Path.cwd())
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
        if not (args.reuse and (outs[s] / "qlib_pred.parquet").exists()):
            children[s] = start_qlib(args.data, args.universe, s, outs[s])
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
    report = []
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
            qlib_scores = pd.read_parquet(outs[s] / "qlib_pred.parquet")
            rows = compare(panel, bars, members, qlib_scores, ours, kind, s)
            seg = SPLITS[s]
            text = table(rows, f"{args.universe}, split {s}: train {seg['train'][0]}.."
                               f"{seg['train'][1]}, valid {seg['valid'][0]}..{seg['valid'][1]},"
                               f" test {seg['test'][0]}..{seg['test'][1]}; stockpred {kind}")
            log("\n" + text + "\n")
            report.append(text)
            (outs[s] / f"table_{kind}.md").write_text(text + "\n")
            record_comparison(args.universe, s, kind, rows, outs[s])
    log(f"total wall {time.perf_counter() - started:.0f}s; stockpred part "
        f"{time.perf_counter() - t_sp:.0f}s wall (incl. scoring), peak RSS of this process "
        f"{peak_rss_gb():.2f} GB (qlib ran in a child)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
