"""NUTS fits (numpyro), their InferenceData, and model comparison.

The fits are tiny (3 participants, 4 trials, 2 chains of 60 + 60 iterations) and
shared by the module: most of their cost is compilation.
"""

import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("numpyro")
az = pytest.importorskip("arviz")

import actinf  # noqa: E402
from actinf.fit import sampling  # noqa: E402
from actinf.fit.compare import compare_laplace, compare_loo, format_table  # noqa: E402
from actinf.fit.estimate import LaplaceResult, fit_laplace  # noqa: E402
from actinf.fit.likelihood import log_likelihood, simulate  # noqa: E402
from actinf.fit.tasks import make_task  # noqa: E402

P, N = 3, 4
CHAINS, WARMUP, DRAWS = 2, 60, 60

pytestmark = pytest.mark.xdist_group("sampling")  # one worker computes the module's fixtures


@pytest.fixture(scope="module")
def task():
    return make_task("explore-exploit")


@pytest.fixture(scope="module")
def behaviour(task):
    eps = jax.random.normal(jax.random.key(1), (P, len(task.parameters)))
    z = task.prior_mean[None, :] + task.prior_sd[None, :] * eps
    return simulate(jax.random.key(2), task, z, N)


@pytest.fixture(scope="module")
def nuts(task, behaviour):
    return sampling.fit_nuts(task, behaviour, chains=CHAINS, warmup=WARMUP, draws=DRAWS, seed=0)


@pytest.fixture(scope="module")
def hierarchical(task, behaviour):
    return sampling.fit_hierarchical(task, behaviour, chains=CHAINS, warmup=WARMUP, draws=DRAWS, seed=0)


GRID = 21  # points per parameter for the quadrature reference


@pytest.fixture(scope="module")
def grid():
    """``[GRID ** d, d]`` standardised points, -4 to 4 prior sds on every axis."""
    axis = np.linspace(-4.0, 4.0, GRID)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


@pytest.fixture(scope="module")
def log_likelihoods(task, behaviour, grid, nuts):
    """Each participant's log-likelihood at the grid points and at the last draw of each chain.

    One compiled program for both: ``[GRID ** d + CHAINS, P]``.
    """
    points = task.prior_mean[None, None, :] + task.prior_sd[None, None, :] * grid[:, None, :]
    points = jnp.broadcast_to(points, (grid.shape[0], P, grid.shape[1]))
    draws = jnp.asarray(nuts.posterior["z"].values[:, -1])  # [CHAINS, P, d]

    @jax.jit
    def evaluate(z):
        def per_point(zk):
            return jax.vmap(lambda zp, b: log_likelihood(task, zp, b))(zk, behaviour)

        return jax.lax.map(per_point, z, batch_size=1024)

    values = np.asarray(evaluate(jnp.concatenate([points, draws])))
    return values[: grid.shape[0]], values[grid.shape[0] :]


@pytest.fixture(scope="module")
def quadrature(task, grid, log_likelihoods):
    """Posterior means and sds ``[P, d]`` of every participant by quadrature on the grid."""
    points = np.asarray(task.prior_mean)[None, :] + np.asarray(task.prior_sd)[None, :] * grid
    log_prior = -0.5 * np.sum(grid**2, axis=-1)  # up to a constant: the grid is uniform in z
    log_post = log_likelihoods[0] + log_prior[:, None]  # [K, P]
    w = np.exp(log_post - log_post.max(axis=0))
    w /= w.sum(axis=0)
    mean = np.einsum("kp,kd->pd", w, points)
    var = np.einsum("kp,kpd->pd", w, (points[:, None, :] - mean[None]) ** 2)
    return mean, np.sqrt(var)


def test_nuts_groups_dims_and_coords(task, nuts):
    assert {"posterior", "sample_stats", "log_likelihood"} <= set(nuts.groups())
    for name in ("z", "theta"):
        assert nuts.posterior[name].dims == ("chain", "draw", "participant", "parameter")
        assert nuts.posterior[name].shape == (CHAINS, DRAWS, P, len(task.parameters))
    assert list(nuts.posterior.coords["parameter"].values) == list(task.names)
    assert list(nuts.posterior.coords["participant"].values) == list(range(P))
    assert nuts.log_likelihood["choices"].dims == ("chain", "draw", "participant")
    # each participant has its own sampler: its statistics too
    assert nuts.sample_stats["diverging"].dims == ("chain", "draw", "participant")
    assert nuts.sample_stats["diverging"].shape == (CHAINS, DRAWS, P)
    assert np.all(np.isfinite(nuts.posterior["z"].values))


def test_nuts_theta_is_natural_z(task, nuts):
    z = nuts.posterior["z"].values
    np.testing.assert_allclose(nuts.posterior["theta"].values, task.natural(jnp.asarray(z)), rtol=1e-12)


