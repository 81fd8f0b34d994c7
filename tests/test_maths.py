"""Each primitive of actinf.maths against a direct NumPy / SciPy computation."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from actinf import maths

RNG = np.random.default_rng(20240607)


def counts(*shape, low=0.1, high=5.0):
    return RNG.uniform(low, high, size=shape)


def probs(*shape):
    x = RNG.uniform(0.05, 1.0, size=shape)
    return x / x.sum(axis=0, keepdims=True)


def close(got, want, atol=1e-12, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(got), want, atol=atol, rtol=rtol)


# ------------------------------------------------------------------------- constants


def test_constants_are_spms():
    assert maths.LOG_EPS == 1e-16
    assert maths.ENTROPY_EPS == pytest.approx(np.exp(-16.0), rel=1e-15)


@pytest.mark.parametrize("x", [0.0, 1e-20, 0.3, 1.0, 7.5])
def test_log_stable(x):
    close(maths.log_stable(jnp.asarray(x)), np.log(x + 1e-16))
    assert np.isfinite(float(maths.log_stable(jnp.asarray(x))))


@pytest.mark.parametrize("x", [0.0, 1e-9, 0.3, 1.0])
def test_entropy_log(x):
    close(maths.entropy_log(jnp.asarray(x)), np.log(x + np.exp(-16.0)))


# ------------------------------------------------------------------------- normalise


@pytest.mark.parametrize("shape", [(4,), (3, 2), (2, 3, 4)])
def test_normalise(shape):
    x = counts(*shape)
    close(maths.normalise(jnp.asarray(x)), x / x.sum(axis=0, keepdims=True))


def test_normalise_zero_column_is_uniform():
    x = np.array([[0.0, 1.0, 0.0], [0.0, 3.0, 2.0], [0.0, 0.0, 0.0]])
    want = np.array([[1 / 3, 0.25, 0.0], [1 / 3, 0.75, 1.0], [1 / 3, 0.0, 0.0]])
    got = maths.normalise(jnp.asarray(x))
    close(got, want)
    assert np.all(np.isfinite(np.asarray(got)))


def test_normalise_all_zero_vector_is_uniform():
    close(maths.normalise(jnp.zeros(4)), np.full(4, 0.25))


def test_normalise_gradient_is_finite_at_zero_column():
    g = jax.grad(lambda x: maths.normalise(x)[0, 0])(jnp.zeros((2, 2)))
    assert np.all(np.isfinite(np.asarray(g)))


# --------------------------------------------------------------------------- softmax


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax(axis):
    x = RNG.normal(scale=3.0, size=(3, 4, 2))
    close(maths.softmax(jnp.asarray(x), axis=axis), scipy.special.softmax(x, axis=axis))


def test_softmax_default_axis_is_columns():
    x = RNG.normal(size=(3, 4))
    close(maths.softmax(jnp.asarray(x)), scipy.special.softmax(x, axis=0))


def test_softmax_large_values_do_not_overflow():
    x = np.array([1000.0, 999.0, -1000.0])
    close(maths.softmax(jnp.asarray(x)), scipy.special.softmax(x))


def test_softmax_minus_inf_entries_get_zero():
    x = np.array([[0.0, -np.inf], [-np.inf, 2.0], [1.0, 2.0]])
    want = np.array([[1 / (1 + np.e), 0.0], [0.0, 0.5], [np.e / (1 + np.e), 0.5]])
    got = np.asarray(maths.softmax(jnp.asarray(x)))
    close(got, want)
    assert np.all(got[np.isneginf(x)] == 0.0)


def test_masked_softmax():
    x = RNG.normal(size=5)
    mask = np.array([True, False, True, True, False])
    want = np.zeros(5)
    want[mask] = scipy.special.softmax(x[mask])
    close(maths.masked_softmax(jnp.asarray(x), jnp.asarray(mask)), want)


# ------------------------------------------------------------------------- Dirichlet


@pytest.mark.parametrize("shape", [(3,), (3, 2), (2, 3, 2)])
def test_novelty_weights(shape):
    a = counts(*shape)
    a0 = a + 1e-16
    want = (1.0 / a0.sum(axis=0, keepdims=True) - 1.0 / a0) / 2.0
    close(maths.novelty_weights(jnp.asarray(a)), want)
    assert np.all(np.asarray(maths.novelty_weights(jnp.asarray(a))) <= 0)


@pytest.mark.parametrize("shape", [(3,), (4, 2), (2, 3, 2)])
def test_dirichlet_expected_log(shape):
    a = counts(*shape)
    want = scipy.special.digamma(a) - scipy.special.digamma(a.sum(axis=0, keepdims=True))
    close(maths.dirichlet_expected_log(jnp.asarray(a)), want)


def test_dirichlet_expected_log_is_mean_log_of_scipy_dirichlet():
    # E[ln x_i] under Dir(a), by Monte Carlo from scipy, 4 standard errors
    a = np.array([0.7, 2.0, 5.0])
    draws = np.log(scipy.stats.dirichlet(a).rvs(size=200_000, random_state=1))
    se = draws.std(axis=0) / np.sqrt(draws.shape[0])
    got = np.asarray(maths.dirichlet_expected_log(jnp.asarray(a)))
    assert np.all(np.abs(got - draws.mean(axis=0)) < 4 * se)


@pytest.mark.parametrize("shape", [(3,), (4, 2), (2, 3, 2)])
def test_log_multivariate_beta(shape):
    a = counts(*shape)
    want = scipy.special.gammaln(a).sum(axis=0) - scipy.special.gammaln(a.sum(axis=0))
    close(maths.log_multivariate_beta(jnp.asarray(a)), want)


def test_log_multivariate_beta_matches_scipy_dirichlet_normaliser():
    # the Dirichlet density at x is exp(sum (a-1) ln x - ln B(a))
    a = np.array([0.5, 1.5, 3.0])
    x = np.array([0.2, 0.3, 0.5])
    log_b = float(maths.log_multivariate_beta(jnp.asarray(a)))
    close(np.sum((a - 1) * np.log(x)) - log_b, scipy.stats.dirichlet(a).logpdf(x))


def test_log_multivariate_beta_ignores_zero_counts():
    a = np.array([[2.0, 0.0], [0.0, 0.0], [3.5, 4.0]])
    want = np.array(
        [
            scipy.special.gammaln(2.0) + scipy.special.gammaln(3.5) - scipy.special.gammaln(5.5),
            scipy.special.gammaln(4.0) - scipy.special.gammaln(4.0),
        ]
    )
    close(maths.log_multivariate_beta(jnp.asarray(a)), want)


def test_log_multivariate_beta_all_zero_column_is_minus_infinity():
    # SPM's spm_betaln: sum(gammaln([])) - gammaln(0) = -Inf
    got = np.asarray(maths.log_multivariate_beta(jnp.zeros((3, 1))))
    assert got.shape == (1,) and got[0] == -np.inf


def _spm_kl_dir(q, p):
    """SPM's spm_KL_dir with SciPy: ln B(p) - ln B(q) - sum (p - q) psi-expectation(q + 1/32)."""

    def betaln(z):
        return np.where(z > 0, scipy.special.gammaln(np.where(z > 0, z, 1.0)), 0.0).sum(
            axis=0
        ) - scipy.special.gammaln(z.sum(axis=0))

    qq = q + 1.0 / 32.0
    psi = scipy.special.digamma(qq) - scipy.special.digamma(qq.sum(axis=0, keepdims=True))
    return float(np.sum(betaln(p) - betaln(q) - np.sum((p - q) * psi, axis=0)))


