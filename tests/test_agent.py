"""The online agent: SPM equivalence step by step, fixed-point inference, learning, action choice.

The behaviour of agents in worlds (statistical bounds) is in ``test_behaviour.py``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actinf.agent import Agent, Deterministic, Learning, Sampled
from actinf.inference.fixed_point import FixedPoint
from actinf.model import generative_model
from actinf.planning.efe import VALUE_TERMS, Ambiguity, Risk
from actinf.planning.policy import FixedPrecision, GammaPrecision
from actinf.spm.io import load_case
from actinf.spm.runner import case_model, case_settings
from actinf.spm.scheme import spm_agent

DATA = Path(__file__).parent / "data" / "vbx"
#: the maze (32 trials learning d) and cases with several factors, modalities and learning
STEPWISE_CASES = ["tmaze_spm_demo", "vbx_1014", "vbx_1016", "vbx_1040", "vbx_1053", "vbx_1058"]
TOL = 1e-6


@pytest.mark.parametrize("name", STEPWISE_CASES)
def test_online_agent_matches_spm_at_every_step(name):
    """Feeding SPM's outcomes and actions one step at a time reproduces SPM's
    policy posterior, action probabilities, precision and free energies at every
    step, its beliefs at the end of each trial, and its learned counts."""
    case = load_case(DATA / f"{name}.json")
    agent = spm_agent(case_model(case), case_settings(case))
    observe, act = eqx.filter_jit(agent.observe), eqx.filter_jit(agent.act)
    next_trial = eqx.filter_jit(agent.next_trial)
    state = agent.init()
    T = agent.horizon
    for i, trial in enumerate(case.trials):
        ref = trial.outputs
        for t in range(T):
            state, info = observe(state, jnp.asarray(trial.o[:, t]))
            where = f"trial {i}, t = {t}"
            np.testing.assert_allclose(info.policy_posterior, ref["R"][:, t], atol=TOL, err_msg=where)
            np.testing.assert_allclose(info.precision, ref["w"][min(t, len(ref["w"]) - 1)], atol=TOL)
            np.testing.assert_allclose(-info.free_energy, ref["F"][:, t], rtol=TOL, atol=TOL, err_msg=where)
            np.testing.assert_allclose(-info.efe, ref["G"][:, t], rtol=TOL, atol=TOL, err_msg=where)
            if t < T - 1:
                np.testing.assert_allclose(
                    info.action_probabilities, ref["P"][..., t], atol=TOL, err_msg=where
                )
                state = act(state, jnp.asarray(trial.u[:, t]))
        for f, X in enumerate(agent.posterior_states(state)):
            np.testing.assert_allclose(X.T, ref["X"][f], atol=TOL, err_msg=f"trial {i}, X[{f}]")
        for f, x in enumerate(state.beliefs):
            np.testing.assert_allclose(np.transpose(x, (2, 1, 0)), ref["Q"][f], atol=TOL)
        state = next_trial(state)
        for key, field in (("a_post", "likelihood_counts"), ("b_post", "transition_counts")):
            for k, counts in enumerate(getattr(state.model, field) or ()):
                np.testing.assert_allclose(counts, ref[key][k], rtol=TOL, err_msg=f"trial {i}, {key}[{k}]")
        for f, counts in enumerate(state.model.initial_counts or ()):
            np.testing.assert_allclose(counts, ref["d_post"][f], rtol=TOL, err_msg=f"trial {i}, d_post[{f}]")


def _random_model(rng, Ns=(4,), No=(3,), Nu=(2,), T=4, **counts):
    A = []
    for n in No:
        a = rng.random((n, *Ns)) + 0.1
        A.append(a / a.sum(0))
    B = []
    for n, u in zip(Ns, Nu, strict=True):
        b = rng.random((n, n, u)) ** 3
        B.append(b / b.sum(0))
    D = [np.full(n, 1.0 / n) for n in Ns]
    return generative_model(A, B, [rng.normal(size=n) for n in No], D, horizon=T, **counts)


def test_fixed_point_is_the_exact_filter_for_one_factor():
    """With one factor the fixed point is Bayes' rule: q_t ∝ A[o_t] * B(u_{t-1}) q_{t-1},
    and the negative free energy is the log evidence ln p(o_t | o_<t, u_<t)."""
    rng = np.random.default_rng(0)
    model = _random_model(rng)
    agent = Agent(model, inference=FixedPoint())
    step = eqx.filter_jit(agent.step)
    state = agent.init()
    A, B = np.asarray(model.likelihood[0]), np.asarray(model.transition[0])
    prior = np.asarray(model.initial[0])
    for t, o in enumerate([0, 2, 1, 1]):
        state, info = step(jax.random.key(t), state, jnp.array([o]))
        joint = A[o] * prior
        np.testing.assert_allclose(info.states[0], joint / joint.sum(), atol=1e-12)
        np.testing.assert_allclose(info.free_energy, -np.log(joint.sum()), rtol=1e-10)
        if t < 3:
            prior = B[:, :, int(info.action[0])] @ (joint / joint.sum())


def _factored_likelihood(rng, shape):
    L = rng.random(shape) ** 4 + 1e-3
    return jnp.asarray(L / L.max())


@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 5)])
def test_fixed_point_stopping_early_gives_the_posterior_of_every_sweep(shape):
    """stop_at_fixed_point: the same posterior and free energy as all num_iter sweeps,
    for one agent and for a batch whose agents settle after different numbers of sweeps;
    forward-mode derivatives go through it."""
    rng = np.random.default_rng(5)
    full, early = FixedPoint(num_iter=16), FixedPoint(num_iter=16, stop_at_fixed_point=True)
    priors = [tuple(jnp.asarray(rng.dirichlet(np.ones(n))) for n in shape) for _ in range(6)]
    liks = [_factored_likelihood(rng, shape) for _ in range(6)]
    for prior, lik in zip(priors, liks, strict=True):
        a, b = full.posterior(prior, lik), early.posterior(prior, lik)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-15)
    batch_prior = tuple(jnp.stack(p) for p in zip(*priors, strict=True))
    batch = jax.vmap(early.posterior)(batch_prior, jnp.stack(liks))
    each = jax.vmap(full.posterior)(batch_prior, jnp.stack(liks))
    for x, y in zip(jax.tree.leaves(batch), jax.tree.leaves(each), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-14, atol=1e-15)

    def free_energy(scheme, scale):
        return scheme.posterior(priors[0], liks[0] ** scale)[1]

    _, d_full = jax.jvp(lambda s: free_energy(full, s), (1.0,), (1.0,))
    _, d_early = jax.jvp(lambda s: free_energy(early, s), (1.0,), (1.0,))
    np.testing.assert_allclose(d_early, d_full, rtol=1e-8)


def test_fixed_point_stopping_early_runs_fewer_sweeps(monkeypatch):
    """The loop stops: with a likelihood that pins both factors the beliefs settle within a
    few sweeps (here 3: the last one changes nothing), not the 16 of the plain scheme."""
    import actinf.inference.fixed_point as fixed_point

    sweeps = []
    real = fixed_point.contract

    def counted(array, vectors, skip=None):
        if skip == 0:  # once per sweep
            jax.debug.callback(lambda: sweeps.append(1))
        return real(array, vectors, skip=skip)

    monkeypatch.setattr(fixed_point, "contract", counted)
    lik = jnp.zeros((3, 4)).at[1, 2].set(1.0) + 1e-300
    prior = (jnp.full(3, 1 / 3), jnp.full(4, 1 / 4))
    q, _ = jax.jit(FixedPoint(num_iter=16, stop_at_fixed_point=True).posterior)(prior, lik)
    jax.effects_barrier()
    assert 2 <= len(sweeps) <= 3
    sweeps.clear()
    jax.jit(FixedPoint(num_iter=16).posterior)(prior, lik)
    jax.effects_barrier()
    assert len(sweeps) == 16
    assert int(jnp.argmax(q[0])) == 1 and int(jnp.argmax(q[1])) == 2


@pytest.mark.parametrize("num_iter", [16, 3, 1])
@pytest.mark.parametrize("masked", [False, True], ids=["all", "masked"])
def test_gamma_precision_with_one_free_energy_is_the_loop(num_iter, masked):
    """With the same free energy for every policy (receding horizon), the closed form of
    SPM's precision steps equals the loop run on that free energy for every policy:
    posterior, prior, precision and rate (the rate starts far from beta, so that one
    step more or less would show at 1e-5)."""
    rng = np.random.default_rng(num_iter)
    efe = jnp.asarray(rng.normal(0.0, 3.0, 6))
    log_habit = jnp.log(jnp.asarray(rng.dirichlet(np.ones(6))))
    mask = jnp.asarray([True, False, True, True, False, True]) if masked else jnp.ones(6, bool)
    precision = GammaPrecision(num_iter)
    for rate, beta in ((4.0, 1.0), (0.3, 2.0)):
        closed = precision(log_habit, efe, jnp.asarray(1.7), mask, jnp.asarray(rate), beta)
        loop = precision(log_habit, efe, jnp.full(6, 1.7), mask, jnp.asarray(rate), beta)
        for got, want in zip(closed, loop, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_fixed_point_efe_is_the_sum_over_the_predicted_future():
    """Receding horizon: a policy's expected free energy at t is the sum of risk and
    ambiguity over its next moves (inside the trial), predicted by B from the posterior."""
    rng = np.random.default_rng(1)
    model = _random_model(rng, T=3)  # policies of 2 moves
    agent = Agent(
        model, inference=FixedPoint(), trial_length=5, precision=FixedPrecision(), terms=(Risk(), Ambiguity())
    )
    state = agent.init()
    state, info = eqx.filter_jit(agent.observe)(state, jnp.array([1]))
    state = agent.act(state, jnp.array([0]))
    state, info = eqx.filter_jit(agent.observe)(state, jnp.array([2]))  # t = 1: two moves ahead fit
    A, B = np.asarray(model.likelihood[0]), np.asarray(model.transition[0])
    C = np.asarray(model.preference[0][:, 0])
    logC = C - np.log(np.exp(C).sum())
    q = np.asarray(info.states[0])
    for k, policy in enumerate(np.asarray(model.policies[:, :, 0]).T):
        s, expected = q, 0.0
        for u in policy:
            s = B[:, :, u] @ s
            qo = A @ s
            risk = qo @ (np.log(qo + np.exp(-16)) - logC)
            ambiguity = -s @ np.sum(A * np.log(A + np.exp(-16)), axis=0)
            expected += risk + ambiguity
        np.testing.assert_allclose(info.efe[k], expected, rtol=1e-10, err_msg=f"policy {k}")


def test_marginal_message_passing_refuses_trials_longer_than_its_policies():
    model = _random_model(np.random.default_rng(2), T=3)
    with pytest.raises(ValueError, match="policies have 2 moves, so the trial must have 3 time steps, not 6"):
        Agent(model, trial_length=6)


def test_deterministic_choice_is_the_most_probable_action():
    rng = np.random.default_rng(3)
    model = _random_model(rng, Nu=(3,), T=2)
    agent = Agent(model, action=Deterministic())
    state, info = agent.step(jax.random.key(0), agent.init(), jnp.array([0]))
    marginal = np.zeros(3)
    np.add.at(marginal, np.asarray(model.policies[0, :, 0]), np.asarray(info.policy_posterior))
    assert int(info.action[0]) == int(np.argmax(marginal))
    np.testing.assert_array_equal(info.action_probabilities, np.eye(3)[np.argmax(marginal)])


def test_sampled_choice_follows_the_action_probabilities():
    """Over many keys, sampled actions occur with the agent's action probabilities."""
    rng = np.random.default_rng(4)
    model = _random_model(rng, Nu=(3,), T=2)
    agent = Agent(model, action=Sampled(alpha=1.0))
    state = agent.init()
    keys = jax.random.split(jax.random.key(0), 4000)
    _, infos = jax.jit(jax.vmap(lambda k: agent.step(k, state, jnp.array([1]))))(keys)
    P = np.asarray(infos.action_probabilities[0])
    freq = np.bincount(np.asarray(infos.action[:, 0]), minlength=3) / 4000
    # binomial standard error at n = 4000 is at most 0.008: allow 4 of them
    np.testing.assert_allclose(freq, P, atol=0.032)


