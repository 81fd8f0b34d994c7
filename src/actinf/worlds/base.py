"""The world protocol: a generative process as a pair of pure functions.

A *world* is the environment an active inference agent acts in: SPM's
*generative process*, as opposed to the agent's *generative model*. It is a
typed record (an :class:`equinox.Module`) with

* ``reset(rng_key) -> (state, observation)``: the first time step of a trial;
* ``step(rng_key, state, action) -> (state, observation)``: one move;
* ``next_trial(rng_key, state) -> (state, observation)``: the first time step of
  the next trial (worlds whose trials depend on history, such as reversal
  learning, keep a trial counter in the state);
* ``model``: the :class:`~actinf.GenerativeModel` an agent would use for it;
* ``trial_length``: time steps per trial (the model's horizon ``V.shape[0] + 1``
  unless the world's trials are longer than its policies, as in a large grid);
* ``labels``: the :class:`~actinf.models.tmaze.ModelLabels` of that model.

An ``observation`` is an int array ``[G]`` (one outcome per modality of
``model``), an ``action`` an int array ``[F]`` (one control per factor). The
state is a :class:`WorldState`. Nothing mutates: every call returns a new state.

The categorical worlds (:class:`CategoricalWorld`) sample from their own
probability arrays, the *process* (itself a validated
:class:`~actinf.GenerativeModel`; only ``A``, ``B`` and ``D`` are used)::

    s_f(0) ~ D_f                        (reset)
    s_f(t+1) ~ B_f[:, s_f(t), u_f(t)]    (step)
    o_g(t) ~ A_g[:, s_1(t), ..., s_F(t)]

The process may differ from the agent's model: the agent may hold Dirichlet
counts to learn, or start with wrong beliefs. Everything is written for one
world; many independent worlds are ``jax.vmap`` over rng keys::

    keys = jax.random.split(jax.random.key(0), 100)
    states, observations = jax.vmap(world.reset)(keys)   # observations [100, G]

Actions are not checked under ``jit`` (an out-of-range control is clipped to
the last one by JAX's indexing): give controls in ``range(model.num_controls[f])``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..maths import first_above, inverse_cdf
from ..model import GenerativeModel
from ..models.tmaze import ModelLabels

__all__ = [
    "CategoricalWorld",
    "World",
    "WorldState",
    "check_probability",
    "process_of",
    "sample_outcomes",
    "sample_states",
]


def check_probability(name: str, value: float) -> float:
    """``value`` as a float, or a ``ValueError`` naming ``name`` if it is outside [0, 1]."""
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return v


def process_of(model: GenerativeModel, initial: tuple | None = None) -> GenerativeModel:
    """The generative process behind an agent's ``model``: its probability arrays,
    without the counts the agent learns, optionally with another initial prior ``D``."""
    changes = {"initial_counts": None}
    if initial is not None:
        changes["initial"] = tuple(jnp.asarray(d) for d in initial)
    return dataclasses.replace(model, **changes)


class WorldState(NamedTuple):
    """The hidden state of a world.

    Attributes:
      states: int ``[F]``, the true hidden state of each factor.
      time: int scalar, the time step within the trial (0 after a reset).
      trial: int scalar, the trial number (0 after :meth:`World.reset`, then
        incremented by :meth:`World.next_trial`).
    """

    states: jax.Array
    time: jax.Array
    trial: jax.Array


class World(eqx.Module):
    """The protocol every world follows (see the module docstring)."""

    model: eqx.AbstractVar[GenerativeModel]
    labels: eqx.AbstractVar[ModelLabels]

    @abc.abstractmethod
    def reset(self, rng_key: jax.Array) -> tuple[WorldState, jax.Array]:
        """Start the first trial: ``(state, observation [G])``."""

    @abc.abstractmethod
    def step(self, rng_key: jax.Array, state: WorldState, action: jax.Array) -> tuple[WorldState, jax.Array]:
        """Apply ``action`` (int ``[F]``): ``(next state, observation [G])``."""

    @property
    def trial_length(self) -> int:
        """Time steps (outcomes) per trial: the model's horizon unless the world says otherwise."""
        return self.model.horizon

    def next_trial(self, rng_key: jax.Array, state: WorldState) -> tuple[WorldState, jax.Array]:
        """Start the trial after ``state``'s: a reset that increments the trial counter."""
        new, observation = self.reset(rng_key)
        return new._replace(trial=state.trial + 1), observation


