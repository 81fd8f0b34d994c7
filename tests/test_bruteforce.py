"""Brute-force oracles: exact answers by enumeration, compared with the engine.

In the style of dynamax's tests, every quantity is recomputed the slow, obvious
way (summing over every state path, every joint outcome) with plain NumPy on
tiny random models:

* :func:`actinf.inference.exact.forward_backward` against enumeration of every
  state path (marginals and log evidence to 1e-10);
* SPM's marginal message passing where it is exact: a single factor whose
  posterior is Bayes' rule at the fixed point (see the comments for which
  settings that takes and how far 16 sweeps of ``tau = 4`` get);
* expected free energy (risk, ambiguity) against sums over every joint
  outcome, and against a literal transcription of SPM's ``spm_MDP_G.m``.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actinf
from actinf.inference.exact import exact_posterior, forward_backward
from actinf.inference.mmp import MarginalMessagePassing
from actinf.maths import ENTROPY_EPS, log_stable
from actinf.planning.efe import Ambiguity, Risk, outcome_model

# --------------------------------------------------------------------------- helpers

# compiled once per shape (an eager call compiles every primitive separately: slower)
fb = jax.jit(forward_backward)
spm_trial = eqx.filter_jit(actinf.spm_trial)


class Hmm(NamedTuple):
    A: list  # per modality [No, Ns_1..Ns_F]
    B: list  # per factor [Ns, Ns, Nu]
    D: list  # per factor [Ns]
    o: np.ndarray  # [G, T]
    u: np.ndarray  # [F, T-1]


def _random_columns(rng, shape, concentration=1.0):
    """Random conditional table with columns (axis 0) on the simplex, strictly positive."""
    x = rng.gamma(concentration, size=shape) + 1e-3
    return x / x.sum(axis=0, keepdims=True)


def random_hmm(seed, Ns, Nu, No, T) -> Hmm:
    rng = np.random.default_rng(seed)
    A = [_random_columns(rng, (n, *Ns)) for n in No]
    B = [_random_columns(rng, (n, n, k)) for n, k in zip(Ns, Nu, strict=True)]
    D = [_random_columns(rng, (n,)) for n in Ns]
    o = np.stack([rng.integers(0, n, size=T) for n in No])
    u = np.stack([rng.integers(0, k, size=T - 1) for k in Nu]).reshape(len(Ns), T - 1)
    return Hmm(A, B, D, o, u)


def enumerate_paths(hmm: Hmm, observed_until: int | None = None):
    """Brute force: P(o_{0:T-1}) and P(s_{f,t} | o) by summing over every state path.

    Outcomes after ``observed_until`` are treated as missing (for filtering).
    Returns ``(log_evidence, marginals)`` with marginals per factor ``[T, Ns_f]``.
    """
    Ns = [d.size for d in hmm.D]
    T = hmm.o.shape[1]
    last = T - 1 if observed_until is None else observed_until
    joint_states = list(itertools.product(*[range(n) for n in Ns]))
    evidence = 0.0
    marg = [np.zeros((T, n)) for n in Ns]
    for path in itertools.product(joint_states, repeat=T):
        p = 1.0
        for f in range(len(Ns)):
            p *= hmm.D[f][path[0][f]]
            for t in range(1, T):
                p *= hmm.B[f][path[t][f], path[t - 1][f], hmm.u[f, t - 1]]
        for t in range(last + 1):
            for g, a in enumerate(hmm.A):
                p *= a[(hmm.o[g, t], *path[t])]
        evidence += p
        for t in range(T):
            for f in range(len(Ns)):
                marg[f][t, path[t][f]] += p
    return np.log(evidence), [m / evidence for m in marg]


@functools.cache
def solved(case):
    """The random model of ``case`` and its forward-backward posterior (shared by tests)."""
    hmm = random_hmm(*case)
    return hmm, fb(hmm.A, hmm.B, hmm.D, hmm.o, hmm.u)


def _case_id(case):
    seed, Ns, Nu, No, T = case
    return f"Ns{'x'.join(map(str, Ns))}-Nu{'x'.join(map(str, Nu))}-No{'x'.join(map(str, No))}-T{T}-s{seed}"


# (seed, Ns per factor, Nu per factor, No per modality, T)
HMM_CASES = [
    (0, (2,), (1,), (2,), 2),
    (1, (3,), (2,), (2,), 3),
    (2, (3,), (3,), (3, 2), 4),
    (3, (2,), (2,), (3, 3), 4),
    (4, (2, 2), (2, 1), (2,), 2),
    (5, (2, 3), (1, 2), (3,), 3),
    (6, (3, 2), (2, 2), (2, 3), 3),
    (7, (3, 3), (3, 2), (3, 2), 2),
    (8, (2, 3), (2, 3), (2, 2), 4),
    (9, (3, 3), (2, 2), (3,), 4),
]

# --------------------------------------------------------- (a) forward-backward is exact


@pytest.mark.parametrize("case", HMM_CASES, ids=[_case_id(c) for c in HMM_CASES])
def test_forward_backward_equals_enumeration(case):
    hmm, post = solved(case)
    log_ev, marginals = enumerate_paths(hmm)
    np.testing.assert_allclose(float(post.log_evidence), log_ev, rtol=0, atol=1e-10)
    for f, m in enumerate(marginals):
        np.testing.assert_allclose(np.asarray(post.smoothed[f]), m, rtol=0, atol=1e-10)


FILTER_CASES = [(case, t) for case in HMM_CASES for t in range(case[4])]


@pytest.mark.parametrize("case,t", FILTER_CASES, ids=[f"{_case_id(c)}-t{t}" for c, t in FILTER_CASES])
def test_filtering_equals_enumeration(case, t):
    """Filtered marginal at t = smoothed marginal of the data up to t (later outcomes missing)."""
    hmm, post = solved(case)
    _, marginals = enumerate_paths(hmm, observed_until=t)
    got = np.concatenate([np.asarray(m[t]) for m in post.filtered])
    want = np.concatenate([m[t] for m in marginals])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", HMM_CASES[:4], ids=[_case_id(c) for c in HMM_CASES[:4]])
def test_missing_outcomes_are_marginalised(case):
    """An outcome given as -1 contributes nothing: same as enumerating without it."""
    hmm = random_hmm(*case)
    o = hmm.o.copy()
    o[:, -1] = -1
    post = fb(hmm.A, hmm.B, hmm.D, o, hmm.u)
    log_ev, marginals = enumerate_paths(hmm, observed_until=hmm.o.shape[1] - 2)
    np.testing.assert_allclose(float(post.log_evidence), log_ev, rtol=0, atol=1e-10)
    for f, m in enumerate(marginals):
        np.testing.assert_allclose(np.asarray(post.smoothed[f]), m, rtol=0, atol=1e-10)


def test_impossible_outcome_gives_minus_infinite_evidence():
    A = [np.array([[1.0, 0.0], [0.0, 1.0]])]
    B = [np.eye(2)[..., None]]
    D = [np.array([1.0, 0.0])]
    post = fb(A, B, D, np.array([[1, 1]]), np.array([[0]]))
    assert float(post.log_evidence) == -np.inf
    assert np.all(np.isfinite(np.asarray(post.smoothed[0])))


def test_exact_posterior_uses_agent_counts():
    hmm = random_hmm(*HMM_CASES[5])
    scale = 7.0
    model = actinf.generative_model(
        [np.full_like(a, 1.0 / a.shape[0]) for a in hmm.A],
        hmm.B,
        initial=hmm.D,
        horizon=3,
        likelihood_counts=[scale * a for a in hmm.A],
    )
    got = jax.jit(exact_posterior)(model, hmm.o, hmm.u)
    want = solved(HMM_CASES[5])[1]
    np.testing.assert_allclose(float(got.log_evidence), float(want.log_evidence), atol=1e-12)


def test_forward_backward_needs_actions_for_several_steps():
    hmm = random_hmm(*HMM_CASES[1])
    with pytest.raises(ValueError, match="actions"):
        forward_backward(hmm.A, hmm.B, hmm.D, hmm.o)


# ------------------------------------------------- (b) where SPM's scheme is exact
#
# SPM's marginal message passing at time t forms, for the beliefs s_j of a
# single factor,
#     v_j = ln(B s_{j-1}) [ln D at j = 0] + ln(B^† s_{j+1}) [j < S-1]
#           + (1 + [j < S-1]) (ln L_j - ln s_j)
# and steps ln s <- ln s + (v - mean v) / tau. It is exact (Bayes' rule at its
# fixed point) in two settings:
#
# 1. One time step (S = 1): v = ln D + ln L - ln s, fixed point s ∝ D L, the
#    posterior. Each step contracts ln s - ln p* by (1 - 1/tau) = 3/4, so after
#    SPM's 16 sweeps the error is (3/4)^16 ≈ 1.0e-2 of the starting
#    log-discrepancy (starting from the erp-softened prior softmax(ln D / 4)).
# 2. S = 2 with a uniform prior D and uninformative transitions (every column
#    of B uniform): s_0 ∝ sqrt(D) L_0 (SPM weights the prior by 1/2 at j = 0,
#    whence the uniform D) contracts by 1/2 per sweep, s_1 ∝ L_1 by 3/4.
#
# In both, the smoothed marginals of forward_backward are the oracle.


def _bayes(A, D, o):
    post = D * np.prod([a[oi] for a, oi in zip(A, o, strict=True)], axis=0)
    return post / post.sum(), np.log(post.sum())


# (seed, Ns, No per modality)
ONE_STEP_CASES = [(0, 2, (2,)), (1, 3, (3,)), (2, 4, (2, 3)), (3, 3, (3, 3)), (4, 5, (4,))]


def _one_step(seed, Ns, No):
    rng = np.random.default_rng(100 + seed)
    A = [_random_columns(rng, (n, Ns)) for n in No]
    D = _random_columns(rng, (Ns,))
    o = [int(rng.integers(0, n)) for n in No]
    return A, D, o


def _mmp_one_step(A, D, o, num_iter):
    """SPM's marginal message passing at t = 0 of a trial with a single time step."""
    mmp = MarginalMessagePassing(num_iter=num_iter)
    L = jnp.asarray(np.prod([a[oi] for a, oi in zip(A, o, strict=True)], axis=0))[None]
    x0 = mmp.reset((jnp.asarray(D)[None],))
    empty = jnp.zeros((0, D.size, D.size))
    beliefs, free = mmp(x0, (log_stable(jnp.asarray(D)),), (empty,), (empty,), L, 0)
    return np.asarray(beliefs[0][0]), float(free), np.asarray(x0[0][0])


