"""Scale-free factors of a whole market panel, in the spirit of qlib's Alpha158.

Every factor is a ratio: a price statistic over today's close, a count, a correlation, or
volume over volume. So it is unchanged when one stock's prices are multiplied by a
constant (a forward adjustment moves every earlier price of a stock by one factor) and
when the volume unit changes. Each factor of day t reads only that stock's rows up to t;
rows are traded days, so a window of N covers the stock's last N traded days.

Where this differs from Alpha158:
- windows need all N rows (qlib computes partial windows at the start of a series);
- VMA and VSTD are over the stock's mean volume of its last ``VOLUME_NORM_WINDOW`` (120)
  traded days, today included, not over today's volume, so one thin or heavy day does not
  swing them (they start on a stock's 120th row);
- CORR correlates close with log(vol), not log(vol + 1), so the volume unit drops out;
- no VWAP0: tushare's qfq bars adjust prices only, so ``amount / vol`` beside a qfq close
  is a raw VWAP over an adjusted price, a ratio that moves with every later dividend;
- the Chinese-software indicators (KDJ, W%R, RSI, CR, CCI, VR, DMI, TRIX) are added, computed
  by ``stockpred.features.indicators``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from tqdm import tqdm

from stockpred.errors import ComputeError
from stockpred.features.indicators import cci, cr, dmi, kdj, rsi, trix, true_range, vr, wr

WINDOWS = (5, 10, 20, 30, 60)
VOLUME_NORM_WINDOW = 120
REQUIRED_COLUMNS = ("ts_code", "trade_date", "open", "high", "low", "close", "vol")
# rows per block of whole stocks: the temporaries of one block stay near 200 MB
CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class FactorSpec:
    """One factor column, for the docs and the features manifest."""

    name: str
    group: str
    formula: str


def _windowed(group: str, templates: list[tuple[str, str]]) -> list[FactorSpec]:
    return [FactorSpec(f"{name}{d}", group, formula.format(d=d))
            for name, formula in templates for d in WINDOWS]


_KBAR = [
    ("KMID", "($close-$open)/$open"),
    ("KLEN", "($high-$low)/$open"),
    ("KMID2", "($close-$open)/($high-$low)"),
    ("KUP", "($high-Greater($open,$close))/$open"),
    ("KUP2", "($high-Greater($open,$close))/($high-$low)"),
    ("KLOW", "(Less($open,$close)-$low)/$open"),
    ("KLOW2", "(Less($open,$close)-$low)/($high-$low)"),
    ("KSFT", "(2*$close-$high-$low)/$open"),
    ("KSFT2", "(2*$close-$high-$low)/($high-$low)"),
]
# no VWAP0 beside these: amount / vol is a raw VWAP, over a qfq close it leaks later dividends
_PRICE = [("OPEN0", "$open/$close"), ("HIGH0", "$high/$close"), ("LOW0", "$low/$close")]
_ROLLING = [
    ("ROC", "Ref($close,{d})/$close"),
    ("MA", "Mean($close,{d})/$close"),
    ("STD", "Std($close,{d})/$close"),
    ("BETA", "Slope($close,{d})/$close"),
    ("RSQR", "Rsquare($close,{d})"),
    ("RESI", "Resi($close,{d})/$close"),
    ("MAX", "Max($high,{d})/$close"),
    ("MIN", "Min($low,{d})/$close"),
    ("QTLU", "Quantile($close,{d},0.8)/$close"),
    ("QTLD", "Quantile($close,{d},0.2)/$close"),
    ("RANK", "Rank($close,{d})"),
    ("RSV", "($close-Min($low,{d}))/(Max($high,{d})-Min($low,{d}))"),
    ("IMAX", "IdxMax($high,{d})/{d}"),
    ("IMIN", "IdxMin($low,{d})/{d}"),
    ("IMXD", "(IdxMax($high,{d})-IdxMin($low,{d}))/{d}"),
    ("CNTP", "Mean($close>Ref($close,1),{d})"),
    ("CNTN", "Mean($close<Ref($close,1),{d})"),
    ("CNTD", "Mean($close>Ref($close,1),{d})-Mean($close<Ref($close,1),{d})"),
    ("SUMP", "Sum(Greater($close-Ref($close,1),0),{d})/Sum(Abs($close-Ref($close,1)),{d})"),
    ("SUMN", "Sum(Greater(Ref($close,1)-$close,0),{d})/Sum(Abs($close-Ref($close,1)),{d})"),
    ("SUMD", ("(Sum(Greater($close-Ref($close,1),0),{d})"
              "-Sum(Greater(Ref($close,1)-$close,0),{d}))/Sum(Abs($close-Ref($close,1)),{d})")),
]
_VOLUME = [
    ("CORR", "Corr($close,Log($vol),{d})"),
    ("CORD", "Corr($close/Ref($close,1),Log($vol/Ref($vol,1)+1),{d})"),
    ("VMA", f"Mean($vol,{{d}})/Mean($vol,{VOLUME_NORM_WINDOW})"),
    ("VSTD", f"Std($vol,{{d}})/Mean($vol,{VOLUME_NORM_WINDOW})"),
    ("WVMA", "Std(Abs($close/Ref($close,1)-1)*$vol,{d})/Mean(Abs($close/Ref($close,1)-1)*$vol,{d})"),
    ("VSUMP", "Sum(Greater($vol-Ref($vol,1),0),{d})/Sum(Abs($vol-Ref($vol,1)),{d})"),
    ("VSUMN", "Sum(Greater(Ref($vol,1)-$vol,0),{d})/Sum(Abs($vol-Ref($vol,1)),{d})"),
    ("VSUMD", ("(Sum(Greater($vol-Ref($vol,1),0),{d})"
               "-Sum(Greater(Ref($vol,1)-$vol,0),{d}))/Sum(Abs($vol-Ref($vol,1)),{d})")),
]
_INDICATORS = [
    ("KDJ_K", "SMA(RSV9*100,3,1) seeded at 50 (RSV9 0 on a one-price window)"),
    ("KDJ_D", "SMA(KDJ_K,3,1) seeded at 50"),
    ("KDJ_J", "3*KDJ_K-2*KDJ_D"),
    ("WR6", "(HHV($high,6)-$close)/(HHV($high,6)-LLV($low,6))*100"),
    ("WR10", "(HHV($high,10)-$close)/(HHV($high,10)-LLV($low,10))*100"),
    ("RSI6", "SMA(Max(dC,0),6,1)/SMA(Abs(dC),6,1)*100, dC=$close-Ref($close,1)"),
    ("RSI12", "SMA(Max(dC,0),12,1)/SMA(Abs(dC),12,1)*100"),
    ("RSI24", "SMA(Max(dC,0),24,1)/SMA(Abs(dC),24,1)*100"),
    ("CR26", "Sum(Max($high-M,0),26)/Sum(Max(M-$low,0),26)*100, M=Ref($high+$low,1)/2"),
    ("CCI14", "(TP-MA(TP,14))/(0.015*AVEDEV(TP,14)), TP=($high+$low+$close)/3"),
    ("CCI20", "(TP-MA(TP,20))/(0.015*AVEDEV(TP,20))"),
    ("VR26", ("(2*Sum($vol if up,26)+Sum($vol if flat,26))"
              "/(2*Sum($vol if down,26)+Sum($vol if flat,26))*100")),
    ("DMI_PDI", "Sum(+DM,14)/Sum(TR,14)*100"),
    ("DMI_MDI", "Sum(-DM,14)/Sum(TR,14)*100"),
    ("DMI_ADX", "MA(Abs(MDI-PDI)/(MDI+PDI)*100,6)"),
    ("TRIX", "(TR3-Ref(TR3,1))/Ref(TR3,1)*100, TR3=EMA(EMA(EMA($close,12),12),12)"),
]

FACTORS: list[FactorSpec] = [
    *(FactorSpec(name, "kbar", formula) for name, formula in _KBAR),
    *(FactorSpec(name, "price", formula) for name, formula in _PRICE),
    *_windowed("rolling", _ROLLING),
    *_windowed("volume", _VOLUME),
    *(FactorSpec(name, "indicator", formula) for name, formula in _INDICATORS),
]
FACTOR_NAMES = [spec.name for spec in FACTORS]


# -- the panel ------------------------------------------------------------------------------

def compute_factors(bars: pd.DataFrame, since: str | None = None) -> pd.DataFrame:
    """All FACTORS of a long panel of daily bars, in process.

    Returns ``trade_date, ts_code`` and one float32 column per factor, rows in
    (ts_code, trade_date) order. With ``since`` (YYYYMMDD), only the rows dated after it,
    bit-identical to those rows of the whole result: ``bars`` must then hold each stock's
    whole history, because the recursive indicators (SMA, EMA) read all of it.
    """
    bars = _sorted(bars)
    return _frame(bars, _factor_block(bars, since), since)


def factor_panel(bars: pd.DataFrame, client=None, partitions: int | None = None,
                 progress: bool = False, since: str | None = None) -> pd.DataFrame:
    """``compute_factors`` split by stock over a ``distributed.Client``'s workers.

    Each partition is a run of whole stocks; the result is bit-for-bit the in-process one.
    ``partitions`` defaults to two per worker thread. Without a client, computes in process.
    ``progress`` shows a bar of finished partitions (in a terminal).
    """
    if client is None:
        return compute_factors(bars, since)
    import dask
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    bars = _sorted(bars)
    parts = partitions or 2 * sum(client.nthreads().values())
    # a partition starting at bar i fills the result from the number of wanted bars before i
    offsets = np.concatenate([[0], np.cumsum(_after(bars, since))])
    block = np.empty((len(FACTORS), offsets[-1]), dtype=np.float32)
    futures = {}
    # Each partition rides inside its task, not scattered: the scheduler keeps a task's
    # inputs, so when a worker dies it runs the task again on another one (scattered data
    # dies with its worker, and every task reading it is cancelled). Riding inside is what
    # distributed's large-graph warning is about, hence its threshold is lifted here.
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1PB"}):
        for start, stop in _balanced_parts(bars["ts_code"], parts):
            futures[client.submit(_factor_block, bars.iloc[start:stop], since,
                                  pure=False)] = offsets[start]
    done = as_completed(futures, with_results=True)
    with partitions_lost_end_in_one_line():
        for future, part_block in tqdm(done, total=len(futures), desc="factors", unit="part",
                                       leave=False, disable=None if progress else True):
            if isinstance(part_block, FutureCancelledError):  # yielded, not raised
                raise part_block
            start = futures.pop(future)
            block[:, start:start + part_block.shape[1]] = part_block
            future.release()
    return _frame(bars, block, since)


@contextmanager
def partitions_lost_end_in_one_line():
    """A partition lost beyond distributed's retries, or cancelled, is one ComputeError
    naming the last worker that died running it."""
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    try:
        yield
    except KilledWorker as exc:
        raise ComputeError(f"factors: every worker that ran a partition died ("
                           f"{exc.allowed_failures + 1} tries), the last "
                           f"{exc.last_worker.address}; see its log") from None
    except FutureCancelledError as exc:
        raise ComputeError(f"factors: the Dask cluster cancelled a partition: "
                           f"{exc.reason}") from None


def _sorted(bars: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack the columns {missing}")
    bars = bars[list(REQUIRED_COLUMNS)]
    if not pd.MultiIndex.from_arrays([bars["ts_code"], bars["trade_date"]]).is_monotonic_increasing:
        bars = bars.sort_values(["ts_code", "trade_date"], kind="stable")
    return bars.reset_index(drop=True)


def _after(bars: pd.DataFrame, since: str | None) -> np.ndarray:
    """Which bars get factors: those dated after ``since`` (all without it)."""
    if since is None:
        return np.ones(len(bars), dtype=bool)
    return (bars["trade_date"] > since).to_numpy(dtype=bool)


def _frame(bars: pd.DataFrame, block: np.ndarray, since: str | None = None) -> pd.DataFrame:
    if since is not None:
        bars = bars[_after(bars, since)].reset_index(drop=True)
    frame = pd.DataFrame(block.T, columns=FACTOR_NAMES, copy=False)
    frame.insert(0, "ts_code", bars["ts_code"])
    frame.insert(0, "trade_date", bars["trade_date"])
    return frame


def _stock_starts(codes) -> np.ndarray:
    codes = pd.Series(codes).to_numpy()
    change = np.ones(len(codes), dtype=bool)
    change[1:] = codes[1:] != codes[:-1]
    return np.flatnonzero(change)


def _balanced_parts(codes, parts: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of whole stocks, ``parts`` of them with about equal rows."""
    edges = np.append(_stock_starts(codes), len(codes))
    targets = np.linspace(0, len(codes), parts + 1)[1:-1]
    cuts = np.unique(edges[np.searchsorted(edges, targets)])
    limits = [0, *cuts[(cuts > 0) & (cuts < len(codes))].tolist(), len(codes)]
    return list(pairwise(limits))


