"""Policy posterior, policy precision and action probabilities.

Sign convention: ``efe`` is the expected free energy (lower is better) and
``free_energy`` is the variational free energy of each policy (lower is
better); SPM's ``G`` and ``F`` are their negatives.

Policy posterior and prior (Friston et al. 2017, Neural Computation 29, eqs.
B.9 and 9):

.. math::

   \\pi = \\sigma(\\ln E - \\gamma G - F), \\qquad \\pi_0 = \\sigma(\\ln E - \\gamma G)

Policy precision :math:`\\gamma = 1/\\beta_q` with a Gamma prior of rate
``beta``: SPM iterates 16 times the gradient step on the rate

.. math::

   \\beta_q \\leftarrow \\beta_q - \\tfrac12\\big(\\beta_q - \\beta + (\\pi - \\pi_0)\\cdot(-G)\\big)

(``spm_MDP_VB_X.m``; Friston et al. 2017, eq. B.9), or holds
:math:`\\gamma = 1/\\beta` fixed (SPM's ``OPTIONS.gamma = 1``).

Action probabilities marginalise the policy posterior over the policies that
take each joint action now and sharpen it with action precision ``alpha``:
:math:`P(u) = \\sigma(\\alpha \\ln \\sum_{\\pi: \\pi_t = u} \\pi)`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..maths import log_stable, masked_softmax


class PolicyPosterior(NamedTuple):
    """Result of :func:`policy_posterior`.

    Attributes:
      posterior: ``[Np]`` :math:`q(\\pi)` (zero for policies outside the window).
      prior: ``[Np]`` :math:`p(\\pi)` before the evidence ``F``.
      precision: the final :math:`\\gamma`.
      rate: the final :math:`\\beta_q = 1/\\gamma` (carried to the next time step).
    """

    posterior: jax.Array
    prior: jax.Array
    precision: jax.Array
    rate: jax.Array


class GammaPrecision(NamedTuple):
    """Policy precision with a Gamma prior of rate ``beta``, updated as in SPM (16 steps).

    ``free_energy`` is ``[Np]``, or a scalar when every policy has the same
    (receding-horizon planning, where all policies share the posterior now). Then
    :math:`\\pi = \\pi_0` at every step, the evidence term :math:`(\\pi - \\pi_0)\\cdot(-G)`
    vanishes and the rate relaxes toward ``beta`` alone,
    :math:`\\beta_q^{(k)} = \\beta + (\\beta_q^{(0)} - \\beta)/2^k`: the result of the
    ``num_iter`` steps is written down directly (equal to the loop up to rounding).
    """

    num_iter: int = 16

    def __call__(self, log_habit, efe, free_energy, mask, rate, beta):
        if jnp.ndim(free_energy) == 0 and self.num_iter > 0:
            # the last step's posterior uses the rate before it, the result the rate after it
            before = beta + (rate - beta) * 2.0 ** -(self.num_iter - 1)
            after = beta + (rate - beta) * 2.0**-self.num_iter
            q = masked_softmax(log_habit - efe / before, mask)
            return PolicyPosterior(q, q, 1.0 / after, after)

        def body(carry, _):
            rate, _, _ = carry
            gamma = 1.0 / rate
            q = masked_softmax(log_habit - gamma * efe - free_energy, mask)
            p = masked_softmax(log_habit - gamma * efe, mask)
            eg = (q - p) @ jnp.where(mask, -efe, 0.0)
            rate = rate - (rate - beta + eg) / 2.0
            return (rate, q, p), None

        init = (rate, jnp.zeros_like(efe), jnp.zeros_like(efe))
        (rate, q, p), _ = jax.lax.scan(body, init, None, length=self.num_iter)
        return PolicyPosterior(q, p, 1.0 / rate, rate)


class FixedPrecision(NamedTuple):
    """Policy precision held at :math:`\\gamma = 1/\\beta` (SPM's ``OPTIONS.gamma = 1``)."""

    def __call__(self, log_habit, efe, free_energy, mask, rate, beta):
        gamma = 1.0 / beta
        q = masked_softmax(log_habit - gamma * efe - free_energy, mask)
        p = masked_softmax(log_habit - gamma * efe, mask)
        return PolicyPosterior(q, p, jnp.asarray(gamma) * jnp.ones_like(rate), rate)


def occam_window(previous_posterior, mask, zeta):
    """Keep the policies whose log posterior is within ``zeta`` nats of the best (SPM's ``zeta`` = 3).

    Policies already outside the window stay outside.
    """
    logp = jnp.where(mask, jnp.log(previous_posterior), -jnp.inf)
    best = jnp.max(logp)
    return mask & (logp - best > -zeta)


def action_marginal(posterior, actions, num_controls):
    """:math:`q(u) = \\sum_{\\pi: \\pi_t = u} q(\\pi)` over joint actions, flat ``[Nu_1 * ... * Nu_F]``.

    A product with the one-hot matrix of the policies' actions (a matrix product
    is cheaper than a scatter on CPU, and shared by a batch of agents).
    """
    flat = jnp.ravel_multi_index(tuple(actions.T), num_controls, mode="clip")
    size = 1
    for n in num_controls:
        size *= n
    return posterior @ jax.nn.one_hot(flat, size, dtype=posterior.dtype)


def action_probabilities(posterior, actions, num_controls, alpha):
    """Probability of each joint action now, ``[Nu_1, ..., Nu_F]``.

    Args:
      posterior: ``[Np]`` policy posterior.
      actions: ``[Np, F]`` the action each policy takes now in each factor.
      num_controls: ``(Nu_1, ..., Nu_F)``.
      alpha: action precision.
    """
    marginal = action_marginal(posterior, actions, num_controls)
    possible = marginal > 0
    logm = jnp.log(jnp.where(possible, marginal, 1.0))
    # actions no plausible policy takes get probability zero (SPM: log(0) = -inf);
    # masking instead of -inf keeps gradients in alpha finite
    return masked_softmax(alpha * logm, possible).reshape(num_controls)


def log_action_probabilities(posterior, actions, num_controls, alpha):
    """``ln P(u)`` of :func:`action_probabilities`, computed as a masked log-softmax.

    Stable for large ``alpha`` (no underflow of ``P`` before the logarithm) and
    differentiable; actions that no plausible policy takes get ``-inf``.
    """
    marginal = action_marginal(posterior, actions, num_controls)
    possible = marginal > 0
    z = jnp.where(possible, alpha * jnp.log(jnp.where(possible, marginal, 1.0)), -jnp.inf)
    top = jnp.max(z)
    shifted = jnp.where(possible, z - top, -jnp.inf)
    norm = jnp.log(jnp.sum(jnp.where(possible, jnp.exp(shifted), 0.0)))
    return jnp.where(possible, shifted - norm, -jnp.inf).reshape(num_controls)


def policy_entropy_term(posterior, prior):
    """:math:`\\sum_\\pi q(\\pi)(\\ln q(\\pi) - \\ln p(\\pi))`, the policy complexity in SPM's ``H``."""
    return posterior @ (log_stable(posterior) - log_stable(prior))
