"""Fits on every CPU core: participants split over several host devices.

JAX runs a program on one device, and on a CPU one device uses the cores
poorly for the many small operations of an agent's step. XLA can present the
CPU as several devices (``--xla_force_host_platform_device_count``, read when
JAX starts its CPU backend, that is at the first computation); a batch of
participants placed across them (:func:`shard_batch`) is then partitioned by
the compiler, each device running its share on its own core. The values are
the same; on the 2-core machine of ``docs/benchmarks.md`` a value and gradient
of 400 participants of the explore/exploit task takes 0.6 to 0.35 of the
single-device time.

``actinf fit`` and ``actinf recover`` call :func:`use_cpu_cores` before any
computation. In a script, call it first (or set ``XLA_FLAGS`` yourself);
:func:`~actinf.fit.estimate.fit_map`, :func:`~actinf.fit.estimate.fit_laplace`
and :func:`~actinf.fit.sampling.fit_nuts` then split their participants over
the devices by themselves (when their number is a multiple of the devices).
"""

from __future__ import annotations

import os

import jax
import numpy as np

__all__ = ["shard_batch", "use_cpu_cores"]

_FLAG = "--xla_force_host_platform_device_count"


def use_cpu_cores(count: int | None = None) -> int:
    """Ask XLA for ``count`` CPU devices (default: one per core) when JAX starts its CPU backend.

    Has no effect once JAX has computed anything (the backend exists), and
    leaves a device count already in ``XLA_FLAGS`` as it is.

    Returns:
      the device count asked for (or already asked for in ``XLA_FLAGS``).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in flags.split():
        if flag.startswith(_FLAG + "="):
            return int(flag.split("=", 1)[1])
    count = (os.cpu_count() or 1) if count is None else int(count)
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()
    return count


def shard_batch(tree, axis: int = 0):
    """``tree`` with every array split along ``axis`` over the devices of the default backend.

    Unchanged with one device, or when an array's ``axis`` is not a multiple of
    the device count (the caller pads). Computations on the result are
    partitioned by XLA (GSPMD) with the same values as on one device.
    """
    devices = jax.devices()
    n = len(devices)
    leaves = jax.tree.leaves(tree)
    if n == 1 or not leaves or any(np.ndim(x) <= axis or np.shape(x)[axis] % n for x in leaves):
        return tree
    from jax.sharding import AxisType, NamedSharding, PartitionSpec

    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",), axis_types=(AxisType.Auto,))
    spec = PartitionSpec(*([None] * axis), "batch")
    return jax.device_put(tree, NamedSharding(mesh, spec))
