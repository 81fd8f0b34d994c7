"""Fit a data set chunk by chunk, with files written as it goes, resumable; parameter recovery.

:func:`fit_dataset` is the one call behind ``actinf fit``:

* the participants are cut into chunks of ``chunk`` (fixed boundaries: chunk
  ``k`` holds participants ``k*chunk`` to ``(k+1)*chunk - 1``, the last one padded
  with copies of its last participant), so that every chunk has the same shapes
  and the fit compiles once;
* each chunk is fitted by :func:`fit_chunk` (``jax.vmap`` over its participants:
  :func:`~actinf.fit.estimate.fit_map`, :func:`~actinf.fit.estimate.fit_laplace`
  or :func:`~actinf.fit.sampling.fit_nuts`); the hierarchical model
  (:func:`~actinf.fit.sampling.fit_hierarchical`) couples everyone, so it is one
  job over all participants;
* an executor runs the chunks: :class:`LocalExecutor` (this process, one after
  another) or :class:`RayExecutor` (a Ray cluster, the same :func:`fit_chunk` as
  remote tasks, collected as they finish);
* as soon as a chunk is done, each of its participants gets
  ``out_dir/participants/<id>.json`` and, for NUTS, the chunk its
  ``out_dir/posterior/chunk_<k>.nc`` (ArviZ ``InferenceData`` as netCDF);
* a second call with the same task, method, options and data skips the
  chunks whose participants all have their file (resume after an interruption);
* at the end, ``out_dir/estimates.csv`` (one row per participant) and
  ``out_dir/fit.json`` (settings, versions, date, wall time).

The files
---------
``participants/<id>.json`` (``<id>`` with characters other than letters, digits,
``-``, ``_`` and ``.`` replaced by ``_``):

======================  ====================================================================
key                     value
======================  ====================================================================
participant             the id
task, method, options   what was fitted, and how (resume compares them)
data                    SHA-256 of the participant's outcomes and actions (resume compares it)
parameters              the parameter names
trials                  the participant's number of trials
estimate                ``{"natural": {name: value}, "unconstrained": {name: value}}``: the
                        MAP estimate, or the posterior mean (NUTS)
sd                      ``{name: sd}`` on the unconstrained scale (Laplace, NUTS), else null
log_likelihood          :math:`\\ln p(u \\mid o, \\hat z)` (NUTS: its posterior mean)
log_joint, grad_norm    at the mode (MAP, Laplace)
log_evidence            the Laplace approximation of :math:`\\ln p(u \\mid o)` (Laplace)
covariance, converged   :math:`\\Sigma` ``[d, d]`` (unconstrained) and the check of the mode (Laplace)
posterior               NUTS: ``{"z" | "theta": {name: {mean, sd, hdi_3%, hdi_97%, r_hat,
                        ess_bulk}}}``
chunk                   the chunk it was fitted in
======================  ====================================================================

``estimates.csv`` has the columns ``participant``, ``<name>`` (natural scale),
``<name>_z`` (unconstrained), ``<name>_sd`` (posterior sd, unconstrained),
``log_likelihood``, ``log_evidence``, ``converged`` (Laplace) or ``max_r_hat``
(NUTS), and ``trials``.

:func:`recover` checks parameter recovery: participants drawn from the prior,
simulated, fitted, and per parameter the correlation, bias and RMSE of the
estimates; :func:`plot_recovery` draws them.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .likelihood import Behaviour
from .tasks import Task, make_task

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

__all__ = [
    "METHODS",
    "ChunkResult",
    "FitOutput",
    "LocalExecutor",
    "RayExecutor",
    "RecoveryResult",
    "fit_chunk",
    "fit_dataset",
    "fix_parameters",
    "laplace_result",
    "load_posterior",
    "plot_recovery",
    "recover",
    "task_from_spec",
]

#: The fitting methods and their options (with defaults).
METHODS: dict[str, dict[str, Any]] = {
    "map": {"iterations": 30},
    "laplace": {"iterations": 30},
    "nuts": {"chains": 4, "warmup": 500, "draws": 500, "seed": 0, "max_tree_depth": 3},
    "hierarchical": {"chains": 4, "warmup": 500, "draws": 500, "seed": 0, "max_tree_depth": 10},
}

_SAMPLED = ("nuts", "hierarchical")


# ------------------------------------------------------------------------------ tasks


def fix_parameters(task: Task, **values: float) -> Task:
    """``task`` with some parameters fixed at natural values (a reduced model to compare).

    ``fix_parameters(task, learning_rate=0.0)`` is the task without learning
    (:math:`\\eta = 0`: the counts never change); ``preference=1.0`` keeps the
    preferences as in the model. The new task is named ``NAME:key=value,...``.

    Raises:
      ValueError: an unknown or already fixed parameter, a value outside the
        parameter's range (``log``: > 0; ``logit``: in [0, 1]), or no free parameter left.
    """
    params = {p.name: p for p in task.parameters}
    for name, value in values.items():
        if name not in params:
            raise ValueError(
                f"{task.name} has no free parameter {name!r}: its parameters are {', '.join(params)}"
            )
        p = params[name]
        ok = value > 0 if p.transform == "log" else 0 <= value <= 1
        if not (math.isfinite(value) and ok):
            need = "positive" if p.transform == "log" else "in [0, 1]"
            raise ValueError(f"{name} must be {need}, got {value}")
    fixed = tuple(p for p in task.parameters if p.name in values)
    free = tuple(p for p in task.parameters if p.name not in values)
    if not free:
        raise ValueError(f"fixing {', '.join(values)} leaves {task.name} no free parameter")
    dtype = task.agent.model.likelihood[0].dtype
    with jax.numpy_rank_promotion("allow"):
        z = jnp.asarray([float(p.unconstrained(values[p.name])) for p in fixed], dtype)
        agent = Task(task.name, task.world, task.agent, fixed).agent_for(z)
    name = f"{task.name}:" + ",".join(f"{k}={values[k]:g}" for k in params if k in values)
    return Task(name, task.world, agent, free)


def task_from_spec(spec: str) -> Task:
    """A task from ``NAME`` or ``NAME:param=value,...`` (:func:`fix_parameters`).

    Raises:
      ValueError: an unknown task or parameter, or a malformed spec.
    """
    name, _, rest = spec.partition(":")
    task = make_task(name.strip())
    if not rest.strip():
        return task
    values: dict[str, float] = {}
    for item in rest.split(","):
        key, sep, text = item.partition("=")
        key = key.strip()
        try:
            value = float(text)
        except ValueError:
            value = None
        if not sep or not key or value is None:
            raise ValueError(f"task {spec!r}: expected NAME:param=value,..., e.g. {name}:learning_rate=0")
        if key in values:
            raise ValueError(f"task {spec!r}: {key} given twice")
        values[key] = value
    return fix_parameters(task, **values)


def _x64(task: Task) -> bool:
    return task.agent.model.likelihood[0].dtype == jnp.float64


# ------------------------------------------------------------------------------ chunks


class ChunkResult(NamedTuple):
    """What :func:`fit_chunk` returns for a chunk.

    Attributes:
      records: one JSON-ready dict per real participant of the chunk (without
        the id and settings, added by :func:`fit_dataset`).
      posterior: the chunk's ``InferenceData`` (NUTS, hierarchical; padding
        removed) or None.
    """

    records: list[dict]
    posterior: Any


def _floats(x) -> Any:
    """JSON-ready floats (non-finite: None)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 0:
        v = float(x)
        return v if math.isfinite(v) else None
    return [_floats(v) for v in x]


