"""What the benchmark scripts share: running the real `stockpred` command, printing as
they go, and recording their figures for the README."""

import json
import os
import subprocess
import sys
import threading
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


class PeakSampler:
    """The largest sum of RSS over a process (this one by default) and its descendants,
    sampled: a stage's Dask workers or subprocesses count with it."""

    def __init__(self, interval: float = 0.1, pid: int | None = None,
                 stop_above: float | None = None):
        """``stop_above``: bytes past which the process is sent SIGTERM (``stopped`` set),
        for a case that could take a shared machine's memory from others."""
        import psutil

        self._me, self._interval, self._stop_above = psutil.Process(pid), interval, stop_above
        self.peak, self.stopped = 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        import psutil

        try:
            total = self._me.memory_info().rss
            family = self._me.children(recursive=True)
        except psutil.Error:  # the process has ended
            return 0
        for proc in family:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            if self._stop_above is not None and self.peak > self._stop_above \
                    and not self.stopped:
                self.stopped = True
                self._me.terminate()
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._total())


def measured(*args, cwd, limit_s: float | None = None, env: dict | None = None,
             stop_above: float | None = None) -> dict:
    """Run `stockpred ARGS` in ``cwd`` (with ``env`` added to the environment): its wall
    time, the peak RSS of its process tree, its output, and whether it finished within
    ``limit_s`` and under ``stop_above`` bytes (stopped there if not, with its figures so
    far: ``memory_stop`` says which); exits with its last error lines if it fails."""
    start = time.perf_counter()
    process = subprocess.Popen([*CLI, *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, **(env or {})))
    with PeakSampler(pid=process.pid, stop_above=stop_above) as sampler:
        try:
            out, err = process.communicate(timeout=limit_s)
            finished = True
        except subprocess.TimeoutExpired:
            process.terminate()  # SIGTERM: the stage stops and its Dask workers with it
            out, err = process.communicate()
            finished = False
    wall = time.perf_counter() - start
    finished = finished and not sampler.stopped
    if finished and process.returncode != 0:
        sys.exit(f"stockpred {' '.join(args)} failed: {err.strip()[-500:]}")
    return {"wall_s": wall, "peak": sampler.peak, "out": out, "finished": finished,
            "memory_stop": sampler.stopped}


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
