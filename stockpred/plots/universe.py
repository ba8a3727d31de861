"""Universe size over time: members per day and, below, the excluded stocks by reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stockpred.data.universe import REASONS
from stockpred.plots import Provenance
from stockpred.plots.features import _finish, _panels


def universe_size(members: pd.DataFrame, exclusions: pd.DataFrame, path: Path,
                  drawn: Provenance, title: str = "universe size") -> Path:
    """Draw members per day and exclusions per day by reason from ``membership``'s frames;
    writes ``path`` (PNG) and returns it."""
    days = pd.Index(sorted(set(members["trade_date"]) | set(exclusions["trade_date"])))
    member_counts = members.groupby("trade_date").size().reindex(days, fill_value=0)
    excluded_counts = (exclusions.groupby(["trade_date", "reason"]).size().unstack("reason")
                       .reindex(index=days, columns=list(REASONS)).fillna(0))
    x = pd.to_datetime(days, format="%Y%m%d")
    fig, axes = _panels(2, title, heights=[2, 1])
    axes[0].plot(x, member_counts.to_numpy(), lw=1.2, label="members")
    axes[0].set_ylabel("stocks")
    for reason in REASONS:
        if excluded_counts[reason].any():
            axes[1].plot(x, excluded_counts[reason].to_numpy(), lw=0.9, label=reason)
    axes[1].set_ylabel("excluded stocks")
    return _finish(fig, axes, Path(path), drawn)