def _by_name(names, values) -> dict[str, Any]:
    return {n: _floats(v) for n, v in zip(names, np.asarray(values), strict=True)}


def _map_records(task: Task, result, size: int, laplace=None) -> list[dict]:
    names = task.names
    z, theta = np.asarray(result.z), np.asarray(result.theta)
    records = []
    for i in range(size):
        record = {
            "estimate": {"natural": _by_name(names, theta[i]), "unconstrained": _by_name(names, z[i])},
            "sd": None,
            "log_likelihood": _floats(result.log_likelihood[i]),
            "log_joint": _floats(result.log_joint[i]),
            "grad_norm": _floats(result.grad_norm[i]),
            "log_evidence": None,
        }
        if laplace is not None:
            record["sd"] = _by_name(names, laplace.sd[i])
            record["log_evidence"] = _floats(laplace.log_evidence[i])
            record["covariance"] = _floats(laplace.covariance[i])
            record["converged"] = bool(laplace.converged[i])
        records.append(record)
    return records


def _sampled_records(task: Task, idata, size: int) -> list[dict]:
    import arviz as az

    names = task.names
    post = idata.posterior
    stats = {}
    for var in ("z", "theta"):
        hdi = az.hdi(idata, var_names=[var], hdi_prob=0.94)[var].values  # [P, d, 2]
        stats[var] = {
            "mean": post[var].mean(("chain", "draw")).values,
            "sd": post[var].std(("chain", "draw"), ddof=1).values,
            "hdi_3%": hdi[..., 0],
            "hdi_97%": hdi[..., 1],
            "r_hat": az.rhat(idata, var_names=[var])[var].values,
            "ess_bulk": az.ess(idata, var_names=[var], method="bulk")[var].values,
        }
    loglik = idata.log_likelihood["choices"].mean(("chain", "draw")).values
    records = []
    for i in range(size):
        posterior = {
            var: {n: {k: _floats(v[i, j]) for k, v in s.items()} for j, n in enumerate(names)}
            for var, s in stats.items()
        }
        records.append(
            {
                "estimate": {
                    "natural": _by_name(names, stats["theta"]["mean"][i]),
                    "unconstrained": _by_name(names, stats["z"]["mean"][i]),
                },
                "sd": _by_name(names, stats["z"]["sd"][i]),
                "log_likelihood": _floats(loglik[i]),
                "log_evidence": None,
                "posterior": posterior,
            }
        )
    return records


