"""The point-in-time daily panel of one stock: one row per trading day, nothing from later.

Rules that keep it free of look-ahead:
- prices: hfq bars when stored (their factor is known on the day), else the sample's
  qfq bars, else unadjusted; unadjusted bars join as raw_* beside hfq only (beside qfq
  their ratio would reveal the dividends still to come); indicators run on traded days only, as charting software
  does; a suspended day carries the last traded day's values forward (``suspended``=1);
- columns in the price's unit (the bars, moving averages, Fourier, ARIMA, ...) are stored
  for charts and for turning a forecast return into a price, but are no model input:
  qfq levels carry a per-stock constant that every later dividend changes. Models read
  their scale-free ``_rel`` twins (over the day's close) instead;
- daily_basic and moneyflow are the same day's; market series (indices, Shibor, Hibor,
  LPR, northbound flows; margin, Libor and the private lending indices from the next day:
  they are published after the close or at an unknown hour) are joined as of the day,
  carried at most ``market_max_gap_days`` calendar days when a series has a gap (the
  monthly LPR a month more);
- financial statements count from their announcement date (``f_ann_date``, else
  ``ann_date``); one announced on a non-trading day counts from the next trading day; on
  each day the latest reporting period announced so far is used, in its latest revision,
  and carried at most ``statement_max_age_days``; other announced and scheduled events
  (dividends, pledges, block trades, announcements, ...) follow stockpred.features.events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stockpred.config import FeatureSettings
from stockpred.data.store import RawStore
from stockpred.errors import MissingInputError
from stockpred.features.events import as_days, in_force, stock_events
from stockpred.features.indicators import (Feature, order_flow, ratio, scale_free, technical,
                                           with_scale_free_twin)
from stockpred.features.spectral import (ar_differences_forecast, fourier_amplitudes,
                                         fourier_reconstruction, trailing_spectrum)
from stockpred.market_rules import price_limit

PRICE_BASES = ("hfq_daily", "qfq_daily", "daily")
BAR_COLUMNS = ["open", "high", "low", "close", "pre_close", "change", "pct_chg", "vol", "amount"]
# bar columns in the price's unit; pre_close and change get no twin, since over the close
# they repeat mom1 and pct_chg
BAR_PRICES = ("open", "high", "low", "close", "pre_close", "change")
BAR_SHAPE = ("open", "high", "low")  # the bar against its close: open_rel, high_rel, low_rel
# announced tables and the prefix of their columns in the panel
STATEMENTS = {"income": "inc", "balancesheet": "bs", "cashflow": "cf",
              "fina_indicator": "fi", "express": "exp", "forecast": "fc"}
MARKET_INDICES_PREFIX = "idx"
ALWAYS_KEPT = {"trade_date", "open", "high", "low", "close", "vol", "suspended"}
LPR_DAYS_IN_FORCE = 31  # since 2019-08 the LPR is fixed once a month and holds till the next
# market-wide rate tables joined like Shibor: (interface, column prefix, published after
# the 15:00 close or at an unpublished hour, so counted from the next trading day, days a
# value stays in force beyond market_max_gap_days)
RATE_TABLES = (("shibor", "shibor", False, 0),  # 11:00 Beijing
               ("hibor", "hibor", False, 0),  # 11:15 Hong Kong
               ("shibor_lpr", "lpr", False, LPR_DAYS_IN_FORCE),  # 11:30 (9:30 from 2019-08)
               ("wz_index", "wz", True, 0), ("gz_index", "gz", True, 0))


@dataclass
class Market:
    """The trading calendar and market-wide series, loaded once for all stocks."""

    open_days: pd.DatetimeIndex
    context: pd.DataFrame  # indexed by open day
    last_day: pd.Timestamp | None  # the market's last stored day (None without index data)
    features: list[Feature] = field(default_factory=list)


def load_market(store: RawStore, settings: FeatureSettings, indices: list[str]) -> Market:
    calendar = store.read("trade_cal", columns=["cal_date", "is_open"])
    open_days = pd.DatetimeIndex(as_days(calendar.loc[calendar["is_open"] == 1, "cal_date"]))
    open_days = open_days.sort_values().unique()
    base = pd.DataFrame({"day": open_days})
    tolerance = pd.Timedelta(days=settings.market_max_gap_days)
    meta: list[Feature] = []
    last_day = None

    def join(frame: pd.DataFrame, date_col: str, prefix: str, source: str, columns=None,
             after_close: bool = False, extra_gap_days: int = 0):
        """Join a dated market series as of each day; ``after_close``: a row counts from
        the first trading day after its date; ``extra_gap_days`` more days of carry."""
        nonlocal base
        frame = frame.assign(day=as_days(frame[date_col])).sort_values("day")
        columns = columns or [c for c in frame.columns
                              if c != "day" and pd.api.types.is_float_dtype(frame[c])]
        renamed = frame[["day", *columns]].rename(columns={c: f"{prefix}_{c}" for c in columns})
        base = pd.merge_asof(base, renamed, on="day", direction="backward",
                             allow_exact_matches=not after_close,
                             tolerance=tolerance + pd.Timedelta(days=extra_gap_days))
        meta.extend(Feature(f"{prefix}_{c}", "market", source, {}) for c in columns)

    if store.has("index_daily"):
        stored = store.read("index_daily", subjects=indices)
        if not stored.empty:
            last_day = as_days(stored["trade_date"]).max()
        for code, bars in stored.groupby("ts_code"):
            bars = bars.sort_values("trade_date").copy()
            bars["ret5"] = bars["close"] / bars["close"].shift(5) - 1
            bars["ret20"] = bars["close"] / bars["close"].shift(20) - 1
            cols = [c for c in ("close", "pct_chg", "vol", "amount", "ret5", "ret20")
                    if c in bars.columns]
            join(bars, "trade_date", f"{MARKET_INDICES_PREFIX}{code[:6]}", "index_daily", cols)
    for name, prefix, after_close, in_force_days in RATE_TABLES:
        if store.has(name):
            join(store.read(name), "date", prefix, name, after_close=after_close,
                 extra_gap_days=in_force_days)
    if store.has("libor"):  # fixed at 11:55 London, after the close in Beijing
        for currency, rows in store.read("libor").groupby("curr_type"):
            join(rows, "date", f"libor_{currency.lower()}", "libor", after_close=True)
    if store.has("moneyflow_hsgt"):
        join(store.read("moneyflow_hsgt"), "trade_date", "hsgt", "moneyflow_hsgt")
    if store.has("margin"):  # a day's margin figures are published the next morning
        margin = store.read("margin")
        for exchange, rows in margin.groupby("exchange_id"):
            join(rows, "trade_date", f"margin_{exchange.lower()}", "margin", after_close=True)
    return Market(open_days, base.set_index("day"), last_day, meta)


@dataclass
class StockPanel:
    frame: pd.DataFrame
    features: list[Feature]
    price_basis: str
    dropped: list[str]
    filled: dict[str, int]
    expired: dict[str, int]


def price_bars(store: RawStore, code: str) -> tuple[str, pd.DataFrame] | None:
    """The stock's bars in the best price basis stored. Every stock must have that basis:
    levels of two bases are not comparable, and a stock left without adjusted bars (a
    fetch that stopped before deriving them) would quietly train beside the others on
    another one. Raises MissingInputError naming the stocks that lack it."""
    stored = [name for name in PRICE_BASES if store.has(name)]
    for name in stored:
        bars = store.read(name, subjects=[code])
        if not bars.empty:
            if name != stored[0]:
                best = set(store.read(stored[0], columns=["ts_code"])["ts_code"])
                lacking = sorted({c for other in stored[1:]
                                  for c in store.read(other, columns=["ts_code"])["ts_code"]}
                                 - best)
                raise MissingInputError(
                    f"mixed price bases: {', '.join(lacking)} have bars but no {stored[0]}, "
                    f"which other stocks have: run `stockpred fetch` (with adj_factor) to "
                    f"derive theirs")
            return name, bars.sort_values("trade_date").reset_index(drop=True)
    return None


def _drop_uninformative(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop constant (all-NaN included) columns and exact copies of an earlier column."""
    dropped, seen = [], {}
    for col in frame.columns:
        if col in ALWAYS_KEPT:
            continue
        values = frame[col]
        if values.nunique(dropna=False) <= 1:
            dropped.append(col)
            continue
        digest = hashlib.sha1(np.ascontiguousarray(values.to_numpy(dtype=float)).tobytes())
        key = digest.hexdigest()
        if key in seen:
            dropped.append(col)
        else:
            seen[key] = col
    return frame.drop(columns=dropped), dropped


