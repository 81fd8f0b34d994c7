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

from collections.abc import Mapping
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import learning
from ..inference.mmp import MarginalMessagePassing
from ..maths import (
    contract,
    dirichlet_expected_log,
    inverse_cdf,
    log_stable,
    normalise,
    novelty_weights,
    softmax,
)
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


def _policy_transitions(sB, rB, V):
    """Per factor, ``[Np, T-1, Ns, Ns]`` forward and backward transition matrices of every policy."""

    def pick(mats, f):
        return jnp.moveaxis(mats[f][:, :, V[:, :, f]], (2, 3), (1, 0))

    return tuple(pick(sB, f) for f in range(len(sB))), tuple(pick(rB, f) for f in range(len(rB)))


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
    fwd, bwd = _policy_transitions(sB, rB, V)

    Ng = model.num_modalities
    full = lambda n, m: jnp.full((n, m), -1, jnp.int32)  # noqa: E731
    o = full(Ng, T) if outcomes is None else jnp.asarray(outcomes, jnp.int32)
    u_act = full(Nf, T - 1) if actions is None else jnp.asarray(actions, jnp.int32)
    s_true = full(Nf, T) if states is None else jnp.asarray(states, jnp.int32)
    key = jax.random.PRNGKey(0) if rng_key is None else rng_key
    proc_A = tuple(normalise(a) for a in model.likelihood)
    proc_B = tuple(normalise(b) for b in model.transition)
    proc_D = tuple(normalise(d) for d in model.initial)
    x = tuple(
        jnp.broadcast_to(jnp.full((S, n), 1.0 / n, dtype).at[0].set(D[f]), (Np, S, n))
        for f, n in enumerate(model.num_states)
    )
    n_terms = len(settings.terms) + 1
    carry0 = dict(
        key=key,
        s=s_true,
        o=o,
        act=u_act,
        L=jnp.ones((T, *model.num_states), dtype),
        x=x,
        mask=jnp.ones((Np,), bool),
        u=jnp.zeros((Np, T), dtype) if Np > 1 else jnp.ones((Np, T), dtype),
        rate=beta,
        w=jnp.zeros((T,), dtype),
        F=jnp.zeros((Np, T), dtype),
        G=jnp.zeros((Np, T), dtype),
        H=jnp.zeros((T,), dtype),
        P=jnp.zeros((*Nu, max(T - 1, 1)), dtype),
        terms=jnp.zeros((Np, T, n_terms), dtype),
    )
    ones = jnp.ones((Np,), dtype)

    def step(c, t):
        """One time step of the trial (SPM's loop body), ``t`` dynamic."""
        c = dict(c)
        tp = jnp.maximum(t - 1, 0)
        # generative process: sample what is not given -------------------
        key, sub = jax.random.split(c["key"])
        rand = jax.random.uniform(sub, (Nf + Ng + 1,), dtype)
        s_true, o, act = c["s"], c["o"], c["act"]
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
        L = 1.0
        for g, a in enumerate(A):
            L = L * a[o[g, t]]
        Ls = c["L"].at[t].set(L)

        # state inference under each plausible policy ----------------------
        mask = jnp.where(t > 0, occam_window(c["u"][:, tp], c["mask"], settings.zeta), c["mask"])
        x = mmp.reset(c["x"])
        new_x, free = jax.vmap(lambda xk, fk, bk: mmp(xk, logD, fk, bk, Ls, t))(x, fwd, bwd)
        x = tuple(jnp.where(mask[:, None, None], nx, ox) for nx, ox in zip(new_x, x, strict=True))
        Fneg = jnp.where(mask, free, 0.0)  # SPM's F: negative free energy
        u, rate, w, G, terms = c["u"], c["rate"], c["w"], c["G"], c["terms"]
        qu = pu = ones
        if Np > 1:
            efe, parts = jax.vmap(lambda xk: expected_free_energy(om, xk, t, settings.terms))(x)
            efe = jnp.where(mask, efe, 0.0)
            parts = jnp.where(mask[:, None], jnp.stack(parts, axis=-1), 0.0)
            terms = terms.at[:, t].set(parts)
            post = settings.precision(log_habit, efe, -Fneg, mask, rate, beta)
            rate = post.rate
            qu, pu = post.posterior, post.prior
            u = u.at[:, t].set(qu)
            w = w.at[t].set(post.precision)
            G = G.at[:, t].set(-efe)
        else:
            w = w.at[t].set(1.0 / rate)
        H = c["H"].at[t].set(qu @ Fneg - policy_entropy_term(qu, pu))

        # action ------------------------------------------------------------
        P = c["P"]
        if T > 1:
            tc = jnp.minimum(t, T - 2)
            Pu = action_probabilities(u[:, t], V[tc], Nu, settings.alpha)
            P = P.at[..., tc].set(jnp.where(t < T - 1, Pu, P[..., tc]))
            draw = inverse_cdf(Pu.reshape(-1), rand[-1])
            drawn = jnp.stack(jnp.unravel_index(draw, Nu)).astype(act.dtype)
            keep = (act[:, tc] >= 0) | (t >= T - 1)
            act = act.at[:, tc].set(jnp.where(keep, act[:, tc], drawn))
        c.update(
            key=key,
            s=s_true,
            o=o,
            act=act,
            L=Ls,
            x=x,
            mask=mask,
            u=u,
            rate=rate,
            w=w,
            F=c["F"].at[:, t].set(Fneg),
            G=G,
            H=H,
            P=P,
            terms=terms,
        )
        return c, None

    c, _ = jax.lax.scan(step, carry0, jnp.arange(T))
    x, u, w, o, s_true, u_act = c["x"], c["u"], c["w"], c["o"], c["s"], c["act"]
    Fout, Gout, H, terms_out = c["F"], c["G"], c["H"], c["terms"]
    P = c["P"] if T > 1 else jnp.zeros((*Nu, 0), dtype)
    # Bayesian model average over policies (SPM's X, as at the last time step)
    X = tuple(jnp.einsum("kjs,k->sj", xf, u[:, T - 1]) for xf in x)

    if Np == 1:
        w = w[:1]

    onehots = [jax.nn.one_hot(o[g], A[g].shape[0], dtype=dtype) for g in range(Ng)]
    learned, (Fa, Fb, Fc, Fd, Fe) = learn(model, onehots, X, x, u, settings.eta)
    Q = tuple(jnp.transpose(xf, (2, 1, 0)) for xf in x)
    return SpmTrialResult(
        X, Q, P, u, Fout, Gout, H, w, terms_out, s_true, o, u_act, learned, Fa, Fb, Fc, Fd, Fe
    )


