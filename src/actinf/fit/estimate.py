"""Maximum a posteriori estimates and the Laplace approximation, per participant.

For each participant independently (``jax.vmap`` over participants), with
:math:`\\ell(z) = \\ln p(u \\mid o, z) + \\ln p(z)`
(:func:`~actinf.fit.likelihood.log_joint`):

* **MAP**: :math:`\\hat z = \\arg\\max_z \\ell(z)` by optax's L-BFGS with a
  zoom line search, from the prior mean, for a fixed number of iterations
  (compiled once; no Python in the loop). Participants are independent, so
  their objectives are summed and optimised together. L-BFGS on the sum
  approaches every participant's mode but, with its few remembered
  directions shared by all the participants, slowly reaches each one; a few
  Newton steps per participant then finish the job,
  :math:`z \\leftarrow z + H^{-1} \\nabla \\ell(z)` with the exact Hessian
  :math:`H = -\\nabla^2 \\ell(z)`, each taken only where :math:`H` is positive
  definite and the step raises :math:`\\ell`.
* **Laplace**: the posterior :math:`q(z) = N(\\hat z, \\Sigma)` with
  :math:`\\Sigma = H^{-1}`, :math:`H = -\\nabla^2 \\ell(\\hat z)`, and the
  log evidence (SPM's variational Laplace free energy at the mode)

  .. math::

     \\ln p(u \\mid o) \\approx \\ell(\\hat z) + \\tfrac d2 \\ln 2\\pi - \\tfrac12 \\ln |H|

  (MacKay 2003, *Information theory, inference and learning algorithms*, ch. 27;
  Friston et al. 2007, *Variational free energy and the Laplace approximation*,
  NeuroImage 34). If :math:`H` is not positive definite (no mode found), its
  eigenvalues are floored at ``1e-6`` and ``converged`` is False.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .devices import shard_batch
from .likelihood import Behaviour, log_joint
from .tasks import Task

__all__ = ["LaplaceResult", "MapResult", "fit_laplace", "fit_map"]


class MapResult(NamedTuple):
    """MAP estimates of a group (leading participant axis ``[P]``).

    Attributes:
      z: ``[P, d]`` estimates on the unconstrained scale.
      theta: ``[P, d]`` the same on the natural scales.
      log_joint: ``[P]``, :math:`\\ell(\\hat z)`.
      log_likelihood: ``[P]``, :math:`\\ln p(u \\mid o, \\hat z)`.
      grad_norm: ``[P]``, :math:`\\|\\nabla \\ell(\\hat z)\\|` (small at a mode).
    """

    z: jax.Array
    theta: jax.Array
    log_joint: jax.Array
    log_likelihood: jax.Array
    grad_norm: jax.Array


class LaplaceResult(NamedTuple):
    """Laplace posteriors of a group.

    Attributes:
      map: the :class:`MapResult` at the modes.
      covariance: ``[P, d, d]``, :math:`\\Sigma = H^{-1}` on the unconstrained scale.
      sd: ``[P, d]``, posterior standard deviations on the unconstrained scale.
      log_evidence: ``[P]``, the Laplace approximation of :math:`\\ln p(u \\mid o)`.
      converged: bool ``[P]``: a positive definite :math:`H` and a small gradient.
    """

    map: MapResult
    covariance: jax.Array
    sd: jax.Array
    log_evidence: jax.Array
    converged: jax.Array


@eqx.filter_jit
def _map(task, behaviour, z0, iterations, newton_steps):
    """The group's :class:`MapResult` and each participant's :math:`H = -\\nabla^2 \\ell(\\hat z)`
    ``[P, d, d]`` (what :func:`fit_laplace` needs: one compiled program serves both)."""

    # participants are independent: the summed objective has a block-diagonal
    # Hessian, and L-BFGS on the sum is L-BFGS on each block, sharing line searches
    def loss(z):
        return -jnp.sum(jax.vmap(lambda zz, b: log_joint(task, zz, b))(z, behaviour))

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def body(carry, _):
        z, state = carry
        value, grad = value_and_grad(z, state=state)
        updates, state = opt.update(grad, state, z, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(z, updates), state), None

    (z, _), _ = jax.lax.scan(body, (z0, opt.init(z0)), None, length=iterations)
    z, lj, grad, H = jax.vmap(lambda zz, b: _newton(lambda x: log_joint(task, x, b), zz, newton_steps))(
        z, behaviour
    )
    ll = lj - jax.vmap(task.log_prior)(z)  # ln p(u | o, z) = l(z) - ln p(z)
    return MapResult(z, task.natural(z), lj, ll, jnp.linalg.norm(grad, axis=-1)), H


def _value_gradient_hessian(objective, z):
    """``(l, grad l, H)`` at ``z`` ``[d]``, :math:`H = -\\nabla^2 l` (symmetrised), from one pass:
    ``d`` forward tangents through the reverse-mode gradient, the value and gradient riding along."""

    def gradient(x):
        value, grad = jax.value_and_grad(objective)(x)
        return grad, (value, grad)

    hessian, (value, grad) = jax.jacfwd(gradient, has_aux=True)(z)
    return value, grad, -(hessian + hessian.T) / 2


def _newton(objective, z, steps):
    """``steps`` safeguarded Newton steps uphill on ``objective`` from ``z`` ``[d]`` (one participant).

    A step :math:`z + H^{-1} \\nabla l` is taken only where :math:`H` is positive
    definite and the step leads to a finite point where the objective is not lower.
    Each of the ``steps + 1`` passes evaluates the objective, its gradient and
    Hessian at one point (:func:`_value_gradient_hessian`): the first at ``z``,
    the others at the step from the last point kept, which is kept if the step
    qualifies. One evaluation in the loop is compiled once, and the last point
    kept comes with its value, gradient and Hessian.

    Returns:
      ``(z, value, gradient, H)`` at the last point kept.
    """
    d = z.shape[0]

    def body(k, kept):
        x, value, grad, H = kept
        positive = jnp.linalg.eigvalsh(H)[0] > 0
        step = jnp.linalg.solve(jnp.where(positive, H, jnp.eye(d, dtype=H.dtype)), grad)
        candidate = jnp.where(k == 0, x, x + step)
        new = _value_gradient_hessian(objective, candidate)
        better = (k == 0) | (positive & jnp.all(jnp.isfinite(candidate)) & (new[0] >= value))
        return jax.tree.map(lambda a, b: jnp.where(better, a, b), (candidate, *new), kept)

    dtype = z.dtype
    start = (z, jnp.asarray(-jnp.inf, dtype), jnp.zeros((d,), dtype), jnp.eye(d, dtype=dtype))
    return jax.lax.fori_loop(0, steps + 1, body, start)


def _placed(task: Task, behaviour: Behaviour, start):
    """``(behaviour, z0)`` split over the devices, ``z0`` ``[P, d]`` the start (default the prior mean)."""
    P = behaviour.outcomes.shape[0]
    z0 = jnp.broadcast_to(task.prior_mean, (P, len(task.parameters))) if start is None else jnp.asarray(start)
    z0 = z0.astype(jnp.result_type(float))
    return shard_batch((behaviour, z0))


def fit_map(
    task: Task, behaviour: Behaviour, *, iterations: int = 30, newton_steps: int = 2, start=None
) -> MapResult:
    """MAP estimates for every participant of ``behaviour`` (``[P, ...]``).

    Args:
      task: the :class:`~actinf.fit.tasks.Task`.
      behaviour: the group's :class:`~actinf.fit.likelihood.Behaviour`.
      iterations: L-BFGS iterations on the group (30; static).
      newton_steps: Newton steps per participant after them (2; static).
      start: ``[P, d]`` starting points (default the prior mean).

    With several devices the participants are split over them
    (:func:`~actinf.fit.devices.shard_batch`; the same values).
    """
    return _map(task, *_placed(task, behaviour, start), int(iterations), int(newton_steps))[0]


@eqx.filter_jit
def _laplace(result, H):
    """The :class:`LaplaceResult` from the MAP result and :math:`H` ``[P, d, d]`` at the modes."""

    def one(H):
        w, U = jnp.linalg.eigh(H)
        positive = jnp.all(w > 0)
        w = jnp.maximum(w, 1e-6)
        cov = (U / w[None, :]) @ U.T
        logdet = jnp.sum(jnp.log(w))
        return cov, logdet, positive

    cov, logdet, positive = jax.vmap(one)(H)
    d = result.z.shape[-1]
    evidence = result.log_joint + 0.5 * d * jnp.log(2 * jnp.pi) - 0.5 * logdet
    sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    converged = positive & (result.grad_norm < 1e-2 * jnp.sqrt(d))
    return LaplaceResult(result, cov, sd, evidence, converged)


def fit_laplace(
    task: Task, behaviour: Behaviour, *, iterations: int = 30, newton_steps: int = 2, start=None
) -> LaplaceResult:
    """MAP estimates and the Laplace approximation for every participant (module docstring).

    The Hessian is the one the MAP's last Newton pass computed at the mode (the
    same compiled program as :func:`fit_map`'s). Split over the devices as :func:`fit_map`.
    """
    return _laplace(*_map(task, *_placed(task, behaviour, start), int(iterations), int(newton_steps)))
