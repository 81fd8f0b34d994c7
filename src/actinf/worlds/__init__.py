"""Worlds: generative processes (environments) for active inference agents.

Every world follows :class:`World`: pure ``reset(rng_key)``,
``step(rng_key, state, action)`` and ``next_trial(rng_key, state)``, each
returning ``(WorldState, observation [G])``, plus the agent's ``model`` and
the ``labels``. Use ``jax.vmap`` over rng keys for many worlds, and
``eqx.filter_jit(world.step)`` (or ``jax.jit`` of a function taking the world
as an argument) to compile.

:data:`WORLDS` lists the ready-made worlds with their options and defaults;
:func:`make_world` builds one by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from .base import CategoricalWorld, World, WorldState, sample_outcomes, sample_states
from .explore_exploit import EXPLORE_EXPLOIT_LABELS, ExploreExploitWorld, explore_exploit_model
from .grid import GridWorld
from .reversal import REVERSAL_LABELS, ReversalWorld, reversal_model
from .tmaze import TmazeWorld

__all__ = [
    "EXPLORE_EXPLOIT_LABELS",
    "REVERSAL_LABELS",
    "WORLDS",
    "CategoricalWorld",
    "ExploreExploitWorld",
    "GridWorld",
    "ReversalWorld",
    "TmazeWorld",
    "World",
    "WorldSpec",
    "WorldState",
    "explore_exploit_model",
    "make_world",
    "reversal_model",
    "sample_outcomes",
    "sample_states",
]


class WorldSpec(NamedTuple):
    """A registered world: its builder, options with defaults, and a one-line description."""

    builder: Callable[..., World]
    options: dict[str, Any]
    description: str


def _spec(builder: Callable[..., World], description: str) -> WorldSpec:
    params = inspect.signature(builder).parameters.values()
    return WorldSpec(builder, {p.name: p.default for p in params}, description)


#: The ready-made worlds by name (for ``actinf worlds``).
WORLDS: dict[str, WorldSpec] = {
    "tmaze": _spec(TmazeWorld, "SPM's three-arm maze: a cue tells which arm is baited"),
    "grid": _spec(GridWorld, "a grid with walls and a goal, optionally a cue telling which of two goals"),
    "explore-exploit": _spec(
        ExploreExploitWorld, "two slot machines and an advisor (Smith, Friston & Whyte 2022)"
    ),
    "reversal": _spec(ReversalWorld, "two options; the rewarded one switches at a given trial"),
}


def make_world(name: str, **options) -> World:
    """Build the world ``name`` of :data:`WORLDS` with ``options`` (the others default).

    Raises:
      ValueError: naming an unknown world or option.
    """
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}: choose one of {', '.join(sorted(WORLDS))}")
    spec = WORLDS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for world {name!r}: its options are {', '.join(spec.options)}"
        )
    return spec.builder(**options)