def fit_chunk(task: Task, method: str, behaviour: Behaviour, size: int, options: dict) -> ChunkResult:
    """Fit one chunk of participants (``behaviour`` ``[C, ...]``, the first ``size`` real).

    The unit of work of :func:`fit_dataset`'s executors: pure in its arguments,
    so that it runs in this process or in a Ray worker alike (double precision
    when the task's arrays are float64).

    Args:
      task: the task.
      method: ``map``, ``laplace``, ``nuts`` or ``hierarchical``.
      behaviour: the chunk's :class:`~actinf.fit.likelihood.Behaviour` (NumPy or JAX).
      size: its real participants (the rest is padding, not reported).
      options: the method's options (:data:`METHODS`; ``seed`` already per chunk).
    """
    from .estimate import fit_laplace, fit_map

    with jax.enable_x64(_x64(task)):
        b = Behaviour(
            jnp.asarray(behaviour.outcomes, jnp.int32),
            jnp.asarray(behaviour.actions, jnp.int32),
            jnp.asarray(behaviour.trials, bool),
        )
        if method == "map":
            result = jax.device_get(fit_map(task, b, iterations=options["iterations"]))
            return ChunkResult(_map_records(task, result, size), None)
        if method == "laplace":
            lap = jax.device_get(fit_laplace(task, b, iterations=options["iterations"]))
            return ChunkResult(_map_records(task, lap.map, size, lap), None)
        from . import sampling

        fit = sampling.fit_nuts if method == "nuts" else sampling.fit_hierarchical
        sample_options = {k: options[k] for k in ("chains", "warmup", "draws", "seed")}
        # the option caps the trees after the warm-up. The warm-up's: fit_nuts's default
        # (1: single steps), or the option if shallower; the joint hierarchical chain's at least 10
        cap = options["max_tree_depth"]
        if method == "nuts":
            depth = (min(sampling.DEFAULT_TREE_DEPTH[0], cap), cap)
        else:
            depth = (max(sampling.HIERARCHICAL_TREE_DEPTH, cap), cap)
        idata = fit(task, b, **sample_options, max_tree_depth=depth)
        if size < b.outcomes.shape[0]:
            idata = idata.isel(participant=slice(0, size))
        return ChunkResult(_sampled_records(task, idata, size), idata)


# --------------------------------------------------------------------------- executors


