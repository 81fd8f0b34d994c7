"""Posterior sampling with NUTS (numpyro), per participant or hierarchical.

Two models of a group of :math:`P` participants with :math:`d` parameters each
(:math:`z_p \\in \\mathbb{R}^d` on the unconstrained scale of the
:class:`~actinf.fit.tasks.Task`):

* **independent** (:func:`fit_nuts`): :math:`z_{p,i} \\sim N(m_i, s_i)`, the
  task's priors, and

  .. math::

     \\ln p(u, z) = \\sum_p \\ln p(u_p \\mid o_p, z_p) + \\ln p(z_p)

* **hierarchical** (:func:`fit_hierarchical`): population means
  :math:`\\mu_i \\sim N(m_i, 1)`, spreads :math:`\\sigma_i \\sim
  \\mathrm{HalfNormal}(s_i)` and, non-centred,
  :math:`z_{p,i} = \\mu_i + \\sigma_i \\epsilon_{p,i}`,
  :math:`\\epsilon_{p,i} \\sim N(0, 1)` (Betancourt & Girolami 2015,
  *Hamiltonian Monte Carlo for hierarchical models*).

Both are sampled by the No-U-Turn sampler (Hoffman & Gelman 2014) with the chains
vectorised (one compiled program, ``chain_method="vectorized"``). The result is
an ArviZ ``InferenceData`` with

* ``posterior``: ``z`` and ``theta`` (natural scale) with dims
  ``(chain, draw, participant, parameter)``; for the hierarchical model also
  ``eps``, ``mu``, ``sigma`` and ``theta_population`` (:math:`\\mu` on the natural
  scale);
* ``sample_stats``: ``diverging``, ``lp``, ``tree_depth``, ...;
* ``log_likelihood``: ``choices`` ``(chain, draw, participant)``, each
  participant's :math:`\\ln p(u_p \\mid o_p, z_p)`, so that ``az.loo`` treats
  participants as the observations (leave one participant out).

numpyro and ArviZ are optional (``pip install actinf[fit]``) and imported only
when a function here is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .likelihood import Behaviour, log_likelihood
from .tasks import Task

if TYPE_CHECKING:
    import arviz
    import pandas

__all__ = ["diagnostics", "fit_hierarchical", "fit_nuts", "summary"]


def _require():
    """numpyro, its distributions and ArviZ, or an ImportError saying how to install them."""
    try:
        import arviz
        import numpyro
        import numpyro.distributions as dist
    except ImportError as error:
        raise ImportError(
            f"posterior sampling needs numpyro and arviz ({error.name} is missing): pip install actinf[fit]"
        ) from error
    return numpyro, dist, arviz


def _participant_log_likelihoods(task: Task, z: jax.Array, behaviour: Behaviour) -> jax.Array:
    """``[P]`` log-likelihoods of ``z`` ``[P, d]``."""
    return jax.vmap(lambda zp, b: log_likelihood(task, zp, b))(z, behaviour)


@eqx.filter_jit
def _value_and_gradient(task: Task, behaviour: Behaviour, z: jax.Array):
    """:math:`\\sum_p \\ln p(u_p \\mid o_p, z_p)` and its gradient ``[P, d]``, compiled once per shape."""
    return jax.value_and_grad(lambda zz: jnp.sum(_participant_log_likelihoods(task, zz, behaviour)))(z)


@eqx.filter_jit
def _draw_log_likelihoods(task: Task, behaviour: Behaviour, z: jax.Array) -> jax.Array:
    """``[S, P]`` log-likelihoods of ``S`` draws ``z`` ``[S, P, d]``, a batch of draws at a time."""
    return jax.lax.map(lambda zs: _participant_log_likelihoods(task, zs, behaviour), z, batch_size=32)


def _group_log_likelihood(task: Task, behaviour: Behaviour):
    """``z [P, d] -> sum_p ln p(u_p | o_p, z_p)``, differentiated by the compiled :func:`_value_and_gradient`.

    numpyro differentiates the potential eagerly when it starts the chains and
    inside the sampler: with this rule both use the same value and gradient, and
    the eager one is compiled once per task and shape (for every model and fit),
    not once per potential.
    """

    @jax.custom_vjp
    def group(z):
        return jnp.sum(_participant_log_likelihoods(task, z, behaviour))

    def forward(z):
        value, gradient = _value_and_gradient(task, behaviour, z)
        return value, gradient

    def backward(gradient, cotangent):
        return (cotangent * gradient,)

    group.defvjp(forward, backward)
    return group


def _independent_model(task: Task, behaviour: Behaviour):
    """The numpyro model with independent participants, and its initial values.

    Returns:
      ``(model, init)``: ``model(likelihood=True)`` (``False`` leaves out the
      likelihood, to compute the deterministic sites of draws);
      ``init(rng_key, chains)`` draws each chain's starting point, on the
      unconstrained scale of every sample site (a dict of ``[chains, ...]``).
    """
    numpyro, dist, _ = _require()
    P, d = behaviour.outcomes.shape[0], len(task.parameters)
    mean, sd = task.prior_mean, task.prior_sd
    group = _group_log_likelihood(task, behaviour)

    def model(likelihood=True):
        z = numpyro.sample("z", dist.Normal(mean, sd).expand([P, d]).to_event(2))
        numpyro.deterministic("theta", task.natural(z))
        if likelihood:
            numpyro.factor("choices", group(z))

    def init(rng_key, chains):
        # within one prior sd of the prior mean: overdispersed enough for r_hat, never extreme
        u = jax.random.uniform(rng_key, (chains, P, d), minval=-1.0, maxval=1.0)
        return {"z": mean[None, None, :] + sd[None, None, :] * u}

    return model, init


def _hierarchical_model(task: Task, behaviour: Behaviour):
    """The non-centred hierarchical numpyro model and its initial values (as :func:`_independent_model`)."""
    numpyro, dist, _ = _require()
    P, d = behaviour.outcomes.shape[0], len(task.parameters)
    mean, sd = task.prior_mean, task.prior_sd
    group = _group_log_likelihood(task, behaviour)

    def model(likelihood=True):
        mu = numpyro.sample("mu", dist.Normal(mean, 1.0).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfNormal(sd).to_event(1))
        eps = numpyro.sample("eps", dist.Normal(0.0, 1.0).expand([P, d]).to_event(2))
        z = numpyro.deterministic("z", mu[None, :] + sigma[None, :] * eps)
        numpyro.deterministic("theta", task.natural(z))
        numpyro.deterministic("theta_population", task.natural(mu))
        if likelihood:
            numpyro.factor("choices", group(z))

    def init(rng_key, chains):
        k_mu, k_sigma, k_eps = jax.random.split(rng_key, 3)
        uniform = jax.random.uniform
        return {
            "mu": mean[None, :] + uniform(k_mu, (chains, d), minval=-1.0, maxval=1.0),
            # sigma's unconstrained scale is log sigma: from 0.37 to 1 prior sd
            "sigma": jnp.log(sd)[None, :] + uniform(k_sigma, (chains, d), minval=-1.0, maxval=0.0),
            "eps": uniform(k_eps, (chains, P, d), minval=-1.0, maxval=1.0),
        }

    return model, init


def _sample(model, init, task: Task, behaviour: Behaviour, *, chains, warmup, draws, seed, progress):
    """NUTS on ``model`` from ``init``, as an ``InferenceData``.

    NUTS gets the model's potential energy (``-ln p(u, z)`` on the unconstrained
    scale) and starting points directly: numpyro's model-based initialisation
    (a search for valid starting points, eager runs of the model) would compile
    the likelihood and its gradient several more times, which costs more than
    sampling a small group. The deterministic sites (``theta``, ...) and each participant's
    log-likelihood are computed after sampling, for every draw, by compiled programs.
    """
    _, _, az = _require()
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.util import constrain_fn, potential_energy

    chains, draws = int(chains), int(draws)
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    start = init(init_key, chains)
    if chains == 1:
        start = jax.tree.map(lambda x: x[0], start)

    def potential(params):
        return potential_energy(model, (), {}, params)

    @jax.jit
    def sites(samples):
        # the sample and deterministic sites of every draw ``[chains * draws, ...]``
        def one(params):
            return constrain_fn(model, (), {"likelihood": False}, params, return_deterministic=True)

        return jax.vmap(one)(samples)

    mcmc = MCMC(
        NUTS(potential_fn=potential),
        num_warmup=int(warmup),
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=progress,
    )
    # numpyro broadcasts [d] against [P, d] by rank promotion, by design: allow it in its calls
    # even under jax_numpy_rank_promotion="raise" (the model's own arithmetic has explicit shapes)
    with jax.numpy_rank_promotion("allow"):
        mcmc.run(
            run_key,
            init_params=start,
            extra_fields=("diverging", "num_steps", "energy", "potential_energy", "accept_prob"),
        )
        flat = sites(mcmc.get_samples(group_by_chain=False))
    log_lik = _draw_log_likelihoods(task, behaviour, flat["z"])
    extra = mcmc.get_extra_fields(group_by_chain=True)

    def by_chain(x):
        x = np.asarray(x)
        return x.reshape((chains, draws) + x.shape[1:])

    num_steps = np.asarray(extra["num_steps"])
    sample_stats = {
        "diverging": np.asarray(extra["diverging"]),
        "lp": -np.asarray(extra["potential_energy"]),
        "energy": np.asarray(extra["energy"]),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
        "n_steps": num_steps,
        "tree_depth": np.log2(np.maximum(num_steps, 1)).astype(int) + 1,
    }
    both = ["participant", "parameter"]
    dims = {"z": both, "eps": both, "theta": both, "mu": ["parameter"], "sigma": ["parameter"]}
    dims["theta_population"] = ["parameter"]
    return az.from_dict(
        posterior={name: by_chain(value) for name, value in flat.items()},
        sample_stats=sample_stats,
        log_likelihood={"choices": by_chain(log_lik)},
        coords={"participant": np.arange(behaviour.outcomes.shape[0]), "parameter": list(task.names)},
        dims={name: dims[name] for name in flat} | {"choices": ["participant"]},
        attrs={"inference_library": "numpyro", "task": task.name},
    )


def fit_nuts(
    task: Task,
    behaviour: Behaviour,
    *,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    seed: int = 0,
    progress: bool = False,
) -> arviz.InferenceData:
    """NUTS samples of every participant's parameters, independent with the task's priors.

    Args:
      task: the :class:`~actinf.fit.tasks.Task`.
      behaviour: the group's :class:`~actinf.fit.likelihood.Behaviour` (``[P, ...]``).
      chains: chains, run vectorised in one program.
      warmup: warm-up (adaptation) iterations per chain.
      draws: kept draws per chain.
      seed: the sampler's random seed.
      progress: show numpyro's progress bar.

    Returns:
      an ``InferenceData`` (module docstring): ``posterior`` (``z``, ``theta``),
      ``sample_stats`` and ``log_likelihood`` (``choices``, per participant).

    Raises:
      ImportError: without numpyro or ArviZ (``pip install actinf[fit]``).
    """
    model, init = _independent_model(task, behaviour)
    return _sample(
        model, init, task, behaviour, chains=chains, warmup=warmup, draws=draws, seed=seed, progress=progress
    )


def fit_hierarchical(
    task: Task,
    behaviour: Behaviour,
    *,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    seed: int = 0,
    progress: bool = False,
) -> arviz.InferenceData:
    """NUTS samples of the hierarchical (non-centred) model of the module docstring.

    Arguments as :func:`fit_nuts`. The ``posterior`` also holds ``mu`` and
    ``sigma`` ``[d]`` (population mean and spread on the unconstrained scale),
    ``theta_population`` (:math:`\\mu` on the natural scales) and ``eps``
    ``[P, d]`` (the standardised participant offsets).

    Raises:
      ImportError: without numpyro or ArviZ (``pip install actinf[fit]``).
    """
    model, init = _hierarchical_model(task, behaviour)
    return _sample(
        model, init, task, behaviour, chains=chains, warmup=warmup, draws=draws, seed=seed, progress=progress
    )


_SUMMARISED = ("mu", "sigma", "theta_population", "z", "theta")


def summary(idata: arviz.InferenceData, var_names: list[str] | None = None) -> pandas.DataFrame:
    """ArviZ's summary (mean, sd, HDI, ``r_hat``, ``ess_bulk``, ``ess_tail``, ...).

    Args:
      idata: the result of :func:`fit_nuts` or :func:`fit_hierarchical`.
      var_names: the variables (default: ``z`` and ``theta``, and for the
        hierarchical model ``mu``, ``sigma`` and ``theta_population`` first).
    """
    _, _, az = _require()
    if var_names is None:
        var_names = [v for v in _SUMMARISED if v in idata.posterior]
    return az.summary(idata, var_names=var_names)


def diagnostics(idata: arviz.InferenceData) -> dict:
    """Convergence diagnostics over the sampled parameters.

    Returns:
      a dict with ``max_r_hat`` (the largest split :math:`\\hat R`; above 1.01
      the chains disagree), ``min_ess_bulk`` (the smallest bulk effective sample
      size; below about 100 per chain the estimates are unreliable), ``divergences``
      (the number of divergent transitions after warm-up; any is a warning) and
      ``draws`` (chains times draws).
    """
    _, _, az = _require()
    names = [v for v in ("mu", "sigma", "z") if v in idata.posterior]
    r_hat = az.rhat(idata, var_names=names)
    ess = az.ess(idata, var_names=names, method="bulk")
    posterior = idata.posterior
    return {
        "max_r_hat": float(max(np.nanmax(r_hat[v].values) for v in names)),
        "min_ess_bulk": float(min(np.nanmin(ess[v].values) for v in names)),
        "divergences": int(idata.sample_stats["diverging"].values.sum()),
        "draws": int(posterior.sizes["chain"] * posterior.sizes["draw"]),
    }
