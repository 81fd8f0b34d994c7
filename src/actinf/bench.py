"""Speed of the fixed-point agent, side by side with pymdp: the library side of ``actinf bench``.

Each *workload* is a generative model (a three-arm maze or an open grid), a
policy depth ``L`` and a number of agents ``K``. Its arrays (A, B, C, D and the
policies) are built once in NumPy (:func:`maze_problem`, :func:`grid_problem`)
and handed to both libraries:

* actinf: :class:`~actinf.agent.Agent` with
  :class:`~actinf.inference.fixed_point.FixedPoint` (``num_iter`` = 16, stopping
  early once a sweep changes nothing, which gives the posterior of all 16),
  :class:`~actinf.planning.policy.FixedPrecision` (``beta = 1 / gamma``),
  :data:`~actinf.planning.efe.PYMDP_TERMS` (pragmatic value and the state
  information gain summed over modalities), :class:`~actinf.agent.Sampled`
  (``alpha``), no learning; episodes with :func:`~actinf.rollout.rollout_batch`
  in a :class:`~actinf.worlds.base.CategoricalWorld` built from the same arrays;
* pymdp 1.0 (``pip install 'actinf[bench]'``): ``pymdp.agent.Agent`` with
  ``inference_algo="fpi"``, ``num_iter=16``, ``gamma``, ``alpha``,
  ``action_selection="stochastic"``, ``sampling_mode="marginal"``, utility and
  state information gain, no parameter information gain, no learning; episodes
  with ``pymdp.envs.rollout.rollout`` in a ``pymdp.envs.env.PymdpEnv`` built from
  the same arrays.

Both sides then compute the same action probabilities:
:func:`check_agreement` feeds one observation and action sequence to both (in
float64) and compares the policy posteriors and the action probabilities.
actinf normalises the preferences ``C`` with a log-softmax and pymdp uses them
raw: that shifts every policy's expected free energy by the same constant, so
the policy posterior is the same. actinf's receding-horizon planner stops at
the end of the trial, pymdp always looks ``L`` moves ahead, so only steps with
``t + L <= T - 1`` are compared.

:func:`run_benchmark` then times, for each workload and in the same process,
whole episodes of ``steps`` time steps for the batch of ``K`` agents, each
library's episode one compiled call (``jax.jit`` of the agent's arrays,
:func:`compile_episode`), alternating the
two libraries, after a warm-up call whose time is the *first-call latency*
(trace, compile and first run). The rate is agent-steps per second,
``K * steps / seconds``, median and interquartile range over the repeats.
Both calls return the actions and observations of the episode (the rest of
the trajectory is left to the compiler to drop).

Floating-point work of the dense computation, per agent-step, with a planner
that shares the computation of policies with a common prefix (one factor of
``Ns`` states, ``Nu`` moves, policies of depth ``L``, modalities of ``No_g``
outcomes; see :func:`flops_per_agent_step`):

.. math::

   \\text{flops} = 2N_s^2 + \\textstyle\\sum_g N_s + c_1 N_s
     + \\sum_{k=1}^{L} N_u^k \\Big(2N_s^2 + \\sum_g (2 N_{o,g} N_s + 4 N_{o,g}) + 2 N_s\\Big)

(the prior :math:`B(u)q`, the likelihood of the outcome and the softmax of
the posterior; then, for each of the :math:`N_u + \\dots + N_u^L` nodes of the
tree of policy prefixes, the prediction :math:`B(u)q`, each modality's
predicted outcomes :math:`A_g q`, their entropy and expected utility, and the
expected ambiguity :math:`H\\cdot q`). Achieved GFLOP/s is this count times the
measured agent-steps per second; the machine's peak is the best rate of a
float32 2048 x 2048 matrix product (:func:`matmul_peak`).

Nothing here prints; the command line adds the messages (:mod:`actinf.cli`).
pymdp is imported only inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import importlib.util
import itertools
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .agent import Agent, Sampled
from .inference.fixed_point import FixedPoint
from .model import generative_model
from .models.tmaze import CENTRE, ModelLabels, tmaze_model
from .planning.efe import PYMDP_TERMS
from .planning.policy import FixedPrecision
from .rollout import rollout_batch
from .worlds.base import CategoricalWorld
from .worlds.grid import GridWorld

__all__ = [
    "AGREEMENT_RTOL",
    "AgreementError",
    "Problem",
    "Workload",
    "check_agreement",
    "flops_per_agent_step",
    "full_workloads",
    "grid_problem",
    "import_time",
    "machine_info",
    "markdown_report",
    "matmul_peak",
    "maze_problem",
    "pymdp_available",
    "quick_workloads",
    "run_benchmark",
]

#: Relative tolerance on the action probabilities and policy posteriors of the two agents.
#: Not 1e-6: actinf computes expected entropies as SPM's ``spm_MDP_G`` does,
#: :math:`\sum_o q\ln(q + e^{-16})`, pymdp exactly, which moves each policy's expected
#: free energy by up to about :math:`e^{-16} \approx 10^{-7}` nats per outcome and step
#: (measured on the maze: 1e-7 to 2e-7 between policies); ``gamma`` and ``alpha``
#: amplify that to about 1e-5 relative in the action probabilities. Without the
#: :math:`e^{-16}` the two agree to 1e-9.
AGREEMENT_RTOL = 1e-4
#: Absolute floor of that comparison (probabilities below it count as equal).
AGREEMENT_ATOL = 1e-9
#: Policy precision gamma and action precision alpha of both agents.
GAMMA = 4.0
ALPHA = 16.0
#: Fixed-point iterations of both agents.
NUM_ITER = 16
#: Time steps per episode (agent-steps per agent per timed call).
STEPS = 16

#: Targets of the issue, marked in the table.
TARGET_RATIO = 10.0
TARGET_FIRST_CALL_S = 1.0
TARGET_IMPORT_S = 1.0
TARGET_PEAK_FRACTION = 1.0 / 3.0

PYMDP_REQUIREMENT = "inferactively-pymdp==1.0.4"


class AgreementError(RuntimeError):
    """The two agents computed different policy posteriors or action probabilities."""


# ----------------------------------------------------------------------------- problems


class Problem(NamedTuple):
    """The arrays of one generative model, shared by both libraries (NumPy, float64).

    Attributes:
      name: e.g. ``"maze L=2"``.
      likelihood: per modality ``A_g`` ``[No_g, Ns_1, ..., Ns_F]``.
      transition: per factor ``B_f`` ``[Ns_f, Ns_f, Nu_f]``.
      preference: per modality ``C_g`` ``[No_g]`` (log, unnormalised, constant in time).
      initial: per factor ``D_f`` ``[Ns_f]`` (the agent's prior and the world's).
      policies: int ``[Np, L, F]`` (pymdp's layout; actinf's ``V`` is its transpose ``[L, Np, F]``).
    """

    name: str
    likelihood: tuple
    transition: tuple
    preference: tuple
    initial: tuple
    policies: np.ndarray

    @property
    def depth(self) -> int:
        return int(self.policies.shape[1])

    @property
    def num_policies(self) -> int:
        return int(self.policies.shape[0])


def _all_sequences(num_controls: Sequence[int], depth: int) -> np.ndarray:
    """Every sequence of ``depth`` moves of the first factor (others: control 0), ``[Np, L, F]``."""
    moves = np.asarray(list(itertools.product(range(num_controls[0]), repeat=depth)), np.int64)
    policies = np.zeros((moves.shape[0], depth, len(num_controls)), np.int64)
    policies[:, :, 0] = moves
    return policies


def maze_problem(depth: int) -> Problem:
    """SPM's three-arm maze (:func:`actinf.models.tmaze.tmaze_model`'s A, B and C) with every
    sequence of ``depth`` moves as policies (``4 ** depth``).

    Factors: location (4), context (2, uncontrolled); modalities: where (5), reward (3).
    The agent starts at the centre and the context is "reward left" or "reward right"
    with probability 1/2 (its prior is the world's).
    """
    with jax.enable_x64(True):  # SPM's numbers exactly, in float64
        model = tmaze_model()
    A = tuple(np.asarray(a, np.float64) for a in model.likelihood)
    B = tuple(np.asarray(b, np.float64) for b in model.transition)
    C = tuple(np.asarray(c, np.float64)[:, 0] for c in model.preference)
    D = (np.eye(4)[CENTRE], np.full(2, 0.5))
    return Problem(f"maze L={depth}", A, B, C, D, _all_sequences([b.shape[-1] for b in B], depth))


def grid_problem(size: int, depth: int, noise: float = 0.1) -> Problem:
    """An open ``size`` x ``size`` grid (:class:`actinf.worlds.GridWorld`'s moves and
    preferences) with every sequence of ``depth`` moves as policies (``5 ** depth``).

    One factor, the cell (``size**2`` states; moves stay, up, down, left, right); one
    modality, the cell seen with probability ``1 - noise`` and any cell otherwise
    (``A = (1 - noise) I + noise / Ns``); log preference 4 for the goal (bottom-right
    corner) minus the distance to it; the agent starts in the top-left corner.
    """
    with jax.enable_x64(True):
        world = GridWorld(height=size, width=size, depth=1)
    model = world.model
    n = size * size
    A = ((1.0 - noise) * np.eye(n) + noise / n,)
    B = (np.asarray(model.transition[0], np.float64),)
    C = (np.asarray(model.preference[0], np.float64)[:, 0],)
    D = (np.asarray(model.initial[0], np.float64),)
    return Problem(f"grid {size}x{size} L={depth}", A, B, C, D, _all_sequences([5], depth))


@dataclasses.dataclass(frozen=True)
class Workload:
    """One line of the table: a problem, a number of agents and an episode length.

    Attributes:
      world: ``"maze"`` or ``"grid"``.
      size: grid side (ignored for the maze).
      depth: policy depth ``L``.
      agents: agents ``K`` (each in its own copy of the world).
      steps: time steps per episode.
    """

    world: str
    size: int
    depth: int
    agents: int
    steps: int = STEPS

    @property
    def name(self) -> str:
        return (
            f"maze L={self.depth}" if self.world == "maze" else f"grid {self.size}x{self.size} L={self.depth}"
        )

    def problem(self) -> Problem:
        return maze_problem(self.depth) if self.world == "maze" else grid_problem(self.size, self.depth)


def full_workloads() -> list[Workload]:
    """The maze and the 5x5, 8x8 and 10x10 grids, ``L`` = 1, 2, 3, with 1 and 256 agents."""
    out = []
    for world, size in (("maze", 0), ("grid", 5), ("grid", 8), ("grid", 10)):
        for depth in (1, 2, 3):
            for agents in (1, 256):
                out.append(Workload(world, size, depth, agents))
    return out


def quick_workloads() -> list[Workload]:
    """A smoke test: the maze with ``L`` = 1, 1 and 16 agents, and the 5x5 grid with ``L`` = 1,
    16 agents (each line costs a compilation per library, a few seconds)."""
    return [Workload("maze", 0, 1, 1), Workload("maze", 0, 1, 16), Workload("grid", 5, 1, 16)]


# ------------------------------------------------------------------------------- actinf


class EpisodeWorld(CategoricalWorld):
    """A :class:`~actinf.worlds.base.CategoricalWorld` whose trials last ``steps`` time steps."""

    steps: int = eqx.field(static=True)

    @property
    def trial_length(self) -> int:
        return self.steps


def _actinf_model(problem: Problem):
    dtype = jnp.zeros(()).dtype  # float64 under jax_enable_x64, else float32
    cast = lambda arrays: [jnp.asarray(a, dtype) for a in arrays]  # noqa: E731
    return generative_model(
        cast(problem.likelihood),
        cast(problem.transition),
        cast(problem.preference),
        cast(problem.initial),
        policies=np.transpose(problem.policies, (1, 0, 2)).astype(np.int32),
    )


def _labels(problem: Problem):
    return ModelLabels(
        tuple(f"factor {f}" for f in range(len(problem.transition))),
        tuple(tuple(str(s) for s in range(b.shape[0])) for b in problem.transition),
        tuple(f"modality {g}" for g in range(len(problem.likelihood))),
        tuple(tuple(str(o) for o in range(a.shape[0])) for a in problem.likelihood),
        tuple(tuple(str(u) for u in range(b.shape[-1])) for b in problem.transition),
    )


def actinf_agent_and_world(problem: Problem, steps: int, *, gamma: float = GAMMA, alpha: float = ALPHA):
    """The actinf :class:`~actinf.agent.Agent` and world for ``problem``, trials of ``steps`` steps.

    The arrays take JAX's default float type (float64 under ``jax_enable_x64``).
    """
    model = _actinf_model(problem)
    agent = Agent(
        model,
        inference=FixedPoint(num_iter=NUM_ITER, stop_at_fixed_point=True),
        precision=FixedPrecision(),
        terms=PYMDP_TERMS,
        action=Sampled(float(alpha)),
        learning=None,
        beta=1.0 / gamma,
        trial_length=int(steps),
    )
    world = EpisodeWorld(process=model, model=model, labels=_labels(problem), steps=int(steps))
    return agent, world


def actinf_episode(workload: Workload, problem: Problem | None = None) -> Callable[[Any], Any]:
    """``run(rng_key) -> (actions, observations)``: one episode of ``workload.agents`` actinf
    agents, one compiled call (:func:`~actinf.rollout.rollout_batch`, one trial)."""
    problem = workload.problem() if problem is None else problem
    agent, world = actinf_agent_and_world(problem, workload.steps)
    num_agents = workload.agents

    def episode(agent_and_world, rng_key):
        agent, world = agent_and_world
        traj = rollout_batch(rng_key, agent, world, trials=1, num_agents=num_agents)
        return traj.actions, traj.observations

    return compile_episode(episode, (agent, world))


def compile_episode(episode: Callable[[Any, Any], Any], tree: Any) -> Callable[[Any], Any]:
    """``run(rng_key) = episode(tree, rng_key)``, compiled once: the arrays of ``tree`` (an
    agent, a world) are split from the rest once, here, and passed to ``jax.jit`` as
    arguments, so that a call costs JAX's dispatch only (``equinox.filter_jit`` would sort
    the whole tree again at every call: about 0.1 ms, a third of a one-agent maze episode)."""
    arrays, rest = eqx.partition(tree, eqx.is_array)
    compiled = jax.jit(lambda arrays, rng_key: episode(eqx.combine(arrays, rest), rng_key))
    return lambda rng_key: compiled(arrays, rng_key)


# -------------------------------------------------------------------------------- pymdp


def pymdp_available() -> bool:
    """Whether pymdp 1.x (``inferactively-pymdp``) can be imported."""
    return importlib.util.find_spec("pymdp") is not None


def _pymdp_version() -> str | None:
    try:
        return importlib.metadata.version("inferactively-pymdp")
    except importlib.metadata.PackageNotFoundError:
        return None


def pymdp_agent_and_env(problem: Problem, agents: int, *, gamma: float = GAMMA, alpha: float = ALPHA):
    """pymdp's ``Agent`` (batch of ``agents``) and ``PymdpEnv`` for ``problem``, same settings."""
    from pymdp.agent import Agent as PymdpAgent
    from pymdp.envs.env import PymdpEnv

    dtype = jnp.zeros(()).dtype
    cast = lambda arrays: [jnp.asarray(a, dtype) for a in arrays]  # noqa: E731
    agent = PymdpAgent(
        A=cast(problem.likelihood),
        B=cast(problem.transition),
        C=cast(problem.preference),
        D=cast(problem.initial),
        policies=jnp.asarray(problem.policies, jnp.int32),
        policy_len=problem.depth,
        gamma=gamma,
        alpha=alpha,
        use_utility=True,
        use_states_info_gain=True,
        use_param_info_gain=False,
        action_selection="stochastic",
        sampling_mode="marginal",
        inference_algo="fpi",
        num_iter=NUM_ITER,
        batch_size=int(agents),
    )
    env = PymdpEnv(A=cast(problem.likelihood), B=cast(problem.transition), D=cast(problem.initial))
    return agent, env


