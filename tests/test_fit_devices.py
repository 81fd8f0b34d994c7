"""Participants split over several CPU devices (``actinf.fit.devices``).

The device count is fixed when JAX starts its backend, so the checks with two
devices run in a child interpreter.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import actinf
from actinf.fit.devices import per_device, shard_batch, use_cpu_cores

SRC = Path(actinf.__file__).parents[1]


def _child(code: str, timeout: int) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_use_cpu_cores_sets_the_flag_once(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert use_cpu_cores(3) == 3
    ynn_off = "--xla_cpu_experimental_ynn_fusion_type="
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=3", ynn_off]
    assert use_cpu_cores(5) == 3  # a count already asked for is kept, and nothing is added twice
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=3", ynn_off]
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_thunk_runtime=true")
    assert use_cpu_cores(2) == 2
    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_cpu_use_thunk_runtime=true",
        "--xla_force_host_platform_device_count=2",
        ynn_off,
    ]
    # the user's own choice of the fusions is kept
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=kIndividualOps")
    assert use_cpu_cores(2) == 2
    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_cpu_experimental_ynn_fusion_type=kIndividualOps",
        "--xla_force_host_platform_device_count=2",
    ]
    with pytest.raises(ValueError, match="at least 1"):
        monkeypatch.delenv("XLA_FLAGS")
        use_cpu_cores(0)


def test_shard_batch_leaves_one_device_alone():
    x = np.arange(6.0).reshape(3, 2)
    assert shard_batch(x) is x


def test_shard_batch_splits_over_two_devices_with_the_same_values():
    code = """
from actinf.fit.devices import shard_batch, use_cpu_cores
use_cpu_cores(2)
import jax, jax.numpy as jnp, numpy as np
assert len(jax.devices()) == 2
x, y = jnp.arange(8.0).reshape(4, 2), jnp.arange(12.0).reshape(2, 6)
sx, sy = shard_batch((x, y))
assert len(sx.sharding.device_set) == 2 and sx.addressable_shards[0].data.shape == (2, 2)
assert shard_batch(y, axis=1).addressable_shards[0].data.shape == (2, 3)
odd = jnp.arange(3.0)
assert shard_batch(odd) is odd  # not a multiple of the device count: left as it is
f = jax.jit(jax.vmap(lambda row: jnp.sum(jnp.exp(row)) * jnp.log1p(row[0])))
np.testing.assert_allclose(f(sx), f(x), rtol=1e-12)
print("ok")
"""
    proc = _child(code, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def _collatz_steps(n):
    """A loop whose length depends on the member: Collatz steps of each entry of ``n``."""
    import jax
    import jax.numpy as jnp

    def one(x):
        def cond(c):
            return c[0] > 1

        def body(c):
            x, k = c
            return jnp.where(x % 2 == 0, x // 2, 3 * x + 1), k + 1

        return jax.lax.while_loop(cond, body, (x, 0))[1]

    return (jax.vmap(one)(n),)


def test_per_device_with_one_device_is_the_function():
    import jax
    import jax.numpy as jnp

    n = jnp.arange(1, 9)
    got = jax.jit(per_device(_collatz_steps, (0,), (0,)))(n)[0]
    assert list(np.asarray(got)) == [0, 1, 7, 2, 5, 8, 16, 3]


def test_per_device_runs_each_share_alone_on_two_devices():
    code = """
from actinf.fit.devices import per_device, shard_batch, use_cpu_cores
use_cpu_cores(2)
import jax, jax.numpy as jnp, numpy as np
"""
    code += _source(_collatz_steps)  # the child defines the same loop
    code += """
n = shard_batch(jnp.arange(1, 9))
plain = jax.jit(_collatz_steps)
split = jax.jit(per_device(_collatz_steps, (0,), (0,)))
assert list(np.asarray(split(n)[0])) == list(np.asarray(plain(n)[0])) == [0, 1, 7, 2, 5, 8, 16, 3]
collective = ("all-reduce", "all-gather", "collective-permute")
# partitioned by XLA, the devices agree on the loop's condition at every pass; per device, never
assert any(c in plain.lower(n).compile().as_text() for c in collective)
assert not any(c in split.lower(n).compile().as_text() for c in collective)
odd = jnp.arange(1, 4)  # not a multiple of the devices: run whole
assert list(np.asarray(jax.jit(per_device(_collatz_steps, (0,), (0,)))(odd)[0])) == [0, 1, 7]
print("ok")
"""
    proc = _child(code, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def _source(fn) -> str:
    import inspect
    import textwrap

    return textwrap.dedent(inspect.getsource(fn))


@pytest.mark.slow  # compiles the Laplace fit and NUTS twice in a child interpreter: a few minutes
def test_nuts_on_two_devices_draws_what_one_device_draws():
    code = """
import sys
from actinf.fit.devices import use_cpu_cores
use_cpu_cores(int(sys.argv[1]))
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
from actinf.fit.tasks import make_task
from actinf.fit.likelihood import sample_prior, simulate
from actinf.fit.sampling import fit_nuts
task = make_task("explore-exploit")
z = sample_prior(jax.random.key(0), task, 2)
b = simulate(jax.random.key(1), task, z, 3)
idata = fit_nuts(task, b, chains=2, warmup=15, draws=10)
np.save(sys.argv[2], idata.posterior["z"].values)
"""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        draws = []
        for count in (1, 2):
            path = os.path.join(folder, f"z{count}.npy")
            proc = _child(
                code.replace("sys.argv[1]", repr(str(count))).replace("sys.argv[2]", repr(path)), 900
            )
            assert proc.returncode == 0, proc.stderr
            draws.append(np.load(path))
    np.testing.assert_allclose(draws[1], draws[0], rtol=1e-9, atol=1e-9)
