"""actinf.model: validation messages, defaults, SPM aliases, normalisation, pytree use."""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import actinf
from actinf import GenerativeModel, ModelError, generative_model
from actinf.inference.exact import exact_posterior

# A valid base model: two factors (2 states, 2 controls; 3 states, 1 control), two
# modalities (3 and 2 outcomes), T = 3, three policies.


def base(**changes):
    A0 = np.full((3, 2, 3), 1 / 3)
    A1 = np.stack([np.full((2, 3), 0.25), np.full((2, 3), 0.75)])
    B0 = np.stack([np.eye(2), np.eye(2)[::-1]], axis=-1)  # [2, 2, 2]
    B1 = np.full((3, 3, 1), 1 / 3)
    kwargs = dict(
        likelihood=[A0, A1],
        transition=[B0, B1],
        preference=[np.zeros((3, 3)), np.zeros((2, 3))],
        initial=[np.array([0.5, 0.5]), np.array([0.2, 0.3, 0.5])],
        habit=np.array([0.2, 0.3, 0.5]),
        policies=np.array([[[0, 0], [1, 0], [1, 0]], [[0, 0], [0, 0], [1, 0]]]),
    )
    kwargs.update(changes)
    return kwargs


def edited(name, index, edit):
    """``base()`` with ``edit(array)`` applied to a copy of ``kwargs[name][index]``."""
    kwargs = base()
    arrays = [np.array(x, dtype=float) for x in kwargs[name]]
    arrays[index] = edit(arrays[index])
    kwargs[name] = arrays
    return kwargs


def setitem(idx, value):
    def edit(x):
        x = x.copy()
        x[idx] = value
        return x

    return edit


COUNTS = dict(
    likelihood_counts=[np.ones((3, 2, 3)), np.ones((2, 2, 3))],
    transition_counts=[np.ones((2, 2, 2)), np.ones((3, 3, 1))],
    initial_counts=[np.ones(2), np.ones(3)],
)

