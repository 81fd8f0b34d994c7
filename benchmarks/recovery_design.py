"""How well a design lets MAP recover the parameters (the table in docs/fitting.md, section 5).

    PYTHONPATH=src python benchmarks/recovery_design.py TASK --trials 200 --counts 16
        [--better 0.9] [--reward-preference 1.5] [--participants 100]

``TASK`` is ``explore-exploit`` or ``maze``; ``--counts`` the agent's initial
context counts d0 (both contexts), ``--better`` the probability of the usual
context (the left machine better, or the reward on the left), and
``--reward-preference`` the maze's preference for a reward over a shock.
Draws the participants from the task's prior (key 0), simulates them (key 1),
fits them by MAP and prints the correlation of true and estimated values per
parameter, on the natural and the unconstrained scale.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from actinf.agent import Agent  # noqa: E402
from actinf.fit.estimate import fit_map  # noqa: E402
from actinf.fit.likelihood import sample_prior, simulate  # noqa: E402
from actinf.fit.tasks import PARAMETERS, Task  # noqa: E402
from actinf.inference.fixed_point import FixedPoint  # noqa: E402
from actinf.worlds import make_world  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["explore-exploit", "maze"])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--counts", type=float, default=16.0)
    parser.add_argument("--better", type=float, default=0.9)
    parser.add_argument("--reward-preference", type=float, default=1.5)
    parser.add_argument("--participants", type=int, default=100)
    args = parser.parse_args()
    counts = (args.counts, args.counts)
    if args.task == "explore-exploit":
        world = make_world("explore-exploit", left_better_probability=args.better, context_counts=counts)
    else:
        world = make_world(
            "tmaze",
            context_probability=args.better,
            context_counts=counts,
            reward_preference=args.reward_preference,
        )
    task = Task(args.task, world, Agent(world.model, inference=FixedPoint()), tuple(PARAMETERS.values()))
    z = sample_prior(jax.random.key(0), task, args.participants)
    behaviour = simulate(jax.random.key(1), task, z, args.trials)
    start = time.perf_counter()
    estimate = jax.block_until_ready(fit_map(task, behaviour))
    seconds = time.perf_counter() - start
    truth = np.asarray(task.natural(jnp.asarray(z)))
    print(f"{args.task}, {args.trials} trials, d0 = {args.counts}, better {args.better}: {seconds:.0f} s")
    for i, name in enumerate(task.names):
        r = np.corrcoef(truth[:, i], np.asarray(estimate.theta)[:, i])[0, 1]
        rz = np.corrcoef(z[:, i], np.asarray(estimate.z)[:, i])[0, 1]
        print(f"  {name:18s} r = {r:.3f}   r (z) = {rz:.3f}")


if __name__ == "__main__":
    main()
