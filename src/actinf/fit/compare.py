"""Comparing models fitted to the same participants.

* :func:`compare_laplace`: by the Laplace approximation of each participant's log
  evidence :math:`\\ln p(u_p \\mid m)` (:func:`~actinf.fit.estimate.fit_laplace`,
  SPM's free energy). Participants are independent, so a model's log evidence for
  the group is the sum :math:`F_m = \\sum_p \\ln p(u_p \\mid m)` and, with equal
  prior probabilities, the posterior probability of each model (fixed effects:
  one model generated every participant) is

  .. math::

     p(m \\mid u) = \\frac{e^{F_m}}{\\sum_{m'} e^{F_{m'}}}

  (Stephan et al. 2009, *Bayesian model selection for group studies*,
  NeuroImage 46; random-effects selection is not implemented).
* :func:`compare_loo`: by the expected log predictive density of a left-out
  participant, PSIS-LOO (Vehtari, Gelman & Gabry 2017, *Practical Bayesian model
  evaluation using leave-one-out cross-validation and WAIC*, Statistics and
  Computing 27), from the samples of :func:`~actinf.fit.sampling.fit_nuts` or
  :func:`~actinf.fit.sampling.fit_hierarchical`, by ArviZ's ``compare``.

:func:`format_table` prints either table as plain text. pandas and ArviZ are
imported only when a function here is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .estimate import LaplaceResult

if TYPE_CHECKING:
    import arviz
    import pandas

__all__ = ["compare_laplace", "compare_loo", "format_table"]


def compare_laplace(results: Mapping[str, LaplaceResult]) -> pandas.DataFrame:
    """Models ranked by their summed Laplace log evidence, best first.

    Args:
      results: a :class:`~actinf.fit.estimate.LaplaceResult` per model name, all
        fitted to the same participants (in the same order).

    Returns:
      a DataFrame indexed by model, with columns ``log_evidence`` (:math:`F_m`),
      ``delta`` (:math:`F_{best} - F_m \\ge 0`; above 3, odds of more than 20 to 1
      against the model), ``best_participants`` (the number of participants
      whose own log evidence is highest under the model; ties go to the first
      model given), ``probability`` (:math:`p(m \\mid u)`, fixed effects) and
      ``not_converged`` (participants whose fit did not converge).

    Raises:
      ValueError: without models, or if the models saw different numbers of participants.
    """
    try:
        import pandas as pd
    except ImportError as error:
        raise ImportError("model comparison tables need pandas: pip install actinf[fit]") from error
    if not results:
        raise ValueError("compare_laplace needs at least one model")
    names = list(results)
    evidence = [np.asarray(r.log_evidence, dtype=float) for r in results.values()]
    sizes = {name: e.shape for name, e in zip(names, evidence, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the models were fitted to different numbers of participants: {sizes}")
    per_participant = np.stack(evidence)  # [M, P]
    total = per_participant.sum(axis=1)
    best = np.argmax(per_participant, axis=0)
    shifted = total - np.max(total)
    probability = np.exp(shifted) / np.sum(np.exp(shifted))
    table = pd.DataFrame(
        {
            "log_evidence": total,
            "delta": np.max(total) - total,
            "best_participants": np.bincount(best, minlength=len(names)),
            "probability": probability,
            "not_converged": [int(np.sum(~np.asarray(r.converged))) for r in results.values()],
        },
        index=pd.Index(names, name="model"),
    )
    return table.sort_values("log_evidence", ascending=False, kind="stable")


def compare_loo(idatas: Mapping[str, arviz.InferenceData]) -> pandas.DataFrame:
    """Models ranked by PSIS-LOO (leave one participant out), best first.

    Args:
      idatas: the ``InferenceData`` of each model (:func:`~actinf.fit.sampling.fit_nuts`
        or :func:`~actinf.fit.sampling.fit_hierarchical`), all fitted to the same participants.

    Returns:
      ArviZ's comparison (``az.compare(idatas, ic="loo")``) indexed by model:
      ``rank``, ``elpd_loo`` (expected log predictive density of a left-out
      participant's choices, summed; higher is better), ``p_loo`` (effective
      number of parameters), ``elpd_diff`` (to the best) and its standard error
      ``dse``, ``se``, stacking ``weight``, and ``warning`` (True if a Pareto
      :math:`\\hat k` is above ArviZ's threshold, 0.7 or lower for few draws: the
      estimate is unreliable for some participant).

    Raises:
      ImportError: without ArviZ (``pip install actinf[fit]``).
    """
    try:
        import arviz as az
    except ImportError as error:
        raise ImportError("model comparison by LOO needs arviz: pip install actinf[fit]") from error
    if not idatas:
        raise ValueError("compare_loo needs at least one model")
    table = az.compare(dict(idatas), ic="loo", var_name="choices")
    table.index.name = "model"
    columns = ["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "se", "weight", "warning"]
    return table[[c for c in columns if c in table.columns]]


def format_table(df: pandas.DataFrame, digits: int = 2) -> str:
    """A plain-text table of ``df`` (floats to ``digits`` decimals), for the command line."""
    return df.to_string(float_format=lambda x: f"{x:.{digits}f}")
