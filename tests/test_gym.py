"""Gymnasium adapters: worlds as environments, agents in environments, the FrozenLake model."""

import subprocess
import sys
from typing import NamedTuple

import pytest

gymnasium = pytest.importorskip("gymnasium")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402
from gymnasium.error import ResetNeeded  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

from actinf import GenerativeModel, generative_model  # noqa: E402
from actinf.worlds import GridWorld, TmazeWorld  # noqa: E402
from actinf.worlds.gym import (  # noqa: E402
    GymnasiumRun,
    WorldEnv,
    frozenlake_model,
    make_env,
    run_gymnasium,
)

ENV_CASES = {
    "tmaze": lambda: TmazeWorld(),
    "grid": lambda: GridWorld(),
    "grid-cue": lambda: GridWorld(cue=(0, 2), goal=(2, 2), alternative_goal=(2, 0)),
}


# ----------------------------------------------------------------------------
# a stub agent following the protocol
# ----------------------------------------------------------------------------


class StubState(NamedTuple):
    time: jax.Array  # time step within the trial
    trials: jax.Array  # next_trial calls so far
    seen: jax.Array  # observations taken in, over the run
    first: jax.Array  # int [G], the observation at time 0 of the current trial


class StubInfo(NamedTuple):
    action: jax.Array


class StubAgent(eqx.Module):
    """Always the same action; counts its steps and trials."""

    model: GenerativeModel
    action: jax.Array

    def init(self, rng_key):
        zero = jnp.zeros((), jnp.int32)
        return StubState(zero, zero, zero, jnp.zeros(self.model.num_modalities, jnp.int32))

    def step(self, rng_key, state, observation):
        first = jnp.where(state.time == 0, observation, state.first)
        state = StubState(state.time + 1, state.trials, state.seen + 1, first)
        return state, StubInfo(self.action)

    def next_trial(self, state):
        return StubState(jnp.zeros((), jnp.int32), state.trials + 1, state.seen, state.first)


def _stub(model, action):
    return StubAgent(model, jnp.asarray(action, jnp.int32))


def _lake(**kwargs):
    return gymnasium.make("FrozenLake-v1", is_slippery=False, **kwargs)


# ----------------------------------------------------------------------------
# WorldEnv
# ----------------------------------------------------------------------------


@pytest.fixture(params=sorted(ENV_CASES))
def world(request):
    return ENV_CASES[request.param]()


@pytest.mark.filterwarnings(
    "ignore:.*alternative render modes:UserWarning"
)  # no spec: not made by gymnasium.make
@pytest.mark.parametrize("render_mode", [None, "ansi"])
def test_world_env_passes_check_env(world, render_mode):
    check_env(WorldEnv(world, render_mode=render_mode), skip_close_check=True)


def test_world_env_spaces():
    tmaze = WorldEnv(TmazeWorld())
    assert tmaze.observation_space == spaces.MultiDiscrete([5, 3])
    assert tmaze.action_space == spaces.MultiDiscrete([4, 1])
    grid = WorldEnv(GridWorld())
    assert grid.observation_space == spaces.Discrete(9)
    assert grid.action_space == spaces.Discrete(5)
    obs, info = grid.reset(seed=0)
    assert isinstance(obs, int) and obs == 0
    assert info == {"states": [0], "time": 0}


def test_world_env_reward_is_preference_and_terminates():
    world = TmazeWorld()
    env = WorldEnv(world, seed=1)
    C = [np.asarray(c) for c in world.model.preference]
    T = world.model.horizon
    obs, info = env.reset()
    assert obs.dtype == np.int64 and obs.shape == (2,)
    for t in range(1, T):
        obs, reward, terminated, truncated, info = env.step(np.array([3, 0]))  # the cue, then stay
        assert info["time"] == t
        assert reward == pytest.approx(C[0][obs[0], t] + C[1][obs[1], t])
        assert terminated == (t == T - 1)
        assert truncated is False
    assert info["states"][0] == 3  # at the cue


