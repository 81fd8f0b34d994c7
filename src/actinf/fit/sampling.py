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

Both are sampled by the No-U-Turn sampler (Hoffman & Gelman 2014), vectorised
(one compiled program). The independent model's posterior is a product over
participants, and :func:`fit_nuts` samples each factor by its own NUTS chains
(``jax.vmap`` over participants and chains), each with its own step size and
(dense) mass matrix, started from the participant's Laplace approximation
(:func:`~actinf.fit.estimate.fit_laplace`): the mode, spread by twice the
Laplace covariance, and that covariance as the first inverse mass matrix. The
target is the same as one chain over all :math:`P d` parameters, but a joint
chain's step size must suit the narrowest participant and its trajectories grow
with :math:`P`; per participant they stay a few leapfrog steps long. Its
samplers take numpyro's NUTS transition one leapfrog step at a time
(:mod:`actinf.fit.nuts`, the same draws as numpyro's kernel), so that a sampler
whose tree is done starts its next one instead of waiting for the longest tree
in the batch. The hierarchical model couples the participants and is sampled jointly
(numpyro's ``MCMC``, ``chain_method="vectorized"``). The result is an ArviZ
``InferenceData`` with

* ``posterior``: ``z`` and ``theta`` (natural scale) with dims
  ``(chain, draw, participant, parameter)``; for the hierarchical model also
  ``eps``, ``mu``, ``sigma`` and ``theta_population`` (:math:`\\mu` on the natural
  scale);
* ``sample_stats``: ``diverging``, ``lp``, ``tree_depth``, ... with dims
  ``(chain, draw)``, and for :func:`fit_nuts` ``(chain, draw, participant)``
  (each participant's own sampler; ``lp`` is then the participant's log joint);
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

from .devices import per_device, shard_batch
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


def _hierarchical_model(task: Task, behaviour: Behaviour):
    """The non-centred hierarchical numpyro model, and its initial values.

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


def _sample(
    model, init, task: Task, behaviour: Behaviour, *, chains, warmup, draws, seed, progress, max_tree_depth
):
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
    depth = _tree_depths(max_tree_depth)  # a clear error before any work
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
        NUTS(potential_fn=potential, max_tree_depth=depth),
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


def _potential(task: Task, behaviour: Behaviour):
    """One participant's potential :math:`z \\mapsto -\\ln p(u \\mid o, z) - \\ln p(z)`."""
    return lambda z: -(log_likelihood(task, z, behaviour) + task.log_prior(z))


def _init_kernel(task: Task):
    """numpyro's NUTS ``init_kernel`` for one participant's :func:`_potential`, the behaviour
    passed as the model argument (the transitions are :mod:`actinf.fit.nuts`'s)."""
    from numpyro.infer.hmc import hmc

    return hmc(potential_fn_gen=lambda behaviour: _potential(task, behaviour), algo="NUTS")[0]


@eqx.filter_jit
def _start_chains(task, behaviour, start, inverse_mass, keys, warmup: int, depth: tuple[int, int]):
    """The samplers (:class:`actinf.fit.nuts.Sampler`, ``[B]``) from starts ``[B, d]`` and inverse
    mass matrices ``[B, d, d]``, each about to evaluate its start (its first step) and begin its
    first iteration; ``depth``: the largest tree depth during and after the warm-up."""
    from numpyro.infer.util import ParamInfo

    from . import nuts

    init_kernel = _init_kernel(task)

    def one(z, key, b, mass):
        # placeholders for the potential and its gradient: the samplers' first step evaluates
        # them, so that this program holds no copy of the likelihood (nuts.start)
        placeholder = ParamInfo(z, jnp.zeros((), z.dtype), jnp.zeros_like(z))
        state = init_kernel(
            placeholder,
            warmup,
            model_args=(b,),
            rng_key=key,
            inverse_mass_matrix=mass,
            dense_mass=True,
            step_size=1.0,
            max_tree_depth=depth,
        )
        return nuts.start(state, depth, evaluated=False)

    # started on each device, as the sampling that follows runs (actinf.fit.devices.per_device)
    start_all = per_device(lambda *args: (jax.vmap(one)(*args),), (0, 0, 0, 0), (0,))
    return start_all(start, keys, behaviour, inverse_mass)[0]


@eqx.filter_jit
def _advance_chains(task, behaviour, sampler, kept, stop, steps, warmup: int, depth: tuple[int, int]):
    """At most ``steps`` (traced) leapfrog steps of every sampler that has not finished ``stop``
    (traced) iterations (:func:`actinf.fit.nuts.step`); iteration ``n`` of a sampler, if past the
    warm-up, is written to row ``n - warmup`` of ``kept`` when it ends."""
    from . import nuts

    def one(sampler, behaviour):
        # the warm-up's last window (step size only) at the kept trees' depth: its step size is
        # adapted to the trajectories it will serve (docs/fitting.md, NUTS, Tree depth)
        deepen = nuts.terminal_window(warmup)
        return nuts.step(sampler, _potential(task, behaviour), warmup, depth, sampler.i < stop, deepen=deepen)

    def run(sampler, kept, behaviour, stop, steps):
        rows = kept[0].shape[0]

        def going(carry):
            t, sampler, _ = carry
            return (t < steps) & jnp.any(sampler.i < stop)

        def body(carry):
            t, sampler, kept = carry
            n = sampler.i
            sampler, ended, draw = jax.vmap(one)(sampler, behaviour)
            # the iterations that ended past the warm-up, each to its own row; the rest dropped
            row = jnp.where(ended & (n >= warmup), n - warmup, rows)
            column = jnp.arange(row.shape[0])
            kept = tuple(
                k.at[row, column].set(x.astype(k.dtype), mode="drop") for k, x in zip(kept, draw, strict=True)
            )
            return t + 1, sampler, kept

        _, sampler, kept = jax.lax.while_loop(going, body, (jnp.zeros((), steps.dtype), sampler, kept))
        return sampler, kept

    # each device runs its own samplers to their own ends, without waiting for the other
    # devices' at every step (actinf.fit.devices.per_device)
    return per_device(run, (0, 1, 0, None, None), (0, 1))(sampler, kept, behaviour, stop, steps)


def _starting_points(task: Task, behaviour: Behaviour, init: str):
    """Per participant the centre ``[P, d]`` and covariance ``[P, d, d]`` the chains start from.

    ``laplace``: the mode and the Laplace covariance (the prior's where the fit did
    not converge); ``prior``: the prior mean and covariance.
    """
    P, d = behaviour.outcomes.shape[0], len(task.parameters)
    prior_mean = jnp.broadcast_to(task.prior_mean, (P, d))
    prior_cov = jnp.broadcast_to(jnp.diag(task.prior_sd**2), (P, d, d))
    if init == "prior":
        return prior_mean, prior_cov
    if init != "laplace":
        raise ValueError(f"init must be 'laplace' or 'prior', got {init!r}")
    from .estimate import fit_laplace

    lap = fit_laplace(task, behaviour)
    ok = lap.converged & jnp.all(jnp.isfinite(lap.covariance), axis=(-2, -1))
    centre = jnp.where(ok[:, None], lap.map.z, prior_mean)
    covariance = jnp.where(ok[:, None, None], lap.covariance, prior_cov)
    return centre, covariance


#: :func:`fit_nuts`'s largest tree depths ``(during warm-up, after)``: a warm-up
#: iteration costs :math:`2^1 - 1 = 1` leapfrog step, a kept one at most
#: :math:`2^3 - 1 = 7` (docs/fitting.md, NUTS: measured against other depths).
DEFAULT_TREE_DEPTH = (1, 3)

#: :func:`fit_hierarchical`'s largest tree depth, in both phases (Stan's and numpyro's default).
HIERARCHICAL_TREE_DEPTH = 10


def _tree_depths(max_tree_depth) -> tuple[int, int]:
    """``(during warm-up, after)`` from an int or a pair, or a ValueError."""
    pair = max_tree_depth if isinstance(max_tree_depth, tuple | list) else (max_tree_depth, max_tree_depth)
    if len(pair) != 2 or not all(
        isinstance(x, int | np.integer) and not isinstance(x, bool) and x >= 1 for x in pair
    ):
        raise ValueError(
            "max_tree_depth must be a positive int or a pair (warm-up, sampling) of them, "
            f"got {max_tree_depth!r}"
        )
    return int(pair[0]), int(pair[1])


def _sample_participants(task, behaviour, *, chains, warmup, draws, seed, progress, init, max_tree_depth):
    """Each participant's posterior by its own NUTS chains (the module docstring), as an ``InferenceData``."""
    _, _, az = _require()
    P, d = behaviour.outcomes.shape[0], len(task.parameters)
    chains, warmup, draws = int(chains), int(warmup), int(draws)
    if chains < 1 or draws < 1 or warmup < 0:
        raise ValueError(
            f"NUTS needs chains >= 1, draws >= 1 and warmup >= 0, got chains={chains}, "
            f"draws={draws}, warmup={warmup}"
        )
    depth = _tree_depths(max_tree_depth)
    centre, covariance = _starting_points(task, behaviour, init)
    dtype = centre.dtype
    start_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    # the samplers, chain-major: row c * P + p is chain c of participant p
    B = chains * P

    def tile(x):
        return jnp.broadcast_to(x[None], (chains, *x.shape)).reshape(B, *x.shape[1:])

    flat = jax.tree.map(tile, behaviour)
    mass = tile(covariance)
    # overdispersed starts, for r_hat: within two Laplace sds of the mode on every axis
    u = jax.random.uniform(start_key, (B, d), dtype, minval=-2.0, maxval=2.0)
    start = tile(centre) + jnp.einsum("bij,bj->bi", jnp.linalg.cholesky(mass), u)
    keys = jax.random.split(run_key, B)
    # the samplers split over the CPU (or other) devices, when there are several (actinf.fit.devices)
    flat, mass, start, keys = shard_batch((flat, mass, start, keys))
    total = warmup + draws
    kept = (
        jnp.zeros((max(draws, 1), B, d), dtype),
        jnp.zeros((max(draws, 1), B), dtype),
        jnp.zeros((max(draws, 1), B), dtype),
        jnp.zeros((max(draws, 1), B), jnp.int32),
        jnp.zeros((max(draws, 1), B), bool),
        jnp.zeros((max(draws, 1), B), dtype),
    )
    kept = shard_batch(kept, axis=1)
    with jax.numpy_rank_promotion("allow"):  # numpyro broadcasts by rank promotion, by design
        sampler = _start_chains(task, flat, start, mass, keys, warmup, depth)
        # leapfrog steps per call: about a twentieth of the run (5 steps an iteration), for the bar
        chunk = max(1, -(-5 * total // 20)) if progress else 2**30
        bar = _progress(total, progress)
        shown = 0
        stop, steps = jnp.asarray(total, jnp.int32), jnp.asarray(chunk, jnp.int32)
        while True:
            sampler, kept = _advance_chains(task, flat, sampler, kept, stop, steps, warmup, depth)
            done = np.asarray(sampler.i)
            # the bar: the samplers' mean number of finished iterations
            now = max(int(done.mean()), shown)
            bar.update(now - shown)
            shown = now
            if done.min() >= total:
                break
        bar.close()
    z, potential, energy, steps, diverging, accept = (np.asarray(k)[:draws] for k in kept)

    def by_chain(x):  # [draws, chains * P, ...] -> [chains, draws, P, ...]
        x = x.reshape((draws, chains, P) + x.shape[2:])
        return np.swapaxes(x, 0, 1)

    z = by_chain(z)
    theta = np.asarray(task.natural(jnp.asarray(z)))
    # each sampler's potential energy is its participant's -(ln p(u | o, z) + ln p(z)) at the
    # draw: the log-likelihood is read off it, with no second pass through the trials
    log_prior = np.asarray(jax.vmap(task.log_prior)(jnp.asarray(z.reshape(-1, d)))).reshape(z.shape[:-1])
    log_lik = -by_chain(potential) - log_prior
    steps = by_chain(steps)
    sample_stats = {
        "diverging": by_chain(diverging),
        "lp": -by_chain(potential),
        "energy": by_chain(energy),
        "acceptance_rate": by_chain(accept),
        "n_steps": steps,
        "tree_depth": np.log2(np.maximum(steps, 1)).astype(int) + 1,
    }
    one = ["participant"]
    both = ["participant", "parameter"]
    return az.from_dict(
        posterior={"z": z, "theta": theta},
        sample_stats=sample_stats,
        log_likelihood={"choices": log_lik},
        coords={"participant": np.arange(P), "parameter": list(task.names)},
        dims={"z": both, "theta": both, "choices": one} | {name: one for name in sample_stats},
        attrs={
            "inference_library": "numpyro",
            "task": task.name,
            "sampler": f"NUTS per participant, {init} start",
        },
    )


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, show: bool):
    """A tqdm bar over ``total`` iterations (numpyro's own dependency), or nothing."""
    if not show:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="NUTS", unit="it")


def fit_nuts(
    task: Task,
    behaviour: Behaviour,
    *,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 500,
    seed: int = 0,
    progress: bool = False,
    init: str = "laplace",
    max_tree_depth: int | tuple[int, int] = DEFAULT_TREE_DEPTH,
) -> arviz.InferenceData:
    """NUTS samples of every participant's parameters, independent with the task's priors.

    Each participant has its own chains (module docstring), all run together in
    one compiled program, each building its own trees at its own pace
    (:mod:`actinf.fit.nuts`): the run costs about the leapfrog steps of the
    slowest sampler, not the longest tree of every iteration.

    Args:
      task: the :class:`~actinf.fit.tasks.Task`.
      behaviour: the group's :class:`~actinf.fit.likelihood.Behaviour` (``[P, ...]``).
      chains: chains per participant.
      warmup: warm-up (adaptation of the step size and the dense mass matrix) iterations per chain.
      draws: kept draws per chain.
      seed: the sampler's random seed.
      progress: show a progress bar (tqdm).
      init: ``laplace`` (default: start around each participant's Laplace
        approximation, with its covariance as the first inverse mass matrix; one
        :func:`~actinf.fit.estimate.fit_laplace` first) or ``prior`` (around the
        prior mean, with the prior covariance).
      max_tree_depth: the largest depth :math:`D` of a trajectory's doubling
        tree (at most :math:`2^D - 1` leapfrog steps per iteration): an int for
        both phases, or a pair ``(during warm-up, after)``. The default
        ``(1, 3)``: a warm-up iteration is one leapfrog step (a Langevin step
        with multinomial acceptance), a kept one at most 7 (docs/fitting.md,
        NUTS: measured against other caps). The chains stay valid NUTS chains (a capped tree is still a
        reversible proposal); a cap that binds too often shows as a lower
        effective sample size. The warm-up only adapts the step size and the
        mass matrix, and its draws are not kept.

    Returns:
      an ``InferenceData`` (module docstring): ``posterior`` (``z``, ``theta``),
      ``sample_stats`` (per chain, draw and participant) and ``log_likelihood``
      (``choices``, per participant).

    Raises:
      ImportError: without numpyro or ArviZ (``pip install actinf[fit]``).
      ValueError: for an unknown ``init``, no chains or draws, a negative warm-up,
        or a ``max_tree_depth`` that is not a positive int or a pair of them.
    """
    return _sample_participants(
        task,
        behaviour,
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
        progress=progress,
        init=init,
        max_tree_depth=max_tree_depth,
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
    max_tree_depth: int | tuple[int, int] = HIERARCHICAL_TREE_DEPTH,
) -> arviz.InferenceData:
    """NUTS samples of the hierarchical (non-centred) model of the module docstring.

    Arguments as :func:`fit_nuts`, except that ``max_tree_depth`` defaults to
    10 in both phases (Stan's and numpyro's default): one joint chain over all
    :math:`P d + 2d` parameters needs longer trajectories than a participant's
    own. The ``posterior`` also holds ``mu`` and
    ``sigma`` ``[d]`` (population mean and spread on the unconstrained scale),
    ``theta_population`` (:math:`\\mu` on the natural scales) and ``eps``
    ``[P, d]`` (the standardised participant offsets).

    Raises:
      ImportError: without numpyro or ArviZ (``pip install actinf[fit]``).
      ValueError: for a ``max_tree_depth`` that is not a positive int or a pair of them.
    """
    model, init = _hierarchical_model(task, behaviour)
    return _sample(
        model,
        init,
        task,
        behaviour,
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
        progress=progress,
        max_tree_depth=max_tree_depth,
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
