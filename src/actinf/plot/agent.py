"""Figures of agent runs: one trial in the style of SPM's ``spm_MDP_VB_trial``, and a run of trials.

Every function takes a :class:`~actinf.rollout.Trajectory` from
:func:`~actinf.rollout.rollout` (leading axes ``[N trials, T steps]``) or
:func:`~actinf.rollout.rollout_batch` (``[K agents, N, T]``), as JAX or NumPy
arrays, and the world's ``labels`` (any object with the attributes of
:class:`~actinf.models.ModelLabels`; ``None`` gives numbered names).

* :func:`plot_agent_trial`: beliefs about each hidden-state factor with the
  true states, the policy posterior and the expected free energy of each policy
  by term, the action probabilities with the actions taken, the policy precision.
* :func:`plot_agent_summary`: over trials, the first action of each controlled
  factor, the reward (the summed utility of the outcomes), the mean precision
  and the belief in the true state of each uncontrolled factor; for a batch,
  the fraction of agents choosing each first action and the mean over agents
  with a band of one standard deviation.
* :func:`save_agent_figures`: both figures as PNG files.

Figures are built with :class:`matplotlib.figure.Figure`, without ``pyplot``:
nothing touches the GUI backend and there is no figure registry to close.
Factors with more than 20 states (and runs with more than 20 policies) get a
label on every k-th row only.

Example::

    world = make_world("tmaze")
    traj = rollout(jax.random.key(0), Agent(world.model), world, trials=8)
    fig = plot_agent_trial(traj, world.labels, trial=0)
    save_agent_figures(traj, world.labels, "figures")   # trial.png, summary.png
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_agent_summary", "plot_agent_trial", "save_agent_figures"]

#: At most this many labelled rows on a heatmap axis; beyond it every k-th row is labelled.
MAX_LABELS = 20

_IMAGE = {"cmap": "gray_r", "vmin": 0.0, "vmax": 1.0, "aspect": "auto", "interpolation": "nearest"}
_TERMS = ("risk", "ambiguity", "novelty")


class _Run(NamedTuple):
    """The arrays of a trajectory as NumPy (leading ``[N, T]``, or ``[K, N, T]`` when batched)."""

    observations: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    beliefs: tuple[np.ndarray, ...]
    policy_posterior: np.ndarray
    efe_terms: np.ndarray
    precision: np.ndarray
    action_probabilities: np.ndarray
    utility: np.ndarray
    policies: np.ndarray | None


def _policies(trajectory) -> np.ndarray | None:
    """The policies ``V`` of the agent's model in ``trajectory.end``, when it has them."""
    try:
        return np.asarray(trajectory.end.agent.model.policies)
    except AttributeError:
        return None


def _run(trajectory) -> tuple[_Run, bool]:
    info = trajectory.info
    run = _Run(
        observations=np.asarray(trajectory.observations),
        states=np.asarray(trajectory.states),
        actions=np.asarray(trajectory.actions),
        beliefs=tuple(np.asarray(b) for b in info.states),
        policy_posterior=np.asarray(info.policy_posterior),
        efe_terms=np.asarray(info.efe_terms),
        precision=np.asarray(info.precision),
        action_probabilities=np.asarray(info.action_probabilities),
        utility=np.asarray(trajectory.utility),
        policies=_policies(trajectory),
    )
    ndim = run.observations.ndim
    if ndim not in (3, 4):
        raise ValueError(
            "trajectory.observations must have shape [N, T, G] (one agent) or [K, N, T, G] "
            f"(a batch), got {list(run.observations.shape)}"
        )
    return run, ndim == 4


def _index(value, size: int, what: str, container: str) -> int:
    try:
        i = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if not -size <= i < size:
        raise ValueError(
            f"{what} {i} is out of range: the {container} has {size} {what}s "
            f"(indices 0 to {size - 1}, or -{size} to -1)"
        )
    return i % size


def _agent(run: _Run, k: int) -> _Run:
    """Agent ``k`` of a batched run."""
    policies = run.policies
    if policies is not None and policies.ndim == 4:
        policies = policies[k]
    fields = {
        name: (tuple(b[k] for b in value) if name == "beliefs" else value[k])
        for name, value in run._asdict().items()
        if name != "policies"
    }
    return _Run(**fields, policies=policies)


