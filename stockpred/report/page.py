"""The pages of the run report, assembled from an evaluate run's stored frames.

A cross-sectional run (`evaluate --cross-section`) stores its scores, its leaderboard and
its backtests' daily frames; the daily and monthly Rank IC and the quintile returns are
computed again from the scores and the stocks' closes with stockpred.evaluation.signal,
exactly as the leaderboard computed them. A run of single-stock forecasts stores the
forecasts and its leaderboard. No model is fitted or loaded.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import datetime

import jinja2
import numpy as np
import pandas as pd

from stockpred import __version__
from stockpred.evaluation import signal
from stockpred.evaluation.scoring import leaderboard_columns, observations_note
from stockpred.features.cross_section import forward_labels
from stockpred.models.names import CROSS_SECTION
from stockpred.plots import report as figures

# the two-sided 95% point of the normal, which the Newey-West t-statistics are read against
Z_95 = 1.959963984540054
# one forecast figure per stock: past a few the page grows without telling more
STOCK_FIGURES = 6

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("stockpred.report"),
                                autoescape=True, undefined=jinja2.StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Cell:
    key: str
    text: str
    numeric: bool = False
    href: str | None = None


@dataclass(frozen=True)
class Table:
    headings: list[str]
    rows: list[list[Cell]]
    id: str | None = None
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    alt: str
    png: bytes
    caption: str = ""

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    id: str
    heading: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def _text(value, percent: bool = False) -> tuple[str, bool]:
    """A value as the page shows it (floats to 4 significant digits, as the markdown
    leaderboards), and whether it is a number."""
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), False
    if isinstance(value, int | np.integer):
        return str(value), True
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return "n/a", True
        return (f"{100 * value:.2f}" if percent else f"{value:.4g}"), True
    return ("n/a" if value is None else str(value)), False


def table(rows: list[dict], columns: list[tuple[str, str]], id: str | None = None,
          caption: str = "", percent: tuple[str, ...] = (),
          links: dict[str, str] | None = None) -> Table:
    """``rows`` as a table of ``columns`` ((key, heading) pairs); ``percent`` keys are shown
    in percent; ``links`` maps a first-column value to the page it links."""
    cells = []
    for row in rows:
        line = []
        for i, (key, _) in enumerate(columns):
            text, numeric = _text(row.get(key, math.nan), key in percent)
            href = (links or {}).get(text) if i == 0 else None
            line.append(Cell(key, text, numeric, href))
        cells.append(line)
    return Table([heading for _, heading in columns], cells, id, caption)


def _interval(mean: float, t_stat: float) -> str:
    """The 95% interval of a mean whose Newey-West t is ``t_stat`` (its standard error is
    mean / t)."""
    if not (math.isfinite(mean) and math.isfinite(t_stat)) or t_stat == 0:
        return "n/a"
    reach = Z_95 * abs(mean / t_stat)
    return f"[{mean - reach:.4g}, {mean + reach:.4g}]"


def _render(template: str, title: str, **context) -> str:
    return _TEMPLATES.get_template(template).render(title=title, version=__version__,
                                                    **context)


def _generated() -> tuple[str, str]:
    return "report written", datetime.now().astimezone().isoformat(timespec="seconds")


# -- the cross-section ---------------------------------------------------------------------

@dataclass(frozen=True)
class SignalSeries:
    """What the leaderboard summarised, day by day: per model the daily IC and Rank IC, the
    monthly Rank IC, the mean label by quintile and the daily top-minus-bottom spread."""

    daily: pd.DataFrame  # model, trade_date, ic, rank_ic, stocks
    monthly: pd.DataFrame  # model, month, rank_ic
    quintiles: pd.DataFrame  # model, quantile, mean
    spread: pd.DataFrame  # model, trade_date, spread


def signal_series(predictions: pd.DataFrame, bars: pd.DataFrame, label: str,
                  horizon: int = 1) -> SignalSeries:
    """The series behind a run's signal rows of ``label`` (of ``horizon`` days) over all
    rows, from its scores (trade_date, ts_code, model, score) and the stocks' closes."""
    labels = forward_labels(bars, horizon)[["trade_date", "ts_code", label]]
    frame = predictions.merge(labels, on=["trade_date", "ts_code"], how="inner")
    daily, monthly, quintiles, spread = [], [], [], []
    for model, rows in frame.groupby("model", sort=False):
        daily.append(signal.daily_ic(rows, label).reset_index().assign(model=model))
        monthly.append(signal.monthly_ic(rows, label)[["rank_ic"]].reset_index()
                       .assign(model=model))
        by_quintile = signal.quantile_returns(rows, label)
        quintiles.append(pd.DataFrame({"model": model, "quantile": by_quintile.mean.index,
                                       "mean": by_quintile.mean.to_numpy()}))
        spread.append(by_quintile.spread.rename("spread").reset_index().assign(model=model))
    return SignalSeries(*(pd.concat(parts, ignore_index=True)
                          for parts in (daily, monthly, quintiles, spread)))


