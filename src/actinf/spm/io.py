"""Read and write SPM reference cases (problems and outputs of SPM12's ``spm_MDP_VB_X.m``).

Two input formats describe the same thing, a sequence of trials of one discrete
active inference problem:

* **JSON** (``*.json``), the schema of ``tests/data/README-spm-reference.md``::

      {"name": ..., "scheme": "spm_MDP_VB_X", "options": {"gamma_fixed": 0 | 1},
       "model": {"T": ..., "A": [...], "B": [...], "C": [...], "D": [...], "V": ...,
                 "E"?, "a"?, "b"?, "c"?, "d"?, "e"?, "alpha"?, "beta"?, "eta"?,
                 "tau"?, "zeta"?, "erp"?},
       "trials": [{"s"?, "o", "u"?, "X"?, "Q"?, "P"?, "R"?, "F"?, "G"?, "H"?, "w"?,
                   "a_post"?, "b_post"?, "d_post"?, "Fa"?, "Fb"?, "Fd"?}, ...]}

  Every array is ``{"shape": [...], "data": [...]}`` with ``data`` in row-major
  (C) order, axes in SPM's order, and indices (states, outcomes, actions) 0-based.
  Lists of arrays (``A``, ``B``, ``X``, ...) hold one array per modality/factor.
  ``Fa``, ``Fb`` and ``Fd`` are a number (one modality/factor) or a list of numbers.

* **MAT** (``*.mat``, MATLAB v7 or older, read with :func:`scipy.io.loadmat`): the
  structure array ``MDP(1:n)`` a MATLAB user hands to ``spm_MDP_VB_X``, one element
  per trial, with 1-based ``s``, ``o``, ``u`` and ``V``; cell arrays for ``A``,
  ``B``, ``C``, ``D``, ``a``, ``b``, ``c``, ``d``.  MATLAB drops trailing singleton
  dimensions (``V`` is ``[T-1, Np]`` with one factor, ``B{f}`` is ``[Ns, Ns]`` with
  one control, ``D{f}`` is a column ``[Ns, 1]``); the reader restores SPM's full
  shapes.  An optional structure variable ``OPTIONS`` with field ``gamma`` (nonzero:
  policy precision fixed) sets ``options["gamma_fixed"]``.  The model is taken from
  ``MDP(1)``; in later elements ``a``, ``b``, ``c``, ``d``, ``e`` are ignored (SPM
  replaces them by the previous trial's learned values) and every other model field
  must equal ``MDP(1)``'s.  Outputs left in ``MDP`` by a run of SPM (``X``, ``Q``,
  ``P``, ``R``, ``F``, ``G``, ``H``, ``w``, ``Fa``, ``Fb``, ``Fd``) are read too.

Both readers produce the same records: :class:`SpmCase` holding an :class:`SpmModel`
(float64 arrays in SPM's axis order, 0-based ``V``) and one :class:`SpmTrial` per
trial (0-based int64 ``s``, ``o``, ``u`` and the reference outputs, if any).  All
arrays in the records are read-only.  Defaults follow ``spm_MDP_check``: a missing
``D{f}`` becomes ``ones(Ns_f)``, a missing ``C{g}`` becomes ``zeros(No_g)``; scalar
parameters left out are ``None`` (meaning SPM's default).

Every problem with the input raises :class:`SpmInputError`, whose one-line message
names the file, the field (``model.A[0]`` for JSON, ``MDP(1).A{1}`` for MAT, with
indices in the file's own convention) and what is wrong with it.  Columns are not
checked to sum to one: SPM normalises them.

:func:`case_to_json` / :func:`write_case_json` write a case back in the JSON schema
with the outputs of each trial replaced by the ones given.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FREE_ENERGY_OUTPUTS",
    "LIST_OUTPUTS",
    "OUTPUT_KEYS",
    "SCALAR_PARAMETERS",
    "SCHEME",
    "SpmCase",
    "SpmInputError",
    "SpmModel",
    "SpmTrial",
    "case_from_json",
    "case_to_json",
    "iter_case_paths",
    "load_case",
    "load_json_case",
    "load_mat_case",
    "write_case_json",
]

SCHEME = "spm_MDP_VB_X"
"""Value of the JSON ``scheme`` field."""

SCALAR_PARAMETERS = ("alpha", "beta", "eta", "tau", "zeta", "erp")
"""Optional scalar parameters of an SPM model, in the order they are written."""

OUTPUT_KEYS = (
    "X", "Q", "P", "R", "F", "G", "H", "w",
    "a_post", "b_post", "d_post", "Fa", "Fb", "Fd",
)  # fmt: skip
"""Output keys of a trial, in the order they are written."""

LIST_OUTPUTS = frozenset({"X", "Q", "a_post", "b_post", "d_post"})
"""Outputs that are lists of arrays (one per factor or modality)."""

FREE_ENERGY_OUTPUTS = frozenset({"Fa", "Fb", "Fd"})
"""Outputs that are 1-D arrays, one value per modality/factor (a number in JSON if one)."""

CASE_SUFFIXES = (".json", ".mat")

_MODEL_LISTS = ("A", "B", "C", "D", "a", "b", "c", "d")
_MODEL_ARRAYS = ("V", "E", "e")
_MODEL_KEYS = frozenset({"T", *_MODEL_LISTS, *_MODEL_ARRAYS, *SCALAR_PARAMETERS})
_TRIAL_KEYS = frozenset({"s", "o", "u", *OUTPUT_KEYS})
_MAT_OUTPUTS = ("X", "Q", "P", "R", "F", "G", "H", "w", "Fa", "Fb", "Fd")
# MDP fields that change what spm_MDP_VB_X computes but that these records cannot hold.
_MAT_UNSUPPORTED = ("U", "MDP", "link", "demi", "chi")
# Fields that must agree between MDP(1) and later trials.
_SHARED_FIELDS = ("T", "A", "B", "C", "D", "V", "E", *SCALAR_PARAMETERS)


class SpmInputError(ValueError):
    """A problem with a user's input file; ``str(err)`` is one line: ``FILE: PROBLEM``."""

    def __init__(self, file: str | os.PathLike[str], problem: str) -> None:
        self.file = str(file)
        self.problem = " ".join(str(problem).splitlines())
        super().__init__(f"{self.file}: {self.problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.problem))


@dataclass(frozen=True, eq=False)
class SpmModel:
    """An SPM ``MDP`` generative model, with SPM's field names and axis order.

    Arrays are read-only float64 except ``V`` (int64).  ``A[g]`` is
    ``[No_g, Ns_1, ..., Ns_F]``, ``B[f]`` is ``[Ns_f, Ns_f, Nu_f]``, ``C[g]`` is
    ``[No_g, T]`` or ``[No_g]`` (as given), ``D[f]`` is ``[Ns_f]``, ``V`` is
    ``[T-1, Np, F]`` with 0-based actions, ``E`` is ``[Np]``.  ``a``, ``b``, ``c``,
    ``d``, ``e`` are the Dirichlet counts (shaped like ``A``, ``B``, ``C``, ``D``,
    ``E``) or ``None``; scalar parameters are ``None`` where SPM's default applies.
    """

    T: int
    A: tuple[np.ndarray, ...]
    B: tuple[np.ndarray, ...]
    C: tuple[np.ndarray, ...]
    D: tuple[np.ndarray, ...]
    V: np.ndarray
    E: np.ndarray | None = None
    a: tuple[np.ndarray, ...] | None = None
    b: tuple[np.ndarray, ...] | None = None
    c: tuple[np.ndarray, ...] | None = None
    d: tuple[np.ndarray, ...] | None = None
    e: np.ndarray | None = None
    alpha: float | None = None
    beta: float | None = None
    eta: float | None = None
    tau: float | None = None
    zeta: float | None = None
    erp: float | None = None

    @property
    def num_factors(self) -> int:
        """Number of hidden-state factors F."""
        return len(self.B)

    @property
    def num_modalities(self) -> int:
        """Number of outcome modalities G."""
        return len(self.A)

    @property
    def num_states(self) -> tuple[int, ...]:
        """Ns_f for each factor."""
        return tuple(int(b.shape[0]) for b in self.B)

    @property
    def num_controls(self) -> tuple[int, ...]:
        """Nu_f for each factor."""
        return tuple(int(b.shape[2]) for b in self.B)

    @property
    def num_outcomes(self) -> tuple[int, ...]:
        """No_g for each modality."""
        return tuple(int(a.shape[0]) for a in self.A)

    @property
    def num_policies(self) -> int:
        """Number of allowed policies Np."""
        return int(self.V.shape[1])


@dataclass(frozen=True, eq=False)
class SpmTrial:
    """One trial: 0-based int64 ``s`` [F, T], ``o`` [G, T], ``u`` [F, T-1] (``s`` and
    ``u`` may be ``None``) and the reference ``outputs`` present in the file, as
    read-only numpy arrays (lists of arrays for ``X``, ``Q``, ``a_post``, ``b_post``,
    ``d_post``; 1-D arrays for ``Fa``, ``Fb``, ``Fd``)."""

    s: np.ndarray | None
    o: np.ndarray | None
    u: np.ndarray | None
    outputs: dict[str, object]


@dataclass(frozen=True, eq=False)
class SpmCase:
    """A reference case: a model run over ``trials`` in order, as SPM's ``MDP(1:n)``.

    ``options`` holds at least ``gamma_fixed`` (bool: policy precision not updated,
    SPM's ``OPTIONS.gamma = 1``).  ``source`` is the file read, if any.
    """

    name: str
    source: Path | None
    model: SpmModel
    trials: tuple[SpmTrial, ...]
    options: dict


# --------------------------------------------------------------------------- naming


@dataclass(frozen=True)
class _Where:
    """Names fields and indices in error messages, in the convention of the file."""

    file: str
    mat: bool = False

    @property
    def base(self) -> int:
        return 1 if self.mat else 0

    def model(self, key: str, item: int | None = None, elem: int = 0) -> str:
        if self.mat:
            name = f"MDP({elem + 1}).{key}"
            return name if item is None else f"{name}{{{item + 1}}}"
        name = f"model.{key}"
        return name if item is None else f"{name}[{item}]"

    def trial(self, t: int, key: str, item: int | None = None) -> str:
        if self.mat:
            name = f"MDP({t + 1}).{key}"
            return name if item is None else f"{name}{{{item + 1}}}"
        name = f"trials[{t}].{key}"
        return name if item is None else f"{name}[{item}]"

    def ref(self, key: str, item: int) -> str:
        """Short reference to one array of a model list: ``A[0]`` (JSON), ``A{1}`` (MAT)."""
        return f"{key}{{{item + 1}}}" if self.mat else f"{key}[{item}]"

    def at(self, index: Sequence[int]) -> str:
        if self.mat:
            return "(" + ",".join(str(int(i) + 1) for i in index) + ")"
        return "[" + ", ".join(str(int(i)) for i in index) + "]"

    def axis(self, k: int) -> str:
        return f"dimension {k + 1}" if self.mat else f"axis {k}"

    def num(self, i: int) -> int:
        return i + self.base

    def error(self, problem: str) -> SpmInputError:
        return SpmInputError(self.file, problem)


def _shape(arr: np.ndarray) -> str:
    return str([int(n) for n in arr.shape])


def _fmt(value: float) -> str:
    value = float(value)
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _and_list(values: Sequence[int]) -> str:
    items = [str(v) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _freeze(arr: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    out = np.array(arr, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------ shared validation


def _check_finite(arr: np.ndarray, name: str, w: _Where) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(np.argwhere(bad)[0])
        raise w.error(f"{name}{w.at(idx)} is {float(arr[idx])!r} (not finite)")


def _index_array(
    arr: np.ndarray,
    name: str,
    w: _Where,
    sizes: Sequence[int],
    axis: int,
    what: str,
    unit: str,
) -> np.ndarray:
    """Check integer indices in the file's base (row ``k`` along ``axis`` indexes into
    ``sizes[k]`` items) and return them 0-based as int64."""
    _check_finite(arr, name, w)
    frac = arr != np.round(arr)
    if frac.any():
        idx = tuple(np.argwhere(frac)[0])
        raise w.error(f"{name}{w.at(idx)} = {_fmt(arr[idx])} is not an integer")
    lo = w.base
    for k, n in enumerate(sizes):
        sub = np.take(arr, k, axis=axis)
        bad = (sub < lo) | (sub > lo + n - 1)
        if bad.any():
            pos = [int(i) for i in np.argwhere(bad)[0]]
            value = sub[tuple(pos)]
            pos.insert(axis, k)
            raise w.error(
                f"{name}{w.at(pos)} = {_fmt(value)} is out of range {lo}..{lo + n - 1} "
                f"({what} {w.num(k)} has {_plural(n, unit)})"
            )
    return _freeze(arr - lo, np.int64)


def _to_int(value: Any, name: str, w: _Where) -> int:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise w.error(f"{name} must be a single number, got shape {_shape(value)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise w.error(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(value) or not float(value).is_integer():
        raise w.error(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _to_float(value: Any, name: str, w: _Where) -> float:
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise w.error(f"{name} must be a single number, got shape {_shape(value)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise w.error(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise w.error(f"{name} is {value!r} (not finite)")
    return float(value)


def _require(raw: Mapping[str, Any], key: str, w: _Where, elem: int) -> Any:
    value = raw.get(key)
    if value is None:
        raise w.error(f"missing required field {w.model(key, elem=elem)}")
    return value


def _check_list(
    arrays: Sequence[np.ndarray] | None,
    key: str,
    count: int | None,
    unit: str,
    w: _Where,
    elem: int,
) -> None:
    if arrays is None:
        return
    if count is not None and len(arrays) != count:
        raise w.error(
            f"{w.model(key, elem=elem)} has {_plural(len(arrays), 'array')} "
            f"but the model has {_plural(count, unit)}"
        )
    for i, arr in enumerate(arrays):
        _check_finite(arr, w.model(key, i, elem), w)


def _check_B(B: Sequence[np.ndarray], key: str, w: _Where, elem: int) -> None:
    if len(B) == 0:
        raise w.error(f"{w.model(key, elem=elem)} is empty: at least one factor is required")
    for f, b in enumerate(B):
        name = w.model(key, f, elem)
        if b.ndim != 3:
            raise w.error(f"{name} has shape {_shape(b)} but must have 3 axes [Ns, Ns, Nu]")
        if 0 in b.shape:
            raise w.error(f"{name} has shape {_shape(b)} with an empty axis")
        if b.shape[0] != b.shape[1]:
            raise w.error(
                f"{name} has shape {_shape(b)}: it is not square in its first two axes ([Ns, Ns, Nu])"
            )
    _check_list(B, key, None, "factor", w, elem)


def _check_A(A: Sequence[np.ndarray], key: str, Ns: Sequence[int], w: _Where, elem: int) -> None:
    if len(A) == 0:
        raise w.error(f"{w.model(key, elem=elem)} is empty: at least one modality is required")
    F = len(Ns)
    for g, arr in enumerate(A):
        trailing = [int(n) for n in arr.shape[1:]]
        if arr.ndim >= 1 and trailing == list(Ns) and arr.shape[0] > 0:
            continue
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise w.error(f"{w.model(key, g, elem)} has shape {_shape(arr)} with no outcomes")
        ax = next(
            (k for k in range(min(len(trailing), F)) if trailing[k] != Ns[k]),
            min(len(trailing), F),
        )
        raise w.error(
            f"{w.model(key, g, elem)} has shape {_shape(arr)} but B gives "
            f"{_plural(F, 'factor')} with {_and_list(Ns)} states ({w.axis(ax + 1)})"
        )
    _check_list(A, key, None, "modality", w, elem)


def _check_C(C: Sequence[np.ndarray], key: str, No: Sequence[int], T: int, w: _Where, elem: int) -> None:
    _check_list(C, key, len(No), "modality", w, elem)
    for g, arr in enumerate(C):
        name = w.model(key, g, elem)
        if arr.ndim not in (1, 2) or arr.shape[0] != No[g]:
            raise w.error(
                f"{name} has shape {_shape(arr)} but {w.ref('A', g)} has {No[g]} outcomes "
                f"(expected [{No[g]}, T] or [{No[g]}])"
            )
        if arr.ndim == 2 and arr.shape[1] not in (1, T):
            raise w.error(f"{name} has {arr.shape[1]} columns but T = {T} ({w.axis(1)})")


def _check_vectors(D: Sequence[np.ndarray], key: str, Ns: Sequence[int], w: _Where, elem: int) -> None:
    _check_list(D, key, len(Ns), "factor", w, elem)
    for f, arr in enumerate(D):
        if arr.ndim != 1 or arr.shape[0] != Ns[f]:
            raise w.error(
                f"{w.model(key, f, elem)} has shape {_shape(arr)} but {w.ref('B', f)} has {Ns[f]} states"
            )


def _check_policy_vector(arr: np.ndarray | None, key: str, Np: int, w: _Where, elem: int) -> None:
    if arr is None:
        return
    name = w.model(key, elem=elem)
    if arr.ndim != 1 or arr.shape[0] != Np:
        raise w.error(f"{name} has shape {_shape(arr)} but V has {_plural(Np, 'policy')}")
    _check_finite(arr, name, w)


def _check_same_shapes(
    arrays: Sequence[np.ndarray] | None,
    key: str,
    like: Sequence[np.ndarray],
    like_key: str,
    w: _Where,
    elem: int,
) -> None:
    if arrays is None:
        return
    _check_list(arrays, key, len(like), "factor" if like_key == "B" else "modality", w, elem)
    for i, (arr, ref) in enumerate(zip(arrays, like, strict=True)):
        if arr.shape != ref.shape:
            raise w.error(
                f"{w.model(key, i, elem)} has shape {_shape(arr)} but "
                f"{w.ref(like_key, i)} has shape {_shape(ref)}"
            )


def _build_model(raw: Mapping[str, Any], w: _Where, elem: int = 0, learning: bool = True) -> SpmModel:
    """Validate raw model fields (arrays in SPM shapes, ``V`` in the file's index base;
    absent fields ``None``) and return the model with 0-based ``V``."""
    T = _to_int(_require(raw, "T", w, elem), w.model("T", elem=elem), w)
    if T < 1:
        raise w.error(f"{w.model('T', elem=elem)} = {T} but must be at least 1")
    B = list(_require(raw, "B", w, elem))
    _check_B(B, "B", w, elem)
    Ns = [int(b.shape[0]) for b in B]
    Nu = [int(b.shape[2]) for b in B]
    F = len(B)
    A = list(_require(raw, "A", w, elem))
    _check_A(A, "A", Ns, w, elem)
    No = [int(a.shape[0]) for a in A]

    C = raw.get("C")
    if C is None:
        C = [np.zeros(n) for n in No]
    _check_C(C, "C", No, T, w, elem)
    D = raw.get("D")
    if D is None:
        D = [np.ones(n) for n in Ns]
    _check_vectors(D, "D", Ns, w, elem)

    V = _require(raw, "V", w, elem)
    vname = w.model("V", elem=elem)
    if V.ndim != 3 or V.shape[0] != T - 1 or V.shape[2] != F or V.shape[1] == 0:
        raise w.error(
            f"{vname} has shape {_shape(V)} but must be [T-1, Np, F] with T-1 = {T - 1} "
            f"and F = {F} factors in B"
        )
    V0 = _index_array(V, vname, w, Nu, 2, "factor", "control")
    Np = int(V.shape[1])
    E = raw.get("E")
    _check_policy_vector(E, "E", Np, w, elem)

    fields: dict[str, Any] = {}
    if learning:
        _check_same_shapes(raw.get("a"), "a", A, "A", w, elem)
        _check_same_shapes(raw.get("b"), "b", B, "B", w, elem)
        if raw.get("c") is not None:
            _check_C(raw["c"], "c", No, T, w, elem)
        if raw.get("d") is not None:
            _check_vectors(raw["d"], "d", Ns, w, elem)
        _check_policy_vector(raw.get("e"), "e", Np, w, elem)
        for key in ("a", "b", "c", "d"):
            if raw.get(key) is not None:
                fields[key] = tuple(_freeze(x) for x in raw[key])
        if raw.get("e") is not None:
            fields["e"] = _freeze(raw["e"])
    for key in SCALAR_PARAMETERS:
        if raw.get(key) is not None:
            fields[key] = _to_float(raw[key], w.model(key, elem=elem), w)

    return SpmModel(
        T=T,
        A=tuple(_freeze(x) for x in A),
        B=tuple(_freeze(x) for x in B),
        C=tuple(_freeze(x) for x in C),
        D=tuple(_freeze(x) for x in D),
        V=V0,
        E=None if E is None else _freeze(E),
        **fields,
    )


def _build_trial_indices(
    raw: Mapping[str, Any], model: SpmModel, w: _Where, t: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate a trial's ``s``, ``o``, ``u`` (file's index base) and return them 0-based."""
    T, F, G = model.T, model.num_factors, model.num_modalities
    specs = {
        "s": ((F, T), model.num_states, "factor", "state", "[F, T]"),
        "o": ((G, T), model.num_outcomes, "modality", "outcome", "[G, T]"),
        "u": ((F, T - 1), model.num_controls, "factor", "control", "[F, T-1]"),
    }
    out: dict[str, np.ndarray | None] = {}
    for key, (shape, sizes, what, unit, form) in specs.items():
        arr = raw.get(key)
        if arr is None:
            if key == "o":
                raise w.error(f"missing required field {w.trial(t, 'o')}")
            out[key] = None
            continue
        name = w.trial(t, key)
        if arr.shape != shape:
            raise w.error(
                f"{name} has shape {_shape(arr)} but must be {form} = {list(shape)} "
                f"({_plural(shape[0], what)}, T = {T})"
            )
        out[key] = _index_array(arr, name, w, sizes, 0, what, unit)
    return out["s"], out["o"], out["u"]


def _normalise_options(options: Mapping[str, Any], name: str, w: _Where) -> dict:
    result = dict(options)
    value = result.get("gamma_fixed", False)
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        result["gamma_fixed"] = bool(value)
    else:
        raise w.error(f"{name}.gamma_fixed must be 0 or 1, got {value!r}")
    return result


# ---------------------------------------------------------------------------- JSON


def _json_array(value: Any, name: str, w: _Where) -> np.ndarray:
    if not isinstance(value, Mapping) or "shape" not in value or "data" not in value:
        raise w.error(f'{name} must be an array object {{"shape": [...], "data": [...]}}')
    shape, data = value["shape"], value["data"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise w.error(f"{name}.shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(data, list):
        raise w.error(f"{name}.data must be a list of numbers")
    need = math.prod(shape)
    if len(data) != need:
        raise w.error(f"{name} has {len(data)} data values but its shape {shape} needs {need}")
    for i, x in enumerate(data):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise w.error(f"{name}.data[{i}] is {x!r}, not a number")
    return np.asarray(data, dtype=np.float64).reshape(shape)


def _json_list(value: Any, name: str, w: _Where) -> list[np.ndarray]:
    if not isinstance(value, list):
        raise w.error(f"{name} must be a list of arrays, one per modality or factor")
    return [_json_array(x, f"{name}[{i}]", w) for i, x in enumerate(value)]


def _json_free_energy(value: Any, name: str, w: _Where) -> np.ndarray:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.array([float(value)])
    if isinstance(value, list):
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise w.error(f"{name}[{i}] is {x!r}, not a number")
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, Mapping):
        return _json_array(value, name, w).ravel()
    raise w.error(f"{name} must be a number or a list of numbers")


def _json_outputs(trial: Mapping[str, Any], w: _Where, t: int) -> dict[str, object]:
    outputs: dict[str, object] = {}
    for key in OUTPUT_KEYS:
        if key not in trial:
            continue
        name = w.trial(t, key)
        if key in LIST_OUTPUTS:
            outputs[key] = [_freeze(x) for x in _json_list(trial[key], name, w)]
        elif key in FREE_ENERGY_OUTPUTS:
            outputs[key] = _freeze(_json_free_energy(trial[key], name, w))
        else:
            outputs[key] = _freeze(_json_array(trial[key], name, w))
    return outputs


def case_from_json(
    doc: Any, source: str | os.PathLike[str] | None = None, *, name: str | None = None
) -> SpmCase:
    """Build a case from a parsed JSON document in the reference schema.

    ``source`` is the file it came from (used in error messages and as
    :attr:`SpmCase.source`); ``name`` overrides the document's ``name`` (default: the
    document's ``name``, else the file's stem, else ``"case"``).  Arrays are
    ``{"shape", "data"}`` row-major in SPM axis order; indices in ``V``, ``s``, ``o``,
    ``u`` are 0-based.  Raises :class:`SpmInputError` for any problem.
    """
    path = None if source is None else Path(source)
    w = _Where("<json>" if source is None else str(source))
    if not isinstance(doc, Mapping):
        raise w.error("the JSON document must be an object with fields model and trials")
    scheme = doc.get("scheme", SCHEME)
    if scheme != SCHEME:
        raise w.error(f"scheme is {scheme!r}; only {SCHEME!r} is supported")
    if name is None:
        name = doc.get("name", path.stem if path is not None else "case")
        if not isinstance(name, str):
            raise w.error(f"name must be a string, got {name!r}")
    options = doc.get("options", {})
    if not isinstance(options, Mapping):
        raise w.error("options must be an object")
    options = _normalise_options(options, "options", w)

    if "model" not in doc:
        raise w.error("missing required field model")
    model_doc = doc["model"]
    if not isinstance(model_doc, Mapping):
        raise w.error("model must be an object")
    for key in model_doc:
        if key not in _MODEL_KEYS:
            raise w.error(f"unknown field model.{key} (not part of the {SCHEME} schema)")
    raw: dict[str, Any] = {}
    for key, value in model_doc.items():
        field = f"model.{key}"
        if key in _MODEL_LISTS:
            raw[key] = _json_list(value, field, w)
        elif key in _MODEL_ARRAYS:
            raw[key] = _json_array(value, field, w)
        else:
            raw[key] = value
    model = _build_model(raw, w)

    if "trials" not in doc:
        raise w.error("missing required field trials")
    trials_doc = doc["trials"]
    if not isinstance(trials_doc, list) or not trials_doc:
        raise w.error("trials must be a non-empty list of trial objects")
    trials = []
    for t, trial_doc in enumerate(trials_doc):
        if not isinstance(trial_doc, Mapping):
            raise w.error(f"trials[{t}] must be an object")
        for key in trial_doc:
            if key not in _TRIAL_KEYS:
                raise w.error(f"unknown field trials[{t}].{key} (not part of the {SCHEME} schema)")
        raw_t = {
            key: _json_array(trial_doc[key], w.trial(t, key), w)
            for key in ("s", "o", "u")
            if key in trial_doc
        }
        s, o, u = _build_trial_indices(raw_t, model, w, t)
        trials.append(SpmTrial(s=s, o=o, u=u, outputs=_json_outputs(trial_doc, w, t)))
    return SpmCase(name=name, source=path, model=model, trials=tuple(trials), options=options)


def _check_is_file(path: Path, w: _Where) -> None:
    if not path.exists():
        raise w.error("no such file or directory")
    if path.is_dir():
        raise w.error("is a directory, not a case file")


def load_json_case(path: str | os.PathLike[str]) -> SpmCase:
    """Read a case from a JSON file in the reference schema (see the module docstring).

    Returns an :class:`SpmCase` with SPM-ordered float64 arrays and 0-based indices;
    raises :class:`SpmInputError` naming the file for unreadable or invalid input.
    """
    path = Path(path)
    w = _Where(str(path))
    _check_is_file(path, w)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise w.error("is not UTF-8 text") from None
    except OSError as exc:
        raise w.error(f"cannot read file ({exc.strerror or exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise w.error(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    return case_from_json(doc, path)


# ----------------------------------------------------------------------------- MAT


def _mat_numeric(value: Any, name: str, w: _Where) -> np.ndarray | None:
    """A MATLAB numeric or logical array as float64, ``None`` if empty."""
    if hasattr(value, "toarray"):  # scipy.sparse
        value = value.toarray()
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    if arr.dtype.names is not None:
        raise w.error(f"{name} is a structure, not a numeric array")
    if arr.dtype == object:
        raise w.error(f"{name} is a cell array, not a numeric array")
    if arr.dtype.kind not in "biuf":
        kind = "text" if arr.dtype.kind in "US" else f"of type {arr.dtype}"
        raise w.error(f"{name} is {kind}, not a real numeric array")
    return arr.astype(np.float64)


def _mat_cells(value: Any, name: str, w: _Where) -> list[np.ndarray] | None:
    """A MATLAB cell array of numeric arrays (a bare numeric array counts as one cell)."""
    arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
    if arr.size == 0:
        return None
    if arr.dtype != object:
        single = _mat_numeric(arr, name, w)
        return None if single is None else [single]
    cells = []
    for i, item in enumerate(arr.ravel(order="F")):
        cell = _mat_numeric(item, f"{name}{{{i + 1}}}", w)
        if cell is None:
            raise w.error(f"{name}{{{i + 1}}} is empty")
        cells.append(cell)
    return cells


def _restore(arr: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Give ``arr`` the shape ``shape`` where the two differ only by trailing singleton
    axes (which MATLAB drops); otherwise return ``arr`` unchanged for validation to
    report."""

    def strip(s: Sequence[int]) -> list[int]:
        s = [int(n) for n in s]
        while s and s[-1] == 1:
            s.pop()
        return s

    if tuple(arr.shape) != tuple(shape) and strip(arr.shape) == strip(shape):
        return arr.reshape(tuple(shape))
    return arr


def _vector(arr: np.ndarray) -> np.ndarray:
    """A MATLAB row or column vector as a 1-D array (other shapes unchanged)."""
    if arr.ndim == 2 and 1 in arr.shape:
        return arr.ravel()
    return arr


def _mat_model_raw(elem: Any, fields: Sequence[str], w: _Where, i: int, learning: bool) -> dict:
    """Collect one MDP element's model fields, restoring SPM's full shapes."""

    def get(key: str) -> Any:
        return elem[key] if key in fields else None

    raw: dict[str, Any] = {}
    for key in ("T", "V", "E", "e", *SCALAR_PARAMETERS):
        if key == "e" and not learning:
            continue
        value = get(key)
        raw[key] = None if value is None else _mat_numeric(value, w.model(key, elem=i), w)
    for key in _MODEL_LISTS:
        if key in ("a", "b", "c", "d") and not learning:
            continue
        value = get(key)
        raw[key] = None if value is None else _mat_cells(value, w.model(key, elem=i), w)

    B = raw["B"]
    if B is not None:
        B = raw["B"] = [b[:, :, None] if b.ndim == 2 else b for b in B]
        Ns = [b.shape[0] for b in B]
        for key in ("A", "a"):
            if raw.get(key) is not None:
                raw[key] = [_restore(x, (x.shape[0], *Ns)) for x in raw[key]]
        if raw.get("b") is not None:
            raw["b"] = [_restore(x, B[f].shape) if f < len(B) else x for f, x in enumerate(raw["b"])]
        V = raw["V"]
        if V is not None and V.ndim <= 3:
            raw["V"] = _restore(V, (V.shape[0], V.shape[1] if V.ndim > 1 else 1, len(B)))
    for key in ("C", "c"):
        if raw.get(key) is not None:
            raw[key] = [x.ravel() if x.ndim == 2 and x.shape[1] == 1 else x for x in raw[key]]
    for key in ("D", "d"):
        if raw.get(key) is not None:
            raw[key] = [_vector(x) for x in raw[key]]
    for key in ("E", "e"):
        if raw.get(key) is not None:
            raw[key] = _vector(raw[key])
    return raw


def _mat_outputs(elem: Any, fields: Sequence[str], model: SpmModel, w: _Where, i: int) -> dict:
    """Read the outputs a run of SPM leaves in an MDP element, in the JSON conventions."""
    T, Ns, Nu, Np = model.T, model.num_states, model.num_controls, model.num_policies
    expected: dict[str, Any] = {
        "X": [(n, T) for n in Ns],
        "Q": [(n, T, Np) for n in Ns],
        "P": (*Nu, T - 1),
        "R": (Np, T),
        "F": (Np, T),
        "G": (Np, T),
    }
    outputs: dict[str, object] = {}
    for key in _MAT_OUTPUTS:
        if key not in fields:
            continue
        name = w.trial(i, key)
        if key in LIST_OUTPUTS:
            cells = _mat_cells(elem[key], name, w)
            if cells is None:
                continue
            shapes = expected[key]
            if len(cells) != len(shapes):
                raise w.error(
                    f"{name} has {_plural(len(cells), 'array')} but the model has "
                    f"{_plural(len(shapes), 'factor')}"
                )
            arrays = []
            for f, (cell, shape) in enumerate(zip(cells, shapes, strict=True)):
                arr = _restore(cell, shape)
                if arr.shape != shape:
                    raise w.error(
                        f"{w.trial(i, key, f)} has shape {_shape(arr)} but {list(shape)} was expected"
                    )
                arrays.append(_freeze(arr))
            outputs[key] = arrays
            continue
        arr = _mat_numeric(elem[key], name, w)
        if arr is None:
            continue
        if key in expected:
            arr = _restore(arr, expected[key])
            if arr.shape != tuple(expected[key]):
                raise w.error(f"{name} has shape {_shape(arr)} but {list(expected[key])} was expected")
        else:
            arr = arr.ravel(order="F")
        outputs[key] = _freeze(arr)
    return outputs


def _same(x: Any, y: Any) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, tuple):
        return len(x) == len(y) and all(_same(p, q) for p, q in zip(x, y, strict=True))
    if isinstance(x, np.ndarray):
        return x.shape == y.shape and bool(np.array_equal(x, y))
    return x == y


def _mat_options(raw: Mapping[str, Any], w: _Where) -> dict:
    options: dict[str, Any] = {"gamma_fixed": False}
    if "OPTIONS" not in raw:
        return options
    opts = raw["OPTIONS"]
    if not isinstance(opts, np.ndarray) or opts.dtype.names is None:
        raise w.error("OPTIONS is not a structure")
    if opts.size != 1:
        raise w.error(f"OPTIONS is a structure array of shape {_shape(opts)}, expected one")
    if "gamma" in opts.dtype.names:
        gamma = _mat_numeric(opts.ravel()[0]["gamma"], "OPTIONS.gamma", w)
        if gamma is not None:
            options["gamma_fixed"] = _to_float(gamma, "OPTIONS.gamma", w) != 0
    return options


def load_mat_case(path: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> SpmCase:
    """Read a case from a MATLAB file holding SPM's structure array ``MDP(1:n)``.

    Reads the variable ``MDP`` (required; a 1-by-n structure array, one element per
    trial) and the optional structure ``OPTIONS`` (``OPTIONS.gamma`` nonzero sets
    ``gamma_fixed``).  ``options`` overrides the options found in the file.  1-based
    ``V``, ``s``, ``o``, ``u`` become 0-based; MATLAB's dropped trailing singleton
    dimensions are restored.  The model comes from ``MDP(1)``; later elements must
    agree with it except in ``a``, ``b``, ``c``, ``d``, ``e`` (ignored).  Outputs of a
    previous SPM run (X, Q, P, R, F, G, H, w, Fa, Fb, Fd) are read into each trial's
    ``outputs``.  Raises :class:`SpmInputError` naming the file for any problem.
    """
    import scipy.io  # deferred: only MAT input needs scipy

    path = Path(path)
    w = _Where(str(path), mat=True)
    _check_is_file(path, w)
    try:
        data = scipy.io.loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except NotImplementedError:
        raise w.error("MATLAB v7.3 (HDF5) files are not supported; save with -v7") from None
    except Exception as exc:  # scipy raises many types for a malformed file
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise w.error(f"cannot read MAT file ({problem})") from None

    if "MDP" not in data:
        names = sorted(k for k in data if not k.startswith("__"))
        found = ", ".join(names) if names else "none"
        raise w.error(
            f"no MDP variable (the structure array MDP(1:n) given to spm_MDP_VB_X); variables found: {found}"
        )
    mdp = data["MDP"]
    if not isinstance(mdp, np.ndarray) or mdp.dtype.names is None:
        raise w.error("MDP is not a structure array")
    if mdp.size == 0:
        raise w.error("MDP is an empty structure array")
    if mdp.ndim != 2 or mdp.shape[0] != 1:
        dims = "x".join(str(n) for n in mdp.shape)
        raise w.error(
            f"MDP is a {dims} structure array; only a 1xN sequence of trials of one agent is supported"
        )
    fields = mdp.dtype.names
    elems = [mdp[0, i] for i in range(mdp.shape[1])]
    for i, elem in enumerate(elems):
        for key in _MAT_UNSUPPORTED:
            if key in fields and np.asarray(elem[key]).size > 0:
                raise w.error(f"{w.model(key, elem=i)} is given but is not supported")

    case_options = _mat_options(data, w)
    if options is not None:
        case_options.update(options)
    case_options = _normalise_options(case_options, "options", w)

    model = _build_model(_mat_model_raw(elems[0], fields, w, 0, True), w, 0)
    trials = []
    for i, elem in enumerate(elems):
        if i > 0:
            other = _build_model(_mat_model_raw(elem, fields, w, i, False), w, i, learning=False)
            for key in _SHARED_FIELDS:
                if not _same(getattr(model, key), getattr(other, key)):
                    raise w.error(
                        f"MDP({i + 1}).{key} differs from MDP(1).{key}: trials with different "
                        "models are not supported (a, b, c, d, e of later trials are ignored)"
                    )
        raw_t = {
            key: _mat_numeric(elem[key], w.trial(i, key), w) if key in fields else None
            for key in ("s", "o", "u")
        }
        s, o, u = _build_trial_indices(raw_t, model, w, i)
        outputs = _mat_outputs(elem, fields, model, w, i)
        trials.append(SpmTrial(s=s, o=o, u=u, outputs=outputs))
    return SpmCase(name=path.stem, source=path, model=model, trials=tuple(trials), options=case_options)


# ------------------------------------------------------------------------- dispatch


def load_case(path: str | os.PathLike[str]) -> SpmCase:
    """Read a case from ``path``, a ``.json`` or ``.mat`` file (chosen by suffix).

    Raises :class:`SpmInputError` if the path does not exist, is a folder, has
    another suffix, or holds invalid input.
    """
    path = Path(path)
    w = _Where(str(path))
    if not path.exists():
        raise w.error("no such file or directory")
    if path.is_dir():
        if _case_files(path):
            raise w.error("is a folder; expand it into its case files with iter_case_paths")
        raise w.error("is a folder holding no .json or .mat case files")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_json_case(path)
    if suffix == ".mat":
        return load_mat_case(path)
    raise w.error(f"unsupported file type {path.suffix!r} (expected .json or .mat)")


def _case_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in CASE_SUFFIXES and p.is_file())


def iter_case_paths(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> list[Path]:
    """Expand the paths a user named into the case files to load, in order.

    A folder becomes its ``*.json`` and ``*.mat`` files (sorted by name, not
    recursive); any other path is kept as given.  Nothing is raised here: a path that
    does not exist, a file of another type, or a folder with no case files is
    returned as it is, so :func:`load_case` reports it (as :class:`SpmInputError`)
    when the caller loads it, in its place among the others.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    result: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files = _case_files(path)
            result.extend(files if files else [path])
        else:
            result.append(path)
    return result


# --------------------------------------------------------------------------- writing


def _array_to_json(arr: Any) -> dict:
    a = np.asarray(arr)
    if a.dtype.kind in "biu":
        data = a.astype(np.int64).ravel().tolist()
    else:
        data = a.astype(np.float64).ravel().tolist()
    return {"shape": [int(n) for n in a.shape], "data": data}


def _model_to_json(m: SpmModel) -> dict:
    doc: dict[str, Any] = {"T": int(m.T)}
    for key in ("A", "B", "C", "D"):
        doc[key] = [_array_to_json(x) for x in getattr(m, key)]
    doc["V"] = _array_to_json(np.asarray(m.V, dtype=np.int64))
    if m.E is not None:
        doc["E"] = _array_to_json(m.E)
    for key in ("a", "b", "c", "d"):
        value = getattr(m, key)
        if value is not None:
            doc[key] = [_array_to_json(x) for x in value]
    if m.e is not None:
        doc["e"] = _array_to_json(m.e)
    for key in SCALAR_PARAMETERS:
        value = getattr(m, key)
        if value is not None:
            doc[key] = float(value)
    return doc


def _outputs_to_json(outputs: Mapping[str, Any], t: int) -> dict:
    unknown = sorted(set(outputs) - set(OUTPUT_KEYS))
    if unknown:
        raise ValueError(f"trial {t}: unknown output key(s) {unknown}; expected {OUTPUT_KEYS}")
    doc: dict[str, Any] = {}
    for key in OUTPUT_KEYS:
        if key not in outputs or outputs[key] is None:
            continue
        value = outputs[key]
        if key in LIST_OUTPUTS:
            if isinstance(value, np.ndarray) or not isinstance(value, Sequence):
                raise ValueError(f"trial {t}: output {key} must be a list of arrays")
            doc[key] = [_array_to_json(x) for x in value]
        elif key in FREE_ENERGY_OUTPUTS:
            flat = np.asarray(value, dtype=np.float64).ravel()
            doc[key] = float(flat[0]) if flat.size == 1 else flat.tolist()
        else:
            doc[key] = _array_to_json(value)
    return doc


def case_to_json(case: SpmCase, outputs_per_trial: Sequence[Mapping[str, Any]] | None = None) -> dict:
    """Return ``case`` as a JSON-ready dict in the reference schema.

    Model fields are written in SPM order (``T, A, B, C, D, V, E, a, b, c, d, e``,
    then the scalar parameters that are set), arrays as ``{"shape", "data"}``
    row-major, indices 0-based.  Each trial gets ``s``, ``o``, ``u`` and the outputs
    of the matching dict in ``outputs_per_trial`` (one per trial; keys from
    :data:`OUTPUT_KEYS`; ``X``, ``Q``, ``a_post``, ``b_post``, ``d_post`` as lists of
    arrays; ``Fa``, ``Fb``, ``Fd`` written as a number when they hold one value).
    ``None`` writes each trial's own ``outputs``.  Raises ``ValueError`` for a wrong
    number of output dicts or an unknown output key.
    """
    if outputs_per_trial is None:
        outputs_per_trial = [trial.outputs for trial in case.trials]
    outputs_per_trial = list(outputs_per_trial)
    if len(outputs_per_trial) != len(case.trials):
        raise ValueError(f"{len(outputs_per_trial)} output dicts given for {len(case.trials)} trials")
    options = dict(case.options)
    options["gamma_fixed"] = int(bool(options.get("gamma_fixed", False)))
    trials = []
    for t, (trial, outputs) in enumerate(zip(case.trials, outputs_per_trial, strict=True)):
        doc: dict[str, Any] = {}
        for key in ("s", "o", "u"):
            value = getattr(trial, key)
            if value is not None:
                doc[key] = _array_to_json(np.asarray(value, dtype=np.int64))
        doc.update(_outputs_to_json(outputs, t))
        trials.append(doc)
    return {
        "name": case.name,
        "scheme": SCHEME,
        "options": options,
        "model": _model_to_json(case.model),
        "trials": trials,
    }


def write_case_json(
    case: SpmCase,
    outputs_per_trial: Sequence[Mapping[str, Any]] | None,
    path: str | os.PathLike[str],
) -> None:
    """Write :func:`case_to_json` of ``case`` and ``outputs_per_trial`` to ``path``
    (compact UTF-8 JSON; non-finite numbers as ``NaN``/``Infinity``, which
    :func:`load_json_case` reads back)."""
    doc = case_to_json(case, outputs_per_trial)
    text = json.dumps(doc, separators=(",", ":"))
    Path(path).write_text(text + "\n", encoding="utf-8")
