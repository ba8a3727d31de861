"""The news-vector figures, drawn from the stored vectors (and the index's stored closes).

news_vectors.png: every article's vector projected on its first two principal components.
Left, coloured by channel (tushare's ``channels``), as the original project's news_vectors
plots; right, coloured by the month of publication, which shows how far the topics drift
over time (the sample has a single channel, so the left panel is one colour there).

news_dimension_pairs.png: a 2 x 3 grid, every pair of the first four vector dimensions,
each article coloured by the index's move over the trading day after its first close (red
up, green down, as A-share quotes colour them), as the fine-tuned encoder was trained to
predict it; dots were published before news.fit_end (what an encoder fit on), crosses after.
Without the index's stored closes (news.seq2seq.index_code) only the first figure is drawn.
"""

from __future__ import annotations

import logging
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import font_manager

from stockpred.config import Config
from stockpred.errors import MissingInputError
from stockpred.layout import Paths
from stockpred.news.embed import before_fit_end, read_vectors, vector_columns
from stockpred.news.finetune import index_moves, read_index
from stockpred.news.samples import article_times
from stockpred.plots import drawn_from, save_figure
from stockpred.plots.features import _CJK_FONTS

log = logging.getLogger(__name__)

FIGURE = "news_vectors.png"
PAIRS_FIGURE = "news_dimension_pairs.png"
MAX_GROUPS = 10
PAIRED_DIMENSIONS = 4
MOVE_COLOURS = {"up": "tab:red", "down": "tab:green"}


def _cjk_font() -> str | None:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in _CJK_FONTS if f in installed), None)


def ascii_labels(values: pd.Series) -> pd.Series:
    """Labels that draw without a CJK font: non-ASCII ones become "channel N" unless a
    CJK font is installed (then it is switched on and the label kept)."""
    values = values.fillna("(none)").astype(str)
    if all(v.isascii() for v in values.unique()):
        return values
    font = _cjk_font()
    if font is not None:
        plt.rcParams["font.sans-serif"] = [font, *plt.rcParams["font.sans-serif"]]
        return values
    order = {v: i for i, v in enumerate(values.value_counts().index)}
    return values.map(lambda v: v if v.isascii() else f"channel {order[v] + 1}")


def _top_groups(labels: pd.Series) -> pd.Series:
    """At most MAX_GROUPS labels, the rarest folded into "other"."""
    keep = labels.value_counts().index[:MAX_GROUPS - 1]
    if labels.nunique() <= MAX_GROUPS:
        return labels
    return labels.where(labels.isin(keep), "other")


def _scatter(ax, xy: np.ndarray, labels: pd.Series, title: str, legend_title: str,
             ordered: bool = False) -> None:
    groups = sorted(labels.unique()) if ordered else list(labels.value_counts().index)
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "viridis")
    for i, group in enumerate(groups):
        rows = (labels == group).to_numpy()
        ax.scatter(xy[rows, 0], xy[rows, 1], s=10, alpha=0.7,
                   color=colours(i if len(groups) <= 10 else i / max(len(groups) - 1, 1)),
                   label=f"{group} ({rows.sum()})")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.grid(alpha=0.3)
    ax.legend(title=legend_title, fontsize=7, title_fontsize=8, loc="best", markerscale=1.5)


def run(config: Config, paths: Paths) -> list[Path]:
    vectors, manifest = read_vectors(paths)  # MissingInputError naming `stockpred embed-news`
    cols = vector_columns(vectors)
    matrix = vectors[cols].to_numpy(float)
    centred = matrix - matrix.mean(axis=0)
    # PCA by SVD of the centred vectors (two components; deterministic sign: largest +)
    _, singular, basis = np.linalg.svd(centred, full_matrices=False)
    basis = basis[:2]
    basis = basis * np.sign(basis[np.arange(2), np.abs(basis).argmax(axis=1)])[:, None]
    xy = centred @ basis.T
    share = singular[:2] ** 2 / max(float((singular ** 2).sum()), 1e-12)

    channels = _top_groups(ascii_labels(vectors["channels"]))
    months = pd.to_datetime(vectors["datetime"], errors="coerce").dt.to_period("M")
    encoder = manifest.get("encoder", "unknown encoder")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
    fig.suptitle(f"News vectors ({len(vectors)} articles, {len(cols)} dimensions, {encoder}): "
                 f"PCA, {share[0]:.0%} and {share[1]:.0%} of the variance", fontsize=12)
    _scatter(axes[0], xy, channels, "coloured by channel", "channel")
    _scatter(axes[1], xy, months.astype(str).where(months.notna(), "undated"),
             "coloured by month of publication", "month", ordered=True)
    drawn = drawn_from("stockpred plot news", config, paths, paths.news_vectors,
                       manifest.get("finished_at"))
    made = [save_figure(fig, paths.figures_dir("news") / FIGURE, drawn)]
    code = config.news.seq2seq.index_code
    try:
        index = read_index(paths.raw_dir, code)
    except MissingInputError as exc:
        log.warning("plot news: %s; %s is not drawn", exc, PAIRS_FIGURE)
        return made
    fig = _dimension_pairs(vectors, manifest, index, code)
    return [*made, save_figure(fig, paths.figures_dir("news") / PAIRS_FIGURE, drawn)]


def _dimension_pairs(vectors: pd.DataFrame, manifest: dict, index: pd.DataFrame, code: str):
    """The 2 x 3 grid of the first four dimensions in pairs, coloured by the next move."""
    cols = vector_columns(vectors)[:PAIRED_DIMENSIONS]
    up, _ = index_moves(article_times(vectors), index)
    move = np.where(np.isnan(up), "unknown", np.where(up == 1, "up", "down"))
    fit_end = manifest.get("fit_end")
    fitted = (before_fit_end(vectors, fit_end) if fit_end
              else np.zeros(len(vectors), dtype=bool))
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.2))
    cut = f"dots before news.fit_end {fit_end}, crosses after" if fit_end else "no fit_end"
    fig.suptitle(f"News vector dimensions in pairs ({manifest.get('encoder', 'unknown encoder')}"
                 f" encoder, {len(vectors)} articles),\ncoloured by {code}'s move over the "
                 f"next trading day; {cut}", fontsize=11)
    for ax, (a, b) in zip(axes.flat, combinations(cols, 2)):
        for name, colour in MOVE_COLOURS.items():
            for when, marker in ((fitted, "o"), (~fitted, "x")):
                rows = (move == name) & when
                if rows.any():
                    ax.scatter(vectors.loc[rows, a], vectors.loc[rows, b], s=9, alpha=0.6,
                               color=colour, marker=marker,
                               label=f"{name}, {'fitted' if marker == 'o' else 'later'} "
                                     f"({rows.sum()})")
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="best", markerscale=1.5)
    return fig
