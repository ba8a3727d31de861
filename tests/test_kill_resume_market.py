"""SIGKILL the market-wide commands (`evaluate --cross-section`, `backtest`, `tune
--universe`) at points found by watching the file system, rerun them, and require what an
uninterrupted run writes, no file that does not read whole and no temporary left behind;
and `refresh` and `evaluate` at once: whichever comes second exits 4 and changes nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import copy_inputs, kill_when, last_run, rerun, run_cli
from stockpred.data.store import TMP_MARK
from test_cross_section import SETTINGS

# fetch and refresh sections let `refresh` run on the folder: the sample again (nothing
# new), then no later stage, so the race costs one fetch. LightGBM on one thread: on two
# shared cores its second thread mostly spins, and every run here fits it
CONFIG = {**SETTINGS, "cross_section": {**SETTINGS["cross_section"], "lightgbm": {"threads": 1}},
          "fetch": {"source": "sample", "start_date": "20150101"}, "refresh": {"stages": []}}
EVALUATE = ["evaluate", "--cross-section", "--quick", "--models", "lightgbm"]
TUNE = ["tune", "--universe", "top20", "--model", "lightgbm", "--agent", "random",
        "--budget", "2", "--quick"]


class Built:
    """The shipped sample's top20 factor panel and the uninterrupted runs' outputs."""

    def __init__(self, root: Path):
        self.root, self.data, self.results = root, root / "data", root / "results"

    def args(self, data: Path, results: Path) -> list[str]:
        return ["--data-dir", str(data), "--results-dir", str(results), "--config",
                str(self.root / "config.json")]


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_top20) -> Built:
    """Every test's reference: the factors of top20 and an uninterrupted `evaluate
    --cross-section` of them."""
    here = Built(tmp_path_factory.mktemp("market"))
    (here.root / "config.json").write_text(json.dumps(CONFIG))
    shutil.copytree(sample_top20, here.data)
    code, _, err = run_cli(*EVALUATE, *here.args(here.data, here.results))
    assert code == 0, err
    return here


def torn(*folders: Path) -> list[str]:
    """Files under ``folders`` that do not read whole (parquet, JSON, PNG); a temporary
    may be partial by design, so what lies in or is one is left to `orphans`."""
    bad = []
    for path in (p for f in folders if f.is_dir() for p in f.rglob("*")):
        if TMP_MARK in str(path) or not path.is_file():
            continue
        try:
            if path.suffix == ".parquet":
                pq.read_table(path)
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".png":
                with Image.open(path) as image:
                    image.load()  # a cut-off PNG fails here, not at open
        except Exception as exc:  # whatever the reader objects to, the file is torn
            bad.append(f"{path}: {exc}")
    return bad


def orphans(*folders: Path) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.rglob(f"*{TMP_MARK}*")]


def contents(*folders: Path) -> dict[str, str]:
    """A hash of every file under ``folders`` but the logs and the lock, which a run that
    is locked out writes by design (its refusal goes to the log)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for f in folders if f.is_dir() for p in sorted(f.rglob("*"))
            if p.is_file() and "logs" not in p.relative_to(f).parts
            and p.name != ".stockpred.lock"}


def holds_lock(data: Path, command: str) -> Callable[[], bool]:
    """Whether a `stockpred COMMAND` has taken the data lock (its session has begun and
    cleared the temporaries); the lock file's old text is wiped first, as it names the
    last holder."""
    lock = data / ".stockpred.lock"
    lock.write_text("")
    return lambda: f"`stockpred {command}`" in lock.read_text()


def same_evaluation(data: Path, results: Path, built: Built) -> None:
    """The newest cross-sectional run under ``data`` and the board in ``results`` are the
    reference's: scores, daily backtests, rows and markdown; run ids and versions aside."""
    got, want = last_run(data / "runs" / "evaluate"), last_run(built.data / "runs" / "evaluate")
    for name in ("predictions.parquet", "backtest_daily.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(got / name), pd.read_parquet(want / name),
                                      obj=name)
    boards = [json.loads((r / "cross_section" / "leaderboard.json").read_text())
              for r in (results, built.results)]
    assert boards[0]["run_id"] == got.name
    for key in ("models", "rows", "backtest"):
        assert boards[0][key] == boards[1][key], key
    assert ((results / "cross_section" / "leaderboard.md").read_text()
            == (built.results / "cross_section" / "leaderboard.md").read_text())


def test_evaluate_cross_section_killed_writes_what_an_uninterrupted_run_writes(built, tmp_path):
    data = copy_inputs(built.data, tmp_path / "data", "runs")
    results = tmp_path / "results"
    runs, board = data / "runs" / "evaluate", results / "cross_section"
    args = [*EVALUATE, *built.args(data, results)]

    def writing_the_run() -> bool:
        # the twin lives only while three files are written: once it has been renamed the
        # board and figures are still to come, so a missed twin still kills mid-run
        return runs.is_dir() and any(runs.iterdir())

    # mid-write of the run folder; then as the first figure is being saved (its file, or
    # its temporary, has just appeared)
    for ready in (writing_the_run, lambda: any(board.glob("cumulative_excess*"))):
        assert kill_when(args, ready)
        assert not torn(data, results)
    rerun(*args)
    assert not torn(data, results) and not orphans(data, results)
    same_evaluation(data, results, built)
    # a killed run renamed into place is whole, as any finished run
    for run in runs.iterdir():
        assert {"predictions.parquet", "backtest_daily.parquet", "metrics.json"} <= {
            p.name for p in run.iterdir()}, run


def test_backtest_killed_writes_what_an_uninterrupted_run_writes(built, tmp_path):
    run_id = last_run(built.data / "runs" / "evaluate").name
    data = copy_inputs(built.data, tmp_path / "data")
    stored = data / "runs" / "evaluate" / run_id / "backtest.json"
    stored.unlink(missing_ok=True)  # an earlier test may have run the reference already
    code, _, err = run_cli("backtest", "--run", run_id, *built.args(built.data, built.results))
    assert code == 0, err
    args = ["backtest", "--run", run_id, *built.args(data, tmp_path / "results")]
    # as the session begins (the temporaries cleared, nothing computed); then as
    # backtest.json is replaced, which a fast machine may finish before the kill
    killed = 0
    for ready in (holds_lock(data, "backtest"),
                  lambda: any(stored.parent.glob(f"backtest.json{TMP_MARK}*"))):
        killed += kill_when(args, ready)
        assert not torn(data)
    assert killed >= 1
    rerun(*args)
    assert not torn(data) and not orphans(data)
    want = built.data / "runs" / "evaluate" / run_id / "backtest.json"
    assert json.loads(stored.read_text()) == json.loads(want.read_text())


def test_tune_killed_after_a_trial_resumes_to_the_uninterrupted_search(built, tmp_path):
    data = copy_inputs(built.data, tmp_path / "data", "runs")
    code, _, err = run_cli(*TUNE, *built.args(built.data, built.results))
    assert code == 0, err
    tuned = Path("runs", "tune", "cross_section", "top20", "lightgbm")
    logs = data / tuned
    args = [*TUNE, *built.args(data, tmp_path / "results")]
    # once the first trial is in the log, the second being fitted
    assert kill_when(args, lambda: any(logs.glob("random-*.parquet")))
    assert not torn(data)
    [log] = logs.glob("random-*.parquet")
    done = len(pd.read_parquet(log))
    assert done == 1
    out = rerun(*args)
    assert "2 trials (1 computed now" in out  # the logged trial is not fitted again
    assert not torn(data) and not orphans(data)
    [want] = (built.data / tuned).glob("random-*.parquet")
    assert log.name == want.name
    trials = [pd.read_parquet(p) for p in (log, want)]
    assert list(trials[0]["params"]) == list(trials[1]["params"])
    assert list(trials[0]["skill"]) == list(trials[1]["skill"])
    bests = [json.loads((f / tuned / "random.best.json").read_text()) for f in (data, built.data)]
    for key in ("best", "validation_score", "scope"):
        assert bests[0][key] == bests[1][key], key


def stockpred(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stockpred", *args], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextmanager
def stopped_in_session(args: list[str], data: Path, command: str) -> Iterator[None]:
    """`stockpred ARGS` stopped (SIGSTOP) as soon as it holds the data lock, so that
    another run meets it there however fast either is; continued after the block, and
    required to finish as if nothing had happened."""
    ready = holds_lock(data, command)
    proc = stockpred(*args)
    try:
        while proc.poll() is None and not ready():
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGSTOP)
        yield
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def locked_out(args: list[str], holder: str) -> None:
    done = subprocess.run([sys.executable, "-m", "stockpred", *args], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and f"`stockpred {holder}`" in done.stderr


def test_refresh_and_evaluate_at_once_the_second_exits_4_and_nothing_is_torn(built, tmp_path):
    data = copy_inputs(built.data, tmp_path / "data", "runs")
    results = tmp_path / "results"
    evaluate, refresh = [*EVALUATE, *built.args(data, results)], [
        "refresh", *built.args(data, results)]
    with stopped_in_session(evaluate, data, "evaluate"):
        before = contents(data, results)
        locked_out(refresh, "evaluate")
        assert contents(data, results) == before
    assert not torn(data, results) and not orphans(data, results)
    same_evaluation(data, results, built)

    with stopped_in_session(refresh, data, "refresh"):
        before = contents(data, results)
        locked_out(evaluate, "refresh")
        assert contents(data, results) == before
    assert not torn(data, results) and not orphans(data, results)
    # refresh's fetch found nothing new: the evaluation it raced is still the reference's
    same_evaluation(data, results, built)
