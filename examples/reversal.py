"""Reversal learning: two options, and the rewarded one switches. Does forgetting help?

Run::

    python examples/reversal.py [--agents 64] [--trials 48] [--seed 0] [--out out/reversal]

``--agents`` agents, each in its own copy of :class:`actinf.worlds.ReversalWorld`,
choose one of two options in each of ``--trials`` trials. The rewarded option
pays with probability 0.8, the other with 0.2; option 0 is the rewarded one
until trial ``trials // 3`` (1-based: trials 1 to 16 by default), option 1
from then on. Nothing within a trial tells the agent about the next one: it
learns its prior over the context (counts ``d``, 1 each at the start) from the
posterior at the end of each trial. Two agents are compared: SPM's learning
rule (no forgetting) and forgetting 0.2, where the counts gathered so far decay
toward the first prior before each trial's evidence is added
(:class:`actinf.Learning`). The script prints the fraction of agents
choosing the rewarded option before and after the switch and the expected
free energy of the two options; it saves ``reversal_trial.png`` (the first
trial after the switch) and ``reversal_summary_phi0.png``,
``reversal_summary_phi20.png`` into ``--out``. See ``docs/worlds/reversal.md``.

Precision: float32 (JAX's default, as ``actinf run``), so that
``actinf run reversal --agents 64 --trials 48 -O switch_trial=16 --forgetting 0.2``
gives the same numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from actinf import Learning
from actinf.plot import plot_agent_summary, plot_agent_trial
from actinf.run import default_agent, run_world
from actinf.worlds import ReversalWorld

OPTION_0, OPTION_1 = 1, 2  # choice states (and actions): start, option 0, option 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=64, help="number of agents (64)")
    parser.add_argument("--trials", type=int, default=48, help="trials per agent (48)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--out", type=Path, default=Path("out/reversal"), help="folder of the figures")
    parser.add_argument("--fast", action="store_true", help="tiny run (for the tests)")
    args = parser.parse_args(argv)
    if args.fast:
        args.agents, args.trials = 2, 4
    n = args.trials
    switch = max(n // 3, 1)  # 0-based index of the first trial rewarding option 1
    world = ReversalWorld(switch_trial=switch)
    rewarded = np.where(np.arange(n) < switch, OPTION_0, OPTION_1)
    block = max(min(8, switch, n - switch), 1)

    start = time.perf_counter()
    figures = []
    for forgetting in (0.0, 0.2):
        # Forgetting as an array, not a Python float: both agents share one compiled run.
        agent = default_agent(world, learning=Learning(1.0, jnp.asarray(forgetting)))
        traj = run_world(jax.random.key(args.seed), agent, world, trials=n, agents=args.agents)
        choice = traj.actions[:, :, 0, 1]  # [K, N]
        correct = (choice == rewarded).mean(axis=0)  # fraction choosing the rewarded option, per trial
        after = correct[switch:]
        reversed_at = np.flatnonzero(after > 0.5)
        print(f"Forgetting {forgetting}: {args.agents} agents x {n} trials, switch before trial {switch + 1}")
        before = correct[:switch][-block:].mean()
        print(f"  chose the rewarded option: last {block} trials before the switch {before:.2f},")
        early, late = after[:block].mean(), after[-block:].mean()
        print(f"    first {block} after it {early:.2f}, last {block} trials {late:.2f}")
        when = f"trial {switch + reversed_at[0] + 1}" if reversed_at.size else "never"
        print(f"    most agents chose option 1 from: {when}")
        # The expected free energy of the two options at the start of some trials (mean over agents):
        # ambiguity is the same for both, so the difference is all risk (pragmatic value).
        efe = traj.info.efe[:, :, 0, :].mean(axis=0)  # [N, 2]
        for i in sorted({switch - 1, switch, min(switch + block, n - 1), n - 1}):
            terms = traj.info.efe_terms[:, i, 0, :, :2].mean(axis=0)  # [2 options, risk and ambiguity]
            print(
                f"    trial {i + 1:2d}: G(option 0) - G(option 1) = {efe[i, 0] - efe[i, 1]:6.3f}"
                f" (risk {terms[0, 0] - terms[1, 0]:6.3f}, ambiguity {terms[0, 1] - terms[1, 1]:6.3f})"
            )
        reward = traj.utility.sum(axis=-1)
        print(f"  reward per trial (utility), mean over trials and agents: {reward.mean():.2f}\n")
        if forgetting > 0:
            figure = plot_agent_trial(traj, world.labels, trial=switch)
            figures.append(("reversal_trial.png", figure))
        title = f"Reversal (switch before trial {switch + 1}), forgetting {forgetting}"
        figure = plot_agent_summary(traj, world.labels, title=title)
        figures.append((f"reversal_summary_phi{int(forgetting * 100)}.png", figure))
    print(f"{time.perf_counter() - start:.1f} s (compiling included)")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, figure in figures:
        figure.savefig(args.out / name, dpi=96)
    print("Figures:", ", ".join(str(args.out / name) for name, _ in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