@pytest.mark.slow  # NUTS/hierarchical compilations: about a minute each
def test_nuts_log_likelihood_is_each_participants(nuts, log_likelihoods):
    stored = nuts.log_likelihood["choices"].values[:, -1]  # the last draw of each chain, [CHAINS, P]
    np.testing.assert_allclose(stored, log_likelihoods[1], rtol=1e-10)


@pytest.mark.slow  # NUTS/hierarchical compilations: about a minute each
def test_nuts_matches_quadrature(nuts, quadrature):
    # 3 participants x 3 parameters, each by quadrature on a 21^3 grid; NUTS's
    # Monte Carlo error on a mean is about sd / sqrt(ESS) ~ 0.1 sd here
    mean, sd = quadrature
    z = nuts.posterior["z"].values.reshape(CHAINS * DRAWS, P, -1)
    np.testing.assert_array_less(np.abs(z.mean(axis=0) - mean), 0.5 * sd)
    ratio = z.std(axis=0) / sd
    assert np.all((ratio > 0.6) & (ratio < 1.5)), ratio


@pytest.mark.slow  # NUTS/hierarchical compilations: about a minute each
def test_hierarchical_outputs(task, hierarchical):
    post = hierarchical.posterior
    d = len(task.parameters)
    for name in ("mu", "sigma", "theta_population"):
        assert post[name].dims == ("chain", "draw", "parameter")
        assert post[name].shape == (CHAINS, DRAWS, d)
    assert post["eps"].dims == post["z"].dims == ("chain", "draw", "participant", "parameter")
    assert np.all(post["sigma"].values > 0)
    mu, sigma = post["mu"].values, post["sigma"].values
    np.testing.assert_allclose(post["z"].values, mu[:, :, None] + sigma[:, :, None] * post["eps"].values)
    np.testing.assert_allclose(post["theta_population"].values, task.natural(jnp.asarray(mu)), rtol=1e-12)
    np.testing.assert_allclose(post["theta"].values, task.natural(post["z"].values), rtol=1e-12)
    assert hierarchical.log_likelihood["choices"].shape == (CHAINS, DRAWS, P)


@pytest.mark.slow  # NUTS/hierarchical compilations: about a minute each
def test_summary(task, nuts, hierarchical):
    table = sampling.summary(nuts)
    assert {"mean", "sd", "r_hat", "ess_bulk", "ess_tail"} <= set(table.columns)
    assert len(table) == 2 * P * len(task.parameters)
    assert "theta[0, action_precision]" in table.index
    assert "mu[preference]" in sampling.summary(hierarchical).index


@pytest.mark.slow  # NUTS/hierarchical compilations: about a minute each
def test_diagnostics(nuts, hierarchical):
    for idata in (nuts, hierarchical):
        diag = sampling.diagnostics(idata)
        assert set(diag) == {"max_r_hat", "min_ess_bulk", "divergences", "draws"}
        assert diag["draws"] == CHAINS * DRAWS
        assert isinstance(diag["divergences"], int) and diag["divergences"] >= 0
        assert 0.9 < diag["max_r_hat"] < 1.5  # short chains: only a sanity check
        assert diag["min_ess_bulk"] > 0


@pytest.mark.slow  # NUTS/hierarchical compilations: about a minute each
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pareto k warnings: 3 participants, 120 draws
def test_compare_loo(nuts, hierarchical):
    table = compare_loo({"independent": nuts, "hierarchical": hierarchical})
    assert set(table.index) == {"independent", "hierarchical"}
    assert {"rank", "elpd_loo", "p_loo", "elpd_diff", "weight"} <= set(table.columns)
    assert list(table["rank"]) == [0, 1]
    assert np.all(np.isfinite(table["elpd_loo"]))
    text = format_table(table)
    assert "independent" in text and "elpd_loo" in text


def evidence(*per_participant, converged=None):
    """A LaplaceResult with only what the comparison reads: the log evidence and convergence."""
    log_evidence = np.asarray(per_participant, dtype=float)
    ok = np.ones(log_evidence.shape, bool) if converged is None else np.asarray(converged)
    return LaplaceResult(map=None, covariance=None, sd=None, log_evidence=log_evidence, converged=ok)


def test_compare_laplace_table():
    results = {
        "c": evidence(-30.0, -30.0, -30.0),
        "b": evidence(-11.0, -10.0, -15.0, converged=[True, False, True]),
        "a": evidence(-10.0, -12.0, -9.0),
    }
    table = compare_laplace(results)
    assert list(table.columns) == [
        "log_evidence",
        "delta",
        "best_participants",
        "probability",
        "not_converged",
    ]
    assert list(table.index) == ["a", "b", "c"]  # best first
    np.testing.assert_allclose(table["log_evidence"], [-31.0, -36.0, -90.0])
    np.testing.assert_allclose(table["delta"], [0.0, 5.0, 59.0])
    assert list(table["best_participants"]) == [2, 1, 0]
    odds = np.exp([0.0, -5.0, -59.0])
    np.testing.assert_allclose(table["probability"], odds / odds.sum())
    assert list(table["not_converged"]) == [0, 1, 0]
    text = format_table(table)
    assert "log_evidence" in text and "-31.00" in text


