"""Largest error against SPM per output array, over every reference case.

Usage::

    python benchmarks/spm_accuracy.py [--float32] [CASES_DIR]

Runs every reference case (default ``tests/data/vbx``) with actinf's SPM scheme
and prints, per output array, the largest absolute error (probabilities,
precisions, counts) or relative error (free energies) over all cases. With
``--float32`` the scheme runs in single precision (JAX's default), which shows
the accuracy of the fast path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", default="tests/data/vbx")
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", not args.float32)
    from actinf.spm.io import iter_case_paths, load_case
    from actinf.spm.runner import compare, run_case

    worst: dict[str, tuple[float, str]] = {}
    paths = iter_case_paths([Path(args.cases)])
    for i, path in enumerate(paths):
        case = load_case(path)
        errors = compare(run_case(case), case)
        for name, err in errors.items():
            if err >= worst.get(name, (-1.0, ""))[0]:
                worst[name] = (err, case.name)
        jax.clear_caches()
        print(f"\r{i + 1}/{len(paths)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    precision = "float32" if args.float32 else "float64"
    print(f"| array | largest error ({precision}) | case |")
    print("| --- | --- | --- |")
    for name in sorted(worst):
        err, case = worst[name]
        print(f"| {name} | {err:.2e} | {case} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
