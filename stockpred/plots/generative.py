"""Figures of the generative models: the VAE's latent space and losses and its fits under
each train/validation cut, the minute-bar day codes over time with the encoder's losses,
the WGAN's training curves and fan charts of sampled paths against what happened (next to
a Gaussian random walk's band, the honest baseline).

`run` redraws every figure from the latest saved runs (`stockpred plot generative`).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from stockpred.config import Config
from stockpred.errors import MissingInputError
from stockpred.dataset import Periods, StockData, load_stocks
from stockpred.generative.wgan import FAN_FILE, WALK_HIGH, WALK_LOW
from stockpred.layout import Paths
from stockpred.plots import Provenance, drawn_from, save_figure

UP, DOWN = "#d62728", "#2ca02c"  # Chinese convention: red rises, green falls


# -- VAE ------------------------------------------------------------------------------------------
def vae_latent(stocks: list[StockData], codes: dict[str, pd.DataFrame], config: Config,
               path: Path, drawn: Provenance) -> Path:
    """The latent means (first two dimensions) of every day's window, one panel per period,
    coloured by the next day's return."""
    cut = Periods.from_config(config)
    periods = [("training", lambda d: d < cut.validation_start),
               ("validation", lambda d: (d >= cut.validation_start) & (d < cut.test_start)),
               ("test", cut.in_test)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.8), sharex=True, sharey=True)
    names = ", ".join(s.ts_code for s in stocks[:3]) + (", ..." if len(stocks) > 3 else "")
    fig.suptitle(f"VAE latent space (mean of q(z | window)), {names}: colour = next-day return",
                 fontsize=12)
    scatter = None
    for ax, (title, pick) in zip(axes, periods):
        xs, ys, cs = [], [], []
        for stock in stocks:
            z = codes[stock.ts_code].filter(like="vae_z").to_numpy(float)
            keep = pick(stock.dates) & np.isfinite(z).all(axis=1) & np.isfinite(
                stock.next_return)
            xs.append(z[keep, 0])
            ys.append(z[keep, 1] if z.shape[1] > 1 else np.flatnonzero(keep))
            cs.append(stock.next_return[keep] * 100)
        x, y, c = (np.concatenate(a) for a in (xs, ys, cs))
        scatter = ax.scatter(x, y, c=np.clip(c, -3, 3), cmap="RdYlGn_r", vmin=-3, vmax=3, s=7,
                             alpha=0.8, linewidths=0)
        ax.set_title(f"{title} ({len(x)} days)", fontsize=10)
        ax.set_xlabel("z0")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("z1" if stocks and codes[stocks[0].ts_code].filter(
        like="vae_z").shape[1] > 1 else "row")
    if scatter is not None:
        fig.colorbar(scatter, ax=axes, shrink=0.85, label="next-day return, % (clipped at ±3)")
    return save_figure(fig, path, drawn, crop=True)