#: Largest |X - Bayes| measured after SPM's 16 sweeps on ONE_STEP_CASES: 3.0e-3
#: (0.6e-3 to 3.0e-3). The error is (3/4)^16 ≈ 1.0e-2 times the start's
#: log-discrepancy, hence a tolerance of 1e-2.
ONE_STEP_TOL_16 = 1e-2


@pytest.mark.parametrize("case", ONE_STEP_CASES, ids=[f"Ns{c[1]}-No{c[2]}-s{c[0]}" for c in ONE_STEP_CASES])
def test_mmp_single_step_contracts_to_bayes(case):
    A, D, o = _one_step(*case)
    bayes, log_ev = _bayes(A, D, o)
    got16, _, start = _mmp_one_step(A, D, o, 16)
    # closed form of 16 gradient steps: ln s_16 = ln p* + (3/4)^16 (ln s_0 - ln p*) + const
    pred = np.exp(np.log(bayes) + 0.75**16 * (np.log(start) - np.log(bayes)))
    np.testing.assert_allclose(got16, pred / pred.sum(), rtol=0, atol=1e-12)
    assert np.abs(got16 - bayes).max() < ONE_STEP_TOL_16
    # run to convergence: Bayes' rule to rounding, and SPM's F is half the log evidence
    # (with one time step the only message is both the first and the last, which SPM
    # weights by 1/2).
    got, free, _ = _mmp_one_step(A, D, o, 160)
    np.testing.assert_allclose(got, bayes, rtol=0, atol=1e-12)
    np.testing.assert_allclose(free, 0.5 * log_ev, rtol=0, atol=1e-10)


