"""Worlds: jit/vmap compatibility, ranges, models, dynamics and option errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actinf import GenerativeModel
from actinf.worlds import (
    WORLDS,
    ExploreExploitWorld,
    GridWorld,
    ReversalWorld,
    TmazeWorld,
    make_world,
)

WORLD_CASES = {
    "tmaze": lambda: TmazeWorld(),
    "grid": lambda: GridWorld(),
    "grid-cue": lambda: GridWorld(cue=(0, 2), goal=(2, 2), alternative_goal=(2, 0)),
    "explore-exploit": lambda: ExploreExploitWorld(hint_accuracy=0.7),
    "reversal": lambda: ReversalWorld(switch_trial=3),
}


@pytest.fixture(params=sorted(WORLD_CASES))
def world(request):
    return WORLD_CASES[request.param]()


def _action(world, k):
    return jnp.asarray([k % n for n in world.model.num_controls], jnp.int32)


def _in_range(world, obs):
    obs = np.asarray(obs)
    assert obs.shape[-1] == world.model.num_modalities
    for g, n in enumerate(world.model.num_outcomes):
        assert np.all((obs[..., g] >= 0) & (obs[..., g] < n))


def test_reset_step_jit(world):
    reset = jax.jit(lambda w, key: w.reset(key))
    step = jax.jit(lambda w, key, s, u: w.step(key, s, u))
    state, obs = reset(world, jax.random.key(0))
    state, obs = step(world, jax.random.key(1), state, _action(world, 1))
    assert int(state.time) == 1
    _in_range(world, obs)


def test_reset_step_vmap(world):
    keys = jax.random.split(jax.random.key(0), 8)
    states, obs = jax.vmap(world.reset)(keys)
    assert obs.shape == (8, world.model.num_modalities)
    action = _action(world, 1)
    states, obs = jax.vmap(lambda k, s: world.step(k, s, action))(keys, states)
    assert states.states.shape == (8, world.model.num_factors)
    _in_range(world, obs)


def test_observations_in_range(world):
    keys = jax.random.split(jax.random.key(3), 64)
    state, obs = jax.vmap(world.reset)(keys)
    _in_range(world, obs)
    for t in range(world.model.horizon - 1):
        action = _action(world, t + 2)
        state, obs = jax.vmap(lambda k, s, a=action: world.step(k, s, a))(keys, state)
        _in_range(world, obs)


def test_next_trial_counts(world):
    state, _ = world.reset(jax.random.key(0))
    state, _ = world.next_trial(jax.random.key(1), state)
    assert int(state.trial) == 1 and int(state.time) == 0


def test_model_validates(world):
    assert isinstance(world.model, GenerativeModel)
    type(world.model)(*[getattr(world.model, f) for f in world.model.__dataclass_fields__])
    assert len(world.labels.outcomes) == world.model.num_modalities
    assert len(world.labels.states) == world.model.num_factors


@pytest.mark.parametrize("name", sorted(WORLDS))
def test_make_world_defaults(name):
    world = make_world(name)
    state, obs = world.reset(jax.random.key(0))
    _in_range(world, obs)


def test_make_world_unknown_name():
    with pytest.raises(ValueError, match="unknown world 'maze'"):
        make_world("maze")


def test_make_world_unknown_option():
    with pytest.raises(ValueError, match="unknown option 'size' for world 'grid'"):
        make_world("grid", size=3)


# --- grid ----------------------------------------------------------------------


def test_grid_wall_blocks():
    walls = np.zeros((3, 3), bool)
    walls[1, 0] = True
    world = GridWorld(walls=walls)
    state, _ = world.reset(jax.random.key(0))
    state, obs = world.step(jax.random.key(1), state, jnp.array([2]))  # down into the wall
    assert int(obs[0]) == 0


def test_grid_edge_blocks():
    world = GridWorld()
    state, _ = world.reset(jax.random.key(0))
    state, obs = world.step(jax.random.key(1), state, jnp.array([1]))  # up off the grid
    assert int(obs[0]) == 0


def test_grid_reaches_goal():
    world = GridWorld(height=2, width=3, goal=(1, 2), depth=3)
    state, _ = world.reset(jax.random.key(0))
    for k, u in enumerate([4, 4, 2]):  # right, right, down
        state, obs = world.step(jax.random.key(k), state, jnp.array([u]))
    assert int(obs[0]) == 1 * 3 + 2
    assert float(world.model.preference[0][5, 0]) == 4.0


def test_grid_policies_enumerate_depth():
    world = GridWorld(depth=3)
    assert world.model.policies.shape == (3, 125, 1)
    assert world.model.horizon == 4


def test_grid_cue_reveals_goal():
    world = GridWorld(cue=(0, 1), goal=(2, 2), alternative_goal=(2, 0))
    keys = jax.random.split(jax.random.key(0), 32)
    states, _ = jax.vmap(world.reset)(keys)
    states, obs = jax.vmap(lambda k, s: world.step(k, s, jnp.array([4, 0])))(keys, states)
    np.testing.assert_array_equal(obs[:, 1], states.states[:, 1] + 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"walls": np.zeros((2, 3), bool)}, r"walls must have shape \(3, 3\)"),
        ({"walls": np.eye(3, dtype=bool)}, r"goal \(2, 2\) lies on a wall"),
        ({"goal": (5, 0)}, r"goal \(5, 0\) lies outside"),
        ({"depth": 4}, "depth must be 1, 2 or 3, got 4"),
        ({"height": 0}, "height must be a positive integer, got 0"),
        ({"cue": (0, 1)}, "cue and alternative_goal go together"),
        ({"cue": (2, 2), "alternative_goal": (2, 0)}, r"cue \(2, 2\) must differ"),
    ],
)
def test_grid_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        GridWorld(**options)


# --- tmaze ---------------------------------------------------------------------


def test_tmaze_cue_reveals_context():
    world = TmazeWorld()
    keys = jax.random.split(jax.random.key(1), 64)
    states, obs = jax.vmap(world.reset)(keys)
    assert np.all(np.asarray(states.states[:, 0]) == 0)  # always starts at the centre
    states, obs = jax.vmap(lambda k, s: world.step(k, s, jnp.array([3, 0])))(keys, states)
    np.testing.assert_array_equal(obs[:, 0], 3 + states.states[:, 1])
    assert 0 < int(states.states[:, 1].sum()) < 64  # both contexts occur


def test_tmaze_invalid_context_probability():
    with pytest.raises(ValueError, match="context_probability must lie in"):
        TmazeWorld(context_probability=1.5)


# --- reversal ------------------------------------------------------------------


def test_reversal_switches_at_trial():
    world = ReversalWorld(switch_trial=3)
    state, _ = world.reset(jax.random.key(0))
    contexts = [int(state.states[0])]
    for k in range(5):
        state, _ = world.next_trial(jax.random.key(k), state)
        contexts.append(int(state.states[0]))
    assert contexts == [0, 0, 0, 1, 1, 1]


def test_reversal_reward_rate():
    world = ReversalWorld(reward_probability=0.8)
    keys = jax.random.split(jax.random.key(2), 2000)
    state, _ = world.reset(jax.random.key(0))
    _, obs = jax.vmap(lambda k: world.step(k, state, jnp.array([0, 1])))(keys)
    assert abs(float(np.mean(np.asarray(obs[:, 0]) == 2)) - 0.8) < 0.04


def test_reversal_model_learns_d():
    assert ReversalWorld().model.initial_counts is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"switch_trial": -1}, "switch_trial must be a non-negative integer, got -1"),
        ({"reward_probability": 2.0}, "reward_probability must lie in"),
        ({"context_counts": (1.0, 0.0)}, "context_counts must be finite and positive"),
    ],
)
def test_reversal_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        ReversalWorld(**options)


# --- explore/exploit -----------------------------------------------------------


def test_explore_exploit_hint_accuracy():
    world = ExploreExploitWorld(hint_accuracy=0.7)
    keys = jax.random.split(jax.random.key(4), 4000)
    states, _ = jax.vmap(world.reset)(keys)
    states, obs = jax.vmap(lambda k, s: world.step(k, s, jnp.array([0, 1])))(
        jax.random.split(jax.random.key(5), 4000), states
    )
    correct = np.asarray(obs[:, 0]) == np.asarray(states.states[:, 0]) + 1
    assert abs(float(correct.mean()) - 0.7) < 0.03  # 4000 draws: sd ~ 0.007


def test_explore_exploit_win_rate():
    world = ExploreExploitWorld(win_probability=0.8, left_better_probability=1.0)
    keys = jax.random.split(jax.random.key(6), 4000)
    state, _ = world.reset(jax.random.key(0))
    _, obs = jax.vmap(lambda k: world.step(k, state, jnp.array([0, 2])))(keys)
    assert abs(float(np.mean(np.asarray(obs[:, 1]) == 2)) - 0.8) < 0.03


def test_explore_exploit_paper_preferences():
    model = ExploreExploitWorld().model
    np.testing.assert_allclose(model.preference[1], [[0, 0, 0], [0, -1, -1], [0, 4, 2]])
    assert model.policies.shape == (2, 5, 2)


def test_explore_exploit_invalid_hint_accuracy():
    with pytest.raises(ValueError, match="hint_accuracy must lie in"):
        ExploreExploitWorld(hint_accuracy=-0.1)


def test_world_draws_are_inverse_cdf_of_the_column():
    """The worlds draw from cumulative sums laid out as rows; every draw equals SPM's
    inverse_cdf of the column A[:, s] or B[:, s, u], uniforms on the boundaries included."""
    from actinf.maths import inverse_cdf
    from actinf.worlds.base import _draw_outcomes, _draw_states

    rng = np.random.default_rng(7)
    A = jnp.asarray(rng.dirichlet(np.ones(6), size=(4, 3)).transpose(2, 0, 1))  # [6, 4, 3]
    B = (
        jnp.asarray(rng.dirichlet(np.ones(4), size=(4, 2)).transpose(2, 0, 1)),  # [4, 4, 2]
        jnp.asarray(rng.dirichlet(np.ones(3), size=(3, 1)).transpose(2, 0, 1)),  # [3, 3, 1]
    )
    for s0, s1 in np.ndindex(4, 3):
        states = jnp.array([s0, s1])
        column = A[:, s0, s1]
        for u in [*np.cumsum(np.asarray(column))[:-1], 0.0, 0.999, *rng.uniform(size=4)]:
            drawn = _draw_outcomes(jnp.asarray([u], A.dtype), (A,), states)
            assert int(drawn[0]) == int(inverse_cdf(column, u))
        for a0 in range(2):
            for u in [*np.cumsum(np.asarray(B[0][:, s0, a0]))[:-1], *rng.uniform(size=3)]:
                drawn = _draw_states(jnp.asarray([u, 0.5], A.dtype), B, states, jnp.array([a0, 0]))
                assert int(drawn[0]) == int(inverse_cdf(B[0][:, s0, a0], u))
                assert int(drawn[1]) == int(inverse_cdf(B[1][:, s1, 0], 0.5))


def test_reset_draws_states_from_d_and_outcomes_from_a():
    """A reset draws every factor's state from D_f and then every outcome from A_g[:, s]
    (one call of the generator for all of them): joint frequencies over 8,000 resets
    within 4.5 standard deviations of D_1 D_2 A[o, s_1, s_2]."""
    from actinf.model import generative_model
    from actinf.models.tmaze import ModelLabels
    from actinf.worlds import CategoricalWorld

    rng = np.random.default_rng(3)
    A = rng.dirichlet(np.ones(3), size=(2, 3)).transpose(2, 0, 1)  # [3, 2, 3]
    B = [np.eye(2)[:, :, None], np.eye(3)[:, :, None]]
    D = [np.array([0.3, 0.7]), np.array([0.5, 0.2, 0.3])]
    model = generative_model([A], B, [np.zeros((3, 2))], D, policies=np.zeros((1, 1, 2), np.int32))
    names = lambda n: tuple(str(i) for i in range(n))  # noqa: E731
    labels = ModelLabels(("a", "b"), (names(2), names(3)), ("o",), (names(3),), (names(1), names(1)))
    world = CategoricalWorld(process=model, model=model, labels=labels)
    n = 8000
    states, obs = jax.vmap(world.reset)(jax.random.split(jax.random.key(11), n))
    s, o = np.asarray(states.states), np.asarray(obs)[:, 0]
    for s0, s1, og in np.ndindex(2, 3, 3):
        p = D[0][s0] * D[1][s1] * A[og, s0, s1]
        freq = np.mean((s[:, 0] == s0) & (s[:, 1] == s1) & (o == og))
        assert abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / n), (s0, s1, og, freq, p)
