"""A gymnasium environment whose actions move one hyperparameter a step up or down.

Observation: each hyperparameter's position in its grid (0..1), the current and best
validation skill so far, and the share of the episode used. Actions: 2 per
hyperparameter (down, up) and one to keep the settings. Reward: the change in
validation skill. Moving past either end of a grid keeps the value.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np


class TuningEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, space: dict[str, list], objective: Callable[[dict], float],
                 start: dict[str, int] | None = None, episode_steps: int = 8):
        self.space = space
        self.names = list(space)
        self.objective = objective
        self.start = start or {n: len(v) // 2 for n, v in space.items()}
        self.episode_steps = episode_steps
        self.action_space = gym.spaces.Discrete(2 * len(self.names) + 1)
        size = len(self.names) + 3
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)

    def params(self) -> dict:
        return {n: self.space[n][self.position[n]] for n in self.names}

    def _observation(self) -> np.ndarray:
        where = [self.position[n] / max(1, len(self.space[n]) - 1) for n in self.names]
        return np.array(where + [self.current, self.best, self.steps / self.episode_steps],
                        dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = dict(self.start)
        self.steps = 0
        self.current = self.best = self.objective(self.params())
        return self._observation(), {"params": self.params()}

    def step(self, action):
        action = int(action)
        if action < 2 * len(self.names):
            name = self.names[action // 2]
            move = 1 if action % 2 else -1
            self.position[name] = int(np.clip(self.position[name] + move, 0,
                                              len(self.space[name]) - 1))
        skill = self.objective(self.params())
        reward = skill - self.current
        self.current, self.best = skill, max(self.best, skill)
        self.steps += 1
        truncated = self.steps >= self.episode_steps
        return self._observation(), float(reward), False, truncated, {"params": self.params()}
