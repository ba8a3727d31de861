"""Shared fixtures: the shipped real data, a replay server on 127.0.0.1, and a CLI runner."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Idle OpenMP threads (XGBoost's, LightGBM's) sleep instead of spinning: the suite fits
# many small models, and on a shared machine the threads spinning between their parallel
# steps cost test_importance_and_plots.py two thirds of its CPU seconds. The results are the
# same. Set before anything loads libgomp, which reads it once; killed commands inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd
import pytest

from stockpred.cli import main
from stockpred.data.replay import ReplayServer, market_replay_tables, replay_tables
from stockpred.data.sample import read_market_tree, read_sample_tables, read_tushare_csv_tree
from stockpred.data.store import TMP_MARK

REPO = Path(__file__).resolve().parents[1]
TOKEN = "f3c1a9e07b5d4e2fa8c6b0d9e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6"  # a made-up test token
STOCKS = ["600000.SH", "600036.SH", "600519.SH"]


def shared_data_dir(name: str) -> Path | None:
    """``<shared data>/<name>`` when it exists; the shared data folder is ../shared/data
    beside the checkout unless STOCKPRED_SHARED_DATA names another."""
    root = Path(os.environ.get("STOCKPRED_SHARED_DATA", REPO.parent / "shared" / "data"))
    folder = root / name
    return folder if folder.is_dir() else None


@pytest.fixture(scope="session")
def real_tables() -> dict[str, pd.DataFrame]:
    """The real data shipped with the package, so that a fresh clone tests fetch on it too."""
    return read_sample_tables()


@pytest.fixture(scope="session")
def shared_tables() -> dict[str, pd.DataFrame]:
    """The shared tushare-shaped CSV tree that the shipped sample copies."""
    folder = shared_data_dir("tushare")
    if folder is None:
        pytest.skip("../shared/data/tushare, the source the shipped sample is checked "
                    "against, is not beside this checkout")
    return read_tushare_csv_tree(folder)


@pytest.fixture(scope="session")
def server_tables(real_tables) -> dict[str, pd.DataFrame]:
    """What the replay server holds: the real tables in the layout of tushare's interfaces."""
    return replay_tables(real_tables)


@pytest.fixture(scope="session")
def market_tables() -> dict[str, pd.DataFrame]:
    """Replay tables of the market-scale data: 1,702 stocks' daily bars 2008-2018 (not shipped)."""
    folder = shared_data_dir("market")
    if folder is None:
        pytest.skip("the market-scale data ../shared/data/market is not beside this checkout")
    return market_replay_tables(read_market_tree(folder))


