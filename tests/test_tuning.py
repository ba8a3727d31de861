"""Tuning: the environment, the DQN agent, no test rows read, and resuming from the log."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from conftest import run_cli, sample_features
from stockpred.config import Config, quick_config
from stockpred.layout import resolve_paths
from stockpred.plots import read_provenance
from stockpred.tuning import search
from stockpred.tuning.dqn import DQNAgent, DQNSettings
from stockpred.tuning.env import TuningEnv
from stockpred.tuning.objective import Objective, TrialLog
from stockpred.tuning.spaces import SPACES

STOCK = "600036.SH"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return sample_features(tmp_path_factory.mktemp("tune"), STOCK, "20110101")


def objective(folder, agent="random", log_name="log.parquet"):
    paths = resolve_paths(Config(), folder)
    return Objective(quick_config(Config()), paths, "xgboost", [STOCK], agent,
                     TrialLog(folder / log_name))


def test_environment_passes_gymnasiums_checker(built):
    env = TuningEnv(SPACES["xgboost"], objective(built, log_name="env.parquet"))
    check_env(env, skip_render_check=True)
    observation, info = env.reset(seed=1)
    assert env.observation_space.contains(observation)
    up_depth = 2 * env.names.index("max_depth") + 1
    _, reward, _, _, info = env.step(up_depth)
    assert info["params"]["max_depth"] == SPACES["xgboost"]["max_depth"][3]
    assert reward == pytest.approx(env.current - env.objective(
        {**info["params"], "max_depth": SPACES["xgboost"]["max_depth"][2]}))


class Bandit(gym.Env):
    """Five arms with mean rewards 0.1..0.9 (noise 0.1): the optimum is arm 3."""

    means = np.array([0.1, 0.3, 0.2, 0.9, 0.5])

    def __init__(self):
        self.action_space = gym.spaces.Discrete(5)
        self.observation_space = gym.spaces.Box(0, 1, shape=(1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action):
        reward = float(self.means[action] + self.np_random.normal(0, 0.1))
        return np.ones(1, dtype=np.float32), reward, True, False, {}


def test_dqn_learns_a_bandit_whose_optimum_is_known():
    env = Bandit()
    check_env(env, skip_render_check=True)
    agent = DQNAgent(1, 5, DQNSettings(epsilon_decay_steps=150, warmup=16, batch_size=16,
                                       target_every=10, learning_rate=5e-3), seed=3)
    observation, _ = env.reset(seed=3)
    rewards = []
    for _ in range(300):
        action = agent.act(observation)
        after, reward, terminated, truncated, _ = env.step(action)
        agent.remember(observation, action, reward, after, terminated)
        rewards.append(reward)
        observation, _ = env.reset()
    assert agent.greedy(observation) == 3
    assert np.mean(rewards[-100:]) > 0.7  # above the best wrong arm's 0.5


def test_tuning_never_reads_the_test_period(built, tmp_path):
    first = objective(built, log_name="clean.parquet")
    search.search_random(first, SPACES["xgboost"], 4, seed=5)
    for path in (built / "features").glob("*.parquet"):
        table = pd.read_parquet(path)
        later = table["trade_date"] >= "20170101"
        numeric = table.columns.drop("trade_date")
        table.loc[later, numeric] = table.loc[later, numeric].to_numpy()[::-1] * 2.0
        table.to_parquet(path)
    second = objective(built, log_name="scrambled.parquet")
    search.search_random(second, SPACES["xgboost"], 4, seed=5)
    clean = TrialLog(built / "clean.parquet").read().drop(columns="wall_s")
    scrambled = TrialLog(built / "scrambled.parquet").read().drop(columns="wall_s")
    pd.testing.assert_frame_equal(clean, scrambled)


@pytest.mark.parametrize("agent", ["optuna", "dqn"])
def test_an_interrupted_run_resumes_without_repeating_trials(agent, built):
    interrupted = objective(built, agent, f"{agent}-resume.parquet")
    search.SEARCHES[agent](interrupted, SPACES["xgboost"], 3, 11)
    assert interrupted.computed == 3
    resumed = objective(built, agent, f"{agent}-resume.parquet")
    search.SEARCHES[agent](resumed, SPACES["xgboost"], 6, 11)
    assert resumed.computed == 3  # the first three came from the log
    fresh = objective(built, agent, f"{agent}-fresh.parquet")
    search.SEARCHES[agent](fresh, SPACES["xgboost"], 6, 11)
    log = TrialLog(built / f"{agent}-resume.parquet").read()
    assert log["params"].is_unique and len(log) == 6
    assert list(log["params"]) == list(TrialLog(built / f"{agent}-fresh.parquet").read()["params"])


def test_tune_command_writes_the_best_and_evaluate_tests_it(built, tmp_path, workdir):
    results = tmp_path / "results"
    code, out, err = run_cli("tune", "--agent", "random", "--model", "xgboost", "--budget", "3",
                             "--quick", "--data-dir", str(built), "--results-dir", str(results))
    assert code == 0, err
    assert "3 trials" in out
    best = json.loads((built / "runs" / "tune" / "xgboost" / "random.best.json").read_text())
    assert set(best["best"]) == set(SPACES["xgboost"])
    assert not (results / "leaderboard.json").exists(), "tuning reads no test day"
    tuned = "xgboost (tuned by random) [quick]"  # a quick search is marked as such
    # every evaluate of these stocks and periods (a refresh's too) walks the choice forward
    for _ in range(2):
        code, _, err = run_cli("evaluate", "--data-dir", str(built), "--results-dir",
                               str(results), "--models", "xgboost", "--quick")
        assert code == 0, err
        board = json.loads((results / "leaderboard.json").read_text())
        assert [r["model"] for r in board["rows"]] == ["persistence", "drift", "xgboost", tuned]
        assert f"| {tuned} |" in (results / "leaderboard.md").read_text()
    # another period means other scores: the same command starts a fresh log
    again = run_cli("tune", "--agent", "random", "--model", "xgboost", "--budget", "3",
                    "--quick", "--data-dir", str(built), "--results-dir", str(results))
    assert again[0] == 0 and "0 computed now" in again[1]
    (workdir / "config.json").write_text(json.dumps({
        "evaluation": {"validation_start": "20150101", "test_start": "20160101"},
        "importance": {"train_end": "20141231"}}))
    moved = run_cli("tune", "--agent", "random", "--model", "xgboost", "--budget", "3",
                    "--quick", "--data-dir", str(built), "--results-dir", str(results))
    assert moved[0] == 0 and "3 computed now" in moved[1], moved
    code, _, err = run_cli("tune", "--model", "arima", "--data-dir", str(built))
    assert code == 2 and "no search space for 'arima'" in err
    # an absurd budget stops when the space is exhausted (svr's holds 16)
    code, out, err = run_cli("tune", "--agent", "random", "--model", "svr", "--budget",
                             "1000000000", "--quick", "--data-dir", str(built),
                             "--results-dir", str(results))
    assert code == 0, err
    assert "16 trials" in out and "every configuration the space holds" in out
    code, out, err = run_cli("plot", "tuning", "--model", "xgboost", "--data-dir", str(built),
                             "--results-dir", str(results))
    assert code == 0, err
    assert (results / "tuning" / "xgboost_best_so_far.png").stat().st_size > 10_000
    drawn = read_provenance(results / "tuning" / "xgboost_best_so_far.png")
    assert drawn["quick"] and drawn["finished_at"]  # its searches were smoke runs