def build_panel(store: RawStore, code: str, market: Market, settings: FeatureSettings,
                ) -> StockPanel | str:
    """The panel of one stock, or the reason it was skipped."""
    found = price_bars(store, code)
    if found is None:
        return "no daily bars stored"
    basis, bars = found
    if len(bars) < settings.longest_window():
        return (f"{len(bars)} trading days, fewer than the longest window "
                f"({settings.longest_window()})")
    traded = bars[["trade_date", *[c for c in BAR_COLUMNS if c in bars.columns]]].copy()
    features = [Feature(c, "quote", basis, {}, model_input=c not in BAR_PRICES)
                for c in traded.columns if c != "trade_date"]
    close = traded["close"]
    shape = {f"{c}_rel": scale_free(traded[c], close, "level") for c in BAR_SHAPE}
    features += [Feature(name, "quote", basis, {"relative_to": "close", "price": "level"})
                 for name in shape]

    # unadjusted bars beside hfq ones (their ratio is the factor, known on the day); not
    # beside qfq ones, whose ratio to them reveals the dividends still to come
    raw = store.read("daily", subjects=[code]) if basis == "hfq_daily" and store.has("daily") \
        else None
    if raw is not None and not raw.empty:
        raw = raw[["trade_date", "open", "high", "low", "close"]].set_index("trade_date")
        raw = raw.add_prefix("raw_").reset_index()
        traded = traded.merge(raw, on="trade_date", how="left")
        # unadjusted prices are in CNY, another unit than the bars': no model input
        features += [Feature(c, "quote", "daily", {}, model_input=False)
                     for c in raw.columns if c != "trade_date"]

    tech, meta = technical(traded, settings.indicators)
    features += meta
    spectral = {}

    def put(feature, values, price):
        columns, made = with_scale_free_twin(feature, values, close, price)
        spectral.update(columns)
        features.extend(made)

    window = settings.fourier.window
    for k in settings.fourier.components:
        put(Feature(f"fft{k}", "fourier", "close", {"window": window, "components": k}),
            fourier_reconstruction(close, window, k), "level")
    amplitudes = fourier_amplitudes(close, window, settings.fourier.harmonics)
    for name in amplitudes.columns:
        put(Feature(name, "fourier", "close", {"window": window}), amplitudes[name],
            "difference")
    p = settings.arima.order[0]
    put(Feature("arima_next", "arima", "close", {"order": list(settings.arima.order),
                                                 "window": settings.arima.window}),
        ar_differences_forecast(close, p, settings.arima.window), "level")
    # log volume: a unit-free series for trailing_spectrum (a day without volume has no log)
    made, meta = spectral_features(np.log(traded["vol"].where(traded["vol"] > 0)), "vol",
                                   "vol", settings)
    spectral.update(made.items())
    features += meta

    limit = price_limit(code, traded["trade_date"])
    pct = traded["pct_chg"].to_numpy() / 100
    status = pd.DataFrame({
        "limit_up": (pct >= limit * 0.985).astype(float),
        "limit_down": (pct <= -limit * 0.985).astype(float),
        "one_price": (traded["high"] == traded["low"]).astype(float),
    })
    features += [Feature(c, "status", basis, {}) for c in status.columns]
    per_day = pd.concat([traded, pd.DataFrame(shape), tech, pd.DataFrame(spectral), status],
                        axis=1)
    per_day.index = as_days(per_day["trade_date"])

    # onto the calendar up to the market's last day: a suspended stock keeps a row for
    # each day, carrying its last traded values forward
    last = max(per_day.index[-1], market.last_day or per_day.index[-1])
    days = market.open_days[(market.open_days >= per_day.index[0])
                            & (market.open_days <= last)]
    panel = per_day.reindex(days)
    suspended = panel["close"].isna()
    panel = panel.ffill()
    panel.loc[suspended, [c for c in ("vol", "amount") if c in panel.columns]] = 0.0
    panel["suspended"] = suspended.astype(float)
    last_trade = pd.Series(np.where(suspended, np.nan, np.arange(len(panel))), index=days).ffill()
    panel["days_since_trade"] = np.arange(len(panel)) - last_trade.to_numpy()
    features += [Feature("suspended", "status", "trade_cal", {}),
                 Feature("days_since_trade", "status", "trade_cal", {})]

    parts = [panel]
    if store.has("daily_basic"):
        basic = store.read("daily_basic", subjects=[code])
        if not basic.empty:
            basic = basic.set_index(as_days(basic["trade_date"]))
            numeric = [c for c in basic.columns
                       if pd.api.types.is_float_dtype(basic[c]) and c != "close"]
            parts.append(basic[numeric].add_prefix("basic_").reindex(days).ffill())
            features += [Feature(f"basic_{c}", "daily_basic", "daily_basic", {}) for c in numeric]
            if "turnover_rate" in basic.columns:  # % of the float: a share already
                made, meta = spectral_features(basic["turnover_rate"].sort_index(), "turn",
                                               "daily_basic", settings)
                parts.append(made.reindex(days).ffill())
                features += meta
    if store.has("moneyflow"):
        flow = store.read("moneyflow", subjects=[code])
        if not flow.empty:
            flow = flow.set_index(as_days(flow["trade_date"])).reindex(days)
            flow_features, meta = order_flow(flow, panel["amount"].where(~suspended))
            parts.append(flow_features)
            features += meta
            shares, meta = order_size_shares(flow)
            parts.append(shares)
            features += meta
            for name in ("mf_large_share", "mf_large_net_share"):
                if name in shares.columns:  # with the amounts (see order_size_shares)
                    made, meta = spectral_features(shares[name], name, "moneyflow", settings)
                    parts.append(made.ffill())
                    features += meta
    context = market.context.reindex(days)
    parts.append(context)
    features += market.features

    filled, expired = {}, {}
    for name, prefix in STATEMENTS.items():
        if not store.has(name):
            continue
        rows = store.read(name, subjects=[code])
        announced = rows["ann_date"]
        if "f_ann_date" in rows.columns:
            announced = rows["f_ann_date"].fillna(rows["ann_date"])
        result = in_force(rows, as_days(announced), days, prefix,
                          settings.statement_max_age_days)
        if result is None:
            continue
        values, filled[name], expired[name] = result
        parts.append(values)
        features += [Feature(c, "statement", name, {"max_age_days":
                                                   settings.statement_max_age_days})
                     for c in values.columns]
    events, made = stock_events(store, code, days, market.open_days, panel["vol"], settings)
    parts += events
    features += made

    frame = pd.concat(parts, axis=1)
    frame["trade_date"] = days.strftime("%Y%m%d")
    numeric = frame.columns.drop("trade_date")
    frame[numeric] = frame[numeric].astype(float).replace([np.inf, -np.inf], np.nan)
    frame, dropped = _drop_uninformative(frame.reset_index(drop=True))
    kept = set(frame.columns)
    features = [f for f in features if f.name in kept]
    features = list({f.name: f for f in features}.values())
    ordered = ["trade_date", *[f.name for f in features]]
    return StockPanel(frame[ordered], features, basis, dropped, filled, expired)


