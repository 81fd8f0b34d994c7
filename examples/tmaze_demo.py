"""SPM's three-arm maze (``DEM_demo_MDP_X.m``): an agent learns where the reward is.

Run::

    python examples/tmaze_demo.py [--trials 32] [--seed 0] [--out out/]

The agent starts each trial at the centre of a T-shaped maze; one upper arm is
baited. The context follows SPM's schedule: reward on the right in trials 1
and 3, on the left in every other trial (``--p-right P`` samples it instead,
right with probability ``P``). The agent samples its own outcomes and actions
with SPM's scheme and learns its prior over the context (the counts ``d``)
across trials. While the context is uncertain it checks the cue in the lower
arm first; once it has learned that the reward is on the left, it goes straight
there. See ``docs/tmaze.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # SPM's double precision

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from actinf.models import TMAZE_LABELS, simulate_tmaze, summarise_tmaze  # noqa: E402
from actinf.models.tmaze import REWARD, SHOCK  # noqa: E402
from actinf.plot import plot_trials  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="number of trials (32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder of the figure")
    parser.add_argument(
        "--p-right",
        type=float,
        default=None,
        help="sample the context, reward right with this probability (default: SPM's schedule)",
    )
    args = parser.parse_args(argv)

    console = Console()
    key = jax.random.PRNGKey(args.seed)
    contexts = None
    if args.p_right is not None:
        key, sub = jax.random.split(key)
        contexts = np.asarray(jax.random.bernoulli(sub, args.p_right, (args.trials,)), np.int32)

    start = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("trials (the first one compiles)", total=args.trials)
        run = simulate_tmaze(
            key,
            args.trials,
            contexts=contexts,
            callback=lambda i, result: progress.advance(task),
        )
    elapsed = time.perf_counter() - start

    names = TMAZE_LABELS
    table = Table(title=f"Three-arm maze, {args.trials} trials, seed {args.seed}")
    for column in ("trial", "context", "1st move", "2nd move", "reward", "w first", "w final"):
        table.add_column(column, justify="right" if column[0] in "tw" else "left", no_wrap=True)
    for i in range(args.trials):
        rewards = run.rewards[i]
        rewarded, shocked = (rewards == REWARD).any(), (rewards == SHOCK).any()
        reward = {(True, False): "yes", (True, True): "yes+shock", (False, True): "shock"}
        reward = reward.get((bool(rewarded), bool(shocked)), "no")
        table.add_row(
            str(i + 1),
            names.states[1][run.contexts[i]],
            names.states[0][run.locations[i, 1]],
            names.states[0][run.locations[i, 2]],
            reward,
            f"{run.precision[i, 0]:.3f}",
            f"{run.precision[i, -1]:.3f}",
        )
    console.print(table)
    console.print(summarise_tmaze(run))
    path = args.out / "tmaze_trials.png"
    plot_trials(run.results, labels=names, path=path)
    console.print(f"Simulated in {elapsed:.1f} s. Figure: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
