"""The feature-engineering figures the README shows, regenerated from the stored features.

Each figure plots one stock (plot.ts_code) over its last plot.days trading days, from
the point-in-time feature table, so what is drawn for day t is what was known at t.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import font_manager

from stockpred.config import Config
from stockpred.data.store import RawStore
from stockpred.errors import MissingInputError
from stockpred.layout import Paths
from stockpred.manifest import read_manifest, upstream
from stockpred.plots import Provenance, drawn_from, save_figure

COMMAND = "stockpred plot features"

_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
              "SimHei", "Microsoft YaHei", "PingFang SC", "Source Han Sans SC")


def stock_label(store: RawStore, code: str) -> str:
    """"600036.SH 招商银行" when a CJK font is installed to draw the name, else the code."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    font = next((f for f in _CJK_FONTS if f in installed), None)
    if font is None or not store.has("stock_basic"):
        return code
    names = store.read("stock_basic", columns=["ts_code", "name"])
    name = names.loc[names["ts_code"] == code, "name"]
    if name.empty:
        return code
    plt.rcParams["font.sans-serif"] = [font, *plt.rcParams["font.sans-serif"]]
    return f"{code} {name.iloc[0]}"


def _panels(n: int, title: str, heights=None):
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n + 0.6), sharex=True,
                             gridspec_kw={"height_ratios": heights} if heights else None)
    axes = np.atleast_1d(axes)
    fig.suptitle(title, fontsize=12)
    return fig, axes


def _finish(fig, axes, path: Path, drawn: Provenance) -> Path:
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8, ncol=4)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m"))
    axes[-1].set_xlabel("trading day")
    fig.autofmt_xdate()
    return save_figure(fig, path, drawn)


def importance_splits(chosen: dict, path: Path, drawn: Provenance) -> Path:
    """The top features of the selection beside those under each of the original design's
    train/validation cuts, each titled with its validation error and the naive one's: a
    feature that ranks high under one cut only owes its place to where validation starts."""
    cuts = [{**chosen, "split": "the selection (importance.validation_fraction)",
             "ranking": chosen["selected"]}, *chosen["splits"]]
    depth = max(len(cut["ranking"]) for cut in cuts)
    fig, axes = plt.subplots(1, len(cuts), figsize=(4.6 * len(cuts), 0.28 * depth + 1.8))
    everywhere = set.intersection(*({f["name"] for f in cut["ranking"]} for cut in cuts))
    for ax, cut in zip(np.atleast_1d(axes), cuts):
        top = cut["ranking"][::-1]
        ax.barh([f["name"] for f in top], [f["gain_share"] for f in top],
                color=["tab:blue" if f["name"] in everywhere else "tab:orange" for f in top])
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("share of total gain")
        ax.set_title(f"{cut['split']}\nvalidation from {cut['validation_days'][0]}: "
                     f"{chosen['metric']} {cut['validation_error']:.4g} "
                     f"(naive {cut['naive_validation_error']:.4g})", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"XGBoost importance on {chosen['target']} under each train/validation cut "
                 f"(blue: in every top {depth})", fontsize=11)
    return save_figure(fig, path, drawn)


