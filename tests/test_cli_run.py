"""``actinf run`` and ``actinf worlds`` (actinf.cli), and the library behind them (actinf.run).

Every run is small (2 agents, 2 or 3 trials). Compiling dominates: the grid runs
share one compiled program (the CLI's deterministic grid and the library tests
use the same world, agent settings and chunk), and the two worlds whose
compilation adds most are marked slow.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from actinf.agent import Deterministic, Learning, Sampled
from actinf.cli import _option_value, _world_options, app
from actinf.inference.fixed_point import FixedPoint
from actinf.inference.mmp import MarginalMessagePassing
from actinf.run import agent_settings, default_agent, run_world
from actinf.worlds import WORLDS, make_world

runner = CliRunner()

#: The grid of the CLI smoke test and the run_world tests (one compiled program for both).
GRID = {"height": 2, "width": 3, "goal": (1, 2)}
GRID_ARGS = ["-O", "height=2", "-O", "width=3", "-O", "goal=(1, 2)", "--deterministic"]
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


class CompileCounter:
    """Counts XLA backend compilations while registered (``with CompileCounter() as c: ... c.count``)."""

    def __init__(self) -> None:
        self.count = 0

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            self.count += 1

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)


# -------------------------------------------------------------------- actinf worlds


def test_worlds_lists_every_world_with_its_options():
    result = runner.invoke(app, ["worlds"])
    assert result.exit_code == 0, result.output
    for name, spec in WORLDS.items():
        assert name in result.stdout
        for option in spec.options:
            assert option in result.stdout
    assert "depth=2" in result.stdout and "switch_trial=16" in result.stdout


# ---------------------------------------------------------------------- actinf run


def expected_keys(world) -> set[str]:
    labels = world.labels
    keys = {
        "observations",
        "states",
        "actions",
        "utility",
        "precision",
        "policy_posterior",
        "efe",
        "efe_terms",
        "free_energy",
        "total_free_energy",
        "action_probabilities",
        "factors",
        "modalities",
        "factor_keys",
        "modality_keys",
        "efe_term_names",
    }
    for f in labels.factors:
        keys |= {f"beliefs_{f}", f"states_{f}", f"actions_{f}"}
    keys |= {f"outcomes_{g}" for g in labels.modalities}
    return keys


SMOKE = [
    pytest.param("tmaze", [], {}, id="tmaze"),
    pytest.param("grid", [*GRID_ARGS, "--quiet"], GRID, id="grid"),
    pytest.param("explore-exploit", ["--alpha", "16"], {}, id="explore-exploit", marks=pytest.mark.slow),
    pytest.param(
        "reversal",
        ["-O", "switch_trial=1", "--forgetting", "0.5", "--no-plots"],
        {"switch_trial": 1},
        id="reversal",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("name", "extra", "options"), SMOKE)
def test_run_writes_trajectory_summary_and_figures(name, extra, options, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", name, "--trials", "2", "--agents", "2", "--seed", "3", "-o", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    world = make_world(name, **options)
    K, N, T = 2, 2, world.trial_length
    F, G, Np = world.model.num_factors, world.model.num_modalities, world.model.num_policies

    data = np.load(out / "trajectory.npz")  # no pickles
    assert set(data.files) == expected_keys(world)
    assert data["observations"].shape == (K, N, T, G)
    assert data["states"].shape == (K, N, T, F)
    assert data["actions"].shape == (K, N, T - 1, F)
    for key in ("utility", "precision", "total_free_energy"):
        assert data[key].shape == (K, N, T)
    for key in ("policy_posterior", "efe", "free_energy"):
        assert data[key].shape == (K, N, T, Np)
    assert data["efe_terms"].shape[:4] == (K, N, T, Np)
    assert data["efe_terms"].shape[4] == len(data["efe_term_names"])
    assert data["action_probabilities"].shape == (K, N, T, int(np.prod(world.model.num_controls)))
    np.testing.assert_allclose(data["action_probabilities"][:, :, :-1].sum(-1), 1.0, atol=1e-6)
    for f, factor in enumerate(world.labels.factors):
        assert data[f"beliefs_{factor}"].shape == (K, N, T, world.model.num_states[f])
        assert list(data[f"states_{factor}"]) == list(world.labels.states[f])
    assert list(data["factors"]) == list(world.labels.factors)
    for g, modality in enumerate(world.labels.modalities):
        assert list(data[f"outcomes_{modality}"]) == list(world.labels.outcomes[g])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world"] == name
    assert summary["options"] == json.loads(json.dumps({**WORLDS[name].options, **options}))
    assert (summary["seed"], summary["trials"], summary["agents"], summary["trial_length"]) == (3, N, K, T)
    assert summary["wall_time_s"] > 0 and summary["actinf_version"] and summary["date"]
    assert set(summary["agent"]) >= {"inference", "action", "learning", "efe_terms"}
    assert len(summary["utility_per_trial"]["mean"]) == len(summary["utility_per_trial"]["sd"]) == N
    np.testing.assert_allclose(summary["utility_per_trial"]["mean"], data["utility"].sum(-1).mean(0))
    assert len(summary["precision_per_trial"]) == N
    controlled = [f for f, n in enumerate(world.model.num_controls) if n > 1]
    assert set(summary["first_action_fraction"]) == {world.labels.factors[f] for f in controlled}
    for fractions in summary["first_action_fraction"].values():
        np.testing.assert_allclose(np.sum(list(fractions.values()), axis=0), 1.0)
    assert set(summary["files"]["trajectory.npz"]) == set(data.files)
    assert summary["files"]["trajectory.npz"]["efe"]["shape"] == [K, N, T, Np]

    import actinf.plot

    plots = "--no-plots" not in extra and hasattr(actinf.plot, "save_agent_figures")
    for figure in ("trial.png", "summary.png"):
        assert (out / figure).is_file() == plots
    if "--quiet" in extra:
        assert result.stdout == ""
    else:
        out_lines = lines(result.stdout)
        assert len(out_lines) == 3
        assert out_lines[0].startswith(f"{name}: 2 agents x 2 trials of {T} steps")
        assert "utility per trial: first" in out_lines[1] and "trajectory.npz" in out_lines[2]


def test_run_settings_reach_the_summary(tmp_path):
    """The grid of the smoke test again (compiled already): options and agent settings recorded."""
    out = tmp_path / "out"
    args = ["run", "grid", *GRID_ARGS, "-n", "2", "-k", "2", "-o", str(out), "--no-plots", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["goal"] == [1, 2] and summary["options"]["height"] == 2
    assert summary["agent"]["inference"]["name"] == "FixedPoint"
    assert summary["agent"]["action"] == {"name": "Deterministic"}
    assert summary["agent"]["learning"] == {"rate": 1.0, "forgetting": 0.0}
    assert not (out / "trial.png").exists()


ERRORS = [
    pytest.param(["run", "nowhere"], "unknown world 'nowhere'", id="unknown-world"),
    pytest.param(["run", "grid", "-O", "colour=red"], "unknown option 'colour'", id="unknown-option"),
    pytest.param(["run", "grid", "-O", "depth=7"], "depth must be 1, 2 or 3, got 7", id="bad-value"),
    pytest.param(["run", "grid", "-O", "depth"], "expected key=value", id="no-equals"),
    pytest.param(["run", "grid", "-O", "depth=1", "-O", "depth=2"], "given twice", id="repeated-option"),
    pytest.param(
        ["run", "grid", "-O", "height=5", "-O", "cue=(1,1)"], "cue and alternative_goal go together", id="cue"
    ),
    pytest.param(
        ["run", "tmaze", "--inference", "exact"], "--inference must be mmp or fixed-point", id="inference"
    ),
    pytest.param(
        ["run", "grid", "--inference", "mmp"], "marginal message passing plans over whole", id="mmp-grid"
    ),
    pytest.param(["run", "tmaze", "--alpha", "3", "--deterministic"], "not both", id="alpha-deterministic"),
    pytest.param(["run", "tmaze", "--no-learning", "--forgetting", "0.1"], "--no-learning", id="no-learning"),
    pytest.param(["run", "tmaze", "--forgetting", "2"], "forgetting must lie in [0, 1]", id="forgetting"),
    pytest.param(["run", "tmaze", "--trials", "0"], "--trials must be at least 1", id="trials"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_run_usage_errors_are_one_line(args, message, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert len(lines(result.stderr)) == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()  # nothing is created before the arguments are checked


def test_run_unwritable_output_folder_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["run", "tmaze", "-o", str(blocker / "out")])
    assert result.exit_code == 2
    assert lines(result.stderr) == [
        f"error: {blocker / 'out'}: cannot create output folder (Not a directory)"
    ]
    assert "Traceback" not in result.stderr + result.stdout


# --------------------------------------------------------------------- option values


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("0.9", 0.9),
        ("(1,1)", (1, 1)),
        ("[1, 2]", (1, 2)),
        ("[[True, False], [False, False]]", ((True, False), (False, False))),
        ("None", None),
        ("'x'", "x"),
        ("abc", "abc"),
        ("(1,", "(1,"),
    ],
)
def test_option_values_are_literals_or_strings(text, value):
    assert _option_value(text) == value


def test_world_options_parse_key_value_pairs():
    assert _world_options(["height=5", " cue = (1, 1) ", "name=a=b"]) == {
        "height": 5,
        "cue": (1, 1),
        "name": "a=b",
    }
    with pytest.raises(ValueError, match="expected key=value"):
        _world_options(["=3"])


# --------------------------------------------------------------------- default_agent


def test_default_agent_follows_the_world():
    tmaze, grid = make_world("tmaze"), make_world("grid")
    agent = default_agent(tmaze)
    assert isinstance(agent.inference, MarginalMessagePassing) and agent.trial_length is None
    assert agent.action == Sampled() and agent.learning == Learning()
    agent = default_agent(grid)
    assert isinstance(agent.inference, FixedPoint) and agent.horizon == grid.trial_length
    assert default_agent(tmaze, inference=FixedPoint()).inference == FixedPoint()
    assert default_agent(tmaze, alpha=4.0).action == Sampled(4.0)
    assert default_agent(tmaze, deterministic=True).action == Deterministic()
    assert default_agent(tmaze, learning=None).learning is None
    assert default_agent(tmaze, learning=Learning(0.5, 0.25)).learning == Learning(0.5, 0.25)
    settings = agent_settings(default_agent(grid, alpha=2.0, learning=None))
    assert settings["action"] == {"name": "Sampled", "alpha": 2.0} and settings["learning"] is None
    assert settings["efe_terms"] == ["risk", "ambiguity", "novelty", "initial_novelty"]
    json.dumps(settings)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.0, "deterministic": True}, "not both"),
        ({"alpha": -1.0}, "positive"),
        ({"learning": Learning(-1.0)}, "learning rate"),
        ({"learning": Learning(1.0, 1.5)}, "forgetting"),
    ],
)
def test_default_agent_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        default_agent(make_world("tmaze"), **kwargs)


def test_default_agent_rejects_mmp_in_long_trials():
    with pytest.raises(ValueError, match="marginal message passing"):
        default_agent(make_world("grid"), inference=MarginalMessagePassing())


# ------------------------------------------------------------------------ run_world


@pytest.fixture(scope="module")
def grid_run():
    """The deterministic grid (no sampling anywhere), 2 agents, 3 trials in chunks of 2."""
    world = make_world("grid", **GRID)
    agent = default_agent(world, deterministic=True)
    calls = []
    traj = run_world(
        jax.random.key(0), agent, world, trials=3, agents=2, chunk=2, progress=lambda *a: calls.append(a)
    )
    return world, agent, traj, calls


def test_run_world_trims_the_padded_last_chunk(grid_run):
    world, _, traj, calls = grid_run
    assert calls == [(2, 3), (3, 3)]
    T = world.trial_length
    for leaf in jax.tree.leaves(traj._replace(end=None)):
        assert isinstance(leaf, np.ndarray)
        assert leaf.shape[:2] == (2, 3)
    assert traj.observations.shape == (2, 3, T, 1) and traj.actions.shape == (2, 3, T - 1, 1)
    assert traj.end.observation.shape == (2, 1)


def test_run_world_results_do_not_depend_on_the_chunk(grid_run):
    """Chunks of one trial give the deterministic grid's run of chunks of two, compiling only
    before the first chunk."""
    world, agent, traj, _ = grid_run
    counts = []
    with CompileCounter() as compiles:
        again = run_world(
            jax.random.key(0),
            agent,
            world,
            trials=3,
            agents=2,
            chunk=1,
            progress=lambda *a: counts.append(compiles.count),
        )
    assert len(counts) == 3 and counts[1:] == [counts[0]] * 2  # nothing compiled after the first chunk
    for a, b in zip(
        jax.tree.leaves(again._replace(end=None)), jax.tree.leaves(traj._replace(end=None)), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_run_world_second_run_compiles_nothing(grid_run):
    world, agent, _, _ = grid_run
    with CompileCounter() as compiles:
        traj = run_world(jax.random.key(7), agent, world, trials=3, agents=2, chunk=2)
    assert compiles.count == 0
    assert traj.utility.shape == (2, 3, world.trial_length)


@pytest.mark.parametrize(("trials", "agents", "chunk"), [(0, 1, None), (2, 0, None), (2, 1, 0)])
def test_run_world_rejects_bad_sizes(trials, agents, chunk, grid_run):
    world, agent, _, _ = grid_run
    with pytest.raises(ValueError, match="positive integer"):
        run_world(jax.random.key(0), agent, world, trials=trials, agents=agents, chunk=chunk)
