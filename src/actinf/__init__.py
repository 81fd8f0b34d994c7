"""actinf: active inference on JAX.

The public surface:

* :class:`GenerativeModel`, :func:`generative_model`, :class:`ModelError`: the
  categorical generative model (SPM's A, B, C, D, E, V and Dirichlet counts).
* :class:`Agent` (``init``/``step``/``next_trial``), its parts
  (:class:`MarginalMessagePassing`, :class:`FixedPoint`, :class:`Sampled`,
  :class:`Deterministic`, :class:`Learning`) and :func:`rollout`,
  :func:`rollout_batch`: agents acting in :mod:`actinf.worlds`.
* :func:`spm_trial`, :func:`spm_sequence`, :class:`SpmSettings`,
  :class:`SpmTrialResult`: SPM12's ``spm_MDP_VB_X`` scheme, exactly.
* :mod:`actinf.spm`: SPM problems in and out (JSON reference schema, MATLAB ``.mat``).
* :mod:`actinf.maths`, :mod:`actinf.inference`, :mod:`actinf.planning`,
  :mod:`actinf.learning`: the mathematical pieces, for researchers.
"""

from . import _xla

_xla.configure()  # before JAX starts its backend; see actinf/_xla.py

from .agent import Agent, AgentState, Deterministic, Learning, Sampled, StepInfo  # noqa: E402
from .inference.fixed_point import FixedPoint  # noqa: E402
from .inference.mmp import MarginalMessagePassing  # noqa: E402
from .model import GenerativeModel, ModelError, generative_model  # noqa: E402
from .rollout import Trajectory, rollout, rollout_batch  # noqa: E402
from .spm.scheme import SpmSettings, SpmTrialResult, spm_sequence, spm_trial  # noqa: E402

__all__ = [
    "Agent",
    "AgentState",
    "Deterministic",
    "FixedPoint",
    "GenerativeModel",
    "Learning",
    "MarginalMessagePassing",
    "Sampled",
    "StepInfo",
    "Trajectory",
    "ModelError",
    "SpmSettings",
    "SpmTrialResult",
    "generative_model",
    "rollout",
    "rollout_batch",
    "spm_sequence",
    "spm_trial",
]
__version__ = "0.1.0"