def _bounded_runs(codes, max_rows: int) -> list[tuple[int, int]]:
    """(start, stop) row ranges of whole stocks of at most ``max_rows`` rows (or one stock)."""
    edges = np.append(_stock_starts(codes), len(codes)).tolist()
    runs, start = [], 0
    for stop, next_stop in zip(edges[1:], edges[2:] + [None]):
        if next_stop is None or next_stop - start > max_rows:
            runs.append((start, stop))
            start = stop
    return runs


def _factor_block(bars: pd.DataFrame, since: str | None = None) -> np.ndarray:
    """Factors of sorted bars of whole stocks, (factor, row) float32, block by block: of
    every row, or of the rows dated after ``since``."""
    wanted = _after(bars, since)
    block = np.empty((len(FACTORS), int(wanted.sum())), dtype=np.float32)
    done = 0
    for start, stop in _bounded_runs(bars["ts_code"], CHUNK_ROWS):
        rows = int(wanted[start:stop].sum())
        if not rows:
            continue
        values = _chunk_factors(bars.iloc[start:stop], wanted[start:stop])
        for k, name in enumerate(FACTOR_NAMES):
            block[k, done:done + rows] = values.pop(name)
        done += rows
    return block


def _chunk_factors(bars: pd.DataFrame, wanted: np.ndarray) -> dict[str, np.ndarray]:
    """The factors of the ``wanted`` rows, a suffix of each stock's rows (or none).

    A trailing window reaches back VOLUME_NORM_WINDOW - 1 rows, so the windowed factors
    (most of the work) read only that far before a stock's first wanted row; the recursive
    indicators start at the stock's first row, on which their value depends."""
    starts = _stock_starts(bars["ts_code"])
    sizes = np.diff(np.append(starts, len(bars)))
    stock = np.repeat(np.arange(len(starts)), sizes)
    pos = np.arange(len(bars)) - starts[stock]
    first_wanted = np.full(len(starts), len(bars))
    np.minimum.at(first_wanted, stock[wanted], pos[wanted])
    skipped = np.maximum(first_wanted - (VOLUME_NORM_WINDOW - 1), 0)
    # without a cut (every row wanted) the arrays go in as they are, not copied
    near = slice(None) if not skipped.any() else pos >= skipped[stock]
    live = slice(None) if wanted.all() else (first_wanted < len(bars))[stock]
    o, h, low, c, v = (bars[k].to_numpy(dtype=np.float64)
                       for k in ("open", "high", "low", "close", "vol"))
    windowed = _kbar_factors(o[near], h[near], low[near], c[near])
    windowed.update(_rolling_factors((pos - skipped[stock])[near], h[near], low[near],
                                     c[near], v[near]))
    indicators = _indicator_factors(pos[live], h[live], low[live], c[live], v[live])
    if wanted.all():
        return {**windowed, **indicators}
    return {**{name: x[wanted[near]] for name, x in windowed.items()},
            **{name: x[wanted[live]] for name, x in indicators.items()}}