def test_spm_trial_single_step_is_bayes():
    A, D, o = _one_step(*ONE_STEP_CASES[2])
    model = actinf.generative_model(A, [np.eye(D.size)], initial=[D], policies=np.zeros((0, 1, 1), np.int32))
    assert model.horizon == 1
    res = spm_trial(model, np.array(o)[:, None], np.zeros((1, 0), np.int32))
    bayes, _ = _bayes(A, D, o)
    assert np.abs(np.asarray(res.X[0][:, 0]) - bayes).max() < ONE_STEP_TOL_16


#: Largest error of X after 16 sweeps on UNIFORM_CASES: 3.3e-6 at t = 0 and 3.0e-3
#: at t = 1 (contraction 1/2 and 3/4 per sweep; (1/2)^16 = 1.5e-5, (3/4)^16 = 1.0e-2).
#: Tolerances with margin:
UNIFORM_TOL_16 = (1e-4, 1e-2)
#: (seed, Ns, Nu, No per modality, Np): two shapes, so the trial compiles twice per sweep count.
UNIFORM_CASES = [(0, 3, 1, (3,), 1), (1, 3, 1, (3,), 1), (2, 4, 2, (3, 2), 3), (3, 4, 2, (3, 2), 3)]


def _uniform_model(seed, Ns, Nu, No, Np):
    rng = np.random.default_rng(200 + seed)
    A = [_random_columns(rng, (n, Ns)) for n in No]
    B = np.full((Ns, Ns, Nu), 1.0 / Ns)
    policies = (np.arange(Np) % Nu).reshape(1, Np, 1)
    model = actinf.generative_model(A, [B], policies=policies, horizon=2)
    o = np.stack([rng.integers(0, n, size=2) for n in No])
    return model, A, B, o