def vae_loss(history: dict, best_epoch: int, path: Path, drawn: Provenance) -> Path:
    """-ELBO per window (training and validation) with beta, and its two terms."""
    epochs = np.arange(1, len(history["neg_elbo"]) + 1)
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.4))
    fig.suptitle("VAE training: Gaussian likelihood, KL warm-up", fontsize=12)
    ax[0].plot(epochs, history["neg_elbo"], marker="o", ms=3, label="training -ELBO")
    if history.get("val_neg_elbo"):
        ax[0].plot(epochs, history["val_neg_elbo"], marker="o", ms=3, label="validation -ELBO")
        ax[0].axvline(best_epoch + 1, color="gray", ls=":", lw=1, label="kept weights")
    ax[0].plot(epochs, history["loss"], ls="--", lw=1, label="training objective (beta KL)")
    ax[0].set_ylabel("loss per window (nats, incl. 0.5 D log 2π)")
    beta = ax[0].twinx()
    beta.plot(epochs, history["beta"], color="black", lw=0.8, alpha=0.5, label="beta")
    beta.set_ylabel("beta (KL weight)")
    beta.set_ylim(-0.05, 1.05)
    ax[1].plot(epochs, history["mse"], label="training reconstruction MSE")
    if history.get("val_mse"):
        ax[1].plot(epochs, history["val_mse"], label="validation reconstruction MSE")
    ax[1].set_ylabel("MSE per standardised value")
    kl = ax[1].twinx()
    kl.plot(epochs, history["kl"], color="tab:purple", ls="--", label="training KL")
    if history.get("val_kl"):
        kl.plot(epochs, history["val_kl"], color="tab:brown", ls="--", label="validation KL")
    kl.set_ylabel("KL per window (nats)")
    lines = ax[1].get_legend_handles_labels()
    more = kl.get_legend_handles_labels()
    ax[1].legend(lines[0] + more[0], lines[1] + more[1], fontsize=8)
    handles = [sum(pair, []) for pair in zip(ax[0].get_legend_handles_labels(),
                                             beta.get_legend_handles_labels())]
    beta.legend(*handles, fontsize=8, loc="center right")  # on top of both axes
    for a in ax:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
    return save_figure(fig, path, drawn)


def vae_splits(splits: list[dict], path: Path, drawn: Provenance) -> Path:
    """The VAE under each train/validation cut (the VAE run's ``splits``): validation
    -ELBO per epoch with the kept epoch, and the test windows' reconstruction error beside
    the training mean's, with the Diebold-Mariano p of their difference; a cut the history
    was too short for is left out."""
    splits = [cut for cut in splits if "skipped" not in cut]
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    fig.suptitle("VAE under each train/validation cut of the days before the test",
                 fontsize=12)
    for cut in splits:
        label = f"{cut['split']} (validation from {cut['validation_start']})"
        if cut["val_neg_elbo"]:
            epochs = np.arange(1, len(cut["val_neg_elbo"]) + 1)
            line, = ax[0].plot(epochs, cut["val_neg_elbo"], marker="o", ms=2.5, label=label)
            ax[0].plot(cut["kept_epoch"], cut["validation_neg_elbo"], marker="*", ms=12,
                       color=line.get_color())
    ax[0].plot([], [], "k*", ms=10, ls="none", label="kept epoch (lowest at full KL weight)")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("validation -ELBO per window (nats)")
    ax[0].set_title("each cut validates on other days: compare shapes, not levels",
                    fontsize=9)
    ax[0].legend(fontsize=7)
    x = np.arange(len(splits))
    ax[1].bar(x - 0.2, [c["test_mse"] for c in splits], 0.4, label="VAE reconstruction")
    ax[1].bar(x + 0.2, [c["test_mse_training_mean"] for c in splits], 0.4, color="gray",
              label="training mean (naive)")
    for i, cut in enumerate(splits):
        ax[1].annotate(f"DM p {cut['dm_pvalue']:.2g}", (i, max(cut["test_mse"],
                       cut["test_mse_training_mean"])), ha="center", va="bottom", fontsize=8)
    ax[1].set_xticks(x, [c["split"].replace("evaluation.", "") for c in splits], fontsize=8)
    ax[1].set_ylabel("test MSE per standardised value")
    ax[1].set_title(f"test windows ({splits[0]['test_windows']} per cut)", fontsize=9)
    ax[1].legend(fontsize=8, loc="lower right")
    for a in ax:
        a.grid(alpha=0.3)
    return save_figure(fig, path, drawn)


