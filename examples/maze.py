"""The three-arm maze (T-maze) as an online agent: check the cue, or go straight to an arm?

Run::

    python examples/maze.py [--agents 64] [--trials 32] [--seed 0] [--out out/maze]

``--agents`` rats, each in its own copy of :class:`actinf.worlds.TmazeWorld`
(SPM's ``DEM_demo_MDP_X.m``), run ``--trials`` trials of three time steps with
SPM's agent (marginal message passing, sampled actions with precision 512) and
learn their prior over the context (the counts ``d``) from trial to trial. Two
worlds are compared: the baited arm is drawn 50/50 in every trial, or is the
left one with probability 0.9. The script prints, for each world, the
expected free energy of the first moves at the start (split into pragmatic and
epistemic value), the fraction of rats that check the cue first and the reward
per trial; it saves ``maze_trial.png`` (the first trial of the first rat) and
``maze_summary_p50.png``, ``maze_summary_p90.png`` (every trial) into ``--out``. See ``docs/worlds/maze.md``.

Precision: float32 (JAX's default, as ``actinf run``), so that
``actinf run tmaze --agents 64 --trials 32 -O context_probability=0.9`` gives
the same numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from actinf.planning.efe import VALUE_TERMS
from actinf.plot import plot_agent_summary, plot_agent_trial
from actinf.run import default_agent, run_world
from actinf.worlds import TmazeWorld

CUE = 3  # the location (and the "go to" action) of the cue


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=64, help="number of rats (64)")
    parser.add_argument("--trials", type=int, default=32, help="trials per rat (32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--out", type=Path, default=Path("out/maze"), help="folder of the figures")
    parser.add_argument("--fast", action="store_true", help="tiny run (for the tests)")
    args = parser.parse_args(argv)
    if args.fast:
        args.agents, args.trials = 2, 2

    start = time.perf_counter()
    summaries = []
    for p_left in (0.5, 0.9):
        world = TmazeWorld(context_probability=p_left)
        agent = default_agent(world)  # SPM's agent: MMP, alpha = 512, learns d
        names = world.labels.actions[0]
        if p_left == 0.5:
            # What the agent weighs at its first step (every rat starts the same way).
            _, first_obs = world.reset(jax.random.key(0))
            info, pragmatic, epistemic = jax.tree.map(np.asarray, value_split(agent, first_obs))
            V = np.asarray(world.model.policies)[:, :, 0].T  # [Np, 2 moves]
            print("At t = 0 of trial 1 (G = -pragmatic - epistemic - initial novelty; lower G is better):")
            for k in np.argsort(np.asarray(info.efe)):
                moves = " -> ".join(names[u] for u in V[k])
                print(
                    f"  {moves:15s} G {float(info.efe[k]):6.3f}  pragmatic {pragmatic[k]:7.3f}  "
                    f"epistemic {epistemic[k]:5.3f}  q(pi) {float(info.policy_posterior[k]):.3f}"
                )
        # Same shapes for both worlds: the second run does not compile again.
        traj = run_world(jax.random.key(args.seed), agent, world, trials=args.trials, agents=args.agents)
        first = traj.actions[:, :, 0, 0]  # [K, N] first move
        cue_first = (first == CUE).mean(axis=0)
        reward = traj.utility.sum(axis=-1).mean(axis=0)  # each trial's summed utility, mean over rats
        context = np.asarray(traj.end.agent.model.initial_counts[1])  # learned d over the context [K, 2]
        prior_left = (context[:, 0] / context.sum(axis=1)).mean()
        n, last = args.trials, max(args.trials // 4, 1)
        print(f"\nReward on the left with probability {p_left}: {args.agents} rats x {n} trials")
        print(f"  checked the cue first: trials 1-{min(4, n)} {np.round(cue_first[:4], 2)}, ", end="")
        print(f"last {last} trials {cue_first[-last:].mean():.2f}")
        moves = ", ".join(f"{name} {(first == u).mean():.2f}" for u, name in enumerate(names))
        print(f"  first move over all trials: {moves}")
        print(f"  reward per trial (utility): trials 1-{min(4, n)} {np.round(reward[:4], 2)}, ", end="")
        print(f"last {last} trials {reward[-last:].mean():.2f}")
        print(f"  learned prior P(reward left) after the last trial: {prior_left:.2f} (mean over rats)")
        summary = plot_agent_summary(traj, world.labels, title=f"T-maze, P(reward left) = {p_left}")
        summaries.append((f"maze_summary_p{int(p_left * 100)}.png", summary))
    print(f"\n{time.perf_counter() - start:.1f} s (compiling included)")
    args.out.mkdir(parents=True, exist_ok=True)
    figures = [("maze_trial.png", plot_agent_trial(traj, world.labels, trial=0)), *summaries]
    for name, figure in figures:
        figure.savefig(args.out / name, dpi=96)
    print("Figures:", ", ".join(str(args.out / name) for name, _ in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