def _num_controls(run: _Run, batched: bool) -> tuple[int, ...]:
    return tuple(run.action_probabilities.shape[2 + batched :])


def _num_states(run: _Run) -> tuple[int, ...]:
    return tuple(b.shape[-1] for b in run.beliefs)


class _Names:
    """Names of the factors, states and actions (from ``labels``, or numbered)."""

    def __init__(self, labels, num_states: Sequence[int], num_controls: Sequence[int]):
        if labels is None:
            self.factors = tuple(f"factor {f + 1}" for f in range(len(num_states)))
            self.states = tuple(tuple(f"state {i + 1}" for i in range(n)) for n in num_states)
            self.actions = tuple(tuple(f"action {i + 1}" for i in range(n)) for n in num_controls)
            return
        self.factors = tuple(labels.factors)
        self.states = tuple(tuple(s) for s in labels.states)
        self.actions = tuple(tuple(a) for a in labels.actions)
        for what, names, sizes in (
            ("factors", self.factors, (len(num_states),)),
            ("states", self.states, num_states),
            ("actions", self.actions, num_controls),
        ):
            got = (len(names),) if what == "factors" else tuple(len(n) for n in names)
            if got != tuple(sizes):
                raise ValueError(
                    f"labels.{what} do not fit the trajectory: {got} names for {tuple(sizes)} "
                    f"{'factors' if what == 'factors' else what + ' per factor'}"
                )

    def policy(self, V: np.ndarray | None, k: int, controlled: Sequence[int]) -> str:
        """Policy ``k`` as its sequence of moves, e.g. ``"cue → left"``."""
        if V is None or not controlled:
            return f"policy {k + 1}"
        return " → ".join(
            "+".join(self.actions[f][int(V[t, k, f])] for f in controlled) for t in range(V.shape[0])
        )


def _controlled(num_controls: Sequence[int]) -> list[int]:
    return [f for f, n in enumerate(num_controls) if n > 1]


def _step(n: int) -> int:
    """Label every ``_step(n)``-th of ``n`` rows (1 up to :data:`MAX_LABELS` rows)."""
    return 1 if n <= MAX_LABELS else math.ceil(n / MAX_LABELS)


def _yticks(ax, names: Sequence[str]) -> None:
    rows = range(0, len(names), _step(len(names)))
    ax.set_yticks(list(rows), [names[i] for i in rows], fontsize=8 if len(names) <= MAX_LABELS else 7)


def _heatmap(ax, data: np.ndarray, names: Sequence[str], title: str, *, first: int = 1) -> None:
    """``data`` ``[rows, columns]`` in [0, 1], columns numbered from ``first``."""
    n = data.shape[1]
    ax.imshow(data, extent=(first - 0.5, first + n - 0.5, data.shape[0] - 0.5, -0.5), **_IMAGE)
    _yticks(ax, names)
    if n <= 2 * MAX_LABELS:
        ax.set_xticks(range(first, first + n))
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(title, fontsize=10)


def _action_marginal(P: np.ndarray, f: int, num_factors: int) -> np.ndarray:
    """Marginal probability of factor ``f``'s actions from joint probabilities ``[..., Nu_1..Nu_F]``."""
    lead = P.ndim - num_factors
    return P.sum(axis=tuple(lead + i for i in range(num_factors) if i != f))


def _term_names(n: int, term_names: Sequence[str] | None) -> tuple[str, ...]:
    if term_names is not None:
        names = tuple(term_names)
        if len(names) != n:
            raise ValueError(f"term_names has {len(names)} names but efe_terms has {n} columns")
        return names
    given = _TERMS if n - 1 == len(_TERMS) else tuple(f"term {i + 1}" for i in range(n - 1))
    return (*given, "initial novelty")


