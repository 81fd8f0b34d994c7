"""``spm_MDP_VB_X(MDP, OPTIONS)`` for Python dictionaries with SPM's field names.

For a MATLAB user porting a script: build ``MDP`` as a dict with SPM's fields
(or a list of dicts for a sequence of trials ``MDP(1:n)``), with MATLAB's
1-based indices, and call :func:`spm_MDP_VB_X`. The result has the same
fields plus SPM's outputs, as ``spm_MDP_VB_X.m`` returns them.

Fields read (see ``spm_MDP_VB_X.m``): ``A``, ``B``, ``C``, ``D``, ``E``,
``V`` (``[T-1, Np, F]``, or ``[T-1, Np]`` with one factor), ``T``, the
Dirichlet counts ``a``, ``b``, ``c``, ``d``, ``e``, the precisions ``alpha``,
``beta``, ``eta``, ``zeta``, ``tau``, ``erp``, and per trial ``s``, ``o``,
``u`` (1-based; ``0`` or absent: sampled). ``A``, ``B``, ... may be a list
(MATLAB's cell array) or, with one modality or factor, a single array.
``OPTIONS`` is a dict; ``OPTIONS["gamma"] = 1`` holds the policy precision
fixed, as in SPM.

Outputs added to each trial (0-based arrays become 1-based only for ``s``,
``o`` and ``u``): ``X``, ``Q``, ``P``, ``R``, ``F``, ``G``, ``H``, ``w``, the
learned ``a``, ``b``, ``c``, ``d``, ``e`` and their free energies ``Fa``,
``Fb``, ``Fc``, ``Fd``, ``Fe``. Sequences carry the learned counts from each
trial to the next (SPM's ``spm_MDP_update``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from ..model import ModelError, generative_model
from .io import SCALAR_PARAMETERS
from .runner import result_outputs
from .scheme import spm_sequence, spm_settings

_LISTS = ("A", "B", "C", "D", "a", "b", "c", "d")


def _as_list(value):
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.dtype != object:
        return [value]
    return [np.asarray(v, dtype=np.float64) for v in value]


def _model(mdp: Mapping):
    missing = [k for k in ("A", "B") if k not in mdp]
    if missing:
        raise ModelError(f"MDP has no field {missing[0]}")
    if "V" not in mdp:
        raise ModelError("MDP has no field V (allowed policies); MDP.U is not supported")
    f = {k: _as_list(mdp.get(k)) for k in _LISTS}
    B = [b[..., None] if b.ndim == 2 else b for b in f["B"]]
    V = np.asarray(mdp["V"])
    if V.ndim == 2:
        V = V[..., None]
    if "T" in mdp and int(mdp["T"]) != V.shape[0] + 1:
        raise ModelError(f"MDP.T = {int(mdp['T'])} but V has {V.shape[0]} moves (T - 1)")
    if V.size and V.min() < 1:
        raise ModelError(f"MDP.V has an entry {V.min()}: SPM's policies are 1-based")
    E = mdp.get("E")
    e = mdp.get("e")
    return generative_model(
        f["A"],
        B,
        f["C"],
        None if f["D"] is None else [np.ravel(d) for d in f["D"]],
        None if E is None else np.ravel(E),
        V - 1,
        likelihood_counts=f["a"],
        transition_counts=None if f["b"] is None else [b[..., None] if b.ndim == 2 else b for b in f["b"]],
        preference_counts=f["c"],
        initial_counts=None if f["d"] is None else [np.ravel(d) for d in f["d"]],
        habit_counts=None if e is None else np.ravel(e),
        normalise_columns=True,
    )


def _indices(trial: Mapping, key: str, shape) -> np.ndarray:
    """1-based SPM indices (0 = unspecified) to 0-based (-1 = sample)."""
    if key not in trial or trial[key] is None:
        return np.full(shape, -1, np.int32)
    x = np.asarray(trial[key], dtype=np.float64)
    x = x.reshape(shape) if x.size == int(np.prod(shape)) else x
    if x.shape != tuple(shape):
        raise ModelError(f"MDP.{key} has shape {list(x.shape)}, expected {list(shape)}")
    return (np.round(x) - 1).astype(np.int32)


def spm_MDP_VB_X(MDP, OPTIONS: Mapping | None = None, *, rng_key: jax.Array | None = None):
    """Solve an SPM ``MDP`` structure (a dict) or structure array (a list of dicts).

    Args:
      MDP: a dict with SPM's fields (1-based indices), or a list of them for a
        sequence of trials; the model is read from the first trial.
      OPTIONS: SPM's options; ``{"gamma": 1}`` fixes the policy precision.
      rng_key: key for sampling unspecified states, outcomes and actions.

    Returns:
      a dict (or a list of dicts) with the input fields, the learned counts and
      SPM's outputs, as ``spm_MDP_VB_X.m`` returns them.
    """
    options = dict(OPTIONS or {})
    single = isinstance(MDP, Mapping)
    trials: Sequence[Mapping] = [MDP] if single else list(MDP)
    if not trials:
        raise ModelError("MDP is an empty structure array")
    model = _model(trials[0])
    settings = spm_settings(
        {k: trials[0].get(k) for k in SCALAR_PARAMETERS}, gamma_fixed=bool(options.get("gamma", 0))
    )
    F, G, T = model.num_factors, model.num_modalities, model.horizon
    results = spm_sequence(
        model,
        [_indices(tr, "o", (G, T)) for tr in trials],
        [_indices(tr, "u", (F, T - 1)) for tr in trials],
        settings,
        states=[_indices(tr, "s", (F, T)) for tr in trials],
        rng_key=rng_key,
    )
    out = []
    for tr, res in zip(trials, results, strict=True):
        d = dict(tr)
        d.update(T=T, s=np.asarray(res.s) + 1, o=np.asarray(res.o) + 1, u=np.asarray(res.u) + 1)
        # SPM returns the learned counts under their own names (a, b, ...), not a_post
        d.update({k.removesuffix("_post"): v for k, v in result_outputs(res).items()})
        out.append(d)
    return out[0] if single else out
