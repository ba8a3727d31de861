"""The one writer and renderer of `evaluate`'s results, for both worlds.

A board is one run's payload, with the same fields in either world: run_id, world, header,
test_period, protocol (the WalkForward), quick, models, rows (the main table), tables (every
table the markdown shows: title, columns, rows), notes, config_sha256, versions, upstream,
and the world's own facts (the stocks and their inputs; the universe, label, settings and
backtest). `evaluate` writes it as metrics.json into its run folder, beside
predictions.parquet (trade_date, ts_code, model, and the world's values), and publishes
it, less RUN_ONLY, as the world's leaderboard (<results dir>/leaderboard.{md,json}, or
<results dir>/cross_section/leaderboard.{md,json}).

A tuned model is a row like any other, ``<model> (tuned by <agent>)``: `evaluate` walks
forward the settings `stockpred tune` chose when the tuning's scope (its stocks or
universe, and its periods) is the board's; a quick search's row is marked as such.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from stockpred.data.store import atomic_write_text
from stockpred.layout import Paths
from stockpred.manifest import read_manifest
from stockpred.models.names import CROSS_SECTION
from stockpred.models.registry import prototype

QUICK_MARK = " [quick]"
METRICS_FILE = "metrics.json"
# what the run folder keeps and the published board leaves out: when the inputs were
# written, the package versions of the machine and how long the models took, so that
# rerunning the same computation elsewhere rewrites the committed board to the same bytes
# but its run id
RUN_ONLY = ("upstream", "versions", "costs")


def cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def table_lines(rows: list[dict], columns: list[str]) -> list[str]:
    """A markdown table of ``rows`` over the ``columns`` some row has."""
    columns = [c for c in columns if any(c in r for r in rows)]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *["| " + " | ".join(cell(r.get(c, math.nan)) for c in columns) + " |"
              for r in rows]]


def table(rows: list[dict], columns: list[str], title: str | None = None) -> dict:
    return {"title": title, "columns": columns, "rows": rows}


def markdown(board: dict) -> str:
    lines = [board["header"]]
    for shown in board["tables"]:
        lines.append("")
        if shown["title"]:
            lines += [f"## {shown['title']}", ""]
        lines += table_lines(shown["rows"], shown["columns"])
    for note in board["notes"]:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def write_metrics(board: dict, run_folder: Path) -> None:
    atomic_write_text(run_folder / METRICS_FILE, json.dumps(board, indent=1, default=str) + "\n")


def publish(paths: Paths, board: dict) -> str:
    """Write ``board`` (less RUN_ONLY) as its world's leaderboard; returns the markdown."""
    markdown_path, json_path = (
        (paths.cross_section_leaderboard, paths.cross_section_leaderboard_json)
        if board["world"] == CROSS_SECTION else (paths.leaderboard, paths.leaderboard_json))
    text = markdown(board)
    shown = {key: value for key, value in board.items() if key not in RUN_ONLY}
    atomic_write_text(json_path, json.dumps(shown, indent=1, default=str) + "\n")
    atomic_write_text(markdown_path, text)
    return text


def tuning_scope(config, **subject) -> dict:
    """What a tuning's choice holds for: its ``subject`` (stocks=... or universe=...) and
    the periods it read, validation from evaluation.validation_start and nothing from
    test_start on. `tune` stores it; `evaluate` takes a choice whose scope equals its own."""
    ev = config.evaluation
    return {**subject, "periods": [ev.validation_start, ev.test_start]}


def tuned_models(config, folders: dict[str, Path], scope: dict) -> dict:
    """``<model> (tuned by <agent>)``: each model of ``folders`` (model: its tuning folder)
    with the best settings an agent stored there, when the tuning's scope equals ``scope``
    (a tuning whose validation reached into this test period would leak it)."""
    found = {}
    for model, folder in folders.items():
        for best_file in sorted(folder.glob("*.best.json")) if folder.is_dir() else []:
            best = read_manifest(best_file)
            if best is None or best.get("scope") != scope:
                continue
            mark = QUICK_MARK if best.get("quick") else ""
            found[f"{model} (tuned by {best['agent']}){mark}"] = prototype(config, model,
                                                                          best["best"])
    return found
