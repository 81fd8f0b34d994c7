"""Planning over the policy prefix tree (``actinf.planning.tree``) and the fast rollout paths.

The tree must give exactly what scoring every policy alone gives
(``FixedPoint(shared_prefixes=False)``), for any policy set, term set and time.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actinf.agent import Agent, Learning, Sampled
from actinf.inference.fixed_point import FixedPoint
from actinf.model import generative_model
from actinf.planning.efe import PYMDP_TERMS, SPM_TERMS, VALUE_TERMS, EpistemicValue, outcome_model
from actinf.planning.policy import FixedPrecision
from actinf.planning.tree import PolicyTree
from actinf.rollout import compiled_rollout, rollout, rollout_batch
from actinf.worlds.grid import GridWorld

jax.config.update("jax_enable_x64", True)


def _model(rng, Ns=(4, 3), No=(3, 2, 4), Nu=(3, 2), policies=None, T=4, counts=False):
    A = []
    for n in No:
        a = rng.random((n, *Ns)) + 0.05
        A.append(a / a.sum(0))
    B = []
    for n, u in zip(Ns, Nu, strict=True):
        b = rng.random((n, n, u)) ** 3
        B.append(b / b.sum(0))
    extra = {"likelihood_counts": [a * 4 for a in A]} if counts else {}
    return generative_model(
        A,
        B,
        [rng.normal(size=(n, T)) for n in No],
        [np.full(n, 1.0 / n) for n in Ns],
        policies=policies,
        horizon=T,
        **extra,
    )


def _full_policies(Nu, L):
    joint = list(itertools.product(*[range(n) for n in Nu]))
    seqs = list(itertools.product(joint, repeat=L))
    return np.asarray(seqs, np.int32).transpose(1, 0, 2)  # [L, Np, F]


def test_tree_of_every_sequence_has_one_node_per_prefix():
    tree = PolicyTree.from_policies(_full_policies((5,), 3), (5,))
    assert tree.num_nodes == (5, 25, 125)
    assert tree.num_policies == 125 and tree.depth == 3


def test_tree_nodes_follow_their_policies():
    rng = np.random.default_rng(0)
    V = rng.integers(0, 3, size=(3, 17, 2)).astype(np.int32)
    V[:, 5] = V[:, 4]  # a duplicate policy shares every node
    tree = PolicyTree.from_policies(V, (3, 3))
    for p in range(17):
        for k in range(3):
            node = tree.leaves[k][p]
            assert tree.moves[k][node] == tuple(V[k, p])
            if k > 0:
                assert tree.parents[k][node] == tree.leaves[k - 1][p]
    assert tree.leaves[2][4] == tree.leaves[2][5]
    assert tree.num_nodes[0] == len({tuple(v) for v in V[0]})


def _run_steps(agent, observations, actions):
    observe = eqx.filter_jit(agent.observe)
    state, infos = agent.init(), []
    for o, u in zip(observations, actions, strict=True):
        state, info = observe(state, jnp.asarray(o))
        state = agent.act(state, jnp.asarray(u))
        infos.append(info)
    return infos


@pytest.mark.parametrize(
    "terms", [SPM_TERMS, VALUE_TERMS, PYMDP_TERMS], ids=["spm-terms", "value-terms", "pymdp-terms"]
)
@pytest.mark.parametrize("policies", ["full", "irregular", "one-controlled"])
def test_tree_equals_scoring_each_policy(terms, policies):
    """Same efe, terms, policy posterior and action probabilities at every step, including
    the steps where the trial's end cuts the policies short. With one controlled factor
    and every sequence of its moves, each depth's children are the product itself (no
    gather); with two, they are gathered."""
    rng = np.random.default_rng(3)
    Nu = (3, 1) if policies == "one-controlled" else (3, 2)
    if policies == "irregular":
        V = rng.integers(0, 2, size=(2, 9, 2)).astype(np.int32)
    else:
        V = _full_policies(Nu, 2)
    model = _model(rng, Nu=Nu, policies=V, T=3, counts=True)
    kwargs = dict(trial_length=5, terms=terms, precision=FixedPrecision(), action=Sampled(3.0), learning=None)
    tree = Agent(model, inference=FixedPoint(), **kwargs)
    flat = Agent(model, inference=FixedPoint(shared_prefixes=False), **kwargs)
    assert tree.tree is not None and flat.tree is None
    obs = [[0, 1, 2], [2, 0, 1], [1, 1, 3], [0, 0, 0], [2, 1, 0]]
    acts = [[1, 0], [2, 1], [0, 1], [1, 1], [0, 0]]
    for t, (a, b) in enumerate(zip(_run_steps(tree, obs, acts), _run_steps(flat, obs, acts), strict=True)):
        for name in ("efe", "efe_terms", "policy_posterior", "action_probabilities", "free_energy"):
            np.testing.assert_allclose(
                getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-12, err_msg=f"{name} t={t}"
            )
        np.testing.assert_allclose(a.states[0], b.states[0], rtol=1e-12)


def test_agent_built_from_traced_policies_scores_each_policy():
    rng = np.random.default_rng(4)
    model = _model(rng, Ns=(4,), No=(3,), Nu=(3,), T=3)
    agent = Agent(model, inference=FixedPoint(), trial_length=4, learning=None)

    @jax.jit
    def efe_inside(m):
        inner = Agent(m, inference=FixedPoint(), trial_length=4, learning=None)
        assert inner.tree is None  # policies are traced here
        return inner.observe(inner.init(), jnp.array([1]))[1].efe

    outside = agent.observe(agent.init(), jnp.array([1]))[1].efe
    np.testing.assert_allclose(efe_inside(model), outside, rtol=1e-12)


def test_separate_modalities_sum_each_modality_information_gain():
    """EpistemicValue(joint=False) = sum_g (H[q(o_g)] - E_q(s) H[A_g(:, s)]) (pymdp's state info gain)."""
    rng = np.random.default_rng(5)
    model = _model(rng)
    A = [np.asarray(a) for a in model.likelihood]
    om = outcome_model(A, [np.zeros((a.shape[0], 1)) for a in A])
    qs = [rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(3))]
    joint_s = np.outer(*qs)
    # ambiguity: the entropy of the joint outcome given the state (sum over modalities, up to e^-16 offsets)
    joint_o = np.einsum("aij,bij,cij->abcij", *A).reshape(-1, 4, 3)
    gain = -np.sum(joint_s * -np.sum(joint_o * np.log(joint_o + np.exp(-16)), axis=0))
    for a in A:
        qo = np.einsum("oij,ij->o", a, joint_s)
        gain += -qo @ np.log(qo + np.exp(-16))
    np.testing.assert_allclose(EpistemicValue(joint=False)(om, qs, 0), -gain, rtol=1e-10)
    # the joint version differs when modalities share states (sum of marginal entropies >= joint entropy)
    assert EpistemicValue()(om, qs, 0) > EpistemicValue(joint=False)(om, qs, 0)