def pymdp_episode(workload: Workload, problem: Problem | None = None) -> Callable[[Any], Any]:
    """``run(rng_key) -> (actions, observations)``: one episode of ``workload.steps`` time steps
    of pymdp's batched agent (``pymdp.envs.rollout.rollout``, ``steps - 1`` transitions),
    one compiled call."""
    from pymdp.envs.rollout import rollout

    problem = workload.problem() if problem is None else problem
    agent, env = pymdp_agent_and_env(problem, workload.agents)
    transitions = workload.steps - 1

    def episode(agent, rng_key):
        _, info = rollout(agent, env, transitions, rng_key)
        return info["action"], info["observation"]

    return compile_episode(episode, agent)


# ---------------------------------------------------------------------------- agreement


def _observation_sequence(problem: Problem, length: int, seed: int):
    """Observations ``[length, G]`` and actions ``[length, F]`` of a random walk in the process."""
    rng = np.random.default_rng(seed)
    states = [int(rng.choice(len(d), p=d)) for d in problem.initial]
    observations, actions = [], []
    for _ in range(length):
        observations.append(
            [int(rng.choice(a.shape[0], p=a[(slice(None), *states)])) for a in problem.likelihood]
        )
        u = [int(rng.integers(b.shape[-1])) for b in problem.transition]
        actions.append(u)
        states = [
            int(rng.choice(b.shape[0], p=b[:, s, uf]))
            for b, s, uf in zip(problem.transition, states, u, strict=True)
        ]
    return np.asarray(observations, np.int32), np.asarray(actions, np.int32)


