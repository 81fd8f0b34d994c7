"""actinf.fit.nuts against numpyro's own NUTS kernel, draw for draw.

The state machine (one leapfrog step of every sampler per call) must visit the
states numpyro's ``sample_kernel`` visits from the same start: the same
positions, energies, tree sizes, divergences, acceptance statistics and adapted
step sizes, only on its own schedule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

pytest.importorskip("numpyro")

from actinf.fit import nuts  # noqa: E402

B, D = 5, 3


def _potential(a):
    """A skewed, correlated target per sampler: ``0.5 |a z|^2 + 0.05 sum z^4 + 0.3 z_0^3``-ish."""

    def potential(z):
        y = a @ z
        return 0.5 * jnp.sum(y**2) + 0.05 * jnp.sum(z**4) + 0.1 * jnp.tanh(z[0]) ** 3

    return potential


def _row(x, step_size, b):
    """Sampler ``b``'s (z, potential, n_steps, accept, diverging, step size) from numpyro's
    ``HMCState`` or a :class:`nuts.Draw` (the same field names)."""
    return (
        np.asarray(x.z[b]),
        float(x.potential_energy[b]),
        int(x.num_steps[b]),
        float(x.accept_prob[b]),
        bool(x.diverging[b]),
        float(step_size[b]),
    )


def _numpyro_and_ours(warmup, iterations, depth, scale, evaluated):
    """Both samplers' draws, as lists per sampler of (z, potential, n_steps, accept, diverging, step size).

    ``evaluated=False``: ours starts from placeholders for the potential and its
    gradient and evaluates them at its first step, as ``fit_nuts`` does.
    """
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import ParamInfo

    a = jax.random.normal(jax.random.PRNGKey(3), (B, D, D)) * 0.7 + jnp.eye(D)[None] * scale
    init_kernel, sample_kernel = hmc(potential_fn_gen=_potential, algo="NUTS")

    def init(z, key, a):
        return init_kernel(
            z,
            warmup,
            model_args=(a,),
            rng_key=key,
            dense_mass=True,
            step_size=1.0,
            inverse_mass_matrix=jnp.eye(D),
            max_tree_depth=depth,
        )

    z0 = jax.random.normal(jax.random.PRNGKey(1), (B, D))
    state = jax.vmap(init)(z0, jax.random.split(jax.random.PRNGKey(2), B), a)

    kernel = jax.jit(jax.vmap(lambda s, a: sample_kernel(s, model_args=(a,))))
    theirs = [[] for _ in range(B)]
    s = state
    for _ in range(iterations):
        s = kernel(s, a)
        for b in range(B):
            theirs[b].append(_row(s, s.adapt_state.step_size, b))

    @jax.jit
    def step(sampler):
        return jax.vmap(lambda x, a: nuts.step(x, _potential(a), warmup, depth, x.i < iterations))(sampler, a)

    ours = [[] for _ in range(B)]
    if evaluated:
        sampler = jax.vmap(lambda x: nuts.start(x, depth))(state)
    else:
        placeholders = jax.vmap(lambda z: ParamInfo(z, jnp.zeros(()), jnp.zeros_like(z)))(z0)
        blank = jax.vmap(init)(placeholders, jax.random.split(jax.random.PRNGKey(2), B), a)
        sampler = jax.vmap(lambda x: nuts.start(x, depth, evaluated=False))(blank)
    steps = 0
    while int(sampler.i.min()) < iterations:
        sampler, ended, draw = step(sampler)
        steps += 1
        for b in np.nonzero(np.asarray(ended))[0]:
            ours[b].append(_row(draw, sampler.adapt_state.step_size, b))
    return theirs, ours, steps


@pytest.fixture(autouse=True)
def _numpyro_broadcasts():
    with jax.numpy_rank_promotion("allow"):  # numpyro broadcasts by rank promotion, by design
        yield


@pytest.mark.parametrize(
    ("warmup", "iterations", "depth", "scale", "evaluated"),
    [
        # fit_nuts's way: the start evaluated at the first step; a middle adaptation window
        # ends at iteration 26
        (30, 50, (2, 3), 2.0, False),
        (0, 12, (3, 3), 1.0, True),  # numpyro's own start; no warm-up: fixed step size and mass matrix
    ],
)
def test_each_sampler_visits_numpyros_states(warmup, iterations, depth, scale, evaluated):
    theirs, ours, steps = _numpyro_and_ours(warmup, iterations, depth, scale, evaluated)
    for b in range(B):
        assert len(ours[b]) == iterations
        for n in range(iterations):
            z, pe, n_steps, accept, diverging, step_size = ours[b][n]
            z_ref, pe_ref, n_ref, accept_ref, diverging_ref, step_size_ref = theirs[b][n]
            assert (n_steps, diverging) == (n_ref, diverging_ref), (b, n)
            np.testing.assert_allclose(z, z_ref, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose([pe, step_size], [pe_ref, step_size_ref], rtol=1e-12)
            np.testing.assert_allclose(accept, accept_ref, rtol=1e-12, atol=1e-15)  # a probability
    # not lockstep: the batch took fewer leapfrog steps than the longest tree per iteration would
    longest = sum(max(theirs[b][n][2] for b in range(B)) for n in range(iterations))
    total = [sum(draw[2] for draw in ours[b]) for b in range(B)]
    assert steps == max(total) + (not evaluated) < longest
    trees = {draw[2] for b in range(B) for draw in theirs[b]}
    assert len(trees) > 1  # trees of several sizes: U-turns and the depth limit both end trees
    # and divergences: a step size of 1 is too large for these targets at first
    assert any(draw[4] for b in range(B) for draw in theirs[b])


def test_an_inactive_sampler_stays_where_it_is():
    from numpyro.infer.hmc import hmc

    init_kernel, _ = hmc(potential_fn_gen=_potential, algo="NUTS")
    a = jnp.eye(D) * 2.0
    state = init_kernel(jnp.ones(D), 10, model_args=(a,), rng_key=jax.random.PRNGKey(0), dense_mass=True)
    sampler = nuts.start(state, (2, 3))
    after, ended, _ = nuts.step(sampler, _potential(a), 10, (2, 3), jnp.asarray(False))
    assert not bool(ended)
    for x, y in zip(jax.tree.leaves(after), jax.tree.leaves(sampler), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("deepen", [None, nuts.terminal_window(30)])
def test_trees_reach_the_kept_depth_from_the_iteration_deepen(deepen):
    """Warm-up trees stop at ``depth[0]`` until iteration ``deepen`` (default: the warm-up's end)."""
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import ParamInfo

    warmup, depth = 30, (1, 3)
    a = jax.random.normal(jax.random.PRNGKey(3), (B, D, D)) * 0.3 + jnp.eye(D)[None]
    init_kernel, _ = hmc(potential_fn_gen=_potential, algo="NUTS")

    def init(z, key, a):
        blank = ParamInfo(z, jnp.zeros(()), jnp.zeros_like(z))
        state = init_kernel(blank, warmup, model_args=(a,), rng_key=key, dense_mass=True)
        return nuts.start(state, depth, evaluated=False)

    sampler = jax.vmap(init)(jnp.zeros((B, D)), jax.random.split(jax.random.PRNGKey(4), B), a)

    @jax.jit
    def step(sampler):
        def one(x, a):
            return nuts.step(x, _potential(a), warmup, depth, x.i < warmup, deepen=deepen)

        return jax.vmap(one)(sampler, a)

    sizes = np.zeros((B, warmup), int)
    while int(sampler.i.min()) < warmup:
        n = np.asarray(sampler.i)
        sampler, ended, draw = step(sampler)
        for b in np.nonzero(np.asarray(ended))[0]:
            sizes[b, n[b]] = int(draw.num_steps[b])
    first = warmup if deepen is None else deepen
    assert np.all(sizes[:, :first] == 1)  # single steps: depth[0] = 1
    if deepen is not None:
        assert nuts.terminal_window(30) == 27
        assert sizes[:, first:].max() > 1  # deeper trees in the warm-up's last window