# (kwargs for generative_model, regex the message must match)
INVALID = {
    "likelihood_single_array": (
        base(likelihood=np.ones((3, 2, 3)) / 3),
        r"^likelihood must be a sequence with one array per factor or modality, got a single array$",
    ),
    "transition_single_array": (
        base(transition=np.ones((2, 2, 1))),
        r"^transition must be a sequence",
    ),
    "likelihood_empty": (base(likelihood=[]), r"^likelihood is empty"),
    "transition_empty": (base(transition=[]), r"^transition is empty"),
    "transition_axes": (
        edited("transition", 1, lambda b: np.ones(3) / 3),
        r"^transition\[1\] must have 3 axes \[Ns, Ns, Nu\], got shape \[3\]$",
    ),
    "transition_square": (
        edited("transition", 1, lambda b: np.full((3, 2, 1), 1 / 3)),
        r"^transition\[1\] must be square in axes 0 and 1, got 3 and 2$",
    ),
    "transition_empty_axis": (
        edited("transition", 0, lambda b: np.ones((2, 2, 0))),
        r"^transition\[0\] has an empty axis: shape \[2, 2, 0\]$",
    ),
    "transition_nan": (
        edited("transition", 0, setitem((1, 0, 1), np.nan)),
        r"^transition\[0\] has a non-finite entry nan at index \[1, 0, 1\]$",
    ),
    "transition_negative": (
        edited("transition", 1, setitem((2, 1, 0), -0.5)),
        r"^transition\[1\] has a negative entry -0\.5 at index \[2, 1, 0\]$",
    ),
    "transition_columns": (
        edited("transition", 0, setitem((0, 1, 0), 0.2)),
        r"^transition\[0\] does not sum to one over axis 0 at column \[1, 0\]: the sum is 1\.2 ",
    ),
    "likelihood_axes": (
        edited("likelihood", 0, lambda a: a[:, 0]),
        r"^likelihood\[0\] has 2 axes but the model has 2 factors: expected \[No, 2, 3\], "
        r"got \[3, 3\]$",
    ),
    "likelihood_states": (
        edited("likelihood", 1, lambda a: np.full((2, 2, 4), 0.5)),
        r"^likelihood\[1\] axis 2 has 4 states but transition\[1\] has 3$",
    ),
    "likelihood_inf": (
        edited("likelihood", 1, setitem((1, 0, 2), np.inf)),
        r"^likelihood\[1\] has a non-finite entry inf at index \[1, 0, 2\]$",
    ),
    "likelihood_negative": (
        edited("likelihood", 0, setitem((2, 1, 1), -1.0)),
        r"^likelihood\[0\] has a negative entry -1\.0 at index \[2, 1, 1\]$",
    ),
    "likelihood_columns": (
        edited("likelihood", 1, setitem((0, 1, 2), 0.5)),
        r"^likelihood\[1\] does not sum to one over axis 0 at column \[1, 2\]: the sum is 1\.25 "
        r"\(normalise it, or build with normalise_columns=True",
    ),
    "initial_count": (
        base(initial=[np.array([0.5, 0.5])]),
        r"^initial has 1 arrays but there are 2 factors$",
    ),
    "initial_shape": (
        edited("initial", 1, lambda d: np.array([0.5, 0.5])),
        r"^initial\[1\] has shape \[2\] but transition\[1\] has 3 states$",
    ),
    "initial_negative": (
        edited("initial", 1, lambda d: np.array([1.5, -0.5, 0.0])),
        r"^initial\[1\] has a negative entry -0\.5 at index \[1\]$",
    ),
    "initial_nan": (
        edited("initial", 0, setitem(1, np.nan)),
        r"^initial\[0\] has a non-finite entry nan at index \[1\]$",
    ),
    "initial_sum": (
        edited("initial", 0, lambda d: np.array([0.5, 0.4])),
        r"^initial\[0\] does not sum to one over axis 0: the sum is 0\.9 ",
    ),
    "policies_factors": (
        base(policies=np.zeros((2, 3, 1), int)),
        r"^policies must have shape \[T-1, Np, 2\], got \[2, 3, 1\]$",
    ),
    "policies_axes": (
        base(policies=np.zeros((2, 3), int)),
        r"^policies must have shape \[T-1, Np, 2\], got \[2, 3\]$",
    ),
    "policies_empty": (
        base(policies=np.zeros((2, 0, 2), int), habit=np.ones(0)),
        r"^policies is empty: give at least one policy \(axis 1 has length 0\)$",
    ),
    "policies_range": (
        base(policies=np.array([[[0, 0], [1, 0], [1, 0]], [[0, 0], [0, 0], [2, 0]]])),
        r"^policies\[1, 2, 0\] = 2 is out of range: transition\[0\] has 2 controls \(axis 2\)$",
    ),
    "policies_negative": (
        base(policies=np.array([[[0, 0], [1, -1], [1, 0]], [[0, 0], [0, 0], [1, 0]]])),
        r"^policies\[0, 1, 1\] = -1 is out of range: transition\[1\] has 1 controls \(axis 2\)$",
    ),
    "preference_count": (
        base(preference=[np.zeros(3)]),
        r"^preference has 1 arrays but there are 2 modalities$",
    ),
    "preference_shape": (
        base(preference=[np.zeros((3, 3)), np.zeros((2, 4))]),
        r"^preference\[1\] has shape \[2, 4\], expected \[2, 3\] \(outcomes of likelihood\[1\] "
        r"by time steps\)$",
    ),
    "preference_outcomes": (
        base(preference=[np.zeros(2), np.zeros(2)]),
        r"^preference\[0\] has shape \[2, 3\], expected \[3, 3\]",
    ),
    "preference_inf": (
        edited("preference", 0, setitem((2, 1), -np.inf)),
        r"^preference\[0\] has a non-finite entry -inf at index \[2, 1\]$",
    ),
    "habit_shape": (
        base(habit=np.array([0.5, 0.5])),
        r"^habit has shape \[2\] but there are 3 policies$",
    ),
    "habit_negative": (
        base(habit=np.array([0.5, 0.7, -0.2])),
        r"^habit has a negative entry -0\.2 at index \[2\]$",
    ),
    "habit_sum": (
        base(habit=np.array([0.5, 0.5, 0.5])),
        r"^habit does not sum to one over axis 0: the sum is 1\.5 ",
    ),
    "likelihood_counts_count": (
        base(likelihood_counts=COUNTS["likelihood_counts"][:1]),
        r"^likelihood_counts has 1 arrays, expected 2$",
    ),
    "likelihood_counts_shape": (
        base(likelihood_counts=[np.ones((3, 2, 3)), np.ones((2, 3, 2))]),
        r"^likelihood_counts\[1\] has shape \[2, 3, 2\], expected \[2, 2, 3\]$",
    ),
    "likelihood_counts_negative": (
        base(likelihood_counts=[np.ones((3, 2, 3)), -np.ones((2, 2, 3))]),
        r"^likelihood_counts\[1\] has a negative entry -1\.0 at index \[0, 0, 0\]$",
    ),
    "transition_counts_shape": (
        base(transition_counts=[np.ones((2, 2, 2)), np.ones((3, 3, 2))]),
        r"^transition_counts\[1\] has shape \[3, 3, 2\], expected \[3, 3, 1\]$",
    ),
    "transition_counts_nan": (
        base(transition_counts=[np.full((2, 2, 2), np.nan), np.ones((3, 3, 1))]),
        r"^transition_counts\[0\] has a non-finite entry nan at index \[0, 0, 0\]$",
    ),
    "preference_counts_shape": (
        base(preference_counts=[np.ones((3, 2)), np.ones((2, 3))]),
        r"^preference_counts\[0\] has shape \[3, 2\], expected \[3, 3\]$",
    ),
    "initial_counts_count": (
        base(initial_counts=[np.ones(2)]),
        r"^initial_counts has 1 arrays, expected 2$",
    ),
    "initial_counts_inf": (
        base(initial_counts=[np.ones(2), np.array([1.0, np.inf, 1.0])]),
        r"^initial_counts\[1\] has a non-finite entry inf at index \[1\]$",
    ),
    "habit_counts_shape": (
        base(habit_counts=np.ones(4)),
        r"^habit_counts has shape \[4\], expected \[3\]$",
    ),
    "habit_counts_negative": (
        base(habit_counts=np.array([1.0, -2.0, 1.0])),
        r"^habit_counts has a negative entry -2\.0 at index \[1\]$",
    ),
}


