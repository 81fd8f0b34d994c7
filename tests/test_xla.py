"""actinf's XLA:CPU setting (see ``actinf/_xla.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actinf import _xla
from actinf.agent import Agent, Learning
from actinf.inference.fixed_point import FixedPoint
from actinf.model import generative_model
from actinf.rollout import rollout
from actinf.worlds.explore_exploit import ExploreExploitWorld

jax.config.update("jax_enable_x64", True)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _flags_after_import(env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ACTINF_KEEP_XLA_FLAGS")}
    env.update(env_extra, PYTHONPATH=SRC)
    code = "import actinf, os; print(os.environ.get('XLA_FLAGS', ''))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_adds_the_classic_emitter_flag():
    assert _flags_after_import({}) == "--xla_cpu_use_fusion_emitters=false"


def test_user_flags_are_kept_and_extended():
    flags = _flags_after_import({"XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert flags == "--xla_dump_to=/tmp/x --xla_cpu_use_fusion_emitters=false"


def test_users_own_choice_of_the_flag_wins():
    assert _flags_after_import({"XLA_FLAGS": "--xla_cpu_use_fusion_emitters=true"}) == (
        "--xla_cpu_use_fusion_emitters=true"
    )


def test_opt_out_leaves_flags_untouched():
    assert _flags_after_import({"ACTINF_KEEP_XLA_FLAGS": "1"}) == ""


YNN = "--xla_cpu_experimental_ynn_fusion_type"


@pytest.mark.parametrize(
    "flags, sums",
    [
        ("", False),  # JAX's default: YNNPACK's reduce fusions on
        ("--xla_dump_to=/tmp/x", False),
        (f"{YNN}=", True),  # all off, as actinf.fit.devices.use_cpu_cores sets
        (f"{YNN}=individual_dot", True),
        (f"{YNN}=reduce", False),
        (f"{YNN}=dot,reduce", False),
        (f"{YNN}=reduce {YNN}=", True),  # the last one counts, as in XLA
    ],
)
def test_sums_of_products_only_without_ynn_reduce_fusions(monkeypatch, flags, sums):
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert _xla.sums_of_products() is sums


def test_both_forms_of_the_small_products_give_the_same_agent(monkeypatch):
    """The explore/exploit agent (two factors, a policy tree over small transitions, SPM's
    expected free energy from a small joint outcome model, learning through the
    smoother) over two trials: traced with sums of products and with dots, the
    programs differ and every number agrees to rounding."""
    world = ExploreExploitWorld()
    agent = Agent(world.model, inference=FixedPoint(), learning=Learning())
    runs = {}
    for flags in (f"{YNN}=", ""):
        monkeypatch.setenv("XLA_FLAGS", flags)
        jax.clear_caches()  # the inner jitted functions would reuse the other form's trace
        text = str(jax.make_jaxpr(lambda k: rollout(k, agent, world, trials=2))(jax.random.key(3)))
        traj = rollout(jax.random.key(3), agent, world, trials=2)
        runs[_xla.sums_of_products()] = (text.count("dot_general"), traj)
    jax.clear_caches()
    (dots_sums, with_sums), (dots_dots, with_dots) = runs[True], runs[False]
    assert dots_sums < dots_dots
    np.testing.assert_array_equal(with_sums.actions, with_dots.actions)
    for got, want in zip(jax.tree.leaves(with_sums), jax.tree.leaves(with_dots), strict=True):
        if jnp.issubdtype(got.dtype, jnp.floating):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        else:
            np.testing.assert_array_equal(got, want)


def test_both_forms_of_the_smoothers_products_agree(monkeypatch):
    """The fixed-point smoother behind learning (each step's own B(u), not symmetric here)
    computed with sums of products and with dots."""
    rng = np.random.default_rng(0)
    Ns, Nu, T = (4, 3), (3, 2), 5
    B = [rng.random((n, n, u)) ** 3 for n, u in zip(Ns, Nu, strict=True)]
    model = generative_model(
        [np.full((2, *Ns), 0.5)],
        [b / b.sum(0) for b in B],
        [np.zeros((2, T))],
        [np.full(n, 1.0 / n) for n in Ns],
        horizon=T,
    )
    history = tuple(jnp.asarray(rng.dirichlet(np.ones(n), T)) for n in Ns)
    actions = jnp.asarray(np.stack([rng.integers(0, u, T) for u in Nu]))
    got = {}
    for flags in (f"{YNN}=", ""):
        monkeypatch.setenv("XLA_FLAGS", flags)
        got[_xla.sums_of_products()] = FixedPoint().learning_inputs(model, None, None, history, actions)
    for a, b in zip(jax.tree.leaves(got[True]), jax.tree.leaves(got[False]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    smoothed = np.asarray(got[True][0][0])  # X of the first factor [Ns, T]
    assert not np.allclose(smoothed[:, :-1], np.asarray(history[0]).T[:, :-1])  # it did smooth
