"""Figures of agent runs (actinf.plot.agent) on every ready-made world, one agent and a batch."""

from types import SimpleNamespace
from typing import NamedTuple

import jax
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from actinf.agent import Agent, StepInfo  # noqa: E402
from actinf.inference.fixed_point import FixedPoint  # noqa: E402
from actinf.plot import (  # noqa: E402
    plot_agent_summary,
    plot_agent_trial,
    plot_trial,
    plot_trials,
    save_agent_figures,
)
from actinf.rollout import Trajectory, rollout_batch  # noqa: E402
from actinf.worlds import make_world  # noqa: E402

TRIALS, AGENTS = 3, 3

WORLDS = {
    "tmaze": ("tmaze", {}),
    "grid": ("grid", {}),
    "grid-cue": (
        "grid",
        {"cue": (1, 1), "alternative_goal": (2, 0), "goal": (2, 2), "start": (0, 1), "depth": 3},
    ),
    "explore-exploit": ("explore-exploit", {}),
    "reversal": ("reversal", {}),
}


class Run(NamedTuple):
    world: object
    single: object  # Trajectory [N, T, ...]
    batch: object  # Trajectory [K, N, T, ...]


def _trial_length(world) -> int:
    return getattr(world, "trial_length", world.model.horizon)


def _agent(world) -> Agent:
    length = _trial_length(world)
    if length == world.model.horizon:
        return Agent(world.model)
    return Agent(world.model, inference=FixedPoint(), trial_length=length)  # receding horizon


def _fake(world, lead: tuple[int, ...], seed: int = 0) -> Trajectory:
    """A trajectory with the shapes of ``world``'s runs and random contents (NumPy, no compilation).

    Compiling a rollout takes seconds per world; the figures only need the arrays.
    """
    rng = np.random.default_rng(seed)
    m = world.model
    Ns, Nu, No, Np, T = m.num_states, m.num_controls, m.num_outcomes, m.num_policies, _trial_length(world)
    shape = (*lead, TRIALS, T)

    def ints(sizes, steps=T):
        return np.stack([rng.integers(0, n, (*lead, TRIALS, steps)) for n in sizes], axis=-1)

    def simplex(n):
        return rng.dirichlet(np.ones(n), size=shape)

    terms = rng.normal(size=(*shape, Np, 4)) + [5.0, 0.5, -0.2, -0.1]
    info = StepInfo(
        states=tuple(simplex(n) for n in Ns),
        policy_posterior=simplex(Np),
        efe=terms.sum(axis=-1),
        efe_terms=terms,
        free_energy=rng.normal(size=(*shape, Np)),
        total_free_energy=rng.normal(size=shape),
        precision=rng.gamma(4.0, 0.25, size=shape),
        action_probabilities=simplex(int(np.prod(Nu))).reshape(*shape, *Nu),
        action=ints(Nu),
    )
    end = SimpleNamespace(agent=SimpleNamespace(model=SimpleNamespace(policies=np.asarray(m.policies))))
    return Trajectory(ints(No), ints(Ns), ints(Nu, T - 1), info, rng.normal(size=shape), end)


@pytest.fixture(scope="module", params=list(WORLDS), ids=list(WORLDS))
def run(request) -> Run:
    name, options = WORLDS[request.param]
    world = make_world(name, **options)
    return Run(world, _fake(world, ()), _fake(world, (AGENTS,)))


def _counts(world) -> tuple[int, int, int]:
    """Factors, controlled factors, and whether any factor is uncontrolled."""
    Nu = world.model.num_controls
    controlled = sum(n > 1 for n in Nu)
    return len(Nu), controlled, int(controlled < len(Nu))


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_trial_figure_has_a_panel_per_factor_and_control(run, batched):
    F, C, _ = _counts(run.world)
    traj = run.batch if batched else run.single
    fig = plot_agent_trial(traj, run.world.labels, trial=TRIALS - 1, agent=1 if batched else None)
    assert len(fig.axes) == F + 2 + C + 1
    for f in range(F):  # belief heatmaps, rows labelled by state names
        labels = [t.get_text() for t in fig.axes[f].get_yticklabels()]
        assert labels[0] == run.world.labels.states[f][0]
    assert fig.get_suptitle() == f"Trial {TRIALS} of {TRIALS}" + (f", agent 2 of {AGENTS}" if batched else "")


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_summary_figure_has_choices_reward_precision_beliefs(run, batched):
    _, C, uncontrolled = _counts(run.world)
    fig = plot_agent_summary(run.batch if batched else run.single, run.world.labels, title="run")
    assert len(fig.axes) == C + 2 + uncontrolled
    assert fig.get_suptitle() == "run"
    choice = fig.axes[0]
    f = next(f for f, n in enumerate(run.world.model.num_controls) if n > 1)
    if batched:  # stacked fractions of agents: one legend entry per action
        assert [t.get_text() for t in choice.get_legend().get_texts()] == list(run.world.labels.actions[f])
    else:
        assert [t.get_text() for t in choice.get_yticklabels()] == list(run.world.labels.actions[f])


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_save_writes_png_files(run, batched, tmp_path):
    out = tmp_path / "figures"
    paths = save_agent_figures(
        run.batch if batched else run.single, run.world.labels, out, prefix="x_", dpi=40
    )
    assert [p.name for p in paths] == ["x_trial.png", "x_summary.png"]
    for p in paths:
        assert p.parent == out
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 1000


