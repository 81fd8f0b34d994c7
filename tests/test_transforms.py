"""The SPM scheme composes with jax.jit, jax.vmap and jax.grad."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actinf import SpmSettings, generative_model, spm_trial


def _model(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.random((3, 3)) + 0.2
    A /= A.sum(0)
    B = rng.random((3, 3, 2)) + 0.2
    B /= B.sum(0)
    V = np.array([[[0], [0], [1], [1]], [[0], [1], [0], [1]]])  # T = 3, four policies
    C = np.array([0.0, 1.0, 2.0])
    return generative_model([A], [B], [C], policies=V)


@jax.jit
def _log_likelihood(model, outcomes, actions, alpha, preference):
    model = eqx.tree_at(lambda m: m.preference, model, (preference,))
    P = spm_trial(model, outcomes, actions, SpmSettings(alpha=alpha)).P
    return sum(jnp.log(P[actions[0, t], t]) for t in range(actions.shape[1]))


_grad = jax.jit(jax.grad(_log_likelihood, argnums=(3, 4)))


@pytest.fixture(scope="module")
def trial():
    model = _model()
    res = spm_trial(model, rng_key=jax.random.PRNGKey(3), settings=SpmSettings(alpha=2.0))
    return model, res.o, res.u


def test_vmap_over_outcomes_equals_separate_runs(trial):
    model, o, u = trial
    other = jnp.asarray((np.asarray(o) + 1) % 3)
    batch = jax.vmap(lambda oo: spm_trial(model, oo, u).R)(jnp.stack([o, other]))
    for i, oo in enumerate((o, other)):
        np.testing.assert_allclose(batch[i], spm_trial(model, oo, u).R, atol=1e-12)


def test_vmap_over_models(trial):
    model, o, u = trial
    models = jax.tree.map(lambda *x: jnp.stack(x), _model(0), _model(1))
    batch = jax.vmap(lambda m: spm_trial(m, o, u).X[0])(models)
    np.testing.assert_allclose(batch[1], spm_trial(_model(1), o, u).X[0], atol=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 16.0])
def test_gradient_in_action_precision_matches_finite_differences(trial, alpha):
    model, o, u = trial
    C = model.preference[0]

    def f(a):
        return _log_likelihood(model, o, u, a, C)

    g = _grad(model, o, u, alpha, C)[0]
    h = 1e-5
    fd = (f(alpha + h) - f(alpha - h)) / (2 * h)
    assert np.isfinite(g)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


def test_gradient_in_preferences_matches_finite_differences(trial):
    model, o, u = trial
    C = model.preference[0]
    g = _grad(model, o, u, 2.0, C)[1]
    assert np.all(np.isfinite(g))
    h = 1e-5
    for i in range(C.shape[0]):
        e = jnp.zeros_like(C).at[i, 0].set(h)
        fd = (_log_likelihood(model, o, u, 2.0, C + e) - _log_likelihood(model, o, u, 2.0, C - e)) / (2 * h)
        np.testing.assert_allclose(g[i, 0], fd, rtol=1e-4, atol=1e-8)


def test_jit_does_not_retrace_for_new_outcomes(trial):
    model, o, u = trial
    traces = []

    @jax.jit
    def run(oo):
        traces.append(1)
        return spm_trial(model, oo, u).R

    run(o)
    run(jnp.asarray((np.asarray(o) + 1) % 3))
    assert len(traces) == 1
