"""``actinf bench``: the command runs, the agreement check catches different models,
the timed episode compiles once. No test asserts a time."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from actinf import bench
from actinf.cli import app
from conftest import CompileCounter

SRC = Path(__file__).resolve().parents[1] / "src"
HAS_PYMDP = importlib.util.find_spec("pymdp") is not None
needs_pymdp = pytest.mark.skipif(not HAS_PYMDP, reason="needs pymdp: pip install 'actinf[bench]'")


def _python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@needs_pymdp
def test_quick_bench_against_pymdp(tmp_path):
    """`actinf bench --quick --vs pymdp` runs, agrees with pymdp and writes every field."""
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    md.write_text(
        f"# Title\n\nkept, `{bench.BEGIN}` in the text\n\n{bench.BEGIN}\nold\n{bench.END}\n\nkept too\n",
        encoding="utf-8",
    )
    done = _python(
        "-m", "actinf.cli", "bench", "--quick", "--vs", "pymdp", "--json", str(out), "--markdown", str(md)
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["command"].startswith("actinf bench --vs pymdp --quick")
    for key in ("cpu", "cores", "jax", "pymdp", "date"):
        assert result["machine"][key]
    assert [a["passed"] for a in result["agreement"]] == [True, True]
    assert len(result["workloads"]) == 3
    for row in result["workloads"]:
        for side in ("actinf", "pymdp"):
            rate = row[side]["steps_per_s"]
            assert 0 < rate["q25"] <= rate["median"] <= rate["q75"]
            assert row[side]["first_call_s"] > 0
            assert len(row[side]["episode_seconds"]) == row["repeats"]
        assert row["ratio"] == pytest.approx(
            row["actinf"]["steps_per_s"]["median"] / row["pymdp"]["steps_per_s"]["median"]
        )
    assert result["import"]["import_s"] > 0
    assert result["peak"]["gflops"] > 0 and result["flops"]["actinf_gflops"] > 0
    assert set(result["targets"]) == {"ratio", "maze_first_call", "import", "peak_fraction"}
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    text = md.read_text(encoding="utf-8")
    assert (
        text.startswith(f"# Title\n\nkept, `{bench.BEGIN}` in the text\n")
        and text.endswith("kept too\n")
        and "\nold\n" not in text
    )
    assert "| workload | policies | agents |" in text and "| maze L=1 | 4 | 16 |" in text
    assert "| workload |" in done.stdout  # the table also goes to stdout


@needs_pymdp
def test_agreement_fails_when_the_models_differ():
    """A preference changed on pymdp's side only is caught before any timing."""
    problem = bench.grid_problem(5, 1)
    changed = problem._replace(preference=(problem.preference[0] + np.linspace(0.0, 1.0, 25),))
    with pytest.raises(bench.AgreementError, match="grid 5x5 L=1: actinf and pymdp disagree"):
        bench.check_agreement(problem, changed, steps=2)


def test_second_episode_of_the_largest_workload_does_not_compile():
    """grid 10x10, L = 3 (125 policies), 256 agents: a second episode traces and compiles nothing."""
    run = bench.actinf_episode(bench.Workload("grid", 10, 3, 256, steps=3))
    jax.block_until_ready(run(jax.random.key(0)))
    with CompileCounter() as compiles:
        actions, observations = run(jax.random.key(1))
        jax.block_until_ready((actions, observations))
    assert compiles.count == 0
    assert actions.shape == (256, 1, 2, 1) and observations.shape == (256, 1, 3, 1)


def test_vs_pymdp_without_pymdp_exits_2(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pymdp" else real(name, *a)
    )
    result = CliRunner().invoke(app, ["bench", "--vs", "pymdp", "--quick"])
    assert result.exit_code == 2
    assert "pip install 'actinf[bench]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_vs_something_else_is_usage():
    result = CliRunner().invoke(app, ["bench", "--vs", "spm"])
    assert result.exit_code == 2 and "--vs must be pymdp" in result.output


def test_import_actinf_does_not_import_pymdp():
    done = _python("-c", "import sys, actinf, actinf.cli, actinf.bench; assert 'pymdp' not in sys.modules")
    assert done.returncode == 0, done.stderr


def test_import_actinf_leaves_jax_scipy_special_out():
    """``import actinf`` does not load ``jax.scipy.special`` (70 ms of a 0.7 s import)."""
    done = _python("-c", "import sys, actinf; assert 'jax.scipy.special' not in sys.modules")
    assert done.returncode == 0, done.stderr


def test_flops_of_the_largest_grid():
    """10x10, L = 3: 5 + 25 + 125 prefix nodes, each a 100 x 100 prediction and outcome matvec."""
    count = bench.flops_per_agent_step(bench.grid_problem(10, 3))
    per_node = 2 * 100**2 + (2 * 100 * 100 + 4 * 100) + 2 * 100
    assert count["nodes"] == 155 and count["per_node"] == per_node
    assert count["flops"] == 155 * per_node + 2 * 100**2 + 100 + 4 * 100


def test_workloads_of_the_issue():
    full = bench.full_workloads()
    assert {(w.name, w.agents) for w in full} >= {
        ("maze L=3", 256),
        ("grid 10x10 L=3", 256),
        ("grid 5x5 L=1", 1),
    }
    assert len(full) == 24
    assert {bench.maze_problem(d).num_policies for d in (1, 2, 3)} == {4, 16, 64}
    assert {bench.grid_problem(8, d).num_policies for d in (1, 2, 3)} == {5, 25, 125}
    assert {(w.name, w.agents) for w in bench.quick_workloads()} == {
        ("maze L=1", 1),
        ("maze L=1", 16),
        ("grid 5x5 L=1", 16),
    }
