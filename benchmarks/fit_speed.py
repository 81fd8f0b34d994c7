"""Speed and recovery of model fitting (issue: fitting active inference models to behaviour).

    PYTHONPATH=src python benchmarks/fit_speed.py [--participants 100] [--trials 25]
        [--nuts-participants 10] [--chains 4] [--warmup 500] [--draws 500]
        [--nuts-probe 10,60] [--devices N] [--json OUT]

Simulates participants of the explore/exploit task from the prior, then times
(wall clock, after the first call compiled) MAP, Laplace and, for a subset of
participants, NUTS; prints the recovery (correlation of true and estimated
parameters). Records the machine, the date and the numbers as JSON.

``--nuts-probe A,B`` estimates a NUTS run too long to wait for: it runs the
sampler twice, with A + A and B + B warm-up and kept iterations, and
extrapolates linearly to ``--warmup`` + ``--draws`` from the cost of the
2 (B - A) extra iterations. The early warm-up iterations search for a step size
and are not typical, so this is an estimate, recorded as one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from actinf.fit.devices import use_cpu_cores  # noqa: E402
from actinf.fit.estimate import fit_laplace, fit_map  # noqa: E402
from actinf.fit.likelihood import sample_prior, simulate  # noqa: E402
from actinf.fit.tasks import make_task  # noqa: E402


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree.leaves(out))
    return out, time.perf_counter() - start


def recovery(true, estimated, names):
    return {
        n: {
            "r": float(np.corrcoef(true[:, i], estimated[:, i])[0, 1]),
            "bias": float(np.mean(estimated[:, i] - true[:, i])),
        }
        for i, n in enumerate(names)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="explore-exploit")
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--nuts-participants", type=int, default=0)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--nuts-probe", default=None, help="A,B: extrapolate NUTS from two short runs")
    parser.add_argument(
        "--max-tree-depth",
        default=None,
        help="W,S: NUTS tree depth during and after warm-up (default: fit_nuts's)",
    )
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--devices", type=int, default=None, help="CPU devices to split over (default: one per core)"
    )
    args = parser.parse_args()
    depth = {}
    if args.max_tree_depth:
        depth = {"max_tree_depth": tuple(int(x) for x in args.max_tree_depth.split(","))}
    devices = use_cpu_cores(args.devices)  # before anything computes
    task = make_task(args.task)
    z = sample_prior(jax.random.key(0), task, args.participants)
    behaviour, t_sim = timed(simulate, jax.random.key(1), task, z, args.trials)
    result = {"task": args.task, "participants": args.participants, "trials": args.trials}
    _, first = timed(fit_map, task, behaviour)
    est, t_map = timed(fit_map, task, behaviour)
    _, first_lap = timed(fit_laplace, task, behaviour)
    lap, t_lap = timed(fit_laplace, task, behaviour)
    print(f"MAP {t_map:.1f} s (first call {first:.1f} s), Laplace {t_lap:.1f} s", file=sys.stderr, flush=True)
    result.update(
        simulate_s=t_sim,
        map_first_call_s=first,
        map_s=t_map,
        laplace_first_call_s=first_lap,
        laplace_s=t_lap,
        map_recovery=recovery(np.asarray(z), np.asarray(est.z), task.names),
        laplace_converged=float(np.mean(np.asarray(lap.converged))),
    )
    if args.nuts_participants and args.nuts_probe:
        from actinf.fit.sampling import fit_nuts

        sub = jax.tree.map(lambda x: x[: args.nuts_participants], behaviour)
        a, b = (int(n) for n in args.nuts_probe.split(","))
        probes = {}
        for n in (a, b):
            print(f"NUTS probe: {n} + {n} iterations ...", file=sys.stderr, flush=True)
            idata, seconds = timed(fit_nuts, task, sub, chains=args.chains, warmup=n, draws=n, **depth)
            steps = np.asarray(idata.sample_stats["n_steps"])  # [chain, draw, participant]
            probes[n] = {
                "seconds": seconds,
                "mean_leapfrog_steps_kept": float(steps.mean()),
                # a device's batch runs until its slowest sampler is done (actinf.fit.nuts)
                "slowest_sampler_leapfrog_steps_kept": float(steps.mean(axis=1).max()),
            }
            print(f"  {seconds:.1f} s, {probes[n]}", file=sys.stderr, flush=True)
        per_iteration = (probes[b]["seconds"] - probes[a]["seconds"]) / (2 * (b - a))
        total = args.warmup + args.draws
        result.update(
            nuts_participants=args.nuts_participants,
            nuts_chains=args.chains,
            nuts_probe=probes,
            nuts_seconds_per_iteration=per_iteration,
            nuts_estimated_s=probes[a]["seconds"] + per_iteration * (total - 2 * a),
            nuts_estimated_for=f"{args.chains} chains x ({args.warmup} warm-up + {args.draws} draws)",
        )
    elif args.nuts_participants:
        from actinf.fit.sampling import DEFAULT_TREE_DEPTH, diagnostics, fit_nuts

        sub = jax.tree.map(lambda x: x[: args.nuts_participants], behaviour)

        kw = dict(chains=args.chains, warmup=args.warmup, draws=args.draws, **depth)
        print(f"NUTS {kw} ...", file=sys.stderr, flush=True)
        idata, t_nuts = timed(fit_nuts, task, sub, **kw, progress=True)
        post = np.asarray(idata.posterior["z"].mean(("chain", "draw")))
        steps = idata.sample_stats["n_steps"].values  # [chain, draw, participant]
        # a device's batch runs until its slowest sampler is done (actinf.fit.nuts); in lockstep
        # (numpyro's loops under vmap) every iteration would cost the longest trajectory of all
        lockstep = steps.transpose(1, 0, 2).reshape(args.draws, -1).max(axis=1)
        result.update(
            nuts_participants=args.nuts_participants,
            nuts_settings=kw | {"max_tree_depth": depth.get("max_tree_depth", DEFAULT_TREE_DEPTH)},
            nuts_s_including_compile=t_nuts,
            nuts_diagnostics=diagnostics(idata),
            nuts_mean_steps_after_warmup=float(steps.mean()),
            nuts_slowest_sampler_steps_after_warmup=float(steps.mean(axis=1).max()),
            nuts_lockstep_steps_after_warmup=float(lockstep.mean()),
            nuts_recovery=recovery(np.asarray(z[: args.nuts_participants]), post, task.names),
        )
    result.update(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        date=datetime.date.today().isoformat(),
        jax=jax.__version__,
        dtype="float64",
        devices=f"{len(jax.devices())} x {jax.devices()[0].platform} (asked for {devices})",
    )
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