class LocalExecutor:
    """Runs the chunks in this process, one after another (each vectorised with ``jax.vmap``)."""

    name = "local"

    def run(self, fn: Callable, jobs: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(*job))`` for each job, in order."""
        for index, job in enumerate(jobs):
            yield index, fn(*job)


def _import_ray():
    try:
        import ray
    except ImportError as error:
        raise ImportError("--ray needs Ray, which is not installed: pip install 'actinf[ray]'") from error
    return ray


class RayExecutor:
    """Runs the chunks as Ray tasks on a cluster, collected as they finish.

    Each chunk is a ``ray.remote`` call of the same :func:`fit_chunk`; the workers
    need ``actinf`` (with ``actinf[fit]``) installed. Ray is imported only when
    the first chunk is submitted (``pip install actinf[ray]``).

    Args:
      address: the cluster (``ray.init(address=...)``): ``"auto"``, ``"ray://host:10001"``,
        or None to start a local one.
      num_cpus: CPUs per chunk (Ray's default 1).
      num_gpus: GPUs per chunk (default none).
      init_options: more keyword arguments of ``ray.init``.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus=None, num_gpus=None, **init_options):
        self.address = address
        self.resources = {k: v for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)) if v is not None}
        self.init_options = init_options

    def run(self, fn: Callable, jobs: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Submit every job, then yield ``(index, result)`` as each finishes (``ray.wait``)."""
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init_options)
        remote = ray.remote(**self.resources)(fn) if self.resources else ray.remote(fn)
        # JAX arrays as NumPy: a worker without x64 would otherwise unpickle float64 as float32
        host = [jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, job) for job in jobs]
        pending = {remote.remote(*job): index for index, job in enumerate(host)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    yield index, ray.get(ref)
        finally:
            for ref in pending:  # interrupted: stop what is still queued or running
                ray.cancel(ref)


# ----------------------------------------------------------------------------- fitting


class FitOutput(NamedTuple):
    """What :func:`fit_dataset` fitted and wrote.

    Attributes:
      task, method, options: the settings.
      ids: the participant ids, in order.
      records: one dict per participant (the content of its json file).
      estimates: the table of ``estimates.csv`` (pandas ``DataFrame``).
      fitted: the ids fitted in this call (the others were loaded from their files).
      out_dir: the folder.
      wall_time_s: seconds of this call.
      population: hierarchical only: posterior summaries of ``mu``, ``sigma``,
        ``theta_population``; else None.
    """

    task: str
    method: str
    options: dict
    ids: list
    records: list[dict]
    estimates: Any
    fitted: list
    out_dir: Path
    wall_time_s: float
    population: dict | None = None


def _file_stem(pid: Any) -> str:
    stem = re.sub(r"[^0-9A-Za-z._-]+", "_", str(pid)).strip(".") or "_"
    return stem


def _digest(behaviour: Behaviour, p: int) -> str:
    real = np.asarray(behaviour.trials[p], bool)
    h = hashlib.sha256()
    for x in (behaviour.outcomes[p], behaviour.actions[p]):
        x = np.ascontiguousarray(np.asarray(x)[real], np.int32)
        h.update(str(x.shape).encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _task_digest(task: Task) -> str:
    """A fingerprint of the task's definition: its name, parameters and every number of its world and agent.

    A fit folder's records carry it, so that a task redefined under the same
    name (other preferences, counts, settings) is refitted, not resumed.
    """
    h = hashlib.sha256()
    h.update(repr((task.name, task.parameters)).encode())
    for leaf in jax.tree.leaves(task):
        if isinstance(leaf, jax.Array | np.ndarray | np.generic | int | float | bool | complex):
            x = np.asarray(leaf)
            h.update(f"{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        else:  # not a number: only its kind (a repr may hold a memory address)
            h.update(type(leaf).__qualname__.encode())
    return h.hexdigest()


def _options(method: str, given: dict) -> dict:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    unknown = sorted(set(given) - set(METHODS[method]))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for method {method}: its options are {', '.join(METHODS[method])}"
        )
    options = {**METHODS[method], **given}
    for key, value in options.items():
        low = 0 if key in ("seed",) else 1
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{key} must be an integer of at least {low}, got {value}")
        options[key] = int(value)
    return options


def _write_json(path: Path, content: dict) -> None:
    """Write atomically: an interrupted write leaves no half file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _load_record(path: Path, expected: dict) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in expected.items()):
        return None
    return record


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("actinf", "jax", "jaxlib", "numpy", "optax", "numpyro", "arviz", "pandas", "ray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _estimates_table(task: Task, method: str, ids: list, records: list[dict]) -> pandas.DataFrame:
    import pandas as pd

    names = task.names
    rows = []
    for pid, rec in zip(ids, records, strict=True):
        row: dict[str, Any] = {"participant": pid}
        for n in names:
            row[n] = rec["estimate"]["natural"][n]
        for n in names:
            row[f"{n}_z"] = rec["estimate"]["unconstrained"][n]
        for n in names:
            row[f"{n}_sd"] = None if rec.get("sd") is None else rec["sd"][n]
        row["log_likelihood"] = rec.get("log_likelihood")
        row["log_evidence"] = rec.get("log_evidence")
        if method == "laplace":
            row["converged"] = rec.get("converged")
        if method in _SAMPLED:
            hats = [v["r_hat"] for v in rec["posterior"]["z"].values() if v["r_hat"] is not None]
            row["max_r_hat"] = max(hats) if hats else None
        row["trials"] = rec.get("trials")
        rows.append(row)
    frame = pd.DataFrame(rows)
    float_columns = [c for c in frame.columns if c not in ("participant", "converged", "trials")]
    frame[float_columns] = frame[float_columns].astype(float)
    return frame


def _population(idata) -> dict:
    from . import sampling

    table = sampling.summary(idata, var_names=["mu", "sigma", "theta_population"])
    return {str(k): {c: _floats(v) for c, v in row.items()} for k, row in table.iterrows()}


def fit_dataset(
    task: Task,
    ids: Sequence,
    behaviour: Behaviour,
    *,
    method: str = "map",
    out_dir: str | os.PathLike,
    chunk: int = 25,
    progress: Callable[[int, int], None] | None = None,
    executor: LocalExecutor | RayExecutor | None = None,
    **method_options,
) -> FitOutput:
    """Fit every participant of ``behaviour``, chunk by chunk, writing the files (module docstring).

    Args:
      task: the :class:`~actinf.fit.tasks.Task` (its dtype sets the precision:
        build it under ``jax.enable_x64(True)`` for double precision).
      ids: ``P`` distinct participant ids (as from :func:`~actinf.fit.data.read_behaviour`).
      behaviour: their :class:`~actinf.fit.likelihood.Behaviour` ``[P, ...]``.
      method: ``map``, ``laplace``, ``nuts`` (independent NUTS per participant)
        or ``hierarchical`` (one NUTS run over everyone).
      out_dir: the folder (created; files of a previous fit with the same
        settings are reused, others overwritten).
      chunk: participants per job (every job has exactly this many, padded,
        and with several devices padded up to a multiple of them, over which
        it is split: :mod:`actinf.fit.devices`; ignored for ``hierarchical``).
      progress: called as ``progress(done, total)`` participants, once at the
        start (those loaded) and after each chunk, once its files are written.
      executor: :class:`LocalExecutor` (default) or :class:`RayExecutor`.
      method_options: the method's options (:data:`METHODS`): ``iterations``
        (MAP, Laplace); ``chains``, ``warmup``, ``draws``, ``seed`` (NUTS; chunk
        ``k`` samples with a seed derived from ``seed`` and ``k``),
        ``max_tree_depth`` (NUTS: the largest tree depth, 3 for ``nuts`` and 10
        for ``hierarchical``; their warm-ups keep at least those defaults).

    Returns:
      a :class:`FitOutput`.

    Raises:
      ValueError: an unknown method or option, a bad chunk, ids that do not
        match the participants or are not distinct (also as file names).
      OSError: the folder or a file cannot be written.
      ImportError: NUTS without numpyro and ArviZ, Ray without ray.
    """
    began = time.perf_counter()
    options = _options(method, method_options)
    if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk}")
    chunk = int(chunk)
    ids = [i.item() if isinstance(i, np.generic) else i for i in ids]  # JSON-ready
    outcomes, actions, trials = (np.asarray(x) for x in behaviour)
    behaviour = Behaviour(outcomes, actions, trials.astype(bool))
    P = outcomes.shape[0]
    if len(ids) != P:
        raise ValueError(f"{len(ids)} ids for {P} participants")
    stems = [_file_stem(i) for i in ids]
    if len(set(stems)) != P:
        raise ValueError("participant ids must be distinct (also once made safe for file names)")
    executor = LocalExecutor() if executor is None else executor

    out = Path(out_dir)
    folder = out / "participants"
    folder.mkdir(parents=True, exist_ok=True)
    if method in _SAMPLED:
        (out / "posterior").mkdir(exist_ok=True)
    paths = [folder / f"{s}.json" for s in stems]
    digests = [_digest(behaviour, p) for p in range(P)]
    settings = {"task": task.name, "definition": _task_digest(task), "method": method, "options": options}
    records: list[dict | None] = [_load_record(paths[p], {**settings, "data": digests[p]}) for p in range(P)]

    if method == "hierarchical":
        groups = [list(range(P))]
    else:
        groups = [list(range(s, min(s + chunk, P))) for s in range(0, P, chunk)]
    todo = [k for k, g in enumerate(groups) if any(records[p] is None for p in g)]
    for k in todo:  # a chunk is refitted whole: its results do not depend on what was done before
        for p in groups[k]:
            records[p] = None
    done = sum(r is not None for r in records)
    if progress is not None:
        progress(done, P)

    devices = jax.device_count()

    def job(k: int) -> tuple:
        members = groups[k]
        # a chunk is padded to a multiple of the devices, to be split over them
        width = len(members) if method == "hierarchical" else -(-chunk // devices) * devices
        index = np.asarray(members + [members[-1]] * (width - len(members)))
        part = Behaviour(outcomes[index], actions[index], behaviour.trials[index])
        opts = dict(options)
        if method in _SAMPLED:
            opts["seed"] = int(np.random.SeedSequence([options["seed"], k]).generate_state(1)[0])
        return (task, method, part, len(members), opts)

    population = None
    fitted: list = []
    jobs = [job(k) for k in todo]
    for j, result in executor.run(fit_chunk, jobs):
        k = todo[j]
        members = groups[k]
        if result.posterior is not None:
            idata = result.posterior.assign_coords(participant=[str(ids[p]) for p in members])
            idata.to_netcdf(str(out / "posterior" / f"chunk_{k}.nc"))
            if method == "hierarchical":
                population = _population(idata)
        for p, rec in zip(members, result.records, strict=True):
            record = {
                "participant": ids[p],
                **settings,
                "data": digests[p],
                "parameters": list(task.names),
                "trials": int(behaviour.trials[p].sum()),
                **rec,
                "chunk": k,
            }
            _write_json(paths[p], record)
            records[p] = record
            fitted.append(ids[p])
        done += len(members)
        if progress is not None:
            progress(done, P)

    final = [r for r in records if r is not None]
    estimates = _estimates_table(task, method, ids, final)
    estimates.to_csv(out / "estimates.csv", index=False)
    wall = time.perf_counter() - began
    fit_json_path = out / "fit.json"
    if method == "hierarchical" and population is None:  # resumed: keep the earlier summary
        previous = _load_record(fit_json_path, settings)
        population = None if previous is None else previous.get("population")
    meta = {
        **settings,
        "chunk": chunk,
        "participants": P,
        "fitted": len(fitted),
        "loaded": P - len(fitted),
        "parameters": [
            {"name": p.name, "transform": p.transform, "prior_mean": p.prior_mean, "prior_sd": p.prior_sd}
            for p in task.parameters
        ],
        "precision": "float64" if _x64(task) else "float32",
        "executor": getattr(executor, "name", type(executor).__name__),
        "versions": _versions(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 3),
        "population": population,
        "files": {
            "participants": "participants/<id>.json",
            "estimates": "estimates.csv",
            **({"posterior": "posterior/chunk_<k>.nc"} if method in _SAMPLED else {}),
        },
    }
    _write_json(fit_json_path, meta)
    return FitOutput(task.name, method, options, ids, final, estimates, fitted, out, wall, population)


def laplace_result(output: FitOutput):
    """The :class:`~actinf.fit.estimate.LaplaceResult` of a Laplace :func:`fit_dataset` (for
    :func:`~actinf.fit.compare.compare_laplace`), rebuilt from its records.

    Raises:
      ValueError: the fit was not a Laplace one.
    """
    from .estimate import LaplaceResult, MapResult

    if output.method != "laplace":
        raise ValueError(f"a Laplace result needs method 'laplace', not {output.method!r}")
    names = output.records[0]["parameters"]

    def column(key: str, scale: str | None = None) -> np.ndarray:
        if scale is None:
            return np.asarray([[r[key][n] for n in names] for r in output.records], np.float64)
        return np.asarray([[r[key][scale][n] for n in names] for r in output.records], np.float64)

    def scalar(key: str) -> np.ndarray:
        return np.asarray([np.nan if r[key] is None else r[key] for r in output.records], np.float64)

    fit = MapResult(
        column("estimate", "unconstrained"),
        column("estimate", "natural"),
        scalar("log_joint"),
        scalar("log_likelihood"),
        scalar("grad_norm"),
    )
    covariance = np.asarray([r["covariance"] for r in output.records], np.float64)
    converged = np.asarray([bool(r["converged"]) for r in output.records])
    return LaplaceResult(fit, covariance, column("sd"), scalar("log_evidence"), converged)


def load_posterior(out_dir: str | os.PathLike):
    """The NUTS posterior of a :func:`fit_dataset` folder: its chunks joined along ``participant``.

    Variables with a ``participant`` dimension (``z``, ``theta``, the ``log_likelihood``
    group) are concatenated; the others (``sample_stats``: each chunk is its own run)
    are stacked along a new ``chunk`` dimension.
    """
    import arviz as az
    import xarray as xr

    files = sorted(
        Path(out_dir, "posterior").glob("chunk_*.nc"), key=lambda p: int(p.stem.removeprefix("chunk_"))
    )
    if not files:
        raise FileNotFoundError(f"{Path(out_dir, 'posterior')}: no chunk_<k>.nc files")
    parts = [az.from_netcdf(str(f)) for f in files]
    if len(parts) == 1:
        return parts[0]
    groups = {}
    for group in parts[0].groups():
        datasets = [part[group] for part in parts]
        variables = {}
        for name in datasets[0].data_vars:
            values = [d[name] for d in datasets]
            dim = "participant" if "participant" in values[0].dims else "chunk"
            variables[name] = xr.concat(values, dim=dim)
        groups[group] = xr.Dataset(variables, attrs=datasets[0].attrs)
    return az.InferenceData(**groups)


# ---------------------------------------------------------------------------- recovery


class RecoveryResult(NamedTuple):
    """True and recovered parameters of simulated participants.

    Attributes:
      task, method: what was simulated and how it was fitted.
      names: the parameter names.
      z_true, z_hat: ``[P, d]`` on the unconstrained scale.
      theta_true, theta_hat: ``[P, d]`` on the natural scales.
      table: per parameter (index), ``r`` and ``r_z`` (Pearson correlation of
        estimate and truth), ``bias`` and ``bias_z`` (mean of estimate - true)
        and ``rmse`` and ``rmse_z``, on the natural and unconstrained scales.
      settings: subjects, trials, method, seed, options, wall time.
    """

    task: str
    method: str
    names: tuple[str, ...]
    z_true: np.ndarray
    z_hat: np.ndarray
    theta_true: np.ndarray
    theta_hat: np.ndarray
    table: Any
    settings: dict


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _recovery_table(names, true, hat, z_true, z_hat):
    import pandas as pd

    rows = {}
    for i, n in enumerate(names):
        rows[n] = {
            "r": _pearson(true[:, i], hat[:, i]),
            "r_z": _pearson(z_true[:, i], z_hat[:, i]),
            "bias": float(np.mean(hat[:, i] - true[:, i])),
            "bias_z": float(np.mean(z_hat[:, i] - z_true[:, i])),
            "rmse": float(np.sqrt(np.mean((hat[:, i] - true[:, i]) ** 2))),
            "rmse_z": float(np.sqrt(np.mean((z_hat[:, i] - z_true[:, i]) ** 2))),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table


def recover(
    task: Task | str,
    *,
    subjects: int,
    trials: int,
    method: str = "map",
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 25,
    executor: LocalExecutor | RayExecutor | None = None,
    **method_options,
) -> RecoveryResult:
    """Parameter recovery: draw, simulate, fit, compare.

    ``subjects`` participants draw :math:`z` from the task's prior
    (:func:`~actinf.fit.likelihood.sample_prior`, key ``split(key(seed))[0]``), do
    ``trials`` trials (:func:`~actinf.fit.likelihood.simulate`, key
    ``split(key(seed))[1]``) and are fitted by :func:`fit_dataset` with ``method``;
    the estimates (MAP, or posterior means) are compared with the truth.

    Args:
      task: a :class:`~actinf.fit.tasks.Task` or a task spec (:func:`task_from_spec`,
        built in double precision).
      subjects: simulated participants.
      trials: trials each.
      method, chunk, executor, method_options: as :func:`fit_dataset` (``seed``
        of NUTS defaults to ``seed``).
      seed: the seed of the simulation.
      out_dir: where to write the fit's files, the simulated ``data.csv`` and
        ``recovery.csv`` (per participant: true and estimated values),
        ``recovery.json`` (the table and settings) and ``recovery.png``
        (:func:`plot_recovery`, needs matplotlib); None: nothing is kept.
      progress: as :func:`fit_dataset`.

    Returns:
      a :class:`RecoveryResult`.
    """
    from .likelihood import sample_prior, simulate

    began = time.perf_counter()
    if isinstance(task, str):
        with jax.enable_x64(True):
            task = task_from_spec(task)
    for name, value in (("subjects", subjects), ("trials", trials)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if method in _SAMPLED:
        method_options.setdefault("seed", seed)
    _options(method, method_options)  # fail before simulating
    with jax.enable_x64(_x64(task)), jax.numpy_rank_promotion("allow"):
        key_prior, key_run = jax.random.split(jax.random.key(seed))
        z_true = np.asarray(sample_prior(key_prior, task, int(subjects)), np.float64)
        behaviour = jax.device_get(simulate(key_run, task, z_true, int(trials)))
        theta_true = np.asarray(task.natural(jnp.asarray(z_true)), np.float64)
    width = max(len(str(subjects)), 2)
    ids = [f"s{i + 1:0{width}d}" for i in range(int(subjects))]

    def run(folder: Path) -> FitOutput:
        return fit_dataset(
            task,
            ids,
            behaviour,
            method=method,
            out_dir=folder,
            chunk=chunk,
            progress=progress,
            executor=executor,
            **method_options,
        )

    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="actinf-recover-") as folder:
            output = run(Path(folder))
    else:
        output = run(Path(out_dir))
    names = task.names
    z_hat = output.estimates[[f"{n}_z" for n in names]].to_numpy(np.float64)
    theta_hat = output.estimates[list(names)].to_numpy(np.float64)
    table = _recovery_table(names, theta_true, theta_hat, z_true, z_hat)
    settings = {
        "task": task.name,
        "method": method,
        "subjects": int(subjects),
        "trials": int(trials),
        "seed": int(seed),
        "options": output.options,
        "chunk": int(chunk),
        "wall_time_s": round(time.perf_counter() - began, 3),
    }
    result = RecoveryResult(task.name, method, names, z_true, z_hat, theta_true, theta_hat, table, settings)
    if out_dir is not None:
        _save_recovery(result, Path(out_dir), ids, behaviour, task)
    return result


def _save_recovery(result: RecoveryResult, out: Path, ids: list, behaviour, task: Task) -> None:
    import pandas as pd

    from .data import write_behaviour

    write_behaviour(out / "data.csv", ids, behaviour, task)
    columns: dict[str, Any] = {"participant": ids}
    for i, n in enumerate(result.names):
        columns[f"{n}_true"] = result.theta_true[:, i]
        columns[f"{n}_hat"] = result.theta_hat[:, i]
    for i, n in enumerate(result.names):
        columns[f"{n}_z_true"] = result.z_true[:, i]
        columns[f"{n}_z_hat"] = result.z_hat[:, i]
    pd.DataFrame(columns).to_csv(out / "recovery.csv", index=False)
    summary = {
        **result.settings,
        "parameters": {n: {k: _floats(v) for k, v in row.items()} for n, row in result.table.iterrows()},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
    }
    _write_json(out / "recovery.json", summary)
    figure = plot_recovery(result)
    figure.savefig(out / "recovery.png", dpi=120)


def plot_recovery(result: RecoveryResult, *, scale: str = "natural") -> Figure:
    """One scatter panel per parameter: true against recovered, the identity line, ``r`` in the title.

    Args:
      result: a :class:`RecoveryResult`.
      scale: ``natural`` or ``unconstrained``.

    Returns:
      a matplotlib ``Figure`` (not attached to pyplot; ``fig.savefig(...)``).
    """
    from matplotlib.figure import Figure

    if scale not in ("natural", "unconstrained"):
        raise ValueError(f"scale must be 'natural' or 'unconstrained', got {scale!r}")
    true, hat = (result.theta_true, result.theta_hat) if scale == "natural" else (result.z_true, result.z_hat)
    d = len(result.names)
    fig = Figure(figsize=(3.4 * d, 3.4), layout="constrained")
    axes = fig.subplots(1, d, squeeze=False)[0]
    column = "r" if scale == "natural" else "r_z"
    for i, (ax, name) in enumerate(zip(axes, result.names, strict=True)):
        x, y = true[:, i], hat[:, i]
        ax.scatter(x, y, s=14, alpha=0.7, color="C0", edgecolor="none")
        both = np.concatenate([x, y])
        both = both[np.isfinite(both)]
        lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, ls="--")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_title(f"{name} (r = {result.table.loc[name, column]:.2f})", fontsize=10)
        ax.set_xlabel("true")
        ax.set_ylabel("recovered" if i == 0 else "")
    fig.suptitle(
        f"{result.task}: {result.method}, {result.settings['subjects']} subjects x "
        f"{result.settings['trials']} trials",
        fontsize=10,
    )
    return fig