def _actinf_trace(problem: Problem, observations, actions, gamma, alpha):
    length, depth = observations.shape[0], problem.depth
    agent, _ = actinf_agent_and_world(problem, length + depth, gamma=gamma, alpha=alpha)
    observe = eqx.filter_jit(lambda agent, state, o: agent.observe(state, o))
    act = eqx.filter_jit(lambda agent, state, u: agent.act(state, u))
    state = agent.init()
    posteriors, probabilities, efes = [], [], []
    for o, u in zip(observations, actions, strict=True):
        state, info = observe(agent, state, jnp.asarray(o))
        state = act(agent, state, jnp.asarray(u))
        P = np.asarray(info.action_probabilities, np.float64)
        F = P.ndim
        probabilities.append([P.sum(axis=tuple(k for k in range(F) if k != f)) for f in range(F)])
        posteriors.append(np.asarray(info.policy_posterior, np.float64))
        efes.append(np.asarray(info.efe, np.float64))
    return posteriors, probabilities, efes


def _pymdp_trace(problem: Problem, observations, actions, gamma, alpha):
    from pymdp import control
    from pymdp.maths import log_stable

    agent, _ = pymdp_agent_and_env(problem, 1, gamma=gamma, alpha=alpha)

    @eqx.filter_jit
    def plan(agent, prior, o):
        qs = agent.infer_states([o[g][None, None] for g in range(o.shape[0])], prior)
        q_pi, neg_efe = agent.infer_policies(qs)
        marginals = control.get_marginals(q_pi[0], agent.policies.policy_arr, agent.num_controls)
        probs = [jax.nn.softmax(agent.alpha[0] * log_stable(m)) for m in marginals]
        return qs, q_pi[0], neg_efe[0], probs

    prior_next = eqx.filter_jit(lambda agent, u, qs: agent.update_empirical_prior(u[None], qs))
    prior = agent.D
    posteriors, probabilities, efes = [], [], []
    for o, u in zip(observations, actions, strict=True):
        qs, q_pi, neg_efe, probs = plan(agent, prior, jnp.asarray(o))
        prior = prior_next(agent, jnp.asarray(u), qs)
        posteriors.append(np.asarray(q_pi, np.float64))
        probabilities.append([np.asarray(p, np.float64) for p in probs])
        efes.append(-np.asarray(neg_efe, np.float64))
    return posteriors, probabilities, efes


