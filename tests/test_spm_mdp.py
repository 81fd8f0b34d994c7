"""``spm_MDP_VB_X`` on Python dicts with SPM's field names and 1-based indices."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from actinf import ModelError
from actinf.spm.io import load_case
from actinf.spm.mdp import spm_MDP_VB_X
from actinf.spm.runner import TOLERANCE, compare

DATA = Path(__file__).parent / "data" / "vbx"


def _mdp_dicts(case):
    """The case as a MATLAB user would write it: SPM's fields, 1-based indices."""
    m = case.model
    base = {"A": list(m.A), "B": list(m.B), "C": list(m.C), "D": list(m.D), "V": m.V + 1}
    for key in ("E", "alpha", "beta", "eta"):
        if getattr(m, key) is not None:
            base[key] = getattr(m, key)
    for key in ("a", "b", "d"):
        if getattr(m, key) is not None:
            base[key] = list(getattr(m, key))
    return [{**base, "s": tr.s + 1, "o": tr.o + 1, "u": tr.u + 1} for tr in case.trials]


@pytest.mark.parametrize("name", ["vbx_1014", "tmaze_spm_demo"])
def test_sequence_of_dicts_reproduces_spm(name):
    case = load_case(DATA / f"{name}.json")
    out = spm_MDP_VB_X(_mdp_dicts(case), {"gamma": int(case.options["gamma_fixed"])})
    outputs = [
        {
            **{k: o[k] for k in ("X", "Q", "P", "R", "F", "G", "H", "w")},
            **{f"{k}_post": o[k] for k in ("a", "b", "d") if k in o},
            **{k: o[k] for k in ("Fa", "Fb", "Fd") if k in o},
        }
        for o in out
    ]
    errors = compare(outputs, case)
    assert {"X", "P", "R", "F", "G", "H", "w"} <= set(errors)
    assert all(e <= TOLERANCE for e in errors.values()), errors


def test_single_dict_with_unspecified_outcomes_is_sampled():
    case = load_case(DATA / "vbx_1001.json")
    mdp = _mdp_dicts(case)[0]
    mdp = {k: v for k, v in mdp.items() if k not in ("s", "o", "u")}
    out = spm_MDP_VB_X(mdp, rng_key=jax.random.PRNGKey(0))
    assert isinstance(out, dict)
    assert out["o"].shape == (1, 3) and out["o"].min() >= 1
    assert out["u"].shape == (1, 2) and out["u"].min() >= 1
    np.testing.assert_allclose(out["R"].sum(0), 1.0, atol=1e-12)


def test_zero_based_policies_are_refused():
    case = load_case(DATA / "vbx_1001.json")
    mdp = _mdp_dicts(case)[0]
    mdp["V"] = mdp["V"] - 1
    with pytest.raises(ModelError, match="1-based"):
        spm_MDP_VB_X(mdp)


def test_missing_likelihood_is_refused():
    with pytest.raises(ModelError, match="no field A"):
        spm_MDP_VB_X({"B": [np.eye(2)], "V": np.ones((1, 1))})
