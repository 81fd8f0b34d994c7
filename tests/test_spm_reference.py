"""SPM12's ``spm_MDP_VB_X`` outputs, reproduced number for number.

Every reference case (121 JSON, 20 MATLAB .mat) from ``tests/data`` (a copy of
``../shared/spm-reference``) is solved in float64 and each output array is
compared with SPM's to the README's tolerances: absolute 1e-6 for
probabilities, relative 1e-6 for free energies.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest

from actinf.spm.io import load_case
from actinf.spm.runner import TOLERANCE, compare, run_case

DATA = Path(__file__).parent / "data"
JSON_CASES = sorted((DATA / "vbx").glob("*.json"))
MAT_CASES = sorted((DATA / "mat").glob("*.mat"))
EXPECTED_OUTPUTS = {"X", "Q", "P", "R", "F", "G", "H", "w"}


@pytest.fixture(autouse=True)
def _free_compiled_code():
    yield
    jax.clear_caches()


def test_all_reference_cases_are_here():
    assert len(JSON_CASES) == 121
    assert len(MAT_CASES) == 20


@pytest.mark.parametrize("path", JSON_CASES, ids=[p.stem for p in JSON_CASES])
def test_json_case_matches_spm(path):
    case = load_case(path)
    errors = compare(run_case(case), case)
    assert EXPECTED_OUTPUTS <= set(errors)
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not bad, f"{path.name}: errors above {TOLERANCE}: {bad}"


@pytest.mark.parametrize("path", MAT_CASES, ids=[p.stem for p in MAT_CASES])
def test_mat_case_matches_spm(path):
    reference = load_case(DATA / "vbx" / f"{path.stem}.json")
    case = load_case(path)
    gamma_fixed = json.loads((DATA / "vbx" / f"{path.stem}.json").read_text())["options"][
        "gamma_fixed"
    ]
    outputs = run_case(case, gamma_fixed=bool(gamma_fixed))
    errors = compare(outputs, reference)
    assert EXPECTED_OUTPUTS <= set(errors)
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not bad, f"{path.name}: errors above {TOLERANCE}: {bad}"


def test_tampered_reference_fails():
    """The comparison can fail: a perturbed SPM output is detected."""
    import dataclasses

    import numpy as np

    case = load_case(DATA / "vbx" / "vbx_1001.json")
    outputs = run_case(case)
    trial = case.trials[0]
    X = [np.array(x) for x in trial.outputs["X"]]
    X[0][0, 0] += 1e-5
    bad_trial = dataclasses.replace(trial, outputs={**trial.outputs, "X": X})
    bad_case = dataclasses.replace(case, trials=(bad_trial,))
    errors = compare(outputs, bad_case)
    assert errors["X"] > TOLERANCE
