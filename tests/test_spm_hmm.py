"""SPM's hidden-Markov-model mode (outcomes given as likelihoods, no policies)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from actinf import generative_model
from actinf.inference.mmp import MarginalMessagePassing
from actinf.spm.scheme import SpmSettings, spm_hmm


def _random_model(rng, No=3, Ns=4, T=1, counts=False):
    A = rng.random((No, Ns)) + 0.1
    A /= A.sum(0)
    B = rng.random((Ns, Ns, 1)) + 0.1
    B /= B.sum(0)
    D = rng.random(Ns) + 0.1
    D /= D.sum()
    kw = {}
    if counts:
        kw = dict(likelihood_counts=[A * 4.0], initial_counts=[D * 2.0])
    return generative_model([A], [B], initial=[D], policies=np.zeros((T - 1, 1, 1), int), **kw)


@pytest.mark.parametrize("outcome", [0, 1, 2])
def test_single_observation_converges_to_bayes_rule(outcome):
    """With one time step the scheme's fixed point is Bayes' rule; 400 sweeps reach it."""
    model = _random_model(np.random.default_rng(outcome))
    O = [np.eye(3)[:, [outcome]]]
    settings = SpmSettings(inference=MarginalMessagePassing(num_iter=400))
    X = np.asarray(spm_hmm(model, O, settings).X[0][:, 0])
    A, D = np.asarray(model.likelihood[0]), np.asarray(model.initial[0])
    exact = A[outcome] * D / (A[outcome] * D).sum()
    np.testing.assert_allclose(X, exact, atol=1e-10)


def test_sixteen_sweeps_are_within_a_percent_of_bayes_rule():
    """SPM's default 16 sweeps of step 1/4 leave a residual of about 0.75**16 of the start."""
    model = _random_model(np.random.default_rng(7))
    O = [np.eye(3)[:, [1]]]
    X = np.asarray(spm_hmm(model, O).X[0][:, 0])
    A, D = np.asarray(model.likelihood[0]), np.asarray(model.initial[0])
    exact = A[1] * D / (A[1] * D).sum()
    err = np.abs(X - exact).max()
    assert 1e-6 < err < 1e-2


def test_probabilistic_outcomes_and_learning():
    """Soft outcome likelihoods are accepted; counts grow by eta * O_t (x) X_t and d by X_0."""
    rng = np.random.default_rng(3)
    T = 3
    model = _random_model(rng, T=T, counts=True)
    O = rng.random((3, T))
    O /= O.sum(0)
    res = spm_hmm(model, [O], SpmSettings(eta=0.5))
    X = np.asarray(res.X[0])
    assert X.shape == (4, T)
    np.testing.assert_allclose(X.sum(0), 1.0, atol=1e-12)
    expected_a = np.asarray(model.likelihood_counts[0]) + 0.5 * O @ X.T
    np.testing.assert_allclose(np.asarray(res.model.likelihood_counts[0]), expected_a, rtol=1e-12)
    expected_d = np.asarray(model.initial_counts[0]) + X[:, 0]
    np.testing.assert_allclose(np.asarray(res.model.initial_counts[0]), expected_d, rtol=1e-12)
    assert float(res.Fa[0]) <= 0.0 and float(res.Fd[0]) <= 0.0
    assert np.isfinite(float(res.F))


def test_uninformative_outcomes_leave_the_prior_propagated():
    """Flat likelihoods carry no information: the first belief stays at the prior D."""
    rng = np.random.default_rng(5)
    model = _random_model(rng, T=2)
    O = [jnp.ones((3, 2)) / 3.0]
    settings = SpmSettings(inference=MarginalMessagePassing(num_iter=400))
    X = np.asarray(spm_hmm(model, O, settings).X[0])
    D = np.asarray(model.initial[0])
    B = np.asarray(model.transition[0][:, :, 0])
    # the marginal message passing fixed point of a flat-likelihood chain
    assert np.all(np.isfinite(X))
    np.testing.assert_allclose(X.sum(0), 1.0, atol=1e-12)
    assert np.abs(X[:, 0] - D).max() < 0.1
    assert np.abs(X[:, 1] - B @ D).max() < 0.1
