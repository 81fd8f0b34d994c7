"""Fitting active inference models to behaviour (see ``docs/fitting.md``).

Three layers, the same code underneath:

* the mathematics, for one participant: :func:`log_likelihood` and
  :func:`log_joint` of a :class:`Task` (a world, an agent and its free
  :class:`Parameter` s, :data:`TASKS`, :func:`make_task`) given its
  :class:`Behaviour`; :func:`simulate` and :func:`sample_prior`;
* estimators over a group (``jax.vmap`` over participants): :func:`fit_map`,
  :func:`fit_laplace` (:class:`MapResult`, :class:`LaplaceResult`);
  :func:`fit_nuts`, :func:`fit_hierarchical` (ArviZ ``InferenceData``),
  :func:`summary`, :func:`diagnostics`; model comparison with
  :func:`compare_laplace`, :func:`compare_loo`, :func:`format_table`;
* data sets: the long table (:func:`read_behaviour`, :func:`write_behaviour`,
  :func:`to_frame`, :class:`DataError`, :func:`example_data`) and
  :func:`fit_dataset` (chunks, files per participant, resume, :class:`LocalExecutor`
  or :class:`RayExecutor`), :func:`recover` and :func:`plot_recovery`
  (parameter recovery), :func:`task_from_spec` and :func:`fix_parameters`
  (reduced models); the command line ``actinf fit`` and ``actinf recover``;
  :func:`use_cpu_cores` and :func:`shard_batch` split participants over the
  CPU's cores (``actinf.fit.devices``).

Names are imported on first use: optax, numpyro, ArviZ and pandas
(``pip install actinf[fit]``) only when a function needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "tasks": ("PARAMETERS", "TASKS", "Parameter", "Task", "make_task"),
    "likelihood": ("Behaviour", "log_joint", "log_likelihood", "sample_prior", "simulate"),
    "estimate": ("LaplaceResult", "MapResult", "fit_laplace", "fit_map"),
    "sampling": ("diagnostics", "fit_hierarchical", "fit_nuts", "summary"),
    "compare": ("compare_laplace", "compare_loo", "format_table"),
    "devices": ("shard_batch", "use_cpu_cores"),
    "data": ("DataError", "example_data", "read_behaviour", "to_frame", "write_behaviour"),
    "runner": (
        "FitOutput",
        "LocalExecutor",
        "RayExecutor",
        "RecoveryResult",
        "fit_dataset",
        "fix_parameters",
        "plot_recovery",
        "recover",
        "task_from_spec",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