# -- one-day shapes -------------------------------------------------------------------------

def _divide(numerator, denominator, when_zero=np.nan) -> np.ndarray:
    """numerator / denominator; ``when_zero`` where the denominator is exactly 0."""
    out = np.full(np.shape(numerator), when_zero, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _kbar_factors(o, h, low, c) -> dict[str, np.ndarray]:
    span = h - low
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    # a one-price day (locked at its limit) has no body and no shadows: 0, as qlib's +1e-12 gives
    return {
        "KMID": (c - o) / o, "KLEN": span / o, "KMID2": _divide(c - o, span, 0.0),
        "KUP": (h - top) / o, "KUP2": _divide(h - top, span, 0.0),
        "KLOW": (bottom - low) / o, "KLOW2": _divide(bottom - low, span, 0.0),
        "KSFT": (2 * c - h - low) / o, "KSFT2": _divide(2 * c - h - low, span, 0.0),
        "OPEN0": o / c, "HIGH0": h / c, "LOW0": low / c,
    }


# -- trailing windows -----------------------------------------------------------------------
# The rows of many stocks lie end to end; a window ending at row i is that stock's own when
# the row's position in its stock is at least N-1 (N for a window of day-to-day changes), and
# every other window is masked. Sums run lag by lag (row i adds row i-j): each window's value
# comes from its own rows in a fixed order, so it does not depend on which stocks share the
# block, and a cut panel gives bit-identical values.

class _Deviations:
    """Trailing sums of x's deviations from today's x, and of their products with y's.

    Deviations from today's value keep the variance sums well conditioned and exactly 0 on a
    window of one value, so a flat window gives 0 (or NaN for a ratio of zeros), not noise.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, lagged_sum: bool = False):
        self.x, self.y = x, y
        self.sx, self.sxx = np.zeros_like(x), np.zeros_like(x)
        self.sjx = np.zeros_like(x) if lagged_sum else None
        if y is not None:
            self.sy, self.syy, self.sxy = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)

    def add(self, j: int) -> None:
        n = len(self.x)
        dx = self.x[:n - j] - self.x[j:]
        self.sx[j:] += dx
        self.sxx[j:] += dx * dx
        if self.sjx is not None:
            self.sjx[j:] += j * dx
        if self.y is not None:
            dy = self.y[:n - j] - self.y[j:]
            self.sy[j:] += dy
            self.syy[j:] += dy * dy
            self.sxy[j:] += dx * dy

    def mean(self, w: int) -> np.ndarray:
        return self.x + self.sx / w

    def centred_sxx(self, w: int) -> np.ndarray:
        return np.maximum(self.sxx - self.sx * self.sx / w, 0.0)

    def std(self, w: int) -> np.ndarray:
        return np.sqrt(self.centred_sxx(w) / (w - 1))

    def corr(self, w: int) -> np.ndarray:
        sxx = self.centred_sxx(w)
        syy = np.maximum(self.syy - self.sy * self.sy / w, 0.0)
        sxy = self.sxy - self.sx * self.sy / w
        return _divide(sxy, np.sqrt(sxx * syy))


class _Extreme:
    """Trailing max (or min) and the lag of its oldest occurrence (qlib's IdxMax is the first)."""

    def __init__(self, x: np.ndarray, largest: bool):
        self.x, self.largest = x, largest
        self.value, self.lag = x.copy(), np.zeros(len(x))

    def add(self, j: int) -> None:
        if j == 0:
            return
        candidate = self.x[:len(self.x) - j]
        value = self.value[j:]
        older_or_equal = candidate >= value if self.largest else candidate <= value
        np.copyto(value, candidate, where=older_or_equal)
        np.copyto(self.lag[j:], j, where=older_or_equal)


def _trailing_sum(x: np.ndarray, w: int) -> np.ndarray:
    total = x.copy()
    for j in range(1, w):
        total[j:] += x[:len(x) - j]
    return total


def _previous(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    prev = np.empty_like(x)
    prev[0] = np.nan
    prev[1:] = x[:-1]
    prev[pos == 0] = np.nan
    return prev


def _quantiles(x: np.ndarray, w: int, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Rolling quantiles, linearly interpolated (qlib's). pandas keeps each window's values in
    a skiplist, so a quantile is computed from that window's values alone."""
    rolling = pd.Series(x).rolling(w, min_periods=w)
    return [rolling.quantile(q).to_numpy() for q in qs]


def _rolling_factors(pos, h, low, c, v) -> dict[str, np.ndarray]:
    prev_c, prev_v = _previous(c, pos), _previous(v, pos)
    change, vol_change = c - prev_c, v - prev_v
    rise, fall = (change > 0).astype(float), (change < 0).astype(float)
    gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    vol_gain, vol_loss = np.maximum(vol_change, 0.0), np.maximum(-vol_change, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_vol = np.where(v > 0, np.log(v), np.nan)
        vol_ratio_log = np.log(v / prev_v + 1)
    weighted_vol = np.abs(c / prev_c - 1) * v

    close = _Deviations(c, log_vol, lagged_sum=True)
    step = _Deviations(c / prev_c, vol_ratio_log)
    vol = _Deviations(v)
    wvol = _Deviations(weighted_vol)
    high, lowest = _Extreme(h, largest=True), _Extreme(low, largest=False)
    summed = {"rise": rise, "fall": fall, "gain": gain, "loss": loss,
              "vol_gain": vol_gain, "vol_loss": vol_loss}
    sums = {k: np.zeros(len(c)) for k in (*summed, "below", "equal")}
    vol_norm = _trailing_sum(v, VOLUME_NORM_WINDOW) / VOLUME_NORM_WINDOW
    vol_norm[pos < VOLUME_NORM_WINDOW - 1] = np.nan

    out: dict[str, np.ndarray] = {}
    n = len(c)
    for j in range(max(WINDOWS)):
        for acc in (close, step, vol, wvol, high, lowest):
            acc.add(j)
        for k, x in summed.items():
            sums[k][j:] += x[:n - j]
        sums["below"][j:] += c[:n - j] < c[j:]
        sums["equal"][j:] += c[:n - j] == c[j:]
        w = j + 1
        if w not in WINDOWS:
            continue
        roc = np.full(n, np.nan)
        roc[w:] = c[:n - w] / c[w:]
        time_sq = w * (w * w - 1) / 12  # sum of (t - mean t)^2 over t = 0 .. w-1
        slope = ((w - 1) / 2 * close.sx - close.sjx) / time_sq
        upper, lower = _quantiles(c, w, (0.8, 0.2))
        moved = sums["gain"] + sums["loss"]
        vol_moved = sums["vol_gain"] + sums["vol_loss"]
        # (values, whether the window is of levels (N rows) or of day-to-day changes (N+1))
        window = {
            "ROC": (roc, "change"),
            "MA": (close.mean(w) / c, "level"),
            "STD": (close.std(w) / c, "level"),
            "BETA": (slope / c, "level"),
            "RSQR": (_divide(slope * slope * time_sq, close.centred_sxx(w)), "level"),
            "RESI": ((-close.sx / w - slope * (w - 1) / 2) / c, "level"),
            "MAX": (high.value / c, "level"),
            "MIN": (lowest.value / c, "level"),
            "QTLU": (upper / c, "level"),
            "QTLD": (lower / c, "level"),
            "RANK": ((sums["below"] + (sums["equal"] + 1) / 2) / w, "level"),
            "RSV": (_divide(c - lowest.value, high.value - lowest.value, 0.0), "level"),
            "IMAX": ((w - high.lag) / w, "level"),
            "IMIN": ((w - lowest.lag) / w, "level"),
            "IMXD": ((lowest.lag - high.lag) / w, "level"),
            "CNTP": (sums["rise"] / w, "change"),
            "CNTN": (sums["fall"] / w, "change"),
            "CNTD": ((sums["rise"] - sums["fall"]) / w, "change"),
            "SUMP": (_divide(sums["gain"], moved, 0.0), "change"),
            "SUMN": (_divide(sums["loss"], moved, 0.0), "change"),
            "SUMD": (_divide(sums["gain"] - sums["loss"], moved, 0.0), "change"),
            "CORR": (close.corr(w), "level"),
            "CORD": (step.corr(w), "change"),
            "VMA": (vol.mean(w) / vol_norm, "level"),
            "VSTD": (vol.std(w) / vol_norm, "level"),
            "WVMA": (_divide(wvol.std(w), wvol.mean(w), 0.0), "change"),
            "VSUMP": (_divide(sums["vol_gain"], vol_moved, 0.0), "change"),
            "VSUMN": (_divide(sums["vol_loss"], vol_moved, 0.0), "change"),
            "VSUMD": (_divide(sums["vol_gain"] - sums["vol_loss"], vol_moved, 0.0), "change"),
        }
        valid = {"level": pos >= w - 1, "change": pos >= w}
        for name, (values, kind) in window.items():
            out[f"{name}{w}"] = np.where(valid[kind], values, np.nan)
    return out


# -- Chinese-software indicators ------------------------------------------------------------
# They are recursive (SMA, EMA), so they run stock by stock: on a frame with one column per
# stock and one row per position in the stock (stocks start together on row 0, shorter ones
# padded with NaN at the end), where indicators.py's functions work column by column.

def _indicator_factors(pos, h, low, c, v) -> dict[str, np.ndarray]:
    stock = np.cumsum(pos == 0) - 1
    shape = (pos.max() + 1, stock[-1] + 1)

    def by_position(x):
        frame = np.full(shape, np.nan)
        frame[pos, stock] = x
        return pd.DataFrame(frame)

    h, low, c, v = (by_position(x) for x in (h, low, c, v))
    k, d, j = kdj(h, low, c, 9, 3, 3)
    pdi, mdi, adx = dmi(h, low, true_range(h, low, c), 14, 6)
    wide = {"KDJ_K": k, "KDJ_D": d, "KDJ_J": j, "CR26": cr(h, low, 26), "VR26": vr(c, v, 26),
            "DMI_PDI": pdi, "DMI_MDI": mdi, "DMI_ADX": adx, "TRIX": trix(c, 12),
            **{f"WR{n}": wr(h, low, c, n) for n in (6, 10)},
            **{f"RSI{n}": rsi(c, n) for n in (6, 12, 24)},
            **{f"CCI{n}": cci(h, low, c, n) for n in (14, 20)}}
    return {name: frame.to_numpy()[pos, stock] for name, frame in wide.items()}