@pytest.fixture(scope="session")
def sample_top20(tmp_path_factory) -> Path:
    """A data folder of the shipped sample from 2015 with the factors of its top20, built
    once for the market modules (the same fetch and factors each built for itself); a
    module copies it before writing to it. The factors read no section those modules'
    configs set (the files are byte-identical built under theirs)."""
    root = tmp_path_factory.mktemp("top20")
    (root / "config.json").write_text(json.dumps({"compute": {"workers": 0}}))
    common = ["--data-dir", str(root / "data"), "--config", str(root / "config.json")]
    for command in (["fetch", "--source", "sample", "--start", "20150101"],
                    ["features", "--universe", "top20"]):
        code, _, err = run_cli(*command, *common)
        assert code == 0, err
    return root / "data"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty folder as cwd, no user config, no token, no inherited stockpred env."""
    for name in ("TUSHARE_TOKEN", "TUSHARE_API_URL", "STOCKPRED_DATA_DIR", "STOCKPRED_CONFIG",
                 "STOCKPRED_RESULTS_DIR", "TS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOCKPRED_USER_CONFIG", str(tmp_path / "no-user-config.json"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(folder: Path, **fetch) -> Path:
    """A config.json for tests: fast back-off, explicit stocks and days."""
    settings = {"universe": {"index": None, "ts_codes": STOCKS}, "start_date": "20170101",
                "end_date": "20181228", "interfaces": ["daily", "daily_basic", "adj_factor"]}
    settings.update(fetch)
    config = {"tushare": {"backoff_base_s": 0.001, "backoff_max_s": 0.005, "max_retries": 3},
              "fetch": settings, "refresh": {"stages": ["features"]}}
    path = folder / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def tushare_env(workdir, monkeypatch):
    """Token and API URL for a replay server; returns a function that points at one."""

    def point_at(server: ReplayServer) -> None:
        monkeypatch.setenv("TUSHARE_TOKEN", TOKEN)
        monkeypatch.setenv("TUSHARE_API_URL", server.url)

    return point_at


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run `stockpred ARGS` in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def sample_features(folder: Path, ts_codes: str, start: str | None = None) -> Path:
    """A data folder holding the shipped sample for ``ts_codes`` and their features."""
    fetch = ["fetch", "--source", "sample", "--ts-code", ts_codes, "--data-dir", str(folder)]
    code, _, err = run_cli(*fetch, *(["--start", start] if start else []))
    assert code == 0, err
    code, _, err = run_cli("features", "--data-dir", str(folder))
    assert code == 0, err
    return folder


@pytest.fixture(scope="session")
def sample_copy(tmp_path_factory) -> Callable[[str, str, Path], Path]:
    """``sample_copy(ts_codes, start, to)``: a copy at ``to`` of the data folder that
    ``sample_features`` builds, built once a session for every module that asks for the
    same stocks and start (each writes its own stages' outputs into its copy)."""
    built: dict[tuple[str, str], Path] = {}

    def copy(ts_codes: str, start: str, to: Path) -> Path:
        if (ts_codes, start) not in built:
            built[ts_codes, start] = sample_features(tmp_path_factory.mktemp("sample"),
                                                     ts_codes, start)
        return Path(shutil.copytree(built[ts_codes, start], to))

    return copy


def tree_digest(folder: Path) -> dict[str, str]:
    """Content hashes of every parquet file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*.parquet"))}


# -- real processes killed at a chosen point (test_kill_resume*.py) --------------------------

def signal_when(args: list[str], ready: Callable[[], bool], signum: int,
                limit_s: float = 120) -> tuple[int, str]:
    """Start `stockpred ARGS`, send it ``signum`` once ``ready()`` holds; returns its exit
    status (minus the signal's number when the signal killed it) and its stderr. SIGINT
    reaches it as Ctrl-C at a terminal does, even where the tests run with SIGINT ignored
    (a background job's children inherit that, and Python then never raises
    KeyboardInterrupt)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "stockpred", *args],
                                env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + limit_s
            while proc.poll() is None and not ready() and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signum)
            code = proc.wait(timeout=limit_s)
        finally:
            proc.kill()  # nothing when it has ended; a run that ignored the signal ends here
        err.seek(0)
        return code, err.read()


def kill_when(args: list[str], ready: Callable[[], bool], limit_s: float = 120) -> bool:
    """SIGKILL `stockpred ARGS` once ``ready()`` holds; True if it was still running then
    (False: it finished first, which leaves nothing to check)."""
    return signal_when(args, ready, signal.SIGKILL, limit_s)[0] == -signal.SIGKILL


def rerun(*args: str) -> str:
    """Run `stockpred ARGS` to the end in this process; returns what it printed. Only the
    run to kill needs a process of its own: the killed one's lock (a flock) died with it,
    and a fresh process would pay the imports (TensorFlow's, seconds of CPU) once more."""
    code, out, err = run_cli(*args)
    assert code == 0, err
    return out


def files(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern)))


def after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start > seconds


def copy_inputs(built: Path, to: Path, *outputs: str) -> Path:
    """A copy of the data folder ``built`` without the stage outputs named."""
    shutil.copytree(built, to, ignore=lambda folder, names: [
        n for n in names if Path(folder) == built and n in outputs])
    return to


def last_run(runs: Path) -> Path:
    """The newest run folder under ``runs``; a killed run's half-written twin is gone."""
    folders = sorted(runs.iterdir())
    assert not [f for f in folders if TMP_MARK in f.name], folders
    return folders[-1]