# The spectra of volume, turnover and the big orders' shares, and the moneyflow shares, are
# stored and exported but not offered to the models: with them among the importance
# candidates, svr, xgboost and the lstm on 600036.SH went from tied with persistence to
# significantly worse (`stockpred run` on the sample, 2026-12-07: svr DM p 4.5e-05, xgboost
# p 1.4e-04, lstm p 0.041). They become inputs when a validation shows they help.
FLOW_INPUTS = False


def spectral_features(values: pd.Series, prefix: str, source: str, settings: FeatureSettings,
                      ) -> tuple[pd.DataFrame, list[Feature]]:
    """trailing_spectrum of a unit-free series with the close's window, reconstructions and
    harmonics, and the records of its columns."""
    fourier = settings.fourier
    made = trailing_spectrum(values, fourier.window, fourier.components, fourier.harmonics,
                             prefix)
    meta = [Feature(f"{prefix}_fft{k}", "fourier", source,
                    {"window": fourier.window, "components": k}, model_input=FLOW_INPUTS)
            for k in fourier.components]
    meta += [Feature(f"{prefix}_fft_amp{k}", "fourier", source, {"window": fourier.window},
                     model_input=FLOW_INPUTS) for k in range(1, fourier.harmonics + 1)]
    return made, meta


def order_size_shares(flow: pd.DataFrame) -> tuple[pd.DataFrame, list[Feature]]:
    """Every moneyflow column as a share of the day's flow, of its own kind (lots or 10k
    CNY) and from moneyflow's own rows: ``mf_<column>_share`` = column / S, S the sum of
    the 8 buy and sell columns of that kind, so the 8 shares of a kind sum to 1; and the
    large and extra-large orders' share of the amounts (``mf_large_share``) and their net
    buying (``mf_large_net_share``), both over S. Shares, not levels: a stock's size and
    the price's unit and re-basing cancel. A kind whose 8 columns are not all stored is
    left out; a day without a moneyflow row stays empty."""
    sizes = [f"{side}_{size}" for side in ("buy", "sell") for size in ("sm", "md", "lg", "elg")]
    out = {}
    for kind in ("vol", "amount"):
        parts = [f"{c}_{kind}" for c in sizes]
        if not set(parts) <= set(flow.columns):
            continue
        total = flow[parts].sum(axis=1, min_count=len(parts))
        for column in (*parts, f"net_mf_{kind}"):
            if column in flow.columns:
                out[f"mf_{column}_share"] = ratio(flow[column], total)
        if kind == "amount":
            large = {side: flow[f"{side}_lg_amount"] + flow[f"{side}_elg_amount"]
                     for side in ("buy", "sell")}
            out["mf_large_share"] = ratio(large["buy"] + large["sell"], total)
            out["mf_large_net_share"] = ratio(large["buy"] - large["sell"], total)
    return (pd.DataFrame(out, index=flow.index),
            [Feature(name, "order_flow", "moneyflow", {}, model_input=FLOW_INPUTS)
             for name in out])


def model_inputs(manifest: dict) -> list[str]:
    """The features of a features manifest that models may read: every one but the
    columns in the stock's price unit, whose scale a later re-basing of qfq prices
    changes (their ``_rel`` twins are the inputs)."""
    if any("model_input" not in f for f in manifest["features"]):
        raise MissingInputError("the features manifest predates scale-free model inputs: "
                                "rerun `stockpred features`")
    return [f["name"] for f in manifest["features"] if f["model_input"]]
