"""Categorical and Dirichlet primitives.

Every function here is pure, works on one agent's arrays and composes with
``jax.jit``, ``jax.vmap`` and ``jax.grad``. Axis conventions follow SPM: a
probability vector or the columns of a conditional probability table run along
axis 0, so ``A[o, s1, ..., sF]`` is ``P(o | s1, ..., sF)``.

The small constants are SPM's, so that the SPM-compatible scheme reproduces
``spm_MDP_VB_X.m`` to rounding error:

* :func:`log_stable` is SPM's ``spm_log``: ``log(x + 1e-16)``.
* :func:`entropy_log` uses ``log(x + exp(-16))`` as ``spm_MDP_G.m`` does.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence

import jax
import jax.numpy as jnp

#: Added inside the logarithm by :func:`log_stable` (SPM's ``spm_log``).
LOG_EPS = 1e-16
#: Added inside the logarithm when SPM computes expected entropies (``spm_MDP_G``).
ENTROPY_EPS = math.exp(-16.0)


def log_stable(x):
    r"""Logarithm that never returns ``-inf``: :math:`\log(x + 10^{-16})` (SPM's ``spm_log``)."""
    return jnp.log(x + LOG_EPS)


def entropy_log(x):
    r"""Logarithm used in expected entropies: :math:`\log(x + e^{-16})` (``spm_MDP_G.m``)."""
    return jnp.log(x + ENTROPY_EPS)


def normalise(x):
    r"""Normalise the columns (axis 0) of a non-negative array to sum to one.

    :math:`A_{ij\ldots} / \sum_i A_{ij\ldots}`. A column that sums to zero
    becomes uniform, as in SPM's ``spm_norm`` (which replaces the resulting NaNs
    by ``1/size(A, 1)``).
    """
    total = jnp.sum(x, axis=0, keepdims=True)
    safe = jnp.where(total == 0, 1.0, total)
    return jnp.where(total == 0, 1.0 / x.shape[0], x / safe)


def softmax(x, axis: int = 0):
    r"""Softmax along ``axis`` (columns by default): :math:`e^{x_i} / \sum_j e^{x_j}`.

    Stable for ``-inf`` entries (they get probability zero) as long as one entry
    of each column is finite.
    """
    m = jnp.max(x, axis=axis, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    e = jnp.exp(x - m)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def masked_softmax(x, mask):
    """Softmax of ``x`` over the entries where ``mask`` is true; zero elsewhere."""
    z = jnp.where(mask, x, -jnp.inf)
    return jnp.where(mask, softmax(z, axis=0), 0.0)


def novelty_weights(counts):
    r"""SPM's ``spm_wnorm``: the novelty weights of Dirichlet counts :math:`a`.

    :math:`W = \tfrac12\left(1/\sum_i a_{i\cdot} - 1/a\right)` with
    :math:`10^{-16}` added to :math:`a`. Then :math:`-\sum W \odot (q_o \otimes q_s)`
    approximates the expected information gain about the parameters
    (Friston et al. 2017, *Active inference, curiosity and insight*, eq. 8).
    """
    a = counts + LOG_EPS
    return (1.0 / jnp.sum(a, axis=0, keepdims=True) - 1.0 / a) / 2.0


def _inexact(x):
    """``x`` as a JAX array of a floating type (integers are promoted, as
    ``jax.scipy.special`` does)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def digamma(x):
    r""":math:`\psi(x)`, ``jax.lax.digamma`` (``jax.scipy.special`` costs 70 ms of ``import actinf``)."""
    return jax.lax.digamma(_inexact(x))


def gammaln(x):
    r""":math:`\ln\Gamma(x)`, ``jax.lax.lgamma``."""
    return jax.lax.lgamma(_inexact(x))


def dirichlet_expected_log(counts):
    r""":math:`E[\ln A] = \psi(a) - \psi(\sum_i a_i)` per column (SPM's ``spm_psi``)."""
    return digamma(counts) - digamma(jnp.sum(counts, axis=0, keepdims=True))


def log_multivariate_beta(counts):
    r"""Log multivariate beta function of each column, ignoring zero counts.

    :math:`\ln B(a) = \sum_{i: a_i > 0} \ln\Gamma(a_i) - \ln\Gamma(\sum_i a_i)`,
    returned with axis 0 reduced (SPM's ``spm_betaln``).
    """
    lg = jnp.where(counts > 0, gammaln(jnp.where(counts > 0, counts, 1.0)), 0.0)
    return jnp.sum(lg, axis=0) - gammaln(jnp.sum(counts, axis=0))


def dirichlet_kl(q, p):
    r"""KL divergence :math:`KL[Dir(q) \| Dir(p)]` summed over columns (SPM's ``spm_KL_dir``).

    :math:`\sum_{\text{cols}} \ln B(p) - \ln B(q) - \sum_i (p_i - q_i)\,
    E_{q + 1/32}[\ln A_i]`. The ``1/32`` offset inside the digamma is SPM's.
    """
    d = log_multivariate_beta(p) - log_multivariate_beta(q)
    d = d - jnp.sum((p - q) * dirichlet_expected_log(q + 1.0 / 32.0), axis=0)
    return jnp.sum(d)


def outer(vectors: Sequence[jax.Array]):
    """Outer product of vectors: ``out[i, j, ...] = v0[i] * v1[j] * ...`` (SPM's ``spm_cross``)."""
    out = vectors[0]
    for v in vectors[1:]:
        out = out[..., None] * jnp.reshape(v, (1,) * out.ndim + v.shape)
    return out


def contract(array, vectors: Sequence[jax.Array], skip: int | None = None):
    r"""Contract the trailing axes of ``array`` with ``vectors`` (SPM's ``spm_dot``).

    ``array`` has ``k + len(vectors)`` axes; its last ``len(vectors)`` axes are
    summed against the vectors, except the axis of ``vectors[skip]``, which is
    kept. E.g. for :math:`L[s_1, s_2]` and ``skip=0`` the result is
    :math:`\sum_{s_2} L[s_1, s_2]\, q(s_2)`.
    """
    n = len(vectors)
    lead = array.ndim - n
    letters = string.ascii_letters
    arr_idx = letters[: array.ndim]
    operands, subs = [], []
    out = list(arr_idx[:lead])
    for f, v in enumerate(vectors):
        if f == skip:
            out.append(arr_idx[lead + f])
            continue
        operands.append(v)
        subs.append(arr_idx[lead + f])
    # vectors first: under vmap the batch axes then lead the product's result,
    # which keeps it a plain matrix product (array first: 4x slower on CPU)
    expr = ",".join([*subs, arr_idx]) + "->" + "".join(out)
    return jnp.einsum(expr, *operands, array)


def categorical_entropy(p, axis: int = 0):
    r"""Entropy :math:`-\sum_i p_i \ln p_i` with ``0 ln 0 = 0``."""
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=axis)


def categorical_kl(q, p, axis: int = 0):
    r""":math:`KL[q \| p] = \sum_i q_i (\ln q_i - \ln p_i)` with ``0 ln 0 = 0``."""
    safe_q = jnp.where(q > 0, q, 1.0)
    safe_p = jnp.where(q > 0, p, 1.0)
    return jnp.sum(jnp.where(q > 0, q * (jnp.log(safe_q) - jnp.log(safe_p)), 0.0), axis=axis)


def inverse_cdf(p, u):
    """The category drawn by a uniform ``u`` in [0, 1) from probabilities ``p`` ``[N]``.

    The index of the first cumulative probability above ``u``: SPM's
    ``find(rand < cumsum(p), 1)``, clamped to ``N - 1`` against rounding.
    """
    return first_above(jnp.cumsum(p), u)


def first_above(cumulative, u):
    """:func:`inverse_cdf` given the cumulative probabilities ``[N]``: the index of the first
    entry above ``u``, clamped to ``N - 1``. For sums taken once and read many times."""
    return jnp.minimum(jnp.sum(cumulative <= u), cumulative.shape[0] - 1)


def put(array, index, value, axis: int = 0):
    """``array`` with ``value`` written at ``index`` along ``axis``: ``array.at[..., index, ...].set(value)``.

    Written as a select against a one-hot mask rather than a scatter: under
    ``jax.vmap`` with a batched ``index`` (each agent's own time step) XLA:CPU
    lowers a scatter to a loop over the batch, while the select is one fused
    elementwise kernel. Meant for short axes (the time steps of a trial).
    """
    axis = axis % array.ndim
    hit = jnp.arange(array.shape[axis]) == index
    hit = hit.reshape((-1,) + (1,) * (array.ndim - axis - 1))
    return jnp.where(hit, jnp.expand_dims(jnp.asarray(value, array.dtype), axis), array)
