"""SPM12 compatibility.

* :func:`spm_MDP_VB_X`: SPM's routine for Python dicts with SPM's field names
  (1-based indices), one trial or a sequence.
* :func:`~actinf.spm.scheme.spm_trial`, :func:`~actinf.spm.scheme.spm_sequence`,
  :func:`~actinf.spm.scheme.spm_hmm`: the scheme on actinf's model.
* :func:`load_case`, :func:`run_case`, :func:`compare`: reference JSON cases and
  MATLAB ``.mat`` files in, SPM's outputs out, errors against SPM's.
"""

from .io import SpmCase, SpmInputError, load_case, write_case_json
from .mdp import spm_MDP_VB_X
from .runner import compare, run_case
from .scheme import SpmSettings, SpmTrialResult, spm_hmm, spm_sequence, spm_trial

__all__ = [
    "SpmCase",
    "SpmInputError",
    "SpmSettings",
    "SpmTrialResult",
    "compare",
    "load_case",
    "run_case",
    "spm_MDP_VB_X",
    "spm_hmm",
    "spm_sequence",
    "spm_trial",
    "write_case_json",
]
