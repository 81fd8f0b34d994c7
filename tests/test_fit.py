"""The likelihood of behaviour, its gradients, MAP and Laplace.

The likelihood is checked against a direct simulation (the probability of the
chosen actions is the product of the agent's action probabilities when it
chose them), its gradient against finite differences, and the Laplace log
evidence against numerical integration over the parameters.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actinf.fit.estimate import fit_laplace
from actinf.fit.likelihood import Behaviour, log_joint, log_likelihood, sample_prior, simulate
from actinf.fit.tasks import PARAMETERS, make_task
from actinf.inference.mmp import MarginalMessagePassing
from actinf.rollout import rollout

pytestmark = pytest.mark.xdist_group("fit")  # one worker: compilations are shared

PARTICIPANTS, TRIALS = 3, 4


@functools.cache
def _task(name="explore-exploit"):
    return make_task(name)


@functools.cache
def _group(name="explore-exploit"):
    task = _task(name)
    z = sample_prior(jax.random.key(0), task, PARTICIPANTS)
    return z, simulate(jax.random.key(1), task, z, TRIALS)


@pytest.mark.parametrize("inference", ["fixed-point", "mmp"])
def test_likelihood_is_the_product_of_the_agents_action_probabilities(inference):
    """Simulate with rollout, then score the same choices: ln p = sum ln P_t(u_t)."""
    task = _task() if inference == "fixed-point" else make_task("explore-exploit", MarginalMessagePassing())
    z = jnp.asarray([np.log(3.0), 0.2, -0.5])
    traj = rollout(jax.random.key(3), task.agent_for(z), task.world, 5)
    P = np.asarray(traj.info.action_probabilities)[:, :-1]  # [N, T-1, Nu...] when each choice was made
    actions = np.asarray(traj.actions)  # [N, T-1, F]
    chosen = P[np.arange(5)[:, None], np.arange(2)[None, :], actions[..., 0], actions[..., 1]]
    behaviour = Behaviour(
        jnp.swapaxes(traj.observations, -1, -2), jnp.swapaxes(traj.actions, -1, -2), jnp.ones(5, bool)
    )
    ll = eqx.filter_jit(log_likelihood)(task, z, behaviour)
    np.testing.assert_allclose(ll, np.sum(np.log(chosen)), rtol=1e-9)


def test_padded_and_missing_choices_are_left_out():
    z, group = _group()
    one = jax.tree.map(lambda x: x[0], group)
    full = eqx.filter_jit(log_likelihood)(_task(), jnp.asarray(z[0]), one)
    padded = one._replace(trials=one.trials.at[-1].set(False))
    first = jax.tree.map(lambda x: x[:-1], one)
    np.testing.assert_allclose(
        eqx.filter_jit(log_likelihood)(_task(), jnp.asarray(z[0]), padded),
        eqx.filter_jit(log_likelihood)(_task(), jnp.asarray(z[0]), first),
        rtol=1e-12,
    )
    missing = one._replace(actions=one.actions.at[0, :, 0].set(-1))
    assert eqx.filter_jit(log_likelihood)(_task(), jnp.asarray(z[0]), missing) > full


@pytest.mark.parametrize("name", ["explore-exploit", "maze"])
def test_gradient_matches_finite_differences(name):
    task = _task(name)
    z, group = _group(name)
    one = jax.tree.map(lambda x: x[1], group)
    f = jax.jit(lambda zz: log_joint(task, zz, one))
    grad = jax.jit(jax.grad(lambda zz: log_joint(task, zz, one)))(jnp.asarray(z[1]))
    eps = 1e-6
    for i, name_i in enumerate(task.names):
        e = jnp.zeros(len(task.names)).at[i].set(eps)
        fd = (f(z[1] + e) - f(z[1] - e)) / (2 * eps)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-5, atol=1e-7, err_msg=name_i)


def _custom_and_plain(fn):
    """``fn`` (jax.grad, jax.hessian) of the likelihood with its forward-mode rule and without."""
    from actinf.fit.likelihood import _run

    task = _task()
    z, group = _group()
    one = jax.tree.map(lambda x: x[2], group)
    zz = jnp.asarray(z[2])
    custom = jax.jit(fn(lambda x: log_likelihood(task, x, one)))(zz)
    plain = jax.jit(fn(lambda x: _run(task, x, one)))(zz)
    return custom, plain


@pytest.mark.slow  # two Hessian compilations: about 30 s
def test_forward_mode_rule_gives_the_plain_hessian():
    np.testing.assert_allclose(*_custom_and_plain(jax.hessian), rtol=1e-10, atol=1e-12)


def test_forward_mode_rule_equals_plain_differentiation():
    """The likelihood's custom JVP (gradient by forward mode) gives the same gradient
    as differentiating the plain computation, and falls back to the plain JVP when
    the model's own arrays are differentiated."""
    from actinf.fit.likelihood import _run

    np.testing.assert_allclose(*_custom_and_plain(jax.grad), rtol=1e-10, atol=1e-12)
    task = _task()
    z, group = _group()
    one = jax.tree.map(lambda x: x[2], group)
    zz = jnp.asarray(z[2])

    def through_preference(scale, fn):
        scaled = eqx.tree_at(
            lambda t: t.agent.model.preference, task, tuple(scale * c for c in task.agent.model.preference)
        )
        return fn(scaled, zz, one)

    custom = jax.jit(jax.grad(lambda s: through_preference(s, log_likelihood)))(1.3)
    plain = jax.jit(jax.grad(lambda s: through_preference(s, _run)))(1.3)
    assert abs(float(plain)) > 1e-3
    np.testing.assert_allclose(custom, plain, rtol=1e-10)


