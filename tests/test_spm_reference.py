"""SPM12's ``spm_MDP_VB_X`` outputs, reproduced number for number.

Every reference case (121 JSON, 20 MATLAB .mat) from ``tests/data`` (a copy of
``../shared/spm-reference``) is solved in float64 and each output array is
compared with SPM's to the README's tolerances: absolute 1e-6 for
probabilities, relative 1e-6 for free energies.

A ``.mat`` case holds the same problem as the JSON of the same name; the two
tests of a name run one after the other on the same worker (``xdist_group``),
so the second reuses the first's compiled trial.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import jax
import numpy as np
import pytest

from actinf.spm.io import load_case
from actinf.spm.runner import TOLERANCE, compare, run_case

DATA = Path(__file__).parent / "data"
JSON_CASES = sorted((DATA / "vbx").glob("*.json"))
MAT_CASES = sorted((DATA / "mat").glob("*.mat"))
CASES = sorted([(p.stem, p) for p in JSON_CASES + MAT_CASES], key=lambda c: (c[0], c[1].suffix != ".json"))
EXPECTED_OUTPUTS = {"X", "Q", "P", "R", "F", "G", "H", "w"}
_counter = itertools.count()


@pytest.fixture(autouse=True)
def _free_compiled_code():
    # compiled trials accumulate (each maps executable memory); free them now and then
    yield
    if next(_counter) % 16 == 15:
        jax.clear_caches()


def test_all_reference_cases_are_here():
    assert len(JSON_CASES) == 121
    assert len(MAT_CASES) == 20
    assert {p.stem for p in MAT_CASES} <= {p.stem for p in JSON_CASES}


@pytest.mark.parametrize(
    "name, path",
    [pytest.param(n, p, marks=pytest.mark.xdist_group(n), id=f"{n}{p.suffix}") for n, p in CASES],
)
def test_case_matches_spm(name, path):
    reference = load_case(DATA / "vbx" / f"{name}.json")
    case = load_case(path)
    # a .mat has no OPTIONS variable: SPM was run on it with the reference's OPTIONS
    outputs = run_case(case, gamma_fixed=reference.options["gamma_fixed"])
    errors = compare(outputs, reference)
    assert EXPECTED_OUTPUTS <= set(errors)
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not bad, f"{path.name}: errors above {TOLERANCE}: {bad}"


def test_tampered_reference_fails():
    """The comparison can fail: a perturbed SPM output is detected."""
    case = load_case(DATA / "vbx" / "vbx_1001.json")
    outputs = run_case(case)
    trial = case.trials[0]
    X = [np.array(x) for x in trial.outputs["X"]]
    X[0][0, 0] += 1e-5
    bad_trial = dataclasses.replace(trial, outputs={**trial.outputs, "X": X})
    errors = compare(outputs, dataclasses.replace(case, trials=(bad_trial,)))
    assert errors["X"] > TOLERANCE
