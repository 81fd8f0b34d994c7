"""Property-based tests (hypothesis) of the model and SPM's scheme on random small models.

Random *valid* models are drawn from a handful of fixed shapes (so that the
jitted trial compiles only once per shape) with random contents: zeros allowed
in the probability arrays, optional Dirichlet counts, random preferences and
policies. Outcomes, states and actions are sampled by the trial itself. Every
belief must be a finite, normalised distribution, every free energy finite and
learning may only add to the counts.

Random *invalid* models (a negative entry, a NaN, a column not summing to
one, mismatched axes, empty policies, an out-of-range policy) must be refused
by :func:`actinf.generative_model` with a :class:`actinf.ModelError` naming
the array: it never returns a model that could produce NaNs.

Examples are derandomized, so a run is reproducible in CI.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from hypothesis import HealthCheck, event, given, settings

import actinf
from actinf import ModelError, generative_model, maths
from actinf.planning.policy import FixedPrecision

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NORM_TOL = 1e-9


class Shape(NamedTuple):
    Ns: tuple  # states per factor
    Nu: tuple  # controls per factor
    No: tuple  # outcomes per modality
    T: int
    Np: int
    counts: str  # which Dirichlet counts the model has, from "abcde"
    fixed_precision: bool = False


#: The fixed shapes: 1-2 factors of 2-3 states, 1-3 controls, 1-2 modalities of 2-3
#: outcomes, horizon 2-3, 2-4 policies. Each compiles the trial once (~2-4 s).
SHAPES = (
    Shape(Ns=(3,), Nu=(2,), No=(2,), T=2, Np=2, counts=""),
    Shape(Ns=(2,), Nu=(3,), No=(3, 2), T=3, Np=4, counts="acde"),
    Shape(Ns=(2, 3), Nu=(2, 1), No=(3,), T=3, Np=3, counts="abd"),
    Shape(Ns=(3, 2), Nu=(3, 2), No=(2, 3), T=2, Np=4, counts="b", fixed_precision=True),
)

spm_trial = eqx.filter_jit(actinf.spm_trial)


# ------------------------------------------------------------------------ strategies


def _columns(draw, shape, zeros=True):
    """A conditional probability table ``shape`` (columns on axis 0), zeros allowed."""
    element = st.floats(1e-3, 1.0)
    if zeros:
        element = st.one_of(st.just(0.0), element)
    x = draw(hnp.arrays(np.float64, shape, elements=element))
    x = x + (x.sum(axis=0, keepdims=True) == 0)  # an all-zero column becomes uniform
    return x / x.sum(axis=0, keepdims=True)


def _counts(draw, shape):
    """Dirichlet counts, zeros allowed but no column without a positive count."""
    x = draw(hnp.arrays(np.float64, shape, elements=st.one_of(st.just(0.0), st.floats(0.1, 8.0))))
    return x + 0.5 * (x.sum(axis=0, keepdims=True) == 0)


@st.composite
def model_kwargs(draw, shape: Shape):
    """Keyword arguments of a valid :func:`actinf.generative_model` of ``shape``."""
    Ns, Nu, No, T, Np = shape.Ns, shape.Nu, shape.No, shape.T, shape.Np
    A = [_columns(draw, (n, *Ns)) for n in No]
    B = [_columns(draw, (n, n, k)) for n, k in zip(Ns, Nu, strict=True)]
    D = [_columns(draw, (n,)) for n in Ns]
    C = [draw(hnp.arrays(np.float64, (n, T), elements=st.floats(-4.0, 4.0))) for n in No]
    E = _columns(draw, (Np,))
    V = np.stack(
        [draw(hnp.arrays(np.int32, (T - 1, Np), elements=st.integers(0, k - 1))) for k in Nu],
        axis=-1,
    )
    kwargs = dict(likelihood=A, transition=B, preference=C, initial=D, habit=E, policies=V)
    if "a" in shape.counts:
        kwargs["likelihood_counts"] = [_counts(draw, a.shape) for a in A]
    if "b" in shape.counts:
        kwargs["transition_counts"] = [_counts(draw, b.shape) for b in B]
    if "c" in shape.counts:
        kwargs["preference_counts"] = [_counts(draw, c.shape) for c in C]
    if "d" in shape.counts:
        kwargs["initial_counts"] = [_counts(draw, d.shape) for d in D]
    if "e" in shape.counts:
        kwargs["habit_counts"] = _counts(draw, E.shape)
    return kwargs


shapes = st.sampled_from(SHAPES)
keys = st.integers(0, 2**31 - 1)


# --------------------------------------------------------------- valid models: a trial


class Problems(list):
    """Collects every failed check of one example, to report them all at once."""

    def check(self, name, ok):
        if not bool(np.all(ok)):
            self.append(name)

    def distribution(self, name, x, axis):
        x = np.asarray(x)
        self.check(f"{name} finite", np.isfinite(x))
        self.check(f"{name} non-negative", x >= 0)
        self.check(f"{name} normalised", np.abs(x.sum(axis=axis) - 1.0) <= NORM_TOL)


@settings(SETTINGS, max_examples=40)
@given(data=st.data(), shape=shapes, seed=keys)
def test_trial_on_random_valid_model(data, shape, seed):
    event(f"shape {SHAPES.index(shape)}")
    kwargs = data.draw(model_kwargs(shape))
    model = generative_model(**kwargs)
    spm = actinf.SpmSettings(precision=FixedPrecision()) if shape.fixed_precision else actinf.SpmSettings()
    res = spm_trial(model, None, None, spm, rng_key=jax.random.PRNGKey(seed))
    p = Problems()
    F = model.num_factors
    for f in range(F):  # collected, not asserted one by one
        p.distribution(f"X[{f}]", res.X[f], axis=0)
        p.distribution(f"Q[{f}]", res.Q[f], axis=0)
        p.check(f"X[{f}] shape", res.X[f].shape == (shape.Ns[f], shape.T))
    p.distribution("R", res.R, axis=0)
    p.distribution("P", np.asarray(res.P).reshape(-1, shape.T - 1), axis=0)
    w = np.asarray(res.w)
    p.check("w positive and finite", np.isfinite(w) & (w > 0))
    for name in ("F", "G", "H"):
        p.check(f"{name} finite", np.isfinite(np.asarray(getattr(res, name))))
    p.check(
        "outcomes in range",
        [(0 <= o).all() and (o < n).all() for o, n in zip(np.asarray(res.o), shape.No, strict=True)],
    )
    p.check(
        "actions in range",
        [(0 <= u).all() and (u < n).all() for u, n in zip(np.asarray(res.u), shape.Nu, strict=True)],
    )
    learned = res.model
    for letter in "abcde":
        prior, post = getattr(model, letter), getattr(learned, letter)
        if prior is None:
            p.check(f"{letter} stays None", post is None)
            continue
        for i, (x, y) in enumerate(zip(jax.tree.leaves(prior), jax.tree.leaves(post), strict=True)):
            y = np.asarray(y)
            p.check(f"{letter}[{i}] finite", np.isfinite(y))
            p.check(f"{letter}[{i}] >= prior", y >= np.asarray(x))
        fe = getattr(res, "F" + letter)
        p.check(f"F{letter} finite", np.isfinite(np.asarray(fe)))
    assert not p, p


# ----------------------------------------------------------------- maths: divergences


def _simplex(n, zeros):
    element = st.floats(1e-6, 1.0)
    if zeros:
        element = st.one_of(st.just(0.0), element)
    return hnp.arrays(np.float64, n, elements=element).map(_to_simplex)


def _to_simplex(x):
    x = x + (x.sum() == 0)  # an all-zero draw becomes uniform
    return x / x.sum()


@SETTINGS
@given(data=st.data(), n=st.integers(2, 6))
def test_categorical_kl_is_non_negative(data, n):
    q = data.draw(_simplex(n, zeros=True))
    p = data.draw(_simplex(n, zeros=False))
    kl = float(maths.categorical_kl(jnp.asarray(q), jnp.asarray(p)))
    assert kl >= -1e-12
    assert float(maths.categorical_kl(jnp.asarray(q), jnp.asarray(q))) == 0.0


positive_counts = st.floats(0.05, 50.0)


@SETTINGS
@given(data=st.data(), shape=st.sampled_from([(2,), (3,), (3, 2), (2, 2, 2)]))
def test_dirichlet_kl_is_non_negative_up_to_spms_offset(data, shape):
    """SPM's KL uses psi(q + 1/32): non-negative up to the first-order effect of the offset.

    The exact KL[Dir(q) || Dir(p)] is >= 0; SPM's differs from it by
    -sum (p - q) * shift, shift = (psi(q + 1/32) - psi(q0 + K/32)) - (psi(q) - psi(q0)),
    so dirichlet_kl >= -sum |p - q| |shift|. (It can be slightly negative: see
    test_maths.test_dirichlet_kl_can_be_negative_as_spms.)
    """
    q = data.draw(hnp.arrays(np.float64, shape, elements=positive_counts))
    p = data.draw(hnp.arrays(np.float64, shape, elements=positive_counts))
    dig = scipy.special.digamma
    q0 = q.sum(axis=0, keepdims=True)
    shift = (dig(q + 1 / 32) - dig(q0 + shape[0] / 32)) - (dig(q) - dig(q0))
    bound = np.sum(np.abs(p - q) * np.abs(shift))
    kl = float(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(p)))
    assert np.isfinite(kl)
    assert kl >= -bound - 1e-9
    assert float(maths.dirichlet_kl(jnp.asarray(q), jnp.asarray(q))) == 0.0


# ------------------------------------------------------------ invalid models: refused

#: (field, kinds of corruption that apply to it)
CORRUPTIBLE = {
    "likelihood": ("negative", "nan", "column", "axes"),
    "transition": ("negative", "nan", "column", "axes"),
    "initial": ("negative", "nan", "column", "axes"),
    "preference": ("nan", "axes"),
    "habit": ("negative", "nan", "column", "axes"),
    "policies": ("empty", "range"),
    "likelihood_counts": ("negative", "nan", "axes"),
    "transition_counts": ("negative", "nan", "axes"),
    "initial_counts": ("negative", "nan", "axes"),
}
TARGETS = [(field, kind) for field, kinds in CORRUPTIBLE.items() for kind in kinds]


#: Axes along which an extra entry is an error of the array itself: a likelihood with one
#: more outcome is valid (its preference then is not), a transition with one more
#: control too.
RESIZABLE_AXES = {"likelihood": range(1, 3), "transition": range(0, 2)}


def _corrupt_array(draw, x, kind, field):
    x = np.array(x, dtype=np.float64)
    idx = tuple(draw(st.integers(0, n - 1)) for n in x.shape)
    if kind == "negative":
        x[idx] = -draw(st.floats(1e-3, 2.0))
    elif kind == "nan":
        x[idx] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "column":
        x[idx] += draw(st.floats(1e-3, 0.5))
    elif kind == "axes":
        axes = [a for a in RESIZABLE_AXES.get(field, range(x.ndim)) if a < x.ndim]
        axis = draw(st.sampled_from(axes))
        extra = np.take(x, [0], axis=axis)
        x = np.concatenate([x, extra], axis=axis)
        x = x / x.sum(axis=0, keepdims=True)
    return x


@st.composite
def invalid_model(draw):
    """``(kwargs, name)``: a model corrupted in the array ``name``."""
    shape = draw(shapes)
    kwargs = draw(model_kwargs(shape._replace(counts="abd")))
    field, kind = draw(st.sampled_from(TARGETS))
    if field == "policies":
        V = kwargs["policies"]
        if kind == "empty":
            kwargs["policies"] = V[:, :0]
            return kwargs, "policies"
        t, k, f = (draw(st.integers(0, n - 1)) for n in V.shape)
        bad = draw(st.one_of(st.integers(-3, -1), st.integers(shape.Nu[f], shape.Nu[f] + 3)))
        V = V.copy()
        V[t, k, f] = bad
        kwargs["policies"] = V
        return kwargs, "policies"
    if field == "habit":
        kwargs["habit"] = _corrupt_array(draw, kwargs["habit"], kind, field)
        return kwargs, "habit"
    arrays = list(kwargs[field])
    i = draw(st.integers(0, len(arrays) - 1))
    arrays[i] = _corrupt_array(draw, arrays[i], kind, field)
    kwargs[field] = arrays
    return kwargs, f"{field}[{i}]"


@settings(SETTINGS, max_examples=200)
@given(case=invalid_model())
def test_invalid_model_is_refused_naming_the_array(case):
    kwargs, name = case
    event(name.split("[")[0])
    try:
        model = generative_model(**kwargs)
    except ModelError as err:
        assert str(err).startswith(name), (name, str(err))
    else:
        raise AssertionError(f"{name} corrupted but a model was returned: {model}")


@pytest.mark.parametrize("which", ["likelihood_counts", "initial_counts"])
def test_a_zero_count_column_is_refused(which):
    """A Dirichlet column without a positive count has no density (its KL would be NaN)."""
    counts = {
        "likelihood_counts": [np.array([[1.0, 0.0], [1.0, 0.0]])],
        "initial_counts": [np.zeros(2)],
    }
    with pytest.raises(ModelError, match=rf"^{which}\[0\] has no positive count"):
        generative_model([np.array([[0.9, 0.2], [0.1, 0.8]])], [np.eye(2)], **{which: counts[which]})
