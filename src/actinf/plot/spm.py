"""Figures of SPM-scheme results, in the spirit of SPM's ``spm_MDP_VB_trial`` and ``_game``.

Both functions take the :class:`~actinf.SpmTrialResult` records returned by
:func:`~actinf.spm_trial` / :func:`~actinf.spm_sequence`, return a
:class:`matplotlib.figure.Figure` and save it as PNG when ``path`` is given.
They build the figure without ``pyplot``, so they never touch the GUI backend
(safe under ``matplotlib.use("Agg")``, on servers, in threads).

``labels`` is any object with the attributes of
:class:`~actinf.models.ModelLabels` (``factors``, ``states``, ``modalities``,
``outcomes``, ``actions``); without it, numbered names are used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_trial", "plot_trials"]

_IMAGE = {"cmap": "gray_r", "vmin": 0.0, "vmax": 1.0, "aspect": "auto", "interpolation": "nearest"}


class _Names:
    """Names for a model's factors, states, modalities, outcomes and actions."""

    def __init__(self, model, labels=None):
        Ns, Nu, No = model.num_states, model.num_controls, model.num_outcomes
        default = {
            "factors": tuple(f"factor {f + 1}" for f in range(len(Ns))),
            "states": tuple(tuple(f"state {i + 1}" for i in range(n)) for n in Ns),
            "modalities": tuple(f"modality {g + 1}" for g in range(len(No))),
            "outcomes": tuple(tuple(f"outcome {i + 1}" for i in range(n)) for n in No),
            "actions": tuple(tuple(f"action {i + 1}" for i in range(n)) for n in Nu),
        }
        for name, value in default.items():
            setattr(self, name, value if labels is None else tuple(getattr(labels, name)))

    def policy(self, V: np.ndarray, k: int, controlled: Sequence[int]) -> str:
        """A policy as its sequence of moves, e.g. ``"cue → left"``."""
        moves = []
        for t in range(V.shape[0]):
            moves.append("+".join(self.actions[f][V[t, k, f]] for f in controlled))
        return " → ".join(moves)


def _finish(fig: Figure, path) -> Figure:
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fig.savefig(path, dpi=110, format="png")
    return fig


def _controlled(model) -> list[int]:
    return [f for f, n in enumerate(model.num_controls) if n > 1]


def _action_marginal(P: np.ndarray, f: int) -> np.ndarray:
    """Marginal probability of factor ``f``'s actions, ``[Nu_f, T-1]``, from the joint ``P``."""
    F = P.ndim - 1
    return P.sum(axis=tuple(i for i in range(F) if i != f))


def _softmax(c: np.ndarray) -> np.ndarray:
    e = np.exp(c - c.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _image(ax, data, ylabels, title, *, dots=None, dot_color="tab:red", xlabels=None):
    ax.imshow(np.asarray(data), **_IMAGE)
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=8)
    n = np.asarray(data).shape[1]
    ax.set_xticks(range(n), xlabels if xlabels is not None else [str(t + 1) for t in range(n)])
    if dots is not None:
        dots = np.asarray(dots)
        ax.plot(np.arange(len(dots)), dots, "o", color=dot_color, markersize=6)
    ax.set_title(title, fontsize=10)


