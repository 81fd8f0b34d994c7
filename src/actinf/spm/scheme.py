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
``jax.jit``/``jax.vmap``/``jax.grad`` compatible (the time loop is unrolled at
trace time, as the horizon is small and static).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import learning
from ..inference.mmp import MarginalMessagePassing
from ..maths import contract, dirichlet_expected_log, log_stable, normalise, novelty_weights, softmax
from ..model import GenerativeModel
from ..planning.efe import SPM_TERMS, expected_free_energy, outcome_model
from ..planning.policy import (
    FixedPrecision,
    GammaPrecision,
    action_probabilities,
    occam_window,
    policy_entropy_term,
)


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


def _agent_arrays(model: GenerativeModel, T: int):
    """The agent's beliefs about the parameters, as ``spm_MDP_VB_X`` builds them."""
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
    return A, sB, rB, D, E, C, wA, wD


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
    V = model.policies
    T = model.horizon
    S = T
    Np = model.num_policies
    Nf = model.num_factors
    Nu = model.num_controls
    dtype = model.likelihood[0].dtype
    A, sB, rB, D, E, C, wA, wD = _agent_arrays(model, T)
    om = outcome_model(A, C, wA, wD)
    logD = tuple(log_stable(d) for d in D)
    log_habit = log_stable(E)
    beta = jnp.asarray(settings.beta, dtype)
    mmp = settings.inference

    # per-policy transition matrices [Np, S-1, Ns, Ns]
    fwd = tuple(jnp.moveaxis(sB[f][:, :, V[:, :, f]], (2, 3), (1, 0)) for f in range(Nf))
    bwd = tuple(jnp.moveaxis(rB[f][:, :, V[:, :, f]], (2, 3), (1, 0)) for f in range(Nf))

    Ng = model.num_modalities
    full = lambda n, m: jnp.full((n, m), -1, jnp.int32)  # noqa: E731
    o = full(Ng, T) if outcomes is None else jnp.asarray(outcomes, jnp.int32)
    u_act = full(Nf, T - 1) if actions is None else jnp.asarray(actions, jnp.int32)
    s_true = full(Nf, T) if states is None else jnp.asarray(states, jnp.int32)
    key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    proc_A = tuple(normalise(a) for a in model.likelihood)
    proc_B = tuple(normalise(b) for b in model.transition)
    proc_D = tuple(normalise(d) for d in model.initial)
    likelihoods = []

    x = tuple(
        jnp.broadcast_to(jnp.full((S, n), 1.0 / n, dtype).at[0].set(D[f]), (Np, S, n))
        for f, n in enumerate(model.num_states)
    )
    mask = jnp.ones((Np,), bool)
    u = jnp.zeros((Np, T), dtype) if Np > 1 else jnp.ones((Np, T), dtype)
    rate = beta
    w = jnp.zeros((T,), dtype)
    Fout = jnp.zeros((Np, T), dtype)
    Gout = jnp.zeros((Np, T), dtype)
    H = jnp.zeros((T,), dtype)
    P = jnp.zeros((*Nu, T - 1), dtype)
    n_terms = len(settings.terms) + 1
    terms_out = jnp.zeros((Np, T, n_terms), dtype)
    X = None
    qu = jnp.ones((Np,), dtype)
    pu = jnp.ones((Np,), dtype)

    for t in range(T):
        # generative process: sample what is not given -------------------
        key, *ks = jax.random.split(key, Nf + Ng + 2)
        for f in range(Nf):
            if t == 0:
                ps = proc_D[f]
            else:
                ps = proc_B[f][:, s_true[f, t - 1], u_act[f, t - 1]]
            draw = jax.random.categorical(ks[f], jnp.log(ps))
            s_true = s_true.at[f, t].set(jnp.where(s_true[f, t] >= 0, s_true[f, t], draw))
        for g in range(Ng):
            po = proc_A[g][(slice(None), *[s_true[f, t] for f in range(Nf)])]
            draw = jax.random.categorical(ks[Nf + g], jnp.log(po))
            o = o.at[g, t].set(jnp.where(o[g, t] >= 0, o[g, t], draw))
        L = 1.0
        for g, a in enumerate(A):
            L = L * a[o[g, t]]
        likelihoods.append(L)

        if t > 0:
            mask = occam_window(u[:, t - 1], mask, settings.zeta)
        x = mmp.reset(x)
        new_x, free = jax.vmap(
            lambda xk, fk, bk: mmp(xk, logD, fk, bk, likelihoods[: t + 1], t)
        )(x, fwd, bwd)
        x = tuple(jnp.where(mask[:, None, None], nx, ox) for nx, ox in zip(new_x, x, strict=True))
        Fneg = jnp.where(mask, free, 0.0)  # SPM's F: negative free energy
        if Np > 1:
            efe, parts = jax.vmap(lambda xk: expected_free_energy(om, xk, t, settings.terms))(x)
            efe = jnp.where(mask, efe, 0.0)
            parts = jnp.where(mask[:, None], jnp.stack(parts, axis=-1), 0.0)
            terms_out = terms_out.at[:, t].set(parts)
            post = settings.precision(log_habit, efe, -Fneg, mask, rate, beta)
            rate = post.rate
            qu, pu = post.posterior, post.prior
            u = u.at[:, t].set(qu)
            w = w.at[t].set(post.precision)
            Gout = Gout.at[:, t].set(-efe)
        else:
            w = w.at[t].set(1.0 / rate)
        X = tuple(jnp.einsum("kjs,k->sj", xf, u[:, t]) for xf in x)
        Fout = Fout.at[:, t].set(Fneg)
        H = H.at[t].set(qu @ Fneg - policy_entropy_term(qu, pu))
        if t < T - 1:
            Pu = action_probabilities(u[:, t], V[t], Nu, settings.alpha)
            P = P.at[..., t].set(Pu)
            draw = jax.random.categorical(ks[-1], jnp.log(Pu.reshape(-1)))
            drawn = jnp.stack(jnp.unravel_index(draw, Nu))
            u_act = u_act.at[:, t].set(jnp.where(u_act[:, t] >= 0, u_act[:, t], drawn))

    if Np == 1:
        w = w[:1]

    # learning -------------------------------------------------------------
    eta = jnp.asarray(settings.eta, dtype)
    onehots = [jax.nn.one_hot(o[g], A[g].shape[0], dtype=dtype) for g in range(Ng)]
    Xt = [xf.T for xf in X]  # [T, Ns]
    a_new = b_new = c_new = d_new = e_new = None
    Fa = Fb = Fc = Fd = Fe = None
    if model.likelihood_counts is not None:
        a_new = tuple(
            learning.likelihood_update(a, onehots[g], Xt, eta)
            for g, a in enumerate(model.likelihood_counts)
        )
        Fa = jnp.stack([
            learning.parameter_free_energy(q, p)
            for q, p in zip(a_new, model.likelihood_counts, strict=True)
        ])
    if model.transition_counts is not None:
        b_new = tuple(
            learning.transition_update(b, x[f], u, V[:, :, f], eta)
            for f, b in enumerate(model.transition_counts)
        )
        Fb = jnp.stack([
            learning.parameter_free_energy(q, p)
            for q, p in zip(b_new, model.transition_counts, strict=True)
        ])
    if model.preference_counts is not None:
        c_new = tuple(
            learning.preference_update(c, onehots[g], eta)
            for g, c in enumerate(model.preference_counts)
        )
        Fc = jnp.stack([
            learning.parameter_free_energy(q, p)
            for q, p in zip(c_new, model.preference_counts, strict=True)
        ])
    if model.initial_counts is not None:
        d_new = tuple(
            learning.initial_update(d, X[f][:, 0]) for f, d in enumerate(model.initial_counts)
        )
        Fd = jnp.stack([
            learning.parameter_free_energy(q, p)
            for q, p in zip(d_new, model.initial_counts, strict=True)
        ])
    if model.habit_counts is not None:
        e_new = learning.habit_update(model.habit_counts, u[:, T - 1], eta)
        Fe = learning.parameter_free_energy(e_new, model.habit_counts)
    learned = eqx.tree_at(
        lambda m: (
            m.likelihood_counts, m.transition_counts, m.preference_counts,
            m.initial_counts, m.habit_counts,
        ),
        model,
        (a_new, b_new, c_new, d_new, e_new),
        is_leaf=lambda z: z is None,
    )
    Q = tuple(jnp.transpose(xf, (2, 1, 0)) for xf in x)
    return SpmTrialResult(
        X, Q, P, u, Fout, Gout, H, w, terms_out, s_true, o, u_act, learned, Fa, Fb, Fc, Fd, Fe
    )


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
            model, jnp.asarray(o, jnp.int32), jnp.asarray(u, jnp.int32), settings,
            states=jnp.asarray(s, jnp.int32), rng_key=sub,
        )
        results.append(res)
        if callback is not None:
            callback(i, res)
        model = res.model
    return results
