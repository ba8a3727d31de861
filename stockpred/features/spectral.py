"""Fourier and ARIMA features, computed causally over a trailing window ending at day t.

The seeds took one FFT of the whole series, so every "reconstruction" knew the future.
Here the value at day t comes from the last ``window`` closes up to t only.

Fourier: keeping harmonics 0..K of a window's FFT and inverting gives, at the window's
last point, a fixed linear combination of the window's values, so the reconstruction
is a causal FIR filter: x_hat[t] = sum_j w_j x[t-N+1+j] with
w_j = (1 + 2 sum_{k=1..K} cos(2 pi k (N-1-j) / N)) / N. The spectrum amplitudes |X_k|/N
are sliding dot products with cosines and sines in the same way.

Volume, turnover and the order-size shares get the same two transforms through
``trailing_spectrum``, on a series that is unit-free already (log volume, shares): the
weights sum to 1, so the reconstruction less the day's value, and every amplitude k >= 1,
ignore a constant added to the window. Log volume's unit (lots or shares) is such a
constant; the close's re-basing does not reach volume at all.

ARIMA(5,1,0): an AR(5) without constant on the daily differences, fitted by
conditional least squares on each trailing window (statsmodels' AutoReg with
trend='n' gives the same coefficients); the feature at t is the forecast of t+1's
close made at t. Exact MLE (statsmodels ARIMA) differs slightly in the coefficients;
refitting it on every day of 50 stocks would take hours, this takes milliseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _sliding_dot(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """out[t] = sum_j weights[j] * values[t-N+1+j], NaN until a full window exists."""
    n = len(weights)
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        out[n - 1:] = np.convolve(values, weights[::-1], mode="valid")
    return out


def fourier_weights(window: int, components: int) -> np.ndarray:
    j = np.arange(window)
    k = np.arange(1, components + 1)[:, None]
    return (1 + 2 * np.cos(2 * np.pi * k * (window - 1 - j) / window).sum(axis=0)) / window


def fourier_reconstruction(close: pd.Series, window: int, components: int) -> pd.Series:
    """At each day, the window's inverse FFT with harmonics 0..components kept, at its end."""
    return pd.Series(_sliding_dot(close.to_numpy(float), fourier_weights(window, components)),
                     index=close.index)


def fourier_amplitudes(close: pd.Series, window: int, harmonics: int) -> pd.DataFrame:
    """|X_k| / N of each trailing window for k = 1..harmonics (the window's spectrum)."""
    values = close.to_numpy(float)
    j = np.arange(window)
    out = {}
    for k in range(1, harmonics + 1):
        re = _sliding_dot(values, np.cos(2 * np.pi * k * j / window))
        im = _sliding_dot(values, np.sin(2 * np.pi * k * j / window))
        out[f"fft_amp{k}"] = np.hypot(re, im) / window
    return pd.DataFrame(out, index=close.index)


def trailing_spectrum(values: pd.Series, window: int, components: list[int], harmonics: int,
                      prefix: str) -> pd.DataFrame:
    """``<prefix>_fft<K>``: the reconstruction with harmonics 0..K less the day's value;
    ``<prefix>_fft_amp<k>``: the spectrum; each over the last ``window`` known values (a
    missing one would otherwise blank the ``window`` days after it). NaN where ``values`` is."""
    known = values.dropna().astype(float)
    out = {f"{prefix}_fft{k}": fourier_reconstruction(known, window, k) - known
           for k in components}
    amplitudes = fourier_amplitudes(known, window, harmonics)
    out.update({f"{prefix}_{name}": amplitudes[name] for name in amplitudes.columns})
    return pd.DataFrame(out, index=known.index).reindex(values.index)


def ar_differences_forecast(close: pd.Series, lags: int, window: int) -> pd.Series:
    """One-step forecast of the next close from an AR(lags) on differences fit on ``window`` diffs.

    At day t the regression uses differences d[s] = close[s] - close[s-1] for the last
    ``window`` values of s <= t (each with its ``lags`` predecessors), so nothing after t.
    """
    x = close.to_numpy(float)
    d = np.diff(x, prepend=np.nan)
    n = len(x)
    out = np.full(n, np.nan)
    if n < window + lags + 1:
        return pd.Series(out, index=close.index)
    # rows s: regressors d[s-1..s-lags], target d[s]; valid for s >= lags + 1
    lagged = np.column_stack([np.roll(d, i) for i in range(1, lags + 1)])
    valid = np.arange(n) >= lags + 1
    lagged[~valid] = 0.0
    target = np.where(valid, d, 0.0)
    xtx = np.einsum("si,sj->sij", lagged, lagged)
    xty = lagged * target[:, None]
    # rolling sums over the last `window` rows via cumulative sums
    cxx = np.cumsum(xtx, axis=0)
    cxy = np.cumsum(xty, axis=0)
    first = window + lags  # first t whose window holds `window` valid rows
    ends = np.arange(first, n)
    sxx = cxx[ends] - cxx[ends - window]
    sxy = cxy[ends] - cxy[ends - window]
    phi = np.linalg.solve(sxx, sxy[..., None])[..., 0]
    recent = np.column_stack([d[ends - i] for i in range(lags)])  # d[t], d[t-1], ...
    out[ends] = x[ends] + np.einsum("ti,ti->t", phi, recent)
    return pd.Series(out, index=close.index)
