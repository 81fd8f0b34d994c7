"""SPM's three-arm maze (T-maze) of ``DEM_demo_MDP_X.m``, and a simulation of it.

The task
--------
A rat starts at the centre of a maze shaped like a T. One of the two upper
arms (left or right) is baited with a reward, the other with a mild shock; which
one is the *context* of the trial, unknown to the rat at the start. The lower
arm holds a cue that tells which arm is baited. The arms are absorbing: once
the rat has entered an upper arm it stays there. A trial has ``T = 3`` time
steps (three outcomes, two moves).

An active inference agent does not know the context, so each policy's expected
free energy weighs the *pragmatic* value of the reward against the *epistemic*
value of the cue (the information it brings about the context). With an
uncertain context the cue's epistemic value wins: the agent visits the cue
first and then the arm it points to. Over trials the agent learns the
Dirichlet counts ``d`` of its prior over the initial context; once it is
confident that the reward is (say) always on the left, the cue has nothing
left to tell and the agent goes straight to the arm.

The generative model
--------------------
Hidden-state factors (``F = 2``):

* ``location`` (4 states): centre, left arm, right arm, cue location (lower arm);
  controlled by 4 actions, "go to" each location (an upper arm, once entered,
  is never left);
* ``context`` (2 states): reward on the left, reward on the right;
  uncontrolled (one action: the identity transition).

Outcome modalities (``G = 2``):

* ``where`` (5 outcomes), SPM's "exteroceptive": the location seen (centre,
  left arm, right arm) and, at the cue location, the cue itself (points left,
  points right); the cue reports the context without error;
* ``reward`` (3 outcomes), SPM's "interoceptive": nothing, reward, shock.
  The baited arm gives the reward with probability ``reward_probability``
  (0.98) and the shock otherwise; the other arm the reverse; the centre and cue
  locations give nothing.

Preferences ``C`` (log, unnormalised, constant over time): ``+6`` for reward,
``-6`` for shock, ``-1`` for seeing the centre (SPM: the rat "does not like to
be exposed"), ``0`` otherwise.

Policies (``V``, 10 of them, two moves each): stay at the centre then go
anywhere (4), go to the left or right arm and stay (2), go to the cue then
anywhere (4).

Initial-state counts ``d``: location ``[128, 1, 1, 1]`` (almost surely the
centre), context ``[2, 2]`` (undecided, and weak so that a few trials shift it).
The prior ``D`` is the normalised ``d``. Only ``d`` is learned.

These arrays equal the model of SPM's recorded run
(``tests/data/vbx/tmaze_spm_demo.json``), SPM12 r7771.

Note: build the model with ``jax_enable_x64`` on to get SPM's double precision
(the arrays are converted with the default JAX dtype).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from ..model import GenerativeModel, generative_model
from ..spm.scheme import SpmSettings, SpmTrialResult, spm_sequence

__all__ = [
    "CENTRE",
    "CUE",
    "LEFT_ARM",
    "REWARD_LEFT",
    "REWARD_RIGHT",
    "RIGHT_ARM",
    "TMAZE_LABELS",
    "ModelLabels",
    "TmazeRun",
    "simulate_tmaze",
    "spm_contexts",
    "summarise_tmaze",
    "tmaze_model",
]

#: Locations (states of factor 0, and the actions "go to" them).
CENTRE, LEFT_ARM, RIGHT_ARM, CUE = 0, 1, 2, 3
#: Contexts (states of factor 1).
REWARD_LEFT, REWARD_RIGHT = 0, 1
#: Outcomes of the ``reward`` modality.
NO_REWARD, REWARD, SHOCK = 0, 1, 2
#: Number of time steps (outcomes) in a trial.
HORIZON = 3


class ModelLabels(NamedTuple):
    """Names of a model's factors, states, modalities, outcomes and actions (for tables, plots).

    Attributes:
      factors: one name per hidden-state factor.
      states: per factor, one name per state.
      modalities: one name per outcome modality.
      outcomes: per modality, one name per outcome.
      actions: per factor, one name per control state (action).
    """

    factors: tuple[str, ...]
    states: tuple[tuple[str, ...], ...]
    modalities: tuple[str, ...]
    outcomes: tuple[tuple[str, ...], ...]
    actions: tuple[tuple[str, ...], ...]


#: The T-maze's names, in the order of :func:`tmaze_model`'s arrays.
TMAZE_LABELS = ModelLabels(
    factors=("location", "context"),
    states=(
        ("centre", "left arm", "right arm", "cue"),
        ("reward left", "reward right"),
    ),
    modalities=("where", "reward"),
    outcomes=(
        ("centre", "left arm", "right arm", "cue: left", "cue: right"),
        ("nothing", "reward", "shock"),
    ),
    actions=(
        ("centre", "left", "right", "cue"),
        ("none",),
    ),
)


def tmaze_model(
    *,
    reward_probability: float = 0.98,
    reward_preference: float = 6.0,
    exposure_cost: float = 1.0,
    location_counts: Sequence[float] = (128.0, 1.0, 1.0, 1.0),
    context_counts: Sequence[float] = (2.0, 2.0),
) -> GenerativeModel:
    """The T-maze of SPM's ``DEM_demo_MDP_X.m`` (see the module docstring).

    Arrays (SPM's layout; ``L`` locations = 4, ``K`` contexts = 2):

    * ``A[0]`` ``[5, L, K]``: location seen; at the cue, the cue's direction
      (outcome 3 + context);
    * ``A[1]`` ``[3, L, K]``: reward / shock in the arms (``p`` =
      ``reward_probability`` in the baited one), nothing elsewhere;
    * ``B[0]`` ``[L, L, 4]``: action ``u`` moves the agent from the centre or
      the cue to location ``u``; the arms are absorbing;
    * ``B[1]`` ``[K, K, 1]``: the context does not change within a trial;
    * ``C[0]`` ``[5, 3]``: ``-exposure_cost`` for seeing the centre;
      ``C[1]`` ``[3, 3]``: ``+reward_preference`` for reward,
      ``-reward_preference`` for shock;
    * ``D`` the normalised counts, ``d`` = (``location_counts``, ``context_counts``);
    * ``V`` ``[2, 10, 2]``: the ten two-move policies; no habits (uniform ``E``).

    Args:
      reward_probability: probability of reward in the baited arm (SPM: 0.98).
      reward_preference: log preference for reward, and minus that of shock (SPM: 6).
      exposure_cost: minus the log preference for seeing the centre (SPM: 1).
      location_counts: initial-state counts of the location (SPM: 128, 1, 1, 1).
      context_counts: initial-state counts of the context (SPM: 2, 2); learned.

    Returns:
      the :class:`~actinf.GenerativeModel`, with ``initial_counts`` set.
    """
    n_loc, n_ctx = 4, 2
    n_where = 3 + n_ctx  # centre, left arm, right arm, cue per context
    p = float(reward_probability)
    q = 1.0 - p

    # A[0]: what the agent sees where it is; the cue shows the context.
    where = np.zeros((n_where, n_loc, n_ctx))
    for loc in (CENTRE, LEFT_ARM, RIGHT_ARM):
        where[loc, loc, :] = 1.0
    for ctx in range(n_ctx):
        where[3 + ctx, CUE, ctx] = 1.0

    # A[1]: reward in the baited arm, shock in the other, nothing elsewhere.
    reward = np.zeros((3, n_loc, n_ctx))
    reward[NO_REWARD, [CENTRE, CUE], :] = 1.0
    for ctx, (baited, other) in enumerate([(LEFT_ARM, RIGHT_ARM), (RIGHT_ARM, LEFT_ARM)]):
        reward[REWARD, baited, ctx], reward[SHOCK, baited, ctx] = p, q
        reward[REWARD, other, ctx], reward[SHOCK, other, ctx] = q, p

    # B[0]: "go to u" from the centre or the cue; the upper arms are absorbing.
    move = np.zeros((n_loc, n_loc, n_loc))
    for u in range(n_loc):
        for here in range(n_loc):
            there = here if here in (LEFT_ARM, RIGHT_ARM) else u
            move[there, here, u] = 1.0
    # B[1]: the context stays what it is.
    context = np.eye(n_ctx)[:, :, None]

    # C: preferences, constant over the trial.
    c_where = np.zeros((n_where, HORIZON))
    c_where[CENTRE] = -exposure_cost
    c_reward = np.zeros((3, HORIZON))
    c_reward[REWARD], c_reward[SHOCK] = reward_preference, -reward_preference

    # V: [move, policy, factor].
    first = [CENTRE] * 4 + [LEFT_ARM, RIGHT_ARM] + [CUE] * 4
    second = [CENTRE, LEFT_ARM, RIGHT_ARM, CUE, LEFT_ARM, RIGHT_ARM, CENTRE, LEFT_ARM, RIGHT_ARM, CUE]
    policies = np.zeros((HORIZON - 1, len(first), 2), dtype=np.int32)
    policies[0, :, 0], policies[1, :, 0] = first, second

    d = [np.asarray(location_counts, dtype=float), np.asarray(context_counts, dtype=float)]
    return generative_model(
        [where, reward],
        [move, context],
        [c_where, c_reward],
        [x / x.sum() for x in d],
        policies=policies,
        initial_counts=d,
    )


def spm_contexts(trials: int) -> np.ndarray:
    """The context of each trial in SPM's demo: reward on the right in trials 1 and 3, else left.

    Returns:
      int array ``[trials]`` of contexts (:data:`REWARD_LEFT` = 0, :data:`REWARD_RIGHT` = 1).
    """
    contexts = np.full(trials, REWARD_LEFT, dtype=np.int32)
    contexts[[i for i in (0, 2) if i < trials]] = REWARD_RIGHT
    return contexts


class TmazeRun(NamedTuple):
    """A simulated sequence of T-maze trials (arrays over trials, 0-based).

    Attributes:
      results: the :class:`~actinf.SpmTrialResult` of each trial.
      contexts: ``[n]`` true context of each trial.
      locations: ``[n, T]`` true location at each time step (``locations[:, 1]``
        is where the first move led, ``locations[:, 2]`` the second).
      rewards: ``[n, T]`` outcome of the reward modality (0 nothing, 1 reward, 2 shock).
      precision: ``[n, T]`` policy precision ``w`` at each time step.
      context_belief: ``[n, 2]`` the agent's prior over the context after each
        trial (the normalised learned counts ``d``).
    """

    results: list
    contexts: np.ndarray
    locations: np.ndarray
    rewards: np.ndarray
    precision: np.ndarray
    context_belief: np.ndarray

    @property
    def cue_first(self) -> np.ndarray:
        """``[n]`` bool: the first move went to the cue."""
        return self.locations[:, 1] == CUE

    @property
    def arm_first(self) -> np.ndarray:
        """``[n]`` bool: the first move went straight to an upper arm."""
        return np.isin(self.locations[:, 1], (LEFT_ARM, RIGHT_ARM))

    @property
    def rewarded(self) -> np.ndarray:
        """``[n]`` bool: the agent got the reward in the trial."""
        return (self.rewards == REWARD).any(axis=1)


def simulate_tmaze(
    rng_key: jax.Array,
    trials: int = 32,
    *,
    contexts: Sequence[int] | np.ndarray | None = None,
    model: GenerativeModel | None = None,
    settings: SpmSettings = SpmSettings(),
    callback: Callable[[int, SpmTrialResult], None] | None = None,
) -> TmazeRun:
    """Run ``trials`` T-maze trials in sequence, learning the initial-state counts ``d``.

    The agent starts every trial at the centre, in the given context; its
    outcomes and actions are sampled (SPM's generative process: outcomes from
    ``A``, actions from the action probabilities with precision ``alpha``), and
    the learned counts are carried from one trial to the next
    (:func:`~actinf.spm_sequence`).

    Args:
      rng_key: key for the sampled outcomes and actions.
      trials: number of trials.
      contexts: ``[trials]`` context of each trial (0 reward left, 1 reward
        right); default :func:`spm_contexts` (SPM's schedule: right in trials 1
        and 3, left afterwards, so that there is something to learn).
      model: the generative model; default :func:`tmaze_model`.
      settings: SPM's settings (precisions, inference).
      callback: called as ``callback(i, result)`` after each trial (progress).

    Returns:
      a :class:`TmazeRun`.
    """
    model = tmaze_model() if model is None else model
    contexts = spm_contexts(trials) if contexts is None else np.asarray(contexts, np.int32)
    if contexts.shape != (trials,):
        raise ValueError(f"contexts has shape {list(contexts.shape)}, expected [{trials}]")
    F, G, T = model.num_factors, model.num_modalities, model.horizon
    states = []
    for ctx in contexts:
        s = np.full((F, T), -1, np.int32)
        s[0, 0], s[1, 0] = CENTRE, ctx
        states.append(s)
    outcomes = [np.full((G, T), -1, np.int32)] * trials
    actions = [np.full((F, T - 1), -1, np.int32)] * trials
    results = spm_sequence(
        model, outcomes, actions, settings, states=states, rng_key=rng_key, callback=callback
    )
    d_context = np.stack([np.asarray(r.model.initial_counts[1]) for r in results])
    return TmazeRun(
        results=results,
        contexts=contexts,
        locations=np.stack([np.asarray(r.s[0]) for r in results]),
        rewards=np.stack([np.asarray(r.o[1]) for r in results]),
        precision=np.stack([np.asarray(r.w) for r in results]),
        context_belief=d_context / d_context.sum(axis=1, keepdims=True),
    )


def _ranges(trials: np.ndarray) -> str:
    """``[0, 1, 2, 5]`` (0-based) as ``"1-3, 6"`` (1-based)."""
    if len(trials) == 0:
        return "none"
    parts, start = [], trials[0]
    for prev, cur in zip(trials, [*trials[1:], None], strict=True):
        if cur is None or cur != prev + 1:
            parts.append(f"{start + 1}" if start == prev else f"{start + 1}-{prev + 1}")
            start = cur
    return ", ".join(parts)


def summarise_tmaze(run: TmazeRun, labels: ModelLabels = TMAZE_LABELS) -> str:
    """A one-paragraph account of a :class:`TmazeRun` (1-based trial numbers)."""
    n = len(run.contexts)
    cue = np.flatnonzero(run.cue_first)
    arm = run.arm_first
    # the first trial from which every later trial goes straight to an arm
    late = [i for i in range(n) if arm[i:].all()]
    belief = run.context_belief[-1]
    ctx = labels.states[1]
    text = [f"The cue was visited first in trials {_ranges(cue)} ({len(cue)} of {n})."]
    if late:
        k = late[0]
        baited = run.locations[k:, 1] == LEFT_ARM + run.contexts[k:]
        text.append(
            f"From trial {k + 1} on it went straight to an arm "
            f"({int(baited.sum())} of {n - k} times to the baited one)."
        )
    else:
        text.append("The agent never settled on going straight to an arm.")
    text.append(
        f"It was rewarded in {int(run.rewarded.sum())} of {n} trials. "
        f"Its learned prior over the context is {ctx[0]} {belief[0]:.2f}, "
        f"{ctx[1]} {belief[1]:.2f}"
        + (
            ": once the context is predictable, the cue's information is worth less "
            "than the reward it delays, so the agent skips it."
            if late and len(cue)
            else "."
        )
    )
    w = run.precision
    text.append(
        f"The policy precision at the first move went from {w[0, 0]:.2f} (trial 1) to "
        f"{w[-1, 0]:.2f} (trial {n})."
    )
    return " ".join(text)
