"""A DQN agent on Keras 3: replay buffer, target network, epsilon-greedy.

keras-rl2 cannot be used (archived; it does not import on TensorFlow >= 2.13 and turns
eager execution off for the whole process), so this is the keras.io "Deep Q-Learning"
recipe written small: an MLP Q-network, a periodically synchronised copy as the target,
uniform replay, Huber loss, epsilon decaying linearly to its floor.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from stockpred.runtime import keras_seeded, native_stderr_to_log


@dataclass
class DQNSettings:
    hidden: int = 32
    learning_rate: float = 1e-3
    gamma: float = 0.9
    epsilon_start: float = 1.0
    epsilon_end: float = 0.1
    epsilon_decay_steps: int = 200
    buffer: int = 2000
    batch_size: int = 32
    warmup: int = 32
    target_every: int = 20


class DQNAgent:
    def __init__(self, observations: int, actions: int, settings: DQNSettings | None = None,
                 seed: int = 42):
        self.settings = settings or DQNSettings()
        self.actions = actions
        self.rng = np.random.default_rng(seed)
        keras = keras_seeded(seed)
        with native_stderr_to_log():
            self.q = self._network(keras, observations, actions)
            self.target = self._network(keras, observations, actions)
            self.target.set_weights(self.q.get_weights())
        self.optimizer = keras.optimizers.Adam(self.settings.learning_rate)
        self.loss = keras.losses.Huber()
        self.memory: deque = deque(maxlen=self.settings.buffer)
        self.steps = 0
        self._compiled = None

    def _network(self, keras, observations, actions):
        return keras.Sequential([keras.Input(shape=(observations,)),
                                 keras.layers.Dense(self.settings.hidden, activation="relu"),
                                 keras.layers.Dense(self.settings.hidden, activation="relu"),
                                 keras.layers.Dense(actions)])

    @property
    def epsilon(self) -> float:
        s = self.settings
        share = min(1.0, self.steps / max(1, s.epsilon_decay_steps))
        return s.epsilon_start + share * (s.epsilon_end - s.epsilon_start)

    def greedy(self, observation: np.ndarray) -> int:
        values = self.q(observation[None, :].astype("float32"), training=False)
        return int(np.argmax(np.asarray(values)[0]))

    def act(self, observation: np.ndarray) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.actions))
        return self.greedy(observation)

    def remember(self, observation, action, reward, next_observation, done) -> None:
        self.memory.append((observation, action, reward, next_observation, float(done)))
        self.steps += 1
        if len(self.memory) >= self.settings.warmup:
            self._learn()
        if self.steps % self.settings.target_every == 0:
            self.target.set_weights(self.q.get_weights())

    def _learn(self) -> None:
        s = self.settings
        picks = self.rng.integers(len(self.memory), size=s.batch_size)
        batch = [self.memory[i] for i in picks]
        obs, actions, rewards, nxt, done = (np.array(x) for x in zip(*batch))
        self._step(obs.astype("float32"), actions.astype("int32"), rewards.astype("float32"),
                   nxt.astype("float32"), done.astype("float32"))

    def _update(self, obs, actions, rewards, nxt, done):
        """One gradient step of the Q-network towards r + gamma max Q_target(s')."""
        import tensorflow as tf

        future = tf.reduce_max(self.target(nxt, training=False), axis=1)
        targets = rewards + self.settings.gamma * future * (1 - done)
        mask = tf.one_hot(actions, self.actions)
        with tf.GradientTape() as tape:
            chosen = tf.reduce_sum(self.q(obs, training=True) * mask, axis=1)
            loss = self.loss(targets, chosen)
        grads = tape.gradient(loss, self.q.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.q.trainable_variables))

    @property
    def _step(self):
        """``_update`` traced once into a TensorFlow graph: run eagerly, each step's Python
        and op dispatch cost many times the arithmetic of these small networks."""
        if self._compiled is None:
            import tensorflow as tf

            self._compiled = tf.function(self._update)
        return self._compiled