def plot_trial(result, labels=None, path=None) -> Figure:
    """One trial, as SPM's ``spm_MDP_VB_trial``.

    Panels: the posterior over each hidden-state factor over time (``X``, with the
    true states as dots); the preferences ``softmax(C)`` of each outcome modality
    with the outcomes observed (dots); the posterior over policies over time
    (``R``); the probability of each action at each move (``P``, marginal per
    controlled factor, with the action taken as dots); the policy precision ``w``.

    Args:
      result: a :class:`~actinf.SpmTrialResult`.
      labels: names (see the module docstring), e.g. ``actinf.models.TMAZE_LABELS``.
      path: where to save the PNG (folders are created), or ``None``.

    Returns:
      the :class:`~matplotlib.figure.Figure`.
    """
    model = result.model
    names = _Names(model, labels)
    F, G = model.num_factors, model.num_modalities
    controlled = _controlled(model)
    s, o, u = (np.asarray(x) for x in (result.s, result.o, result.u))
    rows = max(F, G)
    fig = Figure(figsize=(11, 2.2 * (rows + 1) + 0.6), layout="constrained")
    grid = fig.add_gridspec(rows + 1, 2, height_ratios=[1] * rows + [1.4])
    for f in range(F):
        ax = fig.add_subplot(grid[f, 0])
        _image(
            ax,
            result.X[f],
            names.states[f],
            f"Hidden states: {names.factors[f]}",
            dots=s[f],
            dot_color="tab:cyan",
        )
    for g in range(G):
        ax = fig.add_subplot(grid[g, 1])
        _image(
            ax,
            _softmax(np.asarray(model.preference[g])),
            names.outcomes[g],
            f"Outcomes and preferences: {names.modalities[g]}",
            dots=o[g],
        )
    bottom = grid[rows, :].subgridspec(
        1, 2 + len(controlled), width_ratios=[1.4] + [1] * (1 + len(controlled))
    )
    ax = fig.add_subplot(bottom[0, 0])
    V = np.asarray(model.policies)
    _image(ax, result.R, [names.policy(V, k, controlled) for k in range(V.shape[1])], "Policy posterior (R)")
    ax.set_xlabel("time")
    P = np.asarray(result.P)
    for i, f in enumerate(controlled):
        ax = fig.add_subplot(bottom[0, 1 + i])
        _image(
            ax,
            _action_marginal(P, f),
            names.actions[f],
            f"Action probabilities: {names.factors[f]}",
            dots=u[f],
        )
        ax.set_xlabel("move")
    ax = fig.add_subplot(bottom[0, -1])
    w = np.asarray(result.w)
    ax.plot(np.arange(1, len(w) + 1), w, "o-", color="tab:blue")
    ax.set_xticks(range(1, len(w) + 1))
    ax.set_xlabel("time")
    ax.set_title("Policy precision (w)", fontsize=10)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def plot_trials(results: Sequence, labels=None, path=None) -> Figure:
    """A sequence of trials, in the spirit of SPM's ``spm_MDP_VB_game``.

    Panels, over trials: the probability of each first action (first controlled
    factor; the action taken as dots); the utility of the outcomes of each trial
    (the sum of the log preferences ``C`` of the outcomes observed); the policy
    precision ``w`` at the first move and averaged over the trial; and, for each
    uncontrolled factor whose initial-state counts ``d`` are learned, the
    learned prior over its initial state after each trial, with the true
    initial state of each trial marked on top.

    Args:
      results: :class:`~actinf.SpmTrialResult` records, one per trial, in order.
      labels: names (see the module docstring), e.g. ``actinf.models.TMAZE_LABELS``.
      path: where to save the PNG (folders are created), or ``None``.

    Returns:
      the :class:`~matplotlib.figure.Figure`.
    """
    results = list(results)
    if not results:
        raise ValueError("plot_trials needs at least one trial result")
    model = results[0].model
    names = _Names(model, labels)
    n = len(results)
    trials = np.arange(1, n + 1)
    controlled = _controlled(model) or [0]
    learned = [
        f for f, nu in enumerate(model.num_controls) if nu == 1 and model.initial_counts is not None
    ] or ([] if model.initial_counts is None else list(range(model.num_factors)))

    fig = Figure(figsize=(10, 2.4 * (3 + len(learned)) + 0.4), layout="constrained")
    axes = fig.subplots(3 + len(learned), 1, sharex=True, squeeze=False)[:, 0]

    # first move
    f = controlled[0]
    first = np.stack([_action_marginal(np.asarray(r.P), f)[:, 0] for r in results], axis=1)
    taken = [int(np.asarray(r.u)[f, 0]) for r in results]
    ax = axes[0]
    ax.imshow(first, extent=(0.5, n + 0.5, len(names.actions[f]) - 0.5, -0.5), **_IMAGE)
    ax.plot(trials, taken, "o", color="tab:red", markersize=5)
    ax.set_yticks(range(len(names.actions[f])), names.actions[f])
    ax.set_title(f"First move ({names.factors[f]}): action probabilities, action taken (dots)", fontsize=10)

    # utility of outcomes
    utility = np.array(
        [
            sum(
                float(np.asarray(r.model.preference[g])[int(o), t])
                for g in range(model.num_modalities)
                for t, o in enumerate(np.asarray(r.o)[g])
            )
            for r in results
        ]
    )
    ax = axes[1]
    ax.bar(trials, utility, color=np.where(utility >= 0, "tab:green", "tab:red"))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel("utility (nats)")
    ax.set_title("Outcomes: sum of the log preferences C of what was observed", fontsize=10)

    # precision
    w = [np.asarray(r.w) for r in results]
    ax = axes[2]
    ax.plot(trials, [x[0] for x in w], "o-", label="at the first move")
    ax.plot(trials, [x.mean() for x in w], "s--", label="mean over the trial")
    ax.set_ylabel("w")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Policy precision", fontsize=10)

    # learned initial states
    for ax, f in zip(axes[3:], learned, strict=True):
        counts = np.stack([np.asarray(r.model.initial_counts[f]) for r in results])
        belief = counts / counts.sum(axis=1, keepdims=True)
        true = np.array([int(np.asarray(r.s)[f, 0]) for r in results])
        colors = [f"C{i}" for i in range(belief.shape[1])]
        for i in range(belief.shape[1]):
            ax.plot(trials, belief[:, i], "-", color=colors[i], label=names.states[f][i])
            hit = true == i
            ax.plot(trials[hit], np.full(hit.sum(), 1.08), "v", color=colors[i], markersize=6)
        ax.set_ylim(-0.02, 1.15)
        ax.set_ylabel("probability")
        ax.legend(fontsize=8, loc="center right")
        ax.set_title(
            f"Learned prior over the initial {names.factors[f]} (triangles: true {names.factors[f]})",
            fontsize=10,
        )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xlim(0.5, n + 0.5)
    axes[-1].set_xlabel("trial")
    return _finish(fig, path)
