"""Fitting a data set (actinf.fit.runner) and the ``actinf fit`` / ``actinf recover`` commands.

Compiling a fit takes a minute, so every fit here has the shapes of
``tests/test_fit.py`` (explore-exploit, chunks of 3 participants, 4 trials) and
runs on its worker (``xdist_group("fit")``): one compiled MAP serves them all.
Laplace with a second model, NUTS and Ray are marked slow (or skipped without
their packages).
"""

from __future__ import annotations

import functools
import json

import equinox as eqx
import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import CompileCounter

pd = pytest.importorskip("pandas")

from actinf.cli import app  # noqa: E402
from actinf.fit.data import write_behaviour  # noqa: E402
from actinf.fit.likelihood import Behaviour, sample_prior, simulate  # noqa: E402
from actinf.fit.runner import (  # noqa: E402
    LocalExecutor,
    fit_dataset,
    fix_parameters,
    plot_recovery,
    recover,
    task_from_spec,
)
from actinf.fit.tasks import make_task  # noqa: E402

pytestmark = pytest.mark.xdist_group("fit")  # one worker: the compiled fits are shared

TRIALS, CHUNK = 4, 3  # tests/test_fit.py's shapes
IDS = ["p0", "p1", "p2", "p3", "p4"]  # two chunks: 3, then 2 padded to 3
runner = CliRunner()


@functools.cache
def _task():
    return make_task("explore-exploit")


@functools.cache
def _group() -> Behaviour:
    """Five simulated participants (two simulations of 3, as tests/test_fit.py's, joined)."""
    task = _task()
    parts = []
    for seed in (0, 2):
        z = sample_prior(jax.random.key(seed), task, CHUNK)
        parts.append(jax.device_get(simulate(jax.random.key(seed + 1), task, z, TRIALS)))
    return Behaviour(*(np.concatenate(xs)[: len(IDS)] for xs in zip(*parts, strict=True)))


@pytest.fixture
def data_csv(tmp_path):
    return write_behaviour(tmp_path / "data.csv", IDS, _group(), _task())


class CountingExecutor(LocalExecutor):
    """A local executor that records the real participants of each chunk it runs."""

    def __init__(self):
        self.fitted: list[int] = []

    def run(self, fn, jobs):
        for index, job in enumerate(jobs):
            self.fitted.append(job[3])
            yield index, fn(*job)


# --------------------------------------------------------------------- fit_dataset


def test_an_interrupted_fit_resumes_without_refitting_and_ends_as_an_uninterrupted_one(tmp_path):
    task, group = _task(), _group()

    def stop_after_first_chunk(done, total):
        if done >= CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_dataset(task, IDS, group, out_dir=tmp_path / "a", chunk=CHUNK, progress=stop_after_first_chunk)
    folder = tmp_path / "a" / "participants"
    assert sorted(p.name for p in folder.glob("*.json")) == ["p0.json", "p1.json", "p2.json"]
    assert not (tmp_path / "a" / "estimates.csv").exists()
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}

    counting = CountingExecutor()
    calls = []
    with CompileCounter() as compiled:  # the same chunk shapes: nothing compiles again
        resumed = fit_dataset(
            task,
            IDS,
            group,
            out_dir=tmp_path / "a",
            chunk=CHUNK,
            executor=counting,
            progress=lambda *a: calls.append(a),
        )
    assert compiled.count == 0
    assert counting.fitted == [2]  # only the second chunk
    assert resumed.fitted == ["p3", "p4"]
    assert calls == [(3, 5), (5, 5)]
    assert {p: folder.joinpath(p).stat().st_mtime_ns for p in mtimes} == mtimes

    whole = fit_dataset(task, IDS, group, out_dir=tmp_path / "b", chunk=CHUNK)
    assert whole.fitted == IDS
    pd.testing.assert_frame_equal(resumed.estimates, whole.estimates, rtol=1e-12)
    saved = pd.read_csv(tmp_path / "a" / "estimates.csv")
    assert list(saved["participant"]) == IDS
    np.testing.assert_allclose(saved["action_precision"], whole.estimates["action_precision"], rtol=1e-12)

    again = CountingExecutor()  # everything is done: nothing to fit
    fit_dataset(task, IDS, group, out_dir=tmp_path / "a", chunk=CHUNK, executor=again)
    assert again.fitted == []


def test_a_participant_whose_data_changed_is_refitted_with_its_chunk(tmp_path):
    task, group = _task(), _group()
    fit_dataset(task, IDS, group, out_dir=tmp_path, chunk=CHUNK)
    changed = group._replace(trials=group.trials.copy())
    changed.trials[4, -1] = False  # p4 loses a trial
    counting = CountingExecutor()
    output = fit_dataset(task, IDS, changed, out_dir=tmp_path, chunk=CHUNK, executor=counting)
    assert counting.fitted == [2] and output.fitted == ["p3", "p4"]
    assert json.loads((tmp_path / "participants" / "p4.json").read_text())["trials"] == TRIALS - 1


