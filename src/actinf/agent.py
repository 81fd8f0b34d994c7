"""The online agent: ``init(rng_key) -> state`` and ``step(rng_key, state, observation) -> (state, info)``.

An :class:`Agent` holds a generative model and a few interchangeable parts:

* ``inference``: :class:`~actinf.inference.mmp.MarginalMessagePassing` (SPM's
  scheme: every past and future time under every policy) or
  :class:`~actinf.inference.fixed_point.FixedPoint` (a per-step filter for
  large models);
* ``precision``: :class:`~actinf.planning.policy.GammaPrecision` (SPM's
  Gamma-prior update) or :class:`~actinf.planning.policy.FixedPrecision`;
* ``terms``: the expected free energy terms (risk, ambiguity, novelty; drop one
  to switch it off);
* ``action``: :class:`Sampled` with action precision ``alpha`` or :class:`Deterministic`;
* ``learning``: :class:`Learning` (rate and forgetting) or None.

A trial has the model's ``T`` time steps. At each step :math:`t` the agent

1. adds the likelihood of the new outcome, :math:`L_t(s) = \\prod_g A_g[o_{g,t}, s]`;
2. prunes policies outside the Occam window of its last policy posterior (``zeta`` nats;
   SPM's scheme only: with receding-horizon planning every policy is a fresh plan);
3. infers states under each remaining policy (negative free energies :math:`-F_\\pi`);
4. scores every policy by its expected free energy :math:`G_\\pi` from :math:`t` to
   the end of the trial, split into terms (:mod:`actinf.planning.efe`);
5. forms the policy posterior :math:`q(\\pi) = \\sigma(\\ln E - \\gamma G - F)` and
   precision :math:`\\gamma` (:mod:`actinf.planning.policy`);
6. computes action probabilities :math:`P(u) = \\sigma(\\alpha \\ln \\sum_{\\pi:\\pi_t=u} q(\\pi))`
   and chooses the action (not at the last time step, where the trial ends).

:meth:`Agent.next_trial` learns the Dirichlet counts of the model from the
trial (:func:`~actinf.learning.learn_counts`) and starts the next trial.

With :class:`~actinf.inference.mmp.MarginalMessagePassing`, :class:`Sampled`
and :class:`Learning` (SPM's defaults) this is exactly SPM's ``spm_MDP_VB_X``:
:func:`actinf.spm.spm_trial` is a loop over this agent's :meth:`Agent.observe`
(``tests/test_agent.py`` checks every reference maze trial step by step).

Write for one agent: a population is ``jax.vmap`` over rng keys, an episode is
:func:`actinf.rollout.rollout`. Compile with ``equinox.filter_jit`` (the
agent's integer settings are static).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from . import learning
from .inference.fixed_point import FixedPoint
from .inference.mmp import MarginalMessagePassing
from .maths import dirichlet_expected_log, inverse_cdf, log_stable, normalise, novelty_weights, put, softmax
from .model import GenerativeModel
from .planning.efe import SPM_TERMS, OutcomeModel, outcome_model, outcome_support
from .planning.policy import (
    FixedPrecision,
    GammaPrecision,
    action_probabilities,
    log_action_probabilities,
    occam_window,
    policy_entropy_term,
)
from .planning.tree import PolicyTree, successors, tree_expected_free_energy

__all__ = [
    "Agent",
    "AgentArrays",
    "AgentState",
    "Deterministic",
    "Learning",
    "Sampled",
    "StepInfo",
    "agent_arrays",
]


class Sampled(NamedTuple):
    """Sample the action from :math:`P(u) = \\sigma(\\alpha \\ln q(u))` (SPM's default, ``alpha`` = 512).

    ``q(u)`` is the policy posterior marginalised over the policies that take
    ``u`` now. Sampling is SPM's: the first ``u`` whose cumulative probability
    exceeds a uniform draw.
    """

    alpha: float = 512.0

    def probabilities(self, posterior, actions, num_controls):
        """``[Nu_1, ..., Nu_F]`` action probabilities
        (:func:`~actinf.planning.policy.action_probabilities`)."""
        return action_probabilities(posterior, actions, num_controls, self.alpha)

    def log_probabilities(self, posterior, actions, num_controls):
        """``ln P(u)``, ``[Nu_1, ..., Nu_F]`` (stable for large ``alpha``; for model fitting)."""
        return log_action_probabilities(posterior, actions, num_controls, self.alpha)


class Deterministic(NamedTuple):
    """Take the most probable action, :math:`\\arg\\max_u q(u)` (the first one on ties).

    The reported action probabilities are one-hot at that action.
    """

    def probabilities(self, posterior, actions, num_controls):
        """One-hot ``[Nu_1, ..., Nu_F]`` at the action with the largest marginal posterior."""
        marginal = action_probabilities(posterior, actions, num_controls, 1.0)
        flat = marginal.reshape(-1)
        return jax.nn.one_hot(jnp.argmax(flat), flat.shape[0], dtype=flat.dtype).reshape(marginal.shape)

    def log_probabilities(self, posterior, actions, num_controls):
        """``ln P(u)``: 0 for the chosen action, ``-inf`` for the others."""
        return jnp.log(self.probabilities(posterior, actions, num_controls))


class Learning(NamedTuple):
    """Learning of the model's Dirichlet counts at the end of each trial.

    Every count array the model holds is learned (``a``, ``b``, ``c``, ``d``,
    ``e``; see :mod:`actinf.learning`), with learning rate ``rate`` (SPM's
    ``eta``). With forgetting :math:`\\phi`, the counts gathered so far decay
    toward the first trial's prior :math:`a_0` before the new evidence is added:

    .. math::

       a \\leftarrow a_0 + (1 - \\phi)(a - a_0) + \\eta\\,\\Delta a

    ``forgetting = 0`` (default) is SPM's rule; ``forgetting = 1`` keeps only
    the last trial's evidence. Forgetting lets an agent track a world that
    changes, such as reversal learning.

    SPM learns the initial-state counts ``d`` without a rate
    (``initial_rate=None``); ``initial_rate`` scales that update too,
    :math:`d \\mathrel{+}= \\eta_d X_0`, as Smith et al. (2022)'s tutorial does.
    """

    rate: float = 1.0
    forgetting: float = 0.0
    initial_rate: float | None = None


class AgentArrays(NamedTuple):
    """The agent's beliefs about the parameters, derived from the model once per trial.

    Attributes:
      likelihood: per modality ``A_g`` ``[No_g, Ns...]`` (normalised counts where present).
      transition: per factor ``B_f`` ``[Ns_f, Ns_f, Nu_f]``.
      initial: per factor ``D_f`` ``[Ns_f]``.
      log_initial: per factor ``ln D_f``.
      log_habit: ``ln E`` ``[Np]``.
      forward, backward: per factor ``[Np, T-1, Ns_f, Ns_f]``: each policy's
        transition matrices and their normalised transposes.
      outcomes: the :class:`~actinf.planning.efe.OutcomeModel` for expected free energy.
      successors: per factor ``[Ns_f, Nu_f, Ns_f]``, ``B_f`` laid out for planning over
        the policy tree (:func:`~actinf.planning.tree.successors`); empty with per-policy arrays.
    """

    likelihood: tuple
    transition: tuple
    initial: tuple
    log_initial: tuple
    log_habit: jax.Array
    forward: tuple
    backward: tuple
    outcomes: OutcomeModel
    successors: tuple = ()


def agent_arrays(
    model: GenerativeModel, per_policy: bool = True, outcome_support: tuple[int, ...] | None = None
) -> AgentArrays:
    """Derive :class:`AgentArrays` from ``model`` as ``spm_MDP_VB_X`` does.

    Counts, where present, replace probabilities: :math:`A = a / \\sum a`,
    ``B`` and ``D`` likewise; learned preferences are
    :math:`C = \\psi(c + 1/32) - \\psi(\\sum c)`; preferences are normalised
    to log probabilities over outcomes at each time; novelty weights come from
    the counts ``a`` and ``d``. With ``per_policy=False`` the per-policy
    transition stacks ``forward`` and ``backward`` are left empty (planning over
    the policy tree does not need them). ``outcome_support``: the joint
    outcomes the expected free energy predicts (:func:`~actinf.planning.efe.outcome_support`;
    default all).
    """
    V = model.policies
    A = tuple(normalise(a) for a in (model.likelihood_counts or model.likelihood))
    Bsrc = model.transition_counts or model.transition
    sB = tuple(normalise(b) for b in Bsrc)
    rB = tuple(normalise(jnp.swapaxes(b, 0, 1)) for b in Bsrc)
    D = tuple(normalise(d) for d in (model.initial_counts or model.initial))
    E = normalise(model.habit_counts if model.habit_counts is not None else model.habit)
    if model.preference_counts is not None:
        C = tuple(dirichlet_expected_log(c + 1.0 / 32.0) for c in model.preference_counts)
    else:
        C = model.preference
    C = tuple(log_stable(softmax(c, axis=0)) for c in C)
    wA = None
    if model.likelihood_counts is not None:
        wA = tuple(novelty_weights(a) * (a > 0) for a in model.likelihood_counts)
    wD = None
    if model.initial_counts is not None:
        wD = tuple(novelty_weights(d) for d in model.initial_counts)

    def pick(mats, f):
        return jnp.moveaxis(mats[f][:, :, V[:, :, f]], (2, 3), (1, 0))

    fwd = tuple(pick(sB, f) for f in range(len(sB))) if per_policy else ()
    bwd = tuple(pick(rB, f) for f in range(len(rB))) if per_policy else ()
    return AgentArrays(
        A,
        sB,
        D,
        tuple(log_stable(d) for d in D),
        log_stable(E),
        fwd,
        bwd,
        outcome_model(A, C, wA, wD, support=outcome_support),
        () if per_policy else successors(sB),
    )


def _joint_likelihood(arrays: AgentArrays, outcome: jax.Array) -> jax.Array:
    """:math:`L(s) = \\prod_g A_g[o_g, s]` ``[Ns_1, ..., Ns_F]`` of the outcomes ``o`` (int ``[G]``)."""
    L = 1.0
    for g, a in enumerate(arrays.likelihood):
        L = L * a[outcome[g]]
    return L


class AgentState(NamedTuple):
    """What the agent carries from one step to the next.

    Attributes:
      model: the generative model with the counts learned so far.
      arrays: :class:`AgentArrays` derived from ``model`` at the start of the trial.
      time: int scalar, the next time step to observe (0 at the start of a trial).
      beliefs: per factor ``[Np, S, Ns_f]``, the state beliefs under each policy:
        over every time of the trial (``S = T``, marginal message passing) or
        over the window from now to ``L`` moves ahead (``S = L + 1``, fixed point).
      history: per factor ``[T, Ns_f]``, the posterior over the state at each time
        so far, when it was the present.
      likelihood: ``[T, Ns_1, ..., Ns_F]``, the joint likelihood of each outcome so far.
      mask: bool ``[Np]``, policies inside the Occam window.
      policy_posterior: ``[Np, T]``, the policy posterior at each time so far.
      rate: the policy-precision rate :math:`\\beta_q = 1/\\gamma`.
      outcomes: int ``[G, T]``, the outcomes observed (-1: not yet).
      actions: int ``[F, max(T-1, 1)]``, the actions taken (-1: not yet).
      prior_model: the model the agent started with (the reference for forgetting).
    """

    model: GenerativeModel
    arrays: AgentArrays
    time: jax.Array
    beliefs: tuple
    history: tuple
    likelihood: jax.Array
    mask: jax.Array
    policy_posterior: jax.Array
    rate: jax.Array
    outcomes: jax.Array
    actions: jax.Array
    prior_model: GenerativeModel


class StepInfo(NamedTuple):
    """What a researcher plots about one step (signs: lower is better for every free energy).

    Attributes:
      states: per factor ``[Ns_f]``, the posterior over the current state
        (averaged over policies, :math:`\\sum_\\pi q(\\pi)\\,q(s_t\\mid\\pi)`).
      policy_posterior: ``[Np]``, :math:`q(\\pi)` (zero outside the Occam window).
      efe: ``[Np]``, expected free energy :math:`G_\\pi` (0 for pruned policies;
        0 when there is one policy).
      efe_terms: ``[Np, n_terms + 1]``, each term's contribution to ``efe``
        (the agent's ``terms`` in order, then minus the initial-state novelty).
      free_energy: ``[Np]``, variational free energy :math:`F_\\pi` (0 for pruned policies).
      total_free_energy: scalar, :math:`\\sum_\\pi q(\\pi) F_\\pi + \\mathrm{KL}[q(\\pi)\\|p(\\pi)]`
        (minus SPM's ``H``).
      precision: scalar policy precision :math:`\\gamma`.
      action_probabilities: ``[Nu_1, ..., Nu_F]`` (meaningless at the last time step).
      action: int ``[F]``, the action chosen (-1 at the last time step).
    """

    states: tuple
    policy_posterior: jax.Array
    efe: jax.Array
    efe_terms: jax.Array
    free_energy: jax.Array
    total_free_energy: jax.Array
    precision: jax.Array
    action_probabilities: jax.Array
    action: jax.Array


class Agent(eqx.Module):
    """An active inference agent (see the module docstring).

    Args:
      model: the generative model (probabilities, and Dirichlet counts to learn).
      inference: :class:`~actinf.inference.mmp.MarginalMessagePassing` (SPM, default)
        or :class:`~actinf.inference.fixed_point.FixedPoint` (receding horizon).
      precision: :class:`~actinf.planning.policy.GammaPrecision` (default) or
        :class:`~actinf.planning.policy.FixedPrecision`.
      terms: expected free energy terms (default risk, ambiguity, novelty).
      action: :class:`Sampled` (default, ``alpha`` = 512) or :class:`Deterministic`.
      learning: :class:`Learning` (default) or None to keep the counts fixed.
      beta: rate of the Gamma prior over precision (:math:`\\gamma = 1/\\beta` when fixed; 1).
      zeta: Occam window in nats (3).
      trial_length: time steps per trial ``T``; default the model's ``V.shape[0] + 1``.
        Longer trials need :class:`~actinf.inference.fixed_point.FixedPoint`.
      outcome_support: the joint outcomes (over modalities) the expected free energy
        predicts; default: those some state can produce
        (:func:`~actinf.planning.efe.outcome_support`, computed here when the
        likelihood is concrete and not learned; exact). An agent whose likelihood
        is replaced afterwards (``eqx.tree_at``) by one with more possible outcomes
        gets a NaN expected free energy: build it anew instead.

    Example::

        from actinf.worlds import TmazeWorld
        world = TmazeWorld()
        agent = Agent(world.model)
        key = jax.random.key(0)
        world_state, obs = world.reset(key)
        state = agent.init(key)
        state, info = agent.step(key, state, obs)      # info.action: go to the cue
    """

    model: GenerativeModel
    inference: MarginalMessagePassing | FixedPoint = MarginalMessagePassing()
    precision: GammaPrecision | FixedPrecision = GammaPrecision()
    terms: tuple = SPM_TERMS
    action: Sampled | Deterministic = Sampled()
    learning: Learning | None = Learning()
    beta: float | jax.Array = 1.0
    zeta: float | jax.Array = 3.0
    trial_length: int | None = eqx.field(default=None, static=True)
    tree: PolicyTree | None = eqx.field(default=None, static=True)
    outcome_support: tuple[int, ...] | None = eqx.field(default=None, static=True)

    def __post_init__(self):
        # receding-horizon planning scores all policies over their prefix tree;
        # it needs the policies themselves (not traced values) to shape the program
        if (
            self.tree is None
            and isinstance(self.inference, FixedPoint)
            and self.inference.shared_prefixes
            and not isinstance(self.model.policies, jax.core.Tracer)
        ):
            self.tree = PolicyTree.from_policies(self.model.policies, self.model.num_controls)
        # the joint outcomes no state can produce are left out of the outcome entropies
        # (exact, see outcome_support); with learned likelihood counts any outcome may come
        if (
            self.outcome_support is None
            and self.model.likelihood_counts is None
            and not any(isinstance(a, jax.core.Tracer) for a in self.model.likelihood)
        ):
            self.outcome_support = outcome_support(self.model.likelihood)

    def __check_init__(self):
        self.inference.num_rows(self.horizon, self.model.horizon - 1)

    @property
    def horizon(self) -> int:
        """Time steps per trial, ``T``."""
        return self.model.horizon if self.trial_length is None else int(self.trial_length)

    def init(self, rng_key: jax.Array | None = None, model: GenerativeModel | None = None) -> AgentState:
        """Beliefs at the start of a trial (time 0), before any outcome.

        Args:
          rng_key: unused (the start is deterministic); accepted for the protocol.
          model: the model to start from (default ``self.model``); :meth:`next_trial`
            passes the learned one.
        """
        del rng_key
        start = self.model if model is None else model
        T, Np = self.horizon, start.num_policies
        S = self.inference.num_rows(T, start.horizon - 1)
        arrays = agent_arrays(start, per_policy=self.tree is None, outcome_support=self.outcome_support)
        dtype = arrays.likelihood[0].dtype
        if self.tree is not None:  # the posterior now: the tree is rebuilt at every step
            S = Np_rows = 1
        else:
            Np_rows = Np
        beliefs = tuple(
            jnp.broadcast_to(jnp.full((S, n), 1.0 / n, dtype).at[0].set(d), (Np_rows, S, n))
            for n, d in zip(start.num_states, arrays.initial, strict=True)
        )
        return AgentState(
            model=start,
            arrays=arrays,
            time=jnp.zeros((), jnp.int32),
            beliefs=beliefs,
            history=tuple(jnp.zeros((T, n), dtype) for n in start.num_states),
            likelihood=jnp.ones((T, *start.num_states), dtype),
            mask=jnp.ones((Np,), bool),
            policy_posterior=jnp.zeros((Np, T), dtype) if Np > 1 else jnp.ones((Np, T), dtype),
            rate=jnp.asarray(self.beta, dtype),
            outcomes=jnp.full((start.num_modalities, T), -1, jnp.int32),
            actions=jnp.full((start.num_factors, max(T - 1, 1)), -1, jnp.int32),
            prior_model=self.model,
        )

    def observe(self, state: AgentState, observation: jax.Array) -> tuple[AgentState, StepInfo]:
        """Update beliefs and plan after ``observation`` (int ``[G]``), without choosing.

        Returns the new state (time advanced) and the :class:`StepInfo` with
        ``action`` = -1. Deterministic: :meth:`step` adds the choice.
        """
        model, arrays = state.model, state.arrays
        T, Np, Nu = self.horizon, model.num_policies, model.num_controls
        t = state.time
        dtype = arrays.likelihood[0].dtype
        o = jnp.asarray(observation, jnp.int32)
        lik_now = _joint_likelihood(arrays, o)
        Ls = put(state.likelihood, t, lik_now)
        u = state.policy_posterior
        tp = jnp.maximum(t - 1, 0)
        scheme = self.inference
        if scheme.policies_persist:
            mask = jnp.where(t > 0, occam_window(u[:, tp], state.mask, self.zeta), state.mask)
        else:  # receding horizon: every policy is a plan from now, none stays pruned
            mask = state.mask
        if self.tree is not None:
            q, neg_now = scheme.filter(arrays, lik_now, t, state.actions, state.history)
            x = tuple(qf[None, None] for qf in q)
            neg_free = jnp.broadcast_to(neg_now, (Np,))
        else:
            x, neg_free = scheme.infer(state.beliefs, arrays, Ls, t, state.actions, mask, state.history)
        neg_free = jnp.where(mask, neg_free, 0.0)
        rate = state.rate
        n_terms = len(self.terms) + 1
        beta = jnp.asarray(self.beta, dtype)
        if Np > 1:
            if self.tree is not None:
                efe, parts = tree_expected_free_energy(
                    self.tree, arrays.successors, arrays.outcomes, q, self.terms, t, T
                )
                parts = tuple(parts.T)
            else:
                efe, parts = jax.vmap(
                    lambda xk: scheme.expected_free_energy(arrays.outcomes, xk, t, T, self.terms)
                )(x)
            efe = jnp.where(mask, efe, 0.0)
            parts = jnp.where(mask[:, None], jnp.stack(parts, axis=-1), 0.0)
            # receding horizon: every policy shares the posterior now, and so its free energy
            free = -neg_free if scheme.policies_persist else -neg_free[0]
            post = self.precision(arrays.log_habit, efe, free, mask, rate, beta)
            rate, qu, pu, gamma = post.rate, post.posterior, post.prior, post.precision
            u = put(u, t, qu, axis=1)
        else:
            efe = jnp.zeros((Np,), dtype)
            parts = jnp.zeros((Np, n_terms), dtype)
            qu = pu = jnp.ones((Np,), dtype)
            gamma = 1.0 / rate
        total = -(qu @ neg_free - policy_entropy_term(qu, pu))
        if T > 1:
            P = self.action.probabilities(qu, scheme.policy_actions(model.policies, t, T), Nu)
        else:
            P = jnp.zeros(Nu, dtype)
        if self.tree is not None:
            states = q
        else:
            now = scheme.now(t)
            states = tuple(jnp.einsum("k,ks->s", qu, xf[:, now]) for xf in x)
        info = StepInfo(
            states=states,
            policy_posterior=qu,
            efe=efe,
            efe_terms=parts,
            free_energy=-neg_free,
            total_free_energy=total,
            precision=jnp.asarray(gamma, dtype),
            action_probabilities=P,
            action=jnp.full((model.num_factors,), -1, jnp.int32),
        )
        new = state._replace(
            time=t + 1,
            beliefs=x,
            history=tuple(put(h, t, q) for h, q in zip(state.history, states, strict=True)),
            likelihood=Ls,
            mask=mask,
            policy_posterior=u,
            rate=rate,
            outcomes=put(state.outcomes, t, o, axis=1),
        )
        return new, info

    def perceive(self, state: AgentState, observation: jax.Array) -> AgentState:
        """Update the beliefs about the present after ``observation`` (int ``[G]``), without planning.

        For a step whose plans are not needed, the last of a trial above all: no
        choice follows it. With receding-horizon inference
        (:class:`~actinf.inference.fixed_point.FixedPoint`) the posterior now does
        not depend on the plans and learning reads only the posteriors in
        ``history``, so ``next_trial(perceive(s, o))`` equals
        ``next_trial(observe(s, o)[0])`` at a fraction of the cost (no expected
        free energy, no precision updates); the policy posterior and the
        precision are left as they were. With marginal message passing the
        beliefs and what learning reads depend on the policy posterior, and this
        is :meth:`observe` without its :class:`StepInfo`.
        """
        scheme = self.inference
        if not isinstance(scheme, FixedPoint):
            return self.observe(state, observation)[0]
        arrays, t = state.arrays, state.time
        o = jnp.asarray(observation, jnp.int32)
        lik_now = _joint_likelihood(arrays, o)
        Ls = put(state.likelihood, t, lik_now)
        if self.tree is not None:
            q, _ = scheme.filter(arrays, lik_now, t, state.actions, state.history)
            x = tuple(qf[None, None] for qf in q)
        else:
            x, _ = scheme.infer(state.beliefs, arrays, Ls, t, state.actions, state.mask, state.history)
            q = tuple(xf[0, scheme.now(t)] for xf in x)  # every policy shares the posterior now
        return state._replace(
            time=t + 1,
            beliefs=x,
            history=tuple(put(h, t, qf) for h, qf in zip(state.history, q, strict=True)),
            likelihood=Ls,
            outcomes=put(state.outcomes, t, o, axis=1),
        )

    def choose(self, uniform: jax.Array, info: StepInfo) -> jax.Array:
        """The action (int ``[F]``) for a uniform draw in [0, 1): the first joint action
        whose cumulative probability exceeds it (SPM's sampler; deterministic
        selection has all its mass on one action)."""
        P = info.action_probabilities
        draw = inverse_cdf(P.reshape(-1), uniform)
        return jnp.stack(jnp.unravel_index(draw, P.shape)).astype(jnp.int32)

    def act(self, state: AgentState, action: jax.Array) -> AgentState:
        """Record ``action`` (int ``[F]``) as taken at the step just observed."""
        T = self.horizon
        tc = jnp.clip(state.time - 1, 0, max(T - 2, 0))
        keep = state.time - 1 >= T - 1
        taken = jnp.where(keep, state.actions[:, tc], jnp.asarray(action, jnp.int32))
        return state._replace(actions=put(state.actions, tc, taken, axis=1))

    def step(
        self, rng_key: jax.Array, state: AgentState, observation: jax.Array
    ) -> tuple[AgentState, StepInfo]:
        """Observe, plan and act: ``(state, info)`` with ``info.action`` the chosen action.

        At the last time step of a trial (``T - 1``) no action is chosen
        (``info.action`` is -1); call :meth:`next_trial` before the next outcome.
        """
        state, info = self.observe(state, observation)
        dtype = info.action_probabilities.dtype
        action = self.choose(jax.random.uniform(rng_key, dtype=dtype), info)
        last = state.time >= self.horizon
        action = jnp.where(last, -1, action)
        return self.act(state, action), info._replace(action=action)

    def posterior_states(self, state: AgentState) -> tuple:
        """Per factor ``[T, Ns_f]``: the beliefs over every time of the trial that
        learning uses (SPM's ``X``: averaged over policies with the latest policy
        posterior; the filtered posteriors for fixed-point inference)."""
        X, _, _, _ = self.inference.learning_inputs(
            state.model, state.beliefs, state.policy_posterior, state.history, state.actions
        )
        return tuple(xf.T for xf in X)

    def learn(self, state: AgentState) -> tuple[GenerativeModel, tuple]:
        """The model with counts learned from the trial in ``state``, and the
        negative free energies ``(Fa, Fb, Fc, Fd, Fe)`` of the learned counts.

        Uses ``self.learning`` (rate and forgetting); with ``learning=None`` the
        model is returned unchanged and the free energies are None.
        """
        if self.learning is None:
            return state.model, (None,) * 5
        model = state.model
        dtype = state.arrays.likelihood[0].dtype
        X, x, u, policies = self.inference.learning_inputs(
            model, state.beliefs, state.policy_posterior, state.history, state.actions
        )
        onehots = [
            jax.nn.one_hot(state.outcomes[g], n, dtype=dtype) for g, n in enumerate(model.num_outcomes)
        ]
        as_followed = eqx.tree_at(lambda m: m.policies, model, policies)
        learned, energies = learning.learn_counts(
            as_followed, onehots, X, x, u, self.learning.rate, self.learning.initial_rate
        )
        learned = eqx.tree_at(lambda m: m.policies, learned, model.policies)
        phi = self.learning.forgetting
        if not (isinstance(phi, float | int) and phi == 0):
            learned = learning.forget(learned, model, state.prior_model, phi)
        return learned, energies

    def next_trial(self, state: AgentState) -> AgentState:
        """Learn from the trial in ``state`` and start the next one (time 0)."""
        learned, _ = self.learn(state)
        new = self.init(model=learned)
        return new._replace(prior_model=state.prior_model)
