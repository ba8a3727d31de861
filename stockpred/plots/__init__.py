"""Figures. Rendered off-screen (Agg), so they work from cron and on machines without a display.

Every figure is saved by `save_figure`, which writes beside it a sidecar
(``<figure>.png.json``) saying what it was drawn from: the command, the source and its run,
when the source was finished, the config digest and whether the source was a quick (smoke)
run. `stockpred readme --check` reads the sidecars of the figures the README shows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

# matplotlib stamps its version into every PNG ("Software"); without it the same drawing
# is the same bytes on any version, so redrawing from unchanged inputs leaves git clean
PNG_METADATA = {"Software": None}
DPI = 110


@dataclass(frozen=True)
class Provenance:
    """What a figure was drawn from. Nothing in it changes when the same inputs are drawn
    again: the only times are the ones the source itself recorded."""

    drawn_by: str  # the command that drew it, as a user types it
    source: str  # what it draws (a run folder or a table), relative to the data dir
    run_id: str | None  # the run it draws, where the source is a run
    finished_at: str | None  # when the source was finished, as its own record says
    config_sha256: str  # manifest.config_hash of the config it was drawn with
    quick: bool  # the source came from a smoke run (--quick)


def sidecar(figure: Path) -> Path:
    """Where the provenance of ``figure`` is kept."""
    figure = Path(figure)
    return figure.with_name(figure.name + ".json")


def read_provenance(figure: Path) -> dict | None:
    """The sidecar of ``figure`` (with the PNG's sha256 it describes), or None."""
    try:
        return json.loads(sidecar(figure).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def png_sha256(figure: Path) -> str:
    return hashlib.sha256(Path(figure).read_bytes()).hexdigest()


def save_figure(fig, path, drawn: Provenance, crop: bool = False) -> Path:
    """Lay out ``fig``, write it to ``path`` (PNG, folders made) with its provenance beside
    it, and close it. Each file is written beside and renamed into place: a run killed
    mid-save leaves the old figure whole (or none), never a cut-off one, and the sidecar
    names the PNG's hash, so a figure and a sidecar that do not belong together show.
    ``crop`` cuts the canvas to what is drawn instead of laying out (for a colour bar
    shared by several axes, which tight_layout cannot place)."""
    import matplotlib.pyplot as plt

    from stockpred.data.store import atomic_save, atomic_write_text

    path = Path(path)
    if not crop:
        fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=DPI, metadata=PNG_METADATA,
                                              bbox_inches="tight" if crop else None))
    plt.close(fig)
    record = {**asdict(drawn), "png_sha256": png_sha256(path)}
    atomic_write_text(sidecar(path), json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def drawn_from(command: str, config, paths, source: Path, finished_at: str | None,
               run_id: str | None = None, quick: bool = False) -> Provenance:
    """The provenance of figures that ``command`` draws from ``source`` (under the data
    dir), finished at ``finished_at`` as the source's own record (a manifest, metrics.json)
    says."""
    from stockpred.manifest import config_hash

    return Provenance(drawn_by=command,
                      source=Path(source).relative_to(paths.data_dir).as_posix(),
                      run_id=run_id, finished_at=finished_at,
                      config_sha256=config_hash(config), quick=quick)
