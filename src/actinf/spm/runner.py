"""Run SPM problems: SPM structures in, SPM outputs out, and comparison with SPM's.

:func:`run_case` takes an :class:`~actinf.spm.io.SpmCase` (read from the
reference JSON schema or a MATLAB ``.mat`` holding an ``MDP`` structure array),
solves every trial with :func:`~actinf.spm.scheme.spm_sequence` and returns
SPM's outputs per trial as NumPy arrays with SPM's names. :func:`compare`
measures the largest error per array against outputs already known, with the
tolerances of the reference README: absolute ``1e-6`` for probabilities and
precisions, relative ``1e-6`` (of ``max(1, |x|)``) for free energies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from ..model import generative_model
from .io import SCALAR_PARAMETERS, SpmCase
from .scheme import SpmSettings, SpmTrialResult, spm_sequence, spm_settings

#: Outputs compared with an absolute tolerance (probabilities, precisions, counts).
ABSOLUTE = ("X", "Q", "P", "R", "w", "a_post", "b_post", "d_post")
#: Outputs compared with a relative tolerance (negative free energies).
RELATIVE = ("F", "G", "H", "Fa", "Fb", "Fd")
TOLERANCE = 1e-6


def case_model(case: SpmCase):
    """The :class:`~actinf.model.GenerativeModel` of a case, normalised as SPM does."""
    m = case.model
    return generative_model(
        m.A,
        m.B,
        m.C,
        m.D,
        m.E,
        m.V,
        likelihood_counts=m.a,
        transition_counts=m.b,
        preference_counts=m.c,
        initial_counts=m.d,
        habit_counts=m.e,
        normalise_columns=True,
    )


def case_settings(case: SpmCase, gamma_fixed: bool | None = None) -> SpmSettings:
    """SPM's settings for a case: its ``alpha``, ``beta``, ``eta``, ... or SPM's defaults."""
    m = case.model
    fixed = case.options.get("gamma_fixed", False) if gamma_fixed is None else gamma_fixed
    return spm_settings({k: getattr(m, k) for k in SCALAR_PARAMETERS}, gamma_fixed=bool(fixed))


def result_outputs(result: SpmTrialResult) -> dict:
    """SPM's outputs of one trial as NumPy arrays, keyed as in the reference schema.

    The learned counts (``a_post``, ``b_post``, ``c_post``, ``d_post``, ``e_post``)
    and their free energies (``Fa`` ... ``Fe``) are included for the counts the
    model has.
    """
    out = {name: np.asarray(getattr(result, name)) for name in ("P", "R", "F", "G", "H", "w")}
    out["X"] = [np.asarray(x) for x in result.X]
    out["Q"] = [np.asarray(q) for q in result.Q]
    m = result.model
    learned = (
        ("a", m.likelihood_counts, result.Fa),
        ("b", m.transition_counts, result.Fb),
        ("c", m.preference_counts, result.Fc),
        ("d", m.initial_counts, result.Fd),
        ("e", m.habit_counts, result.Fe),
    )
    for key, counts, free_energy in learned:
        if counts is None:
            continue
        out[f"{key}_post"] = np.asarray(counts) if key == "e" else [np.asarray(x) for x in counts]
        out[f"F{key}"] = np.asarray(free_energy)
    return out


def run_case(
    case: SpmCase,
    *,
    gamma_fixed: bool | None = None,
    rng_key: jax.Array | None = None,
    callback=None,
) -> list[dict]:
    """Solve every trial of a case as SPM's ``spm_MDP_VB_X(MDP, OPTIONS)`` would.

    States, outcomes and actions missing from the case are sampled (with
    ``rng_key``), as SPM samples them.

    Returns:
      one dict of outputs per trial (see :func:`result_outputs`), plus ``s``,
      ``o`` and ``u`` as used.
    """
    model = case_model(case)
    settings = case_settings(case, gamma_fixed)
    F, G, T = model.num_factors, model.num_modalities, model.horizon

    def given(x, shape):
        return np.full(shape, -1, np.int32) if x is None else np.asarray(x, np.int32)

    outcomes = [given(tr.o, (G, T)) for tr in case.trials]
    actions = [given(tr.u, (F, T - 1)) for tr in case.trials]
    states = [given(tr.s, (F, T)) for tr in case.trials]
    results = spm_sequence(
        model, outcomes, actions, settings, states=states, rng_key=rng_key, callback=callback
    )
    outputs = []
    for res in results:
        out = result_outputs(res)
        out["s"], out["o"], out["u"] = np.asarray(res.s), np.asarray(res.o), np.asarray(res.u)
        outputs.append(out)
    return outputs


def _error(name: str, got, ref) -> float:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.size == ref.size and got.shape != ref.shape:
        got = got.reshape(ref.shape)
    if got.shape != ref.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    diff = np.abs(got - ref)
    if name in RELATIVE:
        diff = diff / np.maximum(1.0, np.abs(ref))
    return float(np.max(diff))


def compare(outputs: Sequence[Mapping], case: SpmCase) -> dict[str, float]:
    """Largest error of each output over all trials against the case's own outputs.

    Absolute error for :data:`ABSOLUTE` arrays, relative (to ``max(1, |x|)``)
    for :data:`RELATIVE` ones; ``inf`` where shapes disagree. Only outputs
    present in the case are compared.
    """
    worst: dict[str, float] = {}
    for out, trial in zip(outputs, case.trials, strict=True):
        for name, ref in trial.outputs.items():
            if name not in out:
                worst[name] = float("inf")
                continue
            got = out[name]
            if isinstance(ref, (list, tuple)):
                if len(ref) != len(got):
                    err = float("inf")
                else:
                    err = max(_error(name, g, r) for g, r in zip(got, ref, strict=True))
            else:
                err = _error(name, got, ref)
            worst[name] = max(worst.get(name, 0.0), err)
    return worst


def passes(errors: Mapping[str, float], tolerance: float = TOLERANCE) -> bool:
    """Whether every error is within tolerance (and there was something to compare)."""
    return bool(errors) and all(e <= tolerance for e in errors.values())