def test_world_env_grid_reaches_goal_reward():
    env = WorldEnv(
        GridWorld(height=1, width=3, goal=(0, 2), depth=2, goal_preference=5.0, distance_preference=0.0)
    )
    env.reset(seed=0)
    _, r1, done1, _, _ = env.step(4)  # right
    obs, r2, done2, _, _ = env.step(4)
    assert (r1, done1) == (0.0, False)
    assert (obs, r2, done2) == (2, 5.0, True)


def test_world_env_step_after_termination_raises():
    env = WorldEnv(TmazeWorld(), seed=0)
    with pytest.raises(ResetNeeded, match="call reset"):
        env.step([0, 0])
    env.reset()
    for _ in range(env.horizon - 1):
        env.step([0, 0])
    with pytest.raises(ResetNeeded, match=r"trial is over.*call reset\(\)"):
        env.step([0, 0])
    env.reset()
    env.step([0, 0])  # a new trial


@pytest.mark.parametrize(
    ("action", "match"),
    [
        ([4, 0], r"action \[4, 0\] is out of range: factor 0 has 4 controls \(0 to 3\)"),
        ([0, 1], r"factor 1 has 1 controls \(0 to 0\)"),
        ([-1, 0], "out of range"),
        ([0], "has 1 entries: expected 2 ints"),
        ([0.5, 0.0], "not an integer action"),
    ],
)
def test_world_env_bad_action(action, match):
    env = WorldEnv(TmazeWorld(), seed=0)
    env.reset()
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_world_env_bad_action_discrete():
    env = WorldEnv(GridWorld(), seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"action 5 is out of range: .*expected an int in 0 to 4"):
        env.step(5)


def test_world_env_seeded_reset_replays():
    env = WorldEnv(TmazeWorld())
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=3)
        steps = [env.step([1, 0]) for _ in range(2)]
        runs.append([obs.tolist()] + [(s[0].tolist(), s[1]) for s in steps])
    assert runs[0] == runs[1]


def test_world_env_render_ansi():
    env = WorldEnv(TmazeWorld(), render_mode="ansi", seed=0)
    env.reset()
    assert env.render() == "t=0  where: centre | reward: nothing"
    env.step([3, 0])
    assert env.render() in (
        "t=1  where: cue: left | reward: nothing",
        "t=1  where: cue: right | reward: nothing",
    )
    assert WorldEnv(TmazeWorld()).render() is None
    with pytest.raises(ValueError, match="render_mode"):
        WorldEnv(TmazeWorld(), render_mode="human")


def test_make_env():
    env = make_env("grid", height=2, width=2, seed=0)
    assert env.observation_space == spaces.Discrete(4)
    with pytest.raises(ValueError, match="unknown world"):
        make_env("nowhere")


def test_gymnasium_not_imported_by_actinf():
    code = "import sys, actinf, actinf.worlds; print('gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------
# run_gymnasium
# ----------------------------------------------------------------------------


def _lake_model(T):
    """A model of the 4 x 4 lake with horizon T (only its sizes matter to the stub)."""
    return generative_model(
        [np.eye(16)], [np.repeat(np.eye(16)[:, :, None], 4, axis=2)], policies=np.zeros((T - 1, 1, 1))
    )