@pytest.fixture(scope="module")
def tmaze() -> Run:
    world = make_world("tmaze")
    return Run(world, _fake(world, ()), _fake(world, (AGENTS,)))


@pytest.mark.parametrize("trial", [TRIALS, -TRIALS - 1, 10])
def test_bad_trial_names_the_trial_and_the_range(tmaze, trial):
    for traj in (tmaze.single, tmaze.batch):
        with pytest.raises(ValueError, match=rf"trial {trial} is out of range.*0 to {TRIALS - 1}"):
            plot_agent_trial(traj, tmaze.world.labels, trial=trial)


def test_negative_trial_counts_from_the_end(tmaze):
    fig = plot_agent_trial(tmaze.single, tmaze.world.labels, trial=-1)
    assert fig.get_suptitle() == f"Trial {TRIALS} of {TRIALS}"


def test_bad_agent_raises(tmaze):
    with pytest.raises(ValueError, match=rf"agent {AGENTS} is out of range.*0 to {AGENTS - 1}"):
        plot_agent_trial(tmaze.batch, tmaze.world.labels, agent=AGENTS)
    with pytest.raises(ValueError, match="no batch axis"):
        plot_agent_trial(tmaze.single, tmaze.world.labels, agent=1)
    with pytest.raises(ValueError, match="must be an integer"):
        plot_agent_trial(tmaze.single, tmaze.world.labels, trial=0.5)


def test_numpy_trajectory_and_default_names(tmaze):
    traj = jax.tree.map(np.asarray, tmaze.batch)
    fig = plot_agent_trial(traj, None)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][:2] == ["state 1", "state 2"]
    assert len(plot_agent_summary(traj, None).axes) == 4


def test_labels_that_do_not_fit_raise(tmaze):
    grid = make_world("grid")
    with pytest.raises(ValueError, match="labels.states do not fit"):
        plot_agent_trial(tmaze.single, grid.labels._replace(factors=("location", "context")))
    with pytest.raises(ValueError, match="labels.factors do not fit"):
        plot_agent_summary(tmaze.single, grid.labels)


def test_many_states_label_every_kth_row():
    world = make_world("grid", height=10, width=10, goal=(9, 9), depth=1)
    traj = _fake(world, ())
    fig = plot_agent_trial(traj, world.labels)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert 5 <= len(labels) <= 20
    assert labels[0] == "(0, 0)"
    assert set(labels) <= set(world.labels.states[0])


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_real_rollouts(rollouts, batched, tmp_path):
    """The figures of a compiled rollout (one world: compiling is slow; the shapes of all are faked above)."""
    world, batch = rollouts
    traj = batch if batched else jax.tree.map(lambda x: x[0], batch)
    F, C, uncontrolled = _counts(world)
    assert len(plot_agent_trial(traj, world.labels, trial=-1).axes) == F + 2 + C + 1
    assert len(plot_agent_summary(traj, world.labels).axes) == C + 2 + uncontrolled
    assert all(p.stat().st_size > 1000 for p in save_agent_figures(traj, world.labels, tmp_path, dpi=60))


@pytest.fixture(scope="module")
def rollouts():
    world = make_world("reversal")
    return world, rollout_batch(jax.random.key(0), _agent(world), world, trials=TRIALS, num_agents=AGENTS)


def test_spm_figures_keep_their_names():
    from actinf.plot import spm

    assert plot_trial is spm.plot_trial
    assert plot_trials is spm.plot_trials