def _relative_errors(a: np.ndarray, b: np.ndarray) -> tuple[float, float, bool]:
    diff = np.abs(a - b)
    scale = np.maximum(np.abs(b), AGREEMENT_ATOL / AGREEMENT_RTOL)
    passed = bool(np.all(diff <= AGREEMENT_ATOL + AGREEMENT_RTOL * np.abs(b)))
    return float(diff.max(initial=0.0)), float((diff / scale).max(initial=0.0)), passed


def check_agreement(
    problem: Problem,
    pymdp_problem: Problem | None = None,
    *,
    steps: int = 4,
    seed: int = 0,
    gamma: float = GAMMA,
    alpha: float = ALPHA,
    raise_on_failure: bool = True,
) -> dict[str, Any]:
    """Feed one observation and action sequence to an actinf and a pymdp agent (float64)
    and compare, at each of ``steps`` steps, the policy posteriors and the action
    probabilities of every controlled factor.

    Args:
      problem: actinf's arrays (and pymdp's, unless ``pymdp_problem`` is given).
      pymdp_problem: other arrays for pymdp (to check that a difference is caught).
      steps: steps compared; actinf's trials last ``steps + L`` steps so that every
        compared step plans ``L`` moves ahead, as pymdp does.
      seed: seed of the random walk that makes the observations and actions.
      gamma, alpha: policy and action precision.
      raise_on_failure: raise :class:`AgreementError` when they disagree.

    Returns:
      ``{"workload", "steps", "max_abs_error", "max_rel_error", "policy_max_rel_error",
      "efe_offset_spread", "rtol", "atol", "passed"}``: the largest absolute and relative
      differences of the action probabilities, the largest relative difference of
      the policy posteriors, and the spread over policies of actinf's minus pymdp's
      expected free energy (a constant offset, from the normalisation of ``C``, is expected).

    Raises:
      AgreementError: if an action probability or a policy posterior differs by more
        than ``AGREEMENT_ATOL + AGREEMENT_RTOL * |pymdp's|`` (with ``raise_on_failure``).
    """
    other = problem if pymdp_problem is None else pymdp_problem
    observations, actions = _observation_sequence(problem, steps, seed)
    with jax.enable_x64(True), jax.numpy_rank_promotion("allow"):
        a_post, a_prob, a_efe = _actinf_trace(problem, observations, actions, gamma, alpha)
        p_post, p_prob, p_efe = _pymdp_trace(other, observations, actions, gamma, alpha)
    controlled = [f for f, b in enumerate(problem.transition) if b.shape[-1] > 1]
    probs_a = np.concatenate([np.concatenate([a_prob[t][f] for f in controlled]) for t in range(steps)])
    probs_p = np.concatenate([np.concatenate([p_prob[t][f] for f in controlled]) for t in range(steps)])
    abs_err, rel_err, probs_ok = _relative_errors(probs_a, probs_p)
    _, post_err, post_ok = _relative_errors(np.concatenate(a_post), np.concatenate(p_post))
    spread = max(float(np.ptp(a - p)) for a, p in zip(a_efe, p_efe, strict=True))
    result = {
        "workload": problem.name,
        "steps": steps,
        "max_abs_error": abs_err,
        "max_rel_error": rel_err,
        "policy_max_rel_error": post_err,
        "efe_offset_spread": spread,
        "rtol": AGREEMENT_RTOL,
        "atol": AGREEMENT_ATOL,
        "passed": probs_ok and post_ok,
    }
    if raise_on_failure and not result["passed"]:
        raise AgreementError(
            f"{problem.name}: actinf and pymdp disagree: action probabilities differ by up to "
            f"{abs_err:.3g} ({rel_err:.3g} relative), policy posteriors by {post_err:.3g} relative "
            f"(tolerance {AGREEMENT_RTOL:g} relative); their expected free energies differ by more "
            f"than a constant: spread {spread:.3g} over policies"
        )
    return result