def _grid_agent(learning=None):
    world = GridWorld(height=3, width=4, depth=2, steps=5)
    agent = Agent(
        world.model,
        inference=FixedPoint(),
        precision=FixedPrecision(),
        learning=learning,
        trial_length=world.trial_length,
    )
    return world, agent


def test_agents_that_do_not_learn_share_one_model_in_a_batch():
    world, agent = _grid_agent()
    traj = rollout_batch(jax.random.key(0), agent, world, trials=2, num_agents=3)
    assert traj.end.agent.model.likelihood[0].shape == world.model.likelihood[0].shape  # no [K] axis
    assert traj.actions.shape == (3, 2, 4, 1)
    # the same agents one by one give the same run
    keys = jax.random.split(jax.random.key(0), 3)
    one = rollout(keys[1], agent, world, trials=2)
    np.testing.assert_array_equal(one.actions, traj.actions[1])
    world, learner = _grid_agent(Learning())
    traj = rollout_batch(jax.random.key(0), learner, world, trials=2, num_agents=3)
    assert traj.end.agent.model.likelihood[0].shape == (3, *world.model.likelihood[0].shape)


@pytest.mark.parametrize("num_agents", [None, 3])
def test_compiled_rollout_is_rollout_in_one_program(num_agents):
    from conftest import CompileCounter

    world, agent = _grid_agent()
    episode = compiled_rollout(agent, world, trials=2, num_agents=num_agents)
    got = episode(jax.random.key(7))
    if num_agents is None:
        want = rollout(jax.random.key(7), agent, world, trials=2)
    else:
        want = rollout_batch(jax.random.key(7), agent, world, trials=2, num_agents=num_agents)
    np.testing.assert_array_equal(got.actions, want.actions)
    np.testing.assert_allclose(got.info.efe, want.info.efe, rtol=1e-12)
    with CompileCounter() as counter:
        jax.block_until_ready(episode(jax.random.key(8)))
    assert counter.count == 0
