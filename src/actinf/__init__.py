"""actinf: active inference on JAX.

The public surface:

* :class:`GenerativeModel`, :func:`generative_model`, :class:`ModelError`: the
  categorical generative model (SPM's A, B, C, D, E, V and Dirichlet counts).
* :func:`spm_trial`, :func:`spm_sequence`, :class:`SpmSettings`,
  :class:`SpmTrialResult`: SPM12's ``spm_MDP_VB_X`` scheme, exactly.
* :mod:`actinf.spm`: SPM problems in and out (JSON reference schema, MATLAB ``.mat``).
* :mod:`actinf.maths`, :mod:`actinf.inference`, :mod:`actinf.planning`,
  :mod:`actinf.learning`: the mathematical pieces, for researchers.
"""

from . import _xla

_xla.configure()  # before JAX starts its backend; see actinf/_xla.py

from .model import GenerativeModel, ModelError, generative_model  # noqa: E402
from .spm.scheme import SpmSettings, SpmTrialResult, spm_sequence, spm_trial  # noqa: E402

__all__ = [
    "GenerativeModel",
    "ModelError",
    "SpmSettings",
    "SpmTrialResult",
    "generative_model",
    "spm_sequence",
    "spm_trial",
]
__version__ = "0.1.0"
