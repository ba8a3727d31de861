"""Figures. Rendered off-screen (Agg), so they work from cron and on machines without a display."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")


def save_figure(fig, path) -> Path:
    """Lay out ``fig``, write it to ``path`` (PNG, folders made) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