# ------------------------------------------------------------------------------- timing


def _block(x):
    return jax.block_until_ready(x)


def _first_call(run: Callable, key) -> float:
    began = time.perf_counter()
    _block(run(key))
    return time.perf_counter() - began


def _spread(rates: list[float]) -> dict[str, float]:
    q = np.percentile(rates, [0, 25, 50, 75, 100])
    return {
        "median": float(q[2]),
        "q25": float(q[1]),
        "q75": float(q[3]),
        "min": float(q[0]),
        "max": float(q[4]),
    }


def _repeats(seconds: float, budget: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, math.ceil(budget / max(seconds, 1e-6)))))


def time_workload(
    workload: Workload,
    *,
    vs_pymdp: bool,
    budget_s: float = 2.0,
    min_repeats: int = 3,
    max_repeats: int = 30,
    seed: int = 0,
) -> dict[str, Any]:
    """First-call latency and steady agent-steps per second of one workload.

    The two libraries' episodes alternate (actinf, pymdp, actinf, ...), each with
    a fresh key; the number of repeats is what fits in about ``budget_s`` seconds
    per library (between ``min_repeats`` and ``max_repeats``), after one warm-up call
    beyond the first.
    """
    problem = workload.problem()
    sides = {"actinf": actinf_episode(workload, problem)}
    if vs_pymdp:
        sides["pymdp"] = pymdp_episode(workload, problem)
    base = jax.random.key(seed)
    first = {name: _first_call(run, jax.random.fold_in(base, 0)) for name, run in sides.items()}
    probe = {}
    for name, run in sides.items():
        probe[name] = _first_call(run, jax.random.fold_in(base, 1))  # warm-up, and a first estimate
    n = max(_repeats(s, budget_s, min_repeats, max_repeats) for s in probe.values())
    n = min(n, min(_repeats(s, 3 * budget_s, min_repeats, max_repeats) for s in probe.values()))
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(n):
        key = jax.random.fold_in(base, 2 + i)
        for name, run in sides.items():
            began = time.perf_counter()
            _block(run(key))
            seconds[name].append(time.perf_counter() - began)
    work = workload.agents * workload.steps
    out: dict[str, Any] = {
        "workload": workload.name,
        "world": workload.world,
        "size": workload.size,
        "depth": workload.depth,
        "policies": problem.num_policies,
        "agents": workload.agents,
        "steps": workload.steps,
        "repeats": n,
    }
    for name in sides:
        rates = [work / s for s in seconds[name]]
        out[name] = {
            "steps_per_s": _spread(rates),
            "episode_s": _spread(seconds[name]),
            "episode_seconds": seconds[name],
            "first_call_s": first[name],
        }
    if vs_pymdp:
        out["ratio"] = out["actinf"]["steps_per_s"]["median"] / out["pymdp"]["steps_per_s"]["median"]
    return out


