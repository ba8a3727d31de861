"""Dask faults are faults, not bugs: a scheduler address that does not answer, a worker that
dies while it computes factors. A real LocalCluster on 127.0.0.1; workers are killed with
SIGKILL from a scheduler plugin, as an out-of-memory kill or a crashed host would end them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from conftest import run_cli, tree_digest

STOCKS = "600000.SH,600036.SH,600519.SH"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A data directory holding three stocks of the shipped sample, and nothing else."""
    data = tmp_path_factory.mktemp("dask") / "data"
    code, _, err = run_cli("fetch", "--source", "sample", "--ts-code", STOCKS,
                           "--data-dir", str(data))
    assert code == 0, err
    return data


@pytest.fixture
def data(stored, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(stored, copy)
    return copy


def _one_line(err: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "unexpected" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("address, code, phrase", [
    ("tcp://127.0.0.1:1", 1, "no Dask scheduler answers at tcp://127.0.0.1:1"),
    ("::garbage::", 2, "scheduler '::garbage::' is not a Dask address"),
])
def test_a_bad_scheduler_stops_before_anything_is_written(address, code, phrase, data, workdir):
    start = time.monotonic()
    got, _, err = run_cli("features", "--universe", "top2", "--scheduler", address,
                          "--data-dir", str(data))
    assert got == code and phrase in err, err
    _one_line(err)
    assert time.monotonic() - start < 15
    assert not (data / "universe").exists() and not (data / "factors").exists()


def test_evaluate_cross_section_refuses_a_bad_scheduler_first(data, workdir):
    # no factors are stored either: the scheduler is the first thing checked
    got, _, err = run_cli("evaluate", "--cross-section", "--universe", "top2", "--scheduler",
                          "tcp://127.0.0.1:1", "--data-dir", str(data))
    assert got == 1 and "no Dask scheduler answers at tcp://127.0.0.1:1" in err, err
    _one_line(err)
    assert not (data / "runs").exists()


class KillWorkers(SchedulerPlugin):
    """Kills the worker a task whose key starts with ``prefix`` (default: a factor
    partition) is sent to, ``times`` times in all."""

    def __init__(self, times: int, prefix: str = "factor-part"):
        self.times, self.prefix, self.killed = times, prefix, []

    def add_to(self, cluster) -> None:
        self.scheduler = cluster.scheduler
        cluster.scheduler.add_plugin(self, name="kill-workers")

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "processing" and str(key).startswith(self.prefix) \
                and len(self.killed) < self.times:
            worker = self.scheduler.tasks[key].processing_on
            self.killed.append(worker.address)
            os.kill(worker.pid, signal.SIGKILL)


@pytest.fixture
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster:
        yield cluster
        # closing while a nanny restarts a killed worker fails inside distributed ("can
        # only join a started process"): let the restarts finish first
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)


def test_a_worker_killed_mid_run_costs_a_rerun_not_the_panel(data, cluster, tmp_path, workdir):
    killer = KillWorkers(times=1)
    killer.add_to(cluster)
    code, out, err = run_cli("features", "--universe", "top3", "--scheduler",
                             cluster.scheduler_address, "--data-dir", str(data))
    assert code == 0, err
    assert killer.killed and "factors of top3: " in out
    # the same universe computed in this process, no cluster, no fault
    config = tmp_path / "in-process.json"
    config.write_text(json.dumps({"compute": {"workers": 0}}))
    again = tmp_path / "again"
    shutil.copytree(data, again, ignore=shutil.ignore_patterns("factors", "universe"))
    code, _, err = run_cli("features", "--universe", "top3", "--config", str(config),
                           "--data-dir", str(again))
    assert code == 0, err
    assert tree_digest(data / "factors") == tree_digest(again / "factors") != {}


def test_workers_that_keep_dying_end_in_one_line_naming_the_last(data, cluster, workdir):
    killer = KillWorkers(times=100)
    killer.add_to(cluster)
    code, _, err = run_cli("features", "--universe", "top3", "--scheduler",
                           cluster.scheduler_address, "--data-dir", str(data))
    assert code == 1, err
    _one_line(err)
    assert "every worker that ran a partition died (4 tries)" in err
    # the line names a worker the plugin killed: which of the partitions' workers
    # distributed reports last depends on the order their deaths reach the scheduler
    named = err.split("the last ")[1].split(";")[0]
    assert named in killer.killed, (named, killer.killed)
    assert not (data / "factors").exists()


def test_a_worker_killed_during_a_distributed_fit_ends_in_one_line_naming_it(cluster):
    """lightgbm.dask fits as one collective over the workers: a dead worker's share cannot
    be rerun alone, so the fit ends in a ComputeError naming the worker."""
    import numpy as np
    import pandas as pd

    from stockpred.config import Config
    from stockpred.dataset import FactorPanel
    from stockpred.errors import ComputeError
    from stockpred.models.registry import prototype

    rng = np.random.default_rng(0)
    rows = 4000
    dates = np.repeat([f"2018{d:04d}" for d in range(101, 101 + rows // 100)], 100)
    keys = pd.DataFrame({"trade_date": dates, "ts_code": [f"{i:06d}.SZ" for i in
                                                            range(100)] * (rows // 100)})
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    panel = FactorPanel(keys, x, x[:, 0] + rng.normal(size=rows).astype(np.float32),
                        np.full(rows, "20000101"), pd.DataFrame({"ret_1": x[:, 0],
                                                                 "ret_2": x[:, 0]}),
                        np.zeros(rows), [f"f{i}" for i in range(5)], "ret_2")
    model = prototype(Config(), "lightgbm")
    model = type(model)({**model.settings, "on_dask": True, "n_estimators": 2000}, model.seed)
    killer = KillWorkers(times=1, prefix="_train_part")
    killer.add_to(cluster)
    with Client(cluster), pytest.raises(ComputeError) as raised:
        model.fit(panel)
    message = str(raised.value)
    assert "\n" not in message and killer.killed, message
    assert f"the Dask worker {killer.killed[0]} died during a fit" in message
