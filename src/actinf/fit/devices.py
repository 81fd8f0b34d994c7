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

Loops whose length differs between the members of a batch (NUTS's trees) run
on each device's share alone (:func:`per_device`), and :func:`use_cpu_cores`
also turns off XLA:CPU's YNNPACK fusions, which held memory at every pass
through such loops on several devices.

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

from .._xla import YNN_FLAG

__all__ = ["per_device", "shard_batch", "use_cpu_cores"]

_FLAG = "--xla_force_host_platform_device_count"


def use_cpu_cores(count: int | None = None) -> int:
    """Ask XLA for ``count`` CPU devices (default: one per core) when JAX starts its CPU backend.

    Also turns XLA:CPU's YNNPACK fusions off (``--xla_cpu_experimental_ynn_fusion_type=``),
    unless ``XLA_FLAGS`` already sets them. With two devices they held on to
    memory at every pass through a loop: a NUTS fit of 50 participants x 50
    trials grew by 8 MB per iteration with them and by 0.5 MB without, and
    100 participants x 200 trials reached 13.7 GB. Without them the fitting
    likelihood is also faster here (a value and gradient of 400 explore/exploit
    participants on one device: 193 ms instead of 250). They are left on
    outside fits: some of ``actinf bench``'s grids run two to four times faster
    with them. With them off, actinf writes its small products as sums of
    products (:func:`actinf._xla.sums_of_products`).

    Has no effect once JAX has computed anything (the backend exists), and
    leaves a device count already in ``XLA_FLAGS`` as it is.

    Returns:
      the device count asked for (or already asked for in ``XLA_FLAGS``).
    """
    flags = os.environ.get("XLA_FLAGS", "").split()
    names = {flag.split("=", 1)[0] for flag in flags}
    asked = [int(flag.split("=", 1)[1]) for flag in flags if flag.startswith(_FLAG + "=")]
    if asked:
        count = asked[-1]
    else:
        count = (os.cpu_count() or 1) if count is None else int(count)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        flags.append(f"{_FLAG}={count}")
    if YNN_FLAG not in names:
        flags.append(f"{YNN_FLAG}=")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    return count


def shard_batch(tree, axis: int = 0):
    """``tree`` with every array split along ``axis`` over the devices of the default backend.

    Unchanged with one device, or when an array's ``axis`` is not a multiple of
    the device count (the caller pads). Computations on the result are
    partitioned by XLA (GSPMD) with the same values as on one device.
    """
    devices = jax.devices()
    if not _splits([(leaf, axis) for leaf in jax.tree.leaves(tree)], len(devices)):
        return tree
    from jax.sharding import NamedSharding

    return jax.device_put(tree, NamedSharding(_mesh(devices), _spec(axis)))


def _splits(batched, n: int) -> bool:
    """Whether arrays ``(x, axis)`` can be split over ``n`` devices: several devices,
    at least one array, and every one with that axis a multiple of ``n``."""
    return n > 1 and bool(batched) and all(np.ndim(x) > a and np.shape(x)[a] % n == 0 for x, a in batched)


def _mesh(devices):
    """The one-axis mesh ``batch`` over ``devices``."""
    from jax.sharding import AxisType

    return jax.sharding.Mesh(np.asarray(devices), ("batch",), axis_types=(AxisType.Auto,))


def _spec(axis: int | None):
    """Split along ``axis`` over the mesh's ``batch`` axis (None: the same on every device)."""
    from jax.sharding import PartitionSpec

    return PartitionSpec() if axis is None else PartitionSpec(*([None] * axis), "batch")


def per_device(fn, in_axes: tuple, out_axes: tuple):
    """``fn`` run by each device on its own share of a batch, with no traffic between them.

    For loops over a batch whose length depends on the batch, NUTS's tree
    building above all: under ``jax.vmap`` a ``while_loop`` runs until every
    member is done, and a batch partitioned by XLA (:func:`shard_batch`) then
    has the devices agree on that at every pass through the loop (an
    ``all-reduce`` of the loop's condition). With ``jax.shard_map`` each device
    runs the loop over its own members to its own end. The values are the
    same: the members of a vmapped batch do not depend on each other.

    Call it inside a traced function. With one device, or when a batched
    argument's axis is not a multiple of the device count (:func:`shard_batch`
    leaves such a batch whole), ``fn`` is called as it is.

    Args:
      fn: a function of positional arguments, vectorised over the batch.
      in_axes: per argument, the batch axis of every array in it, or None (the
        same for every device).
      out_axes: per output (``fn`` returns a tuple), the batch axis of every array in it.
    """
    devices = jax.devices()

    def run(*args):
        batched = [
            (leaf, axis)
            for arg, axis in zip(args, in_axes, strict=True)
            if axis is not None
            for leaf in jax.tree.leaves(arg)
        ]
        if not _splits(batched, len(devices)):
            return fn(*args)
        mapped = jax.shard_map(
            fn,
            mesh=_mesh(devices),
            in_specs=tuple(_spec(a) for a in in_axes),
            out_specs=tuple(_spec(a) for a in out_axes),
            check_vma=False,
        )
        return mapped(*args)

    return run
