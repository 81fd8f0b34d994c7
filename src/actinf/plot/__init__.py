"""Figures (the only part of actinf that imports matplotlib; nothing in the core imports it).

Results of the SPM scheme (:func:`~actinf.spm_trial`, :func:`~actinf.spm_sequence`):

* :func:`plot_trial`: one trial of the SPM scheme, as SPM's ``spm_MDP_VB_trial``.
* :func:`plot_trials`: a sequence of trials, in the spirit of ``spm_MDP_VB_game``.

Agent runs (a :class:`~actinf.rollout.Trajectory` from :func:`~actinf.rollout.rollout`
or :func:`~actinf.rollout.rollout_batch`):

* :func:`plot_agent_trial`: one trial of one agent: beliefs with the true states,
  policy posterior, expected free energy by term, actions, precision.
* :func:`plot_agent_summary`: choices, reward, precision and beliefs over trials
  (for a batch: fractions of agents, mean ± s.d. over agents).
* :func:`save_agent_figures`: ``trial.png`` and ``summary.png`` into a folder.
"""

from .agent import plot_agent_summary, plot_agent_trial, save_agent_figures
from .spm import plot_trial, plot_trials

__all__ = ["plot_agent_summary", "plot_agent_trial", "plot_trial", "plot_trials", "save_agent_figures"]