def _benchmarks(daily: pd.DataFrame) -> list[str]:
    return [c.removeprefix("benchmark_") for c in daily.columns if c.startswith("benchmark_")]


def per_year(daily: pd.DataFrame, ic: pd.DataFrame) -> list[dict]:
    """Per calendar year and model: the backtest's return after cost beside each
    benchmark's, its drawdown within the year (from the value at the year's start), mean
    turnover and holdings, and the mean daily Rank IC."""
    rows = []
    benchmarks = _benchmarks(daily)
    for model, frame in daily.groupby("model", sort=False):
        value = (1 + frame["return"]).cumprod().to_numpy()
        start = np.r_[1.0, value[:-1]]
        years = frame["trade_date"].str[:4].to_numpy()
        model_ic = ic[ic["model"] == model]
        for year in dict.fromkeys(years):
            days = years == year
            path = np.r_[start[days][0], value[days]]
            in_year = frame[days]
            row = {"year": year, "model": model, "days": int(days.sum()),
                   "return": float(path[-1] / path[0] - 1),
                   "max_drawdown": float(np.min(path / np.maximum.accumulate(path) - 1)),
                   "mean_daily_turnover": float(in_year["turnover"].mean()),
                   "mean_positions": float(in_year["positions"].mean()),
                   "rank_ic": float(model_ic.loc[model_ic["trade_date"].str[:4] == year,
                                                 "rank_ic"].mean())}
            for name in benchmarks:
                row[name] = float((1 + in_year[f"benchmark_{name}"].fillna(0)).prod() - 1)
            rows.append(row)
    return sorted(rows, key=lambda r: r["year"])


PAPER_ROWS = 20  # the nightly record's last days shown as a table
SIGNAL_COLUMNS = [("model", "model"), ("rank_ic", "rank_ic"),
                  ("rank_ic_interval", "rank_ic 95% interval"),
                  ("rank_ic_months", "rank_ic 90% interval, month blocks"),
                  ("rank_icir", "rank_icir"),
                  ("rank_ic_t_nw", "rank_ic_t_nw"), ("ic", "ic"),
                  ("ic_interval", "ic 95% interval"), ("icir", "icir"),
                  ("long_short_mean", "long_short_mean"),
                  ("long_short_interval", "long_short 95% interval"),
                  ("top_quantile_turnover", "top_quantile_turnover"),
                  ("coverage", "coverage"), ("days", "days")]
EVERY_SIGNAL_COLUMNS = [("model", "model"), ("label", "label"), ("rows", "rows"),
                        ("ic", "ic"), ("ic_t_nw", "ic_t_nw"), ("rank_ic", "rank_ic"),
                        ("rank_ic_t_nw", "rank_ic_t_nw"), ("rank_icir", "rank_icir"),
                        ("rank_ic_vs_reversal", "rank_ic less the reversal's"),
                        ("vs_reversal_pvalue", "p, against the reversal"),
                        ("long_short_mean", "long_short_mean"),
                        ("long_short_t_nw", "long_short_t_nw"), ("coverage", "coverage"),
                        ("days", "days")]


