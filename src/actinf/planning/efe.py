"""Expected free energy as a sum of terms.

Sign convention: ``efe`` is the expected free energy :math:`G`, **lower is
better**. SPM records the negative, ``MDP.G`` = :math:`-G`.

For predicted states :math:`q(s)=\\prod_f q(s_f)` at a future time and the
joint predicted outcome over modalities :math:`q(o)=\\sum_s P(o\\mid s)q(s)`,
:math:`P(o\\mid s)=\\prod_g A_g[o_g, s]` (Friston et al. 2017, Neural
Computation 29, eq. 7; Da Costa et al. 2020, J. Math. Psych. 99, eq. 8):

* **risk** :math:`=\\sum_o q(o)\\ln q(o) - \\sum_g q(o_g)\\cdot C_g`: the KL
  divergence between predicted outcomes and the (log-softmax normalised)
  preferences :math:`C_g` (pragmatic value is its negative, up to the entropy);
* **ambiguity** :math:`=-\\sum_s q(s) \\sum_o P(o\\mid s)\\ln P(o\\mid s)`:
  the expected entropy of outcomes given states. Epistemic value (the mutual
  information between states and outcomes) is :math:`H[q(o)]` minus
  ambiguity;
* **novelty** :math:`=\\sum_g W_g \\cdot (q(o_g)\\otimes q(s))` with SPM's
  :func:`~actinf.maths.novelty_weights` :math:`W` of the likelihood counts
  (information gain about ``A``; it is subtracted: novelty is good);
* **initial novelty** :math:`=\\sum_f W(d_f)\\cdot q(s_{f,0})`, information
  gain about the initial-state counts ``d``, counted at every time step as SPM
  does.

As in ``spm_MDP_G.m``, logarithms of outcome probabilities use
:func:`~actinf.maths.entropy_log` and states whose joint probability is below
:math:`e^{-16}` are left out of the expectations.

:math:`G_\\pi = \\sum_\\tau (\\text{risk} + \\text{ambiguity} - \\text{novelty})
- \\text{initial novelty}` over the remaining times :math:`\\tau = t..S-1`.
Each term is an object with the same call signature, so a planner is a tuple
of terms; dropping a term from the tuple switches it off.

The same total splits the other way, into **pragmatic value**
:math:`\\sum_g q(o_g)\\cdot C_g` and **epistemic value** :math:`H[q(o)] -`
ambiguity: risk + ambiguity = -(pragmatic + epistemic). :data:`VALUE_TERMS`
(:class:`PragmaticValue`, :class:`EpistemicValue`, :class:`Novelty`) gives
the same expected free energy as :data:`SPM_TERMS`, reported that way.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _xla
from ..maths import ENTROPY_EPS, contract, entropy_log, outer


class OutcomeModel(NamedTuple):
    """Precomputed arrays for expected free energy (built once per trial).

    Attributes:
      likelihood: per modality, ``A_g`` ``[No_g, Ns_1..Ns_F]`` (normalised).
      joint: ``[prod No, prod Ns]``, the joint outcome distribution given states
        (only the rows of the ``support`` :func:`outcome_model` was given).
      neg_entropy: ``[prod Ns]``, :math:`\\sum_o P(o\\mid s) \\ln P(o\\mid s)`.
      log_preference: per modality, ``[No_g, T]`` normalised log preferences.
      novelty_weights: per modality ``W(a_g)`` (masked where ``a_g = 0``) or None.
      initial_novelty_weights: per factor ``W(d_f)`` or None.
      utility: ``[prod Ns, T]``, the expected log preference of each joint state,
        :math:`U(s, \\tau) = \\sum_g \\sum_o A_g[o, s]\\, C_g[o, \\tau]`: by linearity
        :math:`\\sum_g q(o_g)\\cdot C_g[:, \\tau] = \\sum_s q(s)\\, U(s, \\tau)`.
    """

    likelihood: tuple
    joint: jnp.ndarray
    neg_entropy: jnp.ndarray
    log_preference: tuple
    novelty_weights: tuple | None
    initial_novelty_weights: tuple | None
    utility: jnp.ndarray


def joint_likelihood(likelihood) -> jnp.ndarray:
    """``P(o_1..o_G | s)`` as a ``[prod No, prod Ns]`` matrix (outer product over modalities)."""
    cols = [a.reshape(a.shape[0], -1) for a in likelihood]
    joint = cols[0]
    for c in cols[1:]:
        joint = (joint[:, None, :] * c[None, :, :]).reshape(-1, c.shape[1])
    return joint


def outcome_support(likelihood) -> tuple[int, ...] | None:
    """The joint outcomes some state can produce: the rows of :func:`joint_likelihood`
    with a nonzero entry, from concrete (not traced) arrays ``A_g`` ``[No_g, Ns...]``.

    A joint outcome :math:`o` that no state produces has :math:`q(o) = 0` under
    every belief and adds :math:`0 \\cdot \\ln(0 + e^{-16}) = 0` to the outcome
    entropy of :class:`Risk` and :class:`EpistemicValue`: predicting only the
    others gives the same expected free energy with fewer operations. Where
    modalities are deterministic given the states (a "where" or "behaviour"
    modality) most of the product space is such outcomes: 7 of 36 in the
    explore/exploit task.

    Returns:
      the row indices, or None when every row can occur (nothing to leave out).
    """
    arrays = [np.asarray(a, dtype=float) for a in likelihood]
    if any(np.any(a.sum(axis=0) == 0) for a in arrays):
        return None  # normalise makes an empty column uniform: every outcome of it can occur
    # positive entries stay positive under normalisation: the NumPy product of the raw arrays
    possible = joint_likelihood(arrays) > 0
    rows = np.flatnonzero(possible.any(axis=1))
    return None if rows.size == possible.shape[0] else tuple(int(r) for r in rows)


def outcome_model(
    likelihood, log_preference, novelty_weights=None, initial_novelty_weights=None, support=None
):
    """Precompute the arrays the EFE terms need (see :class:`OutcomeModel`).

    ``support``: the rows of the joint outcome matrix to keep (:func:`outcome_support`
    of the same likelihood; default all). Should a left-out row carry probability
    (the likelihood changed after the support was computed), ``joint`` is NaN, so
    that the expected free energy says so instead of being silently wrong.
    """
    joint = joint_likelihood(likelihood)
    neg_entropy = jnp.sum(joint * entropy_log(joint), axis=0)
    if support is not None:
        keep = np.asarray(support, dtype=int)
        lost = jnp.any(joint[np.setdiff1d(np.arange(joint.shape[0]), keep)] > 0)
        joint = jnp.where(lost, jnp.nan, joint[keep])
    utility = sum(a.reshape(a.shape[0], -1).T @ c for a, c in zip(likelihood, log_preference, strict=True))
    return OutcomeModel(
        tuple(likelihood),
        joint,
        neg_entropy,
        tuple(log_preference),
        None if novelty_weights is None else tuple(novelty_weights),
        None if initial_novelty_weights is None else tuple(initial_novelty_weights),
        utility,
    )


def _expected_utility(om: OutcomeModel, states, tau, fused: bool = False):
    """:math:`\\sum_g q(o_g)\\cdot C_g[:, \\tau]` as :math:`\\sum_s q(s)\\, U(s, \\tau)`: one
    product with the joint over states instead of a prediction of every modality.

    ``fused``: as a sum of products rather than ``@``, which XLA:CPU fuses with
    the operations around it (see :data:`FUSED_PREDICTION_SIZE`)."""
    qs = outer(states).reshape(-1)
    return jnp.sum(qs * om.utility[:, tau]) if fused else qs @ om.utility[:, tau]


def _joint_states(states):
    """The joint over factors, ``[prod Ns]``, without states below :math:`e^{-16}` (SPM)."""
    qs = outer(states).reshape(-1)
    return jnp.where(qs > ENTROPY_EPS, qs, 0.0)


#: Joint outcome matrices up to this many entries predict by a sum of products, larger
#: ones by a matrix product, when :func:`actinf._xla.sums_of_products` says so. A dot is a
#: kernel call of its own, where XLA:CPU fuses a sum of products with the entropy that
#: reads it: with XLA's YNNPACK fusions off (as actinf.fit runs), a value and gradient of
#: 200 explore/exploit participants took 35 ms this way against 51 ms with both
#: products as dots (2026-12-03). With them on (JAX's default, as ``actinf bench`` and
#: ``actinf run`` run) YNNPACK takes the sum's reduction and runs it slowly: 256 agents
#: in the three-arm maze with SPM's terms ran 1.1 times faster with dots here (and 1.5
#: times with the policy tree's products as dots too).
FUSED_PREDICTION_SIZE = 1024


def _fused(om: OutcomeModel) -> bool:
    """Whether the joint outcome terms use sums of products (:data:`FUSED_PREDICTION_SIZE`)."""
    return om.joint.size <= FUSED_PREDICTION_SIZE and _xla.sums_of_products()


def _predicted(om: OutcomeModel, states):
    qs = _joint_states(states)
    if _fused(om):
        return qs, jnp.sum(qs[None, :] * om.joint, axis=-1)
    return qs, qs @ om.joint.T  # states first: a plain matrix product under vmap


def _outcome_neg_entropy(om: OutcomeModel, states, joint: bool):
    """:math:`-H[q(o)]`: of the joint over modalities (SPM) or summed over modalities (pymdp)."""
    if joint:
        _, qo = _predicted(om, states)
        return jnp.sum(qo * entropy_log(qo))  # elementwise: batches of agents and nodes fuse
    value = 0.0
    for a in om.likelihood:
        # the prediction written twice on purpose: XLA:CPU then fuses each use into
        # its own product instead of writing the [batch, No] result out and reading it
        # back (1.5 to 2.5 times faster for a population planning over a tree)
        value = value + jnp.sum(contract(a, states) * entropy_log(contract(a, states)))
    return value


class Risk(NamedTuple):
    """:math:`\\sum_o q(o)\\ln q(o) - \\sum_g q(o_g)\\cdot C_g[:, \\tau]`.

    ``joint=True`` (SPM): :math:`q(o)` is the joint prediction over modalities.
    ``joint=False`` (pymdp): the entropy is summed over each modality's own
    prediction, :math:`\\sum_g q(o_g)\\ln q(o_g)`; it differs from the joint
    one only when several modalities inform on the same states.
    """

    joint: bool = True

    def __call__(self, om: OutcomeModel, states, tau):
        fused = self.joint and _fused(om)
        return _outcome_neg_entropy(om, states, self.joint) - _expected_utility(om, states, tau, fused)


class Ambiguity(NamedTuple):
    """:math:`-\\sum_s q(s) \\sum_o P(o\\mid s)\\ln P(o\\mid s)`."""

    def __call__(self, om: OutcomeModel, states, tau):
        return -(_joint_states(states) @ om.neg_entropy)


class Novelty(NamedTuple):
    """Information gain about the likelihood counts, entering the EFE with a minus sign.

    Novelty is :math:`-\\sum_g W_g\\cdot(q(o_g)\\otimes q(s)) \\ge 0`; this term
    returns its contribution to the EFE, :math:`\\sum_g W_g\\cdot(q(o_g)\\otimes q(s))`.
    Zero when the model has no likelihood counts.
    """

    def __call__(self, om: OutcomeModel, states, tau):
        if om.novelty_weights is None:
            return jnp.zeros(())
        value = 0.0
        for a, w in zip(om.likelihood, om.novelty_weights, strict=True):
            qo = contract(a, states)
            value = value + contract(w, [qo, *states])
        return value


class PragmaticValue(NamedTuple):
    """Minus the pragmatic value, :math:`-\\sum_g q(o_g)\\cdot C_g[:, \\tau]` (expected log preference).

    With :class:`EpistemicValue` it splits the same total as :class:`Risk` and
    :class:`Ambiguity`: risk + ambiguity = -(pragmatic + epistemic value).
    """

    def __call__(self, om: OutcomeModel, states, tau):
        return -_expected_utility(om, states, tau)


class EpistemicValue(NamedTuple):
    """Minus the epistemic value, :math:`-(H[q(o)] - \\text{ambiguity})`: minus the expected
    information gain about the states (the mutual information of states and outcomes).

    ``joint=False`` sums each modality's information gain,
    :math:`\\sum_g H[q(o_g)] - \\text{ambiguity}`, as pymdp does (see :class:`Risk`).
    """

    joint: bool = True

    def __call__(self, om: OutcomeModel, states, tau):
        return _outcome_neg_entropy(om, states, self.joint) - _joint_states(states) @ om.neg_entropy


#: SPM's expected free energy: risk + ambiguity - novelty.
SPM_TERMS = (Risk(), Ambiguity(), Novelty())
#: The same total split as -(pragmatic value) - (epistemic value) - novelty.
VALUE_TERMS = (PragmaticValue(), EpistemicValue(), Novelty())
#: pymdp's expected free energy (``use_utility``, ``use_states_info_gain``): minus the
#: expected log preference and minus the information gain summed over modalities.
PYMDP_TERMS = (PragmaticValue(), EpistemicValue(joint=False))


def initial_novelty(om: OutcomeModel, initial_beliefs):
    """:math:`-\\sum_f W(d_f)\\cdot q(s_{f,0}\\mid\\pi) \\ge 0`, information gain about ``d``.

    SPM subtracts it from the expected free energy once per time step.
    """
    if om.initial_novelty_weights is None:
        return jnp.zeros(())
    return -sum(w @ x for w, x in zip(om.initial_novelty_weights, initial_beliefs, strict=True))


def expected_free_energy(om: OutcomeModel, beliefs, t: int, terms=SPM_TERMS, *, columns=None, last=None):
    """Expected free energy of one policy from time ``t`` to the horizon, split into terms.

    Args:
      om: the :class:`OutcomeModel`.
      beliefs: per factor ``[S, Ns_f]``, the policy's beliefs over every time.
      t: first row counted (may be traced: earlier rows are masked out).
      terms: the EFE terms to sum.
      columns: int ``[S]``, the column of the preferences ``C`` for each row
        (default the row itself: rows are the trial's times).
      last: last row counted (default all; may be traced).

    Returns:
      ``(efe, parts)``: the total (lower is better) and a tuple with each term's
      sum over times, the last entry being minus the initial-state novelty.
    """
    S = beliefs[0].shape[0]
    rows = jnp.arange(S)
    columns = rows if columns is None else columns

    def at(tau, states):
        return jnp.stack([term(om, list(states), tau) for term in terms])

    per_time = jax.vmap(at)(columns, tuple(beliefs))  # [S, n_terms]
    counted = rows >= t
    if last is not None:
        counted = counted & (rows <= last)
    summed = jnp.sum(jnp.where(counted[:, None], per_time, 0.0), axis=0)
    parts = [summed[i] for i in range(len(terms))]
    init = -initial_novelty(om, [b[0] for b in beliefs])
    parts.append(init)
    return sum(parts), tuple(parts)
