"""NUTS as one loop of leapfrog steps: each sampler builds its own trees at its own pace.

numpyro's NUTS (Hoffman & Gelman 2014, with multinomial sampling and
Betancourt's generalised U-turn criterion, built iteratively as in Phan et
al. 2019) builds one tree per iteration in nested ``while_loop`` s. Under
``jax.vmap`` over :math:`B` samplers those loops run until every sampler's tree
is finished, so an iteration of the batch costs the longest of its :math:`B`
trees: with :math:`B = 200` and trees of at most :math:`2^3 - 1 = 7` leapfrog
steps, almost every kept iteration costs 7 steps while a sampler needs about 5
on average (docs/benchmarks.md, Fitting).

Here the same transition is written as a state machine whose step is **one
leapfrog step of every sampler**. A sampler's state holds its tree so far, the
subtree it is extending and that subtree's U-turn checkpoints; a step extends
the subtree by one leaf and then, as numpyro's loops would,

* when the subtree is full, turns or diverges, merges it into the tree
  (biased progressive sampling);
* when the tree then turns, diverges or reaches its largest depth, ends the
  iteration: the proposal becomes the new position, the warm-up adapter
  (numpyro's dual averaging and windowed covariance) is updated during the
  warm-up, and the next iteration starts with a fresh momentum;
* otherwise starts the next doubling in a random direction.

The pieces (leapfrog, leaf and tree merging, iterative U-turn checks, adapter,
momentum draw) are numpyro's own functions, and the random keys are split as
numpyro's ``sample_kernel`` splits them, so a sampler visits the same states as
numpyro's kernel started from the same state (tests/test_fit_nuts.py checks
it draw for draw). Only the schedule differs: a sampler whose tree is finished
starts its next iteration at once instead of waiting for the other samplers',
and the batch runs until every sampler has done its iterations. The samplers
are independent Markov chains, so the schedule changes no chain's law, only
what a batch costs: the leapfrog steps of its slowest sampler rather than the
sum over iterations of the longest tree.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Draw", "Sampler", "start", "step", "terminal_window"]


class Sampler(NamedTuple):
    """One sampler between two leapfrog steps (batched: a leading axis on every field).

    ``i`` counts finished iterations (-1: the start's potential is not evaluated
    yet, :func:`start`); ``z``, ``potential_energy`` and ``z_grad``
    are the position the current iteration started from, ``r`` and ``energy``
    its momentum and total energy; ``key`` is the next iteration's key. ``tree``
    is the tree so far, ``subtree`` the one being added to it in direction
    ``going_right`` (empty when ``subtree.num_proposals`` is 0), with its random
    key ``subtree_key``, the key ``merge_key`` of its merge into ``tree``, and
    its U-turn checkpoints ``r_ckpts``, ``r_sum_ckpts`` [depth, d]; ``tree_key``
    draws the next doubling's direction.
    """

    i: jax.Array
    z: jax.Array
    potential_energy: jax.Array
    z_grad: jax.Array
    r: jax.Array
    energy: jax.Array
    adapt_state: object
    key: jax.Array
    tree: object
    tree_key: jax.Array
    going_right: jax.Array
    subtree: object
    subtree_key: jax.Array
    merge_key: jax.Array
    r_ckpts: jax.Array
    r_sum_ckpts: jax.Array


class Draw(NamedTuple):
    """What an iteration that has just ended reports (numpyro's ``HMCState`` fields)."""

    z: jax.Array
    potential_energy: jax.Array
    energy: jax.Array
    num_steps: jax.Array
    diverging: jax.Array
    accept_prob: jax.Array


def _select(pred, new, old):
    """``new`` where ``pred`` else ``old``, leaf by leaf (one sampler: ``pred`` is a scalar)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _doubling(sampler: Sampler, tree, tree_key, max_depth: int) -> Sampler:
    """``sampler`` about to add a subtree to ``tree``, as one pass of numpyro's ``build_tree`` loop starts."""
    tree_key, direction_key, doubling_key = jax.random.split(tree_key, 3)
    going_right = jax.random.bernoulli(direction_key)
    subtree_key, merge_key = jax.random.split(doubling_key)
    d = sampler.z.shape[-1]
    zeros = jnp.zeros((max_depth, d), sampler.z.dtype)
    return sampler._replace(
        tree=tree,
        tree_key=tree_key,
        going_right=going_right,
        subtree=tree._replace(num_proposals=jnp.zeros_like(tree.num_proposals)),
        subtree_key=subtree_key,
        merge_key=merge_key,
        r_ckpts=zeros,
        r_sum_ckpts=zeros,
    )


def _iteration(sampler: Sampler, z, potential_energy, z_grad, adapt_state, key, i):
    """``(sampler, tree, tree_key)`` at the start of iteration ``i`` from ``z``, as numpyro's
    ``sample_kernel`` starts: the tree is the single point ``z`` with a fresh momentum, and
    ``tree_key`` is the key of its doublings (:func:`_doubling` starts the first)."""
    from numpyro.infer.hmc import momentum_generator
    from numpyro.infer.hmc_util import TreeInfo, euclidean_kinetic_energy

    key, momentum_key, transition_key = jax.random.split(key, 3)
    r = momentum_generator(z, adapt_state.mass_matrix_sqrt, momentum_key)
    energy = potential_energy + euclidean_kinetic_energy(adapt_state.inverse_mass_matrix, r)
    tree = TreeInfo(
        z,
        r,
        z_grad,
        z,
        r,
        z_grad,
        z,
        potential_energy,
        z_grad,
        energy,
        depth=jnp.asarray(0, jnp.result_type(int)),
        weight=jnp.zeros((), energy.dtype),
        r_sum=r,
        turning=jnp.asarray(False),
        diverging=jnp.asarray(False),
        sum_accept_probs=jnp.zeros((), energy.dtype),
        num_proposals=jnp.asarray(0, jnp.result_type(int)),
    )
    sampler = sampler._replace(
        i=i, z=z, potential_energy=potential_energy, z_grad=z_grad, r=r, energy=energy,
        adapt_state=adapt_state, key=key,
    )  # fmt: skip
    return sampler, tree, transition_key


def terminal_window(warmup: int) -> int:
    """The first iteration of the warm-up's last window (numpyro's and Stan's schedule).

    The warm-up adapts the step size throughout and the mass matrix in the
    middle windows; in the last one (50 iterations of 500) only the step size
    adapts, to the final mass matrix. With ``warmup`` under 20 there is a
    single window, and this is 0.
    """
    from numpyro.infer.hmc_util import build_adaptation_schedule

    return int(build_adaptation_schedule(int(warmup))[-1].start)


def start(hmc_state, depth: tuple[int, int], evaluated: bool = True) -> Sampler:
    """One sampler from numpyro's ``HMCState`` (``init_kernel``'s output), about to start iteration ``i``.

    ``evaluated=False``: the state's potential energy and gradient are
    placeholders (``init_kernel`` given them as ``ParamInfo``, so that starting
    compiles no potential). The sampler's first :func:`step` then evaluates
    them, as a leapfrog step of size zero, and starts iteration 0; the sampler
    marks this with ``i = -1``.
    """
    max_depth = max(depth)
    blank = Sampler(*([None] * len(Sampler._fields)))
    sampler = _doubling(
        *_iteration(
            blank,
            hmc_state.z,
            hmc_state.potential_energy,
            hmc_state.z_grad,
            hmc_state.adapt_state,
            hmc_state.rng_key,
            hmc_state.i,
        ),
        max_depth,
    )
    if evaluated:
        return sampler
    return sampler._replace(i=jnp.full_like(hmc_state.i, -1), key=hmc_state.rng_key)


def step(
    sampler: Sampler,
    potential,
    warmup: int,
    depth: tuple[int, int],
    active,
    max_delta_energy: float = 1000.0,
    deepen: int | None = None,
) -> tuple[Sampler, jax.Array, Draw]:
    """One leapfrog step of one sampler (``jax.vmap`` it over samplers).

    Args:
      sampler: its state.
      potential: :math:`z \\mapsto -\\ln p(z, \\text{data})` for this sampler.
      warmup: the number of warm-up iterations (the adapter's schedule).
      depth: the largest tree depth ``(during warm-up, after)``.
      active: whether to step at all (False: the state is returned unchanged).
      max_delta_energy: the energy error beyond which a trajectory diverges (numpyro's 1000).
      deepen: the first iteration whose tree may reach ``depth[1]`` (default
        ``warmup``, numpyro's schedule; :func:`terminal_window` starts the
        warm-up's last window, where only the step size adapts, at the depth
        of the kept iterations).

    Returns:
      ``(sampler, ended, draw)``: the new state; whether an iteration ended at
      this step (then ``draw`` is its result and ``sampler.i`` has grown by one).
    """
    from numpyro.infer.hmc_util import (
        IntegratorState,
        _build_basetree,
        _combine_tree,
        _get_leaf,
        _is_iterative_turning,
        _leaf_idx_to_ckpt_idxs,
        euclidean_kinetic_energy,
        velocity_verlet,
        warmup_adapter,
    )

    max_depth = max(depth)
    _, vv_update = velocity_verlet(potential, euclidean_kinetic_energy)
    _, adapt = warmup_adapter(warmup, dense_mass=True)
    adapt_state = sampler.adapt_state
    inverse_mass = adapt_state.inverse_mass_matrix
    tree, subtree = sampler.tree, sampler.subtree
    going_right = sampler.going_right

    # one leaf, from the end of the subtree (or of the tree, when the subtree is empty);
    # a sampler not yet evaluated (start(..., evaluated=False)) steps by zero from its position
    fresh = sampler.i < 0
    empty = subtree.num_proposals == 0
    z, r, z_grad = _get_leaf(_select(empty, tree, subtree), going_right)
    z, r, z_grad = _select(fresh, (sampler.z, jnp.zeros_like(r), jnp.zeros_like(z_grad)), (z, r, z_grad))
    subtree_key, transition_key = jax.random.split(sampler.subtree_key)
    leaf = _build_basetree(
        vv_update,
        euclidean_kinetic_energy,
        z,
        r,
        z_grad,
        inverse_mass,
        jnp.where(fresh, 0.0, adapt_state.step_size),
        going_right,
        sampler.energy,
        max_delta_energy,
    )
    leaf = jax.tree.map(lambda x, like: jnp.asarray(x, jnp.result_type(like)), leaf, subtree)
    merged_leaf = _combine_tree(subtree, leaf, inverse_mass, going_right, transition_key, False)
    grown = _select(empty, leaf, merged_leaf)
    # the subtree's U-turn checks against its checkpoints (numpyro's _iterative_build_subtree)
    index = subtree.num_proposals
    low, high = _leaf_idx_to_ckpt_idxs(index)
    even = index % 2 == 0
    r_ckpts = jnp.where(even, sampler.r_ckpts.at[high].set(leaf.r_right), sampler.r_ckpts)
    r_sum_ckpts = jnp.where(even, sampler.r_sum_ckpts.at[high].set(grown.r_sum), sampler.r_sum_ckpts)
    turning = _is_iterative_turning(inverse_mass, leaf.r_right, grown.r_sum, r_ckpts, r_sum_ckpts, low, high)
    subtree_done = (grown.num_proposals >= 2**tree.depth) | turning | grown.diverging

    # the subtree merged into the tree (numpyro's _double_tree)
    finished = grown._replace(depth=tree.depth, turning=turning)
    merged = _combine_tree(tree, finished, inverse_mass, going_right, sampler.merge_key, True)
    largest = jnp.where(sampler.i < (warmup if deepen is None else deepen), depth[0], depth[1])
    ended = subtree_done & ((merged.depth >= largest) | merged.turning | merged.diverging)

    # the iteration's end (numpyro's sample_kernel after build_tree)
    accept_prob = merged.sum_accept_probs / merged.num_proposals
    proposal = IntegratorState(merged.z_proposal, sampler.r, merged.z_proposal_pe, merged.z_proposal_grad)
    adapted = _select(sampler.i < warmup, adapt(sampler.i, accept_prob, proposal, adapt_state), adapt_state)
    # the next iteration starts from the proposal; a sampler not yet evaluated starts iteration 0
    # from its position, with the potential and gradient its zero step has just evaluated
    origin = _select(
        fresh,
        (sampler.z, leaf.z_proposal_pe, leaf.z_proposal_grad, adapt_state, jnp.zeros_like(sampler.i)),
        (merged.z_proposal, merged.z_proposal_pe, merged.z_proposal_grad, adapted, sampler.i + 1),
    )
    z, potential_energy, z_grad, adapt_state, i = origin
    following, point, tree_key = _iteration(sampler, z, potential_energy, z_grad, adapt_state, sampler.key, i)
    anew = fresh | ended
    # one doubling starts: the first of the next iteration, or the next of this one
    following = _select(anew, following, sampler)
    doubled = _doubling(
        following,
        _select(anew, point, merged),
        jnp.where(anew, tree_key, sampler.tree_key),
        max_depth,
    )
    extended = sampler._replace(
        subtree=grown, subtree_key=subtree_key, r_ckpts=r_ckpts, r_sum_ckpts=r_sum_ckpts
    )
    new = _select(anew | subtree_done, doubled, extended)
    ended = ended & ~fresh
    new = _select(active, new, sampler)
    draw = Draw(
        merged.z_proposal,
        merged.z_proposal_pe,
        merged.z_proposal_energy,
        merged.num_proposals,
        merged.diverging,
        accept_prob,
    )
    return new, active & ended, draw
