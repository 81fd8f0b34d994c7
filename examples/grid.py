"""Grid worlds: walk around walls to a goal, and read a cue before choosing between two goals.

Run::

    python examples/grid.py [--agents 32] [--trials 4] [--seed 0] [--out out/grid]

Two tasks with :class:`actinf.worlds.GridWorld` (actions stay, up, down, left, right):

1. **Navigation.** A 5 x 5 grid whose two walls make a zig-zag corridor from the
   start (0, 0) to the goal (4, 0), 12 moves away. The agent plans two moves
   ahead (25 policies) and plans again at every step (fixed-point inference
   with a receding horizon) for 16 time steps; its preferences fall by one nat
   per step of distance from the goal. Nothing is uncertain, so only the
   pragmatic value (risk) guides it.
2. **Cue.** A 3 x 3 grid; the agent starts at (1, 0) and the reward is at
   (0, 1) or at (2, 1), each with probability 1/2; the cue at the centre (1, 1)
   tells which. Both goals are two moves away, by the centre or by a corner.
   SPM's agent (marginal message passing, 25 two-move policies, 3 time steps).

The script prints the path and the expected free energy (pragmatic and
epistemic value) of the best policies at the start, the fraction of agents
going by the cue and the reward; it saves ``grid_navigation_trial.png`` and
``grid_cue_trial.png`` (the first trial of the first agent) into ``--out``. See
``docs/worlds/grid.md``.

Precision: float32 (JAX's default, as ``actinf run``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from actinf import Agent, FixedPoint
from actinf.planning.efe import VALUE_TERMS
from actinf.plot import plot_agent_trial
from actinf.run import default_agent, run_world
from actinf.worlds import GridWorld

RIGHT = 4  # actions: stay, up, down, left, right


@eqx.filter_jit
def value_split(agent, observation):
    """The agent's first step, and each policy's pragmatic and epistemic value (``[Np]`` each).

    The same agent with :data:`~actinf.planning.efe.VALUE_TERMS` reports its expected
    free energy as -(pragmatic value) - (epistemic value) - novelty: pragmatic value
    :math:`\\sum_\\tau q(o)\\cdot C` (expected log preference), epistemic value
    :math:`\\sum_\\tau H[q(o)] - \\text{ambiguity}` (expected information gain about the states).
    """
    split = eqx.tree_at(lambda a: a.terms, agent, VALUE_TERMS)
    _, info = split.observe(split.init(), observation)
    return info, -info.efe_terms[:, 0], -info.efe_terms[:, 1]


def print_best(world, agent, names, top=4):
    """The ``top`` policies by expected free energy at t = 0, with their values."""
    _, first_obs = world.reset(jax.random.key(0))
    info, pragmatic, epistemic = jax.tree.map(np.asarray, value_split(agent, first_obs))
    V = np.asarray(world.model.policies)[:, :, 0].T  # [Np, moves]
    print(f"  best of {len(V)} policies at t = 0 (G = -pragmatic - epistemic; lower is better):")
    for k in np.argsort(np.asarray(info.efe))[:top]:
        moves = " -> ".join(names[u] for u in V[k])
        print(
            f"    {moves:14s} G {float(info.efe[k]):7.3f}  pragmatic {pragmatic[k]:8.3f}  "
            f"epistemic {epistemic[k]:5.3f}  q(pi) {float(info.policy_posterior[k]):.3f}"
        )


def draw(walls, path, goal):
    """The grid as text: # wall, G goal, the time step of the first visit (0-9, then a-z)."""
    rows = [["#" if w else "." for w in row] for row in walls]
    width = walls.shape[1]
    for t, cell in enumerate(path):
        r, c = divmod(int(cell), width)
        if rows[r][c] == ".":
            rows[r][c] = "0123456789abcdefghijklmnopqrstuvwxyz"[min(t, 35)]
    rows[goal[0]][goal[1]] = "G"
    return "\n".join("    " + " ".join(row) for row in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=32, help="number of agents (32)")
    parser.add_argument("--trials", type=int, default=4, help="trials per agent (4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--out", type=Path, default=Path("out/grid"), help="folder of the figures")
    parser.add_argument("--fast", action="store_true", help="tiny run (for the tests)")
    args = parser.parse_args(argv)
    if args.fast:
        args.agents, args.trials = 2, 1
    key = jax.random.key(args.seed)
    start = time.perf_counter()
    figures = []

    # 1. Navigation around walls, receding horizon.
    walls = np.zeros((5, 5), bool)
    walls[1, :4] = walls[3, 1:] = True
    goal = (4, 0)
    world = GridWorld(height=5, width=5, walls=walls, start=(0, 0), goal=goal, depth=2, steps=16)
    names = world.labels.actions[0]
    agent = Agent(world.model, inference=FixedPoint(), trial_length=world.trial_length)
    print(f"Navigation: 5 x 5 grid, {world.trial_length} time steps, goal {goal}")
    print_best(world, agent, names)
    traj = run_world(key, agent, world, trials=args.trials, agents=args.agents)
    path = traj.states[0, 0, :, 0]
    goal_cell = goal[0] * 5 + goal[1]
    arrived = np.argmax(traj.states[..., 0] == goal_cell, axis=-1)  # first time at the goal [K, N]
    reached = (traj.states[..., -1, 0] == goal_cell).mean()
    print("  path of the first agent (time step of each cell):")
    print(draw(walls, path, goal))
    print(f"  at the goal at the end: {reached:.2f} of {args.agents} agents x {args.trials} trials")
    print(f"  first at the goal at time step {int(np.median(arrived))} (median; the shortest path: 12 moves)")
    print(f"  reward per trial (utility): {traj.utility.sum(axis=-1).mean():.1f}\n")
    figures.append(("grid_navigation_trial.png", plot_agent_trial(traj, world.labels, title="Navigation")))

    # 2. The cue: go by the centre (and see the cue) or by a corner?
    world = GridWorld(start=(1, 0), cue=(1, 1), goal=(0, 1), alternative_goal=(2, 1), depth=2)
    agent = default_agent(world)  # SPM's agent: MMP, alpha = 512 (nothing to learn)
    print("Cue: 3 x 3 grid, start (1, 0), cue (1, 1), reward at (0, 1) or (2, 1)")
    print_best(world, agent, names)
    traj = run_world(key, agent, world, trials=args.trials, agents=args.agents)
    first = traj.actions[:, :, 0, 0]
    goals = np.where(traj.states[:, :, 0, 1] == 0, 1, 7)  # the rewarded cell: (0, 1) or (2, 1)
    at_goal = traj.states[:, :, -1, 0] == goals
    moves = ", ".join(f"{n} {(first == u).mean():.2f}" for u, n in enumerate(names))
    print(f"  first move ({args.agents} agents x {args.trials} trials): {moves}")
    print(f"  at the rewarded cell at the last time step: {at_goal.mean():.2f}")
    print(f"  reward per trial (utility): {traj.utility.sum(axis=-1).mean():.2f}\n")
    figures.append(("grid_cue_trial.png", plot_agent_trial(traj, world.labels, title="Cue")))

    print(f"{time.perf_counter() - start:.1f} s (compiling included)")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, figure in figures:
        figure.savefig(args.out / name, dpi=96)
    print("Figures:", ", ".join(str(args.out / name) for name, _ in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
