"""Tasks for model fitting: a world, an agent, and the agent's free parameters.

A :class:`Task` maps a vector of parameters on an unconstrained scale,
:math:`z \\in \\mathbb{R}^d`, to an agent: each :class:`Parameter` has a
transform to its natural scale (``log``: :math:`\\theta = e^z`; ``logit``:
:math:`\\theta = 1/(1 + e^{-z})`) and a normal prior on :math:`z`.
The parameters of the built-in tasks:

======================  ============  =======================================  ===========================
name                    transform     meaning                                  prior on z
======================  ============  =======================================  ===========================
``action_precision``    log           :math:`\\alpha`, action precision           N(ln 4, 0.5)
``preference``          log           :math:`\\kappa`, scales every preference    N(0, 0.4)
                                      :math:`C \\to \\kappa C`
``learning_rate``       logit         :math:`\\eta` in (0, 1), for every count     N(0, 1)
                                      array, ``d`` included
======================  ============  =======================================  ===========================

A prior of N(ln 4, 0.5) on :math:`\\ln\\alpha` puts 95% of its mass on
:math:`\\alpha \\in [1.5, 10.7]`; N(0, 0.4) on :math:`\\ln \\kappa` on
:math:`\\kappa \\in [0.46, 2.2]`; N(0, 1) on :math:`\\mathrm{logit}\\,\\eta`
on :math:`\\eta \\in [0.12, 0.88]`.

:data:`TASKS` holds the built-in tasks (``explore-exploit``, ``maze``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.stats  # the prior density (not loaded by `import jax`)

from ..agent import Agent, Learning, Sampled
from ..inference.fixed_point import FixedPoint
from ..worlds import World, make_world

__all__ = [
    "ACTION_RULE_PARAMETERS",
    "PARAMETERS",
    "PREFERENCE_PARAMETERS",
    "TASKS",
    "Parameter",
    "Task",
    "make_task",
    "plans_afresh",
]


class Parameter(NamedTuple):
    """A free parameter: its name, transform, normal prior on the unconstrained scale, meaning."""

    name: str
    transform: str  # "log" or "logit"
    prior_mean: float
    prior_sd: float
    description: str

    def natural(self, z):
        """The parameter on its natural scale from the unconstrained ``z``."""
        return jnp.exp(z) if self.transform == "log" else jax.nn.sigmoid(z)

    def unconstrained(self, value):
        """The unconstrained ``z`` of a natural value."""
        value = jnp.asarray(value)
        return jnp.log(value) if self.transform == "log" else jnp.log(value) - jnp.log1p(-value)


#: The parameters a task may free, with their priors.
PARAMETERS = {
    "action_precision": Parameter("action_precision", "log", math.log(4.0), 0.5, "action precision alpha"),
    "preference": Parameter("preference", "log", 0.0, 0.4, "preference strength kappa (C -> kappa C)"),
    "learning_rate": Parameter("learning_rate", "logit", 0.0, 1.0, "learning rate eta of the counts"),
}


#: The parameters that :meth:`Task.agent_for` sets in the agent's action rule and nowhere else.
ACTION_RULE_PARAMETERS = frozenset({"action_precision"})

#: The parameters that :meth:`Task.agent_for` sets in the agent's preferences ``C`` and nowhere else.
PREFERENCE_PARAMETERS = frozenset({"preference"})


def plans_afresh(agent: Agent) -> bool:
    """Whether the preferences of ``agent`` change nothing it carries from one step to the next.

    True for receding-horizon planning over the policy tree
    (:class:`~actinf.inference.fixed_point.FixedPoint`) with preferences that
    are not learned and no learned habit. Its beliefs about states follow from
    the outcomes and the actions taken alone, the precision's rate relaxes
    toward ``beta`` whatever the expected free energy :math:`G` is
    (:class:`~actinf.planning.policy.GammaPrecision`, one free energy for every
    policy), and learning reads those beliefs: ``C`` reaches only each step's
    :math:`G`, policy posterior and action probabilities. Under marginal
    message passing the beliefs are averages over the policy posterior, and
    so depend on ``C``.
    """
    inference = agent.inference
    return (
        isinstance(inference, FixedPoint)
        and not inference.policies_persist
        and agent.tree is not None
        and agent.model.preference_counts is None
        and agent.model.habit_counts is None
    )


class Task(eqx.Module):
    """A world, the base agent acting in it, and the parameters a fit estimates.

    Attributes:
      name: the task's name.
      world: the :class:`~actinf.worlds.World` (the generative process of simulations).
      agent: the base :class:`~actinf.agent.Agent` (its model, inference and priors).
      parameters: the free :class:`Parameter` s, in the order of ``z``.
    """

    name: str = eqx.field(static=True)
    world: World
    agent: Agent
    parameters: tuple[Parameter, ...] = eqx.field(static=True)

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in the order of ``z``."""
        return tuple(p.name for p in self.parameters)

    @property
    def prior_mean(self) -> jax.Array:
        return jnp.asarray([p.prior_mean for p in self.parameters])

    @property
    def prior_sd(self) -> jax.Array:
        return jnp.asarray([p.prior_sd for p in self.parameters])

    def natural(self, z: jax.Array) -> jax.Array:
        """``[..., d]`` unconstrained parameters to their natural scales."""
        return jnp.stack([p.natural(z[..., i]) for i, p in enumerate(self.parameters)], axis=-1)

    def unconstrained(self, theta: jax.Array) -> jax.Array:
        """``[..., d]`` natural parameters to the unconstrained scale."""
        theta = jnp.asarray(theta)
        return jnp.stack([p.unconstrained(theta[..., i]) for i, p in enumerate(self.parameters)], axis=-1)

    @property
    def action_only(self) -> tuple[int, ...]:
        """Positions in ``z`` of the parameters that :meth:`agent_for` puts only into the
        agent's action rule (``agent.action``: ``action_precision``).

        Nothing the agent infers, plans or learns depends on them, only the
        probabilities of its actions given its policy posterior; the likelihood
        uses this to carry no tangent for them through the trials
        (:func:`~actinf.fit.likelihood.log_likelihood`).
        """
        return tuple(i for i, p in enumerate(self.parameters) if p.name in ACTION_RULE_PARAMETERS)

    @property
    def step_local(self) -> tuple[int, ...]:
        """Positions in ``z`` of the parameters that change only what the agent computes
        within each step: :attr:`action_only`, and the preference strength when the
        agent plans afresh at every step (:func:`plans_afresh`).

        The likelihood takes their derivatives step by step and carries tangents
        through the trials for the other parameters only
        (:func:`~actinf.fit.likelihood.log_likelihood`).
        """
        afresh = plans_afresh(self.agent)
        return tuple(
            i
            for i, p in enumerate(self.parameters)
            if p.name in ACTION_RULE_PARAMETERS or (afresh and p.name in PREFERENCE_PARAMETERS)
        )

    def log_prior(self, z: jax.Array) -> jax.Array:
        """:math:`\\ln p(z)` of one participant's ``z`` ``[d]`` (independent normals)."""
        return jnp.sum(jax.scipy.stats.norm.logpdf(z, self.prior_mean, self.prior_sd))

    def agent_for(self, z: jax.Array) -> Agent:
        """The agent with parameters ``z`` (unconstrained, ``[d]``); traceable in ``z``."""
        agent = self.agent
        values = dict(zip(self.names, (p.natural(z[i]) for i, p in enumerate(self.parameters)), strict=True))
        dtype = agent.model.likelihood[0].dtype
        if "action_precision" in values:
            agent = eqx.tree_at(lambda a: a.action, agent, Sampled(values["action_precision"].astype(dtype)))
        if "preference" in values:
            kappa = values["preference"].astype(dtype)
            agent = eqx.tree_at(
                lambda a: a.model.preference, agent, tuple(kappa * c for c in agent.model.preference)
            )
        if "learning_rate" in values:
            eta = values["learning_rate"].astype(dtype)
            forgetting = 0.0 if agent.learning is None else agent.learning.forgetting
            agent = eqx.tree_at(
                lambda a: a.learning, agent, Learning(eta, forgetting, eta), is_leaf=lambda x: x is None
            )
        return agent