def test_forgetting_decays_earlier_evidence_toward_the_prior():
    """a' = a0 + (1 - phi)(a - a0) + eta * delta: with phi = 1 only the last trial counts."""
    rng = np.random.default_rng(5)
    model = _random_model(rng, T=2, initial_counts=[np.full(4, 1.0)])
    d0 = np.asarray(model.initial_counts[0])

    step = eqx.filter_jit(lambda agent, *args: agent.step(*args))
    next_trial = eqx.filter_jit(lambda agent, state: agent.next_trial(state))

    def after(phi, outcomes):
        # phi as an array: one compilation serves every value
        agent = Agent(model, learning=Learning(rate=1.0, forgetting=jnp.asarray(phi)))
        state = agent.init()
        for o in outcomes:
            for t in range(2):
                state, _ = step(agent, jax.random.key(t), state, jnp.array([o]))
            last = agent.posterior_states(state)[0][0]
            state = next_trial(agent, state)
        return np.asarray(state.model.initial_counts[0]), np.asarray(last)

    kept, _ = after(0.0, [0, 2])
    forgot, last = after(1.0, [0, 2])
    np.testing.assert_allclose(forgot, d0 + last, rtol=1e-12)
    assert not np.allclose(kept, forgot)
    half, _ = after(0.5, [0, 2])
    np.testing.assert_allclose(half, 0.5 * (kept + forgot), rtol=1e-12)


