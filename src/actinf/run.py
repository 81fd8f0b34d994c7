"""Run agents in a world and save what they did: the library side of ``actinf run``.

Three steps, each usable on its own:

* :func:`default_agent`: the :class:`~actinf.agent.Agent` a world calls for: SPM's
  marginal message passing when the world's trials are as long as the model's
  policies, fixed-point inference with receding-horizon planning when they are
  longer (a large grid);
* :func:`run_world`: ``K`` independent agents for ``N`` trials with
  :func:`~actinf.rollout.rollout_batch`, in chunks of trials that all have the
  same size, so that it compiles once (for the first chunk) however long the run;
* :func:`save_run`: ``trajectory.npz`` (every array, with the names of factors,
  states, modalities, outcomes and actions), ``summary.json`` (settings and
  per-trial summaries) and, optionally, the figures of :mod:`actinf.plot`.

Nothing here prints; the command line (:mod:`actinf.cli`) adds the progress bar
and the messages.

Example::

    import jax
    from actinf.run import default_agent, run_world, save_run
    from actinf.worlds import make_world

    world = make_world("tmaze")
    agent = default_agent(world, alpha=16.0)
    traj = run_world(jax.random.key(0), agent, world, trials=32, agents=100)
    save_run(traj, world, "runs/tmaze", meta={"world": "tmaze", "seed": 0}, agent=agent)

The files
---------
``trajectory.npz`` (:func:`numpy.load`; no pickles) holds, for ``K`` agents,
``N`` trials of ``T`` time steps, ``G`` modalities, ``F`` factors, ``Np``
policies, ``n`` expected free energy terms and ``Nu_f`` controls per factor:

========================  ========================  =====================================================
key                       shape                     meaning
========================  ========================  =====================================================
observations              int ``[K, N, T, G]``      outcome index of each modality
states                    int ``[K, N, T, F]``      the world's true hidden state of each factor
actions                   int ``[K, N, T-1, F]``    control taken on each factor after each step
utility                   ``[K, N, T]``             utility of the outcomes, :math:`\\sum_g C_g[o_g, t]`
precision                 ``[K, N, T]``             policy precision :math:`\\gamma`
policy_posterior          ``[K, N, T, Np]``         :math:`q(\\pi)`
efe                       ``[K, N, T, Np]``         expected free energy :math:`G_\\pi` (lower is better)
efe_terms                 ``[K, N, T, Np, n]``      each term's contribution to ``efe`` (``efe_term_names``)
free_energy               ``[K, N, T, Np]``         variational free energy :math:`F_\\pi`
total_free_energy         ``[K, N, T]``             :math:`\\sum_\\pi q(\\pi)F_\\pi + KL[q(\\pi)\\|p(\\pi)]`
action_probabilities      ``[K, N, T, Nu_1*...]``   probability of each joint action (row-major over factors)
beliefs_<factor>          ``[K, N, T, Ns_f]``       posterior over the factor's state at each time
factors                   str ``[F]``               factor names (as in the world's labels)
modalities                str ``[G]``               modality names
factor_keys               str ``[F]``               the sanitised names used in the keys below
modality_keys             str ``[G]``               likewise for modalities
states_<factor>           str ``[Ns_f]``            state names of a factor
actions_<factor>          str ``[Nu_f]``            action (control) names of a factor
outcomes_<modality>       str ``[No_g]``            outcome names of a modality
efe_term_names            str ``[n]``               names of the columns of ``efe_terms``
========================  ========================  =====================================================

``<factor>`` and ``<modality>`` are the names made safe for keys: lower case,
runs of other characters than letters and digits replaced by ``_`` (a number is
appended should two names collide). ``summary.json`` repeats this table under
``"files"`` with the actual shapes.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .agent import Agent, Deterministic, Learning, Sampled
from .inference.fixed_point import FixedPoint
from .inference.mmp import MarginalMessagePassing
from .rollout import Trajectory, rollout_batch, start_batch
from .worlds.base import World

__all__ = ["DEFAULT_CHUNK", "agent_settings", "default_agent", "run_world", "save_run"]

#: Trials per compiled call of :func:`run_world` (fewer when the run is shorter).
DEFAULT_CHUNK = 8

_DEFAULT_LEARNING = Learning()


def default_agent(
    world: World,
    *,
    inference: MarginalMessagePassing | FixedPoint | None = None,
    alpha: float | None = None,
    deterministic: bool = False,
    learning: Learning | None = _DEFAULT_LEARNING,
) -> Agent:
    """The agent for ``world``: its model with SPM's defaults, or receding-horizon planning.

    Args:
      world: the world; the agent uses ``world.model``.
      inference: the state inference; default
        :class:`~actinf.inference.mmp.MarginalMessagePassing` (SPM) when
        ``world.trial_length`` equals the model's horizon, else
        :class:`~actinf.inference.fixed_point.FixedPoint`.
      alpha: action precision of :class:`~actinf.agent.Sampled` (default SPM's 512).
      deterministic: take the most probable action (:class:`~actinf.agent.Deterministic`).
      learning: :class:`~actinf.agent.Learning` (rate and forgetting; default
        ``Learning()``, SPM's rule) or None for fixed counts.

    Raises:
      ValueError: for ``alpha`` with ``deterministic``, a non-positive ``alpha``, a
        negative learning rate, a forgetting outside [0, 1], or marginal message
        passing in a world whose trials are longer than the model's policies.
    """
    if deterministic and alpha is not None:
        raise ValueError("choose either an action precision alpha or deterministic actions, not both")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"the action precision alpha must be a positive number, got {alpha}")
    if learning is not None:
        if not (math.isfinite(learning.rate) and learning.rate >= 0):
            raise ValueError(f"the learning rate must be a non-negative number, got {learning.rate}")
        if not 0 <= learning.forgetting <= 1:
            raise ValueError(f"forgetting must lie in [0, 1], got {learning.forgetting}")
    action = Deterministic() if deterministic else Sampled() if alpha is None else Sampled(float(alpha))
    settings: dict[str, Any] = {"action": action, "learning": learning}
    if inference is None and world.trial_length == world.model.horizon:
        return Agent(world.model, **settings)
    if inference is None:
        inference = FixedPoint()
    return Agent(world.model, inference=inference, trial_length=world.trial_length, **settings)


def agent_settings(agent: Agent) -> dict[str, Any]:
    """A JSON-ready description of ``agent``'s parts (for ``summary.json``)."""
    inference: dict[str, Any] = {"name": type(agent.inference).__name__}
    inference.update({k: _jsonable(v) for k, v in agent.inference._asdict().items()})
    if isinstance(agent.action, Sampled):
        action: dict[str, Any] = {"name": "Sampled", "alpha": float(agent.action.alpha)}
    else:
        action = {"name": type(agent.action).__name__}
    learning = None
    if agent.learning is not None:
        learning = {"rate": float(agent.learning.rate), "forgetting": float(agent.learning.forgetting)}
    return {
        "inference": inference,
        "action": action,
        "learning": learning,
        "precision": type(agent.precision).__name__,
        "efe_terms": list(_term_names(agent)),
        "beta": float(agent.beta),
        "zeta": float(agent.zeta),
        "trial_length": agent.horizon,
    }


def _term_names(agent: Agent) -> tuple[str, ...]:
    names = [re.sub(r"(?<!^)(?=[A-Z])", "_", type(t).__name__).lower() for t in agent.terms]
    return (*names, "initial_novelty")


def _to_host(trajectory: Trajectory) -> Trajectory:
    return jax.tree.map(np.asarray, trajectory._replace(end=None))


def run_world(
    rng_key: jax.Array,
    agent: Agent,
    world: World,
    *,
    trials: int,
    agents: int,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Trajectory:
    """Run ``agents`` independent agents, each in its own copy of ``world``, for ``trials`` trials.

    The trials go through :func:`~actinf.rollout.rollout_batch` ``chunk`` at a
    time, each call continuing from the last one's ``end`` (learned counts and
    world state carried over). Every call has the same ``chunk`` trials, so only
    the first compiles: when ``trials`` is not a multiple of a ``chunk`` given,
    the last call runs a whole chunk and the extra trials are dropped. A second run with
    the same world, agent settings, ``agents`` and ``chunk`` compiles nothing.

    Args:
      rng_key: key for the start (``start_batch``) and every chunk (``fold_in``
        of its index), so a run is reproducible for a given ``chunk``.
      agent: the :class:`~actinf.agent.Agent` (see :func:`default_agent`).
      world: the world.
      trials: trials per agent, ``N >= 1``.
      agents: number of agents, ``K >= 1``.
      chunk: trials per compiled call; default the largest divisor of ``trials``
        up to ``DEFAULT_CHUNK`` (so ``end`` is exactly after ``trials``).
      progress: called as ``progress(done_trials, trials)`` after each chunk.

    Returns:
      the batched :class:`~actinf.rollout.Trajectory` ``[K, N, ...]``, its arrays
      as NumPy arrays (moved to the host after each chunk). Its ``end`` is the
      last call's: after ``N`` trials when ``chunk`` divides ``N``, otherwise after
      the padded ``ceil(N / chunk) * chunk`` trials; choose a ``chunk`` that
      divides ``N`` to continue the run from ``end`` exactly.

    Raises:
      ValueError: for ``trials``, ``agents`` or ``chunk`` below 1, or an agent
        that does not fit the world.
    """
    for name, value in (("trials", trials), ("agents", agents)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    trials, agents = int(trials), int(agents)
    if chunk is None:  # the largest divisor of trials up to DEFAULT_CHUNK: no padded chunk
        chunk = max(c for c in range(1, min(trials, DEFAULT_CHUNK) + 1) if trials % c == 0)
    if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk}")
    chunk = int(chunk)
    key_start, key_run = jax.random.split(rng_key)
    carry = start_batch(key_start, agent, world, agents)
    parts = []
    done = 0
    for i in range(-(-trials // chunk)):
        traj = rollout_batch(jax.random.fold_in(key_run, i), agent, world, chunk, start=carry)
        carry = traj.end
        part = _to_host(traj)
        keep = min(chunk, trials - done)
        if keep < chunk:
            part = jax.tree.map(lambda x, keep=keep: x[:, :keep], part)
        parts.append(part)
        done += keep
        if progress is not None:
            progress(done, trials)
    whole = parts[0] if len(parts) == 1 else jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *parts)
    return whole._replace(end=carry)


# ---------------------------------------------------------------------------- saving


def _key_names(names, what: str) -> tuple[str, ...]:
    """``names`` made safe for npz keys, distinct."""
    keys: list[str] = []
    for i, name in enumerate(names):
        key = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_") or f"{what}{i}"
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return tuple(keys)


def _jsonable(value: Any) -> Any:
    """``value`` with tuples, NumPy and JAX arrays and scalars as JSON types (non-finite floats: None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray | jax.Array | np.generic):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _floats(x: np.ndarray) -> list:
    return _jsonable(np.asarray(x, np.float64))


def _arrays(trajectory: Trajectory, labels, term_names) -> dict[str, tuple[np.ndarray, str]]:
    """Every npz entry: key -> (array, meaning)."""
    info = trajectory.info
    K, N, T = np.shape(trajectory.observations)[:3]
    factor_keys = _key_names(labels.factors, "factor")
    modality_keys = _key_names(labels.modalities, "modality")
    P = np.asarray(info.action_probabilities)
    out: dict[str, tuple[np.ndarray, str]] = {
        "observations": (trajectory.observations, "outcome index of each modality"),
        "states": (trajectory.states, "the world's true hidden state of each factor"),
        "actions": (trajectory.actions, "control taken on each factor after each time step"),
        "utility": (trajectory.utility, "log preference of the outcomes observed, sum_g C_g[o_g, t]"),
        "precision": (info.precision, "policy precision gamma"),
        "policy_posterior": (info.policy_posterior, "policy posterior q(pi)"),
        "efe": (info.efe, "expected free energy G of each policy (lower is better; 0 if pruned)"),
        "efe_terms": (info.efe_terms, "each term's contribution to efe (columns: efe_term_names)"),
        "free_energy": (info.free_energy, "variational free energy F of each policy (0 if pruned)"),
        "total_free_energy": (info.total_free_energy, "sum_pi q(pi) F_pi + KL[q(pi) || p(pi)]"),
        "action_probabilities": (
            P.reshape(K, N, T, -1),
            "probability of each joint action, flattened row-major over factors (last step: unused)",
        ),
    }
    for f, (key, name) in enumerate(zip(factor_keys, labels.factors, strict=True)):
        out[f"beliefs_{key}"] = (info.states[f], f"posterior over the states of factor {name!r} at each time")
    out["factors"] = (np.asarray(labels.factors, str), "factor names")
    out["modalities"] = (np.asarray(labels.modalities, str), "modality names")
    out["factor_keys"] = (np.asarray(factor_keys, str), "factor names as used in keys")
    out["modality_keys"] = (np.asarray(modality_keys, str), "modality names as used in keys")
    for f, (key, name) in enumerate(zip(factor_keys, labels.factors, strict=True)):
        out[f"states_{key}"] = (np.asarray(labels.states[f], str), f"state names of factor {name!r}")
        out[f"actions_{key}"] = (np.asarray(labels.actions[f], str), f"action names of factor {name!r}")
    for g, (key, name) in enumerate(zip(modality_keys, labels.modalities, strict=True)):
        out[f"outcomes_{key}"] = (np.asarray(labels.outcomes[g], str), f"outcome names of modality {name!r}")
    n_terms = np.shape(info.efe_terms)[-1]
    names = term_names if term_names is not None and len(term_names) == n_terms else None
    names = names or tuple(f"term_{i}" for i in range(n_terms))
    out["efe_term_names"] = (np.asarray(names, str), "names of the columns of efe_terms")
    return {k: (np.asarray(v), meaning) for k, (v, meaning) in out.items()}


def _batched(trajectory: Trajectory) -> Trajectory:
    if np.ndim(trajectory.observations) == 3:  # one agent: add the [K] axis
        return jax.tree.map(lambda x: np.asarray(x)[None], trajectory._replace(end=None))
    return _to_host(trajectory)


def _summaries(trajectory: Trajectory, labels, num_controls) -> dict[str, Any]:
    """Per-trial summaries over agents: total utility, first actions, precision."""
    total = np.asarray(trajectory.utility, np.float64).sum(axis=2)  # [K, N]
    actions = np.asarray(trajectory.actions)
    first: dict[str, dict[str, list]] = {}
    if actions.shape[2] > 0:
        for f, n in enumerate(num_controls):
            if n > 1:
                choice = actions[:, :, 0, f]  # [K, N]
                first[labels.factors[f]] = {
                    labels.actions[f][u]: _floats((choice == u).mean(axis=0)) for u in range(n)
                }
    return {
        "utility_per_trial": {"mean": _floats(total.mean(axis=0)), "sd": _floats(total.std(axis=0))},
        "first_action_fraction": first,
        "precision_per_trial": _floats(np.asarray(trajectory.info.precision, np.float64).mean(axis=(0, 2))),
    }


def save_run(
    trajectory: Trajectory,
    world: World,
    out_dir: str | os.PathLike,
    *,
    meta: dict[str, Any],
    agent: Agent | None = None,
    figures: bool = True,
) -> dict[str, Path]:
    """Write ``trajectory.npz``, ``summary.json`` and (``figures``) ``trial.png`` and ``summary.png``.

    The layout of the npz file is in the module docstring (and ``docs/cli.md``).
    ``summary.json`` holds ``meta`` (world name and options, seed, wall time: what
    the caller knows), then ``agent`` (:func:`agent_settings`, when ``agent`` is
    given), ``trials``, ``agents``, ``trial_length``, ``actinf_version``, ``date``
    (UTC, ISO 8601), the per-trial summaries over agents:

    * ``utility_per_trial``: ``{"mean": [N], "sd": [N]}``, the total utility of
      each trial (summed over its time steps), mean and standard deviation
      (``ddof = 0``) over agents;
    * ``first_action_fraction``: for each factor with more than one control,
      ``{action name: [N]}``, the fraction of agents whose first action of the
      trial was that one;
    * ``precision_per_trial``: ``[N]``, the policy precision averaged over agents
      and time steps;

    and ``files``: every npz key with its shape, dtype and meaning, and the figures.

    Args:
      trajectory: a :class:`~actinf.rollout.Trajectory`, batched (``[K, N, ...]``,
        as from :func:`run_world`) or of one agent (``[N, ...]``).
      world: the world it ran in (for the labels and the trial length).
      out_dir: the folder, created if missing.
      meta: JSON-ready settings to record (tuples and arrays are converted).
      agent: the agent that ran, to record its settings and the EFE term names.
      figures: also write the figures with :func:`actinf.plot.save_agent_figures`
        (needs matplotlib).

    Returns:
      the paths written: ``trajectory``, ``summary``, and ``trial_figure`` and
      ``summary_figure`` with ``figures``.

    Raises:
      OSError: when the folder or a file cannot be written.
      ImportError: with ``figures`` when matplotlib is missing.
    """
    from . import __version__

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    host = _batched(trajectory)
    labels = world.labels
    K, N, T = np.shape(host.observations)[:3]
    arrays = _arrays(host, labels, None if agent is None else _term_names(agent))
    paths = {"trajectory": out / "trajectory.npz", "summary": out / "summary.json"}
    np.savez_compressed(paths["trajectory"], **{k: a for k, (a, _) in arrays.items()})
    if figures:
        from . import plot

        trial_png, summary_png = plot.save_agent_figures(trajectory, labels, out)
        paths["trial_figure"], paths["summary_figure"] = trial_png, summary_png
    files: dict[str, Any] = {
        "trajectory.npz": {
            k: {"shape": list(a.shape), "dtype": str(a.dtype), "meaning": meaning}
            for k, (a, meaning) in arrays.items()
        }
    }
    if figures:
        files["trial.png"] = "the first trial of the first agent (actinf.plot.plot_agent_trial)"
        files["summary.png"] = (
            "per-trial choices, reward, precision, beliefs (actinf.plot.plot_agent_summary)"
        )
    summary = {
        **_jsonable(meta),
        **({"agent": agent_settings(agent)} if agent is not None else {}),
        "trials": int(N),
        "agents": int(K),
        "trial_length": int(T),
        "actinf_version": __version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **_summaries(host, labels, world.model.num_controls),
        "files": files,
    }
    with open(paths["summary"], "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
        fh.write("\n")
    return paths
