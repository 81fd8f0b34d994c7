"""Figures (the only part of actinf that imports matplotlib; nothing in the core imports it).

* :func:`plot_trial`: one trial of the SPM scheme, as SPM's ``spm_MDP_VB_trial``.
* :func:`plot_trials`: a sequence of trials, in the spirit of ``spm_MDP_VB_game``.
"""

from .spm import plot_trial, plot_trials

__all__ = ["plot_trial", "plot_trials"]
