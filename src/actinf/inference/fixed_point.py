"""Fast state inference: one fixed-point update of the current state per time step.

Marginal message passing (:mod:`actinf.inference.mmp`) revisits every past and
future time under every policy, 16 sweeps per step. For large models a filter
is enough: at time :math:`t` the agent combines the prediction from its last
posterior and the action it took with the likelihood of the new outcome, and
predicts forward under each policy (Da Costa et al. 2020, *Active inference on
discrete state-spaces: a synthesis*, J. Math. Psych. 99, section 4; pymdp's
``fpi``).

Prior (the empirical prior from the last step):

.. math::

   \\mathbf{p}_{f,t} = B_f(u_{f,t-1})\\,\\mathbf{q}_{f,t-1}, \\qquad \\mathbf{p}_{f,0} = D_f

Fixed point of the mean-field free energy over factors, iterated ``num_iter``
times (exact in one iteration for one factor):

.. math::

   \\mathbf{q}_{f,t} = \\sigma\\big(\\ln \\mathbf{p}_{f,t}
       + \\ln \\textstyle\\sum_{s_{\\setminus f}} L_t(s) \\prod_{k\\ne f} q_{k,t}(s_k)\\big)

with :math:`L_t(s) = \\prod_g A_g[o_{g,t}, s]`. The negative free energy of
the posterior, the same for every policy, is

.. math::

   -F_t = \\textstyle\\sum_s q(s)\\ln L_t(s)
          - \\sum_f \\mathrm{KL}[\\mathbf{q}_{f,t}\\|\\mathbf{p}_{f,t}]

Future times are predicted under each policy,
:math:`\\mathbf{q}_{f,\\tau+1}^\\pi = B_f(\\pi_\\tau)\\mathbf{q}^\\pi_{f,\\tau}`, and past
times keep the posteriors filtered when they were present.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..maths import contract, log_stable, outer, softmax


class FixedPoint(NamedTuple):
    """Per-step fixed-point state inference (filtering), with forward prediction under each policy.

    Attributes:
      num_iter: fixed-point iterations over the factors (10; one is exact for one factor).
    """

    num_iter: int = 10

    def infer(self, beliefs, log_initial, forward, backward, transitions, likelihoods, t, actions, mask):
        """Beliefs of every policy after the outcome at time ``t``.

        Args:
          beliefs: per factor ``[Np, S, Ns_f]``: rows before ``t`` hold the past posteriors.
          log_initial: per factor ``ln D_f`` ``[Ns_f]``.
          forward: per factor ``[Np, S-1, Ns_f, Ns_f]``, each policy's transition matrices.
          backward: unused (the filter looks only forward).
          transitions: per factor ``[Ns_f, Ns_f, Nu_f]``, the agent's ``B``.
          likelihoods: ``[S, Ns_1, ..., Ns_F]``, the joint likelihood of each time's outcome.
          t: the current time (may be traced).
          actions: int ``[F, S-1]``, the actions taken (only ``t - 1`` is read).
          mask: unused (every policy shares the posterior).

        Returns:
          ``(beliefs, neg_free_energy [Np])``.
        """
        del backward, mask
        S = beliefs[0].shape[1]
        F = len(beliefs)
        tp = jnp.maximum(t - 1, 0)
        prior = []
        for f in range(F):
            if S > 1:
                last = beliefs[f][0, tp]
                moved = transitions[f][:, :, actions[f, jnp.minimum(tp, S - 2)]] @ last
                prior.append(jnp.where(t == 0, jnp.exp(log_initial[f]), moved))
            else:
                prior.append(jnp.exp(log_initial[f]))
        log_prior = [log_stable(p) for p in prior]
        L = likelihoods[t]

        def sweep(q, _):
            q = list(q)
            for f in range(F):
                q[f] = softmax(log_prior[f] + log_stable(contract(L, q, skip=f)))
            return tuple(q), None

        q, _ = jax.lax.scan(sweep, tuple(prior), None, length=self.num_iter if F > 1 else 1)
        accuracy = jnp.sum(outer(list(q)) * log_stable(L))
        complexity = sum(qf @ (log_stable(qf) - lp) for qf, lp in zip(q, log_prior, strict=True))
        neg_free = accuracy - complexity

        def predict(bf, ff, qf):
            # bf [S, Ns], ff [S-1, Ns, Ns]: rows < t kept, row t = q, rows > t predicted
            def row(prev, tau):
                moved = ff[jnp.clip(tau - 1, 0, max(S - 2, 0))] @ prev if S > 1 else prev
                new = jnp.where(tau < t, bf[tau], jnp.where(tau == t, qf, moved))
                return new, new

            _, rows = jax.lax.scan(row, qf, jnp.arange(S))
            return rows

        each = jax.vmap(predict, in_axes=(0, 0, None))
        new = tuple(each(b, fw, qf) for b, fw, qf in zip(beliefs, forward, q, strict=True))
        Np = beliefs[0].shape[0]
        return new, jnp.broadcast_to(neg_free, (Np,))