def flops_per_agent_step(problem: Problem) -> dict[str, Any]:
    """Floating-point operations of one agent-step of the dense computation, with shared prefixes.

    One factor ``Ns`` (the first; the count assumes the others are trivial), ``Nu`` its moves,
    ``L`` the policy depth, ``No_g`` the outcomes of each modality:

    * state inference: the prior :math:`B(u)q`, ``2 Ns^2``; the likelihood of the outcome,
      ``Ns`` per modality; the posterior's softmax and log prior, ``4 Ns``;
    * per node of the tree of policy prefixes (``Nu^k`` nodes at depth ``k = 1..L``): the
      prediction ``2 Ns^2``, each modality's predicted outcomes ``2 No_g Ns``, their entropy
      and expected utility ``4 No_g``, the expected ambiguity ``2 Ns``.

    Returns ``{"flops", "nodes", "inference", "per_node"}``.
    """
    states = int(np.prod([b.shape[0] for b in problem.transition]))
    moves = int(np.prod([b.shape[-1] for b in problem.transition]))
    outcomes = [a.shape[0] for a in problem.likelihood]
    nodes = sum(moves**k for k in range(1, problem.depth + 1))
    inference = 2 * states**2 + len(outcomes) * states + 4 * states
    per_node = 2 * states**2 + sum(2 * no * states + 4 * no for no in outcomes) + 2 * states
    return {
        "flops": inference + nodes * per_node,
        "nodes": nodes,
        "inference": inference,
        "per_node": per_node,
    }


def matmul_peak(size: int = 2048, repeats: int = 10) -> dict[str, float]:
    """This machine's float32 matrix-multiply rate: the best of ``repeats`` timed
    ``size`` x ``size`` products (``2 size^3`` flops) after a warm-up, in GFLOP/s."""
    with jax.enable_x64(False):
        k1, k2 = jax.random.split(jax.random.key(0))
        a = jax.random.normal(k1, (size, size), jnp.float32)
        b = jax.random.normal(k2, (size, size), jnp.float32)
        dot = jax.jit(jnp.dot)
        dot(a, b).block_until_ready()
        best = math.inf
        for _ in range(repeats):
            began = time.perf_counter()
            dot(a, b).block_until_ready()
            best = min(best, time.perf_counter() - began)
    return {"gflops": 2 * size**3 / best / 1e9, "size": size, "best_s": best, "repeats": repeats}


def _child_env() -> dict[str, str]:
    """The environment for a fresh interpreter that imports this actinf (its source first on the path)."""
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def import_time(repeats: int = 5) -> dict[str, Any]:
    """``import actinf`` in ``repeats`` fresh interpreters.

    Returns ``{"import_s", "wall_s", "python_startup_s", "repeats"}``: the median of the
    time ``import actinf`` takes inside each interpreter (``time.perf_counter`` around
    the import: the target's number), the median wall time of
    ``python -c "import actinf"`` minus that of ``python -c "pass"`` (adds the
    interpreter's shut-down of JAX), and that bare start-up.
    """
    env = _child_env()
    code = "import time; t = time.perf_counter(); import actinf; print(time.perf_counter() - t)"

    def run(code: str) -> tuple[float, str]:
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
        )
        return time.perf_counter() - began, done.stdout

    bare = statistics.median(run("pass")[0] for _ in range(repeats))
    runs = [run(code) for _ in range(repeats)]
    inside = statistics.median(float(out.split()[-1]) for _, out in runs)
    wall = statistics.median(w for w, _ in runs)
    return {"import_s": inside, "wall_s": wall - bare, "python_startup_s": bare, "repeats": repeats}


