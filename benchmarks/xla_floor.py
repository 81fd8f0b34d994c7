"""What XLA:CPU itself costs: the floor under an agent's step and a program's compilation.

    PYTHONPATH=src python benchmarks/xla_floor.py [--vs-bench] [--json OUT]

Measurements that bound what ``actinf bench`` can reach on this machine,
whatever the agent's code (docs/benchmarks.md, "Why some targets are missed"):

* **a bare closed-loop step**, for one agent and for 256: 16 steps in one
  ``lax.scan``, each a world draw (inverse CDF of a column of ``A``), one Bayes
  update of an 8-state belief (an 8 x 8 product and a softmax), a value per
  action (one more product), a softmax over 4 actions, an action draw and a
  state draw, from uniforms drawn before the loop; 256 agents are the same
  episode under ``vmap`` (shared ``A`` and ``B``, as the bench's populations
  share their model). No expected free energy, no policies, no second factor: a
  step far simpler than an active inference agent's, in float32 like the bench.
* **compilation per call site of the random-number generator**: a program that
  draws with ``jax.random.uniform`` from 1, 10 and 20 keys compiled from scratch.
* with ``--vs-bench``: ``actinf bench``'s maze with policies of length 1, one
  agent and 256, for actinf and (when installed) pymdp, timed in the same
  process (:func:`actinf.bench.time_workload`), so that the floor, the two
  libraries and ten times pymdp are compared within one hour of this machine.

Prints the medians and, with ``--json``, writes them with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_seconds(fn, *args, repeats: int = 300) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bare_step_seconds(steps: int = 16, agents: int = 1) -> float:
    """Median seconds per step of the bare closed loop (see the module docstring), for
    ``agents`` agents at once (one ``vmap``, the model shared)."""
    A = jax.random.dirichlet(jax.random.key(0), jnp.ones(5), (8,)).T  # [5, 8]
    B = jax.random.dirichlet(jax.random.key(1), jnp.ones(8), (8, 4)).transpose(2, 0, 1)  # [8, 8, 4]

    def episode(uniforms):
        def step(carry, u):
            q, s = carry
            o = jnp.argmax(jnp.cumsum(A[:, s]) > u[0])
            q = jax.nn.softmax(jnp.log(B[:, :, 0] @ q + 1e-16) + jnp.log(A[o] + 1e-16))
            value = jnp.einsum("su,s->u", B.sum(0), q)
            p = jax.nn.softmax(-4.0 * value)
            a = jnp.argmax(jnp.cumsum(p) > u[1])
            s = jnp.argmax(jnp.cumsum(B[:, s, a]) > u[0])
            return (q, s), a

        return jax.lax.scan(step, (jnp.ones(8) / 8, 0), uniforms)[1]

    uniforms = jax.random.uniform(jax.random.key(2), (agents, steps, 2))
    repeats = 300 if agents == 1 else 100
    return _median_seconds(jax.jit(jax.vmap(episode)), uniforms, repeats=repeats) / steps


def generator_compile_seconds(sites: int) -> float:
    """Seconds to lower and compile a program with ``sites`` calls of ``jax.random.uniform``."""

    def program(key):
        keys = jax.random.split(key, sites)
        return sum(jax.random.uniform(keys[i], (3,)).sum() for i in range(sites))

    start = time.perf_counter()
    jax.jit(program).lower(jax.random.key(0)).compile()
    return time.perf_counter() - start


def bench_maze(agents: int) -> dict:
    """``actinf bench``'s maze, policies of length 1, ``agents`` agents: agent-steps per second
    (medians) of actinf and, when installed, pymdp, timed alternately in this process."""
    from actinf import bench  # noqa: PLC0415  (only with --vs-bench)

    row = bench.time_workload(bench.Workload("maze", 0, 1, agents), vs_pymdp=bench.pymdp_available())
    return {side: row[side]["steps_per_s"]["median"] for side in ("actinf", "pymdp") if side in row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write the numbers here")
    parser.add_argument(
        "--vs-bench", action="store_true", help="also time actinf bench's maze (L = 1, 1 and 256 agents)"
    )
    args = parser.parse_args()
    steps = {k: bare_step_seconds(agents=k) for k in (1, 256)}
    compile_s = {n: generator_compile_seconds(n) for n in (1, 10, 20)}
    for k, s in steps.items():
        print(f"bare closed-loop step, {k:3d} agents: {s * 1e6:7.2f} us ({k / s:12,.0f} agent-steps/s)")
    for n, s in compile_s.items():
        print(f"compile with {n:2d} generator call sites: {s:.2f} s")
    maze = {}
    if args.vs_bench:
        for k in (1, 256):
            maze[str(k)] = rates = bench_maze(k)
            floor = k / steps[k]
            line = ", ".join(f"{side} {rate:,.0f}" for side, rate in rates.items())
            print(f"maze L=1, {k:3d} agents, agent-steps/s: {line}; bare step {floor:,.0f}")
            if "pymdp" in rates:
                print(f"  ten times pymdp is {10 * rates['pymdp'] / floor:.2f} of the bare step's rate")
    if args.json:
        result = {
            "machine": {"platform": platform.platform(), "jax": jax.__version__},
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "bare_step_s": steps[1],
            "bare_step_s_by_agents": {str(k): s for k, s in steps.items()},
            "generator_compile_s": {str(n): s for n, s in compile_s.items()},
        }
        if maze:
            result["maze_L1_steps_per_s"] = maze
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
