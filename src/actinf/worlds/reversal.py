"""Reversal learning: two options, the rewarded one switches after a given trial.

The task
--------
In each trial the agent chooses one of two options. One of them (the
*context*) pays with probability ``reward_probability``, the other with
``1 - reward_probability``. Option 0 is the rewarded one up to trial
``switch_trial - 1`` (0-based); from trial ``switch_trial`` on it is option 1.
A trial has ``T = 2`` time steps (start, then the choice). The world keeps the
trial number in its state (:attr:`WorldState.trial`), advanced by
:meth:`ReversalWorld.next_trial`.

The generative model
--------------------
Factors: ``context`` (2: option 0 rewarded, option 1 rewarded; uncontrolled)
and ``choice`` (3: start, option 0, option 1; action ``u`` goes to state ``u``).
Modalities: ``reward`` (3: none, lose, win; the chosen option pays as above)
and ``behaviour`` (3: the choice state). Preferences: ``reward_preference``
for a win, ``-loss_aversion`` for a loss. Policies (``V`` ``[1, 2, 2]``):
choose option 0, choose option 1.

Within a trial the context is fixed, so nothing in one trial tells the agent
about the next, except what it *learns*: its prior over the context has
Dirichlet counts ``d`` (``context_counts``), accumulated from the posterior
after each trial (``d <- d + q(s_context at t = 0)``). Learning ``d`` is what
lets the agent prefer the option that has paid, and, after the switch, come to
prefer the other one; small initial counts (and forgetting, where the learning
rule has it) make the reversal quicker, because the counts accumulated before
the switch must be outweighed. Learning a transition ``b`` of the context
across trials is the alternative that expects reversals; this model learns ``d``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..model import GenerativeModel, generative_model
from ..models.tmaze import ModelLabels
from .base import World, WorldState, check_probability, process_of, sample_outcomes

__all__ = ["REVERSAL_LABELS", "ReversalWorld", "reversal_model"]

START, OPTION_0, OPTION_1 = 0, 1, 2
NO_REWARD, LOSE, WIN = 0, 1, 2
HORIZON = 2

REVERSAL_LABELS = ModelLabels(
    factors=("context", "choice"),
    states=(("option 0 rewarded", "option 1 rewarded"), ("start", "option 0", "option 1")),
    modalities=("reward", "behaviour"),
    outcomes=(("none", "lose", "win"), ("start", "option 0", "option 1")),
    actions=(("none",), ("start", "option 0", "option 1")),
)


def reversal_model(
    *,
    reward_probability: float = 0.8,
    reward_preference: float = 4.0,
    loss_aversion: float = 1.0,
    context_counts: Sequence[float] = (1.0, 1.0),
) -> GenerativeModel:
    """The agent's model of the reversal task (see the module docstring).

    Args:
      reward_probability: probability that the rewarded option pays (0.8).
      reward_preference: log preference for a win (4).
      loss_aversion: minus the log preference for a loss (1).
      context_counts: initial counts ``d`` of the context prior, learned (1, 1).
    """
    p = check_probability("reward_probability", reward_probability)
    d = np.asarray(context_counts, dtype=float)
    if d.shape != (2,):
        raise ValueError(f"context_counts must have 2 entries, got shape {list(d.shape)}")
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError(f"context_counts must be finite and positive, got {context_counts}")
    reward = np.zeros((3, 2, 3))
    reward[NO_REWARD, :, START] = 1.0
    for ctx in range(2):
        for option in (OPTION_0, OPTION_1):
            win = p if option - 1 == ctx else 1.0 - p
            reward[WIN, ctx, option], reward[LOSE, ctx, option] = win, 1.0 - win
    behaviour = np.zeros((3, 2, 3))
    for s in range(3):
        behaviour[s, :, s] = 1.0
    choice = np.zeros((3, 3, 3))
    for u in range(3):
        choice[u, :, u] = 1.0
    c_reward = np.zeros((3, HORIZON))
    c_reward[WIN], c_reward[LOSE] = float(reward_preference), -float(loss_aversion)
    policies = np.zeros((1, 2, 2), dtype=np.int32)
    policies[0, :, 1] = [OPTION_0, OPTION_1]
    start = np.eye(3)[START]
    return generative_model(
        [reward, behaviour],
        [np.eye(2)[:, :, None], choice],
        [c_reward, np.zeros((3, HORIZON))],
        [d / d.sum(), start],
        policies=policies,
        initial_counts=[d, start],
    )


class ReversalWorld(World):
    """The reversal task as a world (see the module docstring).

    Attributes:
      process: the sampled arrays (the model's ``A`` and ``B``).
      model: the agent's model, :func:`reversal_model`.
      labels: :data:`REVERSAL_LABELS`.
      switch_trial: first (0-based) trial in which option 1 is the rewarded one.

    Example::

        world = ReversalWorld(switch_trial=10)
        state, obs = world.reset(jax.random.key(0))                    # trial 0
        state, obs = world.step(jax.random.key(1), state, jnp.array([0, 1]))   # choose option 0
        state, obs = world.next_trial(jax.random.key(2), state)        # trial 1
    """

    process: GenerativeModel
    model: GenerativeModel
    labels: ModelLabels = eqx.field(static=True)
    switch_trial: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        switch_trial: int = 16,
        reward_probability: float = 0.8,
        reward_preference: float = 4.0,
        loss_aversion: float = 1.0,
        context_counts: Sequence[float] = (1.0, 1.0),
    ):
        if isinstance(switch_trial, bool) or int(switch_trial) != switch_trial or switch_trial < 0:
            raise ValueError(f"switch_trial must be a non-negative integer, got {switch_trial}")
        model = reversal_model(
            reward_probability=reward_probability,
            reward_preference=reward_preference,
            loss_aversion=loss_aversion,
            context_counts=context_counts,
        )
        self.process = process_of(model)
        self.model = model
        self.labels = REVERSAL_LABELS
        self.switch_trial = int(switch_trial)

    def _start(self, rng_key: jax.Array, trial: jax.Array) -> tuple[WorldState, jax.Array]:
        context = (trial >= self.switch_trial).astype(jnp.int32)
        states = jnp.stack([context, jnp.asarray(START, jnp.int32)])
        observation = sample_outcomes(rng_key, self.process.likelihood, states)
        return WorldState(states, jnp.zeros((), jnp.int32), trial), observation

    def reset(self, rng_key: jax.Array) -> tuple[WorldState, jax.Array]:
        """Trial 0 at the start state; option 0 rewarded (unless ``switch_trial`` is 0)."""
        return self._start(rng_key, jnp.zeros((), jnp.int32))

    def next_trial(self, rng_key: jax.Array, state: WorldState) -> tuple[WorldState, jax.Array]:
        """Trial ``state.trial + 1``; the context is option 1 from ``switch_trial`` on."""
        return self._start(rng_key, state.trial + 1)

    def step(self, rng_key: jax.Array, state: WorldState, action: jax.Array) -> tuple[WorldState, jax.Array]:
        """Go to the chosen option (``action[1]``); the chosen option pays or not."""
        action = jnp.asarray(action, jnp.int32)
        choice = self.process.transition[1][:, state.states[1], action[1]].argmax().astype(jnp.int32)
        states = jnp.stack([state.states[0], choice])
        observation = sample_outcomes(rng_key, self.process.likelihood, states)
        return WorldState(states, state.time + 1, state.trial), observation