# Learning the context counts d <- d + eta X_0 (without forgetting) moves the
# agent's context prior as (d_0 + eta n_left) / (2 d_0 + eta n): the learning
# rate acts only through d_0 / eta, the weight of the initial belief in trials.
# With the tutorial's d_0 = 0.25 that weight is under a trial for every eta, the
# belief settles within a few trials whatever eta is, and eta cannot be recovered
# (r = 0.35 on 25 trials). With d_0 = 16 it is 18 to 130 trials over the prior's
# range of eta, so the belief moves through the whole experiment, at a speed set
# by eta (docs/fitting.md, section 5).


def _explore_exploit(inference) -> Task:
    # the left machine is the better one in 9 trials of 10: the context prior is worth learning
    world = make_world("explore-exploit", left_better_probability=0.9, context_counts=(16.0, 16.0))
    return Task("explore-exploit", world, Agent(world.model, inference=inference), tuple(PARAMETERS.values()))


def _maze(inference) -> Task:
    # the rewarded arm is the left one in 9 trials of 10: the context prior is worth learning.
    # SPM's preference for reward (6 nats over a shock) makes every agent with alpha above
    # about 5 choose alike, and its alpha cannot be told apart: 1.5 keeps choices informative
    world = make_world("tmaze", context_probability=0.9, context_counts=(16.0, 16.0), reward_preference=1.5)
    return Task("maze", world, Agent(world.model, inference=inference), tuple(PARAMETERS.values()))


#: The built-in tasks by name.
TASKS: dict[str, Callable[..., Task]] = {"explore-exploit": _explore_exploit, "maze": _maze}


def make_task(name: str, inference=None) -> Task:
    """The built-in task ``name`` (see :data:`TASKS`).

    Args:
      name: ``explore-exploit`` (Smith et al. 2022's task, the left machine better
        in 90% of trials, initial context counts 16) or ``maze`` (SPM's three-arm
        maze, reward on the left in 90% of trials, initial context counts 16, a
        reward preferred to a shock by 1.5 nats rather than SPM's 6).
      inference: the agent's state inference: default
        :class:`~actinf.inference.fixed_point.FixedPoint` (about ten times faster
        to fit); :class:`~actinf.inference.mmp.MarginalMessagePassing` for SPM's scheme.

    Raises:
      ValueError: for an unknown name.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name](FixedPoint() if inference is None else inference)
