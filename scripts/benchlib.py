"""What the benchmark scripts share: running the real `stockpred` command, printing as
they go, and recording their figures for the README."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "stockpred"]
REPO = Path(__file__).resolve().parents[1]


def stockpred(*args, cwd) -> str:
    """Run `stockpred ARGS` in ``cwd``; exit with its last error lines if it fails."""
    done = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"stockpred {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def say(text: str) -> None:
    """Print now: a long benchmark shows each figure as it comes."""
    print(text, flush=True)


class Results:
    """A benchmark's figures, each printed as it is measured and written, with the
    conditions they were measured under, to project_results/benchmarks/<script>.json:
    the README's benchmark blocks are rendered from those files (`stockpred readme`)."""

    def __init__(self, script: str, command: str):
        self.script, self.command = script, command
        self.conditions = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
                           "load_at_start": round(os.getloadavg()[0], 1)}
        self.figures: list[dict] = []
        self.tables: list[dict] = []
        self.data: dict = {}  # what a benchmark's own README block renders

    def add(self, what: str, value: float, unit: str = "", target: str | None = None,
            met: bool | None = None, digits: int = 2) -> None:
        self.figures.append({"what": what, "value": value, "unit": unit, "target": target,
                             "met": met, "digits": digits})
        shown = f"{value:,.{digits}f}{' ' + unit if unit else ''}"
        verdict = "" if target is None else f" (target {target}: " \
            f"{'met' if met else 'NOT met'})"
        say(f"  {what}: {shown}{verdict}")

    def leaderboard(self, title: str, rows: list[dict]) -> None:
        """A leaderboard the benchmark wrote, kept whole for the README."""
        self.tables.append({"title": title, "rows": rows})

    def save(self) -> Path:
        from stockpred.config import load_config
        from stockpred.data.store import atomic_write_text
        from stockpred.layout import resolve_paths

        target = resolve_paths(load_config(REPO / "config.json"), REPO / "data") \
            .benchmark_results(self.script)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = {"script": self.script, "command": self.command, **self.conditions,
                   "load_at_end": round(os.getloadavg()[0], 1), "figures": self.figures,
                   "tables": self.tables, **self.data}
        atomic_write_text(target, json.dumps(payload, indent=1, default=str) + "\n")
        say(f"recorded in {target}")
        return target
