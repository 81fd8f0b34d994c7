"""Ready-made generative models.

* :func:`tmaze_model`: SPM's three-arm maze (``DEM_demo_MDP_X.m``), with
  :data:`TMAZE_LABELS`, :func:`simulate_tmaze` and :func:`summarise_tmaze`.
"""

from .tmaze import (
    TMAZE_LABELS,
    ModelLabels,
    TmazeRun,
    simulate_tmaze,
    spm_contexts,
    summarise_tmaze,
    tmaze_model,
)

__all__ = [
    "TMAZE_LABELS",
    "ModelLabels",
    "TmazeRun",
    "simulate_tmaze",
    "spm_contexts",
    "summarise_tmaze",
    "tmaze_model",
]