@pytest.mark.parametrize(
    "case", UNIFORM_CASES, ids=[f"Ns{c[1]}-Nu{c[2]}-No{c[3]}-Np{c[4]}-s{c[0]}" for c in UNIFORM_CASES]
)
def test_spm_trial_exact_with_uniform_prior_and_transitions(case):
    model, A, B, o = _uniform_model(*case)
    u = np.zeros((1, 1), np.int32)
    exact = fb(A, [B], model.initial, o, u)
    X = np.asarray(spm_trial(model, o, u).X[0]).T  # [T, Ns]
    err = np.abs(X - np.asarray(exact.smoothed[0])).max(axis=1)
    assert err[0] < UNIFORM_TOL_16[0] and err[1] < UNIFORM_TOL_16[1], err
    # to convergence: exact, and SPM's F is ln P(o_0) at t = 0 and ln P(o_0) + ln P(o_1) / 2 at
    # t = 1 (SPM weights the last time step by 1/2).
    mmp = MarginalMessagePassing(num_iter=160)
    res = spm_trial(model, o, u, actinf.SpmSettings(inference=mmp))
    np.testing.assert_allclose(np.asarray(res.X[0]).T, exact.smoothed[0], rtol=0, atol=1e-12)
    first = fb(A, [B], model.initial, o[:, :1])
    log_p0 = float(first.log_evidence)
    log_p1 = float(exact.log_evidence) - log_p0
    F = np.asarray(res.F)
    np.testing.assert_allclose(F[:, 0], log_p0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(F[:, 1], log_p0 + 0.5 * log_p1, rtol=0, atol=1e-10)


# ------------------------------------------------ (c) expected free energy by enumeration


def efe_by_enumeration(A, qs, C):
    """Risk and ambiguity summing over every joint state and joint outcome (plain NumPy).

    risk = KL[q(o) || p(o)], p(o) = prod_g softmax(C_g)[o_g];
    ambiguity = sum_s q(s) H[P(o | s)].
    """
    Ns = [q.size for q in qs]
    No = [a.shape[0] for a in A]
    pref = [np.exp(c - c.max()) / np.exp(c - c.max()).sum() for c in C]
    states = list(itertools.product(*[range(n) for n in Ns]))
    outcomes = list(itertools.product(*[range(n) for n in No]))
    qo = dict.fromkeys(outcomes, 0.0)
    ambiguity = 0.0
    for s in states:
        q_s = np.prod([qs[f][s[f]] for f in range(len(Ns))])
        entropy = 0.0
        for o in outcomes:
            p = np.prod([A[g][(o[g], *s)] for g in range(len(A))])
            qo[o] += q_s * p
            entropy -= p * np.log(p)
        ambiguity += q_s * entropy
    risk = 0.0
    for o in outcomes:
        p_o = np.prod([pref[g][o[g]] for g in range(len(A))])
        risk += qo[o] * (np.log(qo[o]) - np.log(p_o))
    return risk, ambiguity


# (seed, Ns per factor, No per modality)
EFE_CASES = [
    (0, (2,), (2,)),
    (1, (3,), (3, 2)),
    (2, (2,), (2, 3, 2)),
    (3, (2, 3), (3,)),
    (4, (3, 2), (2, 2)),
    (5, (3, 3), (3, 2, 3)),
]


def _efe_case(seed, Ns, No):
    rng = np.random.default_rng(300 + seed)
    A = [_random_columns(rng, (n, *Ns)) for n in No]
    qs = [_random_columns(rng, (n,)) for n in Ns]
    C = [rng.normal(scale=2.0, size=(n, 2)) for n in No]  # [No, T] with T = 2
    return A, qs, C


@pytest.mark.parametrize("case", EFE_CASES, ids=[f"Ns{c[1]}-No{c[2]}-s{c[0]}" for c in EFE_CASES])
@pytest.mark.parametrize("tau", [0, 1])
def test_risk_and_ambiguity_equal_enumeration(case, tau):
    A, qs, C = _efe_case(*case)
    log_pref = [jnp.asarray(c - np.log(np.exp(c).sum(axis=0, keepdims=True))) for c in C]
    om = outcome_model([jnp.asarray(a) for a in A], log_pref)
    states = [jnp.asarray(q) for q in qs]
    risk, ambiguity = efe_by_enumeration(A, qs, [c[:, tau] for c in C])
    # SPM adds e^-16 inside the logarithms: each of sum_o q ln q and sum_o P ln P moves
    # by at most e^-16 per joint outcome.
    tol = 2 * ENTROPY_EPS * int(np.prod([a.shape[0] for a in A]))
    assert abs(float(Risk()(om, states, tau)) - risk) < tol
    assert abs(float(Ambiguity()(om, states, tau)) - ambiguity) < tol


def spm_MDP_G(A, x):
    """Literal NumPy transcription of SPM12's ``spm_MDP_G.m`` (r7766)."""
    qx = x[0]
    for v in x[1:]:
        qx = np.multiply.outer(qx, v)
    qx = qx.ravel()
    G = 0.0
    qo = 0.0
    for i in np.flatnonzero(qx > np.exp(-16)):
        idx = np.unravel_index(i, [v.size for v in x])
        po = np.ones(1)
        for a in A:
            po = np.multiply.outer(po, a[(slice(None), *idx)]).ravel()
        qo = qo + qx[i] * po
        G = G + qx[i] * po @ np.log(po + np.exp(-16))
    return G - qo @ np.log(qo + np.exp(-16))


def test_risk_plus_ambiguity_is_minus_spm_G_hand_example():
    # two factors (2 and 2 states), two modalities (2 and 3 outcomes), by hand
    A0 = np.array([[[0.9, 0.6], [0.3, 0.1]], [[0.1, 0.4], [0.7, 0.9]]])
    A1 = np.array([[[0.5, 0.2], [0.1, 1 / 3]], [[0.25, 0.3], [0.8, 1 / 3]], [[0.25, 0.5], [0.1, 1 / 3]]])
    x = [np.array([0.7, 0.3]), np.array([0.2, 0.8])]
    C = [np.array([2.0, -1.0]), np.array([0.0, 0.0, 3.0])]
    logC = [c - np.log(np.exp(c).sum()) for c in C]
    # SPM, spm_MDP_VB_X: G += spm_MDP_G(A, x) + sum_g (A_g . x)' C_g  (C log-softmaxed)
    spm_G = spm_MDP_G([A0, A1], x)
    for a, c in zip([A0, A1], logC, strict=True):
        qo = np.einsum("oij,i,j->o", a, *x)
        spm_G += qo @ c
    om = outcome_model([jnp.asarray(A0), jnp.asarray(A1)], [jnp.asarray(c)[:, None] for c in logC])
    xs = [jnp.asarray(v) for v in x]
    total = float(Risk()(om, xs, 0) + Ambiguity()(om, xs, 0))
    np.testing.assert_allclose(total, -spm_G, rtol=0, atol=1e-12)
    risk, ambiguity = efe_by_enumeration([A0, A1], x, C)
    np.testing.assert_allclose(total, risk + ambiguity, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", EFE_CASES[1:3], ids=[f"No{c[2]}-s{c[0]}" for c in EFE_CASES[1:3]])
def test_spm_trial_G_at_last_step_is_minus_risk_plus_ambiguity(case):
    """In a trial without counts, G[:, T-1] is minus (risk + ambiguity) of each policy's
    predicted states Q[:, T-1]: the enumeration oracle on the engine's own output."""
    seed, (Ns,), No = case
    rng = np.random.default_rng(400 + seed)
    A = [_random_columns(rng, (n, Ns)) for n in No]
    B = _random_columns(rng, (Ns, Ns, 2))
    C = [rng.normal(size=(n,)) for n in No]
    model = actinf.generative_model(A, [B], C, horizon=2)
    o = np.stack([rng.integers(0, n, size=2) for n in No])
    # zeta: no policy leaves the Occam window (a pruned policy's G is set to 0)
    settings = actinf.SpmSettings(zeta=1e3)
    res = spm_trial(model, o, np.zeros((1, 1), np.int32), settings)
    Q = np.asarray(res.Q[0])  # [Ns, T, Np]
    want = [-sum(efe_by_enumeration(A, [Q[:, 1, k]], C)) for k in range(model.num_policies)]
    tol = 2 * ENTROPY_EPS * int(np.prod(No))
    np.testing.assert_allclose(np.asarray(res.G[:, 1]), want, rtol=0, atol=tol)
