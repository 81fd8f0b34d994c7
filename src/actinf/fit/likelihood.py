"""The likelihood of a participant's choices, and simulated participants.

For one participant with parameters :math:`z`, who saw outcomes :math:`o` and
chose actions :math:`u` over trials :math:`n = 1..N` of :math:`T` steps, the
agent is run on exactly what the participant saw and did (beliefs, planning and
learning carried across trials, :meth:`~actinf.agent.Agent.observe` and
:meth:`~actinf.agent.Agent.act`; at the last step of a trial, where nothing is
chosen, :meth:`~actinf.agent.Agent.perceive`), and

.. math::

   \\ln p(u \\mid o, z) = \\sum_{n} \\sum_{t < T-1} \\ln P_{n,t}(u_{n,t} \\mid o_{n, \\le t}, u_{n, <t}, z)

with :math:`P_{n,t}` the agent's action probabilities
(:meth:`~actinf.agent.Sampled.log_probabilities`). Outcomes are data, not
modelled. The function is pure, differentiable in :math:`z` and written for one
participant: ``jax.vmap`` runs a group.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..agent import agent_arrays
from ..inference.fixed_point import FixedPoint
from ..planning.tree import tree_expected_free_energy
from ..rollout import rollout
from .tasks import Task

__all__ = ["Behaviour", "log_likelihood", "log_joint", "simulate"]


class Behaviour(NamedTuple):
    """What participants saw and did (a leading participant axis ``[P]`` for a group).

    Attributes:
      outcomes: int ``[N, G, T]``, the outcome of each modality at each time of each trial.
      actions: int ``[N, F, T-1]``, the action of each factor at each move (-1: missing,
        left out of the likelihood).
      trials: bool ``[N]``, which trials are real (False: padding, for participants
        with fewer trials than the longest).
    """

    outcomes: jax.Array
    actions: jax.Array
    trials: jax.Array


def log_likelihood(task: Task, z: jax.Array, behaviour: Behaviour) -> jax.Array:
    """:math:`\\ln p(u \\mid o, z)` for one participant (see the module docstring).

    Its derivative is taken in forward mode, whichever mode asks for it: the
    gradient is the ``d`` directional derivatives along the axes of ``z``,
    carried through the trials together with the value in one pass
    (``jax.custom_jvp``). With a handful of parameters this costs less than a
    reverse pass, which would store every step of every trial and walk back
    through them (about 0.75 of the time and half the compile time on the
    explore/exploit task), and it still composes with ``jax.grad``,
    ``jax.hessian``, optax and numpyro. These forward passes stop the
    fixed-point sweeps of the state inference once the beliefs settle (the same
    posterior, in fewer sweeps; ``_settling``).

    Args:
      task: the :class:`~actinf.fit.tasks.Task`.
      z: ``[d]`` parameters on the unconstrained scale.
      behaviour: one participant's :class:`Behaviour`.
    """
    return _log_likelihood(task, z, behaviour)


@eqx.filter_custom_jvp
def _log_likelihood(task, z, behaviour):
    return _run(_settling(task), z, behaviour)


def _settling(task: Task) -> Task:
    """``task`` whose fixed-point state inference stops sweeping once the beliefs settle.

    :class:`~actinf.inference.fixed_point.FixedPoint` with ``stop_at_fixed_point``
    gives the posterior of all ``num_iter`` sweeps, bit for bit (a sweep that
    changes nothing would change nothing again), in fewer of them: one or two
    where a modality reveals a factor, as the choice in both built-in tasks
    (0.75 of the time of a value and gradient of 200 explore/exploit participants
    here). Its loop is a ``while_loop``, which forward mode goes through and
    reverse mode does not: only the forward passes (the value, and the gradient
    in ``z``) use it.
    """
    inference = task.agent.inference
    if not isinstance(inference, FixedPoint) or inference.stop_at_fixed_point:
        return task
    return eqx.tree_at(lambda t: t.agent.inference, task, inference._replace(stop_at_fixed_point=True))


@_log_likelihood.def_jvp
def _log_likelihood_jvp(primals, tangents):
    task, z, behaviour = primals
    t_task, tz, t_behaviour = tangents
    if jax.tree.leaves((t_task, t_behaviour)) or tz is None:
        # differentiated in the model's own arrays: the plain jvp, all tangents at once
        return eqx.filter_jvp(_run, primals, tangents)
    value, grad = _value_and_forward_gradient(task, z, behaviour)
    return value, grad @ tz


def _value_and_forward_gradient(task, z, behaviour):
    r"""The value and the gradient in z by forward mode, in one pass.

    The parameters that change only what the agent computes within a step
    (``task.step_local``: the action precision, and the preference strength
    :math:`\kappa` when the agent plans afresh at every step) change nothing it
    carries from step to step. Their derivatives are taken step by step: that
    of :math:`\ln P_t(u_t)` with the step's beliefs held, by a small reverse
    pass through the policy posterior and the action probabilities, given the
    derivative of every policy's expected free energy in :math:`\kappa`
    (:func:`_efe_slopes`). The tangents carried through the trials are those of
    the other parameters only (one, the learning rate, for the built-in tasks).
    """
    settling = _settling(task)
    d = z.shape[-1]
    local = set(settling.step_local)
    deep = np.asarray([i for i in range(d) if i not in local], np.int32)
    if len(deep) == 0:
        return _run(settling, z, behaviour, action_gradient=True)

    def along(direction):
        return jax.jvp(lambda zz: _run(settling, zz, behaviour, action_gradient=True), (z,), (direction,))

    (values, step_gradients), (derivatives, _) = jax.vmap(along)(jnp.eye(d, dtype=z.dtype)[deep])
    # the step-by-step gradient is zero in the other parameters (in every one, when the
    # task has no step-local parameter): they take their tangents
    return values[0], step_gradients[0].at[deep].set(derivatives)


def _preference_tangents(task: Task, z, model, positions):
    """Per position ``i`` in ``positions``, the derivative in ``z_i`` of the outcome
    model's preference arrays (``utility``, ``log_preference``) built from ``model``
    with the preferences ``task.agent_for(z)`` gives."""

    def arrays(zz):
        preference = task.agent_for(zz).model.preference
        moved = eqx.tree_at(lambda m: m.preference, model, preference)
        outcomes = agent_arrays(moved, per_policy=False, outcome_support=task.agent.outcome_support).outcomes
        return outcomes.utility, outcomes.log_preference

    eye = jnp.eye(z.shape[-1], dtype=z.dtype)[np.asarray(positions, np.int32)]
    return jax.vmap(lambda direction: jax.jvp(arrays, (z,), (direction,))[1])(eye)


def _efe_slopes(agent, before, info, tangents):
    """``[k, Np]``: the derivative of every policy's expected free energy at the step
    observed from ``before`` along each of ``k`` tangents of the preference arrays
    (:func:`_preference_tangents`), the beliefs held."""
    arrays = before.arrays

    def efe(utility, log_preference):
        outcomes = arrays.outcomes._replace(utility=utility, log_preference=log_preference)
        G, _ = tree_expected_free_energy(
            agent.tree, arrays.successors, outcomes, info.states, agent.terms, before.time, agent.horizon
        )
        return jnp.where(before.mask, G, 0.0)

    primals = (arrays.outcomes.utility, arrays.outcomes.log_preference)
    return jax.vmap(lambda u, c: jax.jvp(efe, primals, (u, c))[1])(*tangents)


def _replanned(agent, before, info, efe):
    """The policy posterior of the step observed from ``before`` with expected free
    energies ``efe`` (as :meth:`~actinf.agent.Agent.observe` computes it when the
    agent plans afresh: one free energy for every policy)."""
    beta = jnp.asarray(agent.beta, efe.dtype)
    return agent.precision(
        before.arrays.log_habit, efe, info.free_energy[0], before.mask, before.rate, beta
    ).posterior


def _run(task: Task, z: jax.Array, behaviour: Behaviour, action_gradient: bool = False):
    """ln p(u | o, z); with ``action_gradient``, also the gradient in ``z`` of the
    action probabilities of the choices made with each step's beliefs held (that
    of ``task.step_local``'s parameters, zero in the others)."""
    agent = task.agent_for(z)
    T = agent.horizon
    V = agent.model.policies
    Nu = agent.model.num_controls
    action = set(task.action_only)
    preference = [i for i in task.step_local if i not in action] if action_gradient else []

    def trial(model, xs):
        o, u, real = xs
        tangents = _preference_tangents(task, z, model, preference) if preference else None

        def step(state, t):  # observe, plan, and the log-probability of the choice made
            before = state
            state, info = agent.observe(state, o[:, t])
            taken = u[:, t]
            made = jnp.all(taken >= 0)
            actions = agent.inference.policy_actions(V, t, T)
            index = tuple(jnp.maximum(taken, 0))
            state = agent.act(state, jnp.maximum(taken, 0))
            if not action_gradient:
                chosen = agent.action.log_probabilities(info.policy_posterior, actions, Nu)[index]
                return state, jnp.where(made, chosen, 0.0)
            slopes = _efe_slopes(agent, before, info, tangents) if preference else None

            def log_chosen(zz, efe):
                posterior = _replanned(agent, before, info, efe) if preference else info.policy_posterior
                return task.agent_for(zz).action.log_probabilities(posterior, actions, Nu)[index]

            chosen, (gradient, by_efe) = jax.value_and_grad(log_chosen, argnums=(0, 1))(z, info.efe)
            if preference:  # through each policy's expected free energy
                gradient = gradient.at[np.asarray(preference)].add(slopes @ by_efe)
            return state, (jnp.where(made, chosen, 0.0), jnp.where(made, gradient, 0.0))

        state, logps = jax.lax.scan(step, agent.init(model=model), jnp.arange(T - 1))
        # nothing is chosen at the last step: update only the beliefs learning reads
        learned, _ = agent.learn(agent.perceive(state, o[:, T - 1]))

        # only the model goes on to the next trial (what next_trial starts from), and of
        # it only the arrays learning changed: the rest stays shared by every participant
        # of a vmapped group instead of being copied per participant at every trial
        def keep(new, old):
            return old if new is old else jnp.where(real, new, old)

        model = jax.tree.map(keep, learned, model)
        return model, jax.tree.map(lambda x: jnp.where(real, jnp.sum(x, axis=0), 0.0), logps)

    _, per_trial = jax.lax.scan(trial, agent.model, tuple(behaviour))
    return jax.tree.map(lambda x: jnp.sum(x, axis=0), per_trial)