def learn(model: GenerativeModel, outcomes, X, x, u, eta):
    """Learn every Dirichlet count of ``model`` from one trial (see :mod:`actinf.learning`).

    Args:
      outcomes: per modality ``[T, No_g]`` outcome probabilities (one-hot if observed).
      X: per factor ``[Ns_f, T]`` Bayesian-model-averaged state beliefs.
      x: per factor ``[Np, T, Ns_f]`` state beliefs under each policy.
      u: ``[Np, T]`` policy posterior at each time.
      eta: learning rate.

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
        return jnp.stack([learning.parameter_free_energy(q, p) for q, p in pairs])

    new = dict(a=None, b=None, c=None, d=None, e=None)
    fe = dict(a=None, b=None, c=None, d=None, e=None)
    if model.likelihood_counts is not None:
        prior = model.likelihood_counts
        new["a"] = tuple(learning.likelihood_update(a, outcomes[g], Xt, eta) for g, a in enumerate(prior))
        fe["a"] = free_energies(new["a"], prior)
    if model.transition_counts is not None:
        prior = model.transition_counts
        new["b"] = tuple(learning.transition_update(b, x[f], u, V[:, :, f], eta) for f, b in enumerate(prior))
        fe["b"] = free_energies(new["b"], prior)
    if model.preference_counts is not None:
        prior = model.preference_counts
        new["c"] = tuple(learning.preference_update(c, outcomes[g], eta) for g, c in enumerate(prior))
        fe["c"] = free_energies(new["c"], prior)
    if model.initial_counts is not None:
        prior = model.initial_counts
        new["d"] = tuple(learning.initial_update(d, X[f][:, 0]) for f, d in enumerate(prior))
        fe["d"] = free_energies(new["d"], prior)
    if model.habit_counts is not None:
        new["e"] = learning.habit_update(model.habit_counts, u[:, T - 1], eta)
        fe["e"] = learning.parameter_free_energy(new["e"], model.habit_counts)
    learned = eqx.tree_at(
        lambda m: (
            m.likelihood_counts,
            m.transition_counts,
            m.preference_counts,
            m.initial_counts,
            m.habit_counts,
        ),
        model,
        tuple(new[k] for k in "abcde"),
        is_leaf=lambda z: z is None,
    )
    return learned, tuple(fe[k] for k in "abcde")


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
    A, _, _, D, _, _, _, _ = _agent_arrays(model, T)
    sB = tuple(normalise(b) for b in model.transition)
    rB = tuple(normalise(jnp.swapaxes(b, 0, 1)) for b in model.transition)
    fwd, bwd = _policy_transitions(sB, rB, policies)
    fwd, bwd = tuple(x[0] for x in fwd), tuple(x[0] for x in bwd)
    Ls = []
    for t in range(T):
        L = 1.0
        for g, a in enumerate(A):
            L = L * contract(jnp.moveaxis(a, 0, -1), [O[g][:, t]])
        Ls.append(L)
    mmp = settings.inference
    x = tuple(jnp.full((T, n), 1.0 / n, dtype).at[0].set(D[f]) for f, n in enumerate(model.num_states))
    x = mmp.reset(x)
    x, free = mmp(x, tuple(log_stable(d) for d in D), fwd, bwd, jnp.stack(Ls), T - 1)
    X = tuple(xf.T for xf in x)
    u = jnp.ones((1, T), dtype)
    outcomes = [o.T for o in O]
    learned, (Fa, Fb, Fc, Fd, Fe) = learn(model, outcomes, X, tuple(xf[None] for xf in x), u, settings.eta)
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