def _exact_dirichlet_kl(q, p):
    """KL[Dir(q) || Dir(p)] of one column = cross-entropy - entropy, via scipy.stats."""
    entropy = scipy.stats.dirichlet(q).entropy()
    elog = scipy.special.digamma(q) - scipy.special.digamma(q.sum())
    log_b = scipy.special.gammaln(p).sum() - scipy.special.gammaln(p.sum())
    cross = log_b - np.sum((p - 1) * elog)
    return cross - entropy


@pytest.mark.parametrize("shape", [(3,), (3, 2), (2, 2, 3)])
def test_dirichlet_kl_is_spm_formula(shape):
    q, p = counts(*shape), counts(*shape)
    close(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(p)), _spm_kl_dir(q, p))


@pytest.mark.parametrize("seed", range(4))
def test_dirichlet_kl_is_close_to_exact_kl(seed):
    """SPM's 1/32 offset inside the digamma moves the KL from the exact one by at most
    sum_i |p_i - q_i| |(psi(q_i + 1/32) - psi(q0 + K/32)) - (psi(q_i) - psi(q0))|."""
    rng = np.random.default_rng(seed)
    q, p = rng.uniform(0.5, 20.0, size=4), rng.uniform(0.5, 20.0, size=4)
    K, q0 = q.size, q.sum()
    dig = scipy.special.digamma
    shift = (dig(q + 1 / 32) - dig(q0 + K / 32)) - (dig(q) - dig(q0))
    bound = np.sum(np.abs(p - q) * np.abs(shift))
    exact = _exact_dirichlet_kl(q, p)
    assert exact >= 0
    got = float(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(p)))
    assert abs(got - exact) <= bound + 1e-12