# -- WGAN -----------------------------------------------------------------------------------------
def wgan_training(history: dict, path: Path, drawn: Provenance) -> Path:
    """Critic loss and Wasserstein estimate, generator loss, gradient penalty, validation CRPS."""
    epochs = np.arange(1, len(history["critic_loss"]) + 1)
    fig, ax = plt.subplots(2, 2, figsize=(12, 7))
    fig.suptitle("WGAN-GP training (per epoch means)", fontsize=12)
    a = ax[0, 0]
    a.plot(epochs, history["critic_loss"], label="critic loss (-W + GP)")
    a.plot(epochs, history["wasserstein"], label="Wasserstein estimate, training")
    if history.get("val_wasserstein"):
        a.plot(epochs, history["val_wasserstein"], label="Wasserstein estimate, validation")
    a.set_title("critic", fontsize=10)
    ax[0, 1].plot(epochs, history["generator_loss"], color="tab:green")
    ax[0, 1].set_title("generator loss (-E[D(fake)])", fontsize=10)
    ax[1, 0].plot(epochs, history["gradient_penalty"], color="tab:red")
    ax[1, 0].set_title("gradient penalty (weighted)", fontsize=10)
    a = ax[1, 1]
    if history.get("val_crps"):
        a.plot(epochs, history["val_crps"], label="WGAN")
        if history.get("val_crps_random_walk"):
            a.axhline(history["val_crps_random_walk"][0], color="gray", ls="--",
                      label="Gaussian random walk")
    a.set_title("validation CRPS, next day (standardised returns)", fontsize=10)
    for a in ax.flat:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    return save_figure(fig, path, drawn)


def wgan_fan(fan: pd.DataFrame, stock: StockData, path: Path, drawn: Provenance,
             history_days: int = 30, shown_paths: int = 15) -> Path:
    """Fan charts at a few test origins (the WGAN run's fan table): sampled closes (median,
    80% and 95% bands, a few paths), what happened, and the Gaussian random walk's 95% band."""
    origins = sorted(fan["origin"].unique())
    k = int(fan["step"].max())
    cols = min(2, max(1, len(origins)))
    rows_ = max(1, int(np.ceil(len(origins) / cols)))
    fig, axes = plt.subplots(rows_, cols, figsize=(6.5 * cols, 3.8 * rows_), squeeze=False)
    fig.suptitle(f"{stock.ts_code}: WGAN sampled paths over the next {k} days vs what happened "
                 f"(test period)", fontsize=12)
    dates = pd.to_datetime(pd.Series(stock.dates), format="%Y%m%d")
    for ax, origin in zip(axes.flat, origins):
        t = int(np.searchsorted(stock.dates, origin))
        past = slice(max(0, t - history_days), t + 1)
        ax.plot(dates[past], stock.close[past], color="black", lw=1, label="close")
        ax.plot(dates[t:t + k + 1], stock.close[t:t + k + 1], color="black", lw=1.5,
                ls="--", marker="o", ms=3, label="what happened")
        closes = fan[fan["origin"] == origin].pivot(index="path", columns="step",
                                                     values="close")
        sampled = closes.loc[closes.index >= 0].to_numpy()
        span = dates[t:t + k + 1]
        for lo, hi, alpha, label in ((2.5, 97.5, 0.18, "WGAN 95%"), (10, 90, 0.35, "WGAN 80%")):
            ax.fill_between(span, np.percentile(sampled, lo, axis=0),
                            np.percentile(sampled, hi, axis=0), color="tab:blue",
                            alpha=alpha, lw=0, label=label)
        for p in sampled[:shown_paths]:
            ax.plot(span, p, color="tab:blue", lw=0.4, alpha=0.5)
        ax.plot(span, np.median(sampled, axis=0), color="tab:blue", lw=1.2,
                label="WGAN median")
        for band, label in ((WALK_LOW, "random walk 95%"), (WALK_HIGH, None)):
            ax.plot(span, closes.loc[band].to_numpy(), color="gray", ls=":", lw=1, label=label)
        ax.set_title(f"origin {origin}", fontsize=10)
        ax.set_ylabel("close (CNY, adjusted)")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(origins):]:
        ax.axis("off")
    if len(origins):
        axes.flat[0].legend(fontsize=7, loc="upper left")
    return save_figure(fig, path, drawn)


