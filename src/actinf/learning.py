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

import equinox as eqx
import jax
import jax.numpy as jnp

from .maths import dirichlet_kl, outer
from .model import GenerativeModel

_COUNTS = ("likelihood_counts", "transition_counts", "preference_counts", "initial_counts", "habit_counts")


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


def initial_update(counts, initial_states, eta=None):
    """Add the posterior over initial states to ``counts`` where positive.

    SPM applies no learning rate here (``eta=None``); with ``eta`` the update is
    :math:`d \\mathrel{+}= \\eta X_0` (as in Smith et al. 2022's tutorial scripts).
    """
    update = initial_states if eta is None else eta * initial_states
    return counts + update * (counts > 0)


def habit_update(counts, final_policy_posterior, eta):
    """Add :math:`\\eta\\, q_T(\\pi)` to the habit counts."""
    return counts + eta * final_policy_posterior


def parameter_free_energy(posterior_counts, prior_counts):
    """Negative free energy of learned counts: :math:`-KL[\\mathrm{Dir}(q)\\|\\mathrm{Dir}(p)]`."""
    return -dirichlet_kl(posterior_counts, prior_counts)


def _with_counts(model: GenerativeModel, counts: tuple) -> GenerativeModel:
    """``model`` with its five count fields (a, b, c, d, e) replaced."""
    return eqx.tree_at(
        lambda m: tuple(getattr(m, name) for name in _COUNTS), model, counts, is_leaf=lambda z: z is None
    )


def learn_counts(model: GenerativeModel, outcomes, X, x, u, eta, initial_eta=None):
    """Learn every Dirichlet count of ``model`` from one trial (the updates above).

    Args:
      outcomes: per modality ``[T, No_g]`` outcome probabilities (one-hot if observed).
      X: per factor ``[Ns_f, T]`` Bayesian-model-averaged state beliefs.
      x: per factor ``[Np, T, Ns_f]`` state beliefs under each policy.
      u: ``[Np, T]`` policy posterior at each time.
      eta: learning rate.
      initial_eta: learning rate of the initial-state counts ``d`` (None: SPM's,
        no rate).

    Returns:
      ``(model, (Fa, Fb, Fc, Fd, Fe))``: the model with the learned counts and the
      negative free energies of the learned parameters (None where not learned).
    """
    V = model.policies
    eta = jnp.asarray(eta, X[0].dtype)
    T = X[0].shape[1]
    Xt = [xf.T for xf in X]  # [T, Ns]

    def free_energies(post, prior):
        pairs = zip(post, prior, strict=True)
        return jnp.stack([parameter_free_energy(q, p) for q, p in pairs])

    new = dict(a=None, b=None, c=None, d=None, e=None)
    fe = dict(a=None, b=None, c=None, d=None, e=None)
    if model.likelihood_counts is not None:
        prior = model.likelihood_counts
        new["a"] = tuple(likelihood_update(a, outcomes[g], Xt, eta) for g, a in enumerate(prior))
        fe["a"] = free_energies(new["a"], prior)
    if model.transition_counts is not None:
        prior = model.transition_counts
        new["b"] = tuple(transition_update(b, x[f], u, V[:, :, f], eta) for f, b in enumerate(prior))
        fe["b"] = free_energies(new["b"], prior)
    if model.preference_counts is not None:
        prior = model.preference_counts
        new["c"] = tuple(preference_update(c, outcomes[g], eta) for g, c in enumerate(prior))
        fe["c"] = free_energies(new["c"], prior)
    if model.initial_counts is not None:
        prior = model.initial_counts
        new["d"] = tuple(initial_update(d, X[f][:, 0], initial_eta) for f, d in enumerate(prior))
        fe["d"] = free_energies(new["d"], prior)
    if model.habit_counts is not None:
        new["e"] = habit_update(model.habit_counts, u[:, T - 1], eta)
        fe["e"] = parameter_free_energy(new["e"], model.habit_counts)
    learned = _with_counts(model, tuple(new[k] for k in "abcde"))
    return learned, tuple(fe[k] for k in "abcde")


def forget(learned: GenerativeModel, previous: GenerativeModel, prior: GenerativeModel, forgetting):
    """Let the counts gathered before this trial decay toward the first prior.

    :math:`a' = a_{\\text{learned}} - \\phi\\,(a_{\\text{previous}} - a_0)`, i.e.
    :math:`a' = a_0 + (1-\\phi)(a_{\\text{previous}} - a_0) + \\eta\\Delta a`.

    Args:
      learned: the model after :func:`learn_counts` on this trial.
      previous: the model before this trial.
      prior: the model the agent started with (its counts are :math:`a_0`).
      forgetting: :math:`\\phi` in [0, 1].
    """

    def decay(new, old, first):
        if new is None:
            return None
        if isinstance(new, tuple):
            return tuple(n - forgetting * (o - f) for n, o, f in zip(new, old, first, strict=True))
        return new - forgetting * (old - first)

    return _with_counts(
        learned,
        tuple(decay(getattr(learned, n), getattr(previous, n), getattr(prior, n)) for n in _COUNTS),
    )
