"""SPM's three-arm maze: the model equals SPM's, and the agent learns to skip the cue.

The behavioural checks are statistical over seeds (outcomes and actions are
sampled). Measured with SPM's context schedule over seeds 0-9: the cue is
visited first in trials 1-8 and an arm straight away in trials 9-32 in every
run; the bounds below leave a wide margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from actinf import spm_sequence
from actinf.models import TMAZE_LABELS, simulate_tmaze, spm_contexts, tmaze_model
from actinf.models.tmaze import CUE, LEFT_ARM

SPM_RUN = Path(__file__).parent / "data" / "vbx" / "tmaze_spm_demo.json"
SEEDS = range(5)


@pytest.fixture(scope="module", autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def spm_run() -> dict:
    return json.loads(SPM_RUN.read_text())


def _array(x) -> np.ndarray:
    return np.asarray(x["data"], dtype=np.float64).reshape(x["shape"])


@pytest.fixture(scope="module")
def runs():
    return [simulate_tmaze(jax.random.PRNGKey(seed)) for seed in SEEDS]


@pytest.mark.parametrize(
    ("spm", "field"),
    [
        ("A", "likelihood"),
        ("B", "transition"),
        ("C", "preference"),
        ("D", "initial"),
        ("d", "initial_counts"),
    ],
)
def test_model_arrays_equal_spm(spm_run, spm, field):
    model = tmaze_model()
    ours = getattr(model, field)
    theirs = spm_run["model"][spm]
    assert len(ours) == len(theirs)
    for x, y in zip(ours, theirs, strict=True):
        assert np.asarray(x).dtype == np.float64
        np.testing.assert_array_equal(np.asarray(x), _array(y))


def test_model_policies_and_sizes_equal_spm(spm_run):
    model = tmaze_model()
    np.testing.assert_array_equal(np.asarray(model.policies), _array(spm_run["model"]["V"]))
    assert model.horizon == spm_run["model"]["T"] == 3
    assert model.num_policies == 10
    np.testing.assert_array_equal(np.asarray(model.habit), np.full(10, 0.1))


def test_labels_match_model():
    model = tmaze_model()
    assert tuple(map(len, TMAZE_LABELS.states)) == model.num_states
    assert tuple(map(len, TMAZE_LABELS.outcomes)) == model.num_outcomes
    assert tuple(map(len, TMAZE_LABELS.actions)) == model.num_controls


def test_recorded_spm_run_reproduced(spm_run):
    """SPM's own outcomes and actions, fed to the model, give SPM's precision and learning."""
    trials = spm_run["trials"]
    results = spm_sequence(
        tmaze_model(),
        [_array(t["o"]).astype(int) for t in trials],
        [_array(t["u"]).astype(int) for t in trials],
        states=[_array(t["s"]).astype(int) for t in trials],
    )
    for res, trial in zip(results, trials, strict=True):
        np.testing.assert_allclose(np.asarray(res.w), _array(trial["w"]), atol=1e-6)
        np.testing.assert_allclose(np.asarray(res.R), _array(trial["R"]), atol=1e-6)
        for ours, theirs in zip(res.model.initial_counts, trial["d_post"], strict=True):
            np.testing.assert_allclose(np.asarray(ours), _array(theirs), atol=1e-6)


def test_spm_schedule():
    np.testing.assert_array_equal(spm_contexts(5), [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(spm_contexts(2), [1, 0])


def test_cue_first_before_learning(runs):
    early = np.stack([run.cue_first[:3] for run in runs])
    assert early.mean() >= 0.9, early


def test_straight_to_the_arm_after_learning(runs):
    late = np.stack([run.arm_first[-8:] for run in runs])
    assert late.mean() >= 0.8, late
    # and to the baited one (the reward is on the left in SPM's schedule after trial 3)
    baited = np.stack([run.locations[-8:, 1] == LEFT_ARM + run.contexts[-8:] for run in runs])
    assert baited.mean() >= 0.8, baited


def test_switch_from_cue_to_arm(runs):
    """The first trial from which the agent never visits the cue first lies in 4-16."""
    for run in runs:
        cue_trials = np.flatnonzero(run.locations[:, 1] == CUE)
        assert 3 <= cue_trials.max() + 1 <= 15, cue_trials


def test_context_belief_learned(runs):
    for run in runs:
        assert run.context_belief[-1, 0] > 0.8
        assert run.rewarded.mean() >= 0.85


def test_given_contexts_are_used():
    contexts = np.array([0, 1, 1, 0], np.int32)
    run = simulate_tmaze(jax.random.PRNGKey(1), 4, contexts=contexts)
    np.testing.assert_array_equal(run.contexts, contexts)
    np.testing.assert_array_equal([np.asarray(r.s)[1, 0] for r in run.results], contexts)
    np.testing.assert_array_equal(run.locations[:, 0], 0)
    with pytest.raises(ValueError, match="contexts"):
        simulate_tmaze(jax.random.PRNGKey(1), 4, contexts=[0, 1])


def test_plots_write_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    from actinf.plot import plot_trial, plot_trials

    run = runs[0]
    paths = [tmp_path / "trials.png", tmp_path / "sub" / "trial.png", tmp_path / "plain.png"]
    fig = plot_trials(run.results, labels=TMAZE_LABELS, path=paths[0])
    plot_trial(run.results[0], labels=TMAZE_LABELS, path=paths[1])
    plot_trial(run.results[-1], path=paths[2])
    assert len(fig.axes) >= 4
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
