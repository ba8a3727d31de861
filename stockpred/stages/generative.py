"""The generative stages: `stockpred train vae`, `train minutes` and `train wgan`.

Each trains on rows before evaluation.validation_start and monitors the validation period.
The VAE is fit again under the original design's train/validation cuts of the days before
the test (experiments.train_fractions, 0.9 / 0.1 and 0.98 / 0.02, as the LSTM and the
importance ranking are), and each fit's reconstructions of the test windows are scored
against the training mean's (metrics.json, ``splits``; `stockpred plot generative` draws
them). The VAE writes its latent codes of every day (<data dir>/latent/), the minute-bar day
encoder the codes of every day with minute bars (<data dir>/minutes/); models read either
as extra inputs (`<model>+vae`, `<model>+minutes`). The WGAN scores its sampled
distributions on the test period against a Gaussian random walk and its sample-median
next close against persistence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.config import Config, quick_config
from stockpred.data.store import RawStore, atomic_write_parquet
from stockpred.dataset import Periods, load_stocks
from stockpred.errors import MissingInputError
from stockpred.evaluation.metrics import loss_differential_test
from stockpred.evaluation.scoring import score
from stockpred.evaluation.walkforward import forecast_period
from stockpred.generative.common import check_enough
from stockpred.generative.minutes import MinuteDayEncoder, code_columns, day_grids
from stockpred.generative.vae import LOG_2PI, WindowVAE, latent_columns
from stockpred.generative.wgan import FAN_FILE, WGANForecaster, fan_table, score_distributions
from stockpred.layout import Paths, new_run_folder
from stockpred.manifest import write_manifest
from stockpred.stages.runs import write_run


# training stages write data; the plot stage draws it
DRAW_HINT = "figures: `stockpred plot generative`"


@dataclass
class VAEReport:
    run_dir: Path
    history: dict
    latent_files: list[Path]
    checks: dict = field(default_factory=dict)
    model: WindowVAE | None = None
    splits: list[dict] = field(default_factory=list)

    def summary(self) -> list[str]:
        h, c = self.history, self.checks
        lines = [f"saved {self.run_dir}",
                 f"train -ELBO per window {h['neg_elbo'][0]:.2f} -> {h['neg_elbo'][-1]:.2f} "
                 f"(floor 0.5 D log 2pi = {c['nll_constant']:.1f}), reconstruction MSE {h['mse'][0]:.4f} -> {h['mse'][-1]:.4f}"]
        if h["val_neg_elbo"]:
            lines.append(f"validation -ELBO {h['val_neg_elbo'][0]:.2f} -> "
                         f"{h['val_neg_elbo'][-1]:.2f} (kept epoch {c['best_epoch'] + 1}), "
                         f"MSE {h['val_mse'][0]:.4f} -> {h['val_mse'][-1]:.4f}")
        lines.append(f"loss positive: {'yes' if c['loss_positive'] else 'NO'}; training loss "
                     f"falls: {'yes' if c['loss_falls'] else 'NO'}; "
                     f"{c['seconds_per_epoch']:.2f} s per epoch")
        for cut in self.splits:
            if "skipped" in cut:
                lines.append(f"{cut['split']} cut skipped: {cut['skipped']}")
                continue
            lines.append(f"validation from {cut['validation_start']} ({cut['split']}): test "
                         f"reconstruction MSE {cut['test_mse']:.4f} against the training "
                         f"mean's {cut['test_mse_training_mean']:.4f}, DM p "
                         f"{cut['dm_pvalue']:.3g} ({cut['dm_days']} days, "
                         f"{cut['dm_lags']} lags)")
        lines += [f"latent features: {p}" for p in self.latent_files]
        lines.append(DRAW_HINT)
        return lines


def scored_cut(model: WindowVAE, stocks: list, periods: Periods, split: str,
               validation_start: str) -> dict:
    """One train/validation cut's VAE: its curves and kept epoch, and its reconstructions of
    the windows ending in the test period against the training mean's, by a Diebold-Mariano
    test on the daily mean of the squared-error difference (Newey-West, at least
    window - 1 lags: a day's window shares its days with the window - 1 before it)."""
    errors = pd.concat([model.window_errors(s) for s in stocks], ignore_index=True)
    test = errors[periods.in_test(errors["trade_date"].to_numpy())]
    paired = loss_differential_test(test["trade_date"].to_numpy(),
                                    test["mse"] - test["mse_training_mean"], model.window)
    h = model.history_
    return {"split": split, "validation_start": validation_start,
            "train_windows": model.train_windows_, "kept_epoch": int(model.best_epoch_) + 1,
            "epochs": len(h["neg_elbo"]),
            "validation_neg_elbo": (float(h["val_neg_elbo"][model.best_epoch_])
                                    if h["val_neg_elbo"] else float("nan")),
            "test_windows": int(len(test)), "test_mse": float(test["mse"].mean()),
            "test_mse_training_mean": float(test["mse_training_mean"].mean()),
            "dm_stat": paired["stat"], "dm_pvalue": paired["pvalue"],
            "dm_days": paired["days"], "dm_lags": paired["lags"],
            "neg_elbo": h["neg_elbo"], "val_neg_elbo": h["val_neg_elbo"]}


def vae_under_cuts(config: Config, stocks: list, periods: Periods, settings: dict,
                   fitted: WindowVAE) -> list[dict]:
    """``fitted`` (cut at evaluation.validation_start) and a VAE fit under each of
    experiments.train_fractions: the first share of the days before the test trains, the
    rest validates (early stopping), as the LSTM's and the importance ranking's cuts. A cut
    that leaves no stock a window on either side is recorded as skipped, with the reason."""
    cuts = [scored_cut(fitted, stocks, periods, "evaluation.validation_start",
                       periods.validation_start)]
    known = [periods.before_test(s) for s in stocks]
    days = np.unique(np.concatenate([k.dates for k in known]))
    window = int(settings["window"])
    for share in config.experiments.train_fractions:
        start = str(days[min(int(round(share * len(days))), len(days) - 1)])
        train = [k.rows(k.dates < start) for k in known]
        valid = [k.rows(k.dates >= start) for k in known]
        split = f"{share:g} / {1 - share:g}"
        if min(max(len(t) for t in train), max(len(v) for v in valid)) < window:
            # a comparison the history is too short for; the codes do not depend on it
            cuts.append({"split": split, "validation_start": start, "skipped": (
                f"{share:g} of the {len(days)} days before the test leaves a part shorter "
                f"than the {window}-day window")})
            continue
        model = WindowVAE(settings, config.evaluation.seed).fit(train, valid)
        cuts.append(scored_cut(model, stocks, periods, split, start))
    return cuts


def run_vae(config: Config, paths: Paths, ts_codes: list[str] | None = None,
            quick: bool = False, progress: bool = False) -> VAEReport:
    if quick:
        config = quick_config(config)
    settings = config.generative.vae.model_dump()
    periods = Periods.from_config(config)
    stocks, features = load_stocks(config, paths, ts_codes, settings["features"])
    train, valid = periods.split(stocks)
    check_enough(train, settings["window"] + 1, "VAE")
    with new_run_folder(paths.model_runs("vae"), quick) as run_folder:
        run_dir = run_folder.final
        model = WindowVAE(settings, config.evaluation.seed).fit(train, valid,
                                                                verbose=1 if progress else 0)
        model.save(run_folder.writing)
        files, codes = [], {}
        for stock in stocks:
            frame = model.latent_frame(stock)
            path = paths.latent_table(stock.ts_code)
            atomic_write_parquet(frame, path)
            files.append(path)
            codes[stock.ts_code] = frame
        h = model.history_
        losses = h["neg_elbo"] + h["val_neg_elbo"] + h["loss"]
        checks = {"loss_positive": bool(all(v > 0 for v in losses)),
                  "loss_falls": bool(h["neg_elbo"][-1] < h["neg_elbo"][0]),
                  "best_epoch": int(model.best_epoch_),
                  "nll_constant": 0.5 * settings["window"] * len(features) * LOG_2PI,
                  "seconds_per_epoch": float(np.mean(h["seconds"]))}
        splits = vae_under_cuts(config, stocks, periods, settings, model)
        finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_manifest(paths.latent_manifest, {
            "stage": "vae", "finished_at": finished, "run_dir": str(run_dir),
            "columns": latent_columns(int(settings["latent_dim"])),
            "window": settings["window"], "train_until": periods.validation_start,
            "seen_before": periods.test_start,
            "files": {s.ts_code: {"path": str(p), "rows": len(s)}
                      for s, p in zip(stocks, files)}})
        write_run(run_folder, config, paths, {
            "model": "vae", "settings": settings, "quick": quick, "features": features,
            "train_until": periods.validation_start,
            "validation": [periods.validation_start, periods.test_start],
            "stocks": [s.ts_code for s in stocks], "train_windows": model.train_windows_,
            "checks": checks, "history": h, "splits": splits,
            "latent_files": [str(p) for p in files], "finished_at": finished})
    return VAEReport(run_dir, h, files, checks, model, splits)


@dataclass
class MinutesReport:
    run_dir: Path
    facts: dict
    codes_file: Path

    def summary(self) -> list[str]:
        f = self.facts
        short = ", ".join(f"{day} ({bars} bars)" for day, bars in f["short_days"].items())
        return [f"saved {self.run_dir}",
                f"{f['ts_code']}: {f['days']} days of minute bars {f['first_day']}.."
                f"{f['last_day']}; encoder fit on the {f['train_days']} days before "
                f"{f['train_until']}, stopped on {f['validation_days']} days before "
                f"{f['test_start']} (kept epoch {f['best_epoch'] + 1})",
                f"validation reconstruction MSE (standardised grid) {f['validation_mse']:.4f}"
                f" against {f['validation_mse_mean_day']:.4f} for the mean training day",
                f"{f['days_with_fewer_bars']} day(s) with fewer than 240 bars encoded with "
                f"their missing slots filled" + (f"; under 200: {short}" if short else ""),
                f"minute codes: {self.codes_file}", DRAW_HINT]


def run_minutes(config: Config, paths: Paths, quick: bool = False,
                progress: bool = False) -> MinutesReport:
    """Fit the minute-bar day encoder of generative.minutes.ts_code and write its codes."""
    if quick:
        config = quick_config(config)
    settings = config.generative.minutes.model_dump()
    code = settings["ts_code"]
    periods = Periods.from_config(config)
    store = RawStore(paths.raw_dir)
    bars = store.read("stk_mins", [code]) if store.has("stk_mins") else None
    if bars is None or bars.empty:
        raise MissingInputError(f"no stored minute bars (stk_mins) of {code}: run `stockpred "
                                f"fetch` with {code} in fetch.minute_codes first")
    days, counts, grids = day_grids(bars)
    train = days < periods.validation_start
    valid = (days >= periods.validation_start) & (days < periods.test_start)
    check_enough([days[train]], 2, "minute encoder")
    with new_run_folder(paths.model_runs("minutes"), quick) as run_folder:
        model = MinuteDayEncoder(settings, config.evaluation.seed).fit(
            grids[train], grids[valid], verbose=2 if progress else 0)
        model.save(run_folder.writing)
        frame = model.code_frame(days, counts, grids)
        table = paths.minute_codes_table(code)
        atomic_write_parquet(frame, table)
        facts = {"ts_code": code, "days": int(len(days)), "first_day": str(days[0]),
                 "last_day": str(days[-1]), "train_until": periods.validation_start,
                 "test_start": periods.test_start, "train_days": int(train.sum()),
                 "validation_days": int(valid.sum()), "best_epoch": model.best_epoch_,
                 **model.validation_errors(grids[valid]),
                 "days_with_fewer_bars": int((counts < 240).sum()),
                 "short_days": {str(d): int(n) for d, n in zip(days, counts) if n < 200},
                 "seconds_per_epoch": model.seconds_per_epoch_}
        finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_manifest(paths.minute_codes_manifest, {
            "stage": "minutes", "finished_at": finished, "run_dir": str(run_folder.final),
            "ts_code": code, "columns": code_columns(int(settings["code_dim"])),
            "train_until": periods.validation_start, "seen_before": periods.test_start,
            "rows": int(len(frame))})
        write_run(run_folder, config, paths, {
            "model": "minutes", "settings": settings, "quick": quick, **facts,
            "history": model.history_, "codes_file": str(table), "finished_at": finished})
    return MinutesReport(run_folder.final, facts, table)


@dataclass
class WGANReport:
    run_dir: Path
    metrics: dict
    model: WGANForecaster | None = field(default=None, repr=False)

    def summary(self) -> list[str]:
        m = self.metrics
        lines = [f"saved {self.run_dir}"]
        for label, scores in m["distribution"].items():
            g, w = scores["wgan"], scores["random_walk"]
            lines.append(f"test {label.replace('_', '-')} log return: CRPS {g['crps']:.5f} "
                         f"(random walk {w['crps']:.5f}), 80% band covers {g['coverage_80']:.3f}"
                         f" ({w['coverage_80']:.3f}), 95% band {g['coverage_95']:.3f} "
                         f"({w['coverage_95']:.3f}); {g['origins']} origins")
        f, p = m["forecast"], m["persistence"]
        lines.append(f"sample-median next close: rmse_price {f['rmse_price']:.4f} (persistence "
                     f"{p['rmse_price']:.4f}), rmse_return {f['rmse_return']:.5f} "
                     f"({p['rmse_return']:.5f}), DM vs persistence "
                     f"{f['dm_stat_vs_persistence']:.3g} (p {f['dm_pvalue_vs_persistence']:.3g})")
        lines.append(f"{m['seconds_per_epoch']:.2f} s per epoch")
        lines.append(DRAW_HINT)
        return lines


def run_wgan(config: Config, paths: Paths, ts_codes: list[str] | None = None,
             quick: bool = False, progress: bool = False) -> WGANReport:
    if quick:
        config = quick_config(config)
    settings = WGANForecaster.settings_from(config)
    periods = Periods.from_config(config)
    stocks, _ = load_stocks(config, paths, ts_codes, settings["features"])
    train, valid = periods.split(stocks)
    tests = [periods.in_test(s.dates) for s in stocks]
    check_enough(train, settings["window"] + settings["horizon"] + 1, "WGAN")
    seed = config.evaluation.seed
    with new_run_folder(paths.model_runs("wgan"), quick) as run_folder:
        run_dir = run_folder.final
        model = WGANForecaster(settings, seed).fit(train, valid, verbose=1 if progress else 0)
        model.save(run_folder.writing)
        predictions = forecast_period(model, stocks, periods)
        persistence = predictions.assign(predicted_close=predictions["close"])
        metrics = {
            "model": "wgan", "settings": settings, "quick": quick,
            "train_until": periods.validation_start,
            "validation": [periods.validation_start, periods.test_start],
            "test": [periods.test_start, periods.test_end],
            "stocks": [s.ts_code for s in stocks], "train_pairs": model.train_pairs_,
            "distribution": score_distributions(model, stocks, tests, seed),
            "forecast": score(predictions, persistence),
            "persistence": score(persistence, persistence),
            "seconds_per_epoch": float(np.mean(model.history_["seconds"])),
            "history": model.history_,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_run(run_folder, config, paths, metrics, predictions)
        atomic_write_parquet(fan_table(model, stocks[0], tests[0]), run_folder.writing / FAN_FILE)

    return WGANReport(run_dir, metrics, model)