def test_base_model_is_valid():
    model = generative_model(**base(), **COUNTS)
    assert model.num_states == (2, 3) and model.num_controls == (2, 1)
    assert model.num_outcomes == (3, 2) and model.num_policies == 3 and model.horizon == 3


@pytest.mark.parametrize("kwargs,message", INVALID.values(), ids=INVALID.keys())
def test_invalid_model_message(kwargs, message):
    with pytest.raises(ModelError, match=message):
        generative_model(**kwargs)


def test_model_error_is_value_error():
    assert issubclass(ModelError, ValueError)


def test_direct_construction_validates():
    model = generative_model(**base())
    bad_B = (model.B[0], model.B[1] * 2.0)
    with pytest.raises(ModelError, match=r"^transition\[1\] does not sum to one"):
        GenerativeModel(model.A, bad_B, model.C, model.D, model.E, model.V)
    with pytest.raises(ModelError, match=r"^likelihood is empty"):
        GenerativeModel((), model.B, model.C, model.D, model.E, model.V)


def test_non_integer_policies_are_refused():
    with pytest.raises(ModelError, match=r"^policies has a non-integer entry 0.7 at index \[0, 0, 0\]"):
        generative_model(**base(policies=np.full((2, 3, 2), 0.7)))


# -------------------------------------------------------------------------- defaults


def test_defaults():
    A = [np.full((2, 3, 2), 0.5)]
    B = [np.stack([np.eye(3)] * 2, axis=-1), np.stack([np.eye(2)] * 3, axis=-1)]
    model = generative_model(A, B, horizon=4)
    np.testing.assert_array_equal(model.D[0], np.full(3, 1 / 3))
    np.testing.assert_array_equal(model.D[1], np.full(2, 1 / 2))
    assert model.C[0].shape == (2, 4)
    np.testing.assert_array_equal(model.C[0], 0.0)
    # one-step policies: every joint action, the same at every move (SPM's U)
    V = np.asarray(model.V)
    assert V.shape == (3, 6, 2) and V.dtype == np.int32
    one_step = np.array(list(itertools.product(range(2), range(3))))
    np.testing.assert_array_equal(V, np.broadcast_to(one_step, V.shape))
    np.testing.assert_array_equal(model.E, np.full(6, 1 / 6))
    assert model.a is model.b is model.c is model.d is model.e is None


def test_default_horizon_is_two():
    model = generative_model([np.full((2, 2), 0.5)], [np.eye(2)])
    assert model.horizon == 2 and model.V.shape == (1, 1, 1)
    assert model.num_controls == (1,)


def test_preference_vector_is_repeated_over_time():
    c = np.array([1.0, -2.0, 0.5])
    model = generative_model(**base(preference=[c, np.zeros((2, 3))]))
    np.testing.assert_array_equal(model.C[0], np.stack([c] * 3, axis=1))


def test_two_dimensional_policies_for_one_factor():
    model = generative_model([np.full((2, 2), 0.5)], [np.eye(2)], policies=np.zeros((2, 3), int))
    assert model.V.shape == (2, 3, 1) and model.horizon == 3


def test_counts_get_the_same_conveniences():
    model = generative_model(
        [np.full((2, 2), 0.5)],
        [np.eye(2)],
        horizon=3,
        transition_counts=[np.ones((2, 2))],
        preference_counts=[np.ones(2)],
    )
    assert model.b[0].shape == (2, 2, 1)
    assert model.c[0].shape == (2, 3)


# ------------------------------------------------------------------------- aliases