def _backtest_columns(rows: list[dict]) -> list[tuple[str, str]]:
    names = [k.removeprefix("excess_return_with_cost_") for k in rows[0]
             if k.startswith("excess_return_with_cost_")] if rows else []
    return [("model", "model"), ("annualised_return", "annualised_return"),
            ("compound_annual_return", "compound_annual_return"),
            *[(f"{kind}_with_cost_{name}", f"{kind} over {figures.benchmark_label(name)}")
              for name in names for kind in ("excess_return", "information_ratio")],
            ("max_drawdown", "max_drawdown"), ("mean_daily_turnover", "mean_daily_turnover"),
            ("total_cost", "total_cost (CNY)")]


def _at(row: dict) -> str:
    """A row's horizon, when its run had several."""
    return f" at n+{row['horizon']}" if "horizon" in row else ""


def headline(record: dict) -> str:
    """One line for the index: the best model of a run."""
    if record["world"] == CROSS_SECTION:
        rows = [r for r in record["rows"]
                if r["label"] == record["label"] and r["rows"] == "all"
                and math.isfinite(r["rank_ic"])]
        if not rows:
            return "no Rank IC"
        best = max(rows, key=lambda r: r["rank_ic"])
        return (f"best Rank IC ({record['label']}): {best['model']}{_at(best)} "
                f"{best['rank_ic']:.4g}")
    winners = [r["model"] + _at(r) for r in record["rows"] if r.get("beats_persistence")]
    return ("beats persistence: " + ", ".join(winners)) if winners else \
        "none beats persistence"