@pytest.mark.parametrize(
    "spec",
    [
        "explore-exploit:action_precision=4",
        "explore-exploit:preference=1,learning_rate=0.5",
        "explore-exploit:learning_rate=0.5",
        "mmp",
    ],
    ids=["no-action-rule-parameter", "only-the-action-rule", "only-step-local", "mmp"],
)
def test_forward_mode_rule_with_and_without_step_local_parameters(spec):
    """The gradient's other branches: no parameter of the action rule (the preference's
    derivative taken step by step, the learning rate's carried), nothing but it or
    nothing but step-local parameters (no tangent carried), and marginal message
    passing (where the preference's tangent is carried)."""
    from actinf.fit.likelihood import _run
    from actinf.fit.runner import task_from_spec

    if spec == "mmp":
        task = make_task("explore-exploit", MarginalMessagePassing())
        assert [task.names[i] for i in task.step_local] == ["action_precision"]
    else:
        task = task_from_spec(spec)
    _, group = _group()
    one = jax.tree.map(lambda x: x[2], group)
    zz = jnp.asarray(task.prior_mean + 0.3)
    custom = jax.jit(jax.grad(lambda x: log_likelihood(task, x, one)))(zz)
    plain = jax.jit(jax.grad(lambda x: _run(task, x, one)))(zz)
    assert np.all(np.abs(np.asarray(plain)) > 1e-3)
    np.testing.assert_allclose(custom, plain, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["explore-exploit", "maze"])
