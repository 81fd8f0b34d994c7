"""actinf's XLA:CPU setting (see ``actinf/_xla.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