def test_no_learning_keeps_the_counts():
    model = _random_model(np.random.default_rng(6), T=2, initial_counts=[np.full(4, 1.0)])
    agent = Agent(model, learning=None)
    state = agent.init()
    for t in range(2):
        state, _ = agent.step(jax.random.key(t), state, jnp.array([1]))
    state = agent.next_trial(state)
    np.testing.assert_array_equal(state.model.initial_counts[0], model.initial_counts[0])


@pytest.mark.parametrize("inference", [None, FixedPoint()], ids=["mmp", "fixed-point"])
def test_agents_vmap_and_differentiate(inference):
    """Many agents are jax.vmap over keys; action probabilities are differentiable in alpha."""
    model = _random_model(np.random.default_rng(7), Ns=(3, 2), No=(2, 3), Nu=(2, 1), T=3)
    kwargs = {} if inference is None else {"inference": inference}
    agent = Agent(model, **kwargs)
    state = agent.init()
    keys = jax.random.split(jax.random.key(0), 5)
    _, infos = jax.jit(jax.vmap(lambda k: agent.step(k, state, jnp.array([0, 1]))))(keys)
    assert infos.action.shape == (5, 2)
    assert infos.states[0].shape == (5, 3)
    assert np.all(np.isfinite(infos.efe_terms))

    @jax.jit
    def log_p(alpha):
        a = eqx.tree_at(lambda x: x.action, agent, Sampled(alpha))
        _, info = a.observe(state, jnp.array([0, 1]))
        return jnp.log(info.action_probabilities[0, 0])

    grad = jax.grad(log_p)(jnp.asarray(2.0))
    eps = 1e-6
    fd = (log_p(2.0 + eps) - log_p(2.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_value_terms_split_the_same_expected_free_energy():
    """-(pragmatic + epistemic) - novelty = risk + ambiguity - novelty, policy by policy."""
    model = _random_model(
        np.random.default_rng(8), Ns=(3, 2), No=(2, 3), Nu=(2, 1), T=3, likelihood_counts=None
    )
    agent = Agent(model)
    split = eqx.tree_at(lambda a: a.terms, agent, VALUE_TERMS)
    observe = eqx.filter_jit(lambda a, s, o: a.observe(s, o))
    _, info = observe(agent, agent.init(), jnp.array([0, 1]))
    _, other = observe(split, split.init(), jnp.array([0, 1]))
    np.testing.assert_allclose(other.efe, info.efe, rtol=1e-12)
    # epistemic value is an information gain: never negative
    assert np.all(-np.asarray(other.efe_terms[:, 1]) >= -1e-12)


def test_fixed_point_learns_the_initial_state_from_the_whole_trial():
    """The filter's posterior at t = 0 has seen nothing; d must learn from the trial's
    end (backward smoothing). A hint that the left machine is better moves d left,
    and no expected free energy is swamped by the initial-state novelty."""
    from actinf.worlds.explore_exploit import HINT_LEFT, explore_exploit_model

    model = explore_exploit_model()
    agent = Agent(model, inference=FixedPoint())
    observe, act = eqx.filter_jit(agent.observe), eqx.filter_jit(agent.act)
    state, info = observe(agent.init(), jnp.array([0, 0, 0]))
    state = act(state, jnp.array([0, 1]))  # ask for the hint
    state, info = observe(state, jnp.array([HINT_LEFT, 0, 1]))
    assert np.all(np.abs(np.asarray(info.efe)) < 1e3)
    state = act(state, jnp.array([0, 2]))  # play left
    state, _ = observe(state, jnp.array([0, 2, 2]))  # win
    d0 = np.asarray(model.initial_counts[0])
    d1 = np.asarray(eqx.filter_jit(agent.next_trial)(state).model.initial_counts[0])
    assert d1[0] - d0[0] > 0.9 and d1[1] - d0[1] < 0.1


@pytest.mark.parametrize(
    "inference",
    [FixedPoint(), FixedPoint(shared_prefixes=False), None],
    ids=["fixed-point-tree", "fixed-point", "mmp"],
)
def test_perceive_leaves_the_trial_to_learn_what_observe_does(inference):
    """At the last step of a trial, updating the beliefs without planning
    (``perceive``) gives the next trial the same counts, history and outcomes as
    observing and planning; with marginal message passing it is ``observe``."""
    from actinf.worlds.explore_exploit import HINT_LEFT, explore_exploit_model

    model = explore_exploit_model(context_counts=(2.0, 3.0))
    agent = Agent(model) if inference is None else Agent(model, inference=inference)
    state, _ = agent.observe(agent.init(), jnp.array([0, 0, 0]))
    state = agent.act(state, jnp.array([0, 1]))  # ask for the hint
    state, _ = agent.observe(state, jnp.array([HINT_LEFT, 0, 1]))
    state = agent.act(state, jnp.array([0, 2]))  # play left
    last = jnp.array([0, 2, 2])  # win
    planned, _ = agent.observe(state, last)
    perceived = agent.perceive(state, last)
    for field in ("time", "history", "likelihood", "outcomes", "actions"):
        for mine, theirs in zip(
            jax.tree.leaves(getattr(perceived, field)), jax.tree.leaves(getattr(planned, field)), strict=True
        ):
            np.testing.assert_allclose(mine, theirs, atol=1e-12, err_msg=field)
    d_planned = agent.next_trial(planned).model.initial_counts[0]
    d_perceived = agent.next_trial(perceived).model.initial_counts[0]
    assert float(d_planned[0]) > 2.5  # the win on the left was learned
    np.testing.assert_allclose(d_perceived, d_planned, atol=1e-12)


def test_outcome_support_is_the_joint_outcomes_some_state_can_produce():
    """The explore/exploit model: 3 x 3 x 4 joint outcomes, of which a state can produce
    7 (start; a hint either way; a win or a loss on either machine); none is left out
    with learned likelihood counts, and a model whose every outcome can occur has no support."""
    from actinf.planning.efe import joint_likelihood, outcome_support
    from actinf.worlds import make_world

    model = make_world("explore-exploit").model
    support = outcome_support(model.likelihood)
    assert support is not None and len(support) == 7
    joint = np.asarray(joint_likelihood(model.likelihood))
    left_out = np.setdiff1d(np.arange(36), support)
    assert np.all(joint[left_out] == 0) and np.all(joint[list(support)].max(axis=1) > 0)
    assert Agent(model, inference=FixedPoint()).outcome_support == support
    counts = tuple(10.0 * a for a in model.likelihood)
    learned = dataclasses.replace(model, likelihood_counts=counts)
    assert Agent(learned, inference=FixedPoint()).outcome_support is None
    dense = _random_model(np.random.default_rng(3), T=3, likelihood_counts=None)
    assert outcome_support(dense.likelihood) is None


@pytest.mark.parametrize("inference", [FixedPoint(), None])
def test_leaving_out_impossible_outcomes_keeps_every_free_energy(inference):
    """An agent predicting only the joint outcomes some state produces computes the same
    expected free energies (every term), precisions and action probabilities as one
    predicting all of them, at every step of a trial, for both inference schemes."""
    from actinf.worlds import make_world

    model = make_world("explore-exploit").model
    kwargs = {} if inference is None else {"inference": inference}
    pruned = Agent(model, **kwargs)
    full = Agent(model, outcome_support=tuple(range(36)), **kwargs)
    assert pruned.outcome_support is not None and len(pruned.outcome_support) == 7

    def trial(agent):
        state, infos = agent.init(), []
        for o, u in (([0, 0, 0], [1]), ([1, 0, 1], [2]), ([0, 2, 2], None)):
            state, info = agent.observe(state, jnp.asarray(o))
            infos.append(info)
            if u is not None:
                state = agent.act(state, jnp.asarray([0, *u]))
        return infos

    for t, (a, b) in enumerate(zip(trial(pruned), trial(full), strict=True)):
        for name in ("efe", "efe_terms", "policy_posterior", "precision", "action_probabilities"):
            np.testing.assert_allclose(
                getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-12, err_msg=f"{name} at t={t}"
            )


def test_a_likelihood_changed_after_its_support_is_computed_gives_nan():
    """An agent whose likelihood is swapped (eqx.tree_at) for one where a left-out joint
    outcome can occur says so with a NaN expected free energy, not a wrong number."""
    from actinf.worlds import make_world

    model = make_world("explore-exploit").model
    agent = Agent(model, inference=FixedPoint())
    hint = np.asarray(model.likelihood[0]).copy()
    hint[:, :, 0] = 1.0 / 3.0  # a hint may now come at the start
    changed = eqx.tree_at(lambda a: a.model.likelihood, agent, (jnp.asarray(hint), *model.likelihood[1:]))
    _, ok = agent.observe(agent.init(), jnp.asarray([0, 0, 0]))
    _, bad = changed.observe(changed.init(), jnp.asarray([0, 0, 0]))
    assert np.all(np.isfinite(ok.efe)) and np.all(np.isnan(bad.efe))
