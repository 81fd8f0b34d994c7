"""Marginal message passing over past and future states under one policy.

This is the state-estimation part of SPM12's ``spm_MDP_VB_X.m`` (revision
7766, the one in SPM12 r7771), written as a pure function of one policy's
beliefs. ``jax.vmap`` runs it over policies.

For factor :math:`f`, time :math:`\\tau` and policy :math:`\\pi`, with
:math:`\\mathbf{s} = q(s_{f,\\tau} \\mid \\pi)`, each sweep forms the state
prediction error (Friston et al. 2017, *Active inference: a process theory*,
Neural Computation 29, eq. B.5; Parr et al. 2019, *Neuronal message passing
using mean-field, Bethe, and marginal approximations*, Sci. Rep. 9, eq. 13):

.. math::

   v = \\ln(B_{\\tau-1} \\mathbf{s}_{\\tau-1}) + \\ln(B^\\dagger_{\\tau} \\mathbf{s}_{\\tau+1})
       + 2\\ln L_\\tau - 2\\ln \\mathbf{s}

(the forward term is :math:`\\ln D` at :math:`\\tau = 0`; the backward term is
absent at the last time; :math:`L_\\tau` is the likelihood of the outcome at
:math:`\\tau` marginalised over the other factors, and 1 for future times), the
policy's negative free energy

.. math::

   F_\\pi \\mathrel{+}= \\mathbf{s}\\cdot\\big(\\tfrac12 v
       - [0 < \\tau < S-1]\\,\\tfrac{F-1}{F}\\ln L_\\tau\\big)

and the gradient step :math:`\\mathbf{s} \\leftarrow \\sigma(\\ln\\mathbf{s} + (v - \\bar v)/\\tau_x)`
with time constant :math:`\\tau_x` (SPM's ``tau`` = 4). Factors and times are
updated in order, each using the latest beliefs of the others. SPM runs 16
sweeps per policy; after the first, a sweep is skipped while the change in
:math:`F_\\pi` is at most :math:`e^{-8}` and fewer than five sweeps have run, and
resumes from the fifth. This is reproduced exactly, quirks included.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..maths import contract, log_stable, softmax
from ..planning.efe import expected_free_energy


class MarginalMessagePassing(NamedTuple):
    """SPM's marginal message passing scheme and its settings.

    Attributes:
      num_iter: sweeps per policy and time step (SPM's ``Ni`` = 16).
      tau: time constant of the gradient descent (SPM's ``tau`` = 4).
      erp: softening of the beliefs before each time step,
        :math:`\\mathbf{s} \\leftarrow \\sigma(\\ln \\mathbf{s} / \\text{erp})`
        (SPM's ``erp`` = 4).
    """

    num_iter: int = 16
    tau: float = 4.0
    erp: float = 4.0

    #: Policies span the trial: one pruned by the Occam window stays pruned (SPM).
    policies_persist = True

    def reset(self, beliefs):
        """Soften every belief before a new time step (SPM's ``erp`` reset)."""
        return tuple(softmax(log_stable(x) / self.erp, axis=-1) for x in beliefs)

    def num_rows(self, trial_length: int, policy_length: int) -> int:
        """Rows of the beliefs: every time of the trial, ``T``.

        Raises:
          ValueError: if the policies do not span the trial (``T = L + 1``).
        """
        if trial_length != policy_length + 1:
            raise ValueError(
                f"marginal message passing plans over whole trials: the policies have {policy_length} "
                f"moves, so the trial must have {policy_length + 1} time steps, not {trial_length} "
                "(use FixedPoint inference for receding-horizon planning in longer trials)"
            )
        return trial_length

    def now(self, t):
        """Row of the current time: ``t``."""
        return t

    def policy_actions(self, policies, t, trial_length: int):
        """Each policy's action at move ``t``, ``[Np, F]``."""
        return policies[jnp.minimum(t, trial_length - 2)]

    def infer(self, beliefs, arrays, likelihoods, t, actions, mask, history):
        """Beliefs of every policy after the outcome at time ``t`` (SPM's step ``t``).

        Softens every belief (``erp``), then runs :meth:`__call__` under each
        policy; policies outside ``mask`` keep their softened beliefs.

        Args:
          beliefs: per factor ``[Np, T, Ns_f]``.
          arrays: the agent's :class:`~actinf.agent.AgentArrays` (``log_initial``,
            ``forward``, ``backward`` are used).
          likelihoods: ``[T, Ns_1, ..., Ns_F]``.
          t: the current time (may be traced).
          actions: unused (SPM infers under each policy, whatever was done).
          mask: bool ``[Np]``, the policies inside the Occam window.
          history: unused.

        Returns:
          ``(beliefs, neg_free_energy [Np])`` (zero outside ``mask``).
        """
        del actions, history
        x = self.reset(beliefs)
        new, free = jax.vmap(lambda xk, fk, bk: self(xk, arrays.log_initial, fk, bk, likelihoods, t))(
            x, arrays.forward, arrays.backward
        )
        x = tuple(jnp.where(mask[:, None, None], nx, ox) for nx, ox in zip(new, x, strict=True))
        return x, jnp.where(mask, free, 0.0)

    def expected_free_energy(self, outcomes, beliefs, t, trial_length: int, terms):
        """One policy's expected free energy from ``t`` to the end of the trial (SPM)."""
        return expected_free_energy(outcomes, beliefs, t, terms)

    def learning_inputs(self, model, beliefs, policy_posterior, history, actions):
        """SPM's learning inputs: the beliefs averaged with the final policy posterior,
        the beliefs and posterior of every policy, and the policies.

        Returns:
          ``(X per factor [Ns_f, T], x per factor [Np, T, Ns_f], u [Np, T], policies)``.
        """
        T = policy_posterior.shape[1]
        qu = policy_posterior[:, T - 1]
        X = tuple(jnp.einsum("kjs,k->sj", xf, qu) for xf in beliefs)
        return X, beliefs, policy_posterior, model.policies

    def __call__(self, beliefs, log_initial, forward, backward, likelihoods, t: int):
        """Update one policy's beliefs at time ``t``.

        Args:
          beliefs: per factor, ``[S, Ns_f]`` current beliefs over each time.
          log_initial: per factor, ``ln D_f`` ``[Ns_f]``.
          forward: per factor, ``[S-1, Ns_f, Ns_f]`` transition matrices of this
            policy, ``B_f(u_\\tau)``.
          backward: per factor, ``[S-1, Ns_f, Ns_f]`` the normalised transposes.
          likelihoods: ``[S, Ns_1, ..., Ns_F]`` the joint likelihood arrays
            ``L_\\tau[s_1, ..., s_F]``; only ``\\tau <= t`` are used.
          t: the current time (may be traced): outcomes are known for ``\\tau <= t``.

        Returns:
          ``(beliefs, F)``: updated beliefs and the policy's negative free energy.
        """
        F = len(beliefs)
        S = beliefs[0].shape[0]
        dtype = beliefs[0].dtype

        def shift(x, offset):
            # x[j + offset] for j = 0..S-1, clamped at the ends (the clamped
            # entries are never used: they are masked below)
            idx = jnp.clip(jnp.arange(S) + offset, 0, x.shape[0] - 1)
            return x[idx]

        # per time j: the previous transition (into j) and the next backward one
        fwd_in = (
            tuple(shift(fm, -1) for fm in forward)
            if S > 1
            else tuple(jnp.zeros((S, b.shape[1], b.shape[1]), dtype) for b in beliefs)
        )
        bwd_out = tuple(shift(bm, 0) for bm in backward) if S > 1 else fwd_in

        def position(carry, xs):
            """Update every factor at time j, given the updated beliefs at j - 1."""
            prev_new, total, active = carry
            j, x_j, x_next, L_j, fwd_j, bwd_j = xs
            known = j <= t
            first, last = j == 0, j == S - 1
            xq = list(x_j)
            new_j = []
            for f in range(F):
                sx = x_j[f]
                qL = jnp.where(known, log_stable(contract(L_j, xq, skip=f)), 0.0)
                qx = log_stable(sx)
                prior = jnp.where(first, log_initial[f], log_stable(fwd_j[f] @ prev_new[f]))
                v = prior + qL - qx
                v = jnp.where(last, v, v + log_stable(bwd_j[f] @ x_next[f]) + qL - qx)
                total = total + jnp.where(first | last, sx @ (0.5 * v), sx @ (0.5 * v - (F - 1) * qL / F))
                v = v - jnp.mean(v)
                sx_new = jnp.where(active, softmax(qx + v / self.tau), sx)
                new_j.append(sx_new)
                xq[f] = sx_new
            return (tuple(new_j), total, active), tuple(new_j)

        def sweep(carry, _):
            x, f_prev, d_f, i = carry
            active = (d_f > jnp.exp(-8.0)) | (i >= 4)
            xs = (
                jnp.arange(S),
                x,
                tuple(shift(xf, 1) for xf in x),
                likelihoods,
                fwd_in,
                bwd_out,
            )
            init = (tuple(xf[0] for xf in x), jnp.zeros((), dtype), active)
            (_, total, _), new = jax.lax.scan(position, init, xs)
            f_now = jnp.where(active, total, f_prev)
            d_f = jnp.where(i >= 1, f_now - f_prev, d_f)
            return (new, f_now, d_f, i + 1), None

        init = (tuple(beliefs), jnp.zeros((), dtype), jnp.ones((), dtype), jnp.array(0))
        (x, free, _, _), _ = jax.lax.scan(sweep, init, None, length=self.num_iter)
        return tuple(x), free