def test_run_frozenlake_episode_ends_on_the_lake():
    env = _lake()
    run = run_gymnasium(_stub(_lake_model(3), [1]), env, episodes=2, seed=0)  # always down
    assert isinstance(run, GymnasiumRun)
    # down from the start: cells 4, 8, then the hole at 12
    for episode in range(2):
        np.testing.assert_array_equal(run.observations[episode][:, 0], [0, 4, 8, 12])
        np.testing.assert_array_equal(run.actions[episode], [[1], [1], [1]])
        np.testing.assert_array_equal(run.rewards[episode], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(run.length, [3, 3])
    np.testing.assert_array_equal(run.total_reward, [0.0, 0.0])
    np.testing.assert_array_equal(run.terminated, [True, True])
    np.testing.assert_array_equal(run.truncated, [False, False])


def test_run_trial_restarts_within_an_episode():
    # T = 2: one action per trial. Three steps down: trials (0 -> 4), (4 -> 8), (8 -> 12, the episode's end).
    run = run_gymnasium(_stub(_lake_model(2), [1]), _lake(), episodes=1)
    state = run.agent_state
    assert int(state.trials) == 3  # two restarts in the episode, one at its end
    assert (
        int(state.seen) == 4 + 2
    )  # 4 observations, 4 and 8 taken in twice (end of a trial, start of the next)
    assert int(state.first[0]) == 8  # the last trial started from cell 8
    assert int(state.time) == 0


def test_run_episode_end_mid_trial_calls_next_trial():
    # T = 5: the episode (3 steps) ends at time 3 of the agent's first trial
    run = run_gymnasium(_stub(_lake_model(5), [1]), _lake(), episodes=2)
    assert int(run.agent_state.trials) == 2
    assert int(run.agent_state.seen) == 8


def test_run_reaches_the_goal_and_max_steps():
    # right, right, down, down, down, right: not with a fixed action; the stub goes right into the wall
    run = run_gymnasium(_stub(_lake_model(3), [2]), _lake(), max_steps=7)
    np.testing.assert_array_equal(run.observations[0][:, 0], [0, 1, 2, 3, 3, 3, 3, 3])
    assert run.length[0] == 7
    assert (run.terminated[0], run.truncated[0]) == (False, True)


def test_run_truncated_by_time_limit():
    run = run_gymnasium(_stub(_lake_model(4), [0]), _lake(max_episode_steps=5))  # left: stay at the start
    assert run.length[0] == 5
    assert (run.terminated[0], run.truncated[0]) == (False, True)


def test_run_world_env_tmaze():
    world = TmazeWorld()
    env = WorldEnv(world)
    run = run_gymnasium(_stub(world.model, [3, 0]), env, episodes=3, seed=2)
    np.testing.assert_array_equal(run.length, [2, 2, 2])
    np.testing.assert_array_equal(run.terminated, [True] * 3)
    for obs, actions in zip(run.observations, run.actions, strict=True):
        assert obs.shape == (3, 2)
        assert obs[1, 0] in (3, 4)  # at the cue
        np.testing.assert_array_equal(actions, [[3, 0], [3, 0]])
    assert int(run.agent_state.trials) == 3


def test_run_progress_and_agent_state_carries_over():
    calls = []
    agent = _stub(_lake_model(3), [1])
    first = run_gymnasium(agent, _lake(), episodes=2, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 2), (2, 2)]
    assert int(first.agent_state.trials) == 4  # two trials per episode (T = 3, three steps)
    second = run_gymnasium(agent, _lake(), episodes=1, agent_state=first.agent_state)
    assert int(second.agent_state.trials) == 6


def test_run_compiles_once():
    traces = []

    class Counting(StubAgent):
        def step(self, rng_key, state, observation):
            traces.append(1)
            return super().step(rng_key, state, observation)

    agent = Counting(_lake_model(2), jnp.asarray([1], jnp.int32))
    run_gymnasium(agent, _lake(), episodes=2)
    n = len(traces)
    run_gymnasium(agent, _lake(), episodes=2, seed=5)
    assert n == 1 and len(traces) == n


def test_run_custom_observe_and_act():
    # the agent sees the row only (4 outcomes) and acts with 2 controls, mapped to down and right
    model = generative_model([np.eye(4)], [np.repeat(np.eye(4)[:, :, None], 2, axis=2)], horizon=2)
    run = run_gymnasium(
        _stub(model, [0]), _lake(), observe=lambda obs: obs // 4, act=lambda a: [1, 2][int(a[0])]
    )
    np.testing.assert_array_equal(run.observations[0][:, 0], [0, 1, 2, 3])


def test_run_observation_out_of_range():
    small = generative_model([np.eye(6)], [np.repeat(np.eye(6)[:, :, None], 4, axis=2)], horizon=3)
    with pytest.raises(
        ValueError, match=r"modality 0 has outcome 8, but the model has 6 outcomes \(0 to 5\)"
    ):
        run_gymnasium(_stub(small, [1]), _lake())


