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

Then, per factor in turn, iterated ``num_iter`` times (exact in one iteration
for one factor, where it is Bayes' rule), SPM's update: the log of the
likelihood averaged over the other factors (``spm_dot``), not the average of
its log that the strict mean-field fixed point (and pymdp's ``fpi``) uses;
the two agree when the other factors are known with certainty:

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

from .. import _xla
from ..maths import contract, log_stable, normalise, outer, softmax
from ..planning.efe import expected_free_energy


class FixedPoint(NamedTuple):
    """Per-step fixed-point state inference with receding-horizon planning.

    The agent keeps only its posterior over the current state; at every step
    each policy (a sequence of ``L`` moves, ``L = V.shape[0]``, starting *now*)
    is scored over the next ``L`` times, up to the end of the trial. Trials may
    be longer than the policies (``Agent(trial_length=...)``): the agent plans
    again at every step, as pymdp's agents do.

    Beliefs are a window per factor ``[Np, L + 1, Ns_f]``: row 0 is the
    posterior now, row ``r`` the prediction ``r`` moves ahead under each policy.

    With ``shared_prefixes`` (the default) an :class:`~actinf.agent.Agent`
    scores its policies over their prefix tree
    (:mod:`actinf.planning.tree`): policies that start with the same moves
    share those predictions, and only the posterior now is kept (the window
    has one row). The expected free energies are the same as scoring each
    policy's window alone, which is what ``shared_prefixes=False`` does (and
    what happens when the agent is built from traced policies).

    With ``stop_at_fixed_point`` the sweeps over the factors stop as soon as one
    leaves every :math:`\\mathbf{q}_f` unchanged, bit for bit, instead of always
    running ``num_iter`` of them. A sweep is a deterministic function of the
    beliefs, so a sweep that changes nothing would change nothing again: the
    posterior is the one ``num_iter`` sweeps give, and with several agents under
    ``vmap`` the loop runs until the last of them settles. It is a
    ``lax.while_loop``, which forward-mode differentiation (``jax.jvp``,
    ``jax.jacfwd``) goes through but reverse mode (``jax.grad``) does not; hence
    off by default. Sweeps matter only with two or more factors.

    Attributes:
      num_iter: fixed-point iterations over the factors (10; one is exact for one factor).
      shared_prefixes: plan over the policy tree (True) or policy by policy.
      stop_at_fixed_point: stop the iterations once a sweep changes nothing (False).
    """

    num_iter: int = 10
    shared_prefixes: bool = True
    stop_at_fixed_point: bool = False

    #: Policies start afresh at every step, so none stays pruned by the Occam window.
    policies_persist = False

    def num_rows(self, trial_length: int, policy_length: int) -> int:
        """Rows of the belief window: ``L + 1``."""
        return policy_length + 1

    def now(self, t):
        """Row of the current time in the window: 0."""
        return 0

    def policy_actions(self, policies, t, trial_length: int):
        """Each policy's action now, ``[Np, F]``: its first move."""
        return policies[0]

    def posterior(self, prior, likelihood):
        """Fixed point of the mean-field free energy of one time step.

        Args:
          prior: per factor ``[Ns_f]``, the empirical prior.
          likelihood: ``[Ns_1, ..., Ns_F]``, :math:`L_t(s)`.

        Returns:
          ``(q, neg_free_energy)``: per factor ``[Ns_f]`` and the scalar :math:`-F_t`.
        """
        F = len(prior)
        log_prior = [log_stable(p) for p in prior]

        def sweep(q):
            q = list(q)
            for f in range(F):
                q[f] = softmax(log_prior[f] + log_stable(contract(likelihood, q, skip=f)))
            return tuple(q)

        if F > 1 and self.stop_at_fixed_point:

            def unsettled(carry):
                i, _, changed = carry
                return (i < self.num_iter) & changed

            def step(carry):
                i, q, _ = carry
                new = sweep(q)
                changed = jnp.any(jnp.stack([jnp.any(a != b) for a, b in zip(new, q, strict=True)]))
                return i + 1, new, changed

            _, q, _ = jax.lax.while_loop(unsettled, step, (0, tuple(prior), jnp.asarray(True)))
        else:
            q, _ = jax.lax.scan(
                lambda q, _: (sweep(q), None), tuple(prior), None, length=self.num_iter if F > 1 else 1
            )
        accuracy = jnp.sum(outer(list(q)) * log_stable(likelihood))
        complexity = sum(qf @ (log_stable(qf) - lp) for qf, lp in zip(q, log_prior, strict=True))
        return q, accuracy - complexity

    def filter(self, arrays, likelihood, t, actions, history):
        """The posterior over the state now and its negative free energy.

        Args:
          arrays: the agent's :class:`~actinf.agent.AgentArrays`.
          likelihood: ``[Ns_1, ..., Ns_F]``, the joint likelihood of the outcome now.
          t: the current time in the trial (may be traced).
          actions: int ``[F, max(T-1, 1)]``, the actions taken (``t - 1`` is read).
          history: per factor ``[T, Ns_f]``, the posteriors at earlier times.

        Returns:
          ``(q per factor [Ns_f], neg_free_energy scalar)``.
        """
        T = history[0].shape[0]
        tp = jnp.maximum(t - 1, 0)
        prior = []
        for f, start in enumerate(arrays.initial):
            if T > 1:
                u = actions[f, jnp.minimum(tp, T - 2)]
                if arrays.successors:
                    # q M_f for every action, then the row of u: under vmap with a shared
                    # model this is one matrix product and a gather of K rows, not a
                    # gather of K matrices B(u_k) (10 MB a step for 256 agents on 10x10)
                    M = arrays.successors[f]
                    moved = (history[f][tp] @ M.reshape(M.shape[0], -1)).reshape(M.shape[1:])[u]
                else:
                    moved = arrays.transition[f][:, :, u] @ history[f][tp]
                prior.append(jnp.where(t == 0, start, moved))
            else:
                prior.append(start)
        return self.posterior(prior, likelihood)

    def infer(self, beliefs, arrays, likelihoods, t, actions, mask, history):
        """Filter the outcome at time ``t`` and predict ahead under each policy.

        Args:
          beliefs: per factor ``[Np, L + 1, Ns_f]``, the window.
          arrays: the agent's :class:`~actinf.agent.AgentArrays`.
          likelihoods: ``[T, Ns_1, ..., Ns_F]``, the joint likelihood of each time's outcome.
          t: the current time in the trial (may be traced).
          actions: int ``[F, max(T-1, 1)]``, the actions taken (``t - 1`` is read).
          mask: unused (every policy shares the posterior).
          history: per factor ``[T, Ns_f]``, the posteriors at earlier times.

        Returns:
          ``(beliefs, neg_free_energy [Np])``.
        """
        del mask
        q, neg_free = self.filter(arrays, likelihoods[t], t, actions, history)
        S = beliefs[0].shape[1]

        def predict(forward, qf):
            # forward [L, Ns, Ns] of one policy: rows q, B(v_0) q, B(v_1) B(v_0) q, ...
            def row(prev, b):
                nxt = b @ prev
                return nxt, nxt

            _, ahead = jax.lax.scan(row, qf, forward[: S - 1])
            return jnp.concatenate([qf[None], ahead])

        new = tuple(
            jax.vmap(predict, in_axes=(0, None))(fw, qf) for fw, qf in zip(arrays.forward, q, strict=True)
        )
        Np = beliefs[0].shape[0]
        return new, jnp.broadcast_to(neg_free, (Np,))

    def expected_free_energy(self, outcomes, beliefs, t, trial_length: int, terms):
        """One policy's expected free energy over the next ``L`` times, within the trial.

        Row ``r`` of the window is time ``t + r``; rows ``1..`` up to the last time
        of the trial (``T - 1``) are counted, with the preferences of their time.
        The initial-state novelty (SPM's term for learning ``d``) is not counted:
        it would be the same for every policy.
        """
        S = beliefs[0].shape[0]
        num_columns = outcomes.log_preference[0].shape[1]
        columns = jnp.minimum(t + jnp.arange(S), num_columns - 1)
        # row 0 is the present, not the initial state: the information gain about
        # the initial-state counts d is the same for every policy here, so it is left out
        outcomes = outcomes._replace(initial_novelty_weights=None)
        return expected_free_energy(outcomes, beliefs, 1, terms, columns=columns, last=trial_length - 1 - t)

    def learning_inputs(self, model, beliefs, policy_posterior, history, actions):
        """What :func:`~actinf.learning.learn_counts` learns from: the posteriors over
        the trial's states smoothed backward from its end, as one "policy", the
        one the agent followed.

        The filter's posterior at time ``t`` has seen only the outcomes up to ``t``;
        learning (of ``d`` in particular) needs what the whole trial says about
        each time. Per factor, with the actions taken (Rauch-Tung-Striebel for a
        discrete chain):

        .. math::

           \\tilde q_{T-1} = q_{T-1}, \\qquad
           \\tilde q_t \\propto q_t \\odot B(u_t)^\\top \\big(\\tilde q_{t+1} \\oslash B(u_t)\\,q_t\\big)

        Returns:
          ``(X per factor [Ns_f, T], x per factor [1, T, Ns_f], u [1, T], policies [T-1, 1, F])``.
        """
        del beliefs, policy_posterior
        T = history[0].shape[0]
        dtype = history[0].dtype
        smoothed = []
        sums = _xla.sums_of_products()  # the form of the B(u) products below
        for f, h in enumerate(history):
            if T == 1:
                smoothed.append(h)
                continue
            B = model.transition_counts[f] if model.transition_counts is not None else model.transition[f]
            B = normalise(B)

            def back(later, xs, B=B):
                q, u = xs
                # each agent's own matrix B(u); with XLA's YNNPACK reduce fusions off
                # (fits) as sums of products, which XLA:CPU fuses with the ratio around
                # them (two dots were a quarter of a fit's gradient)
                move = B[:, :, u]
                predicted = jnp.sum(move * q[None, :], axis=1) if sums else move @ q
                possible = predicted > 0  # double where: finite gradients where 0 / 0
                ratio = jnp.where(possible, later / jnp.where(possible, predicted, 1.0), 0.0)
                now = q * (jnp.sum(move * ratio[:, None], axis=0) if sums else move.T @ ratio)
                total = jnp.sum(now)
                now = jnp.where(total > 0, now / jnp.where(total > 0, total, 1.0), q)
                return now, now

            _, earlier = jax.lax.scan(back, h[T - 1], (h[: T - 1], actions[f, : T - 1]), reverse=True)
            smoothed.append(jnp.concatenate([earlier, h[T - 1 :]]))
        X = tuple(h.T for h in smoothed)
        x = tuple(h[None] for h in smoothed)
        u = jnp.ones((1, T), dtype)
        return X, x, u, actions.T[: max(T - 1, 0), None, :]
