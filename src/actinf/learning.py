"""Learning Dirichlet counts at the end of a trial, and their free energies.

Updates (``spm_MDP_VB_X.m``; Friston et al. 2016, *Active inference and
learning*, Neurosci. Biobehav. Rev. 68, eq. 12), with learning rate
:math:`\\eta` and only where the prior count is positive:

* likelihood:
  :math:`a_g \\mathrel{+}= \\eta \\sum_t o_{g,t} \\otimes X_{1,t} \\otimes \\dots \\otimes X_{F,t}`,
  with :math:`X` the Bayesian model average of the state beliefs;
* transitions: :math:`b_f(u) \\mathrel{+}= \\eta \\sum_{t\\ge1}\\sum_\\pi q_t(\\pi)\\,
  \\mathbf{s}^\\pi_{f,t} \\otimes \\mathbf{s}^\\pi_{f,t-1}` for the action :math:`u` of
  policy :math:`\\pi` at move :math:`t-1`, weighted by the policy posterior at :math:`t`;
* preferences: :math:`c_g[:, t] \\mathrel{+}= \\eta\\, o_{g,t}`;
* initial states: :math:`d_f \\mathrel{+}= X_{f,0}` (SPM applies no learning rate here);
* habits: :math:`e \\mathrel{+}= \\eta\\, q_T(\\pi)`.

The negative free energy of the learned parameters is
:math:`-KL[\\mathrm{Dir}(a') \\| \\mathrm{Dir}(a)]` (SPM's ``Fa``, ``Fb``, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .maths import dirichlet_kl, outer


def likelihood_update(counts, outcomes, states, eta):
    """Add :math:`\\eta\\sum_t o_t\\otimes X_t` to ``counts`` where positive.

    Args:
      counts: ``[No, Ns_1..Ns_F]``.
      outcomes: ``[T, No]`` outcome probabilities (one-hot for observed outcomes).
      states: per factor ``[T, Ns_f]``, Bayesian-model-averaged beliefs.
    """
    delta = jnp.zeros_like(counts)
    for t in range(outcomes.shape[0]):
        delta = delta + outer([outcomes[t]] + [s[t] for s in states])
    return counts + eta * delta * (counts > 0)


def transition_update(counts, beliefs, policy_posterior, actions, eta):
    """Add the expected transitions of every policy to ``counts`` ``[Ns, Ns, Nu]`` where positive.

    Args:
      beliefs: ``[Np, T, Ns]`` state beliefs under each policy.
      policy_posterior: ``[Np, T]``.
      actions: ``[T-1, Np]`` this factor's action of each policy at each move.
    """
    Nu = counts.shape[2]
    delta = jnp.zeros_like(counts)
    for t in range(1, beliefs.shape[1]):
        onehot = jax.nn.one_hot(actions[t - 1], Nu, dtype=counts.dtype)  # [Np, Nu]
        delta = delta + jnp.einsum(
            "k,ki,kj,ku->iju", policy_posterior[:, t], beliefs[:, t], beliefs[:, t - 1], onehot
        )
    return counts + eta * delta * (counts > 0)


def preference_update(counts, outcomes, eta):
    """Add :math:`\\eta\\, o_t` to column ``t`` of ``counts`` ``[No, T]`` where positive."""
    return counts + eta * outcomes.T * (counts > 0)


def initial_update(counts, initial_states):
    """Add the posterior over initial states to ``counts`` where positive (no learning rate, as SPM)."""
    return counts + initial_states * (counts > 0)


def habit_update(counts, final_policy_posterior, eta):
    """Add :math:`\\eta\\, q_T(\\pi)` to the habit counts."""
    return counts + eta * final_policy_posterior


def parameter_free_energy(posterior_counts, prior_counts):
    """Negative free energy of learned counts: :math:`-KL[\\mathrm{Dir}(q)\\|\\mathrm{Dir}(p)]`."""
    return -dirichlet_kl(posterior_counts, prior_counts)
