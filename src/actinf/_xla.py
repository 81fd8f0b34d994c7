"""XLA settings actinf applies at import, before JAX starts its CPU backend.

actinf's programs are many small loops (message-passing sweeps, precision
iterations, time steps) over small arrays. XLA:CPU's newer fusion emitters
compile these about twice as slowly as its classic emitters and run them no
faster: on the 2-core development machine the T-maze trial compiled in 4.8 s
and ran in 1.9 ms with them, 2.7 s and 1.3 ms without. So, unless the user's
``XLA_FLAGS`` already says otherwise, actinf adds
``--xla_cpu_use_fusion_emitters=false``. It has no effect on GPUs, nor when
JAX's backend was already started before ``import actinf``. Set
``ACTINF_KEEP_XLA_FLAGS=1`` to leave ``XLA_FLAGS`` untouched.
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_use_fusion_emitters"


def configure() -> None:
    """Add actinf's XLA:CPU flag to ``XLA_FLAGS`` unless the user set it or opted out."""
    if os.environ.get("ACTINF_KEEP_XLA_FLAGS"):
        return
    current = os.environ.get("XLA_FLAGS", "")
    if FLAG not in current:
        os.environ["XLA_FLAGS"] = f"{current} {FLAG}=false".strip()