def _efe_bars(ax, terms: np.ndarray, names: Sequence[str]) -> None:
    """Horizontal bars, one per policy, stacked by term (positive right, negative left)."""
    rows = np.arange(terms.shape[0])
    right = np.zeros(terms.shape[0])
    left = np.zeros(terms.shape[0])
    for i, name in enumerate(names):
        part = terms[:, i]
        base = np.where(part >= 0, right, left)
        ax.barh(rows, part, left=base, height=0.8, color=f"C{i}", label=name, linewidth=0)
        right = right + np.maximum(part, 0.0)
        left = left + np.minimum(part, 0.0)
    ax.plot(terms.sum(axis=1), rows, "|", color="black", markersize=8, label="total G")
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="y", labelleft=False)
    ax.set_xlabel("nats")
    ax.set_title("Expected free energy G at time 1, by term (lower is better)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def plot_agent_trial(
    trajectory,
    labels=None,
    trial: int = 0,
    agent: int | None = None,
    *,
    title: str | None = None,
    term_names: Sequence[str] | None = None,
) -> Figure:
    """One trial of one agent, in the style of SPM's ``spm_MDP_VB_trial``.

    Panels, from the top (time steps numbered ``1..T``, moves ``1..T-1``):

    * per hidden-state factor ``f``, the posterior over the current state at each
      time, :math:`q(s_{f,t})` ``[Ns_f, T]`` (``info.states``), with the true
      state as crosses;
    * the policy posterior :math:`q(\\pi)` at each time ``[Np, T]``, and beside it
      the expected free energy :math:`G_\\pi` at the first time step, stacked by
      term (``info.efe_terms``: risk, ambiguity, novelty, initial novelty; each
      column is the term's signed contribution to :math:`G`);
    * per controlled factor (more than one action), the marginal probability of
      each action at each move with the action taken as dots;
    * the policy precision :math:`\\gamma` over time.

    So the figure has ``F + 2 + C + 1`` axes for ``F`` factors of which ``C``
    are controlled.

    Args:
      trajectory: a :class:`~actinf.rollout.Trajectory` (one agent ``[N, T, ...]``
        or a batch ``[K, N, T, ...]``), JAX or NumPy arrays.
      labels: names (see the module docstring), e.g. ``world.labels``, or ``None``.
      trial: which trial (0-based; negative counts from the end).
      agent: which agent of a batch (default 0); only 0 or ``None`` without a batch.
      title: the figure's title (default: the trial and agent).
      term_names: names of the columns of ``efe_terms`` (default risk, ambiguity,
        novelty, initial novelty).

    Returns:
      the :class:`~matplotlib.figure.Figure`.

    Raises:
      ValueError: for a ``trial`` or ``agent`` out of range (naming it and the
        range), or labels that do not fit the trajectory.
    """
    run, batched = _run(trajectory)
    K = run.observations.shape[0] if batched else 1
    if batched:
        k = _index(0 if agent is None else agent, K, "agent", "batch")
        run = _agent(run, k)
    elif agent not in (None, 0):
        raise ValueError(f"agent {agent!r} given, but the trajectory has no batch axis (one agent)")
    N, T = run.observations.shape[:2]
    n = _index(trial, N, "trial", "trajectory")
    Ns, Nu = _num_states(run), _num_controls(run, False)
    names = _Names(labels, Ns, Nu)
    F = len(Ns)
    controlled = _controlled(Nu)
    Np = run.policy_posterior.shape[-1]
    V = run.policies
    if V is not None and (V.ndim != 3 or V.shape[1] != Np or V.shape[2] != F):
        V = None

    factor_heights = [float(np.clip(s / 4, 0.9, 3.5)) for s in Ns]
    policy_height = float(np.clip(Np / 5, 1.4, 4.5))
    ratios = [*factor_heights, policy_height, 1.3]
    fig = Figure(figsize=(12, 1.5 * sum(ratios) + 0.8), layout="constrained")
    grid = fig.add_gridspec(F + 2, 1, height_ratios=ratios)

    true = run.states[n]
    for f in range(F):
        ax = fig.add_subplot(grid[f, 0])
        _heatmap(ax, run.beliefs[f][n].T, names.states[f], f"Beliefs: {names.factors[f]} (×: true state)")
        ax.plot(np.arange(1, T + 1), true[:, f], "x", color="tab:red", markersize=7, markeredgewidth=2)
        ax.set_xlabel("time", fontsize=8)

    middle = grid[F, 0].subgridspec(1, 2, width_ratios=[1.3, 1])
    ax = fig.add_subplot(middle[0, 0])
    policy_names = [names.policy(V, k, controlled) for k in range(Np)]
    _heatmap(ax, run.policy_posterior[n].T, policy_names, "Policy posterior q(π)")
    ax.set_xlabel("time", fontsize=8)
    bars = fig.add_subplot(middle[0, 1], sharey=ax)
    _efe_bars(bars, run.efe_terms[n, 0], _term_names(run.efe_terms.shape[-1], term_names))

    bottom = grid[F + 1, 0].subgridspec(1, len(controlled) + 1)
    for i, f in enumerate(controlled):
        ax = fig.add_subplot(bottom[0, i])
        if T > 1:
            probabilities = _action_marginal(run.action_probabilities[n, : T - 1], f, F)
            _heatmap(ax, probabilities.T, names.actions[f], f"Actions: {names.factors[f]} (•: taken)")
            ax.plot(np.arange(1, T), run.actions[n, :, f], "o", color="tab:red", markersize=6)
        else:
            ax.text(0.5, 0.5, "no moves (T = 1)", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"Actions: {names.factors[f]}", fontsize=10)
        ax.set_xlabel("move", fontsize=8)
    ax = fig.add_subplot(bottom[0, -1])
    ax.plot(np.arange(1, T + 1), run.precision[n], "o-" if T <= 50 else "-", color="tab:blue")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("time", fontsize=8)
    ax.set_title("Policy precision γ", fontsize=10)
    ax.grid(alpha=0.3)

    if title is None:
        title = f"Trial {n + 1} of {N}" + (f", agent {k + 1} of {K}" if batched else "")
    fig.suptitle(title)
    return fig


