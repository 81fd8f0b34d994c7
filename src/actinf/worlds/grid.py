"""A grid world: walk to a goal, optionally after reading a cue.

The task
--------
The agent moves on a ``height`` x ``width`` grid with walls; actions are stay,
up, down, left, right (a move into a wall or off the grid leaves it where it
is). Cell ``(row, column)`` is location ``row * width + column`` (row 0 at the top).

Plain variant (``cue=None``)
    Factor ``location`` (``height * width`` states, 5 actions); modality
    ``location`` (the cell, observed without error); log preference
    ``goal_preference`` for the goal cell minus ``distance_preference`` times
    each cell's distance to the goal (shortest path around the walls; cells
    that cannot reach the goal count as one step further than the farthest).
    The distance term lets a planner whose policies are shorter than the way
    to the goal still head toward it.

Cue variant (``cue`` and ``alternative_goal`` given)
    A second factor ``context`` (2 states, uncontrolled, uniform prior): the
    goal is ``goal`` (context 0) or ``alternative_goal`` (context 1). Three
    modalities: ``location``; ``cue`` (none, "goal", "alternative goal"),
    which reports the context without error at the cue cell and nothing
    elsewhere; ``reward`` (none, reward), reward at the context's goal cell.
    Preference ``goal_preference`` for the reward (no preference over
    locations). The cue's epistemic value makes the agent visit it first
    when the horizon allows.

Policies: every action sequence of length ``depth`` (1-3), ``5 ** depth`` of
them, so the model's horizon is ``depth + 1``. A trial lasts ``steps`` time
steps (default: ``depth + 1`` with a cue; without one, enough to walk the
shortest path to the goal, at least ``depth + 1``). When ``steps`` exceeds
``depth + 1`` the agent plans with a receding horizon
(:class:`~actinf.inference.fixed_point.FixedPoint` inference). The agent starts
at ``start``; its model holds the process arrays themselves.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import numpy as np

from ..model import generative_model
from ..models.tmaze import ModelLabels
from .base import CategoricalWorld

__all__ = ["MOVES", "GridWorld"]

#: Actions: (name, row step, column step).
MOVES = (("stay", 0, 0), ("up", -1, 0), ("down", 1, 0), ("left", 0, -1), ("right", 0, 1))


def _cell(name: str, cell, height: int, width: int, walls: np.ndarray) -> tuple[int, int]:
    try:
        r, c = (int(x) for x in cell)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (row, column) pair, got {cell!r}") from None
    if not (0 <= r < height and 0 <= c < width):
        raise ValueError(f"{name} {(r, c)} lies outside the {height} x {width} grid")
    if walls[r, c]:
        raise ValueError(f"{name} {(r, c)} lies on a wall")
    return r, c


def _distances(walls: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """Shortest-path distance from every cell to ``goal`` around the walls, ``[height, width]``.

    Walls and cells cut off from the goal get one more than the largest finite distance.
    """
    height, width = walls.shape
    dist = np.full((height, width), -1)
    dist[goal] = 0
    frontier = [goal]
    while frontier:
        nxt = []
        for r, c in frontier:
            for _, dr, dc in MOVES[1:]:
                r2, c2 = r + dr, c + dc
                if 0 <= r2 < height and 0 <= c2 < width and not walls[r2, c2] and dist[r2, c2] < 0:
                    dist[r2, c2] = dist[r, c] + 1
                    nxt.append((r2, c2))
        frontier = nxt
    return np.where(dist < 0, dist.max() + 1, dist)


class GridWorld(CategoricalWorld):
    """A grid world (see the module docstring).

    Args:
      height, width: grid size (3 x 3).
      walls: bool ``[height, width]``, True on walls (default none).
      goal: (row, column) of the goal (default the bottom-right corner).
      start: (row, column) where every trial starts ((0, 0)).
      depth: policy depth, 1 to 3 (2).
      goal_preference: log preference for the goal / reward (4).
      steps: time steps per trial (see the module docstring).
      distance_preference: log preference lost per step of distance from the goal
        (plain variant only; 1).
      cue: (row, column) of the cue cell, or None for the plain variant.
      alternative_goal: (row, column) of the other candidate goal (needed with ``cue``).

    Example::

        world = GridWorld(height=3, width=3, goal=(2, 2))
        state, obs = world.reset(jax.random.key(0))                    # obs [1]: cell 0
        state, obs = world.step(jax.random.key(1), state, jnp.array([2]))   # down: cell 3
    """

    steps: int = eqx.field(static=True)

    def __init__(
        self,
        *,
        height: int = 3,
        width: int = 3,
        walls=None,
        goal=None,
        start=(0, 0),
        depth: int = 2,
        goal_preference: float = 4.0,
        cue=None,
        alternative_goal=None,
        steps: int | None = None,
        distance_preference: float = 1.0,
    ):
        for name, n in (("height", height), ("width", width)):
            if isinstance(n, bool) or int(n) != n or n < 1:
                raise ValueError(f"{name} must be a positive integer, got {n}")
        height, width = int(height), int(width)
        if height * width < 2:
            raise ValueError(f"the grid needs at least 2 cells, got height {height} and width {width}")
        walls = np.zeros((height, width), bool) if walls is None else np.asarray(walls)
        if walls.shape != (height, width):
            raise ValueError(
                f"walls must have shape ({height}, {width}) = (height, width), got {walls.shape}"
            )
        if walls.dtype != bool:
            raise ValueError(f"walls must be a boolean array, got dtype {walls.dtype}")
        if isinstance(depth, bool) or depth not in (1, 2, 3):
            raise ValueError(f"depth must be 1, 2 or 3, got {depth}")
        goal = (height - 1, width - 1) if goal is None else goal
        goal = _cell("goal", goal, height, width, walls)
        start = _cell("start", start, height, width, walls)
        if (cue is None) != (alternative_goal is None):
            raise ValueError("cue and alternative_goal go together: give both or neither")
        n = height * width
        index = lambda rc: rc[0] * width + rc[1]  # noqa: E731

        move = np.zeros((n, n, len(MOVES)))
        for (r, c), (u, (_, dr, dc)) in itertools.product(np.ndindex(height, width), enumerate(MOVES)):
            r2, c2 = r + dr, c + dc
            if not (0 <= r2 < height and 0 <= c2 < width) or walls[r2, c2]:
                r2, c2 = r, c
            move[r2 * width + c2, r * width + c, u] = 1.0
        T = int(depth) + 1
        sequences = np.asarray(list(itertools.product(range(len(MOVES)), repeat=int(depth))), np.int32)
        cells = tuple(f"({r}, {c})" for r, c in np.ndindex(height, width))
        actions = tuple(m[0] for m in MOVES)
        initial_location = np.eye(n)[index(start)]

        if cue is None:
            distance = _distances(walls, goal)
            c_location = np.zeros((n, T))
            c_location[:] = -float(distance_preference) * distance.reshape(-1)[:, None]
            c_location[index(goal)] = float(goal_preference)
            model = generative_model(
                [np.eye(n)],
                [move],
                [c_location],
                [initial_location],
                policies=sequences.T[:, :, None],
            )
            labels = ModelLabels(("location",), (cells,), ("location",), (cells,), (actions,))
        else:
            cue = _cell("cue", cue, height, width, walls)
            alternative_goal = _cell("alternative_goal", alternative_goal, height, width, walls)
            if alternative_goal == goal:
                raise ValueError(f"alternative_goal {alternative_goal} must differ from goal {goal}")
            if cue in (goal, alternative_goal):
                raise ValueError(f"cue {cue} must differ from the goals {goal} and {alternative_goal}")
            where = np.zeros((n, n, 2))
            for s in range(n):
                where[s, s, :] = 1.0
            cue_seen = np.zeros((3, n, 2))
            cue_seen[0, :, :] = 1.0
            cue_seen[:, index(cue), :] = 0.0
            cue_seen[1, index(cue), 0], cue_seen[2, index(cue), 1] = 1.0, 1.0
            reward = np.zeros((2, n, 2))
            reward[0] = 1.0
            for ctx, g in enumerate((goal, alternative_goal)):
                reward[:, index(g), ctx] = (0.0, 1.0)
            c_reward = np.zeros((2, T))
            c_reward[1] = float(goal_preference)
            policies = np.stack([sequences.T, np.zeros_like(sequences.T)], axis=-1)
            model = generative_model(
                [where, cue_seen, reward],
                [move, np.eye(2)[:, :, None]],
                [np.zeros((n, T)), np.zeros((3, T)), c_reward],
                [initial_location, np.full(2, 0.5)],
                policies=policies,
            )
            labels = ModelLabels(
                ("location", "context"),
                (cells, ("goal", "alternative goal")),
                ("location", "cue", "reward"),
                (cells, ("none", "cue: goal", "cue: alternative goal"), ("none", "reward")),
                (actions, ("none",)),
            )
        if steps is None:
            steps = T if cue is not None else max(T, int(_distances(walls, goal)[start]) + 1)
        if isinstance(steps, bool) or int(steps) != steps or steps < T:
            raise ValueError(f"steps must be an integer of at least depth + 1 = {T}, got {steps}")
        self.process = model
        self.model = model
        self.labels = labels
        self.steps = int(steps)

    @property
    def trial_length(self) -> int:
        """Time steps per trial (``steps``)."""
        return self.steps