# -- minute-bar day encoder ------------------------------------------------------------------------
def minute_codes(codes: pd.DataFrame, history: dict, best_epoch: int, path: Path,
                 drawn: Provenance) -> Path:
    """Each day's code over time (days with fewer than 240 bars marked) and the encoder's
    training and validation losses."""
    dates = pd.to_datetime(codes["trade_date"], format="%Y%m%d")
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [2, 1]})
    fig.suptitle("Minute-bar day encoder: one code per trading day", fontsize=12)
    for column in codes.filter(like="minute_z").columns:
        ax[0].plot(dates, codes[column], lw=0.7, label=column)
    short = codes["bars"] < 240
    for day in dates[short]:
        ax[0].axvline(day, color="gray", lw=0.5, alpha=0.5)
    ax[0].plot([], [], color="gray", lw=0.5, label=f"fewer than 240 bars ({int(short.sum())} days)")
    ax[0].set_ylabel("code")
    ax[0].legend(fontsize=8, ncol=2)
    ax[0].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax[1].plot(epochs, history["loss"], label="training MSE")
    if history.get("val_loss"):
        ax[1].plot(epochs, history["val_loss"], label="validation MSE")
    ax[1].axvline(best_epoch + 1, color="gray", ls=":", lw=1, label="kept weights")
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("MSE per standardised value")
    ax[1].legend(fontsize=8)
    for a in ax:
        a.grid(alpha=0.3)
    return save_figure(fig, path, drawn)


# -- redraw from saved runs ------------------------------------------------------------------------
def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def _drawn(config: Config, paths: Paths, run: Path, metrics: dict) -> Provenance:
    return drawn_from("stockpred plot generative", config, paths, run,
                      metrics.get("finished_at"), run_id=run.name, quick=metrics["quick"])


def run(config: Config, paths: Paths) -> list[Path]:
    """Draw the figures from the latest VAE, minute encoder and WGAN runs (whichever exist)."""
    out = paths.figures_dir("generative")
    made = []
    vae_run, wgan_run = paths.latest_run("vae"), paths.latest_run("wgan")
    minutes_run = paths.latest_run("minutes")
    if vae_run is None and wgan_run is None and minutes_run is None:
        raise MissingInputError(f"no VAE, minute encoder or WGAN run under "
                                f"{paths.model_runs('vae').parent}: run `stockpred train vae`, "
                                f"`train minutes` or `train wgan` first")
    if minutes_run is not None:
        metrics = _metrics(minutes_run)
        codes = pd.read_parquet(paths.minute_codes_table(metrics["ts_code"]))
        made.append(minute_codes(codes, metrics["history"], metrics["best_epoch"],
                                  out / "minute_codes.png",
                                  _drawn(config, paths, minutes_run, metrics)))
    if vae_run is not None:
        metrics = _metrics(vae_run)
        stocks, _ = load_stocks(config, paths, metrics["stocks"], metrics["features"])
        codes = {s.ts_code: pd.read_parquet(paths.latent_table(s.ts_code)) for s in stocks}
        source = _drawn(config, paths, vae_run, metrics)
        made.append(vae_latent(stocks, codes, config, out / "vae_latent.png", source))
        made.append(vae_loss(metrics["history"], metrics["checks"]["best_epoch"],
                              out / "vae_loss.png", source))
        if metrics.get("splits"):  # runs before the cuts were compared have none
            made.append(vae_splits(metrics["splits"], out / "vae_splits.png", source))
    if wgan_run is not None:
        metrics = _metrics(wgan_run)
        stocks, _ = load_stocks(config, paths, metrics["stocks"][:1], [])
        source = _drawn(config, paths, wgan_run, metrics)
        made.append(wgan_training(metrics["history"], out / "wgan_training.png", source))
        made.append(wgan_fan(pd.read_parquet(wgan_run / FAN_FILE), stocks[0],
                              out / "wgan_fan.png", source))
    return made
