"""The figure of the paper track record (`stockpred live`), drawn from the stored track."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stockpred.plots import Provenance
from stockpred.plots.features import _finish, _panels
from stockpred.plots.report import ROLLING_DAYS


def track_figure(track: pd.DataFrame, path: Path, drawn: Provenance) -> Path:
    """Cumulative (summed) return after costs of the paper portfolio, the equal-weight
    universe and the excess, and each signal's realised Rank IC with its rolling mean, both
    by the day each row closed (held_on), so the panels share one time axis."""
    fig, axes = _panels(2, "Paper track record of the nightly signal")
    held = pd.to_datetime(track["held_on"], format="%Y%m%d")
    for column, name in (("return", "paper portfolio, after costs"),
                         ("equal_weight", "equal-weight universe"),
                         ("excess", "excess")):
        axes[0].plot(held, track[column].cumsum().to_numpy(float), lw=1.5 if column ==
                     "excess" else 1, label=name)
    axes[0].set_ylabel("cumulative return")
    rank_ic = track["rank_ic"].astype(float)
    axes[1].plot(held, rank_ic.to_numpy(), lw=0.5, alpha=0.4, marker=".", label="daily")
    axes[1].plot(held, rank_ic.rolling(ROLLING_DAYS, min_periods=1).mean().to_numpy(), lw=1.5,
                 label=f"{ROLLING_DAYS}-day mean")
    axes[1].set_ylabel("realised Rank IC")
    for ax in axes:
        ax.axhline(0, color="black", lw=0.5)
    return _finish(fig, axes, Path(path), drawn)
