"""Episodes and populations: an agent acting in a world, compiled once.

:func:`rollout` runs ``trials`` trials of ``T`` time steps (the agent's
horizon) in one ``jax.lax.scan``: at each time the agent observes, plans and
acts (:meth:`~actinf.agent.Agent.step`), the world moves
(:meth:`~actinf.worlds.World.step`); at the end of a trial the agent learns
(:meth:`~actinf.agent.Agent.next_trial`) and the world starts the next trial
(:meth:`~actinf.worlds.World.next_trial`). Nothing runs in Python between
steps; a second call with the same shapes does not trace or compile again.

:func:`rollout_batch` runs ``num_agents`` independent agents, each in its own
copy of the world, through ``jax.vmap``.

Long runs go in chunks: :func:`start` resets agent and world, and each call
returns its :attr:`Trajectory.end` to pass as ``start`` to the next, which
continues exactly where the last stopped (same learned counts, same world)::

    carry = start(key, agent, world)
    for chunk in range(10):
        key, sub = jax.random.split(key)
        traj = rollout(sub, agent, world, trials=8, start=carry)
        carry = traj.end
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .agent import Agent, AgentState, StepInfo
from .worlds.base import World, WorldState

__all__ = ["Carry", "Trajectory", "compiled_rollout", "rollout", "rollout_batch", "start", "start_batch"]


class Carry(NamedTuple):
    """Where a run stands between trials: the agent's and the world's states and
    the observation that opens the next trial (int ``[G]``)."""

    agent: AgentState
    world: WorldState
    observation: jax.Array


class Trajectory(NamedTuple):
    """A run of ``N`` trials of ``T`` steps (leading axes ``[N, T]``; a batch adds ``[K]`` first).

    Attributes:
      observations: int ``[N, T, G]``.
      states: int ``[N, T, F]``, the world's true hidden states.
      actions: int ``[N, T-1, F]``, the actions taken.
      info: :class:`~actinf.agent.StepInfo` with leading ``[N, T]`` axes (beliefs,
        policy posterior, expected free energy and its terms, free energies,
        precision, action probabilities).
      utility: ``[N, T]``, :math:`\\sum_g C_g[o_{g,t}, t]`, the world's log preference
        for what was observed (the reward of active inference).
      end: the :class:`Carry` after the last trial (the agent has learned from
        it; pass it as ``start`` to continue).
    """

    observations: jax.Array
    states: jax.Array
    actions: jax.Array
    info: StepInfo
    utility: jax.Array
    end: Carry


def _check(agent: Agent, world: World) -> None:
    m, w = agent.model, world.model
    for what in ("num_states", "num_controls", "num_outcomes"):
        if getattr(m, what) != getattr(w, what):
            raise ValueError(
                f"the agent's model and the world disagree on {what}: "
                f"{getattr(m, what)} (agent) and {getattr(w, what)} (world)"
            )
    if agent.horizon != world.trial_length:
        raise ValueError(
            f"the agent's trials have {agent.horizon} time steps and the world's {world.trial_length}: "
            f"build the agent with trial_length={world.trial_length}"
        )


def _start(rng_key: jax.Array, agent: Agent, world: World) -> Carry:
    world_state, observation = world.reset(rng_key)
    return Carry(agent.init(rng_key), world_state, observation)


def _utility(world: World, observation: jax.Array, t) -> jax.Array:
    last = world.model.preference[0].shape[1] - 1
    return sum(c[observation[g], jnp.minimum(t, last)] for g, c in enumerate(world.model.preference))


def _rollout(rng_key: jax.Array, agent: Agent, world: World, trials: int, carry: Carry) -> Trajectory:
    T = agent.horizon

    def move(c, xs):
        # one time step; the world moves after every step but the trial's last
        k_agent, k_world, t = xs
        agent_state, world_state, obs = c
        last = t == T - 1
        agent_state, info = agent.step(k_agent, agent_state, obs)
        world_next, obs_next = world.step(k_world, world_state, info.action)
        world_next = jax.tree.map(lambda a, b: jnp.where(last, a, b), world_state, world_next)
        obs_next = jnp.where(last, obs, obs_next)
        record = (obs, world_state.states, info.action, info, _utility(world, obs, t))
        return (agent_state, world_next, obs_next), record

    def trial(c: Carry, keys):
        # keys [2T + 1]: the agent's and the world's key at each time, then the next
        # trial's (the world's key at the last time is not used)
        k_agent, k_world, k_next = keys[:T], keys[T : 2 * T], keys[2 * T]
        (agent_state, world_state, obs), rec = jax.lax.scan(move, tuple(c), (k_agent, k_world, jnp.arange(T)))
        obs_all, states, actions, infos, utility = rec
        agent_state = agent.next_trial(agent_state)
        world_state, obs = world.next_trial(k_next, world_state)
        return Carry(agent_state, world_state, obs), (obs_all, states, actions[: T - 1], infos, utility)

    # every key of every trial from one split, before the loop: each call site of JAX's
    # Threefry is compiled on its own (about 70 ms on CPU, more under vmap)
    keys = jax.random.split(rng_key, (trials, 2 * T + 1))
    end, (observations, states, actions, info, utility) = jax.lax.scan(trial, carry, keys)
    return Trajectory(observations, states, actions, info, utility, end)


@eqx.filter_jit
def start(rng_key: jax.Array, agent: Agent, world: World) -> Carry:
    """Reset the world and the agent: the :class:`Carry` before the first trial."""
    return _start(rng_key, agent, world)


_start_jit = start


def _carry_axes(agent: Agent) -> Carry:
    """Batch axes of a batched :class:`Carry`: without learning, the model and the
    arrays derived from it are the same for every agent and are kept once
    (no ``[K]`` axis), so that a population shares them (one matrix product
    for all agents instead of one per agent)."""
    shared = None if agent.learning is None else 0
    fields = dict.fromkeys(AgentState._fields, 0)
    fields.update(model=shared, arrays=shared, prior_model=shared)
    return Carry(AgentState(**fields), 0, 0)


def _start_batch(rng_key: jax.Array, agent: Agent, world: World, num_agents: int) -> Carry:
    keys = jax.random.split(rng_key, num_agents)
    return jax.vmap(lambda k: _start(k, agent, world), out_axes=_carry_axes(agent))(keys)


def _rollout_batch(rng_key, agent: Agent, world: World, trials: int, carry: Carry) -> Trajectory:
    # the same keys as _start_batch's for the same rng_key
    keys = jax.random.split(rng_key, jax.tree.leaves(carry.observation)[0].shape[0])
    axes = _carry_axes(agent)
    out = Trajectory(0, 0, 0, 0, 0, axes)
    return jax.vmap(lambda k, c: _rollout(k, agent, world, trials, c), in_axes=(0, axes), out_axes=out)(
        keys, carry
    )


@eqx.filter_jit
def start_batch(rng_key: jax.Array, agent: Agent, world: World, num_agents: int) -> Carry:
    """:func:`start` for ``num_agents`` independent agents and worlds (leading axis ``[K]``).

    Agents that do not learn (``learning=None``) share one copy of their model:
    ``carry.agent.model``, ``.arrays`` and ``.prior_model`` have no ``[K]`` axis.
    """
    return _start_batch(rng_key, agent, world, num_agents)


@eqx.filter_jit
def _rollout_jit(rng_key, agent, world, trials, carry):
    return _rollout(rng_key, agent, world, trials, carry)


@eqx.filter_jit
def _rollout_batch_jit(rng_key, agent, world, trials, carry):
    return _rollout_batch(rng_key, agent, world, trials, carry)


def rollout(
    rng_key: jax.Array, agent: Agent, world: World, trials: int = 1, *, start: Carry | None = None
) -> Trajectory:
    """Run ``trials`` trials of one agent in ``world`` (``trials * T`` steps), compiled once.

    Args:
      rng_key: key for the world's and the agent's sampling.
      agent: the :class:`~actinf.agent.Agent`; its model must have the world's
        states, controls, outcomes and horizon.
      world: the :class:`~actinf.worlds.World`.
      trials: number of trials (static: a new value compiles again).
      start: where to continue from (a previous :attr:`Trajectory.end`); default
        a fresh start from ``rng_key``.

    Returns:
      the :class:`Trajectory`.
    """
    _check(agent, world)
    if start is None:
        start = _start_jit(rng_key, agent, world)
    return _rollout_jit(rng_key, agent, world, int(trials), start)


def rollout_batch(
    rng_key: jax.Array,
    agent: Agent,
    world: World,
    trials: int = 1,
    num_agents: int | None = None,
    *,
    start: Carry | None = None,
) -> Trajectory:
    """:func:`rollout` for independent agents, each in its own world (``jax.vmap``).

    Give ``num_agents`` for a fresh start, or a batched ``start`` from
    :func:`start_batch` or a previous batch's :attr:`Trajectory.end`. Every
    array of the result has a leading ``[K]`` axis, except the shared model of
    agents that do not learn in ``end`` (see :func:`start_batch`).
    """
    _check(agent, world)
    if start is None:
        if num_agents is None:
            raise ValueError("rollout_batch needs num_agents or a batched start")
        start = start_batch(rng_key, agent, world, int(num_agents))
    return _rollout_batch_jit(rng_key, agent, world, int(trials), start)


def compiled_rollout(agent: Agent, world: World, trials: int = 1, num_agents: int | None = None):
    """A compiled function ``rng_key -> Trajectory`` for a fixed agent and world.

    The same run as :func:`rollout` (or :func:`rollout_batch` with
    ``num_agents``) from a fresh start, the same numbers for the same key, but the agent and the world are
    constants of one compiled program, start included: a call costs one
    dispatch with nothing to flatten, which matters for short episodes of small
    models (tens of microseconds instead of about half a millisecond). Build it
    once and call it with new keys; a new agent or world needs a new function.

    Example::

        episode = compiled_rollout(agent, world, trials=1, num_agents=256)
        traj = episode(jax.random.key(0))       # compiles
        traj = episode(jax.random.key(1))       # runs
    """
    _check(agent, world)
    trials = int(trials)
    if num_agents is None:

        def run(rng_key):
            return _rollout(rng_key, agent, world, trials, _start(rng_key, agent, world))

    else:
        K = int(num_agents)

        def run(rng_key):
            return _rollout_batch(rng_key, agent, world, trials, _start_batch(rng_key, agent, world, K))

    return jax.jit(run)
