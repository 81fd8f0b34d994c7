"""Agents in worlds: what they do, with statistical bounds, and that nothing compiles twice.

Each behavioural claim is checked on 256 agents with a fixed seed, through the
one-sided 99% Clopper-Pearson lower bound of the observed fraction: the test
passes only if the data rule out (at the 1% level) a true rate below the
target, so a lucky run of a worse agent does not pass.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from scipy.stats import binomtest

from actinf.models.tmaze import CUE
from actinf.rollout import rollout_batch
from actinf.run import default_agent
from actinf.worlds import make_world
from actinf.worlds.explore_exploit import HINT_LEFT, HINT_RIGHT
from conftest import CompileCounter

pytestmark = pytest.mark.xdist_group("behaviour")  # one worker: the compilations are shared

AGENTS = 256
#: the grid with a cue: start top-centre, cue in the centre, goals in the bottom corners
CUE_GRID = dict(height=3, width=3, start=(0, 1), cue=(1, 1), goal=(2, 0), alternative_goal=(2, 2), depth=3)
#: a zig-zag corridor on a 5 x 5 grid: 12 moves to the goal, planned 2 moves ahead
_ROW = (False,) * 5
CORRIDOR = dict(
    height=5,
    width=5,
    walls=np.array([_ROW, (True,) * 4 + (False,), _ROW, (False,) + (True,) * 4, _ROW]),
    start=(0, 0),
    goal=(4, 0),
    depth=2,
    steps=16,
)
WORLD_OPTIONS = {
    "tmaze": {},
    "grid": {},
    "grid-cue": CUE_GRID,
    "grid-corridor": CORRIDOR,
    "explore-exploit": {},
    "reversal": {},
}


def _world(name):
    return make_world("grid" if name.startswith("grid") else name, **WORLD_OPTIONS[name])


@functools.cache
def _run(name, seed, trials=1):
    """One episode of 256 agents (cached: the behaviour and compilation tests share it)."""
    world = _world(name)
    return world, rollout_batch(jax.random.key(seed), default_agent(world), world, trials, AGENTS)


def lower_bound(successes: int, n: int) -> float:
    """One-sided 99% Clopper-Pearson lower bound of a binomial proportion."""
    return binomtest(int(successes), int(n)).proportion_ci(confidence_level=0.98, method="exact").low


def test_maze_agents_check_the_cue_first():
    _, traj = _run("tmaze", 0)
    first = np.asarray(traj.actions[:, 0, 0, 0])  # agent, trial 0, move 0, location factor
    k = int(np.sum(first == CUE))
    assert lower_bound(k, AGENTS) >= 0.9, f"{k} of {AGENTS} went to the cue first"


def test_grid_agents_reach_the_goal():
    world, traj = _run("grid", 1)
    goal = int(np.argmax(np.asarray(world.model.preference[0][:, 0])))
    reached = np.any(np.asarray(traj.observations[:, 0, :, 0]) == goal, axis=1)
    assert lower_bound(reached.sum(), AGENTS) >= 0.95, f"{reached.sum()} of {AGENTS} reached the goal"


def test_grid_agents_plan_ahead_through_a_corridor():
    """Receding horizon: 2-move plans, replanned at every step, walk a 12-move corridor."""
    _, traj = _run("grid-corridor", 5)
    reached = np.any(np.asarray(traj.observations[:, 0, :, 0]) == 20, axis=1)  # cell (4, 0)
    assert lower_bound(reached.sum(), AGENTS) >= 0.95, f"{reached.sum()} of {AGENTS} reached the goal"


def test_grid_agents_with_a_cue_read_it_and_reach_the_goal():
    world, traj = _run("grid-cue", 2)
    cue_cell = CUE_GRID["cue"][0] * 3 + CUE_GRID["cue"][1]
    locations = np.asarray(traj.observations[:, 0, :, 0])
    rewarded = np.any(np.asarray(traj.observations[:, 0, :, 2]) == 1, axis=1)
    assert lower_bound(rewarded.sum(), AGENTS) >= 0.95, f"{rewarded.sum()} of {AGENTS} reached the goal"
    first_visit = np.asarray(locations[:, 1] == cue_cell)
    assert lower_bound(first_visit.sum(), AGENTS) >= 0.9, "the agents did not go to the cue first"


def test_explore_exploit_choices_follow_a_reliable_advisor():
    _, traj = _run("explore-exploit", 3)
    choice = np.asarray(traj.actions[:, 0, :, 1])  # [agents, 2 moves]
    hint = np.asarray(traj.observations[:, 0, 1, 0])  # what the advisor said at t = 1
    asked = choice[:, 0] == 1
    assert asked.sum() >= 100, f"only {asked.sum()} of {AGENTS} asked the advisor"
    hinted = np.where(hint == HINT_LEFT, 2, np.where(hint == HINT_RIGHT, 3, -1))  # the machine named
    followed = choice[:, 1] == hinted
    k = int(followed[asked].sum())
    assert lower_bound(k, int(asked.sum())) >= 0.95, f"{k} of {asked.sum()} followed the advisor"


FIRST_SEED = {"tmaze": 0, "grid": 1, "grid-cue": 2, "explore-exploit": 3, "reversal": 4, "grid-corridor": 5}


@pytest.mark.parametrize("name", list(WORLD_OPTIONS))
def test_batched_worlds_do_not_compile_again(name):
    """256 agents: after the first episode, a second one (new key) compiles nothing."""
    _run(name, FIRST_SEED[name])
    with CompileCounter() as compiles:
        _, traj = _run(name, 100 + FIRST_SEED[name])
        jax.block_until_ready(traj)
    assert compiles.count == 0, f"{name}: {compiles.count} compilations on the second episode"
