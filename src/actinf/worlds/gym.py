"""Gymnasium adapters, both ways: actinf worlds as Gymnasium environments, and
actinf agents in Gymnasium environments.

This module is the only part of actinf that imports :mod:`gymnasium` (the
``gym`` extra: ``pip install actinf[gym]``); ``import actinf`` and
``import actinf.worlds`` never do.

A world as an environment
-------------------------
:class:`WorldEnv` wraps a :class:`~actinf.worlds.World`. An episode is one
trial of the world: ``reset`` is its first time step, each ``step`` one move,
and the episode *terminates* after ``T - 1`` moves (``T = world.trial_length``).
The reward of a step is the *utility* of active inference, the log preference
of the agent's model for the outcomes just observed, summed over modalities::

    reward(t) = sum_g C_g[o_g(t), t]        (C = world.model.preference; its last column
                                            for times beyond it)

at the time step ``t = 1, ..., T - 1`` reached by the move. (The first
observation's preference, at ``t = 0``, is not a reward: Gymnasium's ``reset``
returns none.) An active inference agent does not maximise this sum as such:
it minimises expected free energy, whose *risk* term is the divergence of its
predicted outcomes from ``softmax(C)``; the reward is what a reinforcement
learner sees of the same preferences.

An agent in an environment
--------------------------
:func:`run_gymnasium` runs any agent following the protocol below in any
Gymnasium environment whose observations and actions map to outcome and
control indices (``Discrete`` and ``MultiDiscrete`` spaces by default; other
spaces through ``observe`` and ``act``)::

    agent.model                                   # GenerativeModel (num_outcomes, num_controls, horizon T)
    agent.init(rng_key) -> state                  # beliefs at time 0 of a first trial
    agent.step(rng_key, state, observation [G]) -> (state, info)   # info.action: int [F]
    agent.next_trial(state) -> state              # learning, then fresh beliefs for the next trial

An agent's *trial* has ``T`` time steps (``T - 1`` actions); a Gymnasium
*episode* may be longer or shorter. When a trial is over and the episode is
not, the agent takes in the new observation as the last time step of the trial,
calls ``next_trial`` and starts a new trial with that same observation as its
time 0. When the episode ends (terminated, truncated or ``max_steps``), the
agent takes in the final observation and calls ``next_trial``, whatever the
time step of its trial: an episode's end ends the trial. The agent's state
(what it has learned) carries over from one episode to the next.

:func:`frozenlake_model` builds a generative model for Gymnasium's
``FrozenLake-v1`` from the environment's own transition table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import gymnasium
import jax
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.utils import seeding

from ..model import GenerativeModel, generative_model
from . import make_world
from .base import World

__all__ = ["GymnasiumRun", "WorldEnv", "frozenlake_model", "make_env", "run_gymnasium"]


# ----------------------------------------------------------------------------
# an actinf world as a Gymnasium environment
# ----------------------------------------------------------------------------


@eqx.filter_jit
def _world_reset(world: World, seed: jax.Array):
    return world.reset(jax.random.key(seed))


@eqx.filter_jit
def _world_step(world: World, seed: jax.Array, state, action: jax.Array):
    return world.step(jax.random.key(seed), state, action)


def _space(sizes: tuple[int, ...]) -> spaces.Space:
    """``Discrete(n)`` for one size, ``MultiDiscrete(sizes)`` for several."""
    return spaces.Discrete(sizes[0]) if len(sizes) == 1 else spaces.MultiDiscrete(list(sizes))


class WorldEnv(gymnasium.Env):
    """An actinf world as a Gymnasium environment (see the module docstring).

    Args:
      world: a :class:`~actinf.worlds.World` (``world.trial_length`` of 2 or more).
      seed: seeds the environment's random generator (as ``reset(seed=...)`` does);
        None draws fresh entropy at the first reset.
      render_mode: None, or ``"ansi"``: :meth:`render` returns a line naming the
        observed outcomes (``world.labels``).

    Spaces:
      observation_space: ``Discrete(No)`` for a model with one modality, else
        ``MultiDiscrete(num_outcomes)``: an observation is an int, or an int64 array ``[G]``.
      action_space: ``Discrete(Nu)`` for one factor, else ``MultiDiscrete(num_controls)``:
        an action is an int, or an int array ``[F]`` (one control per factor).

    ``step`` returns ``(observation, reward, terminated, truncated, info)``: the
    reward is ``sum_g C_g[o_g, t]``, ``terminated`` is True after ``T - 1`` moves,
    ``truncated`` is always False, and ``info`` holds ``"states"`` (the true
    hidden states, a list of ``F`` ints) and ``"time"`` (the time step ``t``).
    ``reset`` returns the same ``info``. Each ``reset`` or ``step`` draws its
    JAX key from the environment's generator (``self.np_random``), so a seeded
    reset replays an episode exactly.

    Example::

        from actinf.worlds import TmazeWorld
        from actinf.worlds.gym import WorldEnv

        env = WorldEnv(TmazeWorld(), seed=0)
        obs, info = env.reset()                        # obs: int64 [2], centre and nothing
        obs, reward, terminated, truncated, info = env.step([3, 0])   # go to the cue
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, world: World, *, seed: int | None = None, render_mode: str | None = None):
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        model = world.model
        if world.trial_length < 2:
            raise ValueError(
                f"the world's trials have T = {world.trial_length} time steps: "
                "a trial needs T >= 2 (one move or more)"
            )
        self.world = world
        self.render_mode = render_mode
        self.horizon = world.trial_length
        self.observation_space = _space(model.num_outcomes)
        self.action_space = _space(model.num_controls)
        self._num_controls = np.asarray(model.num_controls)
        self._preference = tuple(np.asarray(c, np.float64) for c in model.preference)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._state = None  # the world's state, None before the first reset
        self._observation = None  # int64 [G]
        self._done = False

    def _key_seed(self) -> np.ndarray:
        return np.asarray(self.np_random.integers(0, 2**31 - 1), np.int32)

    def _observation_out(self, observation: np.ndarray):
        return int(observation[0]) if len(observation) == 1 else observation.copy()

    def _info(self) -> dict[str, Any]:
        return {
            "states": [int(s) for s in np.asarray(self._state.states)],
            "time": int(self._state.time),
        }

    def _action(self, action) -> np.ndarray:
        """``action`` as an int32 array ``[F]``, or a ``ValueError`` naming it and its range."""
        F = len(self._num_controls)
        a = np.asarray(action)
        ranges = ", ".join(f"0 to {n - 1}" for n in self._num_controls)
        expected = f"an int in {ranges}" if F == 1 else f"{F} ints in ({ranges})"
        if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"action {action!r} is not an integer action: expected {expected}")
        a = a.reshape(-1)
        if a.shape != (F,):
            raise ValueError(f"action {action!r} has {a.size} entries: expected {expected}")
        bad = (a < 0) | (a >= self._num_controls)
        if bad.any():
            f = int(np.argmax(bad))
            raise ValueError(
                f"action {action!r} is out of range: factor {f} has {self._num_controls[f]} controls "
                f"(0 to {self._num_controls[f] - 1}); expected {expected}"
            )
        return a.astype(np.int32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new trial (episode): ``(observation, info)``.

        Args:
          seed: reseeds the environment's generator (None: go on with it).
          options: unused (accepted for the Gymnasium API).
        """
        super().reset(seed=seed)
        self._state, observation = _world_reset(self.world, self._key_seed())
        self._observation = np.asarray(observation, np.int64)
        self._done = False
        return self._observation_out(self._observation), self._info()

    def step(self, action):
        """One move: ``(observation, reward, terminated, truncated, info)``.

        Args:
          action: an int (one factor) or an int array ``[F]``, control ``u_f`` in
            ``range(num_controls[f])``.

        Raises:
          ValueError: an action that is not in the action space.
          gymnasium.error.ResetNeeded: before the first ``reset`` or after the trial's end.
        """
        if self._state is None:
            raise ResetNeeded("call reset() before step(): the environment has no trial yet")
        if self._done:
            raise ResetNeeded(
                f"the trial is over (terminated after {self.horizon - 1} moves, T = {self.horizon}): "
                "call reset() to start a new one"
            )
        u = self._action(action)
        self._state, observation = _world_step(self.world, self._key_seed(), self._state, u)
        self._observation = np.asarray(observation, np.int64)
        t = int(self._state.time)
        reward = float(
            sum(
                c[o, min(t, c.shape[1] - 1)] for c, o in zip(self._preference, self._observation, strict=True)
            )
        )
        self._done = t >= self.horizon - 1
        return self._observation_out(self._observation), reward, self._done, False, self._info()

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: a line such as ``t=1  where: cue: left | reward: nothing``."""
        if self.render_mode is None:
            return None
        if self._state is None:
            raise ResetNeeded("call reset() before render(): there is nothing to show yet")
        labels = self.world.labels
        outcomes = " | ".join(
            f"{name}: {names[o]}"
            for name, names, o in zip(labels.modalities, labels.outcomes, self._observation, strict=True)
        )
        return f"t={int(self._state.time)}  {outcomes}"


def make_env(name: str, *, seed: int | None = None, render_mode: str | None = None, **options) -> WorldEnv:
    """The world ``name`` of :data:`actinf.worlds.WORLDS`, built with ``options``, as a :class:`WorldEnv`.

    Example::

        env = make_env("grid", height=4, width=4, seed=0)
    """
    return WorldEnv(make_world(name, **options), seed=seed, render_mode=render_mode)


# ----------------------------------------------------------------------------
# an actinf agent in a Gymnasium environment
# ----------------------------------------------------------------------------


@eqx.filter_jit
def _agent_init(agent, rng_key):
    return agent.init(rng_key)


@eqx.filter_jit
def _agent_step(agent, rng_key, count, state, observation):
    return agent.step(jax.random.fold_in(rng_key, count), state, observation)


@eqx.filter_jit
def _agent_next_trial(agent, state):
    return agent.next_trial(state)


class GymnasiumRun(NamedTuple):
    """What :func:`run_gymnasium` returns; one entry per episode in each list.

    Attributes:
      observations: per episode, int ``[L + 1, G]``: the outcomes the agent saw
        (after ``observe``), from the reset to the last step.
      actions: per episode, int ``[L, F]``: the agent's actions (before ``act``).
      rewards: per episode, float ``[L]``: the environment's rewards.
      total_reward: float ``[episodes]``, the sum of each episode's rewards.
      length: int ``[episodes]``, ``L``: the number of environment steps.
      terminated: bool ``[episodes]``: the environment said ``terminated``.
      truncated: bool ``[episodes]``: the environment said ``truncated``, or
        ``max_steps`` cut the episode.
      agent_state: the agent's state at the end (after the last ``next_trial``):
        pass it back as ``agent_state`` to go on learning.
    """

    observations: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[np.ndarray]
    total_reward: np.ndarray
    length: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    agent_state: Any


def _default_observe(space: spaces.Space, num_outcomes: tuple[int, ...]) -> Callable[[Any], np.ndarray]:
    G = len(num_outcomes)
    if isinstance(space, spaces.Discrete):
        if G != 1:
            raise ValueError(
                f"the observation space {space} gives one outcome but the model has {G} modalities: "
                "pass observe= to map observations to outcomes"
            )
        start = int(space.start)
        return lambda obs: np.atleast_1d(np.asarray(obs)) - start
    if isinstance(space, spaces.MultiDiscrete):
        if space.nvec.ndim != 1 or space.nvec.shape[0] != G:
            raise ValueError(
                f"the observation space {space} gives shape {list(space.nvec.shape)} but the model has "
                f"{G} modalities: pass observe= to map observations to outcomes"
            )
        start = np.asarray(space.start)
        return lambda obs: np.asarray(obs) - start
    raise ValueError(
        f"run_gymnasium maps Discrete and MultiDiscrete observation spaces, got {space}: "
        "pass observe= to map its observations to outcome indices"
    )


def _default_act(space: spaces.Space, num_controls: tuple[int, ...]) -> Callable[[np.ndarray], Any]:
    F = len(num_controls)
    if isinstance(space, spaces.Discrete):
        start = int(space.start)
        return lambda action: int(action[0]) + start
    if isinstance(space, spaces.MultiDiscrete):
        if space.nvec.ndim != 1 or space.nvec.shape[0] != F:
            raise ValueError(
                f"the action space {space} takes shape {list(space.nvec.shape)} but the model has "
                f"{F} factors: pass act= to map the agent's actions to the environment's"
            )
        start = np.asarray(space.start, np.int64)
        return lambda action: np.asarray(action, np.int64) + start
    raise ValueError(
        f"run_gymnasium maps Discrete and MultiDiscrete action spaces, got {space}: "
        "pass act= to map the agent's actions to the environment's"
    )


def _outcomes(observe, observation, num_outcomes: np.ndarray) -> np.ndarray:
    """``observe(observation)`` as int32 ``[G]``, or a ``ValueError`` naming the modality and value."""
    o = np.atleast_1d(np.asarray(observe(observation)))
    G = len(num_outcomes)
    if o.shape != (G,):
        raise ValueError(
            f"observation {observation!r} maps to shape {list(o.shape)}, but the model has {G} modalities"
        )
    if o.dtype == bool or not np.issubdtype(o.dtype, np.integer):
        raise ValueError(f"observation {observation!r} maps to {o!r}: outcome indices must be integers")
    bad = (o < 0) | (o >= num_outcomes)
    if bad.any():
        g = int(np.argmax(bad))
        raise ValueError(
            f"observation {observation!r} is out of range for the model: modality {g} has outcome "
            f"{int(o[g])}, but the model has {num_outcomes[g]} outcomes (0 to {num_outcomes[g] - 1})"
        )
    return o.astype(np.int32)


def run_gymnasium(
    agent,
    env: gymnasium.Env,
    *,
    episodes: int = 1,
    seed: int = 0,
    observe: Callable[[Any], Any] | None = None,
    act: Callable[[np.ndarray], Any] | None = None,
    max_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    agent_state=None,
) -> GymnasiumRun:
    """Run an active inference ``agent`` for ``episodes`` episodes of ``env``.

    The agent follows the protocol of the module docstring; its trials of
    ``T = agent.horizon`` time steps are fitted into the episodes as
    described there. ``agent.init``, ``agent.step`` and ``agent.next_trial`` are
    compiled once (``eqx.filter_jit``, the agent an argument): a second episode,
    or a second run with the same agent, does not trace again.

    Args:
      agent: the agent (an :class:`equinox.Module`; see the protocol).
      env: a Gymnasium environment.
      episodes: number of episodes.
      seed: seeds the first ``env.reset`` (later resets go on with the
        environment's generator, as Gymnasium advises) and the agent's JAX keys.
      observe: maps a Gymnasium observation to outcome indices, int ``[G]``.
        Default: ``np.atleast_1d(obs)`` (minus the space's ``start``), for
        ``Discrete`` (one modality) and ``MultiDiscrete`` (``G`` modalities) spaces.
      act: maps the agent's action, int ``[F]``, to a Gymnasium action. Default:
        ``int(action[0])`` for ``Discrete``, the array for ``MultiDiscrete``
        (plus the space's ``start``).
      max_steps: at most this many environment steps per episode (None: until
        the environment terminates or truncates it; give it for an environment
        without a time limit).
      progress: called as ``progress(done, episodes)`` after each episode
        (``done`` = 1, ..., ``episodes``), e.g. to advance a progress bar.
      agent_state: the agent's state to start from (e.g. a previous run's
        ``agent_state``); None: ``agent.init``.

    Returns:
      A :class:`GymnasiumRun`.

    Raises:
      ValueError: a space that cannot be mapped by default (naming it), an
        observation out of range for the model (naming the modality and value),
        an action outside the action space, or a model with ``T < 2``.

    Example::

        import gymnasium
        env = gymnasium.make("FrozenLake-v1", is_slippery=False)
        model = frozenlake_model(env)
        run = run_gymnasium(make_agent(model), env, episodes=10)    # any agent of the protocol
        run.total_reward                                            # [10]
    """
    if isinstance(episodes, bool) or int(episodes) != episodes or episodes < 0:
        raise ValueError(f"episodes must be a non-negative integer, got {episodes!r}")
    if max_steps is not None and (
        isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1
    ):
        raise ValueError(f"max_steps must be a positive integer or None, got {max_steps!r}")
    model = agent.model
    T = getattr(agent, "horizon", model.horizon)
    if T < 2:
        raise ValueError(f"the agent's model has horizon T = {T}: it needs T >= 2 to act")
    num_outcomes = np.asarray(model.num_outcomes)
    observe = _default_observe(env.observation_space, model.num_outcomes) if observe is None else observe
    act = _default_act(env.action_space, model.num_controls) if act is None else act

    init_key, run_key = jax.random.split(jax.random.key(seed))
    state = _agent_init(agent, init_key) if agent_state is None else agent_state
    count = 0  # agent steps so far: the index of each step's key

    def agent_step(state, o):
        nonlocal count
        state, info = _agent_step(agent, run_key, np.asarray(count, np.int32), state, o)
        count += 1
        return state, info

    observations, actions, rewards = [], [], []
    terminated = np.zeros(episodes, bool)
    truncated = np.zeros(episodes, bool)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        o = _outcomes(observe, obs, num_outcomes)
        state, info = agent_step(state, o)
        t = 0  # time step within the agent's trial
        seen, done, gains = [o], [], []
        while True:
            action = np.asarray(info.action)
            gym_action = act(action)
            if not env.action_space.contains(gym_action):
                raise ValueError(
                    f"the agent's action {action.tolist()} maps to {gym_action!r}, which is not in "
                    f"the environment's action space {env.action_space}"
                )
            obs, reward, term, trunc, _ = env.step(gym_action)
            done.append(action)
            gains.append(float(reward))
            t += 1
            o = _outcomes(observe, obs, num_outcomes)
            seen.append(o)
            state, info = agent_step(state, o)  # time t of the trial
            cut = max_steps is not None and len(done) >= max_steps
            if term or trunc or cut:
                state = _agent_next_trial(agent, state)
                terminated[episode], truncated[episode] = bool(term), bool(trunc) or (cut and not term)
                break
            if t == T - 1:  # the trial is over, the episode is not: o is time 0 of the next trial
                state = _agent_next_trial(agent, state)
                state, info = agent_step(state, o)
                t = 0
        observations.append(np.stack(seen).astype(np.int64))
        actions.append(np.stack(done).astype(np.int64))
        rewards.append(np.asarray(gains, np.float64))
        if progress is not None:
            progress(episode + 1, episodes)
    return GymnasiumRun(
        observations=observations,
        actions=actions,
        rewards=rewards,
        total_reward=np.asarray([r.sum() for r in rewards], np.float64),
        length=np.asarray([len(r) for r in rewards], np.int64),
        terminated=terminated,
        truncated=truncated,
        agent_state=state,
    )


# ----------------------------------------------------------------------------
# FrozenLake
# ----------------------------------------------------------------------------


def frozenlake_model(
    env: gymnasium.Env,
    *,
    depth: int = 3,
    goal_preference: float = 4.0,
    hole_preference: float = -4.0,
    distance_preference: float = 1.0,
) -> GenerativeModel:
    """A generative model for Gymnasium's ``FrozenLake-v1``, read off the environment.

    One factor, the cell (``nrow * ncol`` states, cell ``row * ncol + column``),
    with FrozenLake's four actions (left, down, right, up); one modality, the
    cell, observed without error (``A`` is the identity). The transitions are
    the environment's own table ``env.unwrapped.P``, slippery or not::

        B[s', s, a] = sum of p over the entries (p, s', reward, done) of P[s][a]

    (holes and the goal are absorbing). ``D`` is the environment's start
    distribution. The log preference, the same at every time step, is::

        C[s] = goal_preference * [s is a goal] + hole_preference * [s is a hole]
               - distance_preference * (Manhattan distance from s to the nearest goal)

    The distance term shapes the preferences: an agent that plans ``depth``
    moves ahead cannot see a goal further away (the 4 x 4 lake's goal is 6
    moves from the start) and, with ``distance_preference=0``, has nothing to
    prefer on the way. With the defaults the agent walks to the goal of the
    4 x 4 lake, going round the holes. The policies are all ``4 ** depth``
    action sequences, so ``T = depth + 1``.

    Args:
      env: a FrozenLake environment (``gymnasium.make("FrozenLake-v1", ...)``),
        wrapped or not.
      depth: planning depth, the number of moves in a policy (1 or more; 3).
      goal_preference: log preference for the goal cell, over the distance term (4).
      hole_preference: log preference for a hole, over the distance term (-4).
      distance_preference: log preference lost per cell of distance to the goal (1).

    Returns:
      The :class:`~actinf.GenerativeModel` (``A``: ``[nS, nS]``, ``B``: ``[nS, nS, 4]``,
      ``C``: ``[nS, T]``, ``D``: ``[nS]``, ``V``: ``[depth, 4 ** depth, 1]``).
    """
    lake = env.unwrapped
    if not (hasattr(lake, "P") and hasattr(lake, "desc")):
        raise ValueError(f"frozenlake_model needs a FrozenLake environment (with P and desc), got {lake!r}")
    if isinstance(depth, bool) or int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    desc = np.asarray(lake.desc)
    nrow, ncol = desc.shape
    n = nrow * ncol
    num_actions = len(lake.P[0])
    B = np.zeros((n, n, num_actions))
    for s, a in itertools.product(range(n), range(num_actions)):
        for p, s_next, _reward, _done in lake.P[s][a]:
            B[s_next, s, a] += p
    goals = np.argwhere(desc == b"G")
    if len(goals) == 0:
        raise ValueError("the lake has no goal cell ('G' in env.unwrapped.desc)")
    rows, cols = np.divmod(np.arange(n), ncol)
    distance = np.min(
        np.abs(rows[:, None] - goals[None, :, 0]) + np.abs(cols[:, None] - goals[None, :, 1]), 1
    )
    C = (
        float(goal_preference) * (desc.ravel() == b"G")
        + float(hole_preference) * (desc.ravel() == b"H")
        - float(distance_preference) * distance
    )
    start = np.asarray(getattr(lake, "initial_state_distrib", (desc.ravel() == b"S") * 1.0), np.float64)
    start = start / start.sum()
    policies = np.asarray(list(itertools.product(range(num_actions), repeat=int(depth))), np.int32)
    return generative_model([np.eye(n)], [B], [C], [start], policies=policies.T[:, :, None])
