"""The runnable examples in ``examples/``: each runs to the end and writes its figures.

Each example runs in a fresh interpreter (as a user runs it) with ``--fast``
(a couple of agents and trials) and ``--out`` a temporary folder. Compiling
dominates: about 10 to 20 s each on two CPU cores, about a minute for the four.
The examples do not share compiled code, so they need no ``xdist_group``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each example and the figures it writes.
EXAMPLES = {
    "maze": ["maze_trial.png", "maze_summary_p50.png", "maze_summary_p90.png"],
    "grid": ["grid_navigation_trial.png", "grid_cue_trial.png"],
    "explore_exploit": [
        "explore_exploit_trial.png",
        "explore_exploit_summary_reliable.png",
        "explore_exploit_summary_unreliable.png",
    ],
    "reversal": ["reversal_trial.png", "reversal_summary_phi0.png", "reversal_summary_phi20.png"],
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_runs_and_writes_figures(name, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--fast", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, f"examples/{name}.py failed:\n{proc.stdout}\n{proc.stderr}"
    for figure in EXAMPLES[name]:
        path = tmp_path / figure
        assert path.is_file(), f"examples/{name}.py did not write {figure}:\n{proc.stdout}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{figure} is not a PNG file"