ALIASES = {
    "A": "likelihood",
    "B": "transition",
    "C": "preference",
    "D": "initial",
    "E": "habit",
    "V": "policies",
    "a": "likelihood_counts",
    "b": "transition_counts",
    "c": "preference_counts",
    "d": "initial_counts",
    "e": "habit_counts",
}


@pytest.mark.parametrize("letter,field", ALIASES.items())
def test_spm_letter_alias(letter, field):
    model = generative_model(
        **base(),
        **COUNTS,
        preference_counts=[np.ones((3, 3)), np.ones((2, 3))],
        habit_counts=np.ones(3),
    )
    assert getattr(model, letter) is getattr(model, field)
    assert getattr(model, letter) is not None


# ----------------------------------------------------------------------- normalising


def spm_norm(x):
    """SPM's spm_norm: columns divided by their sums; NaN (zero columns) -> 1/size(A, 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        y = x / x.sum(axis=0, keepdims=True)
    y[np.isnan(y)] = 1.0 / x.shape[0]
    return y


def test_normalise_columns_like_spm():
    A = np.array([[[2.0, 0.0], [1.0, 3.0]], [[2.0, 0.0], [3.0, 1.0]]])  # zero column at [:, 0, 1]
    B = np.array([[2.0, 0.0], [2.0, 5.0]])
    D = np.array([3.0, 1.0])
    E = np.array([1.0, 4.0])
    model = generative_model(
        [A[:, :, 0], A[:, :, 1]],
        [B],
        initial=[D],
        habit=E,
        policies=np.zeros((1, 2, 1), int),
        normalise_columns=True,
    )
    np.testing.assert_allclose(model.A[0], spm_norm(A[:, :, 0]), atol=1e-15)
    np.testing.assert_allclose(model.A[1], spm_norm(A[:, :, 1]), atol=1e-15)
    np.testing.assert_array_equal(model.A[1][:, 0], [0.5, 0.5])  # the zero column
    np.testing.assert_allclose(model.B[0][..., 0], spm_norm(B), atol=1e-15)
    np.testing.assert_allclose(model.D[0], [0.75, 0.25], atol=1e-15)
    np.testing.assert_allclose(model.E, [0.2, 0.8], atol=1e-15)


def test_normalise_columns_still_refuses_negative_entries():
    with pytest.raises(ModelError, match=r"^likelihood\[0\] has a negative entry"):
        generative_model([np.array([[2.0], [-1.0]])], [np.eye(1)], normalise_columns=True)


# --------------------------------------------------------------------- pytree use


def _batch_member(i):
    rng = np.random.default_rng(i)
    A = rng.uniform(0.1, 1.0, size=(3, 2))
    B = rng.uniform(0.1, 1.0, size=(2, 2, 2))
    return generative_model(
        [A / A.sum(axis=0)],
        [B / B.sum(axis=0)],
        [rng.normal(size=3)],
        horizon=3,
        likelihood_counts=[rng.uniform(0.5, 2.0, size=(3, 2))],
    )


def test_model_is_a_pytree_for_jit():
    model = _batch_member(0)
    o, u = np.array([[0, 2, 1]]), np.array([[1, 0]])
    eager = exact_posterior(model, o, u)
    jitted = jax.jit(exact_posterior)(model, o, u)
    np.testing.assert_allclose(jitted.log_evidence, eager.log_evidence, atol=1e-12)
    leaves = jax.tree_util.tree_leaves(model)
    assert all(isinstance(x, jax.Array) for x in leaves)
    # A, B, C, D, E, V and a; the counts left as None are empty subtrees
    assert len(leaves) == 7


def test_stacked_models_vmap_through_spm_trial():
    models = [_batch_member(i) for i in range(3)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *models)
    assert batch.A[0].shape == (3, 3, 2)  # no validation on unflattening a batch
    o = jnp.array([[[0, 2, 1]], [[1, 1, 0]], [[2, 0, 0]]])
    u = jnp.array([[[1, 0]], [[0, 0]], [[1, 1]]])
    trial = eqx.filter_jit(actinf.spm_trial)
    batched = jax.vmap(trial)(batch, o, u)
    singles = [trial(m, o[i], u[i]) for i, m in enumerate(models)]
    single = jax.tree.map(lambda *xs: jnp.stack(xs), *singles)
    np.testing.assert_allclose(batched.X[0], single.X[0], atol=1e-12)
    np.testing.assert_allclose(batched.R, single.R, atol=1e-12)
    np.testing.assert_allclose(batched.F, single.F, atol=1e-12)
    np.testing.assert_allclose(batched.G, single.G, atol=1e-12)
    np.testing.assert_allclose(batched.model.a[0], single.model.a[0], atol=1e-12)