def cached_first_call(workload: Workload, repeats: int = 1) -> float:
    """The first call of ``workload``'s actinf episode in a fresh interpreter whose
    persistent compilation cache (:mod:`actinf.cache`) already holds the program.

    A first interpreter compiles the episode into an empty temporary cache; the
    next ones (``repeats``, median) build the same episode and time its first call:
    tracing, loading the compiled program and the first run. This is the first
    call a user sees from the second run of a program on with the cache on (the
    command line's default).
    """
    import tempfile

    env = _child_env()
    env.pop("ACTINF_NO_CACHE", None)
    with tempfile.TemporaryDirectory() as folder:
        code = (
            "import time, jax\n"
            "from actinf.cache import enable_compilation_cache\n"
            f"enable_compilation_cache({folder!r}, min_compile_seconds=0.0)\n"
            "from actinf import bench\n"
            f"w = bench.Workload({workload.world!r}, {workload.size}, {workload.depth}, "
            f"{workload.agents}, {workload.steps})\n"
            "run = bench.actinf_episode(w)\n"
            "began = time.perf_counter()\n"
            "bench._block(run(jax.random.key(0)))\n"
            "print(time.perf_counter() - began)\n"
        )
        times = []
        for i in range(1 + repeats):
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            )
            if i > 0:
                times.append(float(done.stdout.split()[-1]))
    return statistics.median(times)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, platform, Python, JAX, jaxlib, pymdp and actinf versions, date (UTC)."""
    from . import __version__

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "backend": jax.default_backend(),
        "pymdp": _pymdp_version(),
        "actinf": __version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run_benchmark(
    workloads: Sequence[Workload],
    *,
    vs_pymdp: bool = True,
    budget_s: float = 2.0,
    min_repeats: int = 3,
    max_repeats: int = 30,
    import_repeats: int = 5,
    peak: bool = True,
    peak_repeats: int = 10,
    cached: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Check agreement (with pymdp), time every workload, and measure import time and peak.

    Args:
      workloads: the lines of the table (:func:`full_workloads`, :func:`quick_workloads`).
      vs_pymdp: also build, check and time pymdp's agents.
      budget_s, min_repeats, max_repeats: repeats per workload (:func:`time_workload`).
      import_repeats: fresh interpreters for :func:`import_time`.
      peak: measure the matrix-multiply peak and the achieved rate on the largest grid.
      cached: also time the maze's first call from a warm persistent compilation cache
        (:func:`cached_first_call`, two fresh interpreters per maze line).
      progress: called with a short message before each stage.

    Returns:
      a JSON-ready dict: ``machine``, ``settings``, ``import``, ``agreement`` (one per
      problem), ``workloads`` (one per line), ``peak`` and ``flops`` (when measured),
      ``targets`` (each target, its value and whether it is met).

    Raises:
      AgreementError: if the two libraries disagree on a problem (before any timing).
    """
    say = progress or (lambda message: None)
    jax.block_until_ready(jax.numpy.zeros(()))  # start the backend before timing anything
    result: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "gamma": GAMMA,
            "alpha": ALPHA,
            "num_iter": NUM_ITER,
            "dtype": "float32",
            "vs_pymdp": vs_pymdp,
            "agreement_rtol": AGREEMENT_RTOL,
            "agreement_atol": AGREEMENT_ATOL,
            # a persistent compilation cache would turn first calls into cache loads
            "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
        },
    }
    say("import time")
    result["import"] = import_time(import_repeats)
    if vs_pymdp:
        result["agreement"] = []
        seen: dict[str, Problem] = {}
        for w in workloads:
            seen.setdefault(w.name, w.problem())
        for name, problem in seen.items():
            say(f"agreement: {name}")
            result["agreement"].append(check_agreement(problem))
    rows = []
    with jax.enable_x64(False), jax.numpy_rank_promotion("allow"):
        for w in workloads:
            say(f"timing: {w.name}, {w.agents} agent{'s' * (w.agents != 1)}")
            rows.append(
                time_workload(
                    w, vs_pymdp=vs_pymdp, budget_s=budget_s, min_repeats=min_repeats, max_repeats=max_repeats
                )
            )
    if cached:
        for w, row in zip(workloads, rows, strict=True):
            if w.world == "maze":
                say(f"first call from the compilation cache: {w.name}, {w.agents} agents")
                row["actinf"]["first_call_cached_s"] = cached_first_call(w)
    result["workloads"] = rows
    if peak:
        say("matmul peak")
        result["peak"] = matmul_peak(repeats=peak_repeats)
        largest = max(rows, key=lambda r: (flops_per_agent_step(_problem_of(r))["flops"], r["agents"]))
        count = flops_per_agent_step(_problem_of(largest))
        achieved = count["flops"] * largest["actinf"]["steps_per_s"]["median"] / 1e9
        result["flops"] = {
            "workload": largest["workload"],
            "agents": largest["agents"],
            **count,
            "actinf_gflops": achieved,
            "peak_fraction": achieved / result["peak"]["gflops"],
        }
    result["targets"] = _targets(result)
    return result


def _problem_of(row: dict[str, Any]) -> Problem:
    return maze_problem(row["depth"]) if row["world"] == "maze" else grid_problem(row["size"], row["depth"])


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rows = result["workloads"]
    if result["settings"]["vs_pymdp"]:
        worst = min(rows, key=lambda r: r["ratio"])
        out["ratio"] = {
            "target": f">= {TARGET_RATIO:g} on every workload",
            "value": worst["ratio"],
            "where": f"{worst['workload']}, {worst['agents']} agents",
            "met": all(r["ratio"] >= TARGET_RATIO for r in rows),
        }
    maze = [r for r in rows if r["world"] == "maze"]
    if maze:
        slowest = max(maze, key=lambda r: r["actinf"]["first_call_s"])
        out["maze_first_call"] = {
            "target": f"< {TARGET_FIRST_CALL_S:g} s",
            "value": slowest["actinf"]["first_call_s"],
            "where": f"{slowest['workload']}, {slowest['agents']} agents",
            "met": all(r["actinf"]["first_call_s"] < TARGET_FIRST_CALL_S for r in maze),
        }
        cached = [r["actinf"]["first_call_cached_s"] for r in maze if "first_call_cached_s" in r["actinf"]]
        if cached:
            out["maze_first_call"]["cached"] = max(cached)
    out["import"] = {
        "target": f"< {TARGET_IMPORT_S:g} s",
        "value": result["import"]["import_s"],
        "met": result["import"]["import_s"] < TARGET_IMPORT_S,
    }
    if "flops" in result:
        f = result["flops"]
        out["peak_fraction"] = {
            "target": f">= 1/3 of the matmul peak on {f['workload']}, {f['agents']} agents",
            "value": f["peak_fraction"],
            "met": f["peak_fraction"] >= TARGET_PEAK_FRACTION,
            "checked": f["workload"] == "grid 10x10 L=3" and f["agents"] == 256,
        }
    return out


# ------------------------------------------------------------------------------ reports


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _rate_cell(side: dict[str, Any]) -> str:
    s = side["steps_per_s"]
    return f"{_rate(s['median'])} [{_rate(s['q25'])}–{_rate(s['q75'])}]"


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