def test_run_action_outside_the_action_space():
    model = generative_model([np.eye(16)], [np.repeat(np.eye(16)[:, :, None], 5, axis=2)], horizon=3)
    with pytest.raises(ValueError, match=r"action \[4\] maps to 4, which is not in .*Discrete\(4\)"):
        run_gymnasium(_stub(model, [4]), _lake())


class BoxEnv(gymnasium.Env):
    observation_space = spaces.Box(0.0, 1.0, (2,))
    action_space = spaces.Discrete(2)


class BoxActionEnv(gymnasium.Env):
    observation_space = spaces.Discrete(16)
    action_space = spaces.Box(0.0, 1.0, (1,))


@pytest.mark.parametrize(
    ("env", "match"),
    [
        (BoxEnv(), r"maps Discrete and MultiDiscrete observation spaces, got Box.*pass observe="),
        (BoxActionEnv(), r"maps Discrete and MultiDiscrete action spaces, got Box.*pass act="),
        (WorldEnv(TmazeWorld()), r"observation space MultiDiscrete\(\[5 3\]\) .* the model has 1 modalities"),
    ],
)
def test_run_unsupported_spaces(env, match):
    with pytest.raises(ValueError, match=match):
        run_gymnasium(_stub(_lake_model(3), [0]), env)


class TwoControlsEnv(gymnasium.Env):
    observation_space = spaces.Discrete(16)
    action_space = spaces.MultiDiscrete([4, 1])


def test_run_multidiscrete_action_space_must_match_factors():
    with pytest.raises(ValueError, match=r"action space MultiDiscrete\(\[4 1\]\) .* the model has 1 factors"):
        run_gymnasium(_stub(_lake_model(3), [0]), TwoControlsEnv())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"episodes": -1}, "episodes"), ({"max_steps": 0}, "max_steps")],
)
def test_run_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_gymnasium(_stub(_lake_model(3), [0]), _lake(), **kwargs)


def test_run_needs_two_time_steps():
    model = generative_model([np.eye(16)], [np.repeat(np.eye(16)[:, :, None], 4, axis=2)], horizon=2)
    model = eqx.tree_at(lambda m: m.policies, model, jnp.zeros((0, 1, 1), jnp.int32))
    with pytest.raises(ValueError, match="horizon T = 1"):
        run_gymnasium(_stub(model, [0]), _lake())


# ----------------------------------------------------------------------------
# frozenlake_model
# ----------------------------------------------------------------------------


def test_frozenlake_model_deterministic():
    model = frozenlake_model(_lake(), depth=2)
    B = np.asarray(model.transition[0])
    assert model.num_states == (16,) and model.num_controls == (4,) and model.horizon == 3
    assert model.num_policies == 16
    assert B[4, 0, 1] == 1.0  # down from the start
    assert B[0, 0, 0] == 1.0  # left into the edge: stay
    assert B[5, 5, 2] == 1.0  # a hole is absorbing
    np.testing.assert_array_equal(np.asarray(model.initial[0]), np.eye(16)[0])
    C = np.asarray(model.preference[0])[:, 0]
    assert C[15] == 4.0 and C[0] == -6.0 and C[5] == -4.0 - 4.0  # goal; start 6 away; hole 4 away


def test_frozenlake_model_slippery():
    env = gymnasium.make("FrozenLake-v1", is_slippery=True)
    B = np.asarray(frozenlake_model(env, depth=1, distance_preference=0.0).transition[0])
    # down from the start: down (cell 4) with 1/3, left (stay) 1/3, right (cell 1) 1/3
    np.testing.assert_allclose(B[[0, 1, 4], 0, 1], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(B.sum(0), 1.0)


@pytest.mark.parametrize(("env", "match"), [(BoxEnv(), "FrozenLake environment"), (_lake(), "depth")])
def test_frozenlake_model_errors(env, match):
    depth = 0 if match == "depth" else 3
    with pytest.raises(ValueError, match=match):
        frozenlake_model(env, depth=depth)