# A draw is :func:`~actinf.maths.inverse_cdf` of a column of A or B. The cumulative
# sums are taken over the whole array and laid out as rows, and the row of the
# current state (and action) is read: inside a rollout the arrays are fixed, so XLA
# hoists the sums out of the time loop, and a step reads one contiguous row instead
# of gathering a strided column and summing it (on the 10x10 grid with 256 agents
# that was 15 % of a step). The draws are the same.


def _draw_outcomes(uniforms: jax.Array, likelihood: tuple, states: jax.Array) -> jax.Array:
    index = tuple(states[f] for f in range(states.shape[0]))
    return jnp.stack(
        [
            first_above(jnp.moveaxis(jnp.cumsum(a, axis=0), 0, -1)[index], u)  # rows [Ns..., No]
            for u, a in zip(uniforms, likelihood, strict=True)
        ]
    ).astype(jnp.int32)


def _draw_states(uniforms: jax.Array, transition: tuple, states: jax.Array, action: jax.Array) -> jax.Array:
    return jnp.stack(
        [
            first_above(jnp.transpose(jnp.cumsum(b, axis=0), (1, 2, 0))[states[f], action[f]], u)
            for f, (u, b) in enumerate(zip(uniforms, transition, strict=True))
        ]
    ).astype(jnp.int32)


def sample_outcomes(rng_key: jax.Array, likelihood: tuple, states: jax.Array) -> jax.Array:
    """``o_g ~ A_g[:, s_1, ..., s_F]`` for every modality: int ``[G]`` (one uniform draw per modality,
    all from one call of the generator)."""
    uniforms = jax.random.uniform(rng_key, (len(likelihood),), dtype=likelihood[0].dtype)
    return _draw_outcomes(uniforms, likelihood, states)


def sample_states(rng_key: jax.Array, transition: tuple, states: jax.Array, action: jax.Array) -> jax.Array:
    """``s_f' ~ B_f[:, s_f, u_f]`` for every factor: int ``[F]`` (one call of the generator)."""
    uniforms = jax.random.uniform(rng_key, (len(transition),), dtype=transition[0].dtype)
    return _draw_states(uniforms, transition, states, action)


class CategoricalWorld(World):
    """A world that samples its states and outcomes from probability arrays.

    Attributes:
      process: the generative process; its ``likelihood`` (A), ``transition``
        (B) and ``initial`` (D) are sampled (its preferences and policies are unused).
      model: the agent's generative model (same factors, states, controls and outcomes).
      labels: names of the factors, states, modalities, outcomes and actions.
    """

    process: GenerativeModel
    model: GenerativeModel
    labels: ModelLabels = eqx.field(static=True)

    def __check_init__(self):
        p, m = self.process, self.model
        for what in ("num_states", "num_controls", "num_outcomes"):
            if getattr(p, what) != getattr(m, what):
                raise ValueError(
                    f"process and model disagree on {what}: {getattr(p, what)} and {getattr(m, what)}"
                )

    def reset(self, rng_key: jax.Array) -> tuple[WorldState, jax.Array]:
        """``s_f ~ D_f``, ``o_g ~ A_g[:, s]``, at time 0 of trial 0."""
        # every uniform of the reset from one call of the generator, as in step: each
        # call site of JAX's Threefry is compiled on its own (about 70 ms on CPU)
        initial, likelihood = self.process.initial, self.process.likelihood
        F = len(initial)
        uniforms = jax.random.uniform(rng_key, (F + len(likelihood),), dtype=initial[0].dtype)
        states = jnp.stack([inverse_cdf(d, u) for d, u in zip(initial, uniforms[:F], strict=True)])
        states = states.astype(jnp.int32)
        observation = _draw_outcomes(uniforms[F:], likelihood, states)
        zero = jnp.zeros((), jnp.int32)
        return WorldState(states, zero, zero), observation

    def step(self, rng_key: jax.Array, state: WorldState, action: jax.Array) -> tuple[WorldState, jax.Array]:
        """``s_f' ~ B_f[:, s_f, u_f]``, ``o_g ~ A_g[:, s']``; the time advances by one."""
        # every uniform of the step from one call of the generator: each call site of
        # JAX's Threefry costs compile time (about 70 ms on CPU) and run time
        F = len(self.process.transition)
        dtype = self.process.transition[0].dtype
        uniforms = jax.random.uniform(rng_key, (F + len(self.process.likelihood),), dtype=dtype)
        action = jnp.asarray(action, jnp.int32)
        states = _draw_states(uniforms[:F], self.process.transition, state.states, action)
        observation = _draw_outcomes(uniforms[F:], self.process.likelihood, states)
        return WorldState(states, state.time + 1, state.trial), observation