def markdown_report(result: dict[str, Any], command: str) -> str:
    """The results as markdown: command, machine, targets, the table, agreement, flops."""
    m = result["machine"]
    vs = result["settings"]["vs_pymdp"]
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; Python {m['python']}, "
        f"JAX {m['jax']} ({m['backend']}), actinf {m['actinf']}"
        + (f", pymdp {m['pymdp']}" if vs else "")
        + f"; {m['date']}.",
        "",
        f"Settings: float32, fixed-point inference ({result['settings']['num_iter']} iterations), "
        f"gamma = {result['settings']['gamma']:g}, alpha = {result['settings']['alpha']:g}, "
        f"{result['workloads'][0]['steps']} steps per episode, no learning.",
        "",
    ]
    t = result["targets"]
    missed = [k for k, v in t.items() if not v["met"]]
    lines.append("Targets:")
    lines.append("")
    if "ratio" in t:
        r = t["ratio"]
        lines.append(
            f"- actinf / pymdp >= {TARGET_RATIO:g} on every workload: {_yes(r['met'])} "
            f"(lowest {r['value']:.2f}, {r['where']})"
        )
    if "maze_first_call" in t:
        r = t["maze_first_call"]
        lines.append(
            f"- first call < {TARGET_FIRST_CALL_S:g} s on the maze: {_yes(r['met'])} "
            f"(slowest {r['value']:.2f} s, {r['where']}, compiling"
            + (
                f"; at most {r['cached']:.2f} s in a fresh interpreter loading the program from the "
                "persistent compilation cache, `actinf.cache`)"
                if "cached" in r
                else ")"
            )
        )
    r = t["import"]
    lines.append(
        f"- `import actinf` < {TARGET_IMPORT_S:g} s: {_yes(r['met'])} ({r['value']:.2f} s inside the "
        f"interpreter, median of {result['import']['repeats']} fresh interpreters; wall time of "
        f'`python -c "import actinf"` minus `python -c pass`: {result["import"]["wall_s"]:.2f} s)'
    )
    if "peak_fraction" in t:
        r = t["peak_fraction"]
        f = result["flops"]
        lines.append(
            f"- >= 1/3 of the float32 matmul peak on {f['workload']}, {f['agents']} agents: "
            f"{_yes(r['met'])} ({f['actinf_gflops']:.2f} GFLOP/s of {result['peak']['gflops']:.1f}, "
            f"{100 * f['peak_fraction']:.1f} %)"
            + ("" if r["checked"] else " (this run has no grid 10x10 L=3 with 256 agents)")
        )
    lines.append("")
    if missed:
        lines.append(f"**Targets missed: {', '.join(missed)}.**")
    else:
        lines.append("All targets met.")
    lines.append("")
    head = ["workload", "policies", "agents", "actinf steps/s [IQR]"]
    if vs:
        head += ["pymdp steps/s [IQR]", "ratio", "first call actinf / pymdp (s)", "target met?"]
    else:
        head += ["first call actinf (s)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("| " + " | ".join("---" for _ in head) + " |")
    for r in result["workloads"]:
        cells = [r["workload"], str(r["policies"]), str(r["agents"]), _rate_cell(r["actinf"])]
        if vs:
            met = r["ratio"] >= TARGET_RATIO
            if r["world"] == "maze":
                met = met and r["actinf"]["first_call_s"] < TARGET_FIRST_CALL_S
            cells += [
                _rate_cell(r["pymdp"]),
                f"{r['ratio']:.2f}",
                f"{r['actinf']['first_call_s']:.2f} / {r['pymdp']['first_call_s']:.2f}",
                _yes(met),
            ]
        else:
            cells.append(f"{r['actinf']['first_call_s']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    repeats = ", ".join(str(n) for n in sorted({r["repeats"] for r in result["workloads"]}))
    lines.append(
        "Steps/s: agent-steps per second (agents x steps per episode / seconds per episode), "
        f"median and interquartile range over the repeats ({repeats} per workload). "
        "Target met: ratio >= 10 (and, for the maze, actinf's first call < 1 s)."
    )
    if vs:
        lines.append("")
        lines.append(
            "Agreement (float64, before timing; largest differences of action probabilities and "
            "policy posteriors):"
        )
        lines.append("")
        lines.append("| problem | steps | action probabilities abs / rel | policy posterior rel | passed |")
        lines.append("| --- | --- | --- | --- | --- |")
        for a in result["agreement"]:
            lines.append(
                f"| {a['workload']} | {a['steps']} | {a['max_abs_error']:.1e} / {a['max_rel_error']:.1e} | "
                f"{a['policy_max_rel_error']:.1e} | {_yes(a['passed'])} |"
            )
    if "flops" in result:
        f = result["flops"]
        lines.append("")
        p = result["peak"]
        rate = _row_of(result, f)["actinf"]["steps_per_s"]["median"]
        lines.append(
            f"Flops per agent-step on {f['workload']}: {f['flops']:,} ({f['nodes']} prefix-tree nodes x "
            f"{f['per_node']:,} + {f['inference']:,} for state inference); actinf at {_rate(rate)} "
            f"steps/s with {f['agents']} agents: {f['actinf_gflops']:.2f} GFLOP/s; float32 matmul peak "
            f"({p['size']}² product, best of {p['repeats']}): {p['gflops']:.1f} GFLOP/s; "
            f"fraction {100 * f['peak_fraction']:.1f} %."
        )
    return "\n".join(lines) + "\n"


def _row_of(result: dict[str, Any], flops: dict[str, Any]) -> dict[str, Any]:
    return next(
        r
        for r in result["workloads"]
        if r["workload"] == flops["workload"] and r["agents"] == flops["agents"]
    )


#: Markers around the generated part of ``docs/benchmarks.md``.
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def write_markdown(path: str | os.PathLike, report: str) -> None:
    """Write ``report`` into ``path`` between the :data:`BEGIN` and :data:`END` markers, each
    alone on its line, when the file has them (keeping the rest), else as the whole file."""
    text = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    block = f"{BEGIN}\n{report}{END}"
    pattern = re.compile(f"^{re.escape(BEGIN)}$.*?^{re.escape(END)}$", re.MULTILINE | re.DOTALL)
    if text is not None and pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = block + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