def run(config: Config, paths: Paths, ts_code: str | None = None) -> list[Path]:
    code = ts_code or config.plot.ts_code
    table = paths.features_table(code)
    if not table.exists():
        raise MissingInputError(f"no features for {code} under {paths.features_dir}: run "
                                f"`stockpred features` first")
    panel = pd.read_parquet(table)
    panel = panel[panel["suspended"] == 0].tail(config.plot.days)
    x = pd.to_datetime(panel["trade_date"], format="%Y%m%d")
    store = RawStore(paths.raw_dir)
    who = stock_label(store, code)
    out = paths.feature_figures_dir
    out.mkdir(parents=True, exist_ok=True)
    made = []
    c = panel["close"]
    finished = upstream(paths)
    drawn = drawn_from(COMMAND, config, paths, table, finished["features"])

    def col(name):
        return panel[name] if name in panel.columns else pd.Series(np.nan, index=panel.index)

    fig, ax = _panels(2, f"{who}: close and amount", [3, 1])
    ax[0].plot(x, c, label="close", color="black", lw=1)
    ax[0].plot(x, col("ma7"), label="MA7", lw=0.8)
    ax[0].plot(x, col("ma21"), label="MA21", lw=0.8)
    ax[0].set_ylabel("price (CNY, adjusted)")
    ax[1].bar(x, panel["amount"] / 1e5, width=1.0, color="gray")
    ax[1].set_ylabel("amount (100M CNY)")
    made.append(_finish(fig, ax, out / "price_amount.png", drawn))

    fig, ax = _panels(2, f"{who}: MACD (12, 26, 9)", [2, 1])
    ax[0].plot(x, c, color="black", lw=1, label="close")
    ax[0].plot(x, col("ema12"), lw=0.8, label="EMA12")
    ax[0].plot(x, col("ema26"), lw=0.8, label="EMA26")
    ax[0].set_ylabel("price")
    bar = col("macd_bar")
    ax[1].bar(x, bar, width=1.0, color=np.where(bar >= 0, "tab:red", "tab:green"),
              label="BAR = 2 (DIF - DEA)")
    ax[1].plot(x, col("macd_dif"), lw=0.8, label="DIF")
    ax[1].plot(x, col("macd_dea"), lw=0.8, label="DEA")
    ax[1].set_ylabel("MACD")
    made.append(_finish(fig, ax, out / "macd.png", drawn))

    fig, ax = _panels(2, f"{who}: Bollinger bands (20, 2) and KDJ (9, 3, 3)")
    ax[0].plot(x, c, color="black", lw=1, label="close")
    ax[0].plot(x, col("boll_mid"), lw=0.8, label="MID")
    ax[0].fill_between(x, col("boll_lower"), col("boll_upper"), alpha=0.2, label="UPPER/LOWER")
    ax[0].set_ylabel("price")
    for name in ("kdj_k", "kdj_d", "kdj_j"):
        ax[1].plot(x, col(name), lw=0.8, label=name[-1].upper())
    ax[1].axhline(80, ls="--", color="gray", lw=0.6)
    ax[1].axhline(20, ls="--", color="gray", lw=0.6)
    ax[1].set_ylabel("KDJ")
    made.append(_finish(fig, ax, out / "bollinger_kdj.png", drawn))

    fig, ax = _panels(2, f"{who}: open and RSI (6, 12, 24)")
    ax[0].plot(x, panel["open"], color="black", lw=1, label="open")
    ax[0].set_ylabel("price")
    for n in config.features.indicators.rsi:
        ax[1].plot(x, col(f"rsi{n}"), lw=0.8, label=f"RSI{n}")
    ax[1].axhline(70, ls="--", color="gray", lw=0.6)
    ax[1].axhline(30, ls="--", color="gray", lw=0.6)
    ax[1].set_ylabel("RSI")
    made.append(_finish(fig, ax, out / "open_rsi.png", drawn))

    fig, ax = _panels(2, f"{who}: W%R (0 at the top, 100 at the bottom) and CR (26)")
    for n in config.features.indicators.wr:
        ax[0].plot(x, col(f"wr{n}"), lw=0.8, label=f"W%R{n}")
    ax[0].invert_yaxis()
    ax[0].set_ylabel("W%R")
    ax[1].plot(x, col(f"cr{config.features.indicators.cr.window}"), color="black", lw=0.9,
               label="CR")
    for m in config.features.indicators.cr.ma:
        ax[1].plot(x, col(f"cr_ma{m}"), lw=0.7, label=f"MA{m}")
    ax[1].set_ylabel("CR")
    made.append(_finish(fig, ax, out / "wr_cr.png", drawn))

    fig, ax = _panels(3, f"{who}: CCI, true range and VR")
    for n in config.features.indicators.cci:
        ax[0].plot(x, col(f"cci{n}"), lw=0.8, label=f"CCI{n}")
    ax[0].set_ylabel("CCI")
    ax[1].plot(x, col("tr"), lw=0.7, label="TR")
    ax[1].plot(x, col(f"atr{config.features.indicators.atr}"), lw=1,
               label=f"ATR{config.features.indicators.atr}")
    ax[1].set_ylabel("price range")
    vr = config.features.indicators.vr
    ax[2].plot(x, col(f"vr{vr.window}"), lw=0.8, label=f"VR{vr.window}")
    ax[2].plot(x, col(f"vr_ma{vr.ma}"), lw=0.8, label=f"MAVR{vr.ma}")
    ax[2].set_ylabel("VR")
    made.append(_finish(fig, ax, out / "cci_tr_vr.png", drawn))

    fig, ax = _panels(2, f"{who}: DMI (14, 6)")
    ax[0].plot(x, c, color="black", lw=1, label="close")
    ax[0].set_ylabel("price")
    for name, label in (("dmi_pdi", "PDI"), ("dmi_mdi", "MDI"), ("dmi_adx", "ADX"),
                        ("dmi_adxr", "ADXR")):
        ax[1].plot(x, col(name), lw=0.8, label=label)
    ax[1].set_ylabel("DMI")
    made.append(_finish(fig, ax, out / "dmi.png", drawn))

    window = config.features.fourier.window
    fig, ax = _panels(2, f"{who}: causal Fourier reconstructions (trailing {window} days)",
                      [3, 1])
    ax[0].plot(x, c, color="black", lw=1, label="close")
    for k in config.features.fourier.components:
        ax[0].plot(x, col(f"fft{k}"), lw=0.8, label=f"{k} components")
    ax[0].set_ylabel("price")
    for k in config.features.fourier.components:
        ax[1].plot(x, col(f"fft{k}") / c - 1, lw=0.7, label=f"{k} components")
    ax[1].set_ylabel("reconstruction / close - 1")
    made.append(_finish(fig, ax, out / "fourier.png", drawn))

    history = pd.read_parquet(table)
    last = history.loc[history["suspended"] == 0, "close"].to_numpy()[-window:]
    spectrum = np.abs(np.fft.rfft(last)) / window
    fig, axs = plt.subplots(1, 1, figsize=(11, 3.6))
    axs.bar(np.arange(1, min(60, len(spectrum))), spectrum[1:min(60, len(spectrum))])
    axs.set_yscale("log")
    axs.set_xlabel(f"harmonic k (period = {window} / k trading days)")
    axs.set_ylabel("|X_k| / N (CNY)")
    axs.set_title(f"{who}: spectrum of the last {window} closes up to "
                  f"{history['trade_date'].iloc[-1]}")
    axs.grid(alpha=0.3)
    made.append(save_figure(fig, out / "fourier_spectrum.png", drawn))

    full_close = history.loc[history["suspended"] == 0, "close"]
    returns = full_close.pct_change().dropna()
    lags = np.arange(1, 61)
    fig, axs = plt.subplots(1, 2, figsize=(11, 3.6))
    axs[0].bar(lags, [full_close.autocorr(int(k)) for k in lags])
    axs[0].set_title("close: autocorrelation")
    axs[1].bar(lags, [returns.autocorr(int(k)) for k in lags], color="tab:orange")
    bound = 1.96 / np.sqrt(len(returns))
    axs[1].axhline(bound, ls="--", color="gray", lw=0.7)
    axs[1].axhline(-bound, ls="--", color="gray", lw=0.7)
    axs[1].set_title("daily return: autocorrelation (95% band of white noise)")
    for a in axs:
        a.set_xlabel("lag (trading days)")
        a.grid(alpha=0.3)
    fig.suptitle(f"{who}: a price level remembers, its returns barely do")
    made.append(save_figure(fig, out / "autocorrelation.png", drawn))

    forecast = col("arima_next").shift(1)  # made at t-1 for day t
    fig, ax = _panels(2, f"{who}: ARIMA{tuple(config.features.arima.order)} one-step "
                         f"forecasts, refitted daily on the trailing "
                         f"{config.features.arima.window} days", [2, 1])
    ax[0].plot(x, c, color="black", lw=1, label="close")
    ax[0].plot(x, forecast, lw=0.8, label="forecast made the day before")
    ax[0].set_ylabel("price")
    ax[1].plot(x, forecast - c, lw=0.7, label="ARIMA error")
    ax[1].plot(x, c.shift(1) - c, lw=0.7, alpha=0.7, label="persistence error (yesterday)")
    ax[1].set_ylabel("forecast - close")
    made.append(_finish(fig, ax, out / "arima.png", drawn))

    chosen = read_manifest(paths.selected_features)
    if chosen is not None:
        ranked = drawn_from(COMMAND, config, paths, paths.selected_features,
                            finished["selection"])
        fig, axs = plt.subplots(1, 1, figsize=(11, 3.8))
        axs.plot(chosen["curves"]["train"], label="training")
        axs.plot(chosen["curves"]["validation"], label="validation")
        axs.axhline(chosen["naive_validation_error"], ls="--", color="gray",
                    label=f"naive on validation ({chosen['naive']})")
        axs.axvline(chosen["best_iteration"], ls=":", color="black", lw=0.8,
                    label="early stop")
        axs.set_xlabel("boosting round")
        axs.set_ylabel(chosen["metric"])
        axs.set_title(f"XGBoost on {chosen['target']}: training vs validation "
                      f"({len(chosen['stocks'])} stocks, validation "
                      f"{chosen['validation_days'][0]}-{chosen['validation_days'][1]})")
        axs.legend()
        axs.grid(alpha=0.3)
        made.append(save_figure(fig, out / "training_validation.png", ranked))

        top = chosen["selected"][::-1]
        fig, axs = plt.subplots(1, 1, figsize=(9, 0.28 * len(top) + 1.5))
        axs.barh([f["name"] for f in top], [f["gain_share"] for f in top])
        axs.set_xlabel("share of total gain")
        axs.set_title(f"XGBoost feature importance, top {len(top)} "
                      f"(near-copies of price set aside: {len(chosen['excluded_near_price'])})")
        axs.grid(alpha=0.3, axis="x")
        made.append(save_figure(fig, out / "feature_importance.png", ranked))
        if chosen.get("splits"):
            made.append(importance_splits(chosen, out / "importance_splits.png", ranked))
    return made
