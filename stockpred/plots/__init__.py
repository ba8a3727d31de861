"""Figures. Rendered off-screen (Agg), so they work from cron and on machines without a display."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def save_figure(fig, path) -> Path:
    """Lay out ``fig``, write it to ``path`` (PNG, folders made) and close it. The PNG is
    written beside and renamed into place: a run killed mid-save leaves the old figure
    whole (or none), never a cut-off one, and the next run deletes the temporary."""
    import matplotlib.pyplot as plt

    from stockpred.data.store import atomic_save

    path = Path(path)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return path
