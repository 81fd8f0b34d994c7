"""Exact posterior marginals of the hidden states by forward-backward.

For a fixed action sequence the generative model is a hidden Markov model
whose hidden state is the joint state :math:`s = (s_1, \\dots, s_F)` of all
factors. Its pieces factorise over factors and modalities:

.. math::

   P(s_0) = \\prod_f D_f[s_{f,0}], \\qquad
   P(s_{t+1} \\mid s_t) = \\prod_f B_f[s_{f,t+1}, s_{f,t}, u_{f,t}], \\qquad
   L_t(s) = P(o_t \\mid s) = \\prod_g A_g[o_{g,t}, s_1, \\dots, s_F].

Here the joint state is never flattened into one index: a belief over it is
an array ``[Ns_1, ..., Ns_F]`` and a transition applies each ``B_f`` along
axis ``f``, so the cost per step is :math:`\\prod_f N_f \\sum_f N_f` instead of
:math:`(\\prod_f N_f)^2`.

**Forward (filtering)**, with normalisers :math:`c_t` (Rabiner 1989, *A
tutorial on hidden Markov models*, Proc. IEEE 77, eqs. 19-20 and 91-92;
Bishop 2006, *Pattern Recognition and Machine Learning*, section 13.2.4):

.. math::

   \\tilde\\alpha_0(s) = L_0(s)\\, P(s_0 = s), \\qquad
   \\tilde\\alpha_t(s) = L_t(s) \\sum_{s'} P(s_t = s \\mid s_{t-1} = s')\\,
   \\hat\\alpha_{t-1}(s'),

.. math::

   c_t = \\sum_s \\tilde\\alpha_t(s), \\qquad
   \\hat\\alpha_t(s) = \\tilde\\alpha_t(s) / c_t = P(s_t = s \\mid o_{0:t}).

**Backward**, scaled by the same normalisers:

.. math::

   \\hat\\beta_{T-1}(s) = 1, \\qquad
   \\hat\\beta_t(s) = \\frac{1}{c_{t+1}} \\sum_{s'} P(s_{t+1} = s' \\mid s_t = s)\\,
   L_{t+1}(s')\\, \\hat\\beta_{t+1}(s'),

so that :math:`\\hat\\beta_t(s) = P(o_{t+1:T-1} \\mid s_t = s) / P(o_{t+1:T-1}
\\mid o_{0:t})`.

**Smoothing** and **evidence**:

.. math::

   \\gamma_t(s) = \\hat\\alpha_t(s)\\, \\hat\\beta_t(s) = P(s_t = s \\mid o_{0:T-1}),
   \\qquad
   \\ln P(o_{0:T-1}) = \\sum_{t=0}^{T-1} \\ln c_t .

The per-factor marginals are :math:`\\gamma_t` summed over the other factors'
axes. They are exact: no mean-field or marginal approximation is made, which
is what makes this module an oracle for the approximate schemes of
:mod:`actinf.inference.mmp` (SPM's marginal message passing agrees with it
only in special cases, e.g. a single factor and a single time step).

An outcome given as a negative integer is treated as missing: its likelihood
is one for every state (the step is a pure prediction). If the outcomes are
impossible under the model (:math:`c_t = 0`), the log evidence is
:math:`-\\infty`; the filtered belief at that step is then uniform (as
:func:`~actinf.maths.normalise` makes a zero column), so the marginals stay
finite but are no longer posteriors.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..maths import contract, normalise, outer


class HmmPosterior(NamedTuple):
    """Result of :func:`forward_backward`.

    Attributes:
      smoothed: per factor ``[T, Ns_f]``, :math:`P(s_{f,t} \\mid o_{0:T-1})`.
      filtered: per factor ``[T, Ns_f]``, :math:`P(s_{f,t} \\mid o_{0:t})`.
      log_evidence: scalar :math:`\\ln P(o_{0:T-1})`.
      joint_smoothed: ``[T, Ns_1, ..., Ns_F]``, the smoothed joint posterior
        :math:`\\gamma_t`.
    """

    smoothed: tuple
    filtered: tuple
    log_evidence: jax.Array
    joint_smoothed: jax.Array


def _propagate(belief, matrices, transpose: bool = False):
    """Apply ``matrices[f]`` (``[Ns_f, Ns_f]``) along axis ``f`` of a joint belief.

    ``transpose=False`` computes :math:`\\sum_{s'} M[s, s'] b[s']` (forward);
    ``transpose=True`` computes :math:`\\sum_{s'} M[s', s] b[s']` (backward).
    """
    for f, m in enumerate(matrices):
        m = m.T if transpose else m
        belief = jnp.moveaxis(jnp.tensordot(m, belief, axes=([1], [f])), 0, f)
    return belief


def _normalise_joint(x):
    """Normalise a joint belief ``[Ns_1, ..., Ns_F]``; return it and its total."""
    flat = x.reshape(-1, 1)
    return normalise(flat).reshape(x.shape), jnp.sum(flat)


def _marginals(joint):
    """Per-factor marginals ``[T, Ns_f]`` of joint beliefs ``[T, Ns_1, ..., Ns_F]``."""
    ones = [jnp.ones((n,), joint.dtype) for n in joint.shape[1:]]
    return tuple(contract(joint, ones, skip=f) for f in range(len(ones)))


def outcome_likelihoods(likelihood, outcomes):
    """:math:`L_t(s) = \\prod_g A_g[o_{g,t}, s]` for every time, ``[T, Ns_1, ..., Ns_F]``.

    Args:
      likelihood: per modality ``A_g`` ``[No_g, Ns_1, ..., Ns_F]``.
      outcomes: ``[G, T]`` integer outcomes; a negative entry is missing (likelihood 1).
    """
    outcomes = jnp.asarray(outcomes)
    L = jnp.ones((outcomes.shape[1], *likelihood[0].shape[1:]), likelihood[0].dtype)
    for g, a in enumerate(likelihood):
        o = outcomes[g]
        rows = a[jnp.clip(o, 0, a.shape[0] - 1)]  # [T, Ns...]
        observed = (o >= 0).reshape((-1,) + (1,) * (a.ndim - 1))
        L = L * jnp.where(observed, rows, 1.0)
    return L


def forward_backward(likelihood, transition, initial, outcomes, actions=None) -> HmmPosterior:
    """Exact filtering and smoothing of the joint hidden state under fixed actions.

    Args:
      likelihood: per modality ``A_g`` ``[No_g, Ns_1, ..., Ns_F]``, columns normalised.
      transition: per factor ``B_f`` ``[Ns_f, Ns_f, Nu_f]`` (``B_f[s', s, u]``).
      initial: per factor ``D_f`` ``[Ns_f]``.
      outcomes: ``[G, T]`` integer outcomes (0-based; negative: missing).
      actions: ``[F, T-1]`` integer actions taken (0-based), the layout of
        :func:`actinf.spm_trial`; may be omitted when ``T = 1``.

    Returns:
      :class:`HmmPosterior`: smoothed and filtered per-factor marginals
      ``[T, Ns_f]``, the log evidence :math:`\\ln P(o_{0:T-1})` and the smoothed
      joint posterior.
    """
    likelihood = tuple(jnp.asarray(a) for a in likelihood)
    transition = tuple(jnp.asarray(b) for b in transition)
    initial = tuple(jnp.asarray(d) for d in initial)
    F = len(transition)
    outcomes = jnp.asarray(outcomes)
    T = outcomes.shape[1]
    if actions is None:
        if T > 1:
            raise ValueError("actions [F, T-1] are needed when there is more than one time step")
        actions = jnp.zeros((F, 0), jnp.int32)
    actions = jnp.asarray(actions)
    L = outcome_likelihoods(likelihood, outcomes)  # [T, Ns...]
    # per-step transition matrices of each factor, [T-1, Ns_f, Ns_f]
    Bt = tuple(jnp.moveaxis(b[:, :, actions[f]], 2, 0) for f, b in enumerate(transition))
    prior0 = outer(initial)  # P(s_0), [Ns_1, ..., Ns_F]

    alpha0, c0 = _normalise_joint(L[0] * prior0)

    def forward(alpha, inputs):
        Lt, mats = inputs
        a, c = _normalise_joint(Lt * _propagate(alpha, mats))
        return a, (a, c)

    _, (alphas, cs) = jax.lax.scan(forward, alpha0, (L[1:], Bt))
    alphas = jnp.concatenate([alpha0[None], alphas], axis=0)
    cs = jnp.concatenate([c0[None], cs], axis=0)

    def backward(beta, inputs):
        Lnext, mats, cnext = inputs
        safe = jnp.where(cnext > 0, cnext, 1.0)
        b = _propagate(Lnext * beta, mats, transpose=True) / safe
        return b, b

    beta_last = jnp.ones(L.shape[1:], L.dtype)
    _, betas = jax.lax.scan(backward, beta_last, (L[1:], Bt, cs[1:]), reverse=True)
    betas = jnp.concatenate([betas, beta_last[None]], axis=0)

    gamma = alphas * betas
    # gamma is normalised up to rounding; renormalise so every marginal sums to one.
    gamma = jax.vmap(lambda g: _normalise_joint(g)[0])(gamma)
    log_evidence = jnp.sum(jnp.log(cs))
    return HmmPosterior(_marginals(gamma), _marginals(alphas), log_evidence, gamma)


def exact_posterior(model, outcomes, actions=None) -> HmmPosterior:
    """:func:`forward_backward` with the agent's beliefs of a :class:`~actinf.GenerativeModel`.

    Uses the normalised counts where the model has them (``a``, ``b``, ``d``), as
    the agent of :func:`actinf.spm_trial` does, else ``A``, ``B``, ``D``.
    """
    A = tuple(normalise(a) for a in (model.likelihood_counts or model.likelihood))
    B = tuple(normalise(b) for b in (model.transition_counts or model.transition))
    D = tuple(normalise(d) for d in (model.initial_counts or model.initial))
    return forward_backward(A, B, D, outcomes, actions)