def log_joint(task: Task, z: jax.Array, behaviour: Behaviour) -> jax.Array:
    """:math:`\\ln p(u \\mid o, z) + \\ln p(z)` for one participant."""
    return log_likelihood(task, z, behaviour) + task.log_prior(z)


@eqx.filter_jit
def _simulate(rng_key, task, z, trials):
    def one(key, zp):
        agent = task.agent_for(zp)
        traj = rollout(key, agent, task.world, trials)
        return traj.observations, traj.actions

    keys = jax.random.split(rng_key, z.shape[0])
    return jax.vmap(one)(keys, z)


def simulate(rng_key: jax.Array, task: Task, z: jax.Array, trials: int) -> Behaviour:
    """Participants with parameters ``z`` ``[P, d]`` doing ``trials`` trials of the task's world.

    Returns:
      the group's :class:`Behaviour` (``[P, N, ...]``).
    """
    observations, actions = _simulate(rng_key, task, jnp.asarray(z), int(trials))
    outcomes = jnp.swapaxes(observations, -1, -2)  # [P, N, G, T]
    actions = jnp.swapaxes(actions, -1, -2)  # [P, N, F, T-1]
    real = jnp.ones(outcomes.shape[:2], bool)
    return Behaviour(outcomes.astype(jnp.int32), actions.astype(jnp.int32), real)


def sample_prior(rng_key: jax.Array, task: Task, participants: int) -> jax.Array:
    """``[P, d]`` unconstrained parameters drawn from the task's prior."""
    eps = jax.random.normal(rng_key, (participants, len(task.parameters)))
    return np.asarray(task.prior_mean[None, :] + task.prior_sd[None, :] * eps)
