"""SPM's three-arm maze (T-maze) as a world.

The task and the agent's model are those of :func:`actinf.models.tmaze.tmaze_model`
(``DEM_demo_MDP_X.m``): factors location (centre, left arm, right arm, cue) and
context (reward left, reward right); modalities where (with the cue's
direction at the cue location) and reward (nothing, reward, shock); ``T = 3``.

The process is the model's own probability arrays ``A`` and ``B``, except the
initial state: the rat always starts at the centre, and the context is
"reward left" with probability ``context_probability``. (The model's prior
``D`` is the normalised counts ``d`` that the agent learns.)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from ..models.tmaze import CENTRE, TMAZE_LABELS, tmaze_model
from .base import CategoricalWorld, check_probability, process_of

__all__ = ["TmazeWorld"]


class TmazeWorld(CategoricalWorld):
    """The T-maze world (see the module docstring).

    Args:
      reward_probability: probability of reward in the baited arm (SPM: 0.98).
      reward_preference: log preference for reward, minus that of shock (SPM: 6).
      exposure_cost: minus the log preference for seeing the centre (SPM: 1).
      context_counts: the agent's initial counts ``d`` over the context (SPM: 2, 2).
      context_probability: probability that a trial's context is "reward left" (0.5).

    Example::

        world = TmazeWorld()
        state, obs = world.reset(jax.random.key(0))            # obs [2]: centre, nothing
        state, obs = world.step(jax.random.key(1), state, jnp.array([3, 0]))   # go to the cue
    """

    def __init__(
        self,
        *,
        reward_probability: float = 0.98,
        reward_preference: float = 6.0,
        exposure_cost: float = 1.0,
        context_counts: Sequence[float] = (2.0, 2.0),
        context_probability: float = 0.5,
    ):
        p = check_probability("context_probability", context_probability)
        model = tmaze_model(
            reward_probability=reward_probability,
            reward_preference=reward_preference,
            exposure_cost=exposure_cost,
            context_counts=context_counts,
        )
        start = jnp.zeros((4,)).at[CENTRE].set(1.0)
        self.process = process_of(model, initial=(start, [p, 1.0 - p]))
        self.model = model
        self.labels = TMAZE_LABELS
