"""The persistent compilation cache (``actinf.cache``): a second process loads what the first compiled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from actinf.cache import cache_disabled, default_cache_dir

SRC = str(Path(__file__).resolve().parents[1] / "src")

PROGRAM = """
import time, jax, jax.numpy as jnp
from actinf.cache import enable_compilation_cache
enable_compilation_cache({directory!r}, min_compile_seconds=0.0)
hits = []
jax.monitoring.register_event_listener(lambda e, **k: hits.append(e) if 'cache_hits' in e else None)
f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 17.0)
f(jnp.ones((3, 3))).block_until_ready()
print(len(hits))
"""


def _run(directory):
    env = {k: v for k, v in os.environ.items() if k != "ACTINF_NO_CACHE"}
    env["PYTHONPATH"] = SRC
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(directory=str(directory))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_compiled_program(tmp_path):
    assert _run(tmp_path) == 0
    assert any(tmp_path.iterdir()), "nothing was written to the cache folder"
    assert _run(tmp_path) >= 1


def test_cache_folder_and_switch_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTINF_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ACTINF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "actinf" / "jax"
    monkeypatch.setenv("ACTINF_NO_CACHE", "1")
    assert cache_disabled()
    monkeypatch.setenv("ACTINF_NO_CACHE", "0")
    assert not cache_disabled()
