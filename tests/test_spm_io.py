"""Reading and writing SPM reference cases (actinf.spm.io)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from actinf.spm.io import (
    OUTPUT_KEYS,
    SCALAR_PARAMETERS,
    SpmCase,
    SpmInputError,
    case_to_json,
    iter_case_paths,
    load_case,
    load_json_case,
    load_mat_case,
    write_case_json,
)

DATA = Path(__file__).parent / "data"
JSON_CASES = sorted((DATA / "vbx").glob("*.json"))
MAT_CASES = sorted((DATA / "mat").glob("*.mat"))
MODEL_FIELDS = ("A", "B", "C", "D", "V", "E", "a", "b", "c", "d", "e")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def assert_same(x: object, y: object, what: str, rtol: float = 0.0) -> None:
    """Equality of arrays, lists/tuples of arrays, numbers or None: exact for integer
    arrays, to ``rtol`` for float arrays."""
    if x is None or y is None:
        assert x is None and y is None, what
    elif isinstance(x, (list, tuple)):
        assert isinstance(y, (list, tuple)) and len(x) == len(y), what
        for i, (p, q) in enumerate(zip(x, y, strict=True)):
            assert_same(p, q, f"{what}[{i}]", rtol)
    elif isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray), what
        assert x.shape == y.shape, f"{what}: shape {x.shape} != {y.shape}"
        assert x.dtype == y.dtype, what
        if rtol and x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0, err_msg=what)
        else:
            np.testing.assert_array_equal(x, y, err_msg=what)
    elif rtol and isinstance(x, float):
        assert y == pytest.approx(x, rel=rtol, abs=0), what
    else:
        assert x == y, what


def assert_same_case(
    c1: SpmCase, c2: SpmCase, outputs: bool = True, options: bool = True, rtol: float = 0.0
) -> None:
    """Same model, trials and (if asked) options and outputs; floats to ``rtol``."""
    assert c1.model.T == c2.model.T
    for key in (*MODEL_FIELDS, *SCALAR_PARAMETERS):
        assert_same(getattr(c1.model, key), getattr(c2.model, key), f"model.{key}", rtol)
    assert len(c1.trials) == len(c2.trials)
    if options:
        assert c1.options == c2.options
    for t, (t1, t2) in enumerate(zip(c1.trials, c2.trials, strict=True)):
        for key in ("s", "o", "u"):
            assert_same(getattr(t1, key), getattr(t2, key), f"trials[{t}].{key}")
        if outputs:
            assert t1.outputs.keys() == t2.outputs.keys()
            for key in t1.outputs:
                assert_same(t1.outputs[key], t2.outputs[key], f"trials[{t}].{key}", rtol)


# ------------------------------------------------------------------ reference files


def test_reference_files_present() -> None:
    assert len(JSON_CASES) == 121
    assert len(MAT_CASES) == 20


@pytest.mark.parametrize("path", JSON_CASES, ids=_ids(JSON_CASES))
def test_json_case_loads(path: Path) -> None:
    case = load_case(path)
    m = case.model
    F, G, T, Np = m.num_factors, m.num_modalities, m.T, m.num_policies
    assert case.name == path.stem and case.source == path
    assert isinstance(case.options["gamma_fixed"], bool)
    assert m.V.shape == (T - 1, Np, F) and m.V.dtype == np.int64
    for g in range(G):
        assert m.A[g].shape == (m.num_outcomes[g], *m.num_states)
        assert m.A[g].dtype == np.float64 and not m.A[g].flags.writeable
    for f in range(F):
        assert (m.V[..., f] < m.num_controls[f]).all() and (m.V >= 0).all()
        assert m.D[f].shape == (m.num_states[f],)
    for trial in case.trials:
        assert trial.o.shape == (G, T) and trial.s.shape == (F, T) and trial.u.shape == (F, T - 1)
        out = trial.outputs
        assert {"X", "Q", "P", "R", "F", "G", "H", "w"} <= out.keys()
        assert [x.shape for x in out["X"]] == [(n, T) for n in m.num_states]
        assert [q.shape for q in out["Q"]] == [(n, T, Np) for n in m.num_states]
        assert out["P"].shape == (*m.num_controls, T - 1)
        assert out["R"].shape == out["F"].shape == out["G"].shape == (Np, T)
        for key in ("Fa", "Fb", "Fd"):
            if key in out:
                assert out[key].ndim == 1 and out[key].size == (G if key == "Fa" else F)


@pytest.mark.parametrize("path", MAT_CASES, ids=_ids(MAT_CASES))
def test_mat_case_matches_json(path: Path) -> None:
    from_mat = load_case(path)
    from_json = load_json_case(DATA / "vbx" / f"{path.stem}.json")
    assert from_mat.name == from_json.name
    # gamma_fixed comes from an OPTIONS variable, which the shipped MAT files lack.
    assert "OPTIONS" not in {name for name, *_ in scipy.io.whosmat(path)}
    assert from_mat.options == {"gamma_fixed": False}
    # The JSON's decimal numbers may differ from the MAT file's doubles in the last bit.
    assert_same_case(from_mat, from_json, outputs=False, options=False, rtol=1e-15)
    assert all(trial.outputs == {} for trial in from_mat.trials)


@pytest.mark.parametrize("path", JSON_CASES, ids=_ids(JSON_CASES))
def test_json_round_trip(path: Path, tmp_path: Path) -> None:
    case = load_json_case(path)
    assert case_to_json(case) == json.loads(path.read_text())
    out = tmp_path / path.name
    write_case_json(case, [trial.outputs for trial in case.trials], out)
    assert_same_case(load_json_case(out), case)


# ----------------------------------------------------------------------- MAT details


def _mdp_with(path: Path, **changes: dict[int, object]) -> np.ndarray:
    """The MDP struct array of ``path`` with ``changes[field][i]`` set in element i
    (fields added as needed)."""
    mdp = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True)["MDP"]
    names = list(mdp.dtype.names) + [k for k in changes if k not in mdp.dtype.names]
    new = np.empty(mdp.shape, dtype=[(n, object) for n in names])
    for i in range(mdp.shape[1]):
        for n in names:
            new[0, i][n] = mdp[0, i][n] if n in mdp.dtype.names else np.zeros((0, 0))
        for n, per_elem in changes.items():
            if i in per_elem:
                new[0, i][n] = per_elem[i]
    return new


def _cell(arrays: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((1, len(arrays)), dtype=object)
    for i, x in enumerate(arrays):
        cell[0, i] = x
    return cell


def _matlab(x: np.ndarray) -> np.ndarray:
    """Drop trailing singleton dimensions as MATLAB does (keeping two)."""
    shape = list(x.shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return x.reshape(shape if len(shape) >= 2 else [*shape, 1])


# vbx_1024: T = 2, one factor, 4 trials; vbx_1012: T = 2, two factors, so P loses its
# trailing axis in MATLAB.
@pytest.mark.parametrize("name", ["vbx_1024", "vbx_1012"])
def test_mat_outputs_are_read(name: str, tmp_path: Path) -> None:
    ref = load_json_case(DATA / "vbx" / f"{name}.json")
    changes: dict[str, dict[int, object]] = {}
    for i, trial in enumerate(ref.trials):
        out = trial.outputs
        for key in ("X", "Q"):
            changes.setdefault(key, {})[i] = _cell([_matlab(x) for x in out[key]])
        for key in ("P", "R", "F", "G"):
            changes.setdefault(key, {})[i] = _matlab(out[key])
        for key in ("H", "w", "Fa", "Fb", "Fd"):
            if key in out:
                changes.setdefault(key, {})[i] = out[key][None, :]
    mat = tmp_path / f"{name}.mat"
    scipy.io.savemat(mat, {"MDP": _mdp_with(DATA / "mat" / f"{name}.mat", **changes)})
    case = load_mat_case(mat)
    assert_same_case(case, ref, outputs=False, options=False, rtol=1e-15)
    assert ref.trials[0].outputs["P"].ndim == (2 if name == "vbx_1024" else 3)
    for t, (got, want) in enumerate(zip(case.trials, ref.trials, strict=True)):
        # a, b, d left in MDP by a run of SPM are not read as outputs.
        want = {k: v for k, v in want.outputs.items() if not k.endswith("_post")}
        assert got.outputs.keys() == want.keys()
        for key in want:
            assert_same(got.outputs[key], want[key], f"trials[{t}].{key}")


def test_mat_options_gamma(tmp_path: Path) -> None:
    mat = tmp_path / "g.mat"
    mdp = scipy.io.loadmat(DATA / "mat" / "vbx_1001.mat", squeeze_me=False)["MDP"]
    scipy.io.savemat(mat, {"MDP": mdp, "OPTIONS": {"gamma": 1.0, "plot": 0.0}})
    assert load_mat_case(mat).options["gamma_fixed"] is True
    assert load_mat_case(mat, options={"gamma_fixed": False}).options["gamma_fixed"] is False


def test_mat_later_trial_learning_fields_ignored(tmp_path: Path) -> None:
    src = DATA / "mat" / "vbx_1024.mat"
    d2 = _cell([np.full((4, 1), 7.0)])
    mat = tmp_path / "m.mat"
    scipy.io.savemat(mat, {"MDP": _mdp_with(src, d={1: d2})})
    assert_same_case(load_mat_case(mat), load_mat_case(src))


# ---------------------------------------------------------------------- iter / load


def test_iter_case_paths(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "a.mat").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.json"
    got = iter_case_paths([tmp_path, missing, empty, str(tmp_path / "notes.txt")])
    assert got == [tmp_path / "a.mat", tmp_path / "b.json", missing, empty, tmp_path / "notes.txt"]
    assert iter_case_paths(str(DATA / "mat")) == MAT_CASES


def test_error_is_one_line_and_picklable() -> None:
    err = SpmInputError("x.json", "two\nlines")
    assert str(err) == "x.json: two lines" and isinstance(err, ValueError)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_case_to_json_rejects_unknown_output() -> None:
    case = load_json_case(DATA / "vbx" / "vbx_1001.json")
    with pytest.raises(ValueError, match="unknown output"):
        case_to_json(case, [{"Z": np.zeros(2)}])
    with pytest.raises(ValueError, match="1 trials"):
        case_to_json(case, [])
    assert set(OUTPUT_KEYS) >= case.trials[0].outputs.keys()


# --------------------------------------------------------------------- broken input


def _doc() -> dict:
    return json.loads((DATA / "vbx" / "vbx_1001.json").read_text())


def _set(path: tuple, value: object):
    def edit(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(path: tuple):
    def edit(doc: dict) -> None:
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


# vbx_1001: T = 3, A[0] [2, 3], B[0] [3, 3, 2], V [2, 4, 1], one trial.
BROKEN_JSON = {
    "missing_V": (_delete(("model", "V")), "missing required field model.V"),
    "missing_trials": (_delete(("trials",)), "missing required field trials"),
    "missing_o": (_delete(("trials", 0, "o")), "missing required field trials[0].o"),
    "data_length": (
        _set(("model", "E"), {"shape": [4], "data": [0.25, 0.25, 0.5]}),
        "model.E has 3 data values but its shape [4] needs 4",
    ),
    "A_states": (
        _set(("model", "A", 0), {"shape": [2, 4], "data": [0.5] * 8}),
        "model.A[0] has shape [2, 4] but B gives 1 factor with 3 states (axis 1)",
    ),
    "A_factors": (
        _set(("model", "A", 0), {"shape": [2, 3, 4], "data": [0.5] * 24}),
        "model.A[0] has shape [2, 3, 4] but B gives 1 factor with 3 states (axis 2)",
    ),
    "B_square": (
        _set(("model", "B", 0), {"shape": [3, 2, 2], "data": [0.5] * 12}),
        "model.B[0] has shape [3, 2, 2]: it is not square",
    ),
    "C_outcomes": (
        _set(("model", "C", 0), {"shape": [3, 3], "data": [0.0] * 9}),
        "model.C[0] has shape [3, 3] but A[0] has 2 outcomes",
    ),
    "D_length": (
        _set(("model", "D", 0), {"shape": [2], "data": [0.5, 0.5]}),
        "model.D[0] has shape [2] but B[0] has 3 states",
    ),
    "V_factors": (
        _set(("model", "V"), {"shape": [2, 4, 2], "data": [0] * 16}),
        "model.V has shape [2, 4, 2] but must be [T-1, Np, F]",
    ),
    "V_range": (
        _set(("model", "V"), {"shape": [2, 4, 1], "data": [0, 1, 0, 1, 0, 0, 2, 1]}),
        "model.V[1, 2, 0] = 2 is out of range 0..1 (factor 0 has 2 controls)",
    ),
    "o_range": (
        _set(("trials", 0, "o"), {"shape": [1, 3], "data": [0, 2, 1]}),
        "trials[0].o[0, 1] = 2 is out of range 0..1 (modality 0 has 2 outcomes)",
    ),
    "o_shape": (
        _set(("trials", 0, "o"), {"shape": [1, 2], "data": [0, 1]}),
        "trials[0].o has shape [1, 2] but must be [G, T] = [1, 3]",
    ),
    "s_not_integer": (
        _set(("trials", 0, "s"), {"shape": [1, 3], "data": [0, 1.5, 1]}),
        "trials[0].s[0, 1] = 1.5 is not an integer",
    ),
    "non_finite": (
        _set(("model", "beta"), float("inf")),
        "model.beta is inf (not finite)",
    ),
    "non_finite_array": (
        _set(("model", "B", 0, "data", 4), float("nan")),
        "model.B[0][0, 2, 0] is nan (not finite)",
    ),
    "unknown_field": (_set(("model", "U"), 1), "unknown field model.U"),
    "gamma_option": (_set(("options", "gamma_fixed"), 2), "options.gamma_fixed must be 0 or 1"),
}


@pytest.mark.parametrize("edit,expected", BROKEN_JSON.values(), ids=BROKEN_JSON.keys())
def test_broken_json(edit, expected: str, tmp_path: Path) -> None:
    doc = _doc()
    edit(doc)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SpmInputError) as info:
        load_case(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message


def test_invalid_json_text(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x", "model": {"T": 3,,}}')
    with pytest.raises(SpmInputError, match=r"bad\.json: invalid JSON: .*\(line 1, column \d+\)$"):
        load_case(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(SpmInputError, match=r"nope\.json: no such file or directory"):
        load_case(iter_case_paths([path])[0])


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "case.txt"
    path.write_text("")
    with pytest.raises(SpmInputError, match=r"case\.txt: unsupported file type '\.txt'"):
        load_case(path)


def test_folder_without_cases(tmp_path: Path) -> None:
    with pytest.raises(SpmInputError, match="is a folder holding no .json or .mat case files"):
        load_case(iter_case_paths([tmp_path])[0])


def test_mat_without_mdp(tmp_path: Path) -> None:
    path = tmp_path / "nomdp.mat"
    scipy.io.savemat(path, {"model": np.eye(2)})
    with pytest.raises(SpmInputError, match=r"nomdp\.mat: no MDP variable.*found: model$"):
        load_case(path)


def test_mat_not_a_mat_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.mat"
    path.write_bytes(b"this is not a MAT file at all" * 10)
    with pytest.raises(SpmInputError, match=r"junk\.mat: cannot read MAT file"):
        load_case(path)


def test_mat_outcome_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "o.mat"
    o = np.array([[3.0, 3.0], [3.0, 3.0], [5.0, 4.0]])  # modality 3 has 4 outcomes
    scipy.io.savemat(path, {"MDP": _mdp_with(DATA / "mat" / "vbx_1024.mat", o={2: o})})
    with pytest.raises(SpmInputError) as info:
        load_case(path)
    assert str(info.value) == (f"{path}: MDP(3).o(3,1) = 5 is out of range 1..4 (modality 3 has 4 outcomes)")


def test_mat_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "a.mat"
    A = _cell([np.ones((3, 4)), np.ones((3, 4)), np.ones((4, 5))])
    scipy.io.savemat(path, {"MDP": _mdp_with(DATA / "mat" / "vbx_1024.mat", A={0: A})})
    with pytest.raises(SpmInputError) as info:
        load_case(path)
    assert str(info.value) == (
        f"{path}: MDP(1).A{{3}} has shape [4, 5] but B gives 1 factor with 4 states (dimension 2)"
    )


def test_mat_different_models(tmp_path: Path) -> None:
    path = tmp_path / "d.mat"
    D = _cell([np.array([[1.0], [2.0], [3.0], [4.0]])])
    scipy.io.savemat(path, {"MDP": _mdp_with(DATA / "mat" / "vbx_1024.mat", D={1: D})})
    with pytest.raises(
        SpmInputError,
        match=r"d\.mat: MDP\(2\)\.D differs from MDP\(1\)\.D: "
        "trials with different models are not supported",
    ):
        load_case(path)