def cross_section(record: dict, predictions: pd.DataFrame, bars: pd.DataFrame,
                  daily: pd.DataFrame | None, rerun: list[dict] | None,
                  index_href: str, paper: tuple[pd.DataFrame, bytes] | None = None) -> str:
    """The page of a cross-sectional run: ``record`` its metrics.json, ``predictions``
    its scores, ``bars`` its stocks' closes, ``daily`` its backtests' daily frames (None
    when the run kept none), ``rerun`` the rows of a later `stockpred backtest` (or None)."""
    label, protocol = record["label"], record["protocol"]
    trade = record["settings"]["backtest"]
    horizon = 1
    if "horizons" in record:  # a run of several horizons: the page shows the first
        horizon = record["horizons"][0]
        record = {**record, **{key: [r for r in record[key] if r["horizon"] == horizon]
                               for key in ("rows", "backtest")}}
        predictions = predictions[predictions["horizon"] == horizon]
        daily = None if daily is None else daily[daily["horizon"] == horizon]
        rerun = rerun and [r for r in rerun if r.get("horizon") == horizon]
    series = signal_series(predictions, bars, label, horizon)
    main = [{**r, "rank_ic_interval": _interval(r["rank_ic"], r["rank_ic_t_nw"]),
             "rank_ic_months": f"[{r['rank_ic_lo90']:.4g}, {r['rank_ic_hi90']:.4g}]",
             "ic_interval": _interval(r["ic"], r["ic_t_nw"]),
             "long_short_interval": _interval(r["long_short_mean"], r["long_short_t_nw"])}
            for r in record["rows"] if r["label"] == label and r["rows"] == "all"]
    sections = [Section(
        "leaderboard", "Leaderboard",
        [f"Daily cross-sectional correlations of each model's score with {label}, over "
         f"every scored row; ICIR is the mean over its standard deviation. Each interval is "
         f"the mean +- 1.96 standard errors, the standard error from the Newey-West "
         f"t-statistic of the daily series (mean / t). long_short_mean is the mean daily "
         f"top-minus-bottom quintile return.",
         f"The backtest trades TopK {trade['topk']} / drop {trade['n_drop']} at the next "
         f"{trade['execution']} with A-share rules and costs; returns are annualised as "
         f"252 x the daily mean; excess is over each benchmark."],
        [table(main, SIGNAL_COLUMNS, "leaderboard", f"Signal ({label}, all rows)"),
         table(record["backtest"], _backtest_columns(record["backtest"]), "backtest",
               "Backtest")])]
    if rerun:
        sections[0].tables.append(table(rerun, _backtest_columns(rerun), "backtest-rerun",
                                        "Backtest rerun by `stockpred backtest` with the "
                                        "settings of its day"))
    sections.append(Section(
        "rank-ic", "Rank IC", [f"Rank IC: the Spearman correlation, across the stocks of "
                               f"each day, of the score with {label}."],
        figures=[Figure("Daily and cumulative Rank IC per model",
                        figures.rank_ic(series.daily, label)),
                 Figure("Monthly mean Rank IC per model",
                        figures.monthly_heatmap(series.monthly))]))
    sections.append(Section(
        "quintiles", "Quintile returns",
        ["Each day's stocks split into five equal groups by score; the mean of the label in "
         "each group, averaged over days, and the top group's minus the bottom group's."],
        figures=[Figure("Mean return by score quintile and the cumulative spread",
                        figures.quantiles(series.quintiles, series.spread, label))]))
    if daily is None:
        sections.append(Section("backtest-days", "Backtest", [
            "This run stored no daily backtest frames (runs before backtest_daily.parquet "
            "was written), so only the summary rows above are shown."]))
    else:
        years = per_year(daily, series.daily)
        benchmarks = _benchmarks(daily)
        sections.append(Section(
            "backtest-days", "Backtest, day by day",
            ["Net asset value after cost from 1 on the first traded day; the benchmarks "
             "from the same day."],
            [table(years, [("year", "year"), ("model", "model"), ("days", "days"),
                           ("return", "return (%)"),
                           *[(n, f"{figures.benchmark_label(n)} (%)") for n in benchmarks],
                           ("max_drawdown", "max drawdown (%)"),
                           ("mean_daily_turnover", "mean daily turnover (%)"),
                           ("mean_positions", "mean stocks held"),
                           ("rank_ic", "mean Rank IC")],
                   "per-year", "Per calendar year",
                   percent=("return", *benchmarks, "max_drawdown", "mean_daily_turnover"))],
            [Figure("Net asset value against the benchmarks", figures.net_asset_value(daily)),
             Figure("Drawdown", figures.drawdown(daily)),
             Figure("Turnover and stocks held", figures.trading(daily))]))
    if paper is not None:
        track, png = paper
        sections.append(Section(
            "paper-record", "Paper track record of the nightly signal",
            [f"`stockpred live`: {len(track)} signal days whose label has closed; realised "
             f"Rank IC and the paper portfolio's day return after costs against the "
             f"equal-weight universe. The last {min(len(track), PAPER_ROWS)} days:"],
            [table(track.tail(PAPER_ROWS).to_dict("records"),
                   [(c, c) for c in ("trade_date", "held_on", "rank_ic", "return",
                                     "equal_weight", "excess", "positions")], "paper")],
            [Figure("Paper track record: cumulative returns and realised Rank IC", png)]))
    sections.append(Section("every-signal-row", "Every signal row",
                            ["Both labels (ret_1: close T -> T+1; ret_2: close T+1 -> T+2), "
                             "over all rows and over the rows tradeable the next day."
                             + (f" This page shows horizon {horizon} (ret_1: close T -> "
                                f"T+{horizon}; ret_2: close T+1 -> T+{1 + horizon}) of the "
                                f"run's {', '.join(map(str, record['horizons']))}; its "
                                f"leaderboard has every horizon." if "horizons" in record
                                else "")],
                            [table(record["rows"], EVERY_SIGNAL_COLUMNS, "signal-rows")]))
    facts = [("run", record["run_id"]), ("world", "cross-section"),
             ("universe", f"{record['universe']} ({predictions['ts_code'].nunique()} stocks "
                          f"scored)"),
             ("test period", " .. ".join(record["test_period"])),
             ("walk-forward", f"refit every {protocol['retrain_every']} trading days on the "
                              f"trailing {protocol['train_days']} (the last "
                              f"{protocol['validation_days']} stop early)"),
             ("label", label), ("models", ", ".join(record["models"])),
             ("quick sizes", "yes" if record.get("quick") else "no"),
             ("stockpred", record.get("versions", {}).get("stockpred", "n/a")), _generated()]
    return _render("run.html", f"Cross-sectional run {record['run_id']}", facts=facts,
                   sections=sections, index_href=index_href)


# -- one stock at a time -------------------------------------------------------------------