def test_dirichlet_kl_of_equal_counts_is_zero():
    q = counts(3, 2)
    assert float(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(q))) == 0.0


def test_dirichlet_kl_can_be_negative_as_spms():
    # Not a true KL: with SPM's 1/32 offset a small update of a large count gives a
    # slightly negative value (so SPM's Fa = -KL can be positive). Documented, not a bug.
    q, p = np.array([10.5, 1.0]), np.array([10.0, 1.0])
    got = float(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(p)))
    close(got, _spm_kl_dir(q, p))
    assert got < 0 < _exact_dirichlet_kl(q, p)


def test_dirichlet_kl_with_zero_counts_matches_spm():
    # zero counts are skipped in ln B, as spm_betaln does
    q = np.array([[2.0, 1.0], [0.0, 3.0], [1.5, 0.5]])
    p = np.array([[1.0, 1.0], [0.0, 2.0], [1.0, 0.5]])
    close(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(p)), _spm_kl_dir(q, p))


# ------------------------------------------------------------------ outer and contract


@pytest.mark.parametrize("sizes", [(3,), (2, 3), (2, 3, 4), (4, 1, 2)])
def test_outer(sizes):
    vs = [RNG.normal(size=n) for n in sizes]
    want = vs[0]
    for v in vs[1:]:
        want = np.multiply.outer(want, v)
    got = maths.outer([jnp.asarray(v) for v in vs])
    assert got.shape == tuple(sizes)
    close(got, want)


def _contract_numpy(array, vectors, skip):
    """Direct sum over every index of the trailing axes."""
    n = len(vectors)
    lead = array.shape[: array.ndim - n]
    kept = () if skip is None else (vectors[skip].size,)
    out = np.zeros(lead + kept)
    for idx in itertools.product(*[range(v.size) for v in vectors]):
        w = np.prod([v[i] for f, (v, i) in enumerate(zip(vectors, idx, strict=True)) if f != skip])
        block = array[(Ellipsis, *idx)] * w
        if skip is None:
            out += block
        else:
            out[(Ellipsis, idx[skip])] += block
    return out


CONTRACT_CASES = [
    ((3,), (3,), None),
    ((2, 3), (3,), None),
    ((2, 3, 4), (3, 4), None),
    ((2, 3, 4), (3, 4), 0),
    ((2, 3, 4), (3, 4), 1),
    ((3, 4), (3, 4), 0),
    ((3, 4), (3, 4), 1),
    ((2, 2, 3, 4), (2, 3, 4), 1),
    ((5, 2, 3, 4), (2, 3, 4), 2),
]


@pytest.mark.parametrize("shape,sizes,skip", CONTRACT_CASES)
def test_contract(shape, sizes, skip):
    array = RNG.normal(size=shape)
    vectors = [RNG.uniform(size=n) for n in sizes]
    got = maths.contract(jnp.asarray(array), [jnp.asarray(v) for v in vectors], skip=skip)
    close(got, _contract_numpy(array, vectors, skip))


def test_contract_skip_is_spm_marginal_likelihood():
    # SPM's spm_dot(L, x, f): the likelihood of factor f marginalised over the others
    L = RNG.uniform(size=(2, 3, 4))
    x = [probs(2), probs(3), probs(4)]
    got = maths.contract(jnp.asarray(L), [jnp.asarray(v) for v in x], skip=1)
    close(got, np.einsum("ijk,i,k->j", L, x[0], x[2]))


# ----------------------------------------------------------------------- categorical