def test_compare_laplace_rejects_other_participants():
    with pytest.raises(ValueError, match="different numbers of participants"):
        compare_laplace({"a": evidence(-1.0, -2.0), "b": evidence(-1.0)})
    with pytest.raises(ValueError, match="at least one"):
        compare_laplace({})


@pytest.fixture(scope="module")
def laplace(task, behaviour):
    return fit_laplace(task, behaviour)


@pytest.mark.slow
def test_nuts_posterior_is_around_the_map(nuts, laplace):
    z = nuts.posterior["z"].values.reshape(CHAINS * DRAWS, P, -1)
    mean, sd = z.mean(axis=0), z.std(axis=0)
    np.testing.assert_array_less(np.abs(mean - np.asarray(laplace.map.z)), 3 * sd)


@pytest.mark.slow
def test_compare_laplace_prefers_the_generating_model(task, behaviour, laplace):
    # a clearly wrong model: the same agent seeking losses instead of wins (the same pytree: no recompilation)
    preference = tuple(-c for c in task.agent.model.preference)
    flipped = fit_laplace(eqx.tree_at(lambda t: t.agent.model.preference, task, preference), behaviour)
    table = compare_laplace({"flipped": flipped, "explore-exploit": laplace})
    assert list(table.index) == ["explore-exploit", "flipped"]
    np.testing.assert_allclose(table["log_evidence"].iloc[0], np.sum(laplace.log_evidence))
    assert table["delta"].iloc[1] > 3 and table["probability"].iloc[0] > 0.95


def test_nuts_rejects_bad_settings(task, behaviour):
    with pytest.raises(ValueError, match="init must be 'laplace' or 'prior'"):
        sampling.fit_nuts(task, behaviour, init="map")
    with pytest.raises(ValueError, match="chains >= 1.*chains=0"):
        sampling.fit_nuts(task, behaviour, chains=0)
    with pytest.raises(ValueError, match="warmup=-1"):
        sampling.fit_nuts(task, behaviour, warmup=-1)
    for depth in (0, (4,), (4, 0), 2.5):
        with pytest.raises(ValueError, match="max_tree_depth must be a positive int or a pair"):
            sampling.fit_nuts(task, behaviour, max_tree_depth=depth)


def test_nuts_trees_stop_at_the_sampling_depth(nuts):
    # after the warm-up no tree is deeper than the cap: at most 2^3 - 1 leapfrog steps
    depth = sampling.DEFAULT_TREE_DEPTH[1]
    steps = nuts.sample_stats["n_steps"].values
    assert steps.max() <= 2**depth - 1
    assert nuts.sample_stats["tree_depth"].values.max() <= depth
    # the broad posteriors of 4 trials need long trees: the cap binds, so this test can fail
    assert steps.max() == 2**depth - 1


def test_nuts_progress_bar_compiles_once(monkeypatch, task, behaviour):
    # with a progress bar the leapfrog steps run in stretches (about a twentieth of
    # the run each): every stretch must reuse one compiled program, not trace its own
    from actinf.fit import nuts

    started, stepped = [], []
    init_kernel, step = sampling._init_kernel, nuts.step
    monkeypatch.setattr(sampling, "_init_kernel", lambda t: started.append(1) or init_kernel(t))
    monkeypatch.setattr(nuts, "step", lambda *a, **k: stepped.append(1) or step(*a, **k))
    two = jax.tree.map(lambda x: x[:2], behaviour)  # a shape no other test compiles
    sampling.fit_nuts(task, two, chains=1, warmup=10, draws=10, init="prior", progress=True)
    assert len(started) == 1  # _start_chains, traced once
    assert len(stepped) == 1  # _advance_chains's step, traced once for all the stretches


def test_missing_numpyro_says_how_to_install(monkeypatch, task, behaviour):
    monkeypatch.setitem(sys.modules, "numpyro", None)  # import numpyro now raises ImportError
    with pytest.raises(ImportError, match=r"pip install actinf\[fit\]"):
        sampling.fit_nuts(task, behaviour)


def test_importing_sampling_does_not_import_numpyro():
    src = Path(actinf.__file__).parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    code = (
        "import sys, actinf.fit.sampling, actinf.fit.compare\n"
        "loaded = [m for m in ('numpyro', 'arviz', 'pandas') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