def test_action_rule_parameters_change_only_the_action_rule(name):
    """What ``Task.action_only`` claims, and the likelihood's gradient relies on:
    moving those parameters changes the agent's action rule and nothing else."""
    task = _task(name)
    assert [task.names[i] for i in task.action_only] == ["action_precision"]
    z = task.prior_mean
    base = task.agent_for(z)
    for i in task.action_only:
        moved = task.agent_for(z.at[i].add(0.7))
        assert not np.allclose(jax.tree.leaves(moved.action), jax.tree.leaves(base.action))
        same = eqx.tree_at(lambda a: a.action, moved, base.action)
        for x, y in zip(jax.tree.leaves(same), jax.tree.leaves(base), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for i in set(range(len(task.names))) - set(task.action_only):
        moved = task.agent_for(z.at[i].add(0.7))
        rest = eqx.tree_at(lambda a: a.action, moved, base.action)
        assert any(
            not np.array_equal(np.asarray(x), np.asarray(y))
            for x, y in zip(jax.tree.leaves(rest), jax.tree.leaves(base), strict=True)
        ), task.names[i]


@pytest.mark.parametrize("name", ["explore-exploit", "maze"])
def test_the_preference_changes_nothing_the_agent_carries(name):
    """What ``Task.step_local`` claims for the preference strength when the agent plans
    afresh (receding horizon, the default tasks), and the likelihood's gradient relies
    on: moving it changes each step's expected free energy and policy posterior, and
    nothing carried from step to step or trial to trial (beliefs, precision, learned counts)."""
    task = _task(name)
    assert [task.names[i] for i in task.step_local] == ["action_precision", "preference"]
    z, group = _group(name)
    one = jax.tree.map(lambda x: x[0], group)
    k = task.names.index("preference")

    @jax.jit
    def carried(zz):
        agent = task.agent_for(zz)
        T = agent.horizon
        model, kept, plans = agent.model, [], []
        for n in range(TRIALS):
            state = agent.init(model=model)
            for t in range(T - 1):
                state, info = agent.observe(state, one.outcomes[n, :, t])
                state = agent.act(state, one.actions[n, :, t])
                plans.append(info.efe)
                kept.append((state.beliefs, state.history, state.rate, state.mask))
            model, _ = agent.learn(agent.perceive(state, one.outcomes[n, :, T - 1]))
            kept.append(eqx.tree_at(lambda m: m.preference, model, None))
        return kept, plans

    z0 = jnp.asarray(z[0])
    kept, plans = carried(z0)
    kept_moved, plans_moved = carried(z0.at[k].add(0.5))
    assert not np.allclose(np.stack(plans), np.stack(plans_moved))
    for x, y in zip(jax.tree.leaves(kept), jax.tree.leaves(kept_moved), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_every_parameter_changes_the_likelihood():
    """No parameter is inert: moving each one alone changes ln p(u | o, z)."""
    task = _task()
    z, group = _group()
    one = jax.tree.map(lambda x: x[0], group)
    f = jax.jit(lambda zz: log_likelihood(task, zz, one))
    for i, name in enumerate(task.names):
        moved = f(jnp.asarray(z[0]).at[i].add(0.5))
        assert abs(float(moved - f(jnp.asarray(z[0])))) > 1e-3, name


@pytest.mark.slow  # MAP and Hessian compilations plus a 41^3-point quadrature: about two minutes
def test_laplace_mode_covariance_and_evidence():
    """At the MAP the gradient vanishes, and the Laplace log evidence is close to
    the integral of p(u | o, z) p(z) over z (a 3-D grid over +-5 prior sd)."""
    task = _task()
    z, group = _group()
    result = fit_laplace(task, group)
    assert bool(np.all(result.converged))
    assert np.all(np.asarray(result.map.grad_norm) < 1e-3)
    np.testing.assert_allclose(result.map.theta, task.natural(result.map.z), rtol=1e-12)
    # numerical integration for participant 0
    one = jax.tree.map(lambda x: x[0], group)
    axes = [
        np.linspace(m - 5 * s, m + 5 * s, 41) for m, s in zip(task.prior_mean, task.prior_sd, strict=True)
    ]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    lj = jax.jit(jax.vmap(lambda zz: log_joint(task, zz, one)))(jnp.asarray(grid))
    volume = np.prod([a[1] - a[0] for a in axes])
    evidence = float(jax.scipy.special.logsumexp(lj) + np.log(volume))
    assert abs(float(result.log_evidence[0]) - evidence) < 0.5


def test_prior_table_is_documented():
    from actinf.fit import tasks

    for name in PARAMETERS:
        assert name in tasks.__doc__


def test_the_example_file_is_what_example_data_writes():
    """docs/fitting.md says ``examples/data/explore_exploit.csv`` is regenerated, identically,
    by ``example_data``: a change of the simulation's random draws shows here."""
    pd = pytest.importorskip("pandas")
    from actinf.fit.data import example_data

    pd.testing.assert_frame_equal(example_data(), pd.read_csv("examples/data/explore_exploit.csv"))
