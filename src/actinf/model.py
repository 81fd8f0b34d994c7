"""The generative model of a discrete (POMDP) active inference agent.

A model has ``F`` hidden-state factors and ``G`` outcome modalities:

================  =====  ==========================================  ===================
field             SPM    shape                                       meaning
================  =====  ==========================================  ===================
likelihood        A[g]   ``[No_g, Ns_1, ..., Ns_F]``                 P(o_g | s)
transition        B[f]   ``[Ns_f, Ns_f, Nu_f]``                      P(s_f' | s_f, u_f)
preference        C[g]   ``[No_g, T]`` (or ``[No_g]``: constant)      log prior preference
initial           D[f]   ``[Ns_f]``                                  P(s_f at t = 0)
habit             E      ``[Np]``                                    prior over policies
policies          V      ``[T-1, Np, F]`` integer                    action of factor f at move t
likelihood_counts a[g]   as A                                        Dirichlet counts of A
transition_counts b[f]   as B                                        Dirichlet counts of B
preference_counts c[g]   as C                                        Dirichlet counts of C
initial_counts    d[f]   as D                                        Dirichlet counts of D
habit_counts      e      as E                                        Dirichlet counts of E
================  =====  ==========================================  ===================

A factor with a single control state (``Nu_f = 1``) is uncontrolled. Every
field is also readable under SPM's letter (``model.A is model.likelihood``).

Where counts are given, the agent's beliefs are built from them (their
normalised columns) and they are learned; the probability arrays then describe
the generative process (the world). This is SPM's convention.

Validation
----------
:class:`GenerativeModel` checks itself when built from concrete arrays:
shapes and axes that must agree, finite and non-negative entries, columns of
``A``, ``B`` and ``D`` that sum to one, non-empty policy sets and policy
entries in range. Each error names the array, the axis, the index and the
value. SPM silently normalises columns that do not sum to one (``spm_norm``);
actinf refuses them instead, because an unnormalised likelihood is far more
often a bug than an intention. Pass ``normalise=True`` to
:func:`generative_model` to get SPM's behaviour explicitly; the SPM runner
(:mod:`actinf.spm`) does this, since SPM's inputs are allowed to be
unnormalised. Counts (``a, b, c, d, e``) need only be finite and non-negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .maths import normalise

#: Tolerance on column sums when validating probability arrays.
SUM_TOL = 1e-6


class ModelError(ValueError):
    """An invalid generative model; the message names the array, axis, index and value."""


def _is_concrete(tree) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _tuple(arrays, name: str) -> tuple | None:
    if arrays is None:
        return None
    if isinstance(arrays, (np.ndarray, jax.Array)):
        raise ModelError(
            f"{name} must be a sequence with one array per factor or modality, got a single array"
        )
    return tuple(jnp.asarray(a) for a in arrays)


class GenerativeModel(eqx.Module):
    """A categorical generative model (see the module docstring for every field).

    Build it with :func:`generative_model` (which converts, fills defaults and can
    normalise) or directly; both validate concrete arrays.
    """

    likelihood: tuple
    transition: tuple
    preference: tuple
    initial: tuple
    habit: jax.Array
    policies: jax.Array
    likelihood_counts: tuple | None = None
    transition_counts: tuple | None = None
    preference_counts: tuple | None = None
    initial_counts: tuple | None = None
    habit_counts: jax.Array | None = None

    def __check_init__(self):
        if _is_concrete(self):
            validate(self)

    # SPM's letters, for readers coming from MATLAB -------------------------
    A = property(lambda self: self.likelihood, doc="Alias of ``likelihood`` (SPM's A).")
    B = property(lambda self: self.transition, doc="Alias of ``transition`` (SPM's B).")
    C = property(lambda self: self.preference, doc="Alias of ``preference`` (SPM's C).")
    D = property(lambda self: self.initial, doc="Alias of ``initial`` (SPM's D).")
    E = property(lambda self: self.habit, doc="Alias of ``habit`` (SPM's E).")
    V = property(lambda self: self.policies, doc="Alias of ``policies`` (SPM's V).")
    a = property(lambda self: self.likelihood_counts, doc="Alias of ``likelihood_counts``.")
    b = property(lambda self: self.transition_counts, doc="Alias of ``transition_counts``.")
    c = property(lambda self: self.preference_counts, doc="Alias of ``preference_counts``.")
    d = property(lambda self: self.initial_counts, doc="Alias of ``initial_counts``.")
    e = property(lambda self: self.habit_counts, doc="Alias of ``habit_counts``.")

    # sizes -------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.transition)

    @property
    def num_modalities(self) -> int:
        return len(self.likelihood)

    @property
    def num_states(self) -> tuple[int, ...]:
        return tuple(int(b.shape[0]) for b in self.transition)

    @property
    def num_controls(self) -> tuple[int, ...]:
        return tuple(int(b.shape[2]) for b in self.transition)

    @property
    def num_outcomes(self) -> tuple[int, ...]:
        return tuple(int(a.shape[0]) for a in self.likelihood)

    @property
    def num_policies(self) -> int:
        return int(self.policies.shape[1])

    @property
    def horizon(self) -> int:
        """Number of time steps (outcomes) in a trial, ``T = V.shape[0] + 1``."""
        return int(self.policies.shape[0]) + 1


def generative_model(
    likelihood: Sequence,
    transition: Sequence,
    preference: Sequence | None = None,
    initial: Sequence | None = None,
    habit=None,
    policies=None,
    *,
    likelihood_counts: Sequence | None = None,
    transition_counts: Sequence | None = None,
    preference_counts: Sequence | None = None,
    initial_counts: Sequence | None = None,
    habit_counts=None,
    horizon: int | None = None,
    normalise_columns: bool = False,
) -> GenerativeModel:
    """Build and validate a :class:`GenerativeModel`, filling SPM's defaults.

    Defaults: no preferences (zeros), uniform initial prior, uniform habits, and,
    when ``policies`` is omitted, one policy per combination of actions over the
    factors, each repeating its action at every one of the ``horizon - 1`` moves
    (``horizon`` defaults to 2: one move). A preference of shape ``[No_g]`` is
    repeated over the ``T`` time steps.

    Args:
      likelihood: ``A[g]``, shape ``[No_g, Ns_1, ..., Ns_F]``.
      transition: ``B[f]``, shape ``[Ns_f, Ns_f, Nu_f]`` (a 2-D array is one control).
      preference: ``C[g]``, shape ``[No_g]`` or ``[No_g, T]`` (log, unnormalised).
      initial: ``D[f]``, shape ``[Ns_f]``.
      habit: ``E``, shape ``[Np]``.
      policies: ``V``, integer ``[T-1, Np, F]`` (0-based actions).
      horizon: ``T``; needed only when ``policies`` is omitted (default 2).
      normalise_columns: normalise ``A``, ``B``, ``D`` and ``E`` as SPM does
        silently, instead of refusing columns that do not sum to one.
    """
    A = _tuple(likelihood, "likelihood")
    B = tuple(b[..., None] if b.ndim == 2 else b for b in _tuple(transition, "transition"))
    if len(A) == 0:
        raise ModelError("likelihood is empty: give at least one outcome modality")
    if len(B) == 0:
        raise ModelError("transition is empty: give at least one hidden-state factor")
    Ns = [int(b.shape[0]) for b in B]
    Nu = [int(b.shape[-1]) for b in B]
    if policies is None:
        T = 2 if horizon is None else int(horizon)
        grids = np.meshgrid(*[np.arange(n) for n in Nu], indexing="ij")
        one_step = np.stack([g.ravel() for g in grids], axis=-1)  # [Np, F]
        policies = np.repeat(one_step[None], max(T - 1, 1), axis=0)
    V_raw = np.asarray(policies)
    if V_raw.size and not np.issubdtype(V_raw.dtype, np.integer):
        frac = ~np.isfinite(V_raw) | (V_raw != np.round(V_raw))
        if frac.any():
            idx = tuple(int(i) for i in np.argwhere(frac)[0])
            raise ModelError(f"policies has a non-integer entry {V_raw[idx]} at index {list(idx)}")
    V = jnp.asarray(V_raw, dtype=jnp.int32)
    if V.ndim == 2 and len(B) == 1:
        V = V[..., None]
    T = int(V.shape[0]) + 1 if V.ndim == 3 else 1
    if preference is None:
        preference = [jnp.zeros((int(a.shape[0]),)) for a in A]
    C = tuple(
        jnp.repeat(c[:, None], T, axis=1) if c.ndim == 1 else c for c in _tuple(preference, "preference")
    )
    if initial is None:
        initial = [jnp.ones((n,)) / n for n in Ns]
    D = _tuple(initial, "initial")
    Np = int(V.shape[1]) if V.ndim == 3 else 0
    E = jnp.ones((Np,)) / max(Np, 1) if habit is None else jnp.asarray(habit)
    if normalise_columns:
        # check the raw entries first, so that errors name the value and index as given
        for name, arrays in (("likelihood", A), ("transition", B), ("initial", D), ("habit", (E,))):
            for i, x in enumerate(arrays):
                if _is_concrete(x):
                    _check_finite_nonneg(name if name == "habit" else f"{name}[{i}]", x)
        A = tuple(normalise(a) for a in A)
        B = tuple(normalise(b) for b in B)
        D = tuple(normalise(d) for d in D)
        E = normalise(E)
    a = _tuple(likelihood_counts, "likelihood_counts")
    b = _tuple(transition_counts, "transition_counts")
    if b is not None:
        b = tuple(x[..., None] if x.ndim == 2 else x for x in b)
    c = _tuple(preference_counts, "preference_counts")
    if c is not None:
        c = tuple(jnp.repeat(x[:, None], T, axis=1) if x.ndim == 1 else x for x in c)
    d = _tuple(initial_counts, "initial_counts")
    e = None if habit_counts is None else jnp.asarray(habit_counts)
    return GenerativeModel(A, B, C, D, E, V, a, b, c, d, e)


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------


def _check_finite_nonneg(name: str, x) -> None:
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ModelError(f"{name} has a non-finite entry {x[idx]} at index {list(idx)}")
    if (x < 0).any():
        idx = tuple(int(i) for i in np.argwhere(x < 0)[0])
        raise ModelError(f"{name} has a negative entry {x[idx]} at index {list(idx)}")


def _check_some_positive(name: str, x) -> None:
    """Every column of Dirichlet counts needs a positive count (else its KL is undefined)."""
    x = np.asarray(x)
    empty = ~(x > 0).any(axis=0)
    if np.any(empty):
        idx = [int(i) for i in np.argwhere(np.atleast_1d(empty))[0]] if x.ndim > 1 else []
        where = f"column {idx}" if x.ndim > 1 else "the array"
        raise ModelError(
            f"{name} has no positive count in {where}: a Dirichlet distribution needs "
            "at least one positive concentration parameter per column"
        )


def _check_columns(name: str, x) -> None:
    x = np.asarray(x, dtype=np.float64)
    sums = x.sum(axis=0)
    bad = np.abs(sums - 1.0) > SUM_TOL
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(np.atleast_1d(bad))[0])
        val = float(np.atleast_1d(sums)[idx])
        where = f" at column {list(idx)}" if x.ndim > 1 else ""
        raise ModelError(
            f"{name} does not sum to one over axis 0{where}: the sum is {val:.6g} "
            "(normalise it, or build with normalise_columns=True to normalise as SPM does)"
        )


def validate(model: GenerativeModel) -> None:
    """Check a model with concrete arrays; raise :class:`ModelError` naming what is wrong."""
    A, B, C, D = model.likelihood, model.transition, model.preference, model.initial
    F, G = len(B), len(A)
    if F == 0:
        raise ModelError("transition is empty: give at least one hidden-state factor")
    if G == 0:
        raise ModelError("likelihood is empty: give at least one outcome modality")
    Ns = []
    for f, b in enumerate(B):
        if b.ndim != 3:
            raise ModelError(f"transition[{f}] must have 3 axes [Ns, Ns, Nu], got shape {list(b.shape)}")
        if b.shape[0] != b.shape[1]:
            raise ModelError(
                f"transition[{f}] must be square in axes 0 and 1, got {b.shape[0]} and {b.shape[1]}"
            )
        if b.shape[2] == 0 or b.shape[0] == 0:
            raise ModelError(f"transition[{f}] has an empty axis: shape {list(b.shape)}")
        _check_finite_nonneg(f"transition[{f}]", b)
        _check_columns(f"transition[{f}]", b)
        Ns.append(int(b.shape[0]))
    for g, a in enumerate(A):
        if a.ndim != F + 1:
            raise ModelError(
                f"likelihood[{g}] has {a.ndim} axes but the model has {F} factors: "
                f"expected [No, {', '.join(map(str, Ns))}], got {list(a.shape)}"
            )
        for f in range(F):
            if a.shape[f + 1] != Ns[f]:
                raise ModelError(
                    f"likelihood[{g}] axis {f + 1} has {a.shape[f + 1]} states but "
                    f"transition[{f}] has {Ns[f]}"
                )
        _check_finite_nonneg(f"likelihood[{g}]", a)
        _check_columns(f"likelihood[{g}]", a)
    if len(D) != F:
        raise ModelError(f"initial has {len(D)} arrays but there are {F} factors")
    for f, d in enumerate(D):
        if d.shape != (Ns[f],):
            raise ModelError(f"initial[{f}] has shape {list(d.shape)} but transition[{f}] has {Ns[f]} states")
        _check_finite_nonneg(f"initial[{f}]", d)
        _check_columns(f"initial[{f}]", d)
    V = np.asarray(model.policies)
    if V.ndim != 3 or V.shape[2] != F:
        raise ModelError(f"policies must have shape [T-1, Np, {F}], got {list(V.shape)}")
    if V.shape[1] == 0:
        raise ModelError("policies is empty: give at least one policy (axis 1 has length 0)")
    T = V.shape[0] + 1
    for f in range(F):
        Nu = B[f].shape[2]
        vf = V[:, :, f]
        bad = (vf < 0) | (vf >= Nu)
        if bad.any():
            t, k = (int(i) for i in np.argwhere(bad)[0])
            raise ModelError(
                f"policies[{t}, {k}, {f}] = {int(vf[t, k])} is out of range: "
                f"transition[{f}] has {Nu} controls (axis 2)"
            )
    if len(C) != G:
        raise ModelError(f"preference has {len(C)} arrays but there are {G} modalities")
    for g, c in enumerate(C):
        if c.ndim != 2 or c.shape[0] != A[g].shape[0] or c.shape[1] != T:
            raise ModelError(
                f"preference[{g}] has shape {list(c.shape)}, expected [{A[g].shape[0]}, {T}] "
                f"(outcomes of likelihood[{g}] by time steps)"
            )
        c = np.asarray(c)
        if not np.isfinite(c).all():
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(c))[0])
            raise ModelError(f"preference[{g}] has a non-finite entry {c[idx]} at index {list(idx)}")
    E = np.asarray(model.habit)
    if E.shape != (V.shape[1],):
        raise ModelError(f"habit has shape {list(E.shape)} but there are {V.shape[1]} policies")
    _check_finite_nonneg("habit", E)
    _check_columns("habit", E)
    for name, counts, ref in (
        ("likelihood_counts", model.likelihood_counts, A),
        ("transition_counts", model.transition_counts, B),
        ("preference_counts", model.preference_counts, C),
        ("initial_counts", model.initial_counts, D),
    ):
        if counts is None:
            continue
        if len(counts) != len(ref):
            raise ModelError(f"{name} has {len(counts)} arrays, expected {len(ref)}")
        for i, (x, r) in enumerate(zip(counts, ref, strict=True)):
            if x.shape != r.shape:
                raise ModelError(f"{name}[{i}] has shape {list(x.shape)}, expected {list(r.shape)}")
            _check_finite_nonneg(f"{name}[{i}]", x)
            _check_some_positive(f"{name}[{i}]", x)
    if model.habit_counts is not None:
        if model.habit_counts.shape != E.shape:
            raise ModelError(
                f"habit_counts has shape {list(model.habit_counts.shape)}, expected {list(E.shape)}"
            )
        _check_finite_nonneg("habit_counts", model.habit_counts)
        _check_some_positive("habit_counts", model.habit_counts)
