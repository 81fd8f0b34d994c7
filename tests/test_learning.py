"""Learning of the preference and habit counts (``c``, ``e``), which no SPM reference case covers.

The other counts (``a``, ``b``, ``d``) are checked against SPM in test_spm_reference.py.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.scipy.special import digamma

from actinf import SpmSettings, generative_model, spm_trial
from actinf.maths import dirichlet_kl

ETA = 0.7


def _model(**counts):
    rng = np.random.default_rng(11)
    A = rng.random((3, 3)) + 0.2
    A /= A.sum(0)
    B = rng.random((3, 3, 2)) + 0.2
    B /= B.sum(0)
    V = np.array([[[0], [0], [1], [1]], [[0], [1], [0], [1]]])
    return generative_model([A], [B], [np.array([0.0, 1.0, 2.0])], policies=V, **counts)


@pytest.fixture(scope="module")
def learned():
    c = np.array([[1.0, 2.0, 1.5], [0.5, 0.0, 1.0], [2.0, 1.0, 3.0]])  # [No, T], one zero count
    e = np.array([1.0, 2.0, 3.0, 4.0])
    model = _model(preference_counts=[c], habit_counts=e)
    res = spm_trial(model, settings=SpmSettings(eta=ETA), rng_key=jax.random.PRNGKey(2))
    return model, c, e, res


def test_preference_counts_add_eta_times_each_outcome_where_positive(learned):
    _, c, _, res = learned
    o = np.asarray(res.o)[0]
    expected = c.copy()
    for t in range(3):
        if c[o[t], t] > 0:
            expected[o[t], t] += ETA
    np.testing.assert_allclose(np.asarray(res.model.preference_counts[0]), expected, rtol=1e-12)


def test_habit_counts_add_eta_times_the_final_policy_posterior(learned):
    _, _, e, res = learned
    expected = e + ETA * np.asarray(res.R)[:, -1]
    np.testing.assert_allclose(np.asarray(res.model.habit_counts), expected, rtol=1e-12)


def test_free_energies_of_c_and_e(learned):
    _, c, e, res = learned
    fc = -dirichlet_kl(res.model.preference_counts[0], c)
    fe = -dirichlet_kl(res.model.habit_counts, e)
    np.testing.assert_allclose(np.asarray(res.Fc)[0], fc, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.Fe), fe, rtol=1e-12)
    assert np.isfinite(float(res.Fc[0])) and np.isfinite(float(res.Fe))


def test_preference_counts_act_through_their_expected_log():
    """With counts c the agent's preferences are E[ln C] = psi(c + 1/32) - psi(sum), as in SPM."""
    c = np.array([[1.0, 2.0, 1.5], [0.5, 0.2, 1.0], [2.0, 1.0, 3.0]])
    with_counts = _model(preference_counts=[c])
    explicit = _model()
    shifted = c + 1.0 / 32.0
    C = np.asarray(digamma(shifted) - digamma(shifted.sum(0, keepdims=True)))
    explicit = generative_model(explicit.likelihood, explicit.transition, [C], policies=explicit.policies)
    o, u = np.array([[0, 2, 1]]), np.array([[1, 0]])
    a = spm_trial(with_counts, o, u)
    b = spm_trial(explicit, o, u)
    np.testing.assert_allclose(np.asarray(a.G), np.asarray(b.G), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(a.P), np.asarray(b.P), rtol=1e-10, atol=1e-12)


def test_habit_counts_act_through_their_normalised_value():
    e = np.array([1.0, 2.0, 3.0, 4.0])
    o, u = np.array([[0, 2, 1]]), np.array([[1, 0]])
    a = spm_trial(_model(habit_counts=e), o, u)
    m = _model()
    b = spm_trial(
        generative_model(m.likelihood, m.transition, m.preference, habit=e / e.sum(), policies=m.policies),
        o,
        u,
    )
    np.testing.assert_allclose(np.asarray(a.R), np.asarray(b.R), rtol=1e-12, atol=1e-12)
