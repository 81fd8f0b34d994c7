"""Expected free energy of every policy at once, sharing common prefixes.

A receding-horizon planner scores ``Np`` policies of ``L`` moves from the
current posterior :math:`\\mathbf{q}_t`. Scored one by one (as pymdp does),
that is ``Np * L`` predictions. Policies that begin with the same moves
predict the same states up to where they part, so the predictions form a
tree: depth ``k`` holds one node per distinct prefix of ``k`` moves, and

.. math::

   \\mathbf{q}^{(k)}_{f,n} = B_f(m_{f,n})\\,\\mathbf{q}^{(k-1)}_{f,\\mathrm{parent}(n)}

for node ``n`` reached by move :math:`m_n`. With every sequence of ``Nu``
moves as a policy there are :math:`Nu + Nu^2 + \\dots + Nu^L` nodes instead
of :math:`L\\,Nu^L` predictions (155 instead of 375 for 5 moves and ``L = 3``).
Each depth is computed as one matrix product: the parents' beliefs times every
move's transition matrix side by side, ``[n, Ns] @ [Ns, Nu * Ns]``, from which
the children are gathered.

The expected free energy terms (:mod:`actinf.planning.efe`) are evaluated
once per node, with the preferences of that node's time, and a policy's
expected free energy is the sum over its nodes:

.. math::

   G_\\pi = \\sum_{k=1}^{\\min(L,\\,T-1-t)} g\\big(\\mathbf{q}^{(k)}_{\\mathrm{node}_k(\\pi)},\\, t + k\\big)

which is exactly what scoring each policy alone gives (``tests/test_tree.py``).
The tree is built once from concrete policies (:meth:`PolicyTree.from_policies`)
and is static: it shapes the compiled program.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .. import _xla

__all__ = ["PolicyTree", "predict_children", "successors", "tree_expected_free_energy"]


@dataclass(frozen=True)
class PolicyTree:
    """The prefix tree of a set of policies (hashable, static under ``jit``).

    Attributes:
      parents: per depth ``k = 1..L``, for each node, the index of its parent at
        depth ``k - 1`` (depth 0 is the present, one node).
      moves: per depth, for each node, the move into it, one action per factor.
      leaves: per depth, for each policy, the index of its node at that depth.
      num_controls: actions per factor.
    """

    parents: tuple[tuple[int, ...], ...]
    moves: tuple[tuple[tuple[int, ...], ...], ...]
    leaves: tuple[tuple[int, ...], ...]
    num_controls: tuple[int, ...]

    @classmethod
    def from_policies(cls, policies, num_controls) -> PolicyTree:
        """Build the tree of ``policies``, integer ``[L, Np, F]`` (concrete, not traced)."""
        V = np.asarray(policies)
        if V.ndim != 3:
            raise ValueError(f"policies must have shape [L, Np, F], got {list(V.shape)}")
        L, Np, _ = V.shape
        parents, moves, leaves = [], [], []
        index = {(): 0}
        prefix_of = [()] * Np
        for k in range(L):
            nodes: dict[tuple, int] = {}
            par, mov, leaf = [], [], []
            for p in range(Np):
                step = tuple(int(a) for a in V[k, p])
                prefix = (*prefix_of[p], step)
                if prefix not in nodes:
                    nodes[prefix] = len(nodes)
                    par.append(index[prefix_of[p]])
                    mov.append(step)
                leaf.append(nodes[prefix])
                prefix_of[p] = prefix
            index = nodes
            parents.append(tuple(par))
            moves.append(tuple(mov))
            leaves.append(tuple(leaf))
        return cls(tuple(parents), tuple(moves), tuple(leaves), tuple(int(n) for n in num_controls))

    @property
    def depth(self) -> int:
        """``L``, the number of moves per policy."""
        return len(self.parents)

    @property
    def num_policies(self) -> int:
        """``Np``."""
        return len(self.leaves[0]) if self.leaves else 1

    @property
    def num_nodes(self) -> tuple[int, ...]:
        """Nodes at each depth ``1..L``."""
        return tuple(len(p) for p in self.parents)


def successors(transition) -> tuple:
    """Per factor ``M_f`` ``[Ns_f, Nu_f, Ns_f]``, :math:`M_f[s, u, s'] = B_f[s', s, u]`: the
    distribution of the next state from ``s`` under ``u`` as a row. Beliefs times
    ``M_f`` reshaped to ``[Ns_f, Nu_f * Ns_f]`` predict every move at once."""
    return tuple(jnp.transpose(B, (1, 2, 0)) for B in transition)


#: Transition matrices up to this many entries predict by a sum of products, larger
#: ones by a matrix product, when :func:`actinf._xla.sums_of_products` says so (XLA's
#: YNNPACK reduce fusions off, as ``actinf.fit`` runs): then every dot is a kernel
#: call of its own, where a sum of products fuses with what reads it; see
#: :data:`actinf.planning.efe.FUSED_PREDICTION_SIZE`.
FUSED_TRANSITION_SIZE = 256


def _product(q, M):
    """``q @ M``: a sum of products for a small ``M`` (:data:`FUSED_TRANSITION_SIZE`) when
    :func:`actinf._xla.sums_of_products`."""
    if M.size <= FUSED_TRANSITION_SIZE and _xla.sums_of_products():
        return jnp.sum(q[..., :, None] * jnp.expand_dims(M, tuple(range(q.ndim - 1))), axis=-2)
    return q @ M


def predict_children(tree: PolicyTree, moves, states, k: int):
    """Beliefs at depth ``k`` (per factor ``[n_k, Ns_f]``) from those at depth ``k - 1``.

    Args:
      tree: the :class:`PolicyTree`.
      moves: per factor ``M_f`` ``[Ns_f, Nu_f, Ns_f]`` (:func:`successors`).
      states: per factor ``[n_{k-1}, Ns_f]``.
      k: depth, 1-based.
    """
    parent = np.asarray(tree.parents[k - 1], np.int32)
    move = np.asarray(tree.moves[k - 1], np.int32).reshape(len(parent), -1)
    out = []
    for f, (M, prev) in enumerate(zip(moves, states, strict=True)):
        Ns, Nu, _ = M.shape
        used = np.unique(move[:, f])
        if len(used) == 1:  # one move at this depth (or an uncontrolled factor): one product
            child = _product(prev[parent], M[:, int(used[0]), :])
        else:
            # every parent under every move: [n_{k-1}, Ns] @ [Ns, Nu * Ns]
            every = _product(prev, M.reshape(Ns, Nu * Ns)).reshape(prev.shape[0], Nu, Ns)
            if np.array_equal(parent * Nu + move[:, f], np.arange(prev.shape[0] * Nu)):
                # the nodes are every parent under every move, in that order (all
                # sequences of moves, as listed): the children are the product itself,
                # and XLA would not see that the gather below is the identity
                child = every.reshape(prev.shape[0] * Nu, Ns)
            else:
                child = every[parent, move[:, f]]
        out.append(child)
    return tuple(out)


def tree_expected_free_energy(tree: PolicyTree, moves, outcomes, posterior, terms, t, trial_length: int):
    """Expected free energy of every policy from the current posterior, split into terms.

    Args:
      tree: the :class:`PolicyTree` of the agent's policies.
      moves: per factor ``M_f`` ``[Ns_f, Nu_f, Ns_f]`` (:func:`successors` of the ``B_f``).
      outcomes: the :class:`~actinf.planning.efe.OutcomeModel`.
      posterior: per factor ``[Ns_f]``, the posterior now (time ``t``).
      terms: the expected free energy terms.
      t: the current time (may be traced).
      trial_length: ``T``; depths past the trial's last time are not counted.

    Returns:
      ``(efe [Np], parts [Np, n_terms + 1])``: the total (lower is better) and each
      term's sum over the policy's times; the last column (initial-state novelty)
      is zero: it is the same for every policy when planning from the present.
    """
    num_columns = outcomes.log_preference[0].shape[1]
    states = tuple(q[None] for q in posterior)
    dtype = posterior[0].dtype
    parts = jnp.zeros((tree.num_policies, len(terms)), dtype)
    for k in range(1, tree.depth + 1):
        states = predict_children(tree, moves, states, k)
        tau = jnp.minimum(t + k, num_columns - 1)

        def node_value(*node_states, tau=tau):
            return jnp.stack([term(outcomes, list(node_states), tau) for term in terms])

        values = jax.vmap(node_value)(*states)  # [n_k, n_terms]
        counted = k <= trial_length - 1 - t
        values = jnp.where(counted, values, 0.0)
        parts = parts + values[np.asarray(tree.leaves[k - 1], np.int32)]
    parts = jnp.concatenate([parts, jnp.zeros((tree.num_policies, 1), dtype)], axis=1)
    return jnp.sum(parts, axis=1), parts