def losses(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per model and day, over the stocks: the mean squared error of the next-day return and
    its mean difference from persistence's on the same stocks (the loss differential of the
    by-day Diebold-Mariano test)."""
    frame = predictions.dropna(subset=["next_close", "predicted_close"])
    # a run of several horizons has a persistence per horizon: each model is drawn at the
    # first (the next close when it is one of them)
    if "horizon" in frame.columns:
        frame = frame[frame["horizon"] == frame["horizon"].min()]
    frame = frame.assign(squared_error=(frame["predicted_close"] / frame["close"]
                                        - frame["next_close"] / frame["close"]) ** 2)
    base = frame.loc[frame["model"] == "persistence", ["ts_code", "trade_date", "squared_error"]]
    frame = frame.merge(base, on=["ts_code", "trade_date"], suffixes=("", "_persistence"))
    frame["differential"] = frame["squared_error"] - frame["squared_error_persistence"]
    return pd.concat([rows.groupby("trade_date")[["squared_error", "differential"]].mean()
                      .reset_index().assign(model=model)
                      for model, rows in frame.groupby("model", sort=False)],
                     ignore_index=True)


def single_stock(record: dict, predictions: pd.DataFrame, index_href: str) -> str:
    """The page of a run of next-close forecasts: ``record`` its metrics.json,
    ``predictions`` its forecasts (ts_code, trade_date, close, next_close,
    predicted_close, model)."""
    rows = record["rows"]
    columns = [(c, c) for c in leaderboard_columns(rows) if any(c in r for r in rows)]
    stocks = list(dict.fromkeys(predictions["ts_code"]))
    shown = stocks[:STOCK_FIGURES]
    header = record["header"].split("\n\n", 1)[-1]
    sections = [
        Section("leaderboard", "Leaderboard", [header, observations_note(rows)],
                [table(rows, columns, "leaderboard")]),
        Section("forecasts", "Forecasts against actual prices",
                [f"The first {len(shown)} of {len(stocks)} stocks." if len(shown) < len(stocks)
                 else "Every stock of the run."],
                figures=[Figure(f"{code}: forecasts against the next close",
                                figures.forecasts(predictions[predictions["ts_code"] == code],
                                                  code)) for code in shown]),
        Section("errors", "Errors against persistence's",
                ["Upper panel: where a line falls, the model's squared return error was "
                 "below persistence's on those days (the Diebold-Mariano differential, summed)."],
                figures=[Figure("Errors against persistence's",
                                figures.errors(losses(predictions)))])]
    facts = [("run", record["run_id"]), ("world", "single stock"),
             ("stocks", ", ".join(record["stocks"])),
             ("test period", " .. ".join(record["test_period"])),
             ("walk-forward", f"refit every {record['protocol']['retrain_every']} trading "
                              f"days on the trailing {record['protocol']['train_days']}"),
             ("models", ", ".join(r["model"] for r in rows)),
             ("quick sizes", "yes" if record.get("quick") else "no"),
             ("stockpred", record.get("versions", {}).get("stockpred", "n/a")), _generated()]
    return _render("run.html", f"Forecast run {record['run_id']}", facts=facts,
                   sections=sections, index_href=index_href)


# -- the index -----------------------------------------------------------------------------

def index(records: list[dict], links: dict[str, str], runs_dir: str) -> str:
    """The list of runs (``records``: their metrics.json, newest first); ``links`` maps
    a run id to its report, relative to the index."""
    rows = []
    for record in records:
        cross = record["world"] == CROSS_SECTION
        rows.append({
            "run": record["run_id"], "world": "cross-section" if cross else "single stock",
            "subject": record["universe"] if cross else ", ".join(record["stocks"]),
            "test_period": " .. ".join(record["test_period"]),
            "models": ", ".join(record["models"] if cross else
                                [r["model"] for r in record["rows"]]),
            "quick": bool(record.get("quick")), "headline": headline(record)})
    columns = [("run", "run"), ("world", "world"), ("subject", "universe or stocks"),
               ("test_period", "test period"), ("models", "models"), ("quick", "quick"),
               ("headline", "headline")]
    return _render("index.html", "stockpred runs",
                   runs=table(rows, columns, "runs", links=links), runs_dir=runs_dir)