@pytest.mark.parametrize("shape,axis", [((4,), 0), ((3, 2), 0), ((2, 3), 1)])
def test_categorical_entropy(shape, axis):
    p = RNG.uniform(0.05, 1.0, size=shape)
    p = p / p.sum(axis=axis, keepdims=True)
    close(maths.categorical_entropy(jnp.asarray(p), axis=axis), scipy.stats.entropy(p, axis=axis))


def test_categorical_entropy_zero_probability():
    p = np.array([0.5, 0.0, 0.5])
    close(maths.categorical_entropy(jnp.asarray(p)), np.log(2.0))


@pytest.mark.parametrize("shape,axis", [((4,), 0), ((3, 2), 0), ((2, 3), 1)])
def test_categorical_kl(shape, axis):
    q, p = RNG.uniform(0.05, 1.0, size=(2, *shape))
    q, p = q / q.sum(axis=axis, keepdims=True), p / p.sum(axis=axis, keepdims=True)
    close(
        maths.categorical_kl(jnp.asarray(q), jnp.asarray(p), axis=axis), scipy.stats.entropy(q, p, axis=axis)
    )


def test_categorical_kl_zero_probabilities():
    q = np.array([0.5, 0.0, 0.5])
    p = np.array([0.25, 0.0, 0.75])  # zero where q is zero: finite
    close(maths.categorical_kl(jnp.asarray(q), jnp.asarray(p)), scipy.stats.entropy(q, p))
    q2 = np.array([0.5, 0.5, 0.0])  # q puts mass where p has none: infinite
    assert float(maths.categorical_kl(jnp.asarray(q2), jnp.asarray(p))) == np.inf


# ------------------------------------------------------------------ transformations


@pytest.mark.parametrize(
    "name",
    ["normalise", "softmax", "novelty_weights", "dirichlet_expected_log", "log_multivariate_beta"],
)
def test_jit_and_vmap_agree_with_eager(name):
    fn = getattr(maths, name)
    x = jnp.asarray(counts(4, 3, 2))
    eager = fn(x)
    close(jax.jit(fn)(x), eager)
    close(jax.vmap(fn, in_axes=2, out_axes=-1)(x), eager)


@pytest.mark.parametrize(("u", "expected"), [(0.0, 0), (0.19, 0), (0.2, 1), (0.69, 1), (0.7, 2), (0.999, 2)])
def test_inverse_cdf_is_spms_first_cumulative_above_u(u, expected):
    from actinf.maths import inverse_cdf

    assert int(inverse_cdf(jnp.array([0.2, 0.5, 0.3]), u)) == expected


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_put_writes_like_a_scatter_also_under_vmap(axis):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 3, 5)))
    size = x.shape[axis]
    value_shape = list(x.shape)
    del value_shape[axis % 3]
    for i in range(size):
        v = jnp.asarray(rng.normal(size=value_shape))
        index = [slice(None)] * 3
        index[axis % 3] = i
        np.testing.assert_array_equal(maths.put(x, i, v, axis=axis), x.at[tuple(index)].set(v))
    # a batch of arrays, each written at its own index, as agents at their own time step
    xs = jnp.stack([x, 2 * x])
    vs = jnp.ones((2, *value_shape))
    idx = jnp.asarray([0, size - 1])
    out = jax.vmap(lambda a, i, v: maths.put(a, i, v, axis=axis))(xs, idx, vs)
    for k in range(2):
        index = [slice(None)] * 3
        index[axis % 3] = int(idx[k])
        np.testing.assert_array_equal(out[k], xs[k].at[tuple(index)].set(vs[k]))


def test_digamma_and_gammaln_are_scipys():
    """maths' lax-based digamma/gammaln equal jax.scipy.special's, values and gradients,
    and promote integer counts to floats as it does."""
    from jax.scipy.special import digamma as sp_digamma
    from jax.scipy.special import gammaln as sp_gammaln

    x = jnp.asarray(np.random.default_rng(3).gamma(1.0, 3.0, size=200) + 1e-6)
    for ours, theirs in ((maths.digamma, sp_digamma), (maths.gammaln, sp_gammaln)):
        np.testing.assert_array_equal(ours(x), theirs(x))
        np.testing.assert_array_equal(jax.vmap(jax.grad(ours))(x), jax.vmap(jax.grad(theirs))(x))
        counts = jnp.asarray([1, 2, 5])
        np.testing.assert_array_equal(ours(counts), theirs(counts))