def test_a_task_redefined_under_the_same_name_is_refitted(tmp_path):
    task, group = _task(), _group()
    fit_dataset(task, IDS, group, out_dir=tmp_path, chunk=CHUNK)
    same = CountingExecutor()
    fit_dataset(_task(), IDS, group, out_dir=tmp_path, chunk=CHUNK, executor=same)
    assert same.fitted == []  # an equal definition built again resumes
    seeking_losses = eqx.tree_at(
        lambda t: t.agent.model.preference, task, tuple(-c for c in task.agent.model.preference)
    )
    assert seeking_losses.name == task.name
    counting = CountingExecutor()
    output = fit_dataset(seeking_losses, IDS, group, out_dir=tmp_path, chunk=CHUNK, executor=counting)
    assert counting.fitted == [3, 2] and output.fitted == IDS


def test_fit_dataset_rejects_bad_settings(tmp_path):
    task, group = _task(), _group()
    with pytest.raises(ValueError, match="unknown method 'mle'"):
        fit_dataset(task, IDS, group, method="mle", out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown option 'chains' for method map"):
        fit_dataset(task, IDS, group, out_dir=tmp_path, chains=2)
    with pytest.raises(ValueError, match="4 ids for 5 participants"):
        fit_dataset(task, IDS[:4], group, out_dir=tmp_path)
    with pytest.raises(ValueError, match="distinct"):
        fit_dataset(task, ["a b", "a_b", "c", "d", "e"], group, out_dir=tmp_path)


# ----------------------------------------------------------------------- actinf fit


def test_fit_command_writes_one_file_per_participant_and_the_estimates(tmp_path, data_csv):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "fit",
            str(data_csv),
            "--task",
            "explore-exploit",
            "--method",
            "map",
            "--out",
            str(out),
            "--chunk",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("action_precision", "preference", "learning_rate", "fitted 5 participants"):
        assert name in result.output
    record = json.loads((out / "participants" / "p3.json").read_text())
    assert record["participant"] == "p3" and record["method"] == "map" and record["task"] == "explore-exploit"
    assert set(record["estimate"]) == {"natural", "unconstrained"}
    z = record["estimate"]["unconstrained"]["action_precision"]
    assert record["estimate"]["natural"]["action_precision"] == pytest.approx(np.exp(z), rel=1e-12)
    estimates = pd.read_csv(out / "estimates.csv")
    assert list(estimates["participant"]) == IDS
    assert {"learning_rate", "learning_rate_z", "learning_rate_sd", "log_likelihood"} <= set(
        estimates.columns
    )
    assert np.isfinite(estimates[["action_precision", "preference", "learning_rate"]].to_numpy()).all()
    meta = json.loads((out / "fit.json").read_text())
    assert meta["method"] == "map" and meta["participants"] == 5 and meta["chunk"] == 3
    assert {"jax", "numpy"} <= set(meta["versions"]) and meta["wall_time_s"] > 0

    again = runner.invoke(
        app, ["fit", str(data_csv), "--task", "explore-exploit", "--out", str(out), "--chunk", "3"]
    )
    assert again.exit_code == 0, again.output
    assert "fitted 0 participants (5 loaded" in again.output


def _csv_with_bad_reward(tmp_path, data_csv):
    frame = pd.read_csv(data_csv, dtype=str)
    frame.loc[3, "reward"] = "jackpot"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


CLI_ERRORS = {
    "missing file": (
        lambda tmp, csv: ["fit", str(tmp / "none.csv"), "-t", "explore-exploit"],
        2,
        "no such file",
    ),
    "bad data": (
        lambda tmp, csv: [
            "fit",
            str(_csv_with_bad_reward(tmp, csv)),
            "-t",
            "explore-exploit",
            "-o",
            str(tmp / "o"),
        ],
        1,
        "column 'reward', row 5: unknown outcome label 'jackpot'",
    ),
    "unknown task": (lambda tmp, csv: ["fit", str(csv), "-t", "bandit"], 2, "unknown task 'bandit'"),
    "unknown parameter": (
        lambda tmp, csv: ["fit", str(csv), "-t", "explore-exploit:beta=1"],
        2,
        "no free parameter 'beta'",
    ),
    "unknown method": (
        lambda tmp, csv: ["fit", str(csv), "-t", "maze", "-m", "vb"],
        2,
        "unknown method 'vb'",
    ),
    "option of another method": (
        lambda tmp, csv: ["fit", str(csv), "-t", "maze", "--chains", "2"],
        2,
        "--chains applies to --method nuts and hierarchical",
    ),
    "tree depth of another method": (
        lambda tmp, csv: ["fit", str(csv), "-t", "maze", "--max-tree-depth", "4"],
        2,
        "--max-tree-depth applies to --method nuts and hierarchical",
    ),
    "no tree": (
        lambda tmp, csv: ["fit", str(csv), "-t", "maze", "-m", "nuts", "--max-tree-depth", "0"],
        2,
        "--max-tree-depth must be at least 1, got 0",
    ),
    "compare without evidence": (
        lambda tmp, csv: ["fit", str(csv), "-t", "maze", "--compare", "maze:learning_rate=0"],
        2,
        "--compare needs",
    ),
    "output folder is a file": (
        lambda tmp, csv: ["fit", str(csv), "-t", "explore-exploit", "-o", str(csv)],
        2,
        "output folder is a file",
    ),
    "wrong columns for the task": (
        lambda tmp, csv: ["fit", str(csv), "-t", "maze", "-o", str(tmp / "o")],
        1,
        "missing column 'where'",
    ),
    "recover: bad size": (
        lambda tmp, csv: ["recover", "maze", "--subjects", "0"],
        2,
        "--subjects must be at least 1",
    ),
    "recover: unknown task": (lambda tmp, csv: ["recover", "bandit"], 2, "unknown task 'bandit'"),
}


@pytest.mark.parametrize("case", CLI_ERRORS, ids=list(CLI_ERRORS))
def test_fit_and_recover_errors_are_one_line_with_the_exit_status(tmp_path, data_csv, case):
    args, status, fragment = CLI_ERRORS[case]
    result = runner.invoke(app, args(tmp_path, data_csv))
    assert result.exit_code == status, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert fragment in errors[0]


def test_ray_without_ray_says_how_to_install(tmp_path, data_csv):
    pytest.importorskip("pandas")
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed")
    except ImportError:
        pass
    result = runner.invoke(
        app, ["fit", str(data_csv), "-t", "explore-exploit", "--ray", "auto", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "pip install 'actinf[ray]'" in result.stderr


# ------------------------------------------------------------------------- recovery


def test_recover_reports_r_bias_and_rmse_and_the_command_writes_the_files(tmp_path):
    result = recover(_task(), subjects=CHUNK, trials=TRIALS, method="map", seed=0, chunk=CHUNK)
    assert list(result.table.index) == list(_task().names)
    assert set(result.table.columns) == {"r", "r_z", "bias", "bias_z", "rmse", "rmse_z"}
    np.testing.assert_allclose(
        result.table["bias_z"], np.mean(result.z_hat - result.z_true, axis=0), rtol=1e-12
    )
    np.testing.assert_allclose(result.theta_true, _task().natural(result.z_true), rtol=1e-12)
    figure = plot_recovery(result)
    assert len(figure.axes) == 3 and "r = " in figure.axes[0].get_title()

    out = tmp_path / "rec"
    args = [
        "recover",
        "explore-exploit",
        "--subjects",
        "3",
        "--trials",
        "4",
        "--chunk",
        "3",
        "--out",
        str(out),
    ]
    cli = runner.invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert "RMSE" in cli.output and "learning_rate" in cli.output
    for name in ("recovery.csv", "recovery.json", "recovery.png", "data.csv", "estimates.csv", "fit.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "recovery.json").read_text())
    assert saved["subjects"] == 3 and set(saved["parameters"]) == set(_task().names)
    for name in _task().names:  # the same seed: the same simulated participants and fits
        assert saved["parameters"][name]["bias_z"] == pytest.approx(
            result.table.loc[name, "bias_z"], rel=1e-9
        )


# ------------------------------------------------------------------------ task specs


def test_task_specs_fix_parameters():
    task = task_from_spec("explore-exploit:learning_rate=0")
    assert task.name == "explore-exploit:learning_rate=0" and task.names == ("action_precision", "preference")
    assert float(task.agent.learning.rate) == 0.0
    kappa = fix_parameters(make_task("maze"), preference=2.0)
    base = make_task("maze")
    np.testing.assert_allclose(kappa.agent.model.preference[1], 2.0 * base.agent.model.preference[1])
    for spec, fragment in [
        ("explore-exploit:learning_rate=2", "must be in \\[0, 1\\]"),
        ("explore-exploit:action_precision=0", "must be positive"),
        ("explore-exploit:learning_rate", "expected NAME:param=value"),
        ("maze:action_precision=1,preference=1,learning_rate=0", "no free parameter"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            task_from_spec(spec)


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_laplace_fit_and_comparison_with_a_reduced_model(tmp_path, data_csv):
    pytest.importorskip("arviz")
    out = tmp_path / "out"
    args = ["fit", str(data_csv), "-t", "explore-exploit", "-m", "laplace", "-o", str(out), "--chunk", "3"]
    result = runner.invoke(app, [*args, "--compare", "explore-exploit:learning_rate=0"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "participants" / "p0.json").read_text())
    assert np.isfinite(record["log_evidence"]) and len(record["covariance"]) == 3
    assert set(record["sd"]) == set(_task().names)
    estimates = pd.read_csv(out / "estimates.csv")
    assert estimates["learning_rate_sd"].notna().all() and "converged" in estimates
    comparison = pd.read_csv(out / "comparison.csv")
    assert len(comparison) == 2
    assert (out / "compare" / "explore-exploit_learning_rate=0" / "estimates.csv").is_file()


@pytest.mark.slow
def test_nuts_fit_writes_posterior_chunks_and_summaries(tmp_path):
    sampling = pytest.importorskip("actinf.fit.sampling")
    if not hasattr(sampling, "fit_nuts"):
        pytest.skip("actinf.fit.sampling has no fit_nuts yet")
    pytest.importorskip("numpyro")
    from actinf.fit.runner import load_posterior

    output = fit_dataset(
        _task(), IDS, _group(), method="nuts", out_dir=tmp_path, chunk=CHUNK, chains=2, warmup=30, draws=30
    )
    assert sorted(p.name for p in (tmp_path / "posterior").glob("*.nc")) == ["chunk_0.nc", "chunk_1.nc"]
    record = json.loads((tmp_path / "participants" / "p4.json").read_text())
    assert {"mean", "sd", "r_hat", "ess_bulk", "hdi_3%", "hdi_97%"} <= set(
        record["posterior"]["z"]["preference"]
    )
    assert record["estimate"]["unconstrained"]["preference"] == record["posterior"]["z"]["preference"]["mean"]
    posterior = load_posterior(tmp_path)
    assert list(posterior.posterior["participant"].values) == IDS
    assert posterior.log_likelihood["choices"].shape == (2, 30, 5)
    assert "max_r_hat" in output.estimates


def test_ray_executor_fits_like_the_local_one(tmp_path):
    ray = pytest.importorskip("ray")
    from actinf.fit.runner import RayExecutor

    local = fit_dataset(_task(), IDS, _group(), out_dir=tmp_path / "local", chunk=CHUNK)
    try:
        remote = fit_dataset(
            _task(), IDS, _group(), out_dir=tmp_path / "ray", chunk=CHUNK, executor=RayExecutor(num_cpus=1)
        )
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(local.estimates, remote.estimates, rtol=1e-9)


def test_recover_command_passes_nuts_options_and_one_seed(tmp_path, monkeypatch):
    """``actinf recover --method nuts --seed S`` hands the sampler's settings to the
    runner and S once (the runner seeds the simulation and NUTS with it)."""
    import actinf.fit.runner as runner

    seen = {}

    class Stop(Exception):
        pass

    def fake_recover(task, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(runner, "recover", fake_recover)
    args = ["recover", "explore-exploit", "--subjects", "2", "--trials", "2", "--method", "nuts"]
    args += ["--chains", "1", "--warmup", "5", "--draws", "6", "--seed", "7", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, Stop), result.output
    assert seen["seed"] == 7 and seen["method"] == "nuts"
    assert (seen["chains"], seen["warmup"], seen["draws"]) == (1, 5, 6)


@pytest.mark.parametrize(
    ("method", "cap", "expected"),
    [("nuts", 3, (1, 3)), ("nuts", 5, (1, 5)), ("nuts", 1, (1, 1)), ("hierarchical", 4, (10, 4))],
)
def test_the_tree_depth_option_caps_the_kept_draws_and_the_warm_up_keeps_its_own(
    monkeypatch, method, cap, expected
):
    """``--max-tree-depth D`` is the cap after the warm-up; NUTS's warm-up takes single
    leapfrog steps (fit_nuts's default), the hierarchical chain's trees go to at least 10."""
    pytest.importorskip("numpyro")
    import actinf.fit.sampling as sampling
    from actinf.fit.runner import METHODS, fit_chunk

    seen = {}

    class Stop(Exception):
        pass

    def fake(task, behaviour, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(sampling, "fit_nuts" if method == "nuts" else "fit_hierarchical", fake)
    options = METHODS[method] | {"max_tree_depth": cap}
    with pytest.raises(Stop):
        fit_chunk(_task(), method, _group(), 5, options)
    assert seen["max_tree_depth"] == expected