def _band(ax, x: np.ndarray, values: np.ndarray, batched: bool, *, color: str, label: str) -> None:
    """One agent's ``values [1, N]`` as a line, or a batch's ``[K, N]`` as mean ± one standard deviation."""
    mean = values.mean(axis=0)
    ax.plot(x, mean, "o-" if len(x) <= 50 else "-", color=color, markersize=4, label=label)
    if batched:
        spread = values.std(axis=0)
        ax.fill_between(x, mean - spread, mean + spread, color=color, alpha=0.25, linewidth=0)


def plot_agent_summary(
    trajectory, labels=None, *, title: str | None = None, max_trials_marked: int = 200
) -> Figure:
    """A run of trials: choices, reward, precision and beliefs, trial by trial.

    Panels, over trials ``1..N`` (one x axis):

    * per controlled factor (more than one action), the first action of each
      trial: for one agent, the probability of each first action (grey) with the
      action taken as dots; for a batch, the fraction of the ``K`` agents taking
      each first action, as stacked bars;
    * the reward of each trial, :math:`\\sum_t \\sum_g C_g[o_{g,t}, t]`
      (``trajectory.utility`` summed over the trial);
    * the policy precision :math:`\\gamma` averaged over the trial;
    * when some factors are uncontrolled (one action, e.g. a context), the
      posterior probability of the true state of each at the last time step
      (how well the agent has inferred it by the end of the trial).

    For a batch, reward, precision and beliefs are the mean over agents with a
    band of one standard deviation. So the figure has ``C + 2`` axes, plus one
    when a factor is uncontrolled.

    Args:
      trajectory: a :class:`~actinf.rollout.Trajectory` (one agent ``[N, T, ...]``
        or a batch ``[K, N, T, ...]``), JAX or NumPy arrays.
      labels: names (see the module docstring), e.g. ``world.labels``, or ``None``.
      title: the figure's title (default: the number of trials and agents).
      max_trials_marked: beyond this many trials, the single-agent choice panels
        leave out the dots of the actions taken.

    Returns:
      the :class:`~matplotlib.figure.Figure`.
    """
    run, batched = _run(trajectory)
    if not batched:
        run = _Run(
            **{
                name: (tuple(b[None] for b in value) if name == "beliefs" else value[None])
                for name, value in run._asdict().items()
                if name != "policies"
            },
            policies=None,
        )
    K, N, T = run.observations.shape[:3]
    Ns, Nu = _num_states(run), _num_controls(run, True)
    names = _Names(labels, Ns, Nu)
    F = len(Ns)
    controlled = _controlled(Nu)
    uncontrolled = [f for f in range(F) if Nu[f] == 1]
    x = np.arange(1, N + 1)

    rows = len(controlled) + 2 + bool(uncontrolled)
    heights = [float(np.clip(Nu[f] / 2.5, 1.2, 2.2)) for f in controlled] + [1.0] * (rows - len(controlled))
    fig = Figure(figsize=(11, 2.2 * sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]

    for ax, f in zip(axes, controlled, strict=False):
        actions = names.actions[f]
        if T == 1:
            ax.text(0.5, 0.5, "no moves (T = 1)", ha="center", va="center", transform=ax.transAxes)
        elif batched:
            first = run.actions[:, :, 0, f]  # [K, N]
            fractions = np.stack([(first == a).mean(axis=0) for a in range(len(actions))])  # [Nu_f, N]
            bottom = np.zeros(N)
            for a, name in enumerate(actions):
                ax.bar(x, fractions[a], bottom=bottom, width=1.0, color=f"C{a}", label=name, linewidth=0)
                bottom = bottom + fractions[a]
            ax.set_ylim(0.0, 1.0)
            ax.set_ylabel(f"fraction of {K} agents", fontsize=8)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        else:
            probabilities = _action_marginal(run.action_probabilities[0, :, 0], f, F)  # [N, Nu_f]
            ax.imshow(probabilities.T, extent=(0.5, N + 0.5, len(actions) - 0.5, -0.5), **_IMAGE)
            if N <= max_trials_marked:
                ax.plot(x, run.actions[0, :, 0, f], "o", color="tab:red", markersize=4)
            _yticks(ax, actions)
        what = "fraction of agents taking each" if batched else "probability of each (grey), taken (dots)"
        ax.set_title(f"First move, {names.factors[f]}: {what}", fontsize=10)

    ax = axes[len(controlled)]
    reward = run.utility.sum(axis=-1)  # [K, N]
    if batched:
        _band(ax, x, reward, batched, color="tab:green", label="mean ± s.d.")
        ax.legend(fontsize=7, loc="best")
    else:
        ax.bar(x, reward[0], width=0.8, color=np.where(reward[0] >= 0, "tab:green", "tab:red"))
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel("nats", fontsize=8)
    ax.set_title("Reward: sum over the trial of the log preferences of what was observed", fontsize=10)

    ax = axes[len(controlled) + 1]
    _band(ax, x, run.precision.mean(axis=-1), batched, color="tab:blue", label="mean ± s.d.")
    if batched:
        ax.legend(fontsize=7, loc="best")
    ax.set_ylabel("γ", fontsize=8)
    ax.set_title("Policy precision, mean over the trial", fontsize=10)

    if uncontrolled:
        ax = axes[-1]
        for i, f in enumerate(uncontrolled):
            last = run.beliefs[f][:, :, -1]  # [K, N, Ns_f]
            true = run.states[:, :, -1, f]  # [K, N]
            belief = np.take_along_axis(last, true[..., None], axis=-1)[..., 0]
            _band(ax, x, belief, batched, color=f"C{i}", label=names.factors[f])
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("probability", fontsize=8)
        ax.legend(fontsize=7, loc="best")
        ax.set_title("Belief in the true state at the end of the trial (uncontrolled factors)", fontsize=10)

    for ax in axes:
        ax.set_xlim(0.5, N + 0.5)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("trial")
    if title is None:
        title = f"{N} trials" + (f", {K} agents" if batched else "")
    fig.suptitle(title)
    return fig


def save_agent_figures(
    trajectory, labels, out_dir: str | os.PathLike, *, prefix: str = "", dpi: int = 120
) -> list[Path]:
    """Write ``{prefix}trial.png`` (the first trial of the first agent) and ``{prefix}summary.png``.

    Args:
      trajectory: a :class:`~actinf.rollout.Trajectory`, one agent or a batch.
      labels: names (see the module docstring), or ``None``.
      out_dir: the folder (created when missing).
      prefix: put before each file name.
      dpi: resolution of the PNG files.

    Returns:
      the paths written, ``[trial, summary]``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in (
        ("trial", lambda: plot_agent_trial(trajectory, labels, trial=0)),
        ("summary", lambda: plot_agent_summary(trajectory, labels)),
    ):
        path = out / f"{prefix}{name}.png"
        fig = make()
        fig.savefig(path, dpi=dpi, format="png")
        fig.clear()  # built without pyplot: nothing registered to close, free the artists now
        paths.append(path)
    return paths
