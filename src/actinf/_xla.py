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

:func:`sums_of_products` reads the flags too: it says how actinf writes its
small matrix products, which run fastest in a different form depending on
whether XLA:CPU's YNNPACK reduce fusions are on.
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_use_fusion_emitters"
#: XLA:CPU's YNNPACK library fusions; ``=`` (empty) turns them all off.
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def configure() -> None:
    """Add actinf's XLA:CPU flag to ``XLA_FLAGS`` unless the user set it or opted out."""
    if os.environ.get("ACTINF_KEEP_XLA_FLAGS"):
        return
    current = os.environ.get("XLA_FLAGS", "")
    if FLAG not in current:
        os.environ["XLA_FLAGS"] = f"{current} {FLAG}=false".strip()


def sums_of_products() -> bool:
    """Whether actinf writes its small matrix products as sums of products instead of dots.

    A sum of products, ``sum(q[:, None] * M, axis=0)`` for ``q @ M``, is fused by
    XLA:CPU with the operations that read it, where a dot is a kernel of its own;
    but with YNNPACK's reduce fusions on (JAX 0.10.2's default) XLA hands that
    reduction to YNNPACK, which runs it slowly. So: sums of products only when
    ``XLA_FLAGS`` sets :data:`YNN_FLAG` to a list without ``reduce``, as
    :func:`actinf.fit.devices.use_cpu_cores` does (``=``, all off). Measured on
    the 2-core development machine (2026-12-03, fresh processes), with the fusions
    on: 256 agents in the three-arm maze with SPM's expected free energy ran at
    1.18 million agent-steps per second with dots and 0.79 million with sums;
    with them off, as fits run: the explore/exploit likelihood's value and
    gradient for 200 participants took 17.6-18.0 ms with the policy tree's
    products as sums and 19.1-19.4 ms with them as dots.

    Read when a function is traced. The two forms agree to rounding.
    """
    flags = os.environ.get("XLA_FLAGS", "").split()
    values = [flag.split("=", 1)[1] for flag in flags if flag.startswith(YNN_FLAG + "=")]
    return bool(values) and "reduce" not in values[-1].lower()
