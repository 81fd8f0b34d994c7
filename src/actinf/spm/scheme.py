"""SPM12's ``spm_MDP_VB_X.m`` as pure JAX functions.

:func:`spm_trial` solves one trial (one SPM ``MDP`` structure) with the
outcomes and actions given, :func:`spm_sequence` a sequence of trials with the
Dirichlet counts carried from each trial to the next (SPM's ``spm_MDP_update``).
Both reproduce SPM12 r7771 (``spm_MDP_VB_X.m`` revision 7766) number for
number; see ``tests/test_spm_reference.py``.

The scheme at each time step :math:`t` (Friston et al. 2017, *Active
inference: a process theory*, Neural Computation 29, appendix B):

1. prune policies outside the Occam window of the previous posterior
   (:func:`~actinf.planning.policy.occam_window`);
2. soften every belief (``erp``) and run marginal message passing under each
   remaining policy (:class:`~actinf.inference.mmp.MarginalMessagePassing`),
   giving the policies' free energies :math:`F_\\pi`;
3. expected free energy :math:`G_\\pi` from :math:`t` to the horizon
   (:func:`~actinf.planning.efe.expected_free_energy`);
4. policy posterior and precision (:class:`~actinf.planning.policy.GammaPrecision`
   or :class:`~actinf.planning.policy.FixedPrecision`);
5. Bayesian model average of the state beliefs, action probabilities.

At the end of the trial the Dirichlet counts are learned
(:mod:`actinf.learning`).

Everything is written for one agent and one trial; the functions are pure and
``jax.jit``/``jax.vmap``/``jax.grad`` compatible. Time steps, message-passing
sweeps and the precision iterations are ``lax.scan`` loops, so the compiled
size does not grow with the horizon; factors and modalities (whose arrays
differ in shape) are unrolled at trace time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..agent import Agent, Learning, Sampled, agent_arrays
from ..inference.mmp import MarginalMessagePassing
from ..learning import learn_counts
from ..maths import contract, inverse_cdf, normalise
from ..model import GenerativeModel
from ..planning.efe import SPM_TERMS
from ..planning.policy import FixedPrecision, GammaPrecision


class SpmSettings(NamedTuple):
    """Precisions and settings of SPM's scheme, with SPM's defaults.

    Attributes:
      alpha: action precision (SPM ``MDP.alpha``, 512).
      beta: rate of the Gamma prior over policy precision (``MDP.beta``, 1).
      eta: learning rate (``MDP.eta``, 1).
      zeta: Occam window for policies, in nats (``MDP.zeta``, 3).
      inference: the state-inference scheme (``tau`` = 4, ``erp`` = 4, 16 sweeps).
      precision: :class:`GammaPrecision` or :class:`FixedPrecision`
        (SPM's ``OPTIONS.gamma = 1``).
      terms: the expected free energy terms.
    """

    alpha: float = 512.0
    beta: float = 1.0
    eta: float = 1.0
    zeta: float = 3.0
    inference: MarginalMessagePassing = MarginalMessagePassing()
    precision: object = GammaPrecision()
    terms: tuple = SPM_TERMS


def spm_settings(fields: Mapping[str, object] | None = None, gamma_fixed: bool = False) -> SpmSettings:
    """Settings from SPM's ``MDP`` fields and ``OPTIONS.gamma``.

    Args:
      fields: any of ``alpha``, ``beta``, ``eta``, ``zeta``, ``tau``, ``erp``;
        absent or None: SPM's default.
      gamma_fixed: SPM's ``OPTIONS.gamma = 1`` (policy precision held at 1/beta).

    The precisions are returned as arrays, so that they are traced rather than
    compiled into the trial function: problems that differ only in ``alpha``,
    ``beta``, ``eta`` or ``zeta`` share one compilation.
    """
    fields = {k: v for k, v in (fields or {}).items() if v is not None}
    base = SpmSettings()
    inference = base.inference._replace(**{k: float(fields[k]) for k in ("tau", "erp") if k in fields})
    return SpmSettings(
        **{k: jnp.asarray(float(fields.get(k, getattr(base, k)))) for k in ("alpha", "beta", "eta", "zeta")},
        inference=inference,
        precision=FixedPrecision() if gamma_fixed else GammaPrecision(),
    )


class SpmTrialResult(NamedTuple):
    """SPM's outputs of one trial, with SPM's names and axis orders (0-based indices).

    ``F``, ``G`` and ``H`` keep SPM's sign (negative free energies).
    """

    X: tuple  # per factor [Ns_f, T]
    Q: tuple  # per factor [Ns_f, T, Np]
    P: jax.Array  # [Nu_1..Nu_F, T-1]
    R: jax.Array  # [Np, T]
    F: jax.Array  # [Np, T]
    G: jax.Array  # [Np, T]
    H: jax.Array  # [T]
    w: jax.Array  # [T]
    efe_terms: jax.Array  # [Np, T, n_terms + 1]: each term's contribution to the EFE (-G)
    s: jax.Array  # [F, T] true states (given or sampled)
    o: jax.Array  # [G, T] outcomes (given or sampled)
    u: jax.Array  # [F, T-1] actions (given or sampled)
    model: GenerativeModel  # with the learned counts
    Fa: jax.Array | None
    Fb: jax.Array | None
    Fc: jax.Array | None
    Fd: jax.Array | None
    Fe: jax.Array | None


def spm_agent(model: GenerativeModel, settings: SpmSettings = SpmSettings()) -> Agent:
    """The online :class:`~actinf.agent.Agent` that runs SPM's scheme with ``settings``."""
    return Agent(
        model,
        inference=settings.inference,
        precision=settings.precision,
        terms=settings.terms,
        action=Sampled(settings.alpha),
        learning=Learning(settings.eta),
        beta=settings.beta,
        zeta=settings.zeta,
    )


def spm_trial(
    model: GenerativeModel,
    outcomes: jax.Array | None = None,
    actions: jax.Array | None = None,
    settings: SpmSettings = SpmSettings(),
    *,
    states: jax.Array | None = None,
    rng_key: jax.Array | None = None,
) -> SpmTrialResult:
    """Solve one trial of ``spm_MDP_VB_X``.

    As in SPM, states, outcomes and actions that are given are used, and those
    left unspecified (``-1``, SPM's ``0``; or the whole array ``None``) are
    sampled: the state at ``t`` from the process transitions ``B`` (or ``D`` at
    ``t = 0``), the outcome from the process likelihood ``A`` given the state,
    and the action from the action probabilities ``P``. The generative process
    is the model's probability arrays ``A``, ``B``, ``D``; the agent's beliefs
    use the counts where present.

    The agent's side of each time step is :meth:`actinf.agent.Agent.observe`
    of :func:`spm_agent`: the online agent and this scheme are one implementation.

    Args:
      model: the generative model (probabilities and optional Dirichlet counts).
      outcomes: ``[G, T]`` integer outcomes (0-based, -1: sample).
      actions: ``[F, T-1]`` integer actions taken (0-based, -1: sample).
      settings: precisions and scheme settings.
      states: ``[F, T]`` true states (0-based, -1: sample). Only used to
        generate outcomes that are not given.
      rng_key: key for sampling (needed only if something is sampled).

    Returns:
      :class:`SpmTrialResult` with SPM's outputs and the model with learned counts.
    """
    T = model.horizon
    Np = model.num_policies
    Nf = model.num_factors
    Nu = model.num_controls
    Ng = model.num_modalities
    dtype = model.likelihood[0].dtype
    agent = spm_agent(model, settings)

    full = lambda n, m: jnp.full((n, m), -1, jnp.int32)  # noqa: E731
    o = full(Ng, T) if outcomes is None else jnp.asarray(outcomes, jnp.int32)
    u_act = full(Nf, T - 1) if actions is None else jnp.asarray(actions, jnp.int32)
    s_true = full(Nf, T) if states is None else jnp.asarray(states, jnp.int32)
    key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    proc_A = tuple(normalise(a) for a in model.likelihood)
    proc_B = tuple(normalise(b) for b in model.transition)
    proc_D = tuple(normalise(d) for d in model.initial)

    def step(c, t):
        """One time step of the trial (SPM's loop body), ``t`` dynamic."""
        key, s_true, o, act, state = c
        tp = jnp.maximum(t - 1, 0)
        # generative process: sample what is not given -------------------
        key, sub = jax.random.split(key)
        rand = jax.random.uniform(sub, (Nf + Ng + 1,), dtype)
        for f in range(Nf):
            if T > 1:
                prev = proc_B[f][:, s_true[f, tp], act[f, jnp.minimum(tp, T - 2)]]
                ps = jnp.where(t == 0, proc_D[f], prev)
            else:
                ps = proc_D[f]
            draw = inverse_cdf(ps, rand[f]).astype(s_true.dtype)
            s_true = s_true.at[f, t].set(jnp.where(s_true[f, t] >= 0, s_true[f, t], draw))
        for g in range(Ng):
            po = proc_A[g][(slice(None), *[s_true[f, t] for f in range(Nf)])]
            draw = inverse_cdf(po, rand[Nf + g]).astype(o.dtype)
            o = o.at[g, t].set(jnp.where(o[g, t] >= 0, o[g, t], draw))
        # the agent: inference, planning, action probabilities -------------
        state, info = agent.observe(state, o[:, t])
        if T > 1:
            tc = jnp.minimum(t, T - 2)
            drawn = agent.choose(rand[-1], info)
            keep = (act[:, tc] >= 0) | (t >= T - 1)
            act = act.at[:, tc].set(jnp.where(keep, act[:, tc], drawn))
            state = agent.act(state, act[:, tc])
        return (key, s_true, o, act, state), info

    (_, s_true, o, u_act, state), info = jax.lax.scan(
        step, (key, s_true, o, u_act, agent.init()), jnp.arange(T)
    )
    x, u = state.beliefs, state.policy_posterior
    if T > 1:
        P = jnp.moveaxis(info.action_probabilities[: T - 1], 0, -1)
    else:
        P = jnp.zeros((*Nu, 0), dtype)
    w = info.precision if Np > 1 else info.precision[:1]
    X = agent.posterior_states(state)
    X = tuple(xf.T for xf in X)
    learned, (Fa, Fb, Fc, Fd, Fe) = agent.learn(state)
    Q = tuple(jnp.transpose(xf, (2, 1, 0)) for xf in x)
    return SpmTrialResult(
        X,
        Q,
        P,
        u,
        -info.free_energy.T,
        -info.efe.T,
        -info.total_free_energy,
        w,
        info.efe_terms.transpose(1, 0, 2),
        s_true,
        o,
        u_act,
        learned,
        Fa,
        Fb,
        Fc,
        Fd,
        Fe,
    )


class SpmHmmResult(NamedTuple):
    """Outputs of :func:`spm_hmm` (SPM's names and layouts).

    Attributes:
      X: per factor ``[Ns_f, T]`` posterior over states at every time.
      F: negative variational free energy of the sequence.
      model: the model with learned counts.
      Fa, Fb, Fc, Fd, Fe: negative free energies of the learned counts (or None).
    """

    X: tuple
    F: jax.Array
    model: GenerativeModel
    Fa: jax.Array | None
    Fb: jax.Array | None
    Fc: jax.Array | None
    Fd: jax.Array | None
    Fe: jax.Array | None


def spm_hmm(model: GenerativeModel, outcome_likelihoods, settings: SpmSettings = SpmSettings()):
    """SPM's hidden-Markov-model mode: outcomes given as likelihoods, no policies.

    When ``spm_MDP_VB_X`` is called with ``MDP.O`` (the likelihood of each
    outcome at each time) and a single policy, it skips the intermediate time
    steps and runs marginal message passing once, at the last time, with every
    outcome known. State transitions then come from the probabilities ``B``
    (never the counts ``b``), with the first control of every factor; the
    likelihood and the initial states come from the counts where present,
    and all counts are learned as in a trial.

    Args:
      model: the generative model; its policies are ignored.
      outcome_likelihoods: per modality ``[No_g, T]``, the likelihood (or
        probability) of each outcome at each time.
      settings: scheme settings (only ``inference`` and ``eta`` are used).

    Returns:
      :class:`SpmHmmResult`.
    """
    O = tuple(jnp.asarray(x) for x in outcome_likelihoods)
    T = int(O[0].shape[1])
    Nf = model.num_factors
    dtype = model.likelihood[0].dtype
    policies = jnp.zeros((T - 1, 1, Nf), jnp.int32)
    model = eqx.tree_at(lambda m: m.policies, model, policies)
    arrays = agent_arrays(model)
    A = arrays.likelihood
    D = tuple(normalise(d) for d in (model.initial_counts or model.initial))
    # transitions from the probabilities B, never the counts b (SPM's HMM mode)
    process = agent_arrays(dataclasses.replace(model, transition_counts=None))
    fwd, bwd = tuple(x[0] for x in process.forward), tuple(x[0] for x in process.backward)
    Ls = []
    for t in range(T):
        L = 1.0
        for g, a in enumerate(A):
            L = L * contract(jnp.moveaxis(a, 0, -1), [O[g][:, t]])
        Ls.append(L)
    mmp = settings.inference
    x = tuple(jnp.full((T, n), 1.0 / n, dtype).at[0].set(D[f]) for f, n in enumerate(model.num_states))
    x = mmp.reset(x)
    x, free = mmp(x, arrays.log_initial, fwd, bwd, jnp.stack(Ls), T - 1)
    X = tuple(xf.T for xf in x)
    u = jnp.ones((1, T), dtype)
    outcomes = [o.T for o in O]
    per_policy = tuple(xf[None] for xf in x)
    learned, (Fa, Fb, Fc, Fd, Fe) = learn_counts(model, outcomes, X, per_policy, u, settings.eta)
    return SpmHmmResult(X, free, learned, Fa, Fb, Fc, Fd, Fe)


_spm_trial_jit = eqx.filter_jit(spm_trial)


def spm_sequence(
    model,
    outcomes,
    actions,
    settings: SpmSettings = SpmSettings(),
    *,
    states=None,
    rng_key=None,
    callback=None,
):
    """Solve a sequence of trials, carrying the learned counts forward (SPM's ``MDP(1:n)``).

    Args:
      model: the generative model of the first trial.
      outcomes: a sequence of ``[G, T]`` outcome arrays, one per trial (-1: sample).
      actions: a sequence of ``[F, T-1]`` action arrays, one per trial (-1: sample).
      states: optional sequence of ``[F, T]`` true-state arrays (-1: sample).
      rng_key: key for whatever is sampled; split once per trial.
      callback: called as ``callback(i, result)`` after each trial (progress).

    Returns:
      a list of :class:`SpmTrialResult`, one per trial. Each trial's ``model``
      holds the counts learned up to and including it. The trial function is
      compiled once and reused for every trial.
    """
    n = len(outcomes)
    states = [None] * n if states is None else states
    key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    results = []
    for i, (o, u, s) in enumerate(zip(outcomes, actions, states, strict=True)):
        key, sub = jax.random.split(key)
        s = jnp.full((model.num_factors, model.horizon), -1, jnp.int32) if s is None else s
        res = _spm_trial_jit(
            model,
            jnp.asarray(o, jnp.int32),
            jnp.asarray(u, jnp.int32),
            settings,
            states=jnp.asarray(s, jnp.int32),
            rng_key=sub,
        )
        results.append(res)
        if callback is not None:
            callback(i, res)
        model = res.model
    return results
