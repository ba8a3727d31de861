"""The one writer of the leaderboard (project_results/leaderboard.md and .json).

`evaluate` owns the walk-forward rows; `tune` owns the rows of its tuned models, kept in
its own files (<data dir>/runs/tune/<model>/<agent>.best.json). Every write renders both,
so a refresh that reruns evaluate keeps the tuned rows, and a tuned row enters only a
board of the same stocks and test period. A quick (smoke) board says so in its header
and its json; a tuned row from a quick search is marked in its name. Both files say how
many observations each test of the rows rests on (the json under "observations").
"""

from __future__ import annotations

import json

from stockpred.data.store import atomic_write_text
from stockpred.evaluation.scoring import leaderboard_markdown, observations_note
from stockpred.layout import Paths
from stockpred.manifest import read_manifest

QUICK_MARK = " [quick]"


def tuned_rows(paths: Paths, stocks: list[str], period: list[str]) -> list[dict]:
    """The test rows of every tuned model whose stocks and test period match the board's."""
    rows = []
    for best in sorted(paths.tune_root.glob("*/*.best.json")) if paths.tune_root.is_dir() else []:
        record = read_manifest(best)
        if record is None or sorted(record.get("stocks", [])) != sorted(stocks) or \
                list(record.get("test_period", [])) != list(period):
            continue
        row = dict(record["test"])
        if record.get("quick"):
            row["model"] += QUICK_MARK
        rows.append(row)
    return rows


def write_leaderboard(paths: Paths, board: dict | None = None) -> dict | None:
    """Write ``board`` (evaluate's payload: header, rows, stocks, test_period, ...), or
    re-render the stored one, with the tuned rows merged in. Returns what was written."""
    board = board if board is not None else read_manifest(paths.leaderboard_json)
    if board is None:
        return None
    tuned = tuned_rows(paths, board["stocks"], board["test_period"])
    rows = board["rows"] + tuned
    board = {**board, "tuned_rows": tuned, "observations": observations_note(rows)}
    atomic_write_text(paths.leaderboard_json, json.dumps(board, indent=1, default=str) + "\n")
    atomic_write_text(paths.leaderboard, leaderboard_markdown(rows, board["header"]))
    return board
